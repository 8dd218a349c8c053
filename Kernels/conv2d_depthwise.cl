// Depthwise conv2d (groups == Cin == Cout, one filter per channel), float32 NCHW, forward and
// backward. The general path (conv2d.cl) would spend a 64-row tile on each one-row group.
// The window geometry (CONV_KH, CONV_KW, CONV_SH, CONV_SW, CONV_PH, CONV_PW, CONV_DH, CONV_DW)
// is always compiled in, so the window loops unroll fully and PoCL vectorizes across
// work-items; on a GPU neighbouring work-items read neighbouring pixels.
//   y[n,c,oy,ox]  = b[c] + sum_{ky,kx} w[c,ky,kx] * x[n,c,oy*SH-PH+ky*DH, ox*SW-PW+kx*DW]
//   gx[n,c,iy,ix] = sum over (ky,kx) with oy = (iy+PH-ky*DH)/SH whole and in range of w * gy
//   gw[c,ky,kx]   = sum_{n,oy,ox} gy[n,c,oy,ox] * x[n,c,iy,ix]   (one work-group per channel)

// KH ... DW: conv_geometry.cl (prepended by the host, with CONV_KH ... always defined).
#ifndef RWG
#define RWG 64
#endif

// Global (OW, OH, Nb*C).
__kernel void depthwise_forward(__global const float* x, __global const float* w, __global const float* bias,
                                __global float* y, int hasBias, int C, int H, int W, int OH, int OW) {
    const int ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    const int c = nc % C;
    __global const float* plane = x + (long)nc * H * W;
    __global const float* filter = w + c * KH * KW;
    float s = hasBias ? bias[c] : 0.0f;
    #pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        const int iy = oy * SH - PH + ky * DH;
        #pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
            const int ix = ox * SW - PW + kx * DW;
            const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
            s = fma(filter[ky * KW + kx], inside ? plane[inside ? iy * W + ix : 0] : 0.0f, s);
        }
    }
    y[((long)nc * OH + oy) * OW + ox] = FUSED_ACT(s);
}

// Global (W, H, Nb*C).
__kernel void depthwise_backward_input(__global const float* gy, __global const float* w, __global float* gx,
                                       int C, int H, int W, int OH, int OW) {
    const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
    if (ix >= W || iy >= H) return;
    const int c = nc % C;
    __global const float* plane = gy + (long)nc * OH * OW;
    __global const float* filter = w + c * KH * KW;
    float s = 0.0f;
    #pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        const int ty = iy + PH - ky * DH;
        const int oy = ty / SH;
        #pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
            const int tx = ix + PW - kx * DW;
            const int ox = tx / SW;
            const bool inside = ty >= 0 && tx >= 0 && ty % SH == 0 && tx % SW == 0 && oy < OH && ox < OW;
            s = fma(filter[ky * KW + kx], inside ? plane[inside ? oy * OW + ox : 0] : 0.0f, s);
        }
    }
    gx[((long)nc * H + iy) * W + ix] = s;
}

// Global (RWG, C), local (RWG, 1): work-item l of channel c's group walks positions l, l+RWG, ...
// of the N*OH*OW outputs, keeping KH*KW partial sums; a tree reduction in local memory ends it.
__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void depthwise_backward_weight(__global const float* gy, __global const float* x, __global float* gw,
                               int Nb, int C, int H, int W, int OH, int OW) {
    __local float scratch[KH * KW][RWG];
    const int l = get_local_id(0), c = get_group_id(1);
    float acc[KH * KW];
    #pragma unroll
    for (int k = 0; k < KH * KW; ++k) acc[k] = 0.0f;
    const int total = Nb * OH * OW;
    for (int i = l; i < total; i += RWG) {
        const int n = i / (OH * OW), p = i - n * OH * OW;
        const int oy = p / OW, ox = p - oy * OW;
        const float g = gy[((long)n * C + c) * OH * OW + p];
        __global const float* plane = x + ((long)n * C + c) * H * W;
        #pragma unroll
        for (int ky = 0; ky < KH; ++ky) {
            const int iy = oy * SH - PH + ky * DH;
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int ix = ox * SW - PW + kx * DW;
                const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                acc[ky * KW + kx] = fma(g, inside ? plane[inside ? iy * W + ix : 0] : 0.0f, acc[ky * KW + kx]);
            }
        }
    }
    #pragma unroll
    for (int k = 0; k < KH * KW; ++k) scratch[k][l] = acc[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = RWG / 2; h > 0; h >>= 1) {
        if (l < h) {
            #pragma unroll
            for (int k = 0; k < KH * KW; ++k) scratch[k][l] += scratch[k][l + h];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l < KH * KW) gw[c * KH * KW + l] = scratch[l][0];
}

