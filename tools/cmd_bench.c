/*
 * cmd_bench.c - gpt bench: time training steps or KV-cache generation on
 * this machine, with random weights and random tokens (as the PyTorch peers
 * in bench/peers do), and print one JSON line in the peers' form.
 *
 * Training: warm-up steps (the first runs eagerly, the second lets a GPU
 * backend record its graphs), then the median wall time of gpt_train_step
 * over --steps, which ends with the host reading the loss. FLOPs per token
 * as the peers count them: 6 N + 6 L T C, N without the position embedding.
 * Memory: the device memory the model holds (parameters, gradients,
 * optimizer, activations, workspaces: mem_gib), the drop in the device's
 * free memory from model creation to the end, plus the parameters
 * (mem_used_gib: also what libraries allocated on their own), and the
 * process's peak resident set (peak_rss_gib: the figure for the CPU).
 *
 * Generation: greedy decoding of --new tokens after --prompt random ids per
 * row; prefill and decode are timed separately; median of --runs.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "../src/tools_internal.h"

static const char *CMD = "bench";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set of this process in bytes (Linux), or 0. */
static size_t peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

typedef struct {
    const char *preset, *device;
    int B, T, steps, warm, prompt, gen, runs, threads, precision, recompute, profile, quant;
} bench_args;

#define O(f) offsetof(bench_args, f)
static const cli_opt device_opts[] = {
    {CLI_STR, 0, "preset", O(preset), "P", "model (see gpt info)", .def = "gpt2"},
    {CLI_CALL, 0, "device", O(device), "DEV", CLI_DEVICE_HELP, .call = cli_set_device},
    {CLI_ENUM, 0, "precision", O(precision), NULL, CLI_PRECISION_HELP,
     .choices = CLI_PRECISIONS, .def = "auto"},
    {CLI_INT, 't', "threads", O(threads), "N", "CPU threads (default: the cores this process may use)", .lo = 1, .hi = 4096},
    {CLI_END},
};

static const cli_opt train_opts[] = {
    {CLI_GROUP, .group = device_opts},
    {CLI_INT, 'B', "batch", O(B), "N", "sequences per step", .def = "4", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 'T', "seq", O(T), "N", "tokens per sequence", .def = "64", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "steps", O(steps), "N", "timed steps", .def = "10", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "warmup", O(warm), "N", "untimed steps first", .def = "3", .lo = 0, .hi = 1 << 24},
    {CLI_FLAG, 0, "recompute", O(recompute), NULL, .help = "recompute GELU in the backward pass"},
    {CLI_FLAG, 0, "profile", O(profile), NULL, .help = "print the time per operation of the last step"},
    {CLI_END},
};

static const cli_opt generate_opts[] = {
    {CLI_GROUP, .group = device_opts},
    {CLI_INT, 'B', "batch", O(B), "N", "rows generated together", .def = "1", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "prompt", O(prompt), "N", "prompt tokens a row", .def = "64", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "new", O(gen), "N", "generated tokens a row", .def = "256", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "runs", O(runs), "N", "timed runs (after one untimed)", .def = "3", .lo = 1,
     .hi = 1 << 24},
    {CLI_ENUM, 0, "quant", O(quant), NULL, "int8: generate with int8 weights (gpt quantize; CPU)",
     .choices = "none|int8", .def = "none"},
    {CLI_END},
};
#undef O

static int bench_run(int argc, char **argv);

static const cli_cmd bench_train_cmd = {
    .name = "bench train",
    .summary = "time training steps",
    .about = "Times training steps with random weights and tokens: the median of --steps after\n"
             "--warmup. Prints one JSON line (stdout) and a summary (stderr).\n",
    .opts = train_opts,
    .footer = "example:\n  gpt bench train --preset seed-small -B 4 -T 256\n",
    .run = bench_run,
};

static const cli_cmd bench_generate_cmd = {
    .name = "bench generate",
    .summary = "time greedy KV-cache generation",
    .about = "Times greedy KV-cache generation with random weights and prompts: prefill and\n"
             "decode apart, median of --runs. Prints one JSON line (stdout) and a summary\n"
             "(stderr).\n",
    .opts = generate_opts,
    .footer = "example:\n  gpt bench generate --preset gpt2 --batch 16 --prompt 64 --new 256\n",
    .run = bench_run,
};

