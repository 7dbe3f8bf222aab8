/*
 * cpu_math.h - exp and GELU that the compiler can vectorise. glibc's expf
 * and tanhf are scalar calls (~10-20 ns each) and were half of a small
 * model's step (softmax, GELU). These are branch-free, accurate to about
 * 2 ulp over the range softmax and GELU use, and propagate NaN.
 */
#ifndef GPT_CPU_MATH_H
#define GPT_CPU_MATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) by Cody-Waite range reduction, x = k ln2 + r with |r| <= ln2/2,
 * and a degree-6 polynomial for exp(r) (Cephes' expf coefficients). Inputs
 * below -87.3 give ~1e-38 instead of 0 and above 88.3 give 2e38; NaN in,
 * NaN out. */
static inline float cpu_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float k = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    /* 2^k from the bits of k + 1.5 * 2^23 (k sits in the low mantissa bits). */
    float t = k + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &t, 4);
    bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

/* The largest of x[0..n), NaN passed over (-inf if there is nothing
 * else): in 32 lanes, then across them. A compare-and-keep chain over x
 * does not vectorise; a maximum is exact, so the lanes change no bit. */
static inline float cpu_maxf(const float *x, int n) {
    float lane[32], m = -__builtin_inff();
    int nb = n / 32 * 32;
    for (int l = 0; l < 32; l++) lane[l] = -__builtin_inff();
    for (int k = 0; k < nb; k += 32)
        for (int l = 0; l < 32; l++) lane[l] = x[k + l] > lane[l] ? x[k + l] : lane[l];
    for (int k = nb; k < n; k++) m = x[k] > m ? x[k] : m;
    for (int l = 0; l < 32; l++) m = lane[l] > m ? lane[l] : m;
    return m;
}

/* GELU with the tanh approximation (Hendrycks & Gimpel 2016), as GPT-2:
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), with
 * tanh(u) = 1 - 2 / (1 + exp(2u)). */
#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

static inline float cpu_tanhf(float u) { return 1.0f - 2.0f / (1.0f + cpu_expf(2.0f * u)); }

static inline float cpu_gelu(float x) {
    float u = GELU_S * (x + GELU_C * x * x * x);
    return 0.5f * x * (1.0f + cpu_tanhf(u));
}

/* d gelu / dx */
static inline float cpu_gelu_grad(float x) {
    float u = GELU_S * (x + GELU_C * x * x * x);
    float t = cpu_tanhf(u);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x * x);
}

#endif
