// Winograd convolution F(m x m, 3x3), m = WM (2 or 4, defined by the host), for CPU OpenCL
// devices (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): every m x m
// block of outputs of a 3x3, stride-1 window is
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// over its ALPHA x ALPHA input tile d (ALPHA = m + 2), with, for F(2x2, 3x3),
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1],
// and for F(4x4, 3x3) (interpolation points 0, 1, -1, 2, -2 and infinity)
//   B^T = [4  0 -5  0  1  0;      G = [ 1/4     0     0;      A^T = [1  1  1  1  1  0;
//          0 -4 -4  1  1  0;            -1/6  -1/6  -1/6;             0  1 -1  2 -2  0;
//          0  4 -4 -1  1  0;            -1/6   1/6  -1/6;             0  1  1  4  4  0;
//          0 -2 -1  2  1  0;             1/24  1/12  1/6;             0  1 -1  8 -8  1].
//          0  2 -1 -2  1  0;             1/24 -1/12  1/6;
//          0  4  0 -5  0  1],            0     0     1  ],
// Summed over the input channels, the ALPHA^2 elementwise products become ALPHA^2 matrix products
//   M[xi] (Cout x tiles) = U[xi] (Cout x Cin) V[xi] (Cin x tiles),   xi = ALPHA i + j,
// which gemm_packed.cl runs with the positions as its groups: 16 multiplies per 4 outputs and
// channel pair (F(2x2): 2.25x fewer than the direct sum's 36) or 36 per 16 (F(4x4): 4x fewer),
// for a transform of the input (4x or 2.25x its size) and of the products. F(2x2)'s transforms
// use only additions and halvings, so results stay within a few rounding errors of the direct
// sum; F(4x4)'s coefficients grow to 8 and its weights' transform divides by 24, about three
// times the error (the host uses it where that error reroutes nothing: see
// OpenCLBackend+Winograd.swift).
//
// Layouts: U as gemm_packed's A panels [ALPHA^2][ceil(M/MR)][K][MR]; V as its B panels
// [ALPHA^2][ceil(T/NR)][C][NR] and M row-major [ALPHA^2][Cout][T], over the chunk's T columns
// t' = z * rows * TWp + (ty - ty0) * TWp + tx: the tiles of a band of `rows` tile rows from ty0
// of each image of the chunk (TH x TW tiles an image, each row padded to TWp; large maps go a
// band of one image at a time, so that V and M stay in cache between the transforms and the
// product). The positions' matrices of V and M lie xiStride floats apart (the host skews it off
// a multiple of 4 KB, so a step's ALPHA^2 stores do not share one L1 set). The images of a chunk
// share one product per position, so that an A panel serves all their columns. Each work-item
// of the transforms takes one plane's band, a vector of VT tiles at a time.

#if !defined(WM) || (WM != 2 && WM != 4)
#error "winograd.cl needs WM, the output tile's size: 2 or 4"
#endif
#define ALPHA (WM + 2)

#ifndef MR
#define MR 6
#endif

// G's rows applied to a window's three values a, b, c (a column, then a row): out[0 .. ALPHA).
#if WM == 4
#define WINOGRAD_G(a, b, c, out) \
    do { \
        out[0] = (a) / 4.0f; \
        out[1] = -((a) + (b) + (c)) / 6.0f; \
        out[2] = -((a) - (b) + (c)) / 6.0f; \
        out[3] = (a) / 24.0f + (b) / 12.0f + (c) / 6.0f; \
        out[4] = (a) / 24.0f - (b) / 12.0f + (c) / 6.0f; \
        out[5] = (c); \
    } while (0)
#else
#define WINOGRAD_G(a, b, c, out) \
    do { \
        out[0] = (a); \
        out[1] = 0.5f * ((a) + (b) + (c)); \
        out[2] = 0.5f * ((a) - (b) + (c)); \
        out[3] = (c); \
    } while (0)
#endif

