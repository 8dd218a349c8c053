// Pooling, float32 NCHW: max pool, average pool, adaptive average pool; forward and backward.
// Window geometry is PyTorch's: output o covers input rows o*S - P ... o*S - P + KS - 1.
// Forward: one output per work-item, global (OW, OH, Nb*C). Backward gathers, one input pixel
// per work-item, global (W, H, Nb*C): no atomics, deterministic.

// The argmax of the window of output (oy, ox) as a flat index into the plane, -1 if the window
// holds only padding. Ties go to the first maximum in row-major order, as in PyTorch.
inline int maxpool_argmax(__global const float* plane, int H, int W, int oy, int ox,
                          int KH, int KW, int SH, int SW, int PH, int PW) {
    const int y0 = oy * SH - PH, x0 = ox * SW - PW;
    int best = -1;
    float bestValue = -INFINITY;
    for (int ky = 0; ky < KH; ++ky) {
        const int iy = y0 + ky;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; ++kx) {
            const int ix = x0 + kx;
            if (ix < 0 || ix >= W) continue;
            const float v = plane[iy * W + ix];
            if (best < 0 || v > bestValue || isnan(v)) { best = iy * W + ix; bestValue = v; if (isnan(v)) return best; }
        }
    }
    return best;
}

__kernel void maxpool2d_forward(__global const float* x, __global float* y, int H, int W, int OH, int OW,
                                int KH, int KW, int SH, int SW, int PH, int PW) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    __global const float* plane = x + (long)nc * H * W;
    const int a = maxpool_argmax(plane, H, W, oy, ox, KH, KW, SH, SW, PH, PW);
    y[((long)nc * OH + oy) * OW + ox] = a < 0 ? -INFINITY : plane[a];
}

// The range of outputs o with o*S - P <= i <= o*S - P + KS - 1, clipped to [0, O).
inline int2 pool_outputs_covering(int i, int KS, int S, int P, int O) {
    const int lo = max(0, (i + P - KS + S) / S);
    const int hi = min(O - 1, (i + P) / S);
    return (int2)(lo, hi);
}

// Backward, pass 1: the argmax of every output's window (as an int in a float's bits, -1 for
// padding only). Global (OW, OH, Nb*C).
__kernel void maxpool2d_argmax(__global const float* x, __global float* argmax, int H, int W, int OH, int OW,
                               int KH, int KW, int SH, int SW, int PH, int PW) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    argmax[((long)nc * OH + oy) * OW + ox] = as_float(maxpool_argmax(x + (long)nc * H * W, H, W, oy, ox, KH, KW, SH, SW, PH, PW));
}

// Backward, pass 2: each input pixel sums the gradients of the outputs whose argmax it is (a
// gather over the few windows covering it). Global (W, H, Nb*C).
__kernel void maxpool2d_backward(__global const float* gy, __global const float* argmax, __global float* gx,
                                 int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW) {
    const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
    if (ix >= W || iy >= H) return;
    const int2 ry = pool_outputs_covering(iy, KH, SH, PH, OH);
    const int2 rx = pool_outputs_covering(ix, KW, SW, PW, OW);
    const int self = iy * W + ix;
    float sum = 0.0f;
    for (int oy = ry.x; oy <= ry.y; ++oy)
        for (int ox = rx.x; ox <= rx.y; ++ox) {
            const long o = ((long)nc * OH + oy) * OW + ox;
            if (as_int(argmax[o]) == self) sum += gy[o];
        }
    gx[((long)nc * H + iy) * W + ix] = sum;
}

// Max pool by rows for CPU devices (the register-blocked family), local size (1,1,1): the
// per-pixel kernels above spend most of their time in window bookkeeping. A work-item takes
// POOL_ROW_OUTPUTS outputs of one row: pass 1 keeps, for each input column of their span, the
// column's maximum over the window's rows (contiguous loads), pass 2 each output's maximum over
// its columns. Same rule as maxpool_argmax: the first maximum in row-major order wins, and a NaN
// wins over numbers (the first NaN). The host uses these when the span fits POOL_ROW_SPAN.
#define POOL_ROW_OUTPUTS 32
#define POOL_ROW_SPAN 160
#define POOL_ROW_INPUTS 64

// Lane by lane, v where it replaces b under the rule above: larger, or a NaN over a number.
inline float8 pool_pick(float8 b, float8 v) {
    return select(b, v, (isgreater(v, b) | isnan(v)) & ~isnan(b));
}