// The first min(count, 8) lanes of v to out.
inline void depthwise_store8(float8 v, __global float* out, int count) {
    if (count >= 8) {
        vstore8(v, 0, out);
    } else {
        float lanes[8];
        vstore8(v, 0, lanes);
        for (int j = 0; j < count; ++j) out[j] = lanes[j];
    }
}

// With STORE_MASK defined (and activation.cl prepended), the CPU kernels' output is the gradient
// of an activation's output (storeMask, in the output's layout) and goes through that
// activation's backward (kind GRAD_KIND, rule GRAD_RULE) as it is stored: a depthwise
// convolution's backward to an input that a fused ReLU or ReLU6 made, in one pass.
#ifdef STORE_MASK
inline float8 depthwise_masked(float8 g, __global const float* x, int count) {
    if (count >= 8) return act_grad_float8(g, vload8(0, x), GRAD_KIND, GRAD_RULE);
    float lanes[8];
    for (int j = 0; j < 8; ++j) lanes[j] = j < count ? x[j] : 0.0f;
    return act_grad_float8(g, vload8(0, lanes), GRAD_KIND, GRAD_RULE);
}
#define DEPTHWISE_STORE(v, base, out, count) depthwise_store8(depthwise_masked(v, storeMask + ((out) - (base)), count), out, count)
#else
#define DEPTHWISE_STORE(v, base, out, count) depthwise_store8(v, out, count)
#endif

// Channel c's KH*KW filter taps into registers, reversed with `flip`.
inline void depthwise_taps(__global const float* w, int c, int flip, float* taps) {
    #pragma unroll
    for (int i = 0; i < KH * KW; ++i) taps[i] = w[c * KH * KW + (flip ? KH * KW - 1 - i : i)];
}

