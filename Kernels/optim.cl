// Optimizer updates, 4 parameters per work-item with float4 loads and stores.

// Adam: m2 = b1 m + (1 - b1) g; v2 = b2 v + (1 - b2) g^2;
// p2 = p - lr * (m2 / c1) / (sqrt(v2 / c2) + eps), with c1 = 1 - b1^t, c2 = 1 - b2^t.
#define ADAM4(P, G, M, V, OUT_P, OUT_M, OUT_V)                                  \
    {                                                                           \
        const float4 m_ = b1 * (M) + (1.0f - b1) * (G);                         \
        const float4 v_ = b2 * (V) + (1.0f - b2) * (G) * (G);                   \
        OUT_M = m_;                                                             \
        OUT_V = v_;                                                             \
        OUT_P = (P) - lr * (m_ / c1) / (sqrt(v_ / c2) + eps);                   \
    }

__kernel void adam(__global const float* p, __global const float* g, __global const float* m, __global const float* v,
                   __global float* p2, __global float* m2, __global float* v2, int n,
                   float lr, float b1, float b2, float eps, float c1, float c2) {
    const int i = get_global_id(0) * 4;
    if (i + 3 < n) {
        float4 op, om, ov;
        ADAM4(vload4(0, p + i), vload4(0, g + i), vload4(0, m + i), vload4(0, v + i), op, om, ov)
        vstore4(op, 0, p2 + i); vstore4(om, 0, m2 + i); vstore4(ov, 0, v2 + i);
    } else {
        for (int j = i; j < n; ++j) {
            float4 op, om, ov;
            ADAM4((float4)(p[j]), (float4)(g[j]), (float4)(m[j]), (float4)(v[j]), op, om, ov)
            p2[j] = op.s0; m2[j] = om.s0; v2[j] = ov.s0;
        }
    }
}
