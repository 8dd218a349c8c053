// Reductions of each row of a [rows, cols] float32 array, and their backward passes.
// One work-group of RWG work-items per row (global (RWG, rows)), tree reduction in local memory;
// CPU devices: reduce_rows_items, a row per work-item.
// OP: 0 sum, 1 mean, 2 sum of squares.
//   backward: sum gx = g; mean gx = g / cols; sum of squares gx = 2 x g
// max_rows gives each row's maximum and the index of its first occurrence (stored as a float:
// exact for rows shorter than 2^24; a NaN is the maximum, as in torch.max); its backward routes
// g to that index.
// channel_sum sums [Nb, C, HW] over Nb and HW for each channel: the bias gradient of conv2d
// (and of linear, with HW = 1).

#ifndef RWG
#define RWG 64
#endif

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void reduce_rows(__global const float* x, __global float* y, int cols, int OP) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float s = 0.0f;
    for (int j = l; j < cols; j += RWG) { const float v = x[row + j]; s += OP == 2 ? v * v : v; }
    scratch[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = RWG / 2; h > 0; h >>= 1) {
        if (l < h) scratch[l] += scratch[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) y[get_group_id(1)] = OP == 1 ? scratch[0] / (float)cols : scratch[0];
}

// CPU devices: a row a work-item, eight columns a step, no local memory or barriers.
// Global (rows rounded up to the group).
__kernel void reduce_rows_items(__global const float* x, __global float* y, int cols, int OP, int rows) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    float8 s8 = (float8)(0.0f);
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
        const float8 v = vload8(0, xr + j);
        s8 += OP == 2 ? v * v : v;
    }
    const float4 s4 = s8.lo + s8.hi;
    float s = (s4.x + s4.y) + (s4.z + s4.w);
    for (; j < cols; ++j) s += OP == 2 ? xr[j] * xr[j] : xr[j];
    y[r] = OP == 1 ? s / (float)cols : s;
}

__kernel void reduce_rows_backward(__global const float* gy, __global const float* x, __global float* gx,
                                   int cols, int total, int OP) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const float g = gy[i / cols];
    gx[i] = OP == 0 ? g : OP == 1 ? g / (float)cols : 2.0f * x[i] * g;
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void max_rows(__global const float* x, __global float* values, __global float* indices, int cols) {
    __local float best[RWG];
    __local int where[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float m = -INFINITY;
    int at = -1;
    for (int j = l; j < cols; j += RWG) {
        const float v = x[row + j];
        if (at < 0 || ((v > m || isnan(v)) && !isnan(m))) { m = v; at = j; }  // the first NaN wins, as in PyTorch
    }
    best[l] = m;
    where[l] = at;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = RWG / 2; h > 0; h >>= 1) {
        if (l < h) {
            const int other = where[l + h];
            const float a = best[l], b = best[l + h];
            const bool better = isnan(b) ? !isnan(a) || other < where[l] : !isnan(a) && (b > a || (b == a && other < where[l]));
            if (other >= 0 && (where[l] < 0 || better)) {
                best[l] = best[l + h];
                where[l] = other;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) { values[get_group_id(1)] = best[0]; indices[get_group_id(1)] = (float)where[0]; }
}

__kernel void max_rows_backward(__global const float* gy, __global const float* indices, __global float* gx,
                                int cols, int total) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int row = i / cols;
    gx[i] = (i - row * cols) == (int)indices[row] ? gy[row] : 0.0f;
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void channel_sum(__global const float* x, __global float* y, int Nb, int C, int HW) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const int c = get_group_id(1);
    float s = 0.0f;
    for (int n = 0; n < Nb; ++n) {
        __global const float* plane = x + ((long)n * C + c) * HW;
        for (int j = l; j < HW; j += RWG) s += plane[j];
    }
    scratch[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = RWG / 2; h > 0; h >>= 1) {
        if (l < h) scratch[l] += scratch[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) y[c] = scratch[0];
}

// Tree reduction of RWG values in local memory with OP(a, b); every work-item gets the result.
#define RWG_REDUCE(scratch, value, OP) \
    scratch[l] = (value); \
    barrier(CLK_LOCAL_MEM_FENCE); \
    for (int h = RWG / 2; h > 0; h >>= 1) { \
        if (l < h) scratch[l] = OP(scratch[l], scratch[l + h]); \
        barrier(CLK_LOCAL_MEM_FENCE); \
    }

#define RWG_ADD(a, b) ((a) + (b))

// Grad-CAM++'s channel weights (Chattopadhay et al., as pytorch-grad-cam computes them): for
// each row (a channel's [H*W] plane of activations a and gradients g),
// w = sum over g != 0 of ReLU(g) g^2 / (2 g^2 + sum(a) g^3 + 1e-6). Global (RWG, rows).
__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void gradcampp_weights(__global const float* a, __global const float* g, __global float* w, int cols) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float s = 0.0f;
    for (int j = l; j < cols; j += RWG) s += a[row + j];
    RWG_REDUCE(scratch, s, RWG_ADD)
    const float sumA = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float t = 0.0f;
    for (int j = l; j < cols; j += RWG) {
        const float v = g[row + j];
        if (v == 0.0f) continue;
        const float v2 = v * v;
        t += fmax(v, 0.0f) * v2 / (2.0f * v2 + sumA * v2 * v + 1e-6f);
    }
    RWG_REDUCE(scratch, t, RWG_ADD)
    if (l == 0) w[get_group_id(1)] = scratch[0];
}

// Each row (a class activation map's plane) made non-negative and scaled to [0, 1] as
// pytorch-grad-cam does: y = ReLU(x), then (y - min y) / (max(y - min y) + 1e-7).
// Global (RWG, rows).
__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void normalize_rows(__global const float* x, __global float* y, int cols) {
    __local float scratch[RWG];
    const int l = get_local_id(0);
    const long row = (long)get_group_id(1) * cols;
    float lo = INFINITY;
    for (int j = l; j < cols; j += RWG) lo = fmin(lo, fmax(x[row + j], 0.0f));
    RWG_REDUCE(scratch, lo, fmin)
    lo = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float hi = 0.0f;
    for (int j = l; j < cols; j += RWG) hi = fmax(hi, fmax(x[row + j], 0.0f) - lo);
    RWG_REDUCE(scratch, hi, fmax)
    const float range = 1e-7f + scratch[0];
    for (int j = l; j < cols; j += RWG) y[row + j] = (fmax(x[row + j], 0.0f) - lo) / range;
}