// Depthwise forward for CPU devices (the register-blocked family), stride 1 or 2: one work-item
// per rowsPerItem output rows of planesPerItem planes (more than one plane only where
// rowsPerItem covers the plane: small maps). The input rows a window reaches are copied once into a
// private ring of zero-padded rows (DW_ROW floats each, set by the host to cover the padding and
// the last vector's reach), so every window tap is one unaligned vector load with no border
// test; DWR output rows are made per step, sharing the rows they read, eight outputs a vector.
// With FLIP the filter is read reversed, which makes this the backward-to-input pass at stride 1
// when run on gy with padding D*(K-1) - P. With DW_UP = S as well, x is read as gy with S - 1
// zeros inserted between its rows and columns (H x W, (OH_gy - 1) * S + 1 each way, are that
// virtual map's sizes): the backward to the input of a stride-S convolution, a stride-1
// convolution of the upsampled gy, every tap a vector load still (a quarter of them of zeros
// at S = 2). Global (ceil(OH / rowsPerItem), ceil(planes / planesPerItem)), planes = Nb*C,
// local (1, 1).
#ifndef DW_UP
#define DW_UP 1
#endif
#ifndef DW_ROW
#define DW_ROW 256
#endif
#ifndef DWR
#define DWR 2
#endif
// Input rows that DWR output rows read, the ring's size.
#define DW_RING ((DWR - 1) * SH + (KH - 1) * DH + 1)
__kernel void depthwise_rows(__global const float* x, __global const float* w, __global const float* bias,
                             __global float* y, int hasBias, int flip, int C, int H, int W, int OH, int OW,
                             __global const float* storeMask, int rowsPerItem, int planesPerItem, int planes) {
    // x's own rows: H x W, or gy's (H - 1) / DW_UP + 1 of (W - 1) / DW_UP + 1.
    const int srcH = (H - 1) / DW_UP + 1, srcW = (W - 1) / DW_UP + 1;
    // ring[slot][PW + ix] holds input row iy (slot iy mod DW_RING); the padding on both sides,
    // up to the last vector's reach, stays zero (row copies write only the row's own columns).
    float ring[DW_RING][DW_ROW];
    const int reach = ((OW + 7) / 8 * 8 - 8) * SW + (KW - 1) * DW + 8 * SW;
    #pragma unroll
    for (int s = 0; s < DW_RING; ++s) {
        for (int i = 0; i < PW; ++i) ring[s][i] = 0.0f;
        for (int i = PW + W; i < reach; ++i) ring[s][i] = 0.0f;
    }
    const int oyFirst = get_global_id(0) * rowsPerItem, oyEnd = min(OH, oyFirst + rowsPerItem);
    const int ncFirst = get_global_id(1) * planesPerItem, ncEnd = min(planes, ncFirst + planesPerItem);
    for (int nc = ncFirst; nc < ncEnd; ++nc) {
        const int c = nc % C;
        __global const float* plane = x + (long)nc * srcH * srcW;
        float taps[KH * KW];
        depthwise_taps(w, c, flip, taps);
        const float b = hasBias ? bias[c] : 0.0f;
        int next = oyFirst * SH - PH;
        for (int oy = oyFirst; oy < oyEnd; oy += DWR) {
            const int iy0 = oy * SH - PH;
            for (; next < iy0 + DW_RING; ++next) {
                float* dst = ring[(next % DW_RING + DW_RING) % DW_RING] + PW;
                if (next >= 0 && next < H && next % DW_UP == 0) {
                    __global const float* src = plane + (long)(next / DW_UP) * srcW;
                    if (DW_UP == 1) {
                        int i = 0;
                        for (; i + 8 <= W; i += 8) vstore8(vload8(0, src + i), 0, dst + i);
                        if (i < W && next + 1 < H) {
                            // The row's last part vector, read on into the next row of the plane,
                            // its lanes past the row's end stored as the right padding's zeros.
                            const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
                            vstore8(select((float8)(0.0f), vload8(0, src + i), lane < W - i), 0, dst + i);
                        } else {
                            for (; i < W; ++i) dst[i] = src[i];
                        }
                    } else if (DW_UP == 2) {
                        int j = 0;
                        for (; j + 4 <= srcW; j += 4) {
                            const float4 v = vload4(0, src + j);
                            vstore8((float8)(v.s0, 0.0f, v.s1, 0.0f, v.s2, 0.0f, v.s3, 0.0f), 0, dst + 2 * j);
                        }
                        for (int i = 2 * j; i < W; ++i) dst[i] = i % 2 == 0 ? src[i / 2] : 0.0f;
                    } else {
                        for (int i = 0; i < W; ++i) dst[i] = i % DW_UP == 0 ? src[i / DW_UP] : 0.0f;
                    }
                } else {
                    int i = 0;
                    for (; i + 8 <= W; i += 8) vstore8((float8)(0.0f), 0, dst + i);
                    for (; i < W; ++i) dst[i] = 0.0f;
                }
            }
            const float* rows[DW_RING];
            #pragma unroll
            for (int r = 0; r < DW_RING; ++r) rows[r] = ring[((iy0 + r) % DW_RING + DW_RING) % DW_RING];
            const int count = min(DWR, oyEnd - oy);
            __global float* out = y + ((long)nc * OH + oy) * OW;
            // Rows that end in a part vector go right to left: that vector may then be stored whole,
            // on into the next row, whose first vector this work-item stores later (when that row is
            // its own and the overrun stays within it). Whole rows go left to right (on 56 and 112
            // wide maps 1.1x faster).
            const int vectors = (OW + 7) / 8, step = OW % 8 == 0 ? 8 : -8;
            int ox0 = step > 0 ? 0 : (vectors - 1) * 8;
            for (int q = 0; q < vectors; ++q, ox0 += step) {
                float8 acc[DWR];
                #pragma unroll
                for (int j = 0; j < DWR; ++j) {
                    acc[j] = (float8)(b);
                    #pragma unroll
                    for (int ky = 0; ky < KH; ++ky) {
                        #pragma unroll
                        for (int kx = 0; kx < KW; ++kx) {
                            const float* p = rows[j * SH + ky * DH] + ox0 * SW + kx * DW;
                            const float8 v = SW == 1 ? vload8(0, p) : vload16(0, p).even;
                            acc[j] = fma((float8)(taps[ky * KW + kx]), v, acc[j]);
                        }
                    }
                }
                #pragma unroll
                for (int j = 0; j < DWR; ++j) {
                    const int left = OW - ox0;
                    const bool whole = left >= 8 || (oy + j + 1 < oyEnd && 8 - left <= OW);
                    if (j < count) DEPTHWISE_STORE(FUSED_ACT(acc[j]), y, out + (long)j * OW + ox0, whole ? 8 : left);
                }
            }
        }
    }
}

