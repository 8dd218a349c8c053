// Elementwise ops on flat float32 arrays of n elements. Each work-item handles 4 consecutive
// elements with float4 loads and stores; the last work-item finishes a ragged tail in scalar.
// Backward passes: add passes the gradient through, mul is mul, scale is scale, axpy is axpy.

#define VEC_BODY(EXPR_VEC, EXPR_SCALAR)                                    \
    const int i = get_global_id(0) * 4;                                    \
    if (i + 3 < n) {                                                       \
        EXPR_VEC;                                                          \
    } else {                                                               \
        for (int j = i; j < n; ++j) { EXPR_SCALAR; }                       \
    }

// y = a + b
__kernel void add(__global const float* a, __global const float* b, __global float* y, int n) {
    VEC_BODY(vstore4(vload4(0, a + i) + vload4(0, b + i), 0, y + i), y[j] = a[j] + b[j])
}

// y = a * b
__kernel void mul(__global const float* a, __global const float* b, __global float* y, int n) {
    VEC_BODY(vstore4(vload4(0, a + i) * vload4(0, b + i), 0, y + i), y[j] = a[j] * b[j])
}

// y = s * a
__kernel void scale(__global const float* a, float s, __global float* y, int n) {
    VEC_BODY(vstore4(s * vload4(0, a + i), 0, y + i), y[j] = s * a[j])
}

// out = alpha * x + y
__kernel void axpy(float alpha, __global const float* x, __global const float* y, __global float* out, int n) {
    VEC_BODY(vstore4(fma((float4)(alpha), vload4(0, x + i), vload4(0, y + i)), 0, out + i),
             out[j] = fma(alpha, x[j], y[j]))
}
