// Bilinear resize of float32 NCHW planes with half-pixel centres (PyTorch's
// interpolate(mode="bilinear", align_corners=False), OpenCV's INTER_LINEAR when upsampling):
// output pixel o samples input coordinate (o + 0.5) * in / out - 0.5, clamped at 0, from its
// two neighbours on each axis. No antialiasing. Global (OW, OH, N*C).
// channel_max: the maximum over channels of each pixel, [N, C, H, W] -> [N, 1, H, W]; global (H*W, N).

inline void source_coordinate(int o, int inSize, int outSize, int* i0, int* i1, float* t) {
    float x = ((float)o + 0.5f) * (float)inSize / (float)outSize - 0.5f;
    x = fmax(x, 0.0f);
    const int lo = min((int)x, inSize - 1);
    *i0 = lo;
    *i1 = min(lo + 1, inSize - 1);
    *t = x - (float)lo;
}

__kernel void resize_bilinear(__global const float* x, __global float* y, int H, int W, int OH, int OW) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    int y0, y1, x0, x1;
    float ty, tx;
    source_coordinate(oy, H, OH, &y0, &y1, &ty);
    source_coordinate(ox, W, OW, &x0, &x1, &tx);
    __global const float* p = x + (long)nc * H * W;
    const float top = (1.0f - tx) * p[y0 * W + x0] + tx * p[y0 * W + x1];
    const float bottom = (1.0f - tx) * p[y1 * W + x0] + tx * p[y1 * W + x1];
    y[((long)nc * OH + oy) * OW + ox] = (1.0f - ty) * top + ty * bottom;
}

__kernel void channel_max(__global const float* x, __global float* y, int C, int HW) {
    const int i = get_global_id(0), n = get_global_id(1);
    if (i >= HW) return;
    __global const float* p = x + (long)n * C * HW + i;
    float m = p[0];
    for (int c = 1; c < C; ++c) m = fmax(m, p[(long)c * HW]);
    y[(long)n * HW + i] = m;
}
