// Peak probes for `loupe bench`: what this device can do at best, measured, not looked up.
// fma_peak: 6 independent float16 FMA chains (12 AVX2 registers with the two operands: no spills) per work-item, `rounds` rounds: FLOP-bound. On CPU
// devices the host launches one work-item per work-group, so that PoCL keeps each float16 in
// registers instead of vectorizing across work-items (which spills 8 x 16 x lanes floats).
// copy_bandwidth: float4 copy: bandwidth-bound (bytes moved = 2 x size).
__kernel void fma_peak(__global float* out, float a, float b, int rounds) {
    const int i = get_global_id(0);
    float16 v0 = (float16)(i * 1e-7f), v1 = v0 + 1e-3f, v2 = v0 + 2e-3f, v3 = v0 + 3e-3f;
    float16 v4 = v0 + 4e-3f, v5 = v0 + 5e-3f;
    const float16 va = (float16)(a), vb = (float16)(b);
    for (int it = 0; it < rounds; ++it) {
        v0 = fma(v0, va, vb); v1 = fma(v1, va, vb); v2 = fma(v2, va, vb);
        v3 = fma(v3, va, vb); v4 = fma(v4, va, vb); v5 = fma(v5, va, vb);
    }
    const float16 s = v0 + v1 + v2 + v3 + v4 + v5;
    out[i] = s.s0 + s.s1 + s.s2 + s.s3 + s.s4 + s.s5 + s.s6 + s.s7 + s.s8 + s.s9 + s.sa + s.sb + s.sc + s.sd + s.se + s.sf;
}
__kernel void copy_bandwidth(__global const float4* src, __global float4* dst) {
    const int i = get_global_id(0);
    dst[i] = src[i];
}
