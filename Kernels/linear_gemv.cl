// linear for GPUs at a batch of at most GEMV_ROWS rows: y = x W^T + b is bound by reading W once
// (VGG16's first classifier layer: 411 MB), which a tiled product with a few columns of C spreads
// over too few work-items to keep the memory busy. Here one work-group of GEMV_GROUP work-items
// takes one output o: each reads every GEMV_GROUP-th element of W's row o (neighbouring
// work-items, neighbouring addresses), keeps one partial sum per batch row, and the group adds
// them in local memory.
//   x [N, In], W [Out, In], b [Out], y [N, Out];  global (GEMV_GROUP, Out), local (GEMV_GROUP, 1).

#define GEMV_GROUP 256
#define GEMV_ROWS 4

__kernel __attribute__((reqd_work_group_size(GEMV_GROUP, 1, 1)))
void linear_gemv_forward(__global const float* x, __global const float* w, __global const float* bias,
                         __global float* y, int hasBias, int Out, int N, int In) {
    const int t = get_local_id(0), o = get_group_id(1);
    __global const float* wr = w + (long)o * In;
    float acc[GEMV_ROWS];
    #pragma unroll
    for (int n = 0; n < GEMV_ROWS; ++n) acc[n] = 0.0f;
    for (int i = t; i < In; i += GEMV_GROUP) {
        const float wv = wr[i];
        #pragma unroll
        for (int n = 0; n < GEMV_ROWS; ++n) if (n < N) acc[n] = fma(wv, x[(long)n * In + i], acc[n]);
    }
    __local float partial[GEMV_GROUP];
    for (int n = 0; n < N; ++n) {
        partial[t] = acc[0];
        // Shift the next row's sum into acc[0] (private arrays stay in registers when only
        // indexed by constants).
        #pragma unroll
        for (int r = 0; r + 1 < GEMV_ROWS; ++r) acc[r] = acc[r + 1];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = GEMV_GROUP / 2; s > 0; s >>= 1) {
            if (t < s) partial[t] += partial[t + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (t == 0) y[(long)n * Out + o] = partial[0] + (hasBias ? bias[o] : 0.0f);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
