// softmax and log-softmax over the last dimension of a [rows, cols] float32 array, forward
// and backward. GPUs: one work-group of RWG work-items per row; row maxima and sums are tree
// reductions in local memory. CPU devices: softmax_rows_* below. LOG: 0 softmax, 1 log-softmax.
//   softmax:      y = exp(x - max) / sum(exp(x - max));  gx = y * (g - sum(g * y))
//   log-softmax:  y = x - max - log(sum(exp(x - max)));  gx = g - exp(y) * sum(g)

#ifndef RWG
#define RWG 64
#endif

inline float group_reduce(__local float* scratch, float value, int isMax) {
    const int l = get_local_id(0);
    scratch[l] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RWG / 2; s > 0; s >>= 1) {
        if (l < s) scratch[l] = isMax ? fmax(scratch[l], scratch[l + s]) : scratch[l] + scratch[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float result = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return result;
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void softmax_forward(__global const float* x, __global float* y, int cols, int LOG) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float m = -INFINITY;
    for (int j = l; j < cols; j += RWG) m = fmax(m, x[row + j]);
    m = group_reduce(scratch, m, 1);
    float s = 0.0f;
    for (int j = l; j < cols; j += RWG) s += exp(x[row + j] - m);
    s = group_reduce(scratch, s, 0);
    const float logS = log(s);
    for (int j = l; j < cols; j += RWG)
        y[row + j] = LOG ? x[row + j] - m - logS : exp(x[row + j] - m) / s;
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void softmax_backward(__global const float* gy, __global const float* y, __global float* gx, int cols, int LOG) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float s = 0.0f;
    for (int j = l; j < cols; j += RWG) s += LOG ? gy[row + j] : gy[row + j] * y[row + j];
    s = group_reduce(scratch, s, 0);
    for (int j = l; j < cols; j += RWG)
        gx[row + j] = LOG ? gy[row + j] - exp(y[row + j]) * s : y[row + j] * (gy[row + j] - s);
}

// CPU devices (the register-blocked family): one row per work-item, local size 1, no barriers
// (PoCL runs a work-group's items in turn at every barrier), the row's passes in float8 lanes.
// Global (rows).
inline float8 softmax_lanes(__global const float* p, int j, int cols, float fill) {
    if (j + 8 <= cols) return vload8(0, p + j);
    float lanes[8];
    for (int i = 0; i < 8; ++i) lanes[i] = j + i < cols ? p[j + i] : fill;
    return vload8(0, lanes);
}

inline float softmax_max8(float8 v) {
    const float4 a = fmax(v.lo, v.hi);
    return fmax(fmax(a.x, a.y), fmax(a.z, a.w));
}

inline float softmax_sum8(float8 v) {
    const float4 a = v.lo + v.hi;
    return (a.x + a.y) + (a.z + a.w);
}

__kernel void softmax_rows_forward(__global const float* x, __global float* y, int cols, int LOG, int rows) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    float8 m8 = (float8)(-INFINITY);
    for (int j = 0; j < cols; j += 8) m8 = fmax(m8, softmax_lanes(xr, j, cols, -INFINITY));
    const float m = softmax_max8(m8);
    float8 s8 = (float8)(0.0f);
    for (int j = 0; j < cols; j += 8) s8 += exp(softmax_lanes(xr, j, cols, -INFINITY) - m);
    const float s = softmax_sum8(s8), logS = log(s), inv = 1.0f / s;
    for (int j = 0; j < cols; ++j) yr[j] = LOG ? xr[j] - m - logS : exp(xr[j] - m) * inv;
}

__kernel void softmax_rows_backward(__global const float* gy, __global const float* y, __global float* gx, int cols, int LOG, int rows) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* g = gy + r * cols;
    __global const float* yr = y + r * cols;
    __global float* out = gx + r * cols;
    float8 s8 = (float8)(0.0f);
    for (int j = 0; j < cols; j += 8) {
        const float8 gv = softmax_lanes(g, j, cols, 0.0f);
        s8 += LOG ? gv : gv * softmax_lanes(yr, j, cols, 0.0f);
    }
    const float s = softmax_sum8(s8);
    for (int j = 0; j < cols; ++j) out[j] = LOG ? g[j] - exp(yr[j]) * s : yr[j] * (g[j] - s);
}
