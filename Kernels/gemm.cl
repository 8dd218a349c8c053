// Tiled, register-blocked matrix multiply shared by conv2d.cl and linear.cl.
//
// C[z][m][n] = sum_k A[z][m][k] * B[z][k][n] for m < M, n < N, k < K and a batch index z.
// The including program defines how operands are reached, so one tile loop serves plain
// matrices and implicit im2col alike:
//   GEMM_ARGS                 the kernel's parameter list (must include int M, N, K)
//   A_LOAD(z, m, k)           an element of A (only called in range)
//   B_LOAD(z, k, n)           an element of B (only called in range)
//   C_STORE(z, m, n, value)   writes one result
//
// Tiling (prepended #defines, tunable per device): a work-group computes a TM x TN tile of C
// with (TN / WPTN) x (TM / WPTM) work-items; each work-item keeps WPTM rows of WPTN contiguous
// columns in registers, as WPTM vectors of width WPTN (4, 8 or 16), and updates them with vector
// FMAs: explicit SIMD on a CPU (PoCL does not vectorize across work-items through the inner
// loop) and wide registers on a GPU. Rows are strided (row tm + i * TM / WPTM) so that
// neighbouring work-items read neighbouring local addresses. Per step, the group stages a
// TK-deep slice of A and B in local memory.
//
// Split K (GEMM_SPLIT_K defined): when the tiles of C are too few to fill the device (a 7x7
// map, a linear layer at batch 1, a weight gradient), the grid's third dimension also runs over
// gemm_splits slices of K; each slice writes its partial tile to gemm_part[z][s][M][N] and
// gemm_splitk_reduce sums the slices and stores them with C_STORE.

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef WPTM
#define WPTM 8
#endif
#ifndef WPTN
#define WPTN 8
#endif

#define RTM (TM / WPTM)
#define RTN (TN / WPTN)
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define VFLOAT GEMM_CAT(float, WPTN)
#define VLOAD GEMM_CAT(vload, WPTN)
#define VSTORE GEMM_CAT(vstore, WPTN)

#ifdef GEMM_SPLIT_K
#define GEMM_KERNEL_ARGS GEMM_ARGS, __global float* gemm_part, int gemm_splits
#else
#define GEMM_KERNEL_ARGS GEMM_ARGS
#endif

__kernel __attribute__((reqd_work_group_size(RTN, RTM, 1)))
void gemm_tiled(GEMM_KERNEL_ARGS) {
    const int tn = get_local_id(0);
    const int tm = get_local_id(1);
    const int n0 = get_group_id(0) * TN;
    const int m0 = get_group_id(1) * TM;
    const int tid = tm * RTN + tn;
#ifdef GEMM_SPLIT_K
    const int zs = get_global_id(2);
    // Slices are whole TK steps, so a slice's last step is the only one that may end inside K.
    const int chunk = ((K + gemm_splits - 1) / gemm_splits + TK - 1) / TK * TK;
    const int kBegin = (zs % gemm_splits) * chunk;
    const int kEnd = min(K, kBegin + chunk);
    const int z = zs / gemm_splits;
#else
    const int z = get_global_id(2);
    const int kBegin = 0, kEnd = K;
#endif

    // As is padded by one column: its stores run along k, TM floats apart, which would all hit
    // one bank of a GPU's local memory.
    __local float As[TK][TM + 1];
    __local float Bs[TK][TN];

    // The block loops below have constant trip counts: compilers unroll them and keep acc in
    // registers (NVIDIA's ptxas: 64 registers and no spills for 64x64/4x4 on an H200).
    VFLOAT acc[WPTM];
    for (int i = 0; i < WPTM; ++i) acc[i] = (VFLOAT)(0.0f);

    for (int k0 = kBegin; k0 < kEnd; k0 += TK) {
        // Stage A: k varies fastest, as it does in memory for weights.
        for (int i = tid; i < TK * TM; i += RTM * RTN) {
            const int kk = i % TK;
            const int mm = i / TK;
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < kEnd) ? A_LOAD(z, m, k) : 0.0f;
        }
        // Stage B: n varies fastest, as it does in memory for feature maps.
        for (int i = tid; i < TK * TN; i += RTM * RTN) {
            const int nn = i % TN;
            const int kk = i / TN;
            const int n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < kEnd) ? B_LOAD(z, k, n) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; ++kk) {
            const VFLOAT b = VLOAD(0, &Bs[kk][tn * WPTN]);
            for (int i = 0; i < WPTM; ++i) acc[i] = fma((VFLOAT)(As[kk][tm + i * RTM]), b, acc[i]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    float out[WPTN];
    for (int i = 0; i < WPTM; ++i) {
        const int m = m0 + tm + i * RTM;
        if (m >= M) continue;
        VSTORE(acc[i], 0, out);
        for (int j = 0; j < WPTN; ++j) {
            const int n = n0 + tn * WPTN + j;
#ifdef GEMM_SPLIT_K
            if (n < N) gemm_part[((long)zs * M + m) * N + n] = out[j];
#else
            if (n < N) C_STORE(z, m, n, out[j]);
#endif
        }
    }
}

#ifdef GEMM_SPLIT_K
// C[z][m][n] = the sum of the slices' partial results. Global (N, M, Z).
__kernel void gemm_splitk_reduce(GEMM_KERNEL_ARGS) {
    const int n = get_global_id(0), m = get_global_id(1), z = get_global_id(2);
    if (n >= N || m >= M) return;
    float sum = 0.0f;
    for (int s = 0; s < gemm_splits; ++s) sum += gemm_part[((long)(z * gemm_splits + s) * M + m) * N + n];
    C_STORE(z, m, n, sum);
}
#endif
