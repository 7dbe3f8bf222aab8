/*
 * gemm_libs.c - the model's matrix products through the CPU backend's own
 * kernels and through the BLAS libraries Debian ships, side by side, so
 * that the choice in docs/CPU.md rests on a measurement on the machine at
 * hand. Each library is loaded with dlopen (RTLD_LOCAL: OpenBLAS and BLIS
 * both define cblas_sgemm); a library that is not installed is skipped.
 * Run by bench/gemm_libs.sh; the libraries are needed at run time only.
 *
 *   gemm_libs ours|ours-bf16|ours-amx|ours-avx512bf16|openblas|blis|onednn [reps]
 * prints one JSON line per shape: median GFLOP/s of reps calls. ours-bf16
 * is the bf16 kernel the dispatch picks; ours-amx and ours-avx512bf16 name
 * one (skipped, like a missing library, where this CPU cannot run it).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu_features.h"
#include "cpu/cpu_gemm.h"
#include "cpu/cpu_pool.h"

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
typedef int (*dnnl_sgemm_fn)(char ta, char tb, long M, long N, long K, float alpha, const float *A,
                             long lda, const float *B, long ldb, float beta, float *C, long ldc);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *lib = argc > 1 ? argv[1] : "ours";
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    if (reps < 1 || reps > 1000) reps = 7;
    cblas_sgemm_fn cblas = NULL;
    dnnl_sgemm_fn dnnl = NULL;
    const gemm_kernel *k = NULL;
    if (!strcmp(lib, "ours")) k = cpu_gemm_kernel();
    else if (!strcmp(lib, "ours-bf16")) k = cpu_gemm_kernel_bf16();
    else if (!strcmp(lib, "ours-amx") || !strcmp(lib, "ours-avx512bf16")) {
        int amx = !strcmp(lib, "ours-amx");
        k = amx ? &cpu_gemm_kernel_amx : &cpu_gemm_kernel_avx512_bf16;
        /* cpu_gemm_kernel_bf16() asks Linux for the tile state first */
        int can = amx ? cpu_gemm_kernel_bf16() == &cpu_gemm_kernel_amx
                      : cpu_features_get()->avx512_bf16 && k->kern;
        if (!can) {
            fprintf(stderr, "gemm_libs: this CPU cannot run %s\n", k->name);
            return 0;
        }
    } else {
        const char *so = !strcmp(lib, "openblas") ? "libopenblas.so.0"
                         : !strcmp(lib, "blis")   ? "libblis.so.4"
                         : !strcmp(lib, "onednn") ? "libdnnl.so.2"
                                                  : NULL;
        if (!so) {
            fprintf(stderr, "usage: gemm_libs ours|ours-bf16|ours-amx|ours-avx512bf16|openblas|"
                            "blis|onednn [reps]\n");
            return 2;
        }
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "gemm_libs: %s not installed (%s)\n", so, dlerror());
            return 0;
        }
        if (!strcmp(lib, "onednn")) dnnl = (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm");
        else cblas = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
        if (!cblas && !dnnl) {
            fprintf(stderr, "gemm_libs: no sgemm in %s\n", so);
            return 1;
        }
    }
    cpu_pool_acquire(0);
    /* seed-small (C 512, F 2048, V 50304) at B=4 T=64: N = 256 rows.
     * form: 0 forward y = x w^T (NT), 1 din = dy w (NN), 2 dw = dy^T x (TN) */
    struct { const char *name; int M, N, K, form; } sh[] = {
        {"qkv fwd", 256, 1536, 512, 0},   {"fc fwd", 256, 2048, 512, 0},
        {"fc2 fwd", 256, 512, 2048, 0},   {"head fwd", 256, 50304, 512, 0},
        {"fc2 din", 256, 2048, 512, 1},   {"head din", 256, 512, 50304, 1},
        {"fc dw", 2048, 512, 256, 2},     {"head dw", 50304, 512, 256, 2},
    };
    size_t big = (size_t)50304 * 512 + 256 * 50304;
    float *A = malloc(big * 4), *B = malloc(big * 4), *C = malloc((size_t)50304 * 512 * 4);
    for (size_t i = 0; i < big; i++) A[i] = B[i] = (float)((i * 2654435761u) % 1000) / 1000 - 0.5f;
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int M = sh[s].M, N = sh[s].N, K = sh[s].K, f = sh[s].form;
        int ta = f == 2, tb = f == 0;
        int lda = ta ? M : K, ldb = tb ? K : N;
        double t[1000];
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            if (k)
                cpu_gemm_with(k, M, N, K, 1.0f, A, ta ? 1 : lda, ta ? lda : 1, B, tb ? 1 : ldb,
                              tb ? ldb : 1, C, N, 0);
            else if (cblas)
                cblas(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C,
                      N);
            else
                dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
            if (r >= 0) t[r] = now() - t0;
        }
        qsort(t, reps, sizeof t[0], cmp);
        printf("{\"lib\": \"%s\", \"kernel\": \"%s\", \"shape\": \"%s\", \"M\": %d, "
               "\"N\": %d, \"K\": %d, \"gflops\": %.1f}\n",
               lib, k ? k->name : lib, sh[s].name, M, N, K, 2.0 * M * N * K / t[reps / 2] / 1e9);
        fflush(stdout);
    }
    cpu_pool_release();
    free(A), free(B), free(C);
    return 0;
}
