// Matrix multiply for CPU OpenCL devices (PoCL): no __local memory, no barriers, local size
// (1,1,1). Each work-item keeps an MR x NR block of C in registers (MR rows of NV vectors of VW
// floats, NR = VW * NV) and runs the whole K loop itself: per k, NV vector loads of B, MR
// broadcasts of A and MR * NV fused multiply-adds, which PoCL compiles to a tight SIMD loop
// (AVX2: 6 x 16 in 12 ymm accumulators; AVX-512: 8 x 32 in 16 zmm). A local-memory tile (gemm.cl)
// is what GPUs want; on PoCL it runs every work-item of a group in turn per barrier and spills
// its registers, 50x slower.
//
// Operands are packed in panels so that both streams are contiguous:
//   A: [G][ceil(M/MR)][K][MR]   (pack_a: a conv's weights, packed once per weight tensor)
//   B: [Z][ceil(N/NR)][K][NR]   (pack_b_im2col: a conv input's im2col columns, per chunk)
// with zeros past M and N. C[z][m][n] = sum_k A[g][m][k] * B[z][k][n], g = z % G, is stored at
//   C + (image0 + z / G) * strideImage + g * strideGroup + m * ldc + n   (+ bias[g * M + m] when
// given; with BIAS_COLUMNS defined, + bias[n]: a linear layer's bias), so one kernel writes a
// conv's NCHW output, a column buffer or a linear layer's [N, Out] output.
//
// Window geometry (pack_b_im2col, col2im): conv_geometry.cl, prepended by the host.

#ifndef MR
#define MR 6
#endif
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#define NR (VW * NV)
#define GP_CAT_(a, b) a##b
#define GP_CAT(a, b) GP_CAT_(a, b)
#define VFLOATP GP_CAT(float, VW)
#define VLOADP GP_CAT(vload, VW)
#define VSTOREP GP_CAT(vstore, VW)

#define GP_LOAD_FULL(v) VLOADP(v, b)

// VW floats from p, of which the first `valid` (any count) are real and the rest read as 0.
inline VFLOATP gemm_packed_tail(__global const float* p, int valid) {
    float lanes[VW];
    for (int j = 0; j < VW; ++j) lanes[j] = j < valid ? p[j] : 0.0f;
    return VLOADP(0, lanes);
}

// With STORE_MASK defined (and activation.cl prepended), C is the gradient of an activation's
// output (storeMask, C's layout, in the plain store) and each value is put through that
// activation's backward (kind GRAD_KIND, rule GRAD_RULE) as it is stored: a pointwise
// convolution's backward to an input that a fused ReLU or ReLU6 made, in one pass.
#ifdef STORE_MASK
#define GP_STORE_MASK(value, x) GP_CAT(act_grad_, VFLOATP)(value, x, GRAD_KIND, GRAD_RULE)
#define GP_STORE_MASK1(value, x) act_grad1(value, x, GRAD_KIND, GRAD_RULE)
#else
#define GP_STORE_MASK(value, x) (value)
#define GP_STORE_MASK1(value, x) (value)
#endif

// With RESIDUAL defined, `residual` (C's layout) is added before the fused activation:
// C = act(A B + bias + residual), a residual block's sum in the store (a ResNet block's last
// convolution, its shortcut and the ReLU after them; MobileNetV2's projection and its input).
#ifdef RESIDUAL
#define GP_RESIDUAL(offset) VLOADP(0, residual + (offset))
#define GP_RESIDUAL_TAIL(offset, valid) gemm_packed_tail(residual + (offset), valid)
#define GP_RESIDUAL_AT(offset) residual[offset]
#define GP_RESIDUAL4(offset) vload4(0, residual + (offset))
#else
#define GP_RESIDUAL(offset) ((VFLOATP)(0.0f))
#define GP_RESIDUAL_TAIL(offset, valid) ((VFLOATP)(0.0f))
#define GP_RESIDUAL_AT(offset) 0.0f
#define GP_RESIDUAL4(offset) ((float4)(0.0f))
#endif

