/*
 * bench_quant.c - int8 against fp32 generation on the CPU, side by side in
 * one run: the same model (random weights: speed does not depend on them)
 * in fp32 and quantised to int8, a prompt per row, then greedy decoding
 * (gpt_kv_decode_greedy, as gpt generate --temperature 0 runs it). Each
 * repeat runs every configuration once, in turn, so that a busy moment of
 * a shared machine falls on all of them alike; the table gives medians and
 * the range over repeats.
 *
 * With --busy, each repeat also runs batch 1 int8 while another process
 * keeps one core busy (a spinning child), to see how the threads share a
 * core (a laptop, a busy server).
 *
 *   build/bench/bench_quant [--preset gpt2] [--prompt 64] [--new 64]
 *       [--batch 1,8] [--repeat 5] [--busy]
 *
 * Prints a table and one JSON line per row.
 */
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpt.h"
#include "util.h"

enum { MAX_CFG = 16, MAX_REP = 64 };

typedef struct {
    const char *label; /* "fp32", "int8", "int8, 1 core busy" */
    gpt_model *m;
    int B, busy;
    double pre[MAX_REP], step[MAX_REP]; /* seconds: prefill, one decode step */
} config;

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(const double *x, int n) {
    double s[MAX_REP];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double min_of(const double *x, int n) {
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] < m ? x[i] : m;
    return m;
}

