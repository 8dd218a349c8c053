// relu (max(x, 0)) and relu6 (clamp(x, 0, 6)), forward and backward, float4 per work-item.
// KIND: 0 = relu, 1 = relu6. Backward RULE:
//   0 standard:  gx = g * f'(x)            (f' = 1 inside the linear region, else 0)
//   1 guided:    gx = max(g * f'(x), 0)    (Springenberg et al.: input positive AND g positive)
//   2 deconvnet: gx = max(g, 0)            (Zeiler & Fergus: the forward mask is ignored)
// These are the rules Captum's GuidedBackprop and Deconvolution apply with backward hooks.

inline float4 act4(float4 x, int kind) {
    return kind == 0 ? fmax(x, 0.0f) : clamp(x, 0.0f, 6.0f);
}
inline float act1(float x, int kind) {
    return kind == 0 ? fmax(x, 0.0f) : clamp(x, 0.0f, 6.0f);
}
// act_grad_float4, act_grad_float8, act_grad_float16: the backward lane by lane (the last two
// for kernels that apply it as they store: gemm_packed.cl, conv2d_depthwise.cl).
#define ACT_GRAD_VECTOR(T) \
    inline T act_grad_##T(T g, T x, int kind, int rule) { \
        if (rule == 2) return fmax(g, 0.0f); \
        const T inside = kind == 0 ? select((T)(0.0f), (T)(1.0f), x > 0.0f) \
                                   : select((T)(0.0f), (T)(1.0f), x > 0.0f && x < 6.0f); \
        const T gx = g * inside; \
        return rule == 1 ? fmax(gx, 0.0f) : gx; \
    }
ACT_GRAD_VECTOR(float4)
ACT_GRAD_VECTOR(float8)
ACT_GRAD_VECTOR(float16)
inline float act_grad1(float g, float x, int kind, int rule) {
    if (rule == 2) return fmax(g, 0.0f);
    const float inside = kind == 0 ? (x > 0.0f) : (x > 0.0f && x < 6.0f);
    const float gx = g * inside;
    return rule == 1 ? fmax(gx, 0.0f) : gx;
}

__kernel void activation_forward(__global const float* x, __global float* y, int n, int kind) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) vstore4(act4(vload4(0, x + i), kind), 0, y + i);
    else for (int j = i; j < n; ++j) y[j] = act1(x[j], kind);
}

__kernel void activation_backward(__global const float* gy, __global const float* x, __global float* gx,
                                  int n, int kind, int rule) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) vstore4(act_grad_float4(vload4(0, gy + i), vload4(0, x + i), kind, rule), 0, gx + i);
    else for (int j = i; j < n; ++j) gx[j] = act_grad1(gy[j], x[j], kind, rule);
}