// COUNT k steps of the register block, each: NV vectors of B (LOAD(v)), MR broadcasts of A, MR * NV FMAs.
#define GEMM_PACKED_K_LOOP(COUNT, LOAD, STEP) \
    for (int k = 0; k < (COUNT); ++k) { \
        VFLOATP bv[NV]; \
        _Pragma("unroll") for (int v = 0; v < NV; ++v) bv[v] = LOAD(v); \
        _Pragma("unroll") for (int r = 0; r < MR; ++r) { \
            const VFLOATP ar = (VFLOATP)(a[r]); \
            _Pragma("unroll") for (int v = 0; v < NV; ++v) acc[r][v] = fma(ar, bv[v], acc[r][v]); \
        } \
        a += MR; \
        b += STEP; \
    }

// GEMM_TRANSPOSED's B and C in the channel-blocked layout (CPU devices' NCHWc, blocks of VW
// channels: a [K][N] matrix as [K / VW][N][VW]), with B_BLOCKED and C_BLOCKED defined: an
// inverted residual's expanded maps between its two launches (`invertedResidual`). Then
// B[k][p] lies at ((k / VW) * ldb + p) * VW + k % VW (ldb = N), and each accumulator vector is one
// pixel's block of channels, stored whole (M a multiple of VW, no residual or store mask). With
// DEPTHWISE_AFTER too (depthwise_blocked.cl prepended), each work-item then runs a depthwise
// layer over the blocks it stored.
#ifdef B_BLOCKED
#define GP_B_PIXEL VW
#define GP_BT(t) b[(t) * VW]
#define GP_B_STEP(k) ((k) % VW == VW - 1 ? (long)ldb * VW - (VW - 1) : 1)
#else
#define GP_B_PIXEL 1
#define GP_BT(t) b[t]
#define GP_B_STEP(k) ldb
#endif

