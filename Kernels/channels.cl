// Concat and split along channels, float32 NCHW. Both are one copy of a channel range:
//   dst[n, dstOffset + c, :] = src[n, srcOffset + c, :] for c < count.
// Concat copies each input into its range of the output; split copies ranges out. Each is the
// other's backward pass. Global size (ceil(count*HW / 4), Nb); float4 per work-item when the
// range is 4-aligned.
__kernel void copy_channels(__global const float* src, int srcC, int srcOffset,
                            __global float* dst, int dstC, int dstOffset, int count, int HW) {
    const int i = get_global_id(0) * 4, n = get_global_id(1);
    const int len = count * HW;
    const long s = ((long)n * srcC + srcOffset) * HW;
    const long d = ((long)n * dstC + dstOffset) * HW;
    if (i + 3 < len)
        vstore4(vload4(0, src + s + i), 0, dst + d + i);
    else
        for (int j = i; j < min(i + 4, len); ++j) dst[d + j] = src[s + j];
}