// Depthwise backward to the input for CPU devices at any stride (stride 1 uses depthwise_rows with
// FLIP where its rows fit): one work-item per input row, eight inputs at a time, lane by lane over the window taps
// whose output pixel is whole and in range. Global (H, Nb*C), local (1, 1).
__kernel void depthwise_rows_backward_input(__global const float* gy, __global const float* w, __global float* gx,
                                            int C, int H, int W, int OH, int OW, __global const float* storeMask) {
    const int iy = get_global_id(0), nc = get_global_id(1);
    if (iy >= H) return;
    __global const float* plane = gy + (long)nc * OH * OW;
    float taps[KH * KW];
    depthwise_taps(w, nc % C, 0, taps);
    __global float* out = gx + ((long)nc * H + iy) * W;
    for (int ix0 = 0; ix0 < W; ix0 += 8) {
        float8 acc = (float8)(0.0f);
        #pragma unroll
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = iy + PH - ky * DH;
            if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
            __global const float* row = plane + (long)(ty / SH) * OW;
            #pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int t0 = ix0 + PW - kx * DW;
                float8 v;
                if (SW == 2 && t0 >= 0 && (t0 + 1) / 2 + 4 <= OW) {
                    // Stride 2: every other lane reads the next of four consecutive outputs (which
                    // lanes: t0's parity, fixed per tap since ix0 steps by 8), the others read 0.
                    const float4 r = vload4(0, row + (t0 + 1) / 2);
                    v = (t0 & 1) ? (float8)(0.0f, r.s0, 0.0f, r.s1, 0.0f, r.s2, 0.0f, r.s3)
                                 : (float8)(r.s0, 0.0f, r.s1, 0.0f, r.s2, 0.0f, r.s3, 0.0f);
                } else {
                    float lanes[8];
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        const int tx = t0 + j;
                        lanes[j] = (tx >= 0 && tx % SW == 0 && tx / SW < OW) ? row[tx / SW] : 0.0f;
                    }
                    v = vload8(0, lanes);
                }
                acc = fma((float8)(taps[ky * KW + kx]), v, acc);
            }
        }
        DEPTHWISE_STORE(acc, gx, out + ix0, W - ix0);
    }
}