// B is read from
//   B + (bImage0 + z / G) * bStrideImage + g * bStrideGroup + (panel nb)
// as panels (each NR wide and K deep, NR floats a step), or, with B_ROWMAJOR defined, as a plain
// row-major matrix with ldb floats a step (an NCHW tensor's [C][H*W] planes: a 1x1 conv's input
// or a gradient, used where it lies, no packing) of bCount floats in all; or, with B_IMPLICIT
// defined, as the im2col matrix of a stride-1 convolution over a zero-padded input (planes of
// planeSize floats, rows of ldb): each window tap is then a row-major matrix at its own offset,
// and C's columns are the pixels of the padded grid, of which only the real ones are stored.
// Each work-item does blocksPerItem blocks of NR columns in turn (the A panel stays in cache),
// so that a short K loop still outweighs the cost of a work-group.
// Global (ceil(M/MR), ceil(ceil(N/NR) / blocksPerItem), Z), local (1, 1, 1).
__kernel void gemm_packed(__global const float* A, __global const float* B, __global float* C,
                          __global const float* bias, int hasBias, int M, int N, int K, int G,
                          int bImage0, int bStrideImage, int bStrideGroup, int ldb, int bCount,
                          int image0, int strideImage, int strideGroup, int ldc, int blocksPerItem, int planeSize, int outWidth,
                          int bOffset, int cOffset, int cRowStride, int cColStride, __global const float* storeMask,
                          __global const float* residual, __global const float* dwWeight, __global const float* dwBias,
                          __global float* dwOut, int dwH, int dwW, int dwOH, int dwOW) {
#ifdef GEMM_TRANSPOSED
    // C^T's block: TP columns (pixels p0 ...) by MR = NR rows (output channels m0 ..., the
    // lanes): per k, NV vectors of A's panel, TP broadcasts of B's row (a plain row-major [K][N]
    // matrix, ldb floats a row, N a multiple of TP) and TP * NV FMAs; each value is stored to
    // C[m][p] lane by lane (through STORE_MASK's backward where defined). For products with few
    // columns (7x7 maps: 49 = 7 x 7, where blocks of NR columns would compute 64), the channels
    // fill the vectors instead. Row bias only.
    // Global (ceil(M/MR), ceil((N/TP) / blocksPerItem), Z), local (1, 1, 1).
    const int mb = get_global_id(0), z = get_global_id(2);
    const int g = z % G;
    const int Mb = (M + MR - 1) / MR, m0 = mb * MR;
    __global const float* a0 = A + ((long)g * Mb + mb) * K * MR;
    __global const float* b0 = B + (long)(bImage0 + z / G) * bStrideImage + (long)g * bStrideGroup + bOffset;
    __global float* c0 = C + (long)(image0 + z / G) * strideImage + (long)g * strideGroup;
    const int pbEnd = min(N / TP, (int)(get_global_id(1) + 1) * blocksPerItem);
    for (int pb = get_global_id(1) * blocksPerItem; pb < pbEnd; ++pb) {
        const int p0 = pb * TP;
        __global const float* a = a0;
        __global const float* b = b0 + (long)p0 * GP_B_PIXEL;
        VFLOATP acc[TP][NV];
        #pragma unroll
        for (int t = 0; t < TP; ++t) {
            #pragma unroll
            for (int v = 0; v < NV; ++v) acc[t][v] = (VFLOATP)(0.0f);
        }
        for (int k = 0; k < K; ++k) {
            VFLOATP av[NV];
            #pragma unroll
            for (int v = 0; v < NV; ++v) av[v] = VLOADP(v, a);
            #pragma unroll
            for (int t = 0; t < TP; ++t) {
                const VFLOATP bt = (VFLOATP)(GP_BT(t));
                #pragma unroll
                for (int v = 0; v < NV; ++v) acc[t][v] = fma(bt, av[v], acc[t][v]);
            }
            a += MR;
            b += GP_B_STEP(k);
        }
        #pragma unroll
        for (int v = 0; v < NV; ++v) {
            const int m = m0 + VW * v;
            const VFLOATP shift = !hasBias ? (VFLOATP)(0.0f)
                : m + VW <= M ? VLOADP(0, bias + g * M + m) : gemm_packed_tail(bias + g * M + m, max(M - m, 0));
#ifdef C_BLOCKED
            // M is a multiple of VW: each vector is one pixel's block of VW channels (or past M,
            // in the last block of MR rows, stored nowhere).
            if (m >= M) continue;
            #pragma unroll
            for (int t = 0; t < TP; ++t) VSTOREP(FUSED_ACT(acc[t][v] + shift), 0, c0 + ((long)(m / VW) * N + p0 + t) * VW);
            continue;
#endif
            #pragma unroll
            for (int t = 0; t < TP; ++t) {
                float out[VW];
                VSTOREP(acc[t][v] + shift, 0, out);
                for (int j = 0; j < VW && m + j < M; ++j) {
                    const long at = (c0 - C) + (long)(m + j) * ldc + p0 + t;
                    C[at] = GP_STORE_MASK1(FUSED_ACT(out[j] + GP_RESIDUAL_AT(at)), storeMask[at]);
                }
            }
        }
    }
#ifdef DEPTHWISE_AFTER
    // C_BLOCKED, a work-item for all N columns: the depthwise layer over the channel blocks this
    // work-item has just stored (a dwH x dwW map; depthwise_blocked.cl, DWB = VW), into dwOut
    // [images][M / VW][dwOH][dwOW][VW].
    #pragma unroll
    for (int v = 0; v < NV; ++v) {
        const int m = m0 + VW * v;
        if (m >= M) break;
        depthwise_blocked_plane(c0 + (long)(m / VW) * N * VW,
                                dwOut + ((long)(image0 + z / G) * (M / VW) + m / VW) * dwOH * dwOW * VW,
                                dwWeight, dwBias, m / VW, dwH, dwW, dwOH, dwOW);
    }
#endif
#else
    const int mb = get_global_id(0), z = get_global_id(2);
    const int g = z % G;
    const int Mb = (M + MR - 1) / MR, Nb = (N + NR - 1) / NR;
    const int m0 = mb * MR;
    __global const float* a0 = A + ((long)g * Mb + mb) * K * MR;
    __global const float* b0 = B + (long)(bImage0 + z / G) * bStrideImage + (long)g * bStrideGroup + bOffset;
    __global float* c0 = C + (long)(image0 + z / G) * strideImage + (long)g * strideGroup + (long)m0 * ldc;
    const int nbEnd = min(Nb, (int)(get_global_id(1) + 1) * blocksPerItem);
    for (int nb = get_global_id(1) * blocksPerItem; nb < nbEnd; ++nb) {
        __global const float* a = a0;
        __global const float* b = b0;
        VFLOATP acc[MR][NV];
        #pragma unroll
        for (int r = 0; r < MR; ++r) {
            #pragma unroll
            for (int v = 0; v < NV; ++v) acc[r][v] = (VFLOATP)(0.0f);
        }
#ifdef B_ROWMAJOR
        // The last block of columns reads whole vectors too, past the row's end into the next
        // row: those lanes only reach columns of C >= N, which are never stored. Only rows whose
        // vectors would pass the end of the buffer (bCount floats) are read lane by lane.
        b += nb * NR;
        const int left = N - nb * NR;
        const long room = (long)bCount - (b - B) - NR;
        const int kFull = left >= NR ? K : (int)min((long)K, room < 0 ? 0 : room / ldb + 1);
        GEMM_PACKED_K_LOOP(kFull, GP_LOAD_FULL, ldb)
#define GP_LOAD_TAIL(v) gemm_packed_tail(b + VW * (v), left - VW * (v))
        GEMM_PACKED_K_LOOP(K - kFull, GP_LOAD_TAIL, ldb)
#elif defined(B_IMPLICIT)
        // B[(ci, ky, kx)][q] = xq[ci plane + phase plane (ky*DH % SH, kx*DW % SW) +
        // (ky*DH / SH) * ldb + kx*DW / SW + q]: a convolution's zero-padded input split into
        // SH x SW stride phases (pad_planes; one phase at stride 1), read in place, q running
        // over the phase grid [OH][ldb]: every tap of a strided window is a contiguous run there.
        b += nb * NR;
        const int phasePlane = planeSize / (SH * SW);
        for (int ci = 0; ci < K / (KH * KW); ++ci) {
            __global const float* bc = b + (long)ci * planeSize;
            #pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                #pragma unroll
                for (int kx = 0; kx < KW; ++kx) {
                    __global const float* bk = bc + ((ky * DH % SH) * SW + kx * DW % SW) * phasePlane
                                               + (ky * DH / SH) * ldb + kx * DW / SW;
#define GP_LOAD_TAP(v) VLOADP(v, bk)
                    GEMM_PACKED_K_LOOP(1, GP_LOAD_TAP, 0)
                }
            }
        }
#else
        b += (long)nb * K * NR;
        GEMM_PACKED_K_LOOP(K, GP_LOAD_FULL, NR)
#endif
        const int n0 = nb * NR;
#ifdef B_IMPLICIT
        // Columns are phase-grid pixels q = oy * ldb + ox; only ox < outWidth are outputs, stored
        // at cOffset + oy * cRowStride + ox * cColStride of their row of C (a dense [OH][OW]
        // map, or one stride phase of a larger one: the backward of a strided convolution).
        const int OWi = outWidth, OHi = N / ldb;
        __global float* c = c0 + cOffset;
#else
        __global float* c = c0 + n0;
#endif
#ifdef BIAS_COLUMNS
        if (hasBias) {
            #pragma unroll
            for (int v = 0; v < NV; ++v) {
                const int n = n0 + VW * v;
                const VFLOATP s = n + VW <= N ? VLOADP(0, bias + n) : gemm_packed_tail(bias + n, max(N - n, 0));
                #pragma unroll
                for (int r = 0; r < MR; ++r) acc[r][v] += s;
            }
        }
        const int rowBias = 0;
#else
        const int rowBias = hasBias;
#endif
#ifdef B_IMPLICIT
        #pragma unroll
        for (int v = 0; v < NV; ++v) {
            const int n = n0 + VW * v;
            const int oy0 = n / ldb, ox0 = n - oy0 * ldb;
            // Most vectors are one run of real outputs of a dense row: one vector store a row of
            // the block; the others (across a row's end or the grid's dropped columns, or a
            // strided store) go lane by lane.
            const bool run = cColStride == 1 && oy0 < OHi && ox0 + VW <= OWi;
            #pragma unroll
            for (int r = 0; r < MR; ++r) {
                if (m0 + r >= M) break;
                const VFLOATP value = acc[r][v] + (VFLOATP)(rowBias ? bias[g * M + m0 + r] : 0.0f);
                __global float* row = c + (long)r * ldc;
                if (run) {
                    const long at = (row - C) + oy0 * cRowStride + ox0;
                    VSTOREP(FUSED_ACT(value + GP_RESIDUAL(at)), 0, C + at);
                    continue;
                }
                float out[VW];
                VSTOREP(value, 0, out);
                int oy = oy0, ox = ox0;
                if (cColStride == 1) {
                    // The vector's lanes run over grid rows: each row's real outputs (ox < OWi)
                    // are one contiguous run of C, stored by fours and then one by one.
                    for (int j = 0; j < VW && oy < OHi; ++oy, ox = 0) {
                        const int len = min(VW - j, ldb - ox), real = max(0, min(len, OWi - ox));
                        const long at = (row - C) + oy * cRowStride + ox;
                        int l = 0;
                        for (; l + 4 <= real; l += 4) vstore4(FUSED_ACT(vload4(0, out + j + l) + GP_RESIDUAL4(at + l)), 0, C + at + l);
                        for (; l < real; ++l) C[at + l] = FUSED_ACT(out[j + l] + GP_RESIDUAL_AT(at + l));
                        j += len;
                    }
                    continue;
                }
                for (int j = 0; j < VW; ++j) {
                    if (ox < OWi && oy < OHi) {
                        const long at = (row - C) + oy * cRowStride + ox * cColStride;
                        C[at] = FUSED_ACT(out[j] + GP_RESIDUAL_AT(at));
                    }
                    if (++ox == ldb) { ox = 0; ++oy; }
                }
            }
        }
#else
        #pragma unroll
        for (int r = 0; r < MR; ++r) {
            if (m0 + r >= M) break;
            const VFLOATP shift = (VFLOATP)(rowBias ? bias[g * M + m0 + r] : 0.0f);
            __global float* row = c + (long)r * ldc;
            #pragma unroll
            for (int v = 0; v < NV; ++v) {
                const int n = n0 + VW * v;
                const long at = (row - C) + VW * v;
                if (n + VW <= N) {
                    VSTOREP(GP_STORE_MASK(FUSED_ACT(acc[r][v] + shift + GP_RESIDUAL(at)), VLOADP(0, storeMask + at)), 0, row + VW * v);
                } else if (n < N) {
                    float out[VW];
                    VSTOREP(GP_STORE_MASK(FUSED_ACT(acc[r][v] + shift + GP_RESIDUAL_TAIL(at, N - n)), gemm_packed_tail(storeMask + at, N - n)),
                            0, out);
                    for (int j = 0; j < N - n; ++j) row[VW * v + j] = out[j];
                }
            }
        }
#endif
    }
