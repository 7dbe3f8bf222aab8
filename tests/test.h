/*
 * test.h - the smallest test harness that does what we need: named cases,
 * each made of EXPECT checks; a case passes when none of its checks fail.
 * Every test program ends by printing "N passed, M failed" (test_summary),
 * which tests/run.sh adds up across programs.
 *
 *   test_begin("layernorm backward C=%d", C);
 *   EXPECT(err < 1e-5, "max error %g", err);
 *   test_end();
 */
#ifndef GPT_TEST_H
#define GPT_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_, test_case_failed_, test_in_case_;
static char test_name_[256];

static void test_begin(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(test_name_, sizeof test_name_, fmt, ap);
    va_end(ap);
    test_case_failed_ = 0;
    test_in_case_ = 1;
}

static void test_end(void) {
    if (!test_in_case_) return;
    test_in_case_ = 0;
    if (test_case_failed_) {
        test_failed_++;
        printf("FAIL %s\n", test_name_);
    } else {
        test_passed_++;
        printf("ok   %s\n", test_name_);
    }
    fflush(stdout);
}

#define EXPECT(cond, ...)                                                             \
    do {                                                                              \
        if (!(cond)) {                                                                \
            test_case_failed_ = 1;                                                    \
            printf("     %s:%d: expected %s: ", __FILE__, __LINE__, #cond);           \
            printf(__VA_ARGS__);                                                      \
            printf("\n");                                                             \
        }                                                                             \
    } while (0)

/* Ends the program: prints the summary line and returns the exit code. */
static int test_summary(void) {
    test_end();
    printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

/* GPT_TEST_REQUIRE_AMX=1 (set on a machine whose CPU has AMX): a test
 * whose bf16 products ran on another kernel fails, instead of passing on
 * the AVX512-BF16 path unnoticed. kernel: the name of the kernel that ran. */
static inline void test_require_amx(const char *what, const char *kernel) {
    const char *e = getenv("GPT_TEST_REQUIRE_AMX");
    if (!e || strcmp(e, "1")) return;
    test_begin("%s ran on AMX (GPT_TEST_REQUIRE_AMX=1)", what);
    EXPECT(kernel && strstr(kernel, "AMX") && !strstr(kernel, "emulated"),
           "the bf16 products ran on: %s", kernel ? kernel : "(none)");
    test_end();
}

/* Largest |a-b| / (|b| + floor) over n elements; floor keeps near-zero
 * reference values from turning rounding noise into huge ratios. */
static inline double test_max_rel_err(const float *a, const float *b, size_t n, double floor_) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (fabs((double)b[i]) + floor_);
        if (!(d <= worst)) worst = d; /* NaN propagates */
    }
    return worst;
}

/* ||a - b|| / ||b|| (relative L2 error). */
static inline double test_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
