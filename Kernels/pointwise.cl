// Elementwise functions of the optimization engine and their derivatives, over n floats,
// 4 per work-item (VEC_BODY from elementwise.cl). op 0: sigmoid; op 1: |x|^p; op 2: hard sigmoid
// relu6(x + 3) / 6; op 3: hard swish x relu6(x + 3) / 6.

inline float4 pointwise4(float4 x, int op, float p) {
    if (op == 2) return clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    if (op == 3) return x * clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    return op == 0 ? 1.0f / (1.0f + exp(-x)) : pow(fabs(x), (float4)(p));
}

// d/dx, times the incoming gradient; |x|^p has derivative 0 at x = 0; the hard functions'
// derivatives at their kinks are PyTorch's (hard sigmoid: 0 at +-3; hard swish: x/3 + 1/2 at +-3).
inline float4 pointwise_grad4(float4 gy, float4 x, int op, float p) {
    if (op == 0) {
        const float4 s = 1.0f / (1.0f + exp(-x));
        return gy * s * (1.0f - s);
    }
    if (op == 2) return select((float4)(0.0f), gy / 6.0f, x > -3.0f && x < 3.0f);
    if (op == 3) return select(select(gy, gy * (x / 3.0f + 0.5f), x <= 3.0f), (float4)(0.0f), x < -3.0f);
    const float4 d = p * pow(fabs(x), (float4)(p - 1.0f)) * sign(x);
    return select(gy * d, (float4)(0.0f), x == 0.0f);
}

__kernel void pointwise(__global const float* x, __global float* y, int n, int op, float p) {
    VEC_BODY(vstore4(pointwise4(vload4(0, x + i), op, p), 0, y + i),
             y[j] = pointwise4((float4)(x[j]), op, p).s0)
}

__kernel void pointwise_backward(__global const float* gy, __global const float* x, __global float* gx, int n, int op, float p) {
    VEC_BODY(vstore4(pointwise_grad4(vload4(0, gy + i), vload4(0, x + i), op, p), 0, gx + i),
             gx[j] = pointwise_grad4((float4)(gy[j]), (float4)(x[j]), op, p).s0)
}
