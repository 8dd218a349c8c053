// Winograd F(2x2, 3x3) convolution for CPU OpenCL devices (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): every 2x2 block of outputs of a 3x3, stride-1 window is
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// over its 4x4 input tile d, with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// Summed over the input channels, the 16 elementwise products become 16 matrix products
//   M[xi] (Cout x tiles) = U[xi] (Cout x Cin) V[xi] (Cin x tiles),   xi = 4 i + j,
// which gemm_packed.cl runs with the 16 positions as its groups: 16 multiplies per 4 outputs
// and channel pair instead of 36 (2.25x fewer), for a transform of the input (4x its size) and
// of the products. The transforms use only additions and halvings, so results stay within a
// few rounding errors of the direct sum.
//
// Layouts: U as gemm_packed's A panels [16][ceil(M/MR)][K][MR]; V as its B panels
// [16][ceil(T/NR)][C][NR] and M row-major [16][Cout][T], over the chunk's T columns
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
        float q[4][3];
        for (int j = 0; j < 3; ++j) {
            q[0][j] = g[j];
            q[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            q[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            q[3][j] = g[6 + j];
        }
        for (int i = 0; i < 4; ++i) {
            const float u[4] = {q[i][0], 0.5f * (q[i][0] + q[i][1] + q[i][2]), 0.5f * (q[i][0] - q[i][1] + q[i][2]), q[i][2]};
            for (int j = 0; j < 4; ++j) A[(((long)(i * 4 + j) * Mb + mb) * K + k) * MR + r] = u[j];
        }
    }
}

// The transforms, built when the host defines VT, tiles of a tile row per vector (4 or 8: the
// one that pads TW the least; V and M hold TWp = TW rounded up to VT tiles a row, so every load
// and store is a whole vector), and WNR, gemm_packed's NR. The weights' program (pack_a alone)
// defines neither.
#ifdef VT
#if VT == 8
#define VTF float8
#define VT2F float16
#define VLOADT2 vload16
#define VLOADT vload8
#define VSTORET vstore8
#define VSTORET2 vstore16
#define INTERLEAVE(e, o) shuffle2((e), (o), (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15))
#else
#define VTF float4
#define VT2F float8
#define VLOADT2 vload8
#define VLOADT vload4
#define VSTORET vstore4
#define VSTORET2 vstore8
#define INTERLEAVE(e, o) shuffle2((e), (o), (uint8)(0, 4, 1, 5, 2, 6, 3, 7))
#endif

// V = (B^T d B)[xi] for the 4x4 tile d at rows 2 ty.., columns 2 tx.. of plane z * C + c of xq,
// stored as gemm_packed's B panels of the chunk's columns t' = z * rows * TWp + (ty - ty0) * TWp
// + tx: V[xi][t' / NR][c][t' % NR] (NR = WNR, a multiple of VT, so no vector crosses a panel).
// xq is the input zero-padded (pad_planes) to Hq = 2 TH + 2 rows of Wq = 2 TWp + 2, so that every
// tile row reads whole vectors with no bounds to check (tiles past TW read the padding's zeros,
// and their products are never stored). One work-item takes one plane's band of `rows` tile
// rows from ty0, VT tiles (one vector per tile position) at a time, and planesPerItem planes in
// turn (small maps: a work-group costs about as much as a few tiles). Global
// (ceil(Z * C / planesPerItem)), local (1).
__kernel void winograd_input(__global const float* xq, __global float* V, int C, int TH, int TWp, int ty0, int rows, int planes,
                             int planesPerItem) {
    const int Wq = 2 * TWp + 2;
    const int columns = planes / C * rows * TWp, Nb = (columns + WNR - 1) / WNR;
    const long xiStride = (long)Nb * C * WNR;
    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);
    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {
        const int z = zc / C, c = zc - z * C;
        __global const float* src = xq + ((long)zc * (2 * TH + 2) + 2 * ty0) * Wq;
        for (int r = 0; r < rows; ++r, src += 2 * Wq) {
            const int t0 = (z * rows + r) * TWp;
            for (int tx0 = 0; tx0 < TWp; tx0 += VT) {
                // d[r][c]: row r, column c of the VT tiles' windows (columns 2 tx + c).
                VTF d[4][4];
                for (int i = 0; i < 4; ++i) {
                    const VT2F a = VLOADT2(0, src + i * Wq + 2 * tx0), b = VLOADT2(0, src + i * Wq + 2 * tx0 + 2);
                    d[i][0] = a.even;
                    d[i][1] = a.odd;
                    d[i][2] = b.even;
                    d[i][3] = b.odd;
                }
                VTF t[4][4];
                for (int j = 0; j < 4; ++j) {
                    t[0][j] = d[0][j] - d[2][j];
                    t[1][j] = d[1][j] + d[2][j];
                    t[2][j] = d[2][j] - d[1][j];
                    t[3][j] = d[1][j] - d[3][j];
                }
                const int tc = t0 + tx0;
                __global float* v0 = V + ((long)(tc / WNR) * C + c) * WNR + tc % WNR;
                for (int i = 0; i < 4; ++i) {
                    __global float* dst = v0 + i * 4 * xiStride;
                    VSTORET(t[i][0] - t[i][2], 0, dst);
                    VSTORET(t[i][1] + t[i][2], 0, dst + xiStride);
                    VSTORET(t[i][2] - t[i][1], 0, dst + 2 * xiStride);
                    VSTORET(t[i][1] - t[i][3], 0, dst + 3 * xiStride);
                }
            }
        }
    }
}

// y[image0 + z][co][2 ty + i][2 tx + j] = act((A^T M A)[i][j] + bias[co]) for the outputs inside
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
            for (int tx0 = 0; tx0 < TWp && 2 * tx0 < OW; tx0 += VT) {
                VTF s[2][4];
                for (int j = 0; j < 4; ++j) {
                    __global const float* src = m0 + j * xiStride + tx0;
                    const VTF m[4] = {VLOADT(0, src), VLOADT(0, src + 4 * xiStride), VLOADT(0, src + 8 * xiStride),
                                      VLOADT(0, src + 12 * xiStride)};
                    s[0][j] = m[0] + m[1] + m[2];
                    s[1][j] = m[1] - m[2] - m[3];
                }
                const int ox0 = 2 * tx0, n = min(2 * VT, OW - ox0);
                for (int i = 0; i < 2; ++i) {
                    const int oy = 2 * ty + i;
                    if (oy >= OH) break;
                    const VTF even = FUSED_ACT(s[i][0] + s[i][1] + s[i][2] + shift);
                    const VTF odd = FUSED_ACT(s[i][1] - s[i][2] - s[i][3] + shift);
                    const VT2F row = INTERLEAVE(even, odd);
                    __global float* dst = out + (long)oy * OW + ox0;
                    if (n == 2 * VT) {
                        VSTORET2(row, 0, dst);
                    } else {
                        // The row's last outputs: four at a time, then one by one.
                        float lanes[2 * VT];
                        VSTORET2(row, 0, lanes);
                        int l = 0;
                        for (; l + 4 <= n; l += 4) vstore4(vload4(0, lanes + l), 0, dst + l);
                        for (; l < n; ++l) dst[l] = lanes[l];
                    }
                }
            }
        }
    }
}
#endif