#endif
}

// A[g][mb][k][r] = src[g * sg + m * sm + (k / window) * sk + window - 1 - k % window] for
// m = mb * MR + r < M, else 0: a plain strided matrix for window 1, and with window KH*KW the
// window reversed, as a transposed convolution's weights need. Global (K, ceil(M/MR), G).
__kernel void pack_a(__global const float* src, __global float* A, int M, int K, int sg, int sm, int sk, int window) {
    const int k = get_global_id(0), mb = get_global_id(1), g = get_global_id(2);
    if (k >= K) return;
    const int Mb = (M + MR - 1) / MR;
    const int outer = k / window, inner = window - 1 - (k - outer * window);
    __global float* dst = A + (((long)g * Mb + mb) * K + k) * MR;
    #pragma unroll
    for (int r = 0; r < MR; ++r) {
        const int m = mb * MR + r;
        dst[r] = m < M ? src[(long)g * sg + (long)m * sm + (long)outer * sk + inner] : 0.0f;
    }
}

// The A panels of one stride phase of a strided convolution's backward to the input:
// A[g][mb][k][r] = w[g * Cog + co][m][ky0 + (TY - 1 - ty) * stepY][kx0 + (TX - 1 - tx) * stepX]
// for k = (co * TY + ty) * TX + tx and m = mb * MR + r < M (= Cin / G), else 0: the window taps
// that reach this phase, reversed (w is [Cout][Cin/G][KHf][KWf]). Global (K, ceil(M/MR), G).
__kernel void pack_a_phase(__global const float* w, __global float* A, int M, int K, int KHf, int KWf,
                           int ky0, int kx0, int TY, int TX, int stepY, int stepX) {
    const int k = get_global_id(0), mb = get_global_id(1), g = get_global_id(2);
    if (k >= K) return;
    const int Mb = (M + MR - 1) / MR, taps = TY * TX, cog = K / taps;
    const int co = k / taps, t = k - co * taps, ty = t / TX, tx = t - ty * TX;
    const int ky = ky0 + (TY - 1 - ty) * stepY, kx = kx0 + (TX - 1 - tx) * stepX;
    __global const float* src = w + ((long)(g * cog + co) * M * KHf + ky) * KWf + kx;
    __global float* dst = A + (((long)g * Mb + mb) * K + k) * MR;
    #pragma unroll
    for (int r = 0; r < MR; ++r) {
        const int m = mb * MR + r;
        dst[r] = m < M ? src[(long)m * KHf * KWf] : 0.0f;
    }
}