// Lane by lane, column j (maximum v first seen in row r) replaces the choice (b, rb, jb) of the
// columns before it in the window: pass 2's rule below.
inline void pool_pick_index(float8* b, int8* rb, int8* jb, float8 v, int8 r, int8 j) {
    const int8 vn = isnan(v), bn = isnan(*b);
    const int8 take = (r >= 0) & ((*rb < 0) | (vn & ~bn) | isgreater(v, *b) | ((isequal(v, *b) | (vn & bn)) & (r < *rb)));
    *b = select(*b, v, take);
    *rb = select(*rb, r, take);
    *jb = select(*jb, j, take);
}

// out: each window's maximum, or with POOL_INDEX defined its argmax as an int in a float's bits
// (-1 for a window of padding only): pass 1 also keeps the row of each column's maximum, pass 2
// picks the first maximum in row-major order from them (the first NaN when there is one).
// Global (ceil(OW / POOL_ROW_OUTPUTS), OH, Nb*C).
__kernel void maxpool2d_rows(__global const float* x, __global float* out, int H, int W, int OH, int OW,
                             int KH, int KW, int SH, int SW, int PH, int PW) {
    const int ox0 = get_global_id(0) * POOL_ROW_OUTPUTS, oy = get_global_id(1), nc = get_global_id(2);
    if (ox0 >= OW || oy >= OH) return;
    const int ox1 = min(OW, ox0 + POOL_ROW_OUTPUTS);
    const int ix0 = ox0 * SW - PW;               // the input column of slot 0
    const int span = (ox1 - 1 - ox0) * SW + KW;  // <= POOL_ROW_SPAN
    const int jLo = max(0, -ix0), jHi = min(span, W - ix0);
    __global const float* plane = x + (long)nc * H * W;
    const int y0 = oy * SH - PH, yLo = max(y0, 0), yHi = min(y0 + KH, H);
    // Column maxima over the window's rows: -INFINITY stands for padding, a NaN once in stays.
    // (Pass 2's vectors load up to one column past the span, into a lane they drop.)
    float best[POOL_ROW_SPAN + 1];
    for (int j = 0; j <= span; ++j) best[j] = -INFINITY;
#ifdef POOL_INDEX
    // With them, the row each column's maximum was first seen in (rows go in order, and only a
    // larger value or a NaN over a number replaces it); -1 for a column of padding only.
    int bestRow[POOL_ROW_SPAN + 1];
    for (int j = 0; j <= span; ++j) bestRow[j] = -1;
#endif
    for (int iy = yLo; iy < yHi; ++iy) {
        __global const float* row = plane + (long)iy * W + ix0;
        int j = jLo;
#ifdef POOL_INDEX
        if (iy == yLo) {
            for (; j + 8 <= jHi; j += 8) {
                vstore8(vload8(0, row + j), 0, best + j);
                vstore8((int8)(iy), 0, bestRow + j);
            }
            for (; j < jHi; ++j) { best[j] = row[j]; bestRow[j] = iy; }
            continue;
        }
        for (; j + 8 <= jHi; j += 8) {
            const float8 v = vload8(0, row + j), b = vload8(0, best + j);
            const int8 take = (isgreater(v, b) | isnan(v)) & ~isnan(b);
            vstore8(select(b, v, take), 0, best + j);
            vstore8(select(vload8(0, bestRow + j), (int8)(iy), take), 0, bestRow + j);
        }
        for (; j < jHi; ++j) {
            const float v = row[j], b = best[j];
            if ((v > b || isnan(v)) && !isnan(b)) { best[j] = v; bestRow[j] = iy; }
        }
#else
        for (; j + 8 <= jHi; j += 8) {
            const float8 v = vload8(0, row + j), b = vload8(0, best + j);
            vstore8(pool_pick(b, v), 0, best + j);
        }
        for (; j < jHi; ++j) {
            const float v = row[j], b = best[j];
            best[j] = (v > b || isnan(v)) && !isnan(b) ? v : b;
        }
#endif
    }
    int first = ox0;
#ifdef POOL_INDEX
    // Stride 2 with a window of 2 or 3: eight argmaxes at a time, as pass 2 below picks them.
    if (SW == 2 && (KW == 2 || KW == 3)) {
        for (; first + 8 <= ox1; first += 8) {
            const int j0 = (first - ox0) * 2;
            const int8 lanes = (int8)(0, 2, 4, 6, 8, 10, 12, 14) + j0;
            const float16 c = vload16(0, best + j0);
            const int16 cr = vload16(0, bestRow + j0);
            float8 b = c.even;
            int8 rb = cr.even, jb = lanes;
            pool_pick_index(&b, &rb, &jb, c.odd, cr.odd, lanes + 1);
            if (KW == 3) pool_pick_index(&b, &rb, &jb, vload16(0, best + j0 + 2).even, vload16(0, bestRow + j0 + 2).even, lanes + 2);
            vstore8(as_float8(select(rb * W + ix0 + jb, (int8)(-1), rb < 0)), 0, out + ((long)nc * OH + oy) * OW + first);
        }
    }
#else
    // Stride 2 with a window of 2 or 3 (VGG's, ResNet's and most networks' pools): eight outputs
    // at a time from the even and odd columns; the rest below.
    if (SW == 2 && (KW == 2 || KW == 3)) {
        for (; first + 8 <= ox1; first += 8) {
            const int j0 = (first - ox0) * 2;
            const float16 c = vload16(0, best + j0);
            float8 m = pool_pick(c.even, c.odd);
            if (KW == 3) m = pool_pick(m, vload16(0, best + j0 + 2).even);
            vstore8(m, 0, out + ((long)nc * OH + oy) * OW + first);
        }
    }
#endif
    for (int ox = first; ox < ox1; ++ox) {
        const int j0 = (ox - ox0) * SW;
        const long o = ((long)nc * OH + oy) * OW + ox;
#ifdef POOL_INDEX
        // The window's columns in order: a larger maximum, a NaN over a number, or the same
        // maximum seen in an earlier row replaces the choice; so the first maximum in row-major
        // order wins (ties within a row: the earlier column, kept).
        int bj = j0;
        for (int j = j0 + 1; j < j0 + KW; ++j) {
            const float v = best[j], b = best[bj];
            const int r = bestRow[j], rb = bestRow[bj];
            if (r < 0) continue;
            const bool vn = isnan(v), bn = isnan(b);
            if (rb < 0 || (vn && !bn) || v > b || ((v == b || (vn && bn)) && r < rb)) bj = j;
        }
        out[o] = as_float(bestRow[bj] < 0 ? -1 : bestRow[bj] * W + ix0 + bj);
#else
        float bv = best[j0];
        for (int j = j0 + 1; j < j0 + KW; ++j) {
            const float v = best[j];
            bv = (v > bv || isnan(v)) && !isnan(bv) ? v : bv;
        }
        out[o] = bv;
#endif
    }
}

