// relu (max(x, 0)) and relu6 (clamp(x, 0, 6)), forward and backward, float4 per work-item.
// KIND: 0 = relu, 1 = relu6. Backward RULE:
//   0 standard:  gx = g * f'(x)            (f' = 1 inside the linear region, else 0)
//   1 guided:    gx = max(g * f'(x), 0)    (Springenberg et al.: input positive AND g positive)
//   2 deconvnet: gx = max(g, 0)            (Zeiler & Fergus: the forward mask is ignored)
// These are the rules Captum's GuidedBackprop and Deconvolution apply with backward hooks.

// fmax and clamp would turn a NaN into 0 or 6; these keep it, as PyTorch's relu and relu6 do
// (a NaN compares false, so it falls through to the input).
inline float4 act4(float4 x, int kind) {
    return kind == 0 ? (x < 0.0f ? 0.0f : x) : (x < 0.0f ? 0.0f : x > 6.0f ? 6.0f : x);
}
inline float act1(float x, int kind) {
    return kind == 0 ? (x < 0.0f ? 0.0f : x) : (x < 0.0f ? 0.0f : x > 6.0f ? 6.0f : x);
}
// act_grad_float4, act_grad_float8, act_grad_float16: the backward lane by lane (the last two
// for kernels that apply it as they store: gemm_packed.cl, conv2d_depthwise.cl).
// A NaN gradient passes where the input is inside (PyTorch's threshold_backward: x <= 0 ? 0 : g,
// a select, not a product that would turn 0 * NaN into NaN outside) and through the guided and
// deconvnet ReLUs of the gradient.
#define ACT_GRAD_VECTOR(T) \
    inline T act_grad_##T(T g, T x, int kind, int rule) { \
        if (rule == 2) return g < 0.0f ? (T)(0.0f) : g; \
        const T gx = kind == 0 ? (x > 0.0f ? g : (T)(0.0f)) : (x > 0.0f && x < 6.0f ? g : (T)(0.0f)); \
        return rule == 1 ? (gx < 0.0f ? (T)(0.0f) : gx) : gx; \
    }
ACT_GRAD_VECTOR(float4)
ACT_GRAD_VECTOR(float8)
ACT_GRAD_VECTOR(float16)
inline float act_grad1(float g, float x, int kind, int rule) {
    if (rule == 2) return g < 0.0f ? 0.0f : g;
    const float gx = (kind == 0 ? x > 0.0f : (x > 0.0f && x < 6.0f)) ? g : 0.0f;
    return rule == 1 && gx < 0.0f ? 0.0f : gx;
}

__kernel void activation_forward(__global const float* x, __global float* y, int n, int kind) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) vstore4(act4(vload4(0, x + i), kind), 0, y + i);
    else for (int j = i; j < n; ++j) y[j] = act1(x[j], kind);
}

// DeepLIFT's rescale rule (AttributionOps.deepLiftRescale) on a pass of N inputs then their N
// references: for j < pairs and its partner j + pairs, d = x[j] - x[j + pairs]; both get
// gy (y[j] - y[j + pairs]) (1 / d) where |d| - 1e-10 > 0, else plain (the activation's gradient).
// Global (pairs).
__kernel void deeplift_rescale(__global const float* gy, __global const float* x, __global const float* y,
                               __global const float* plain, __global float* gx, int pairs) {
    const int j = get_global_id(0);
    if (j >= pairs) return;
    const float d = x[j] - x[j + pairs];
    if (fabs(d) - 1e-10f > 0.0f) {
        const float r = (y[j] - y[j + pairs]) * (1.0f / d);
        gx[j] = gy[j] * r;
        gx[j + pairs] = gy[j + pairs] * r;
    } else {
        gx[j] = plain[j];
        gx[j + pairs] = plain[j + pairs];
    }
}

__kernel void activation_backward(__global const float* gy, __global const float* x, __global float* gx,
                                  int n, int kind, int rule) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) vstore4(act_grad_float4(vload4(0, gy + i), vload4(0, x + i), kind, rule), 0, gx + i);
    else for (int j = i; j < n; ++j) gx[j] = act_grad1(gy[j], x[j], kind, rule);
}