// The A panels of a strided convolution's backward to the input with its stride phases stacked:
// row m = (ry * SWs + rx) * M1 + c (phase (ry, rx) of input channel c of the group, M = SHs *
// SWs * M1 rows), column k = (co * TY + ty) * TX + tx (gy tap (ty, tx) of a TY x TX window from
// offset (uy0, ux0)): x[SHs * qy + ry] receives w[..][ky] gy[qy + u] for u = (ry + PHs - ky *
// DHs) / SHs, so A holds w[g * Cog + co][c][ky][kx] with ky = (ry + PHs - SHs * (uy0 + ty)) / DHs
// where that is whole and inside the window (likewise kx), else 0. Global (K, ceil(M/MR), G).
__kernel void pack_a_stacked(__global const float* w, __global float* A, int M, int M1, int K, int KHf, int KWf, int SHs, int SWs,
                             int PHs, int PWs, int DHs, int DWs, int TY, int TX, int uy0, int ux0) {
    const int k = get_global_id(0), mb = get_global_id(1), g = get_global_id(2);
    if (k >= K) return;
    const int Mb = (M + MR - 1) / MR, taps = TY * TX, cog = K / taps;
    const int co = k / taps, t = k - co * taps, ty = t / TX, tx = t - ty * TX;
    __global float* dst = A + (((long)g * Mb + mb) * K + k) * MR;
    #pragma unroll
    for (int r = 0; r < MR; ++r) {
        const int m = mb * MR + r, phase = m / M1, c = m - phase * M1, ry = phase / SWs, rx = phase - ry * SWs;
        const int ny = ry + PHs - SHs * (uy0 + ty), nx = rx + PWs - SWs * (ux0 + tx);
        const int ky = ny / DHs, kx = nx / DWs;
        const bool tap = m < M && ny % DHs == 0 && nx % DWs == 0 && ky >= 0 && ky < KHf && kx >= 0 && kx < KWf;
        dst[r] = tap ? w[(((long)(g * cog + co) * M1 + c) * KHf + ky) * KWf + kx] : 0.0f;
    }
}

