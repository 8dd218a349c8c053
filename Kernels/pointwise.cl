// Elementwise functions of the optimization engine and of imported graphs, and their
// derivatives, over n floats, 4 per work-item (VEC_BODY from elementwise.cl). op 0: sigmoid;
// op 1: |x|^p; op 2: hard sigmoid relu6(x + 3) / 6; op 3: hard swish x relu6(x + 3) / 6;
// op 4: erf; op 5: x + p; op 6: GELU x Phi(x) (exact, erf form); op 7: tanh; op 8: the
// stabilized reciprocal 1 / (x + p s(x)), s(x) = 1 for x >= 0, else -1 (relevance propagation).

#define SQRT1_2 0.70710678118654752f
#define TWO_OVER_SQRTPI 1.12837916709551257f
#define ONE_OVER_SQRT2PI 0.39894228040143268f

// erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): one exp and a division, vectorized, where
// the library's erf is a scalar call per lane.
inline float4 erf4(float4 x) {
    const float4 a = fabs(x), t = 1.0f / (1.0f + 0.3275911f * a);
    const float4 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    return copysign(1.0f - poly * exp(-a * a), x);
}

inline float4 pointwise4(float4 x, int op, float p) {
    switch (op) {
    case 0: return 1.0f / (1.0f + exp(-x));
    case 2: return (x + 3.0f < 0.0f ? 0.0f : x + 3.0f > 6.0f ? 6.0f : x + 3.0f) / 6.0f;  // NaN stays NaN
    case 3: return x * (x + 3.0f < 0.0f ? 0.0f : x + 3.0f > 6.0f ? 6.0f : x + 3.0f) / 6.0f;
    case 4: return erf4(x);
    case 5: return x + p;
    case 6: return 0.5f * x * (1.0f + erf4(x * SQRT1_2));
    case 7: return tanh(x);
    case 8: return 1.0f / (x + select((float4)(-p), (float4)(p), x >= 0.0f));
    default: return p == 1.0f ? fabs(x) : pow(fabs(x), (float4)(p));  // |x| without pow's cost
    }
}

// d/dx, times the incoming gradient; |x|^p has derivative 0 at x = 0; the hard functions'
// derivatives at their kinks are PyTorch's (hard sigmoid: 0 at +-3; hard swish: x/3 + 1/2 at +-3).
inline float4 pointwise_grad4(float4 gy, float4 x, int op, float p) {
    switch (op) {
    case 0: {
        const float4 s = 1.0f / (1.0f + exp(-x));
        return gy * s * (1.0f - s);
    }
    case 2: return select((float4)(0.0f), gy / 6.0f, x > -3.0f && x < 3.0f);
    case 3: return select(select(gy, gy * (x / 3.0f + 0.5f), x <= 3.0f), (float4)(0.0f), x < -3.0f);
    case 4: return gy * TWO_OVER_SQRTPI * exp(-x * x);
    case 5: return gy;
    case 6: return gy * (0.5f * (1.0f + erf4(x * SQRT1_2)) + x * ONE_OVER_SQRT2PI * exp(-0.5f * x * x));
    case 7: {
        const float4 t = tanh(x);
        return gy * (1.0f - t * t);
    }
    case 8: {
        const float4 d = x + select((float4)(-p), (float4)(p), x >= 0.0f);
        return -gy / (d * d);
    }
    default: {
        const float4 d = p * pow(fabs(x), (float4)(p - 1.0f)) * sign(x);
        return select(gy * d, (float4)(0.0f), x == 0.0f);
    }
    }
}

__kernel void pointwise(__global const float* x, __global float* y, int n, int op, float p) {
    VEC_BODY(vstore4(pointwise4(vload4(0, x + i), op, p), 0, y + i),
             y[j] = pointwise4((float4)(x[j]), op, p).s0)
}

__kernel void pointwise_backward(__global const float* gy, __global const float* x, __global float* gx, int n, int op, float p) {
    VEC_BODY(vstore4(pointwise_grad4(vload4(0, gy + i), vload4(0, x + i), op, p), 0, gx + i),
             gx[j] = pointwise_grad4((float4)(gy[j]), (float4)(x[j]), op, p).s0)
}
