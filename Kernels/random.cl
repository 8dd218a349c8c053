// Counter-based Gaussian noise, the same stream on every device and in the CPU reference
// (CPUBackend.noisyCopies): value c of the stream for a seed is
//   sqrt(-2 ln u(2c+1)) * cos(2 pi u(2c+2)),  u(i) = (SplitMix64(key + i * golden) >> 40 + 0.5) / 2^24,
// key = seed + 0x5EED. Any element can be drawn on its own, so a batch of noisy copies is built
// in one pass on the device instead of on the host.

inline ulong splitmix64(ulong z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    return z ^ (z >> 31);
}

inline float uniform24(ulong key, ulong i) {
    return ((float)(splitmix64(key + i * 0x9E3779B97F4A7C15UL) >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// ln u for the stream's u in (0, 1) (always a normal float): u = m 2^e, m in [sqrt(1/2), sqrt(2)),
// ln u = e ln 2 + ln m with ln m by Cephes' logf polynomial (within about an ulp of the C
// library's), in plain arithmetic so that PoCL vectorizes it across work-items (its log() went
// one lane at a time: 5x the time of the rest of the kernel).
inline float log_unit(float u) {
    const int bits = as_int(u);
    int e = (bits >> 23) - 126;
    float m = as_float((bits & 0x007fffff) | 0x3f000000);
    const bool low = m < 0.707106781186547524f;
    e -= low ? 1 : 0;
    m = (low ? m + m : m) - 1.0f;
    const float z = m * m, fe = (float)e;
    float y = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m - 1.2420140846e-1f) * m
                   + 1.4249322787e-1f) * m - 1.6668057665e-1f) * m + 2.0000714765e-1f) * m - 2.4999993993e-1f) * m
              + 3.3333331174e-1f) * m * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return m + y + 0.693359375f * fe;
}

// y[k * n + j] = x[j] + sigma * gaussian(offset + k * n + j) for k < copies, j < n.
// Global (n, copies).
__kernel void noisy_copies(__global const float* x, __global float* y, int n, float sigma,
                           ulong key, ulong offset) {
    const int j = get_global_id(0), k = get_global_id(1);
    if (j >= n) return;
    const ulong c = offset + (ulong)k * (ulong)n + (ulong)j;
    const float u1 = uniform24(key, 2 * c + 1), u2 = uniform24(key, 2 * c + 2);
    y[(long)k * n + j] = fma(sigma, sqrt(-2.0f * log_unit(u1)) * cospi(2.0f * u2), x[j]);
}