// gx[n0 + z][g * Cig + c][SHs * qy + ry][SWs * qx + rx] = P[z][g][(ry * SWs + rx) * Cig + c][qy][qx]:
// the stacked phases' product (P: [Z][G][SHs * SWs * Cig][QH][QW]) back into the input's pixels.
// One work-item per row of gx. Global (H * Z * Cin).
__kernel void merge_phases(__global const float* P, __global float* gx, int n0, int Cin, int H, int W, int QH, int QW, int SHs,
                           int SWs, int G) {
    const int row = get_global_id(0), iy = row % H, zc = row / H, z = zc / Cin, ch = zc - z * Cin;
    const int Cig = Cin / G, g = ch / Cig, c = ch - g * Cig, ry = iy % SHs, qy = iy / SHs;
    __global const float* src = P + (((long)z * G + g) * SHs * SWs * Cig + ry * SWs * Cig + c) * QH * QW + (long)qy * QW;
    __global float* dst = gx + (((long)(n0 + z) * Cin + ch) * H + iy) * W;
    const long phaseStride = (long)Cig * QH * QW;
    for (int ix = 0; ix < W; ++ix) {
        const int rx = ix % SWs;
        dst[ix] = src[rx * phaseStride + ix / SWs];
    }
}

// B[z][nb][k][j] = im2col(x)[k][n] for n = nb * NR + j < N (output pixel n = oy * OW + ox of
// image z0 + z / G, group z % G; k = (ci, ky, kx)), and 0 for n >= N. One work-item per (k, z)
// copies, row by row, a run of one input row (or zeros) into consecutive panel lanes, jumping to
// the next panel every NR pixels: no division per element, and one work-item per group, so PoCL
// does not turn the copy into gathers and scatters across work-items.
// Global (K, Z), local (1, 1).
__kernel void pack_b_im2col(__global const float* x, __global float* B, int z0, int Cin, int H, int W, int OH, int OW,
                            int G, int N, int K, int kh_, int kw_, int sh_, int sw_, int ph_, int pw_, int dh_, int dw_) {
    const int k = get_global_id(0), z = get_global_id(1);
    if (k >= K) return;
    const int Nb = (N + NR - 1) / NR;
    const int Cig = Cin / G;
    const int ci = k / (KH * KW), rk = k - ci * KH * KW;
    const int ky = rk / KW, kx = rk - ky * KW;
    const int n = z0 + z / G, g = z % G;
    __global const float* plane = x + ((long)n * Cin + g * Cig + ci) * H * W;
    __global float* dst = B + (long)z * Nb * K * NR + (long)k * NR;
    const int ixBase = kx * DW - PW;
    // Output columns whose input column is inside: ox in [oxLo, oxHi).
    const int oxLo = min(OW, max(0, (-ixBase + SW - 1) / SW));
    const int oxHi = max(oxLo, min(OW, (W - ixBase + SW - 1) / SW));
    int j = 0;
    for (int oy = 0; oy < OH; ++oy) {
        const int iy = oy * SH - PH + ky * DH;
        const bool rowInside = iy >= 0 && iy < H;
        __global const float* src = plane + (long)(rowInside ? iy : 0) * W + ixBase;
        for (int ox = 0; ox < OW; ++ox) {
            dst[j] = (rowInside && ox >= oxLo && ox < oxHi) ? src[ox * SW] : 0.0f;
            if (++j == NR) { j = 0; dst += (long)K * NR; }
        }
    }
    for (; j != 0 && j < NR; ++j) dst[j] = 0.0f;
}

