// Resize of float32 NCHW planes, PyTorch's interpolate modes, no antialiasing. Global (OW, OH, N*C).
// MODE 0, bilinear with half-pixel centres (align_corners=False; OpenCV's INTER_LINEAR when
//   upsampling): output o samples input coordinate (o + 0.5) * in / out - 0.5, clamped at 0.
// MODE 1, bilinear with aligned corners (align_corners=True): o * (in - 1) / (out - 1).
// MODE 2, nearest: input floor(o * in / out).
// resize_backward: its adjoint, gathered per input pixel; global (W, H, N*C).
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

// resize_backward: dL/dx of resize, gathered: each input pixel sums, in output order, the
// gradients of the outputs whose source coordinates read it, times their weights on it (no
// atomics; the same result at any work-group size). Global (W, H, N*C).
inline float source_weight(int o, int i, int inSize, int outSize, int mode) {
    int i0, i1;
    float t;
    source_coordinate(o, inSize, outSize, mode, &i0, &i1, &t);
    return (i0 == i ? 1.0f - t : 0.0f) + (i1 == i ? t : 0.0f);
}

// The outputs that may read input i along one axis: a window two wider than the coordinate map
// says at each end (weights outside it are zero, and checked anyway).
inline void output_window(int i, int inSize, int outSize, int mode, int* first, int* last) {
    const float r = mode == 1 ? (inSize > 1 ? (float)(outSize - 1) / (float)(inSize - 1) : (float)outSize)
                              : (float)outSize / (float)inSize;
    *first = max((int)floor((float)(i - 1) * r) - 2, 0);
    *last = min((int)ceil((float)(i + 2) * r) + 2, outSize - 1);
}

__kernel void resize_backward(__global const float* gy, __global float* gx, int H, int W, int OH, int OW, int mode) {
    const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
    if (ix >= W || iy >= H) return;
    int fy, ly, fx, lx;
    output_window(iy, H, OH, mode, &fy, &ly);
    output_window(ix, W, OW, mode, &fx, &lx);
    __global const float* g = gy + (long)nc * OH * OW;
    float sum = 0.0f;
    for (int oy = fy; oy <= ly; ++oy) {
        const float wy = source_weight(oy, iy, H, OH, mode);
        if (wy == 0.0f) continue;
        float row = 0.0f;
        for (int ox = fx; ox <= lx; ++ox) {
            const float wx = source_weight(ox, ix, W, OW, mode);
            if (wx != 0.0f) row += wx * g[(long)oy * OW + ox];
        }
        sum += wy * row;
    }
    gx[((long)nc * H + iy) * W + ix] = sum;
}