// Backward by rows: a work-item takes POOL_ROW_INPUTS inputs of one row and adds the gradient of
// every output covering them whose argmax is one of them, in output order (the gather's order).
// Global (ceil(W / POOL_ROW_INPUTS), H, Nb*C).
__kernel void maxpool2d_backward_rows(__global const float* gy, __global const float* argmax, __global float* gx,
                                      int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW) {
    const int ix0 = get_global_id(0) * POOL_ROW_INPUTS, iy = get_global_id(1), nc = get_global_id(2);
    if (ix0 >= W || iy >= H) return;
    const int n = min(POOL_ROW_INPUTS, W - ix0);
    float acc[POOL_ROW_INPUTS];
    for (int j = 0; j < POOL_ROW_INPUTS; ++j) acc[j] = 0.0f;
    const int2 ry = pool_outputs_covering(iy, KH, SH, PH, OH);
    const int oxLo = pool_outputs_covering(ix0, KW, SW, PW, OW).x, oxHi = pool_outputs_covering(ix0 + n - 1, KW, SW, PW, OW).y;
    const int lo = iy * W + ix0;
    for (int oy = ry.x; oy <= ry.y; ++oy) {
        const long o0 = ((long)nc * OH + oy) * OW;
        for (int ox = oxLo; ox <= oxHi; ++ox) {
            const int j = as_int(argmax[o0 + ox]) - lo;
            if (j >= 0 && j < n) acc[j] += gy[o0 + ox];
        }
    }
    __global float* row = gx + ((long)nc * H + iy) * W + ix0;
    for (int j = 0; j < n; ++j) row[j] = acc[j];
}

// PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to the input.
inline float avgpool_divisor(int oy, int ox, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                             int countIncludePad) {
    int y0 = oy * SH - PH, x0 = ox * SW - PW;
    int y1 = min(y0 + KH, H + PH), x1 = min(x0 + KW, W + PW);
    const int padded = (y1 - y0) * (x1 - x0);
    y0 = max(y0, 0); x0 = max(x0, 0); y1 = min(y1, H); x1 = min(x1, W);
    return countIncludePad ? (float)padded : (float)((y1 - y0) * (x1 - x0));
}

__kernel void avgpool2d_forward(__global const float* x, __global float* y, int H, int W, int OH, int OW,
                                int KH, int KW, int SH, int SW, int PH, int PW, int countIncludePad) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    __global const float* plane = x + (long)nc * H * W;
    const int y0 = oy * SH - PH, x0 = ox * SW - PW;
    float sum = 0.0f;
    for (int iy = max(y0, 0); iy < min(y0 + KH, H); ++iy)
        for (int ix = max(x0, 0); ix < min(x0 + KW, W); ++ix) sum += plane[iy * W + ix];
    y[((long)nc * OH + oy) * OW + ox] = sum / avgpool_divisor(oy, ox, H, W, KH, KW, SH, SW, PH, PW, countIncludePad);
}