// gx[n, g*Cig + ci, iy, ix] = sum_{ky, kx} cols[z][(ci, ky, kx)][oy * OW + ox] over the window
// offsets whose output pixel oy = (iy + PH - ky*DH) / SH, ox likewise, is whole and in range;
// cols is [Z][Cig * KH * KW][OH * OW] for images n0 + z / G. Global (W, H, Z * Cig).
__kernel void col2im(__global const float* cols, __global float* gx, int n0, int Cin, int H, int W, int OH, int OW, int G,
                     int kh_, int kw_, int sh_, int sw_, int ph_, int pw_, int dh_, int dw_) {
    const int ix = get_global_id(0), iy = get_global_id(1);
    if (ix >= W || iy >= H) return;
    const int Cig = Cin / G;
    const int zc = get_global_id(2), z = zc / Cig, ci = zc - z * Cig;
    const int n = n0 + z / G, g = z % G;
    __global const float* src = cols + ((long)z * Cig + ci) * KH * KW * OH * OW;
    float sum = 0.0f;
    #pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        const int ty = iy + PH - ky * DH;
        if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
        #pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
            const int tx = ix + PW - kx * DW;
            if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
            sum += src[((long)(ky * KW + kx) * OH + ty / SH) * OW + tx / SW];
        }
    }
    gx[(((long)n * Cin + g * Cig + ci) * H + iy) * W + ix] = sum;
}

