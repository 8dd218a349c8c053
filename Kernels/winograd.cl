// Winograd F(4x4, 3x3) convolution for CPU OpenCL devices (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): every 4x4 block of outputs of a 3x3, stride-1 window is
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// over its 6x6 input tile d (interpolation points 0, 1, -1, 2, -2 and infinity), with
//   B^T = [4  0 -5  0  1  0;      G = [ 1/4     0     0;      A^T = [1  1  1  1  1  0;
//          0 -4 -4  1  1  0;            -1/6  -1/6  -1/6;             0  1 -1  2 -2  0;
//          0  4 -4 -1  1  0;            -1/6   1/6  -1/6;             0  1  1  4  4  0;
//          0 -2 -1  2  1  0;             1/24  1/12  1/6;             0  1 -1  8 -8  1].
//          0  2 -1 -2  1  0;             1/24 -1/12  1/6;
//          0  4  0 -5  0  1],            0     0     1  ],
// Summed over the input channels, the 36 elementwise products become 36 matrix products
//   M[xi] (Cout x tiles) = U[xi] (Cout x Cin) V[xi] (Cin x tiles),   xi = 6 i + j,
// which gemm_packed.cl runs with the 36 positions as its groups: 36 multiplies per 16 outputs
// and channel pair instead of 144 (4x fewer), for a transform of the input (2.25x its size) and
// of the products. The transforms' coefficients are small integers and the weights' transform
// divides by 4, 6, 12 and 24, so results stay within about ten rounding errors of the direct sum
// (the device-vs-CPU and PyTorch tests hold their tolerances).
//
// Layouts: U as gemm_packed's A panels [36][ceil(M/MR)][K][MR]; V as its B panels
// [36][ceil(T/NR)][C][NR] and M row-major [36][Cout][T], over the chunk's T columns
// t' = z * rows * TWp + (ty - ty0) * TWp + tx: the tiles of a band of `rows` tile rows from ty0
// of each image of the chunk (TH x TW tiles an image, each row padded to TWp; large maps go a
// band of one image at a time, so that V and M stay in cache between the transforms and the
// product). The images of a chunk share one product per position, so that an A panel serves all
// their columns. Each work-item of the transforms takes one plane's band, a vector of VT tiles at
// a time.

#ifndef MR
#define MR 6
#endif

// U[xi][m][k] = (G g G^T)[xi] for g = the 3x3 window at w + m * sm + k * sk (taps ky * 3 + kx;
// with `flip`, the window reversed: a transposed convolution's, the backward to the input),
// written as A panels: A[xi][mb][k][r] for m = mb * MR + r (0 for m >= M).
// Global (K, ceil(M/MR)).
__kernel void winograd_pack_a(__global const float* w, __global float* A, int M, int K, int sm, int sk, int flip) {
    const int k = get_global_id(0), mb = get_global_id(1);
    if (k >= K) return;
    const int Mb = (M + MR - 1) / MR;
    for (int r = 0; r < MR; ++r) {
        const int m = mb * MR + r;
        float g[9];
        for (int t = 0; t < 9; ++t) g[t] = m < M ? w[(long)m * sm + (long)k * sk + (flip ? 8 - t : t)] : 0.0f;
        // q = G g (6 x 3), then u = q G^T (6 x 6), G's rows applied to three values at a time.
        float q[6][3];
        for (int j = 0; j < 3; ++j) {
            const float a = g[j], b = g[3 + j], c = g[6 + j];
            q[0][j] = a / 4.0f;
            q[1][j] = -(a + b + c) / 6.0f;
            q[2][j] = -(a - b + c) / 6.0f;
            q[3][j] = a / 24.0f + b / 12.0f + c / 6.0f;
            q[4][j] = a / 24.0f - b / 12.0f + c / 6.0f;
            q[5][j] = c;
        }
        for (int i = 0; i < 6; ++i) {
            const float a = q[i][0], b = q[i][1], c = q[i][2];
            const float u[6] = {a / 4.0f, -(a + b + c) / 6.0f, -(a - b + c) / 6.0f, a / 24.0f + b / 12.0f + c / 6.0f,
                                a / 24.0f - b / 12.0f + c / 6.0f, c};
            for (int j = 0; j < 6; ++j) A[(((long)(i * 6 + j) * Mb + mb) * K + k) * MR + r] = u[j];
        }
    }
}

