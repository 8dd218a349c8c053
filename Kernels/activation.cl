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
// references: for j < pairs and its partner j + pairs, d = x[j] - x[j + pairs]; each gets its
// gy (y[j] - y[j + pairs]) (1 / d) where |d| - 1e-10 > 0, else the activation KIND's standard
// gradient at its own input. both = 1: gy and gx hold both halves; 0: the inputs' half alone.
// Four pairs a work-item. Global (ceil(pairs / 4)).
__kernel void deeplift_rescale(__global const float* gy, __global const float* x, __global const float* y,
                               __global float* gx, int pairs, int both, int kind) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < pairs) {
        const float4 x1 = vload4(0, x + i), x0 = vload4(0, x + i + pairs);
        const float4 d = x1 - x0;
        const int4 rescales = fabs(d) - 1e-10f > 0.0f;
        const float4 r = (vload4(0, y + i) - vload4(0, y + i + pairs)) * (1.0f / d);
        const float4 g1 = vload4(0, gy + i);
        vstore4(select(act_grad_float4(g1, x1, kind, 0), g1 * r, rescales), 0, gx + i);
        if (both) {
            const float4 g0 = vload4(0, gy + i + pairs);
            vstore4(select(act_grad_float4(g0, x0, kind, 0), g0 * r, rescales), 0, gx + i + pairs);
        }
    } else {
        for (int j = i; j < pairs; ++j) {
            const float d = x[j] - x[j + pairs];
            const int rescales = fabs(d) - 1e-10f > 0.0f;
            const float r = (y[j] - y[j + pairs]) * (1.0f / d);
            gx[j] = rescales ? gy[j] * r : act_grad1(gy[j], x[j], kind, 0);
            if (both) gx[j + pairs] = rescales ? gy[j + pairs] * r : act_grad1(gy[j + pairs], x[j + pairs], kind, 0);
        }
    }
}

__kernel void activation_backward(__global const float* gy, __global const float* x, __global float* gx,
                                  int n, int kind, int rule) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) vstore4(act_grad_float4(vload4(0, gy + i), vload4(0, x + i), kind, rule), 0, gx + i);
    else for (int j = i; j < n; ++j) gx[j] = act_grad1(gy[j], x[j], kind, rule);
}
