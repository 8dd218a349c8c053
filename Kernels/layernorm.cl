// Layer normalization over the last dimension of a [rows, cols] float32 array (torch.nn.LayerNorm
// over its last dimension; biased variance), forward and backward to the input. GPUs: one
// work-group of RWG work-items per row; sums are tree reductions in local memory (group_reduce
// from softmax.cl, compiled with it). CPU devices: layernorm_rows_* below. hasGamma, hasBeta: whether gamma and beta are read (else 1 and 0).
//   y = xhat gamma + beta,  xhat = (x - mean) rstd,  rstd = 1 / sqrt(var + eps)
//   gx = rstd (g - mean(g) - xhat mean(g xhat)),  g = gy gamma

inline float2 row_statistics(__local float* scratch, __global const float* x, int cols, float eps) {
    const int l = get_local_id(0);
    float s = 0.0f;
    for (int j = l; j < cols; j += RWG) s += x[j];
    const float mean = group_reduce(scratch, s, 0) / cols;
    float v = 0.0f;
    for (int j = l; j < cols; j += RWG) {
        const float d = x[j] - mean;
        v += d * d;
    }
    return (float2)(mean, 1.0f / sqrt(group_reduce(scratch, v, 0) / cols + eps));
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void layernorm_forward(__global const float* x, __global const float* gamma, __global const float* beta,
                       __global float* y, int cols, float eps, int hasGamma, int hasBeta) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    const float2 st = row_statistics(scratch, x + row, cols, eps);
    for (int j = l; j < cols; j += RWG) {
        const float h = (x[row + j] - st.x) * st.y;
        y[row + j] = (hasGamma ? h * gamma[j] : h) + (hasBeta ? beta[j] : 0.0f);
    }
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void layernorm_backward(__global const float* gy, __global const float* x, __global const float* gamma,
                        __global float* gx, int cols, float eps, int hasGamma) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    const float2 st = row_statistics(scratch, x + row, cols, eps);
    float sg = 0.0f, sgx = 0.0f;
    for (int j = l; j < cols; j += RWG) {
        const float g = hasGamma ? gy[row + j] * gamma[j] : gy[row + j];
        sg += g;
        sgx += g * (x[row + j] - st.x) * st.y;
    }
    sg = group_reduce(scratch, sg, 0) / cols;
    sgx = group_reduce(scratch, sgx, 0) / cols;
    for (int j = l; j < cols; j += RWG) {
        const float g = hasGamma ? gy[row + j] * gamma[j] : gy[row + j];
        gx[row + j] = st.y * (g - sg - (x[row + j] - st.x) * st.y * sgx);
    }
}

// CPU devices (the register-blocked family): one row per work-item, local size 1, no barriers,
// sums in float8 lanes (softmax_lanes and softmax_sum8 from softmax.cl). Global (rows).
inline float2 row_statistics_lanes(__global const float* x, int cols, float eps) {
    float8 s8 = (float8)(0.0f);
    for (int j = 0; j < cols; j += 8) s8 += softmax_lanes(x, j, cols, 0.0f);
    const float mean = softmax_sum8(s8) / cols;
    float8 v8 = (float8)(0.0f);
    for (int j = 0; j < cols; j += 8) {
        const float8 d = softmax_lanes(x, j, cols, mean) - mean;
        v8 += d * d;
    }
    return (float2)(mean, 1.0f / sqrt(softmax_sum8(v8) / cols + eps));
}

__kernel void layernorm_rows_forward(__global const float* x, __global const float* gamma, __global const float* beta,
                                     __global float* y, int cols, float eps, int hasGamma, int hasBeta, int rows) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    const float2 st = row_statistics_lanes(xr, cols, eps);
    for (int j = 0; j < cols; ++j) {
        const float h = (xr[j] - st.x) * st.y;
        yr[j] = (hasGamma ? h * gamma[j] : h) + (hasBeta ? beta[j] : 0.0f);
    }
}

__kernel void layernorm_rows_backward(__global const float* gy, __global const float* x, __global const float* gamma,
                                      __global float* gx, int cols, float eps, int hasGamma, int rows) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global const float* g0 = gy + r * cols;
    __global float* out = gx + r * cols;
    const float2 st = row_statistics_lanes(xr, cols, eps);
    float sg = 0.0f, sgx = 0.0f;
    for (int j = 0; j < cols; ++j) {
        const float g = hasGamma ? g0[j] * gamma[j] : g0[j];
        sg += g;
        sgx += g * (xr[j] - st.x) * st.y;
    }
    sg /= cols;
    sgx /= cols;
    for (int j = 0; j < cols; ++j) {
        const float g = hasGamma ? g0[j] * gamma[j] : g0[j];
        out[j] = st.y * (g - sg - (xr[j] - st.x) * st.y * sgx);
    }
}