static double max_of(const double *x, int n) {
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* A child process that keeps one core busy until killed. */
static pid_t start_spinner(void) {
    pid_t p = fork();
    if (p == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return p;
}

static void stop_spinner(pid_t p) {
    if (p <= 0) return;
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

/* One prefill of B prompts and n_new greedy steps; times into slot r. */
static int run_once(config *c, int prompt, int n_new, int r, gpt_error *err) {
    int B = c->B, V = gpt_model_config(c->m)->vocab_size;
    int *buf = malloc((size_t)B * prompt * sizeof(int)), *lens = malloc((size_t)B * sizeof(int));
    const int **rows = malloc((size_t)B * sizeof *rows);
    int *first = malloc((size_t)B * sizeof(int)), *ids = malloc((size_t)B * n_new * sizeof(int));
    int rc = !buf || !lens || !rows || !first || !ids ? gpt_fail(err, GPT_ERR_NOMEM, "out of memory") : 0;
    for (int b = 0; b < B && !rc; b++) {
        for (int t = 0; t < prompt; t++) buf[(size_t)b * prompt + t] = (t * 7919 + b * 131) % V;
        rows[b] = buf + (size_t)b * prompt;
        lens[b] = prompt;
    }
    pid_t spinner = c->busy && !rc ? start_spinner() : 0;
    if (spinner > 0) usleep(20000); /* let it take its core */
    if (!rc) rc = gpt_kv_begin(c->m, B, prompt + n_new, err);
    double t0 = gpt_now();
    if (!rc) rc = gpt_kv_prefill_greedy(c->m, rows, lens, first, err);
    double t1 = gpt_now();
    if (!rc) rc = gpt_kv_decode_greedy(c->m, first, n_new, ids, err);
    double t2 = gpt_now();
    stop_spinner(spinner);
    if (!rc && r >= 0) {
        c->pre[r] = t1 - t0;
        c->step[r] = (t2 - t1) / n_new;
    }
    free(buf), free(lens), free(rows), free(first), free(ids);
    return rc;
}

int main(int argc, char **argv) {
    const char *preset = "gpt2", *batches = "1,8";
    int prompt = 64, n_new = 64, repeat = 5, busy = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--preset")) preset = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--prompt")) prompt = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--new")) n_new = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batches = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--repeat")) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--busy")) busy = 1;
        else {
            fprintf(stderr, "usage: bench_quant [--preset gpt2] [--prompt 64] [--new 64] "
                            "[--batch 1,8] [--repeat 5] [--busy]\n");
            return 2;
        }
    }
    if (prompt < 1 || n_new < 1 || repeat < 1 || repeat > MAX_REP) {
        fprintf(stderr, "bench_quant: --prompt >= 1, --new >= 1, 1 <= --repeat <= %d\n", MAX_REP);
        return 2;
    }
    gpt_error err = {0};
    gpt_config cfg;
    if (gpt_config_preset(preset, &cfg, &err)) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        return 2;
    }
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = GPT_PREC_FP32;
    gpt_model *fp = NULL, *q8 = NULL;
    if (gpt_model_create(&fp, &cfg, &rt, 1, &err) || gpt_model_create(&q8, &cfg, &rt, 1, &err) ||
        gpt_model_quantize(q8, GPT_QUANT_INT8, &err)) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        return 1;
    }
    config cfgs[MAX_CFG];
    int n = 0;
    char *list = strdup(batches), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t && n + 3 <= MAX_CFG; t = strtok_r(NULL, ",", &save)) {
        int B = atoi(t);
        if (B < 1) continue;
        cfgs[n++] = (config){"fp32", fp, B, 0, {0}, {0}};
        cfgs[n++] = (config){"int8", q8, B, 0, {0}, {0}};
        if (busy && B == 1) cfgs[n++] = (config){"int8, 1 core busy", q8, B, 1, {0}, {0}};
    }
    free(list);
    printf("bench_quant: %s (%.1fM parameters), %d threads, %s; int8 kernel %s; prompt %d, %d new "
           "tokens, median of %d (range)\n",
           preset, gpt_model_num_params(fp) / 1e6, omp_get_max_threads(), gpt_model_device_desc(fp),
           gpt_model_quant_kernel(q8), prompt, n_new, repeat);
    for (int r = -1; r < repeat; r++) /* r = -1 warms up */
        for (int i = 0; i < n; i++)
            if (run_once(&cfgs[i], prompt, n_new, r, &err)) {
                fprintf(stderr, "bench_quant: %s batch %d: %s\n", cfgs[i].label, cfgs[i].B, err.msg);
                return 1;
            }
    printf("%-20s %5s %14s %22s %9s\n", "weights", "batch", "prefill tok/s", "decode tok/s (range)",
           "vs fp32");
    double fp32_tps = 0, idle_tps = 0;
    for (int i = 0; i < n; i++) {
        config *c = &cfgs[i];
        double step = median(c->step, repeat), tps = c->B / step;
        double lo = c->B / max_of(c->step, repeat), hi = c->B / min_of(c->step, repeat);
        double pre = c->B * prompt / median(c->pre, repeat);
        if (!strcmp(c->label, "fp32")) fp32_tps = tps;
        if (!strcmp(c->label, "int8")) idle_tps = tps;
        char ratio[32] = "";
        if (strcmp(c->label, "fp32")) snprintf(ratio, sizeof ratio, "%.2fx", tps / fp32_tps);
        printf("%-20s %5d %14.0f %10.1f (%.1f-%.1f) %9s%s\n", c->label, c->B, pre, tps, lo, hi,
               ratio, c->busy ? "" : "");
        if (c->busy)
            printf("%-20s %5s %14s %22s %8.2fx of int8 idle\n", "", "", "", "", tps / idle_tps);
        printf("{\"bench\":\"quant\",\"preset\":\"%s\",\"weights\":\"%s\",\"batch\":%d,\"busy\":%d,"
               "\"threads\":%d,\"kernel\":\"%s\",\"prefill_tok_s\":%.1f,\"decode_tok_s\":%.2f,"
               "\"decode_min\":%.2f,\"decode_max\":%.2f,\"ratio\":%.3f}\n",
               preset, c->label, c->B, c->busy, omp_get_max_threads(),
               c->m == q8 ? gpt_model_quant_kernel(q8) : "fp32", pre, tps, lo, hi,
               c->busy ? tps / idle_tps : tps / fp32_tps);
    }
    gpt_model_free(fp);
    gpt_model_free(q8);
    return 0;
}
