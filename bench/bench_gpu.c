/*
 * bench_gpu.c - times training steps and KV-cache generation through the
 * public API and prints one JSON line, in the form of the PyTorch peers
 * (bench/peers/torch_gpt.py and torch_generate.py), so bench/gpu.sh can put them side by side.
 *
 *   bench_gpu train --preset P -B b -T t [--steps n] [--warmup n] [--device cuda]
 *                   [--precision bf16|fp32] [--recompute] [--profile]
 *   bench_gpu generate --preset P --batch b [--prompt 64] [--new 256] [--runs n]
 *                      [--device cuda] [--precision bf16|fp32]
 *
 * --profile times every operation of the last step with device events (no
 * graphs) and prints the model's table on stderr.
 *
 * Training: random token batches (the peer's data), three warm-up steps
 * (the first runs eagerly, the second records the CUDA graphs), then the
 * median over --steps of the wall time of gpt_train_step, which ends with
 * the host reading the step's loss. FLOPs per token as the peer counts
 * them: 6 N + 6 L T C, N without the position embedding. Memory: the device
 * memory the model took, measured as the drop in free memory from before
 * the model was created to after training ran (nothing is allocated inside
 * a step, so this is also the peak).
 *
 * Generation: greedy, one prompt of --prompt random ids per row, then --new
 * tokens; the time of prefill + all decode steps (the peer's generate()
 * call), median of three after one warm-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt.h"
#include "util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n ? v[n / 2] : 0;
}

/* Free device memory as a fresh backend of that device sees it. */
static size_t device_free(const gpt_runtime *rt) {
    gpt_backend *be;
    gpt_error err;
    size_t f = 0, t = 0;
    if (gpt_backend_create(&be, rt, &err)) return 0;
    be->ops->mem_info(be, &f, &t);
    gpt_backend_destroy(be);
    return f;
}

