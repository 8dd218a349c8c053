// conv2d, float32 NCHW, stride / padding / dilation / groups, optional bias.
// Forward and both backward passes are implicit-im2col matrix multiplies over gemm.cl;
// the host builds this file with exactly one of CONV_FORWARD, CONV_BACKWARD_INPUT,
// CONV_BACKWARD_WEIGHT defined, followed by gemm.cl. Bias backward is channel_sum in reduce.cl.
//
// Shapes: x [Nb, Cin, H, W], w [Cout, Cin/G, KH, KW], y [Nb, Cout, OH, OW].
// Per group g: Cig = Cin/G input channels, Cog = Cout/G output channels, KK = Cig*KH*KW.

#define CONV_PARAMS int Cin, int H, int W, int Cout, int OH, int OW, int kh_, int kw_, \
    int sh_, int sw_, int ph_, int pw_, int dh_, int dw_, int G, int M, int N, int K

// KH ... DW come from conv_geometry.cl, prepended by the host.

// Input pixel (ci, iy, ix) of x for reduction index k = (ci, ky, kx) and output pixel p.
inline float conv_gather_input(__global const float* x, int n, int g, int k, int p,
                               int Cin, int H, int W, int OW, int kh_, int kw_,
                               int sh_, int sw_, int ph_, int pw_, int dh_, int dw_, int G) {
    const int Cig = Cin / G;
    const int ci = k / (KH * KW);
    const int r = k - ci * KH * KW;
    const int ky = r / KW, kx = r - ky * KW;
    const int oy = p / OW, ox = p - oy * OW;
    const int iy = oy * SH - PH + ky * DH;
    const int ix = ox * SW - PW + kx * DW;
    if (iy < 0 || iy >= H || ix < 0 || ix >= W) return 0.0f;
    return x[(((long)n * Cin + g * Cig + ci) * H + iy) * W + ix];
}

#if defined(CONV_FORWARD)
// y[n, g*Cog + m, p] = act(bias + sum_k w[g*Cog + m, k] * im2col(x)[k, p]);  z = n*G + g. The
// activation (FUSED_ACT, conv_geometry.cl) is applied as the result is stored, after split K's
// slices are summed.
#define GEMM_ARGS __global const float* x, __global const float* w, __global const float* bias, \
    __global float* y, int hasBias, CONV_PARAMS
#define A_LOAD(z, m, k) w[((long)((z) % G) * (Cout / G) + (m)) * K + (k)]
#define B_LOAD(z, k, p) conv_gather_input(x, (z) / G, (z) % G, k, p, Cin, H, W, OW, KH, KW, SH, SW, PH, PW, DH, DW, G)
#define C_STORE(z, m, p, v) { const int co = ((z) % G) * (Cout / G) + (m); \
    y[((long)((z) / G) * Cout + co) * OH * OW + (p)] = FUSED_ACT((v) + (hasBias ? bias[co] : 0.0f)); }

#elif defined(CONV_BACKWARD_INPUT)
// gx[n, g*Cig + m, q] = sum_{k=(co,ky,kx)} w[g*Cog + co, m, ky, kx] * gy[n, g*Cog + co, oy, ox]
// where q = (iy, ix) and iy = oy*SH - PH + ky*DH (terms whose oy is not whole or in range vanish).
inline float conv_gather_grad(__global const float* gy, int n, int g, int k, int q,
                              int Cout, int H, int W, int OH, int OW, int kh_, int kw_,
                              int sh_, int sw_, int ph_, int pw_, int dh_, int dw_, int G) {
    const int Cog = Cout / G;
    const int co = k / (KH * KW);
    const int r = k - co * KH * KW;
    const int ky = r / KW, kx = r - ky * KW;
    const int iy = q / W, ix = q - iy * W;
    const int ty = iy + PH - ky * DH, tx = ix + PW - kx * DW;
    if (ty < 0 || tx < 0 || ty % SH != 0 || tx % SW != 0) return 0.0f;
    const int oy = ty / SH, ox = tx / SW;
    if (oy >= OH || ox >= OW) return 0.0f;
    return gy[(((long)n * Cout + g * Cog + co) * OH + oy) * OW + ox];
}
#define GEMM_ARGS __global const float* gy, __global const float* w, __global float* gx, CONV_PARAMS
#define A_LOAD(z, m, k) w[(((long)((z) % G) * (Cout / G) + (k) / (KH * KW)) * (Cin / G) + (m)) * KH * KW + (k) % (KH * KW)]
#define B_LOAD(z, k, q) conv_gather_grad(gy, (z) / G, (z) % G, k, q, Cout, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G)
#define C_STORE(z, m, q, v) gx[((long)((z) / G) * Cin + ((z) % G) * (Cin / G) + (m)) * H * W + (q)] = (v);

#elif defined(CONV_BACKWARD_WEIGHT)
// gw[g*Cog + m, c] = sum_{k=(n, p)} gy[n, g*Cog + m, p] * im2col(x)[c, p] for c = (ci, ky, kx);  z = g.
#define GEMM_ARGS __global const float* gy, __global const float* x, __global float* gw, CONV_PARAMS
#define A_LOAD(z, m, k) gy[((long)((k) / (OH * OW)) * Cout + (z) * (Cout / G) + (m)) * OH * OW + (k) % (OH * OW)]
#define B_LOAD(z, k, c) conv_gather_input(x, (k) / (OH * OW), z, c, (k) % (OH * OW), Cin, H, W, OW, KH, KW, SH, SW, PH, PW, DH, DW, G)
#define C_STORE(z, m, c, v) gw[((long)(z) * (Cout / G) + (m)) * N + (c)] = (v);
#endif
