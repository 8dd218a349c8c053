// matmul: batched matrix product c[z] = op(a[z]) op(b[z]), float32, over gemm.cl's tiled loop
// (GPU devices; CPU devices run gemm_packed.cl). a [Z, M, K] or, transA, [Z, K, M]; b [Z, K, N]
// or, transB, [Z, N, K]; c [Z, M, N]. The host builds this file with MATMUL defined, followed
// by gemm.cl.

#if defined(MATMUL)
#define GEMM_ARGS __global const float* a, __global const float* b, __global float* c, int transA, int transB, \
    int M, int N, int K
#define A_LOAD(z, m, k) a[(long)(z) * M * K + (transA ? (long)(k) * M + (m) : (long)(m) * K + (k))]
#define B_LOAD(z, k, n) b[(long)(z) * K * N + (transB ? (long)(n) * K + (k) : (long)(k) * N + (n))]
#define C_STORE(z, m, n, v) c[((long)(z) * M + (m)) * N + (n)] = (v);
#endif