// xq[nc][phase][y'][x'] = xp[nc][y' * sh + phase / sw][x' * sw + phase % sw], where
// xp[nc][y][x] = x[firstPlane + nc][y - padH][x - padW] inside and 0 in the border: the
// zero-padded input split into sh x sw stride phases of Hq x Wq (one phase, the padded planes,
// at stride 1), which gemm_packed reads in place with B_IMPLICIT (and winograd.cl's input
// transform). `phases` is sh * sw, or 1 to keep only phase 0 (a 1x1 strided window reads
// nothing else). One work-item copies one phase plane row by row (contiguous writes, reads sw
// floats apart), so PoCL does not turn the copy into gathers across work-items.
// With GRAD_MASK defined, x is the gradient of a fused activation's output and each value is
// first put through that activation's backward (act_grad1 of activation.cl, kind GRAD_KIND, rule
// GRAD_RULE) with its mask read from `mask`, the activation's output (x's shape): a convolution's
// backward with the activation's folded into the copy it makes of gy anyway.
// Global (Nb*C*phases), local (1).
__kernel void pad_planes(__global const float* x, __global float* xq, int H, int W, int Hq, int Wq, int padH, int padW,
                         int sh, int sw, int phases, int firstPlane, __global const float* mask) {
    const int z = get_global_id(0);
    const int nc = z / phases, phase = z - nc * phases;
    const int py = phase / sw, px = phase - py * sw;
    // Phase columns whose input column is inside: qx in [lo, hi).
    const int ix0 = px - padW;
    const int lo = min(Wq, max(0, (-ix0 + sw - 1) / sw)), hi = max(lo, min(Wq, (W - ix0 + sw - 1) / sw));
    __global float* dst = xq + (long)z * Hq * Wq;
    for (int qy = 0; qy < Hq; ++qy, dst += Wq) {
        const int iy = qy * sh + py - padH;
        if (iy < 0 || iy >= H) {
            for (int qx = 0; qx < Wq; ++qx) dst[qx] = 0.0f;
            continue;
        }
        const long row = ((long)(firstPlane + nc) * H + iy) * W + ix0;
        __global const float* src = x + row;
        for (int qx = 0; qx < lo; ++qx) dst[qx] = 0.0f;
#ifdef GRAD_MASK
        __global const float* y = mask + row;
        for (int qx = lo; qx < hi; ++qx) dst[qx] = act_grad1(src[qx * sw], y[qx * sw], GRAD_KIND, GRAD_RULE);
#else
        int qx = lo;
        // At stride 2, eight of a phase's columns from one vector of 16 while it stays in the row.
        if (sw == 2)
            for (; qx + 8 <= hi && ix0 + 2 * qx + 16 <= W; qx += 8) vstore8(vload16(0, src + 2 * qx).even, 0, dst + qx);
        for (; qx < hi; ++qx) dst[qx] = src[qx * sw];
#endif
        for (int qx = hi; qx < Wq; ++qx) dst[qx] = 0.0f;
    }
}