// VT tiles of a tile row per vector (2, 4 or 8: the host picks the widest that pads TW little);
// V and M hold TWp = TW rounded up to VT tiles a row, so every load and store is a whole vector.
#ifndef VT
#define VT 8
#endif
// gemm_packed's NR (the host defines both for the transforms; these defaults serve the programs
// that build only winograd_pack_a).
#ifndef WNR
#define WNR 16
#endif
#if VT == 8
#define VTF float8
#define VLOADT vload8
#define VSTORET vstore8
#elif VT == 4
#define VTF float4
#define VLOADT vload4
#define VSTORET vstore4
#else
#define VTF float2
#define VLOADT vload2
#define VSTORET vstore2
#endif

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
#elif VT == 4
    const float16 a = vload16(0, p), c = vload16(0, p + 4);
    d[0] = a.s048c;
    d[1] = a.s159d;
    d[2] = a.s26ae;
    d[3] = a.s37bf;
    d[4] = c.s048c;
    d[5] = c.s159d;
#else
    const float8 a = vload8(0, p), c = vload8(0, p + 4);
    d[0] = a.s04;
    d[1] = a.s15;
    d[2] = a.s26;
    d[3] = a.s37;
    d[4] = c.s04;
    d[5] = c.s15;
#endif
}

// x B^T's rows applied to six values: out[i] = sum_r B^T[i][r] x[r].
#define WINOGRAD_BT(x, out) \
    do { \
        out[0] = 4.0f * x[0] - 5.0f * x[2] + x[4]; \
        out[1] = x[3] + x[4] - 4.0f * (x[1] + x[2]); \
        out[2] = x[4] - x[3] + 4.0f * (x[1] - x[2]); \
        out[3] = x[4] - x[2] + 2.0f * (x[3] - x[1]); \
        out[4] = x[4] - x[2] - 2.0f * (x[3] - x[1]); \
        out[5] = 4.0f * x[1] - 5.0f * x[3] + x[5]; \
    } while (0)

// V = (B^T d B)[xi] for the 6x6 tile d at rows 4 ty.., columns 4 tx.. of plane z * C + c of xq,
// stored as gemm_packed's B panels of the chunk's columns t' = z * rows * TWp + (ty - ty0) * TWp
// + tx: V[xi][t' / NR][c][t' % NR] (NR = WNR, a multiple of VT, so no vector crosses a panel).
// xq is the input zero-padded (pad_planes) to Hq = 4 TH + 2 rows of Wq = 4 TWp + 4, so that every
// tile row reads whole vectors with no bounds to check (tiles past TW read the padding's zeros,
// and their products are never stored). One work-item takes one plane's band of `rows` tile
// rows from ty0, VT tiles (one vector per tile position) at a time, and planesPerItem planes in
// turn (small maps: a work-group costs about as much as a few tiles). Global
// (ceil(Z * C / planesPerItem)), local (1).
__kernel void winograd_input(__global const float* xq, __global float* V, int C, int TH, int TWp, int ty0, int rows, int planes,
                             int planesPerItem) {
    const int Wq = 4 * TWp + 4;
    const int columns = planes / C * rows * TWp, Nb = (columns + WNR - 1) / WNR;
    const long xiStride = (long)Nb * C * WNR;
    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);
    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {
        const int z = zc / C, c = zc - z * C;
        __global const float* src = xq + ((long)zc * (4 * TH + 2) + 4 * ty0) * Wq;
        for (int r = 0; r < rows; ++r, src += 4 * Wq) {
            const int t0 = (z * rows + r) * TWp;
            for (int tx0 = 0; tx0 < TWp; tx0 += VT) {
                // s[i][j] = (d B)[i][j]: each input row's six columns combined, then B^T down the rows.
                VTF s[6][6];
                for (int i = 0; i < 6; ++i) {
                    VTF d[6];
                    winograd_row(src + i * Wq + 4 * tx0, d);
                    WINOGRAD_BT(d, s[i]);
                }
                const int tc = t0 + tx0;
                __global float* v0 = V + ((long)(tc / WNR) * C + c) * WNR + tc % WNR;
                for (int j = 0; j < 6; ++j) {
                    const VTF x[6] = {s[0][j], s[1][j], s[2][j], s[3][j], s[4][j], s[5][j]};
                    VTF v[6];
                    WINOGRAD_BT(x, v);
                    for (int i = 0; i < 6; ++i) VSTORET(v[i], 0, v0 + (i * 6 + j) * xiStride);
                }
            }
        }
    }
}