static int usage(void) {
    fprintf(stderr,
            "usage: bench_gpu train --preset P -B b -T t [--steps n] [--warmup n] [--device d] "
            "[--precision bf16|fp32] [--recompute] [--profile]\n"
            "       bench_gpu generate --preset P --batch b [--prompt n] [--new n] [--runs n] "
            "[--device d] [--precision bf16|fp32]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *mode = argv[1], *preset = "gpt2", *device = "cuda", *prec = "bf16";
    int B = 4, T = 512, steps = 20, recompute = 0, batch = 1, prompt = 64, gen = 256;
    int warm = 3, runs = 4, profile = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--recompute")) recompute = 1;
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (!v) return usage();
        else if (!strcmp(a, "--preset")) preset = v, i++;
        else if (!strcmp(a, "-B")) B = atoi(v), i++;
        else if (!strcmp(a, "-T")) T = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--device")) device = v, i++;
        else if (!strcmp(a, "--precision")) prec = v, i++;
        else if (!strcmp(a, "--batch")) batch = atoi(v), i++;
        else if (!strcmp(a, "--prompt")) prompt = atoi(v), i++;
        else if (!strcmp(a, "--new")) gen = atoi(v), i++;
        else if (!strcmp(a, "--warmup")) warm = atoi(v), i++;
        else if (!strcmp(a, "--runs")) runs = atoi(v), i++;
        else return usage();
    }
    gpt_error err;
    gpt_config cfg;
    if (gpt_config_preset(preset, &cfg, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return 2;
    }
    gpt_config_resolve(&cfg);
    gpt_runtime rt;
    memset(&rt, 0, sizeof rt);
    rt.device = device;
    rt.precision = !strcmp(prec, "fp32") ? GPT_PREC_FP32 : GPT_PREC_BF16;
    rt.profile = profile;
    if (steps < 1 || warm < 0 || runs < 1 || runs > 16) return usage();
    size_t free0 = device_free(&rt);
    gpt_model *m;
    if (gpt_model_create(&m, &cfg, &rt, 1, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return 1;
    }
    gpt_rng rng;
    gpt_rng_seed(&rng, 5);
    double flops_tok =
        6.0 * (double)(gpt_config_num_params(&cfg) - (size_t)cfg.max_seq_len * cfg.n_embd) +
        6.0 * cfg.n_layer * (double)T * cfg.n_embd;

    if (!strcmp(mode, "train")) {
        gpt_train_opts o;
        gpt_train_opts_default(&o);
        o.batch_size = B, o.seq_len = T, o.recompute = recompute, o.lr = 3e-4f, o.grad_clip = 1.f;
        o.max_steps = 1000000;
        if (gpt_train_init(m, &o, &err)) {
            fprintf(stderr, "bench_gpu: %s\n", err.msg);
            return 1;
        }
        int total = warm + steps;
        size_t per = (size_t)B * (T + 1);
        int *tok = malloc(per * (size_t)total * sizeof(int));
        for (size_t i = 0; i < per * (size_t)total; i++)
            tok[i] = (int)gpt_rng_below(&rng, (uint64_t)cfg.vocab_size);
        double *ms = malloc((size_t)total * sizeof(double));
        gpt_step_info info;
        long syncs = 0;
        for (int s = 0; s < total; s++) {
            long s0 = gpt_backend_sync_count(m);
            double t0 = gpt_now();
            if (gpt_train_step(m, tok + per * (size_t)s, &info, &err)) {
                fprintf(stderr, "bench_gpu: step %d: %s\n", s, err.msg);
                return 1;
            }
            ms[s] = (gpt_now() - t0) * 1e3;
            syncs = gpt_backend_sync_count(m) - s0;
        }
        size_t free1 = device_free(&rt);
        if (profile) {
            static char rep[1 << 16];
            gpt_profile_report(m, rep, sizeof rep);
            fprintf(stderr, "profile of the last step, %s B=%d T=%d %s:\n%s", preset, B, T,
                    gpt_model_precision(m), rep);
        }
        double t = median(ms + warm, steps);
        double tok_s = (double)B * T / (t * 1e-3);
        printf("{\"bench\":\"train\",\"impl\":\"gpt\",\"preset\":\"%s\",\"device\":\"%s\","
               "\"precision\":\"%s\",\"batch\":%d,\"seq\":%d,\"recompute\":%d,\"step_ms\":%.3f,"
               "\"tok_s\":%.0f,\"tflops\":%.1f,\"mem_gib\":%.2f,\"loss\":%.4f,"
               "\"syncs_per_step\":%ld,\"first_step_ms\":%.1f}\n",
               preset, device, gpt_model_precision(m), B, T, recompute, t, tok_s,
               flops_tok * tok_s / 1e12, free0 > free1 ? (double)(free0 - free1) / (1 << 30) : 0.0,
               info.loss, syncs, ms[0]);
        free(tok);
        free(ms);
    } else if (!strcmp(mode, "generate")) {
        int ctx = prompt + gen;
        if (ctx > cfg.max_seq_len) ctx = cfg.max_seq_len;
        if (gpt_kv_begin(m, batch, ctx, &err)) {
            fprintf(stderr, "bench_gpu: %s\n", err.msg);
            return 1;
        }
        int *ids = malloc((size_t)batch * prompt * sizeof(int));
        const int **prompts = malloc((size_t)batch * sizeof(int *));
        int *lens = malloc((size_t)batch * sizeof(int)), *next = malloc((size_t)batch * sizeof(int));
        float *logits = malloc((size_t)batch * cfg.vocab_size * sizeof(float));
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < prompt; i++)
                ids[(size_t)b * prompt + i] = (int)gpt_rng_below(&rng, (uint64_t)cfg.vocab_size);
            prompts[b] = ids + (size_t)b * prompt;
            lens[b] = prompt;
        }
        double times[16], decode_ms[16];
        for (int r = 0; r < runs; r++) {
            double t0 = gpt_now();
            if (gpt_kv_begin(m, batch, ctx, &err) || gpt_kv_prefill(m, prompts, lens, logits, &err)) {
                fprintf(stderr, "bench_gpu: %s\n", err.msg);
                return 1;
            }
            double t1 = gpt_now();
            for (int s = 0; s < gen && prompt + s < ctx; s++) {
                /* greedy choice on the host, one row per thread */
#pragma omp parallel for schedule(static)
                for (int b = 0; b < batch; b++) {
                    const float *l = logits + (size_t)b * cfg.vocab_size;
                    int best = 0;
                    for (int j = 1; j < cfg.vocab_size; j++)
                        if (l[j] > l[best]) best = j;
                    next[b] = best;
                }
                if (gpt_kv_decode(m, next, logits, &err)) {
                    fprintf(stderr, "bench_gpu: decode %d: %s\n", s, err.msg);
                    return 1;
                }
            }
            double t2 = gpt_now();
            times[r] = t2 - t0;
            decode_ms[r] = (t2 - t1) * 1e3 / gen;
        }
        int skip = runs > 1; /* the first run warms up */
        double t = median(times + skip, runs - skip), dms = median(decode_ms + skip, runs - skip);
        printf("{\"bench\":\"generate\",\"impl\":\"gpt\",\"preset\":\"%s\",\"device\":\"%s\","
               "\"precision\":\"%s\",\"batch\":%d,\"prompt\":%d,\"new\":%d,\"tok_s\":%.1f,"
               "\"ms_per_token\":%.3f,\"decode_ms_per_step\":%.3f}\n",
               preset, device, gpt_model_precision(m), batch, prompt, gen, batch * gen / t,
               t / gen * 1e3, dms);
        free(ids), free(prompts), free(lens), free(next), free(logits);
    } else {
        return usage();
    }
    gpt_model_free(m);
    return 0;
}
