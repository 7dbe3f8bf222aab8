/*
 * quant.h - int8 weight-only quantisation ("Q8_0", as ggml calls it): the
 * one layout a quantised matrix has in memory, on every device and in
 * checkpoint files, and the host-side functions that make, check and undo
 * it. Kernels that multiply by such a matrix live in the backends.
 *
 * A (rows, cols) matrix is cut, row by row, into blocks of 32 weights
 * that share one scale d: w ~= d * q with q an int8 in [-127, 127].
 * K = cols rounded up to a multiple of 32; the padding weights are q = 0.
 *
 *   int8  q[rows][K]        at byte 0
 *   fp16  d[rows][K / 32]   at byte rows * K (IEEE binary16, little-endian)
 *
 * 8.5 bits a weight (fp32: 32). Quants and scales are two arrays, not
 * interleaved blocks, so that each row's quants are one aligned run that
 * vector loads take whole. -128 is excluded so that |q| fits an int8 (the
 * AVX2 kernel multiplies |w| by sign-adjusted activations).
 *
 * The scale of a block is the smallest fp16 value >= max|w| / 127, and q
 * = round(w / d) with that stored d, so every weight is within d/2 of d*q
 * (the bound the tests use). A block of zeros has d = 0.
 */
#ifndef GPT_QUANT_H
#define GPT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"

#define GPT_Q8_BLOCK 32

/* Row length in quants: cols rounded up to a multiple of 32. */
static inline size_t gpt_q8_cols(int cols) {
    return ((size_t)cols + GPT_Q8_BLOCK - 1) / GPT_Q8_BLOCK * GPT_Q8_BLOCK;
}
/* Bytes of a quantised (rows, cols) matrix: rows * K quants + rows * K/32 scales. */
static inline size_t gpt_q8_bytes(int rows, int cols) {
    size_t K = gpt_q8_cols(cols);
    return (size_t)rows * K + (size_t)rows * (K / GPT_Q8_BLOCK) * 2;
}

/* IEEE binary16 <-> binary32. to_f16_up rounds up (towards +inf) and
 * returns 0x7C00 (+inf) for values beyond 65504. */
float gpt_f16_to_f32(uint16_t h);
uint16_t gpt_f32_to_f16_up(float f);

/* Quantises w (rows, cols), row-major fp32, into dst (gpt_q8_bytes).
 * Refuses (GPT_ERR_INVALID, naming `what`) a non-finite weight or a block
 * whose scale fp16 cannot hold (max |w| above 65504 * 127). */
int gpt_q8_quantize(void *dst, const float *w, int rows, int cols, const char *what,
                    gpt_error *err);
/* w (rows, cols) = d * q of a quantised matrix. */
void gpt_q8_dequantize(float *w, const void *src, int rows, int cols);
/* Checks a quantised matrix from outside (a file): every quant in
 * [-127, 127], padding quants zero, every scale finite and not negative.
 * Returns 0, or -1 with the reason in why. */
int gpt_q8_check(const void *src, int rows, int cols, char *why, size_t why_len);

#endif