// x A^T's rows applied to six values: out[i] = sum_r A^T[i][r] x[r].
#define WINOGRAD_AT(x, out) \
    do { \
        const VTF p1 = x[1] + x[2], m1 = x[1] - x[2], p2 = x[3] + x[4], m2 = x[3] - x[4]; \
        out[0] = x[0] + p1 + p2; \
        out[1] = m1 + 2.0f * m2; \
        out[2] = p1 + 4.0f * p2; \
        out[3] = m1 + 8.0f * m2 + x[5]; \
    } while (0)

// y[image0 + z][co][4 ty + i][4 tx + j] = act((A^T M A)[i][j] + bias[co]) for the outputs inside
// OH x OW, from the products M[xi][co][t'] of a chunk's band (t' as for V). One work-item takes
// one output plane's band, planesPerItem planes in turn. FUSED_ACT: conv_geometry.cl.
// Global (ceil(Z * Cout / planesPerItem)), local (1).
__kernel void winograd_output(__global const float* Mx, __global float* y, __global const float* bias, int hasBias, int image0,
                              int Cout, int OH, int OW, int TWp, int ty0, int rows, int planes, int planesPerItem) {
    const long T = (long)planes / Cout * rows * TWp, xiStride = (long)Cout * T;
    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);
    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {
        const int z = zc / Cout, co = zc - z * Cout;
        __global const float* m0 = Mx + (long)co * T + (long)z * rows * TWp;
        __global float* out = y + ((long)(image0 + z) * Cout + co) * OH * OW;
        const VTF shift = (VTF)(hasBias ? bias[co] : 0.0f);
        for (int r = 0; r < rows; ++r, m0 += TWp) {
            const int ty = ty0 + r;
            for (int tx0 = 0; tx0 < TWp && 4 * tx0 < OW; tx0 += VT) {
                // s[i][j] = (A^T M)[i][j], then each output row i is s[i] A.
                VTF s[4][6];
                for (int j = 0; j < 6; ++j) {
                    __global const float* src = m0 + j * xiStride + tx0;
                    const VTF m[6] = {VLOADT(0, src), VLOADT(0, src + 6 * xiStride), VLOADT(0, src + 12 * xiStride),
                                      VLOADT(0, src + 18 * xiStride), VLOADT(0, src + 24 * xiStride), VLOADT(0, src + 30 * xiStride)};
                    VTF a[4];
                    WINOGRAD_AT(m, a);
                    for (int i = 0; i < 4; ++i) s[i][j] = a[i];
                }
                const int ox0 = 4 * tx0, n = min(4 * VT, OW - ox0);
                for (int i = 0; i < 4; ++i) {
                    const int oy = 4 * ty + i;
                    if (oy >= OH) break;
                    VTF o[4];
                    WINOGRAD_AT(s[i], o);
                    for (int j = 0; j < 4; ++j) o[j] = FUSED_ACT(o[j] + shift);
                    // Output column 4 l + j is o[j]'s lane l: interleave the four.
                    float lanes[4 * VT];
                    for (int l = 0; l < VT; ++l) {
                        lanes[4 * l] = o[0][l];
                        lanes[4 * l + 1] = o[1][l];
                        lanes[4 * l + 2] = o[2][l];
                        lanes[4 * l + 3] = o[3][l];
                    }
                    __global float* dst = out + (long)oy * OW + ox0;
                    int l = 0;
                    for (; l + 4 <= n; l += 4) vstore4(vload4(0, lanes + l), 0, dst + l);
                    for (; l < n; ++l) dst[l] = lanes[l];
                }
            }
        }
    }
}