__kernel void avgpool2d_backward(__global const float* gy, __global float* gx, int H, int W, int OH, int OW,
                                 int KH, int KW, int SH, int SW, int PH, int PW, int countIncludePad) {
    const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
    if (ix >= W || iy >= H) return;
    const int2 ry = pool_outputs_covering(iy, KH, SH, PH, OH);
    const int2 rx = pool_outputs_covering(ix, KW, SW, PW, OW);
    float sum = 0.0f;
    for (int oy = ry.x; oy <= ry.y; ++oy)
        for (int ox = rx.x; ox <= rx.y; ++ox)
            sum += gy[((long)nc * OH + oy) * OW + ox] / avgpool_divisor(oy, ox, H, W, KH, KW, SH, SW, PH, PW, countIncludePad);
    gx[((long)nc * H + iy) * W + ix] = sum;
}

// Adaptive average pool: output o averages input [floor(o*I/O), ceil((o+1)*I/O)).
inline int adaptive_start(int o, int I, int O) { return (o * I) / O; }
inline int adaptive_end(int o, int I, int O) { return ((o + 1) * I + O - 1) / O; }

__kernel void adaptive_avgpool2d_forward(__global const float* x, __global float* y, int H, int W, int OH, int OW) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    __global const float* plane = x + (long)nc * H * W;
    const int y0 = adaptive_start(oy, H, OH), y1 = adaptive_end(oy, H, OH);
    const int x0 = adaptive_start(ox, W, OW), x1 = adaptive_end(ox, W, OW);
    float sum = 0.0f;
    for (int iy = y0; iy < y1; ++iy) {
        int ix = x0;
        float4 s4 = (float4)(0.0f);
        for (; ix + 3 < x1; ix += 4) s4 += vload4(0, plane + iy * W + ix);
        sum += s4.x + s4.y + s4.z + s4.w;
        for (; ix < x1; ++ix) sum += plane[iy * W + ix];
    }
    y[((long)nc * OH + oy) * OW + ox] = sum / (float)((y1 - y0) * (x1 - x0));
}

__kernel void adaptive_avgpool2d_backward(__global const float* gy, __global float* gx, int H, int W, int OH, int OW) {
    const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
    if (ix >= W || iy >= H) return;
    float sum = 0.0f;
    for (int oy = 0; oy < OH; ++oy) {
        const int y0 = adaptive_start(oy, H, OH), y1 = adaptive_end(oy, H, OH);
        if (iy < y0 || iy >= y1) continue;
        for (int ox = 0; ox < OW; ++ox) {
            const int x0 = adaptive_start(ox, W, OW), x1 = adaptive_end(ox, W, OW);
            if (ix < x0 || ix >= x1) continue;
            sum += gy[((long)nc * OH + oy) * OW + ox] / (float)((y1 - y0) * (x1 - x0));
        }
    }
    gx[((long)nc * H + iy) * W + ix] = sum;
}

// The same backward for CPU devices, one work-item per plane: the plane zeroed, then each
// output's share added over its window, outputs in row-major order (each pixel's sum in the
// order the gather above makes it). A global pool (one output) fills the plane by vectors.
// Global (Nb*C), local (1).
__kernel void adaptive_avgpool2d_backward_planes(__global const float* gy, __global float* gx, int H, int W, int OH, int OW) {
    const int nc = get_global_id(0);
    __global const float* g = gy + (long)nc * OH * OW;
    __global float* plane = gx + (long)nc * H * W;
    const int n = H * W;
    if (OH == 1 && OW == 1) {
        const float v = 0.0f + g[0] / (float)n;
        int i = 0;
        for (; i + 8 <= n; i += 8) vstore8((float8)(v), 0, plane + i);
        for (; i < n; ++i) plane[i] = v;
        return;
    }
    for (int i = 0; i < n; ++i) plane[i] = 0.0f;
    for (int oy = 0; oy < OH; ++oy) {
        const int y0 = adaptive_start(oy, H, OH), y1 = adaptive_end(oy, H, OH);
        for (int ox = 0; ox < OW; ++ox) {
            const int x0 = adaptive_start(ox, W, OW), x1 = adaptive_end(ox, W, OW);
            const float v = g[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
            for (int iy = y0; iy < y1; ++iy)
                for (int ix = x0; ix < x1; ++ix) plane[iy * W + ix] += v;
        }
    }
}