// U[xi][m][k] = (G g G^T)[xi] for g = the 3x3 window at w + m * sm + k * sk (taps ky * 3 + kx;
// with `flip`, the window reversed: a transposed convolution's, the backward to the input),
// written as A panels: A[xi][mb][k][r] for m = mb * MR + r (0 for m >= M). A work-item takes one
// block of MR rows, WINOGRAD_PACK_K values of k at a time: their ALPHA^2 transforms go to
// private memory first, then each position's run of WINOGRAD_PACK_K * MR floats is stored
// whole, and the loops are unrolled so that g, q and u stay in registers. (A work-item per k,
// storing each value as it was made into ALPHA^2 panels a multiple of 4 KB apart, in
// work-groups along k that PoCL turned into gathers and scatters, took 3x the time: ResNet18's
// transforms 0.3 s of CPU time per process.) Global (ceil(M/MR)), local (1).
#define WINOGRAD_PACK_K 8
__kernel void winograd_pack_a(__global const float* w, __global float* A, int M, int K, int sm, int sk, int flip) {
    const int mb = get_global_id(0);
    const int Mb = (M + MR - 1) / MR;
    float run[WINOGRAD_PACK_K * MR][ALPHA * ALPHA];
    for (int k0 = 0; k0 < K; k0 += WINOGRAD_PACK_K) {
        const int kn = min(WINOGRAD_PACK_K, K - k0);
        for (int kk = 0; kk < kn; ++kk) {
            for (int r = 0; r < MR; ++r) {
                const int m = mb * MR + r;
                __global const float* p = w + (long)m * sm + (long)(k0 + kk) * sk;
                float g[9];
                #pragma unroll
                for (int t = 0; t < 9; ++t) g[t] = m < M ? p[t] : 0.0f;
                if (flip) {
                    #pragma unroll
                    for (int t = 0; t < 4; ++t) { const float v = g[t]; g[t] = g[8 - t]; g[8 - t] = v; }
                }
                // q = G g (ALPHA x 3), then u = q G^T (ALPHA x ALPHA).
                float q[ALPHA][3];
                #pragma unroll
                for (int j = 0; j < 3; ++j) {
                    float column[ALPHA];
                    WINOGRAD_G(g[j], g[3 + j], g[6 + j], column);
                    #pragma unroll
                    for (int i = 0; i < ALPHA; ++i) q[i][j] = column[i];
                }
                #pragma unroll
                for (int i = 0; i < ALPHA; ++i) {
                    float u[ALPHA];
                    WINOGRAD_G(q[i][0], q[i][1], q[i][2], u);
                    #pragma unroll
                    for (int j = 0; j < ALPHA; ++j) run[kk * MR + r][i * ALPHA + j] = u[j];
                }
            }
        }
        for (int xi = 0; xi < ALPHA * ALPHA; ++xi) {
            __global float* dst = A + (((long)xi * Mb + mb) * K + k0) * MR;
            for (int e = 0; e < kn * MR; ++e) dst[e] = run[e][xi];
        }
    }
}

// The transforms, built when the host defines VT, tiles of a tile row per vector (F(2x2): 4 or
// 8, F(4x4): 2, 4 or 8, chosen by the host to pad TW little; V and M hold TWp = TW rounded up to
// VT tiles a row, so every load and store is a whole vector), and WNR, gemm_packed's NR. The
// weights' program (pack_a alone) defines neither.
#ifdef VT
#if VT == 8
#define VTF float8
#define VT2F float16
#define VLOADT2 vload16
#define VLOADT vload8
#define VSTORET vstore8
#elif VT == 4
#define VTF float4
#define VT2F float8
#define VLOADT2 vload8
#define VLOADT vload4
#define VSTORET vstore4
#else
#define VTF float2
#define VT2F float4
#define VLOADT2 vload4
#define VLOADT vload2
#define VSTORET vstore2
#endif

