// Direct conv2d kernels for shapes the shared matrix-multiply tile (gemm.cl) handles badly.
// backward_input_few_channels: dL/dx of a convolution with few input channels per group
// (CONV_CIN <= 4, groups 1), such as a network's first layer (3 RGB channels), where the tile
// would spend its rows on padding. One work-item per input pixel computes all CONV_CIN
// channels; window geometry and CONV_CIN are compiled in, so the loops unroll.
//   gx[n,ci,iy,ix] = sum_{co,ky,kx} w[co,ci,ky,kx] * gy[n,co,oy,ox], oy = (iy+PH-ky*DH)/SH whole, in range

// KH ... DW: conv_geometry.cl (prepended by the host, with CONV_KH ... always defined).

// Global (W, H, Nb).
__kernel void backward_input_few_channels(__global const float* gy, __global const float* w, __global float* gx,
                                          int Cout, int H, int W, int OH, int OW) {
    const int ix = get_global_id(0), iy = get_global_id(1), n = get_global_id(2);
    if (ix >= W || iy >= H) return;
    float acc[CONV_CIN];
    #pragma unroll
    for (int ci = 0; ci < CONV_CIN; ++ci) acc[ci] = 0.0f;
    for (int co = 0; co < Cout; ++co) {
        __global const float* plane = gy + ((long)n * Cout + co) * OH * OW;
        __global const float* filter = w + (long)co * CONV_CIN * KH * KW;
        #pragma unroll
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = iy + PH - ky * DH;
            if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
            const int oy = ty / SH;
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int tx = ix + PW - kx * DW;
                if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
                const float g = plane[oy * OW + tx / SW];
                #pragma unroll
                for (int ci = 0; ci < CONV_CIN; ++ci) acc[ci] = fma(filter[(ci * KH + ky) * KW + kx], g, acc[ci]);
            }
        }
    }
    #pragma unroll
    for (int ci = 0; ci < CONV_CIN; ++ci) gx[(((long)n * CONV_CIN + ci) * H + iy) * W + ix] = acc[ci];
}
