// Resize of float32 NCHW planes, PyTorch's interpolate modes, no antialiasing. Global (OW, OH, N*C).
// MODE 0, bilinear with half-pixel centres (align_corners=False; OpenCV's INTER_LINEAR when
//   upsampling): output o samples input coordinate (o + 0.5) * in / out - 0.5, clamped at 0.
// MODE 1, bilinear with aligned corners (align_corners=True): o * (in - 1) / (out - 1).
// MODE 2, nearest: input floor(o * in / out).
// channel_max: the maximum over channels of each pixel, [N, C, H, W] -> [N, 1, H, W]; global (H*W, N).

inline void source_coordinate(int o, int inSize, int outSize, int mode, int* i0, int* i1, float* t) {
    float x;
    if (mode == 2) {
        *i0 = *i1 = min((int)floor((float)o * (float)inSize / (float)outSize), inSize - 1);
        *t = 0.0f;
        return;
    }
    if (mode == 1) x = outSize > 1 ? (float)o * (float)(inSize - 1) / (float)(outSize - 1) : 0.0f;
    else x = fmax(((float)o + 0.5f) * (float)inSize / (float)outSize - 0.5f, 0.0f);
    const int lo = min((int)x, inSize - 1);
    *i0 = lo;
    *i1 = min(lo + 1, inSize - 1);
    *t = x - (float)lo;
}

__kernel void resize(__global const float* x, __global float* y, int H, int W, int OH, int OW, int mode) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    int y0, y1, x0, x1;
    float ty, tx;
    source_coordinate(oy, H, OH, mode, &y0, &y1, &ty);
    source_coordinate(ox, W, OW, mode, &x0, &x1, &tx);
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

// y[m, c] = x[m or 0, c] * masks[m, 0]: one image (or one per mask) times M single-channel masks,
// [1 or M, C, H, W] x [M, 1, H, W] -> [M, C, H, W]. Global (ceil(HW / 4), C, M).
__kernel void broadcast_mul(__global const float* x, __global const float* masks, __global float* y,
                            int C, int HW, int perMask) {
    const int i = get_global_id(0) * 4, c = get_global_id(1), m = get_global_id(2);
    const long src = ((long)(perMask ? m : 0) * C + c) * HW, dst = ((long)m * C + c) * HW, mask = (long)m * HW;
    if (i + 3 < HW) vstore4(vload4(0, x + src + i) * vload4(0, masks + mask + i), 0, y + dst + i);
    else for (int j = i; j < HW; ++j) y[dst + j] = x[src + j] * masks[mask + j];
}