static const cli_cmd *const bench_subs[] = {&bench_train_cmd, &bench_generate_cmd, NULL};

const cli_cmd gpt_bench_cmd = {
    .name = "bench",
    .summary = "time training steps and generation on this machine",
    .about = "Times training steps or greedy KV-cache generation with random weights and\n"
             "tokens (as the PyTorch peers in bench/peers do).\n",
    .subs = bench_subs,
};

static int bench_run(int argc, char **argv) {
    const int train = !strcmp(argv[0], "train");
    bench_args a = {0};
    int prc = cli_parse_args(train ? &bench_train_cmd : &bench_generate_cmd, argc, argv, &a, NULL);
    if (prc >= 0) return prc;
    const char *preset = a.preset;
    long long B = a.B, T = a.T, steps = a.steps, warm = a.warm, prompt = a.prompt, gen = a.gen,
              runs = a.runs, threads = a.threads;
    int recompute = a.recompute, quant = a.quant; /* the order of gpt_quant */
    gpt_runtime rt = {0};
    rt.device = a.device;
    rt.precision = a.precision;
    rt.profile = a.profile;
    rt.threads = (int)threads;
    gpt_error err = {0};
    gpt_config cfg;
    if (gpt_config_preset(preset, &cfg, &err)) return cli_lib_error(CMD, &err);
    /* Everything is checked before the model is made: creating gpt2-xl
     * alone takes seconds and gigabytes. */
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = (int)B;
    o.seq_len = (int)T;
    o.recompute = recompute;
    o.max_steps = (int)(steps + warm + 1);
    gpt_memory_plan plan;
    if (train ? gpt_train_opts_validate(&o, &cfg, &err) ||
                    gpt_memory_estimate(&cfg, &rt, (int)B, (int)T, 1, recompute, &plan, &err)
              : gpt_memory_estimate(&cfg, &rt, (int)B, (int)(prompt + gen), 0, 0, &plan, &err))
        return cli_lib_error(CMD, &err);
    if (!train && prompt + gen > cfg.max_seq_len)
        return cli_usage_error(CMD, "--prompt + --new (%lld) exceeds the context of %s (%d)",
                               prompt + gen, preset, cfg.max_seq_len);
    if (gpt_memory_check(&plan, &rt, &err)) return cli_lib_error(CMD, &err);
    gpt_model *m = NULL;
    int rc = gpt_model_create(&m, &cfg, &rt, 1, &err);
    if (!rc) rc = gpt_model_quantize(m, (gpt_quant)quant, &err);
    if (rc) {
        gpt_model_free(m);
        return cli_lib_error(CMD, &err);
    }
    gpt_rng r;
    gpt_rng_seed(&r, 7);
    int code = EXIT_OK;
    size_t free0 = 0, free1 = 0, total = 0;
    gpt_model_mem_info(m, &free0, &total);
    size_t param_bytes = gpt_model_device_bytes(m); /* parameters only, so far */
    if (train) {
        size_t n = (size_t)B * (T + 1);
        int *tok = malloc(n * sizeof(int));
        double *times = malloc((size_t)steps * sizeof(double));
        if (!tok || !times) rc = gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
        if (!rc) rc = gpt_train_init(m, &o, &err);
        gpt_step_info info = {0};
        long syncs0 = 0;
        for (long long s = 0; !rc && s < warm + steps; s++) {
            for (size_t i = 0; i < n; i++) tok[i] = (int)gpt_rng_below(&r, (uint64_t)cfg.vocab_size);
            if (s == warm) syncs0 = gpt_backend_sync_count(m);
            double t0 = gpt_now();
            rc = gpt_train_step(m, tok, &info, &err);
            if (s >= warm) times[s - warm] = gpt_now() - t0;
        }
        if (!rc) {
            double syncs = (double)(gpt_backend_sync_count(m) - syncs0) / (double)steps;
            double t = median(times, (int)steps), tokens = (double)B * T;
            double N = (double)gpt_config_num_params(&cfg) - (double)cfg.max_seq_len * cfg.n_embd;
            double flops = (6 * N + 6.0 * cfg.n_layer * T * cfg.n_embd) * tokens;
            double dev = (double)gpt_model_device_bytes(m), rss = (double)peak_rss();
            gpt_model_mem_info(m, &free1, &total);
            double used = (double)param_bytes + (free0 > free1 ? (double)(free0 - free1) : 0);
            printf("{\"bench\": \"train\", \"impl\": \"gpt\", \"preset\": \"%s\", \"device\": \"%s\", "
                   "\"precision\": \"%s\", \"batch\": %lld, \"seq\": %lld, \"params\": %.0f, "
                   "\"step_ms\": %.3f, \"tok_s\": %.0f, \"tflops\": %.3f, \"mem_gib\": %.3f, "
                   "\"mem_used_gib\": %.3f, \"peak_rss_gib\": %.3f, \"syncs_per_step\": %.2f, "
                   "\"loss\": %.4f, \"recompute\": %d}\n",
                   preset, gpt_model_device(m), gpt_model_precision(m), B, T, N, t * 1e3,
                   tokens / t, flops / t / 1e12, dev / (1 << 30), used / (1 << 30),
                   rss / (1 << 30), syncs, info.loss, recompute);
            fprintf(stderr, "gpt bench: %s on %s (%s): %.1f ms/step, %.0f tokens/s, %.2f TFLOP/s, "
                            "%.2f GiB device memory, peak RSS %.2f GiB\n",
                    preset, gpt_model_device_desc(m), gpt_model_precision(m), t * 1e3, tokens / t,
                    flops / t / 1e12, dev / (1 << 30), rss / (1 << 30));
            if (rt.profile) {
                char table[8192];
                gpt_profile_report(m, table, sizeof table);
                fprintf(stderr, "%s", table);
            }
        }
        free(tok);
        free(times);
    } else {
        int nb = (int)B, np = (int)prompt, ng = (int)gen;
        int *prompts = malloc((size_t)nb * np * sizeof(int)), *lens = malloc((size_t)nb * sizeof(int));
        const int **rows = malloc((size_t)nb * sizeof(int *));
        int *out = malloc((size_t)nb * ng * sizeof(int)), *out_lens = malloc((size_t)nb * sizeof(int));
        double *pre = malloc((size_t)runs * sizeof(double)), *dec = malloc((size_t)runs * sizeof(double));
        if (!prompts || !lens || !rows || !out || !out_lens || !pre || !dec)
            rc = gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
        for (int b = 0; !rc && b < nb; b++) {
            for (int t = 0; t < np; t++)
                prompts[(size_t)b * np + t] = (int)gpt_rng_below(&r, (uint64_t)cfg.vocab_size);
            rows[b] = prompts + (size_t)b * np;
            lens[b] = np;
        }
        gpt_generate_opts g;
        gpt_generate_opts_default(&g);
        g.max_new_tokens = ng;
        g.sampler.temperature = 0;
        for (long long k = -1; !rc && k < runs; k++) { /* run -1 warms up */
            gpt_generate_stats st;
            rc = gpt_generate(m, rows, lens, nb, &g, out, out_lens, &st, &err);
            if (k >= 0) pre[k] = st.prefill_s, dec[k] = st.decode_s;
        }
        if (!rc) {
            double tp = median(pre, (int)runs), td = median(dec, (int)runs);
            printf("{\"bench\": \"generate\", \"impl\": \"gpt\", \"preset\": \"%s\", \"device\": \"%s\", "
                   "\"precision\": \"%s\", \"quant\": \"%s\", \"batch\": %d, \"prompt\": %d, "
                   "\"new\": %d, \"prefill_tok_s\": %.1f, \"decode_tok_s\": %.1f, \"tok_s\": %.1f, "
                   "\"ms_per_token\": %.4f}\n",
                   preset, gpt_model_device(m), gpt_model_precision(m), gpt_model_quant(m), nb, np, ng,
                   nb * np / tp, nb * (ng - 1) / td, nb * ng / (tp + td), (tp + td) / ng * 1e3);
            fprintf(stderr, "gpt bench: %s generate on %s (%s%s%s), batch %d: prefill %.0f tok/s, decode %.1f tok/s\n",
                    preset, gpt_model_device_desc(m), gpt_model_precision(m),
                    quant ? ", int8 weights, kernel " : "", quant ? gpt_model_quant_kernel(m) : "",
                    nb, nb * np / tp,
                    nb * (ng - 1) / td);
        }
        free(prompts), free(lens), free(rows), free(out), free(out_lens), free(pre), free(dec);
    }
    if (rc) code = cli_lib_error(CMD, &err);
    gpt_model_free(m);
    return code;
}
