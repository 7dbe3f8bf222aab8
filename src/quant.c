/*
 * quant.c - the host side of int8 weight-only quantisation (layout in
 * quant.h): quantise, dequantise, check, and the fp16 conversions the
 * scales need (written out here: C11 has no half type, and the library
 * must not depend on F16C or on the compiler's _Float16).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant.h"
#include "util.h"

float gpt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 31) {
        bits = sign | 0x7F800000u | (m << 13); /* inf, NaN */
    } else if (e != 0) {
        bits = sign | ((e + 112) << 23) | (m << 13); /* normal: rebias 15 -> 127 */
    } else {
        float f = ldexpf((float)m, -24); /* subnormal: m * 2^-24, exact in fp32 */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Largest finite fp16 and the smallest positive (subnormal) one. */
#define F16_MAX 65504.0f
#define F16_TINY 5.9604645e-8f /* 2^-24 */

uint16_t gpt_f32_to_f16_up(float f) {
    if (!(f > 0)) return 0; /* 0, negatives and NaN: the scales we store are >= 0 */
    if (f > F16_MAX) return 0x7C00;
    /* Truncate to the fp16 grid, then step up one ulp if that lost anything.
     * Bit patterns of positive fp16 values are ordered like the values, so
     * +1 is the next value up (subnormal to normal and 65504 to inf included). */
    uint16_t h;
    if (f < 6.103515625e-5f) { /* below the smallest normal, 2^-14: a multiple of 2^-24 */
        h = (uint16_t)(f / F16_TINY);
    } else {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        uint32_t e = ((bits >> 23) & 255) - 112, m = (bits >> 13) & 1023;
        h = (uint16_t)((e << 10) | m);
    }
    if (gpt_f16_to_f32(h) < f) h++;
    return h;
}

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

int gpt_q8_quantize(void *dst, const float *w, int rows, int cols, const char *what,
                    gpt_error *err) {
    size_t K = gpt_q8_cols(cols), nb = K / GPT_Q8_BLOCK;
    int8_t *q = dst;
    unsigned char *d = (unsigned char *)dst + (size_t)rows * K;
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        int8_t *qr = q + (size_t)r * K;
        for (size_t b = 0; b < nb; b++) {
            size_t c0 = b * GPT_Q8_BLOCK, c1 = c0 + GPT_Q8_BLOCK < (size_t)cols ? c0 + GPT_Q8_BLOCK : (size_t)cols;
            float amax = 0;
            for (size_t c = c0; c < c1; c++) {
                if (!isfinite(wr[c]))
                    return gpt_fail(err, GPT_ERR_INVALID,
                                    "cannot quantise %s: row %d holds a non-finite weight", what, r);
                amax = fmaxf(amax, fabsf(wr[c]));
            }
            uint16_t h = gpt_f32_to_f16_up(amax / 127.0f);
            if (h == 0x7C00)
                return gpt_fail(err, GPT_ERR_INVALID,
                                "cannot quantise %s to int8: row %d holds a weight of magnitude %g, "
                                "beyond what an fp16 block scale covers (%g)",
                                what, r, (double)amax, 65504.0 * 127);
            float dq = gpt_f16_to_f32(h), inv = dq > 0 ? 1.0f / dq : 0.0f;
            for (size_t c = c0; c < c0 + GPT_Q8_BLOCK; c++) {
                /* dq >= amax/127, so |w/dq| <= 127 (up to the reciprocal's rounding: clamp) */
                long v = c < c1 ? lrintf(wr[c] * inv) : 0;
                qr[c] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            unsigned char *db = d + ((size_t)r * nb + b) * 2;
            db[0] = (unsigned char)h;
            db[1] = (unsigned char)(h >> 8);
        }
    }
    return GPT_OK;
}

void gpt_q8_dequantize(float *w, const void *src, int rows, int cols) {
    size_t K = gpt_q8_cols(cols), nb = K / GPT_Q8_BLOCK;
    const int8_t *q = src;
    const unsigned char *d = (const unsigned char *)src + (size_t)rows * K;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t b = (size_t)c / GPT_Q8_BLOCK;
            w[(size_t)r * cols + c] =
                gpt_f16_to_f32(rd16(d + ((size_t)r * nb + b) * 2)) * (float)q[(size_t)r * K + c];
        }
}

int gpt_q8_check(const void *src, int rows, int cols, char *why, size_t why_len) {
    size_t K = gpt_q8_cols(cols), nb = K / GPT_Q8_BLOCK;
    const int8_t *q = src;
    const unsigned char *d = (const unsigned char *)src + (size_t)rows * K;
    for (int r = 0; r < rows; r++) {
        for (size_t c = 0; c < K; c++) {
            int v = q[(size_t)r * K + c];
            if (v == -128 || (c >= (size_t)cols && v != 0)) {
                snprintf(why, why_len, "row %d, column %zu holds the quant %d (%s)", r, c, v,
                         v == -128 ? "quants are in [-127, 127]" : "padding must be 0");
                return -1;
            }
        }
        for (size_t b = 0; b < nb; b++) {
            uint16_t h = rd16(d + ((size_t)r * nb + b) * 2);
            if ((h & 0x8000) || (h & 0x7C00) == 0x7C00) {
                snprintf(why, why_len, "row %d, block %zu has the scale 0x%04x (scales are finite "
                         "and not negative)", r, b, h);
                return -1;
            }
        }
    }
    return 0;
}
