// Peak probes for `loupe bench`: what this device can do at best, measured, not looked up.
// fma_peak: 16 independent float4 FMA chains per work-item, ITER rounds: FLOP-bound.
// copy_bandwidth: float4 copy: bandwidth-bound (bytes moved = 2 x size).
#ifndef ITER
#define ITER 256
#endif
__kernel void fma_peak(__global float* out, float a, float b) {
    const int i = get_global_id(0);
    float4 v[16];
    for (int k = 0; k < 16; ++k) v[k] = (float4)(i + k, i - k, k, i) * 1e-7f;
    for (int it = 0; it < ITER; ++it)
        for (int k = 0; k < 16; ++k) v[k] = fma(v[k], (float4)(a), (float4)(b));
    float4 s = (float4)(0.0f);
    for (int k = 0; k < 16; ++k) s += v[k];
    out[i] = s.x + s.y + s.z + s.w;
}
__kernel void copy_bandwidth(__global const float4* src, __global float4* dst) {
    const int i = get_global_id(0);
    dst[i] = src[i];
}
