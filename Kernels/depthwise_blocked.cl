// Depthwise convolution over channel-blocked maps (NCHWc) for CPU devices, any stride: one plane
// of DWB channels, x [H][W][DWB] to y [OH][OW][DWB], each pixel's channels one vector, so every
// window tap is one aligned vector load and one FMA, the border taps skipped (no padded copy, no
// part vectors). An inverted residual's depthwise layer, run by each work-item of its expand
// product (gemm_packed.cl's GEMM_TRANSPOSED with C_BLOCKED and DEPTHWISE_AFTER) over the channels
// it has just stored, while they are in cache; the projection then reads its output (B_BLOCKED).
// MobileNetV2's layers on PoCL here, device ms at batch 1, as a kernel of its own against
// depthwise_rows on NCHW: 960x7x7 0.049-0.058 -> 0.015-0.017, 576x14x14 0.059 -> 0.033,
// 192x28x28 0.071 -> 0.036, stride 2 576x14x14 0.048 -> 0.013; 56x56 and 112x112 alike both
// ways (0.16 and 0.11 ms).
// KH ... DW: conv_geometry.cl (prepended by the host, with FUSED_ACT). The filter [C][KH*KW] is
// read as is, each tap's DWB channels gathered once per plane; `block` is the plane's channel
// block (channels block * DWB to block * DWB + DWB - 1).
#define DWB_CAT_(a, b) a##b
#define DWB_CAT(a, b) DWB_CAT_(a, b)
#define DWB_FLOAT DWB_CAT(float, DWB)
#define DWB_LOAD DWB_CAT(vload, DWB)
#define DWB_STORE DWB_CAT(vstore, DWB)
inline void depthwise_blocked_plane(__global const float* x, __global float* y, __global const float* w,
                                    __global const float* bias, int block, int H, int W, int OH, int OW) {
    DWB_FLOAT taps[KH * KW];
    #pragma unroll
    for (int t = 0; t < KH * KW; ++t) {
        float lanes[DWB];
        for (int j = 0; j < DWB; ++j) lanes[j] = w[(block * DWB + j) * KH * KW + t];
        taps[t] = DWB_LOAD(0, lanes);
    }
    const DWB_FLOAT b = DWB_LOAD(0, bias + block * DWB);
    for (int oy = 0; oy < OH; ++oy) {
        __global float* out = y + (long)oy * OW * DWB;
        for (int ox = 0; ox < OW; ++ox) {
            DWB_FLOAT acc = b;
            #pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                const int iy = oy * SH - PH + ky * DH;
                if (iy < 0 || iy >= H) continue;
                #pragma unroll
                for (int kx = 0; kx < KW; ++kx) {
                    const int ix = ox * SW - PW + kx * DW;
                    if (ix < 0 || ix >= W) continue;
                    acc = fma(taps[ky * KW + kx], DWB_LOAD(0, x + ((long)iy * W + ix) * DWB), acc);
                }
            }
            DWB_STORE(FUSED_ACT(acc), 0, out + ox * DWB);
        }
    }
}
