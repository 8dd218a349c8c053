// batchnorm2d in inference mode, float32 NCHW:
//   y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c]
// Backward to the input: gx = g * gamma[c] / sqrt(var[c] + eps).
// Global size (ceil(HW / 4), C, Nb); each work-item handles 4 pixels of one plane.

__kernel void batchnorm2d_forward(__global const float* x, __global const float* gamma, __global const float* beta,
                                  __global const float* mean, __global const float* var, float eps,
                                  __global float* y, int C, int HW) {
    const int i = get_global_id(0) * 4, c = get_global_id(1), n = get_global_id(2);
    const float s = gamma[c] * rsqrt(var[c] + eps);
    const float t = beta[c] - mean[c] * s;
    const long base = ((long)n * C + c) * HW;
    if (i + 3 < HW) vstore4(fma(vload4(0, x + base + i), (float4)(s), (float4)(t)), 0, y + base + i);
    else for (int j = i; j < HW; ++j) y[base + j] = fma(x[base + j], s, t);
}

__kernel void batchnorm2d_backward(__global const float* gy, __global const float* gamma, __global const float* var,
                                   float eps, __global float* gx, int C, int HW) {
    const int i = get_global_id(0) * 4, c = get_global_id(1), n = get_global_id(2);
    const float s = gamma[c] * rsqrt(var[c] + eps);
    const long base = ((long)n * C + c) * HW;
    if (i + 3 < HW) vstore4(vload4(0, gy + base + i) * s, 0, gx + base + i);
    else for (int j = i; j < HW; ++j) gx[base + j] = gy[base + j] * s;
}
