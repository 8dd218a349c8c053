// Layer normalization over the last dimension of a [rows, cols] float32 array (torch.nn.LayerNorm
// over its last dimension; biased variance), forward and backward to the input. One work-group
// of RWG work-items per row; sums are tree reductions in local memory (group_reduce from
// softmax.cl, compiled with it). hasGamma, hasBeta: whether gamma and beta are read (else 1 and 0).
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
