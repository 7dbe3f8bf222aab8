/*
 * bench_q8_kernels.c - the CPU's int8 product kernels alone, on gpt2's
 * decoding shapes: GB/s of int8 weights (quants and scales) read, for
 * every kernel this CPU runs, 1 and 2 threads, batch 1 and 8, through
 * cpu_q8_matmul (the backend's split into tasks). Shapes marked DRAM rotate
 * through copies of the matrix filling ~0.5 GB (as a decoding step
 * streams 132 MB of weights: nothing stays in cache); those marked L2 fit
 * one core's L2 and show the kernel's own speed. Each round runs every
 * kernel once, in turn, so that a busy moment of a shared machine falls on
 * all of them alike; the table gives medians over rounds and the range.
 * A plain read of the same bytes ("read") is the ceiling.
 *
 *   build/bench/bench_q8_kernels [--rounds 7] [--threads 1,2] [--batch 1,8]
 *
 * Prints a table and one JSON line per row. docs/CPU.md, "int8 decoding".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cpu/cpu.h"
#include "cpu/cpu_pool.h"
#include "cpu/cpu_q8.h"
#include "quant.h"

enum { MAX_ROUNDS = 31, MAX_K = 8 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The ceiling: every byte of the matrix read once, summed so that the
 * loads are not optimised away; tasks as cpu_q8_matmul cuts them. */
typedef struct {
    const unsigned char *w;
    size_t bytes, chunk;
    unsigned long *sink;
} read_job;

/* (eight sums: the clones vectorise it, 64 bytes a step on AVX-512) */
CPU_CLONES static void read_task(void *ctx, int t) {
    const read_job *j = ctx;
    size_t lo = (size_t)t * j->chunk, hi = lo + j->chunk < j->bytes ? lo + j->chunk : j->bytes;
    unsigned long s[8] = {0};
    for (size_t i = lo; i + 64 <= hi; i += 64)
        for (int l = 0; l < 8; l++) {
            unsigned long v;
            memcpy(&v, j->w + i + 8 * l, 8);
            s[l] += v;
        }
    for (int l = 0; l < 8; l++) j->sink[cpu_thread_index() * 8] += s[l];
}

static void parse_list(const char *s, int *v, int *n) {
    *n = 0;
    for (char *e; *s && *n < 4; s = *e ? e + 1 : e) v[(*n)++] = (int)strtol(s, &e, 10);
}