#if WM == 4
// d[c] = columns 4 tx + c (c = 0..5) of one input row for the VT tiles from tx0, p = the row at
// column 4 tx0: every fourth float, read as whole vectors.
inline void winograd_row(__global const float* p, VTF d[6]) {
#if VT == 8
    const float16 a = vload16(0, p), b = vload16(0, p + 16), c = vload16(0, p + 4), e = vload16(0, p + 20);
    d[0] = (float8)(a.s048c, b.s048c);
    d[1] = (float8)(a.s159d, b.s159d);
    d[2] = (float8)(a.s26ae, b.s26ae);
    d[3] = (float8)(a.s37bf, b.s37bf);
    d[4] = (float8)(c.s048c, e.s048c);
    d[5] = (float8)(c.s159d, e.s159d);
#else
    // Every fourth float of two vectors four apart: lanes 0, 4, 8, 12 (VT 4) or 0, 4 (VT 2) from
    // offsets 0 to 3 of the first, 0 and 1 of the second.
#if VT == 4
#define WINOGRAD_ROW_T float16
#define WINOGRAD_ROW_LOAD vload16
#define WINOGRAD_L0 s048c
#define WINOGRAD_L1 s159d
#define WINOGRAD_L2 s26ae
#define WINOGRAD_L3 s37bf
#else
#define WINOGRAD_ROW_T float8
#define WINOGRAD_ROW_LOAD vload8
#define WINOGRAD_L0 s04
#define WINOGRAD_L1 s15
#define WINOGRAD_L2 s26
#define WINOGRAD_L3 s37
#endif
    const WINOGRAD_ROW_T a = WINOGRAD_ROW_LOAD(0, p), c = WINOGRAD_ROW_LOAD(0, p + 4);
    d[0] = a.WINOGRAD_L0;
    d[1] = a.WINOGRAD_L1;
    d[2] = a.WINOGRAD_L2;
    d[3] = a.WINOGRAD_L3;
    d[4] = c.WINOGRAD_L0;
    d[5] = c.WINOGRAD_L1;
#endif
}

// B^T's rows applied to six values: out[i] = sum_r B^T[i][r] x[r].
#define WINOGRAD_BT(x, out) \
    do { \
        out[0] = 4.0f * x[0] - 5.0f * x[2] + x[4]; \
        out[1] = x[3] + x[4] - 4.0f * (x[1] + x[2]); \
        out[2] = x[4] - x[3] + 4.0f * (x[1] - x[2]); \
        out[3] = x[4] - x[2] + 2.0f * (x[3] - x[1]); \
        out[4] = x[4] - x[2] - 2.0f * (x[3] - x[1]); \
        out[5] = 4.0f * x[1] - 5.0f * x[3] + x[5]; \
    } while (0)

// A^T's rows applied to six values: out[i] = sum_r A^T[i][r] x[r].
#define WINOGRAD_AT(x, out) \
    do { \
        const VTF p1 = x[1] + x[2], m1 = x[1] - x[2], p2 = x[3] + x[4], m2 = x[3] - x[4]; \
        out[0] = x[0] + p1 + p2; \
        out[1] = m1 + 2.0f * m2; \
        out[2] = p1 + 4.0f * p2; \
        out[3] = m1 + 8.0f * m2 + x[5]; \
    } while (0)

// Columns of the padded input past the last tile's: the VT = 8 row reads 20 + 16 floats from 4 tx0.
#define WINOGRAD_EXTRA 4
#else
// d[c] = columns 2 tx + c (c = 0..3) of one input row for the VT tiles from tx0, p = the row at
// column 2 tx0: the even and odd floats of two vectors two apart.
inline void winograd_row(__global const float* p, VTF d[4]) {
    const VT2F a = VLOADT2(0, p), b = VLOADT2(0, p + 2);
    d[0] = a.even;
    d[1] = a.odd;
    d[2] = b.even;
    d[3] = b.odd;
}

// B^T's rows applied to four values.
#define WINOGRAD_BT(x, out) \
    do { \
        out[0] = x[0] - x[2]; \
        out[1] = x[1] + x[2]; \
        out[2] = x[2] - x[1]; \
        out[3] = x[1] - x[3]; \
    } while (0)

