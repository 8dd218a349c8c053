// linear for CPU devices (the register-blocked family), batch-sized work: y = x W^T + b and its
// backward to the input are matrix-vector products per batch row, bound by reading W once.
// No __local memory, local size 1; each work-item streams contiguous rows of W in float8 vectors.
//   x [N, In], W [Out, In], b [Out], y [N, Out], gy [N, Out], gx [N, In].

// y[n, o] = b[o] + sum_i W[o, i] x[n, i]: one work-item per (o, n), the dot product in float8
// lanes. Global (Out, N).
__kernel void linear_rows_forward(__global const float* x, __global const float* w, __global const float* bias,
                                  __global float* y, int hasBias, int Out, int N, int In) {
    const int o = get_global_id(0), n = get_global_id(1);
    if (o >= Out) return;
    __global const float* wr = w + (long)o * In;
    __global const float* xr = x + (long)n * In;
    float8 acc = (float8)(0.0f);
    int i = 0;
    for (; i + 8 <= In; i += 8) acc = fma(vload8(0, wr + i), vload8(0, xr + i), acc);
    float s = (acc.s0 + acc.s1) + (acc.s2 + acc.s3) + (acc.s4 + acc.s5) + (acc.s6 + acc.s7);
    for (; i < In; ++i) s = fma(wr[i], xr[i], s);
    y[(long)n * Out + o] = s + (hasBias ? bias[o] : 0.0f);
}

// gx[n, i] = sum_o gy[n, o] W[o, i]: one work-item per 64 inputs i (four float16s, four cache
// lines of each row of W) and batch row n, walking down W's rows. Each row of W is a page or more
// apart, so a strip of one cache line took twice the time: a TLB miss per line read. Global
// (ceil(In/64), N).
__kernel void linear_rows_backward_input(__global const float* gy, __global const float* w, __global float* gx,
                                         int Out, int N, int In) {
    const int i0 = get_global_id(0) * 64, n = get_global_id(1);
    if (i0 >= In) return;
    __global const float* g = gy + (long)n * Out;
    __global float* out = gx + (long)n * In + i0;
    if (i0 + 64 <= In) {
        float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int o = 0; o < Out; ++o) {
            const float16 s = (float16)(g[o]);
            __global const float* r = w + (long)o * In + i0;
            a0 = fma(s, vload16(0, r), a0);
            a1 = fma(s, vload16(1, r), a1);
            a2 = fma(s, vload16(2, r), a2);
            a3 = fma(s, vload16(3, r), a3);
        }
        vstore16(a0, 0, out);
        vstore16(a1, 1, out);
        vstore16(a2, 2, out);
        vstore16(a3, 3, out);
        return;
    }
    // The last strip, under 64 inputs: whole float16s, then single lanes.
    int i = 0;
    for (; i + 16 <= In - i0; i += 16) {
        float16 acc = (float16)(0.0f);
        for (int o = 0; o < Out; ++o) acc = fma((float16)(g[o]), vload16(0, w + (long)o * In + i0 + i), acc);
        vstore16(acc, 0, out + i);
    }
    for (; i < In - i0; ++i) {
        float s = 0.0f;
        for (int o = 0; o < Out; ++o) s = fma(g[o], w[(long)o * In + i0 + i], s);
        out[i] = s;
    }
}