// An inverted residual's expand and depthwise layers in one pass, forward only, for CPU devices
// (the register-blocked family): y = act(depthwise(act(expand(x)))), where expand is a 1x1
// convolution from K channels to E (weights we [E][K], bias be) and depthwise a KHxKW filter per
// expanded channel (wd, bias bd), both with FUSED_ACT. A work-item makes EDC expanded channels of
// one image, whole planes: each expanded row is computed once, eight pixels a vector, into a
// private ring of zero-padded rows (as depthwise_rows'), which the depthwise windows then read
// with one vector load per tap; the expanded map is never stored. Lanes past a row's end are
// zeroed as they are loaded (they may read on into the next row) and stored as the ring's right
// padding. DW_ROW (a multiple of 8) covers the padding, the row and every vector's reach.
// Global (ceil(E / EDC), Nb), local (1, 1).
#ifndef EDC
#define EDC 6
#endif
__kernel void expand_depthwise(__global const float* x, __global const float* we, __global const float* be,
                               __global const float* wd, __global const float* bd, __global float* y,
                               int Nb, int K, int E, int H, int W, int OH, int OW) {
    const int c0 = get_global_id(0) * EDC, n = get_global_id(1);
    if (c0 >= E || n >= Nb) return;
    const int channels = min(EDC, E - c0);
    float ring[EDC][DW_RING][DW_ROW];
    #pragma unroll
    for (int j = 0; j < EDC; ++j)
        for (int s = 0; s < DW_RING; ++s)
            for (int i = 0; i < DW_ROW; ++i) ring[j][s][i] = 0.0f;
    float taps[EDC][KH * KW], biasE[EDC], biasD[EDC];
    #pragma unroll
    for (int j = 0; j < EDC; ++j) {
        const int c = min(c0 + j, E - 1);
        depthwise_taps(wd, c, 0, taps[j]);
        biasE[j] = be[c];
        biasD[j] = bd[c];
    }
    const long plane = (long)H * W, total = (long)Nb * K * plane;
    __global const float* xn = x + (long)n * K * plane;
    const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
    int next = -PH;
    for (int oy = 0; oy < OH; oy += DWR) {
        const int iy0 = oy * SH - PH;
        for (; next < iy0 + DW_RING; ++next) {
            const int slot = (next % DW_RING + DW_RING) % DW_RING;
            if (next < 0 || next >= H) {
                #pragma unroll
                for (int j = 0; j < EDC; ++j)
                    for (int i = 0; i < W; ++i) ring[j][slot][PW + i] = 0.0f;
                continue;
            }
            for (int i = 0; i < W; i += 8) {
                const int8 inside = lane < W - i;
                float8 acc[EDC];
                #pragma unroll
                for (int j = 0; j < EDC; ++j) acc[j] = (float8)(biasE[j]);
                __global const float* src = xn + (long)next * W + i;
                // Whole vectors while they stay inside x (the last row of the last plane ends it).
                const bool whole = (long)(src - x) + (long)(K - 1) * plane + 8 <= total;
                for (int k = 0; k < K; ++k, src += plane) {
                    float8 v;
                    if (whole || i + 8 <= W) {
                        v = vload8(0, src);
                    } else {
                        float part[8];
                        for (int l = 0; l < 8; ++l) part[l] = l < W - i ? src[l] : 0.0f;
                        v = vload8(0, part);
                    }
                    v = select((float8)(0.0f), v, inside);
                    #pragma unroll
                    for (int j = 0; j < EDC; ++j) acc[j] = fma((float8)(we[(long)min(c0 + j, E - 1) * K + k]), v, acc[j]);
                }
                #pragma unroll
                for (int j = 0; j < EDC; ++j)
                    vstore8(select((float8)(0.0f), FUSED_ACT(acc[j]), inside), 0, &ring[j][slot][PW + i]);
            }
        }
        const int count = min(DWR, OH - oy);
        #pragma unroll
        for (int j = 0; j < EDC; ++j) {
            if (j >= channels) break;
            const float* rows[DW_RING];
            #pragma unroll
            for (int r = 0; r < DW_RING; ++r) rows[r] = ring[j][((iy0 + r) % DW_RING + DW_RING) % DW_RING];
            __global float* out = y + (((long)n * E + c0 + j) * OH + oy) * OW;
            for (int ox0 = 0; ox0 < OW; ox0 += 8) {
                float8 acc[DWR];
                #pragma unroll
                for (int r = 0; r < DWR; ++r) {
                    acc[r] = (float8)(biasD[j]);
                    #pragma unroll
                    for (int ky = 0; ky < KH; ++ky) {
                        #pragma unroll
                        for (int kx = 0; kx < KW; ++kx) {
                            const float* p = rows[r * SH + ky * DH] + ox0 * SW + kx * DW;
                            const float8 v = SW == 1 ? vload8(0, p) : vload16(0, p).even;
                            acc[r] = fma((float8)(taps[j][ky * KW + kx]), v, acc[r]);
                        }
                    }
                }
                #pragma unroll
                for (int r = 0; r < DWR; ++r)
                    if (r < count) depthwise_store8(FUSED_ACT(acc[r]), out + (long)r * OW + ox0, min(8, OW - ox0));
            }
        }
    }
}