// Two vectors of VT outputs, the even and the odd columns, as one row of 2 VT.
#if VT == 8
#define WINOGRAD_INTERLEAVE(e, o) shuffle2((e), (o), (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15))
#define WINOGRAD_VSTORE2 vstore16
#else
#define WINOGRAD_INTERLEAVE(e, o) shuffle2((e), (o), (uint8)(0, 4, 1, 5, 2, 6, 3, 7))
#define WINOGRAD_VSTORE2 vstore8
#endif

// A^T's rows applied to four values.
#define WINOGRAD_AT(x, out) \
    do { \
        out[0] = x[0] + x[1] + x[2]; \
        out[1] = x[1] - x[2] - x[3]; \
    } while (0)

// Columns of the padded input past the last tile's: the row reads 2 + 2 VT floats from 2 tx0.
#define WINOGRAD_EXTRA 2
#endif

// V = (B^T d B)[xi] for the ALPHA x ALPHA tile d at rows WM ty.., columns WM tx.. of plane
// z * C + c of xq, stored as gemm_packed's B panels of the chunk's columns t' = z * rows * TWp +
// (ty - ty0) * TWp + tx: V[xi * xiStride + (t' / NR) C NR + c NR + t' % NR] (NR = WNR, a
// multiple of VT, so no vector crosses a panel). xq is the input zero-padded (pad_planes) to
// Hq = WM TH + 2 rows of Wq = WM TWp + WINOGRAD_EXTRA, so that every tile row reads whole
// vectors with no bounds to check (tiles past TW read the padding's zeros, and their products
// are never stored). One work-item takes one plane's band of `rows` tile rows from ty0, VT
// tiles (one vector per tile position) at a time, and planesPerItem planes in turn (small maps:
// a work-group costs about as much as a few tiles). Global (ceil(Z * C / planesPerItem)), local (1).
__kernel void winograd_input(__global const float* xq, __global float* V, int xiStride, int C, int TH, int TWp, int ty0, int rows,
                             int planes, int planesPerItem) {
    const int Wq = WM * TWp + WINOGRAD_EXTRA;
    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);
    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {
        const int z = zc / C, c = zc - z * C;
        __global const float* src = xq + ((long)zc * (WM * TH + 2) + WM * ty0) * Wq;
        for (int r = 0; r < rows; ++r, src += WM * Wq) {
            const int t0 = (z * rows + r) * TWp;
            for (int tx0 = 0; tx0 < TWp; tx0 += VT) {
                // t = B^T d (each column of the tile's rows combined), then each row of t times B.
                // (This order of the additions is the one the PyTorch fixtures were passed with:
                // the other moves some activations by a rounding error, enough to flip a ReLU
                // in GoogLeNet's fused pass.)
                VTF d[ALPHA][ALPHA], t[ALPHA][ALPHA];
                #pragma unroll
                for (int i = 0; i < ALPHA; ++i) winograd_row(src + i * Wq + WM * tx0, d[i]);
                #pragma unroll
                for (int j = 0; j < ALPHA; ++j) {
                    VTF x[ALPHA], b[ALPHA];
                    #pragma unroll
                    for (int i = 0; i < ALPHA; ++i) x[i] = d[i][j];
                    WINOGRAD_BT(x, b);
                    #pragma unroll
                    for (int i = 0; i < ALPHA; ++i) t[i][j] = b[i];
                }
                const int tc = t0 + tx0;
                __global float* v0 = V + ((long)(tc / WNR) * C + c) * WNR + tc % WNR;
                #pragma unroll
                for (int i = 0; i < ALPHA; ++i) {
                    VTF v[ALPHA];
                    WINOGRAD_BT(t[i], v);
                    #pragma unroll
                    for (int j = 0; j < ALPHA; ++j) VSTORET(v[j], 0, v0 + (long)(i * ALPHA + j) * xiStride);
                }
            }
        }
    }
}

// With RESIDUAL defined, `residual` (y's layout) is added before the activation: a residual
// block's sum in the store (as gemm_packed.cl's RESIDUAL).
#ifdef RESIDUAL
#define WINOGRAD_RESIDUAL2(offset) VLOADT2(0, residual + (offset))
#define WINOGRAD_RESIDUAL4(offset) vload4(0, residual + (offset))
#define WINOGRAD_RESIDUAL1(offset) residual[offset]
#else
#define WINOGRAD_RESIDUAL2(offset) ((VT2F)(0.0f))
#define WINOGRAD_RESIDUAL4(offset) ((float4)(0.0f))
#define WINOGRAD_RESIDUAL1(offset) 0.0f
#endif