__kernel void channel_max(__global const float* x, __global float* y, int C, int HW) {
    const int i = get_global_id(0), n = get_global_id(1);
    if (i >= HW) return;
    __global const float* p = x + (long)n * C * HW + i;
    float m = p[0];
    for (int c = 1; c < C; ++c) { const float v = p[(long)c * HW]; m = v > m || isnan(v) ? v : m; }  // a NaN once in stays
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

// Affine resampling (the transformation-robustness step of feature visualization).
// t[12 n ..] per image: a b c d e f (output (x, y) samples input (a x + b y + c, d x + e y + f)),
// then the inverse's linear part ia ib id ie and the half-extents ex ey (see AffineTransform).
// Bilinear; input pixels outside the image read as `fill`. One work-item per output pixel does
// every channel, so the sample point and weights are computed once. Global (OW, OH, N).
__kernel void affine_sample(__global const float* x, __global const float* t, __global float* y,
                            int C, int H, int W, int OH, int OW, float fill) {
    const int ox = get_global_id(0), oy = get_global_id(1), n = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    __global const float* m = t + 12 * n;
    const float u = m[0] * ox + m[1] * oy + m[2], v = m[3] * ox + m[4] * oy + m[5];
    const float fu = floor(u), fv = floor(v);
    const int x0 = (int)fu, y0 = (int)fv;
    const float tx = u - fu, ty = v - fv;
    const bool in00 = x0 >= 0 && x0 < W && y0 >= 0 && y0 < H, in01 = x0 + 1 >= 0 && x0 + 1 < W && y0 >= 0 && y0 < H;
    const bool in10 = x0 >= 0 && x0 < W && y0 + 1 >= 0 && y0 + 1 < H, in11 = x0 + 1 >= 0 && x0 + 1 < W && y0 + 1 >= 0 && y0 + 1 < H;
    for (int c = 0; c < C; ++c) {
        __global const float* p = x + ((long)n * C + c) * H * W;
        const float s00 = in00 ? p[y0 * W + x0] : fill, s01 = in01 ? p[y0 * W + x0 + 1] : fill;
        const float s10 = in10 ? p[(y0 + 1) * W + x0] : fill, s11 = in11 ? p[(y0 + 1) * W + x0 + 1] : fill;
        y[(((long)n * C + c) * OH + oy) * OW + ox] = (1.0f - ty) * ((1.0f - tx) * s00 + tx * s01) + ty * ((1.0f - tx) * s10 + tx * s11);
    }
}

// dL/dx of affine_sample as a gather (no atomics): input pixel (q, p) collects
// gy * (1 - |u - q|) (1 - |v - p|) from every output pixel whose sample point (u, v) lies within one
// pixel of it; those output pixels lie in the inverse image of the square (q, p) +- 1, whose
// bounding box is centre +- (ex, ey). Global (W, H, N); every channel per work-item.
__kernel void affine_sample_backward(__global const float* gy, __global const float* t, __global float* gx,
                                     int C, int H, int W, int OH, int OW) {
    const int q = get_global_id(0), p = get_global_id(1), n = get_global_id(2);
    if (q >= W || p >= H) return;
    __global const float* m = t + 12 * n;
    const float du = q - m[2], dv = p - m[5];
    const float cx = m[6] * du + m[7] * dv, cy = m[8] * du + m[9] * dv;
    const int xs = max((int)ceil(cx - m[10]) - 1, 0), xe = min((int)floor(cx + m[10]) + 1, OW - 1);
    const int ys = max((int)ceil(cy - m[11]) - 1, 0), ye = min((int)floor(cy + m[11]) + 1, OH - 1);
    const long plane = (long)OH * OW;
    for (int c0 = 0; c0 < C; c0 += 4) {
        // Four channels a pass in scalar accumulators (a private array would live in memory).
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
        __global const float* g0 = gy + ((long)n * C + c0) * plane;
        for (int oy = ys; oy <= ye; ++oy) {
            for (int ox = xs; ox <= xe; ++ox) {
                const float u = m[0] * ox + m[1] * oy + m[2], v = m[3] * ox + m[4] * oy + m[5];
                // The same corner weights as the forward pass: floor(u) and floor(u) + 1.
                // floor by truncation, corrected below zero: floor() is a library call on PoCL.
                int iu = (int)u, iv = (int)v;
                iu -= (float)iu > u;
                iv -= (float)iv > v;
                const float tu = u - (float)iu, tv = v - (float)iv;
                const float wx = iu == q ? 1.0f - tu : (iu + 1 == q ? tu : 0.0f);
                const float wy = iv == p ? 1.0f - tv : (iv + 1 == p ? tv : 0.0f);
                const float w = wx * wy;
                if (w == 0.0f) continue;
                __global const float* g = g0 + oy * OW + ox;
                acc0 += w * g[0];
                if (c0 + 1 < C) acc1 += w * g[plane];
                if (c0 + 2 < C) acc2 += w * g[2 * plane];
                if (c0 + 3 < C) acc3 += w * g[3 * plane];
            }
        }
        __global float* out = gx + (((long)n * C + c0) * H + p) * W + q;
        out[0] = acc0;
        if (c0 + 1 < C) out[(long)H * W] = acc1;
        if (c0 + 2 < C) out[2L * H * W] = acc2;
        if (c0 + 3 < C) out[3L * H * W] = acc3;
    }
}
