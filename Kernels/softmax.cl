// softmax and log-softmax over the last dimension of a [rows, cols] float32 array, forward
// and backward. One work-group of RWG work-items per row; row maxima and sums are tree
// reductions in local memory. LOG: 0 softmax, 1 log-softmax.
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