// y[image0 + z][co][WM ty + i][WM tx + j] = act((A^T M A)[i][j] + bias[co] (+ residual)) for the outputs
// inside OH x OW, from the products M[xi * xiStride + co T + t'] of a chunk's band (t' as for
// V). One work-item takes one output plane's band, planesPerItem planes in turn. FUSED_ACT: conv_geometry.cl.
// Global (ceil(Z * Cout / planesPerItem)), local (1).
__kernel void winograd_output(__global const float* Mx, int xiStride, __global float* y, __global const float* bias, int hasBias,
                              int image0, int Cout, int OH, int OW, int TWp, int ty0, int rows, int planes, int planesPerItem,
                              __global const float* residual) {
    const long T = (long)planes / Cout * rows * TWp;
    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);
    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {
        const int z = zc / Cout, co = zc - z * Cout;
        __global const float* m0 = Mx + (long)co * T + (long)z * rows * TWp;
        __global float* out = y + ((long)(image0 + z) * Cout + co) * OH * OW;
        const VTF shift = (VTF)(hasBias ? bias[co] : 0.0f);
        for (int r = 0; r < rows; ++r, m0 += TWp) {
            const int ty = ty0 + r;
            for (int tx0 = 0; tx0 < TWp && WM * tx0 < OW; tx0 += VT) {
                // s[i][j] = (A^T M)[i][j], then each output row i is s[i] A.
                VTF s[WM][ALPHA];
                #pragma unroll
                for (int j = 0; j < ALPHA; ++j) {
                    VTF m[ALPHA], a[WM];
                    #pragma unroll
                    for (int i = 0; i < ALPHA; ++i) m[i] = VLOADT(0, m0 + (long)(i * ALPHA + j) * xiStride + tx0);
                    WINOGRAD_AT(m, a);
                    #pragma unroll
                    for (int i = 0; i < WM; ++i) s[i][j] = a[i];
                }
                const int ox0 = WM * tx0, n = min(WM * VT, OW - ox0);
                #pragma unroll
                for (int i = 0; i < WM; ++i) {
                    const int oy = WM * ty + i;
                    if (oy >= OH) break;
                    __global float* dst = out + (long)oy * OW + ox0;
#if WM == 2
                    // Output columns 2 l and 2 l + 1: lane l of the even and the odd vector.
                    const VTF even = s[i][0] + s[i][1] + s[i][2] + shift;
                    const VTF odd = s[i][1] - s[i][2] - s[i][3] + shift;
                    const VT2F row = WINOGRAD_INTERLEAVE(even, odd);
                    if (n == 2 * VT) {
                        WINOGRAD_VSTORE2(FUSED_ACT(row + WINOGRAD_RESIDUAL2(dst - y)), 0, dst);
                        continue;
                    }
                    float lanes[2 * VT];
                    WINOGRAD_VSTORE2(row, 0, lanes);
#else
                    // Output column 4 l + j: lane l of o[j].
                    VTF o[4];
                    WINOGRAD_AT(s[i], o);
                    float lanes[4 * VT];
                    #pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const VTF value = o[j] + shift;
                        #pragma unroll
                        for (int l = 0; l < VT; ++l) lanes[4 * l + j] = value[l];
                    }
#endif
                    // By fours, then the row's last outputs one by one.
                    int l = 0;
                    for (; l + 4 <= n; l += 4) vstore4(FUSED_ACT(vload4(0, lanes + l) + WINOGRAD_RESIDUAL4(dst - y + l)), 0, dst + l);
                    for (; l < n; ++l) dst[l] = FUSED_ACT(lanes[l] + WINOGRAD_RESIDUAL1(dst - y + l));
                }
            }
        }
    }
}
#endif
