// linear: y = x W^T + b, float32, x [Nb, In], W [Out, In], b [Out], y [Nb, Out].
// Forward and both backward passes are matrix multiplies over gemm.cl; the host builds this
// file with one of LINEAR_FORWARD, LINEAR_BACKWARD_INPUT, LINEAR_BACKWARD_WEIGHT defined,
// followed by gemm.cl. Bias backward is channel_sum in reduce.cl (HW = 1).

#if defined(LINEAR_FORWARD)
// C = y^T: M = Out, N = Nb, K = In, so the wide dimension (Out) fills the tile even at batch 1.
#define GEMM_ARGS __global const float* x, __global const float* w, __global const float* bias, \
    __global float* y, int hasBias, int M, int N, int K
#define A_LOAD(z, m, k) w[(long)(m) * K + (k)]
#define B_LOAD(z, k, n) x[(long)(n) * K + (k)]
#define C_STORE(z, m, n, v) y[(long)(n) * M + (m)] = (v) + (hasBias ? bias[m] : 0.0f);

#elif defined(LINEAR_BACKWARD_INPUT)
// C = gx^T [In, Nb] = W^T gy^T: M = In, N = Nb, K = Out.
#define GEMM_ARGS __global const float* gy, __global const float* w, __global float* gx, int M, int N, int K
#define A_LOAD(z, m, k) w[(long)(k) * M + (m)]
#define B_LOAD(z, k, n) gy[(long)(n) * K + (k)]
#define C_STORE(z, m, n, v) gx[(long)(n) * M + (m)] = (v);

#elif defined(LINEAR_BACKWARD_WEIGHT)
// C = gW [Out, In] = gy^T x: M = Out, N = In, K = Nb.
#define GEMM_ARGS __global const float* gy, __global const float* x, __global float* gw, int M, int N, int K
#define A_LOAD(z, m, k) gy[(long)(k) * M + (m)]
#define B_LOAD(z, k, n) x[(long)(k) * N + (n)]
#define C_STORE(z, m, n, v) gw[(long)(m) * N + (n)] = (v);
#endif
