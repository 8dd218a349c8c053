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
// Layouts: U as gemm_packed's A panels [16][ceil(M/MR)][K][MR]; V[z][xi][c][t] and
// M[z][xi][co][t] row-major with t = (ty - ty0) * TW + tx over a band of `rows` tile rows
// from ty0 (of the TH x TW tiles of an image: large maps go a band at a time, so that V and M
// stay in cache between the transforms and the product). Each work-item of the transforms
// takes one tile row of one plane, 8 tiles (one float8 per tile position) at a time.

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

// V[z][xi][c][t] = (B^T d B)[xi] for the 4x4 tile d at rows 2 ty.., columns 2 tx.. of plane
// z * C + c of xq: the input zero-padded (pad_planes) to Hq = 2 TH + 2 rows of Wq = 2 TW + 2,
// so that every tile row reads whole vectors with no bounds to check. A tile row's last 8 tiles
// may read up to 16 floats past its row (into the next row, or past the last plane: the host
// leaves that much room); those lanes belong to tiles past TW and are not stored.
// Global (rows, Z * C).
__kernel void winograd_input(__global const float* xq, __global float* V, int C, int TH, int TW, int ty0, int rows) {
    const int zc = get_global_id(1);
    if (get_global_id(0) >= rows) return;
    const int ty = ty0 + get_global_id(0);
    const int z = zc / C, c = zc - z * C;
    const int Wq = 2 * TW + 2;
    __global const float* src = xq + ((long)zc * (2 * TH + 2) + 2 * ty) * Wq;
    const long T = (long)rows * TW, xiStride = (long)C * T;
    __global float* v0 = V + ((long)z * 16 * C + c) * T + (long)(ty - ty0) * TW;
    for (int tx0 = 0; tx0 < TW; tx0 += 8) {
        // d[r][c]: row r, column c of the 8 tiles' windows (columns 2 tx + c).
        float8 d[4][4];
        for (int r = 0; r < 4; ++r) {
            const float16 a = vload16(0, src + r * Wq + 2 * tx0), b = vload16(0, src + r * Wq + 2 * tx0 + 2);
            d[r][0] = a.even;
            d[r][1] = a.odd;
            d[r][2] = b.even;
            d[r][3] = b.odd;
        }
        float8 t[4][4];
        for (int j = 0; j < 4; ++j) {
            t[0][j] = d[0][j] - d[2][j];
            t[1][j] = d[1][j] + d[2][j];
            t[2][j] = d[2][j] - d[1][j];
            t[3][j] = d[1][j] - d[3][j];
        }
        const int n = min(8, TW - tx0);
        for (int i = 0; i < 4; ++i) {
            const float8 v[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};
            for (int j = 0; j < 4; ++j) {
                __global float* dst = v0 + (i * 4 + j) * xiStride + tx0;
                if (n == 8) {
                    vstore8(v[j], 0, dst);
                } else {
                    float out[8];
                    vstore8(v[j], 0, out);
                    for (int l = 0; l < n; ++l) dst[l] = out[l];
                }
            }
        }
    }
}

// y[image0 + z][co][2 ty + i][2 tx + j] = act((A^T M A)[i][j] + bias[co]) for the outputs inside
// OH x OW, from the products M[z][xi][co][t] of a band. FUSED_ACT: conv_geometry.cl.
// Global (rows, Z * Cout).
__kernel void winograd_output(__global const float* Mx, __global float* y, __global const float* bias, int hasBias, int image0,
                              int Cout, int OH, int OW, int TW, int ty0, int rows) {
    const int zc = get_global_id(1);
    if (get_global_id(0) >= rows) return;
    const int ty = ty0 + get_global_id(0);
    const int z = zc / Cout, co = zc - z * Cout;
    const long T = (long)rows * TW, xiStride = (long)Cout * T;
    __global const float* m0 = Mx + ((long)z * 16 * Cout + co) * T + (long)(ty - ty0) * TW;
    __global float* out = y + ((long)(image0 + z) * Cout + co) * OH * OW;
    const float8 shift = (float8)(hasBias ? bias[co] : 0.0f);
    for (int tx0 = 0; tx0 < TW; tx0 += 8) {
        const int n = min(8, TW - tx0);
        float8 s[2][4];
        for (int j = 0; j < 4; ++j) {
            float8 m[4];
            for (int i = 0; i < 4; ++i) {
                __global const float* src = m0 + (i * 4 + j) * xiStride + tx0;
                if (n == 8) {
                    m[i] = vload8(0, src);
                } else {
                    float lanes[8];
                    for (int l = 0; l < 8; ++l) lanes[l] = l < n ? src[l] : 0.0f;
                    m[i] = vload8(0, lanes);
                }
            }
            s[0][j] = m[0] + m[1] + m[2];
            s[1][j] = m[1] - m[2] - m[3];
        }
        const int ox0 = 2 * tx0;
        for (int i = 0; i < 2; ++i) {
            const int oy = 2 * ty + i;
            if (oy >= OH) break;
            const float8 even = FUSED_ACT(s[i][0] + s[i][1] + s[i][2] + shift);
            const float8 odd = FUSED_ACT(s[i][1] - s[i][2] - s[i][3] + shift);
            const float16 row = shuffle2(even, odd, (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
            __global float* dst = out + (long)oy * OW + ox0;
            if (ox0 + 16 <= OW) {
                vstore16(row, 0, dst);
            } else {
                float lanes[16];
                vstore16(row, 0, lanes);
                for (int l = 0; l < min(16, OW - ox0); ++l) dst[l] = lanes[l];
            }
        }
    }
}
