// permute: y = x with its dimensions reordered (numpy's transpose), rank up to 6, the output's
// dimensions d0..d5 (leading ones padded with 1) and, per output dimension, its stride in the
// input s0..s5. Global size (ceil(d5 / 16), d0 d1 d2 d3 d4): each work-item decodes its row's
// coordinates once and copies 16 consecutive outputs of the row, reading the input at stride s5.
__kernel void permute(__global const float* x, __global float* y,
                      int d1, int d2, int d3, int d4, int d5,
                      int s0, int s1, int s2, int s3, int s4, int s5) {
    const int j0 = get_global_id(0) * 16;
    const long row = get_global_id(1);
    if (j0 >= d5) return;
    long r = row;
    const long i4 = r % d4; r /= d4;
    const long i3 = r % d3; r /= d3;
    const long i2 = r % d2; r /= d2;
    const long i1 = r % d1; r /= d1;
    const long base = r * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4;
    const long out = row * d5;
    const int end = min(j0 + 16, d5);
    for (int j = j0; j < end; ++j) y[out + j] = x[base + (long)j * s5];
}
