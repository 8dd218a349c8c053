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
// with (TN / WPTN) x (TM / WPTM) work-items; each work-item keeps a WPTM x WPTN block of
// accumulators in registers. Per step, the group stages a TK-deep slice of A and B in local
// memory. Work-item (tn, tm) owns columns tn + j * (TN / WPTN): neighbouring work-items touch
// neighbouring addresses, so loads and stores coalesce on a GPU and vectorize across
// work-items on a CPU (PoCL).

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
#define WPTM 4
#endif
#ifndef WPTN
#define WPTN 4
#endif

#define RTM (TM / WPTM)
#define RTN (TN / WPTN)

__kernel __attribute__((reqd_work_group_size(RTN, RTM, 1)))
void gemm_tiled(GEMM_ARGS) {
    const int tn = get_local_id(0);
    const int tm = get_local_id(1);
    const int n0 = get_group_id(0) * TN;
    const int m0 = get_group_id(1) * TM;
    const int z = get_global_id(2);
    const int tid = tm * RTN + tn;

    __local float As[TK][TM];
    __local float Bs[TK][TN];

    float acc[WPTM][WPTN];
    for (int i = 0; i < WPTM; ++i)
        for (int j = 0; j < WPTN; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += TK) {
        // Stage A: k varies fastest, as it does in memory for weights.
        for (int i = tid; i < TK * TM; i += RTM * RTN) {
            const int kk = i % TK;
            const int mm = i / TK;
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? A_LOAD(z, m, k) : 0.0f;
        }
        // Stage B: n varies fastest, as it does in memory for feature maps.
        for (int i = tid; i < TK * TN; i += RTM * RTN) {
            const int nn = i % TN;
            const int kk = i / TN;
            const int n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < K) ? B_LOAD(z, k, n) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; ++kk) {
            float a[WPTM];
            float b[WPTN];
            for (int i = 0; i < WPTM; ++i) a[i] = As[kk][tm + i * RTM];
            for (int j = 0; j < WPTN; ++j) b[j] = Bs[kk][tn + j * RTN];
            for (int i = 0; i < WPTM; ++i)
                for (int j = 0; j < WPTN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int i = 0; i < WPTM; ++i) {
        const int m = m0 + tm + i * RTM;
        if (m >= M) continue;
        for (int j = 0; j < WPTN; ++j) {
            const int n = n0 + tn + j * RTN;
            if (n < N) C_STORE(z, m, n, acc[i][j]);
        }
    }
}