int main(int argc, char **argv) {
    int rounds = 7, threads[4] = {1, 2}, nt = 2, batch[4] = {1, 8}, nbatch = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) parse_list(argv[++i], threads, &nt);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) parse_list(argv[++i], batch, &nbatch);
        else {
            fprintf(stderr, "usage: bench_q8_kernels [--rounds N] [--threads 1,2] [--batch 1,8]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_q8_kernels: --rounds must be in [1, %d]\n", MAX_ROUNDS);
        return 2;
    }
    int nk;
    const cpu_q8_kernel *const *ks = cpu_q8_kernels(&nk);
    nk--; /* not the portable "c" kernel, always last: the SIMD ones' reference, not a decoder */
    nk = nk > MAX_K - 1 ? MAX_K - 1 : nk;
    const struct { int K, rows, dram; const char *what; } shapes[] = {
        {768, 2304, 1, "qkv"},   {768, 3072, 1, "fc"},     {3072, 768, 1, "fc2"},
        {768, 50304, 1, "head"}, {768, 64, 0, "L2"},       {3072, 256, 0, "L2"},
    };
    printf("int8 kernels, GB/s of weights read (median of %d rounds, range)\n", rounds);
    printf("%-6s %-12s %5s %3s %7s", "shape", "K x rows", "batch", "thr", "read");
    for (int k = 0; k < nk; k++) printf(" %20s", ks[k]->name);
    printf("\n");
    unsigned long sink[64 * 8] = {0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int K = shapes[si].K, OC = shapes[si].rows, maxN = 0;
        for (int b = 0; b < nbatch; b++) maxN = batch[b] > maxN ? batch[b] : maxN;
        size_t mb = gpt_q8_bytes(OC, K), copies = shapes[si].dram ? 512e6 / mb + 1 : 1;
        size_t huge = (size_t)2 << 20, total = (mb * copies + huge - 1) / huge * huge;
        unsigned char *W = aligned_alloc(huge, total);
        float *w = malloc((size_t)OC * K * sizeof(float)), *x = malloc((size_t)maxN * K * sizeof(float));
        float *y = malloc((size_t)maxN * OC * sizeof(float));
        void *scratch = malloc(cpu_q8_act_bytes(maxN, K));
        if (!W || !w || !x || !y || !scratch) {
            fprintf(stderr, "bench_q8_kernels: out of memory\n");
            return 1;
        }
        madvise(W, total, MADV_HUGEPAGE); /* as the CPU backend's weights */
        srand(1);
        for (size_t i = 0; i < (size_t)OC * K; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < (size_t)maxN * K; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
        gpt_error err = {0};
        gpt_q8_quantize(W, w, OC, K, "w", &err);
        for (size_t c = 1; c < copies; c++) memcpy(W + c * mb, W, mb);
        for (int ti = 0; ti < nt; ti++) {
            cpu_pool_acquire(threads[ti]);
            for (int bi = 0; bi < nbatch; bi++) {
                int N = batch[bi];
                double gbs[MAX_K][MAX_ROUNDS];
                size_t cp = 0;
                /* enough repeats for ~0.1 s a kernel at 20 GB/s */
                int reps = (int)(2e9 / 10 / mb / N) + 1;
                for (int r = 0; r < rounds; r++)
                    for (int k = -1; k < nk; k++) {
                        cpu_q8_act a;
                        if (k >= 0) cpu_q8_quantize_act(&a, scratch, x, N, K, ks[k]);
                        double t0 = now();
                        for (int it = 0; it < reps; it++) {
                            const unsigned char *Wc = W + (cp++ % copies) * mb;
                            if (k >= 0) {
                                cpu_q8_matmul(ks[k], y, &a, Wc, OC, NULL, NULL);
                            } else {
                                read_job j = {Wc, mb, 131072, sink};
                                cpu_parallel((int)((mb + j.chunk - 1) / j.chunk), read_task, &j);
                            }
                        }
                        gbs[k + 1][r] = (double)mb * reps / (now() - t0) / 1e9;
                    }
                char label[32];
                snprintf(label, sizeof label, "%d x %d", K, OC);
                printf("%-6s %-12s %5d %3d", shapes[si].what, label, N, threads[ti]);
                for (int k = 0; k <= nk; k++) {
                    qsort(gbs[k], (size_t)rounds, sizeof(double), cmp_double);
                    char cell[40];
                    snprintf(cell, sizeof cell, "%.1f (%.1f-%.1f)", gbs[k][rounds / 2], gbs[k][0],
                             gbs[k][rounds - 1]);
                    if (k) printf(" %20s", cell);
                    else printf(" %7.1f", gbs[0][rounds / 2]);
                }
                printf("\n");
                for (int k = 0; k <= nk; k++)
                    printf("{\"bench\":\"q8_kernels\",\"shape\":\"%s\",\"K\":%d,\"rows\":%d,\"batch\":%d,"
                           "\"threads\":%d,\"kernel\":\"%s\",\"gb_s\":%.2f,\"gb_s_min\":%.2f,"
                           "\"gb_s_max\":%.2f}\n",
                           shapes[si].what, K, OC, N, threads[ti], k ? ks[k - 1]->name : "read",
                           gbs[k][rounds / 2], gbs[k][0], gbs[k][rounds - 1]);
                fflush(stdout);
            }
            cpu_pool_release();
        }
        free(W), free(w), free(x), free(y), free(scratch);
    }
    return sink[0] == 42; /* keeps the reads */
}
