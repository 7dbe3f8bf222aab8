/*
 * cmd_train.c - gpt train: train a model on a text file or token shards,
 * with a live progress line, validation every N steps, a JSONL metrics
 * log, atomic checkpoints (exact resume), a loss curve in SVG and a sample
 * at the end.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "dist_launch.h"
#include "gpt.h"
#include "gpt_data.h"
#include "gpt_dist.h"
#include "gpt_tokenizer.h"
#include "plot.h"
#include "train_args.h"
#include "train_out.h"
#include "train_util.h"
#include "../src/tools_internal.h"

static const char *CMD = "train"; /* "train (rank R)" on data-parallel ranks other than 0 */
/* Rank 0 alone prints progress and writes metrics, plots and checkpoints;
 * every rank prints its errors. */
static int is_root = 1;
#define SAY(...)                                                                            \
    do {                                                                                    \
        if (is_root) fprintf(stderr, __VA_ARGS__);                                          \
    } while (0)
/* The lines describing a run (data, model, memory, device) are gathered
 * and printed once every check has passed, so that a refused run prints
 * its one error line and nothing else. */
static char summary[4096];
#define ADD(...)                                                                            \
    snprintf(summary + strlen(summary), sizeof summary - strlen(summary), __VA_ARGS__)

const cli_cmd gpt_train_cmd = {
    .name = "train",
    .summary = "train a model on a text file or token shards",
    .usage = "--data FILE [options]",
    .about = "Trains a GPT on a text file (tokenised on the fly) or on token shards made by\n"
             "`gpt tokenize`. Writes OUT/model.ckpt (with optimizer state: resumable),\n"
             "OUT/metrics.jsonl and OUT/loss.svg, and prints a sample at the end.\n",
    .opts = train_opts,
    .footer = "example:\n"
              "  gpt train --preset tiny --data data/tinyshakespeare.txt --out runs/tiny\n",
    .run = gpt_cmd_train,
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The tiny preset (the default run) has defaults of its own, chosen so that
 * `make run` reaches its validation target in minutes on two CPU cores
 * (docs/BENCHMARKS.md has the runs that chose them): 16 short sequences a
 * step learn faster per token than 8 x 128 or 4 x 256 (more independent
 * windows a batch), and a higher learning rate suits a model this small.
 * Flags given on the command line win. */
static void tiny_defaults(train_args *a) {
    if (!train_args_given(a, "batch")) a->opts.batch_size = 16;
    if (!train_args_given(a, "seq")) a->opts.seq_len = 64, a->opts_T = 1;
    if (!train_args_given(a, "steps")) a->opts.max_steps = 1000;
    if (!train_args_given(a, "lr")) a->opts.lr = 2e-3f;
    if (!train_args_given(a, "min-lr")) a->opts.min_lr = 2e-4f;
    if (!train_args_given(a, "warmup")) a->opts.warmup_steps = 30;
    if (!train_args_given(a, "eval-every")) a->eval_every = 200;
    /* Every evaluation covers the whole (small) validation split, so the
     * figures along the way compare with the final one. */
    if (!train_args_given(a, "eval-batches")) a->eval_batches = 0;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Mean validation loss over up to max_batches batches (0 = all) of B x R
 * windows: rank r takes rows [r B, (r + 1) B) of each, which are batch
 * i R + r of B windows, so that R ranks cover the windows one process
 * with the whole batch covers. */
static int evaluate(gpt_model *m, const gpt_data *d, int B, int T, int rank, int R,
                    int max_batches, int *buf, double *loss, gpt_error *err) {
    size_t nb = gpt_data_val_batches(d, B * R, T);
    if (nb == 0) return gpt_fail(err, GPT_ERR_INVALID,
                                 "the validation split (%zu tokens) is shorter than one batch of "
                                 "%d x %d: use a smaller --batch or --seq",
                                 gpt_data_val_tokens(d), B * R, T + 1);
    if (max_batches > 0 && (size_t)max_batches < nb) nb = (size_t)max_batches;
    double sum = 0;
    for (size_t i = 0; i < nb; i++) {
        double l;
        int rc = gpt_data_val_batch(d, i * R + rank, B, T, buf, err);
        if (!rc) rc = gpt_eval_loss(m, buf, B, T, &l, err);
        if (rc) return rc;
        sum += l;
    }
    int rc = gpt_model_allreduce(m, &sum, 1, 0, err);
    if (rc) return rc;
    *loss = sum / ((double)nb * R);
    return GPT_OK;
}

/* A number for metrics.jsonl: JSON has no NaN or Infinity, so a skipped
 * step's non-finite loss is written as null. buf holds 32 bytes. */
static const char *json_num(char *buf, const char *fmt, double v) {
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, fmt, v);
    return buf;
}

typedef struct {
    double *x, *y;
    size_t n, cap;
} series_buf;

static void series_add(series_buf *s, double x, double y) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        double *nx = realloc(s->x, nc * sizeof *nx), *ny = nx ? realloc(s->y, nc * sizeof *ny) : NULL;
        if (!nx || !ny) {
            if (nx) s->x = nx;
            return; /* the plot is a nicety: drop points rather than fail */
        }
        s->x = nx;
        s->y = ny;
        s->cap = nc;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

int gpt_cmd_train(int argc, char **argv) {
    train_args a;
    int rc = train_args_parse(argc, argv, &a);
    if (rc == TRAIN_ARGS_HELP) {
        cli_print_help(&gpt_train_cmd, stdout);
        return EXIT_OK;
    }
    if (rc) return rc;
    /* The launcher: the ranks it starts run this command again. */
    int launch_test = 0; /* test builds: the launcher's plumbing without GPUs (below) */
#ifdef GPT_TEST_BUILD
    launch_test = getenv("GPT_TEST_LAUNCH") != NULL;
#endif
    if (a.gpus && !getenv(GPT_DIST_ENV_RANK)) {
        if (!gpt_backend_available("cuda") && !launch_test)
            return cli_usage_error(CMD, "--gpus: no usable GPU here (or a build without CUDA: make "
                                        "CUDA=1); on CPUs, start the ranks with mpirun -np N gpt train ...");
        return dist_launch(argc, argv, a.gpus);
    }
    gpt_error err = {0};
    gpt_dist *dist = NULL;
    if ((rc = gpt_dist_init(&dist, a.dist_timeout, &err))) return cli_lib_error(CMD, &err);
    /* multi: a communicator takes part (several ranks, or one started by a
     * launcher); R ranks share each step. */
    int rank = gpt_dist_rank(dist), R = gpt_dist_size(dist);
    int multi = strcmp(gpt_dist_launcher(dist), "none") != 0;
    static char rank_cmd[32];
    if (rank) {
        snprintf(rank_cmd, sizeof rank_cmd, "train (rank %d)", rank);
        CMD = rank_cmd;
        is_root = 0;
    }
    if (a.gpus && a.gpus != R) {
        gpt_dist_free(dist);
        return cli_usage_error(CMD, "--gpus %d, but this job has %d ranks", a.gpus, R);
    }
#ifdef GPT_TEST_BUILD
    /* GPT_TEST_LAUNCH=ok: every rank exits 0; =fail: rank 1 exits 3 at once
     * and the others wait to be stopped; =wait: every rank waits (the test
     * kills one). tests/test_dist_launch.sh. */
    if (launch_test && getenv(GPT_DIST_ENV_RANK)) {
        const char *mode = getenv("GPT_TEST_LAUNCH");
        fprintf(stderr, "test launch: rank %d of %d, GPU %d\n", rank, R, gpt_dist_local_rank(dist));
        gpt_dist_free(dist);
        if (!strcmp(mode, "ok")) return EXIT_OK;
        if (!strcmp(mode, "fail") && rank == 1) {
            fprintf(stderr, "gpt train (rank 1): failing as asked\n");
            return 3;
        }
        sleep(120);
        return EXIT_OK;
    }
#endif
    a.rt.device_index = gpt_dist_local_rank(dist);
    gpt_model *m = NULL;
    gpt_tokenizer *tok = NULL;
    gpt_data *data = NULL;
    int *batch = NULL, *vbuf = NULL;
    char *ckpt = NULL, *metrics_path = NULL, *svg_path = NULL;
    FILE *metrics = NULL;
    train_out outdir = {0};
    series_buf tr = {0}, va = {0};
    gpt_train_state st = {0};
    int exit_code = EXIT_OK, clean_end = 0;
    const char *out = a.out;
    char default_out[300];
    if (!out) {
        snprintf(default_out, sizeof default_out, "runs/%s", a.preset);
        out = default_out;
    }
    ckpt = join(out, "model.ckpt");
    metrics_path = join(out, "metrics.jsonl");
    svg_path = join(out, "loss.svg");
    if (!ckpt || !metrics_path || !svg_path) {
        fprintf(stderr, "gpt train: out of memory\n");
        exit_code = EXIT_RUNTIME;
        goto done;
    }
    /* The output folder is checked (and made) before anything is read or
     * built: a run must not train for hours and then find it cannot save. */
    if (is_root && (rc = train_out_open(&outdir, out, &err))) goto lib_fail;
    metrics = outdir.metrics_f;
    const char *resume_path = a.resume ? a.resume : (a.resume_flag ? ckpt : NULL);
    if (!resume_path && !strcmp(a.preset, "tiny")) tiny_defaults(&a);

    /* ---------------------------------------------- model and trainer state */
    if (resume_path) {
        gpt_config rcfg;
        if ((rc = gpt_checkpoint_read_state(resume_path, &rcfg, &st, &err))) goto lib_fail;
        if (!st.has_train) {
            exit_code = cli_usage_error(CMD, "'%s' holds no trainer state: use --init to start from its weights",
                                        resume_path);
            goto done;
        }
        int steps = a.opts.max_steps;
        int steps_given = train_args_given(&a, "steps");
        a.opts = st.opts;
        if (steps_given) a.opts.max_steps = steps;
        /* A checkpoint holds the rows of a step over all ranks: this job's
         * ranks share them. */
        if (a.opts.batch_size % R) {
            exit_code = cli_usage_error(CMD, "'%s' was trained with %d rows a micro-batch, which %d ranks cannot share evenly",
                                        resume_path, a.opts.batch_size, R);
            goto done;
        }
        a.opts.batch_size /= R;
        if ((rc = gpt_model_load(&m, resume_path, &a.rt, &err))) goto lib_fail;
        if (gpt_model_step(m) >= a.opts.max_steps) {
            SAY("gpt train: '%s' already reached step %d of %d: pass --steps N to train longer\n",
                    resume_path, gpt_model_step(m), a.opts.max_steps);
        }
    }
    if (!resume_path) {
        gpt_config cfg;
        if ((rc = train_args_config(&a, &cfg, &err))) goto lib_fail;
        a.cfg = cfg;
    }
    /* Tokenizer: the checkpoint's when resuming or fine-tuning. */
    {
        const char *tname = a.tokenizer;
        const void *blob = NULL;
        size_t blen = 0;
        gpt_model *src = m;
        gpt_model *init = NULL;
        if (a.init) {
            if ((rc = gpt_model_load(&init, a.init, &a.rt, &err))) goto lib_fail;
            if (strcmp(gpt_model_quant(init), "none")) {
                gpt_model_free(init);
                exit_code = cli_usage_error(CMD, "'%s' is an int8 model, for inference only: "
                                                 "fine-tune from the fp32 model it came from",
                                            a.init);
                goto done;
            }
            src = init;
        }
        if (src) tname = gpt_model_tokenizer(src, &blob, &blen);
        rc = blob ? gpt_tokenizer_load_memory(&tok, blob, blen, &err)
                  : gpt_tokenizer_open(&tok, tname, &err);
        if (rc) {
            gpt_model_free(init);
            goto lib_fail;
        }
        if (init) {
            m = init;
            a.cfg = *gpt_model_config(m);
        }
    }
    if (!m) {
        if (!a.cfg_set[5]) a.cfg.vocab_size = gpt_tokenizer_vocab_size(tok);
        gpt_config_resolve(&a.cfg);
        if ((rc = gpt_config_validate(&a.cfg, &err))) goto lib_fail;
    }
    if (!a.opts_T && !resume_path)
        a.opts.seq_len = a.cfg.max_seq_len < 256 ? a.cfg.max_seq_len : 256;
    if (m) a.cfg = *gpt_model_config(m);
    if ((rc = gpt_train_opts_validate(&a.opts, &a.cfg, &err))) goto lib_fail;

    /* ------------------------------------------------------------- data */
    if (!a.data) {
        exit_code = cli_usage_error(CMD, "--data FILE is required to resume (the data is not stored in the checkpoint)");
        goto done;
    }
    if (isatty(2)) /* progress: reading a large text takes a while */
        SAY("gpt train: reading %s with the %s tokenizer\n", a.data, gpt_tokenizer_name(tok));
    if ((rc = gpt_data_open(&data, a.data, a.val, tok, a.val_fraction, &err))) goto lib_fail;
    if (gpt_data_max_id(data) > a.cfg.vocab_size) {
        exit_code = cli_usage_error(CMD, "the data holds token id %d but the model's vocabulary has %d tokens",
                                    gpt_data_max_id(data) - 1, a.cfg.vocab_size);
        goto done;
    }
    /* Nats per character compare across tokenizers: loss per token times
     * the validation split's tokens per character. */
    double tpc = gpt_data_val_tokens_per_char(data);
    ADD("gpt train: %zu training tokens, %zu validation tokens%s\n",
            gpt_data_train_tokens(data), gpt_data_val_tokens(data),
            tpc > 0 ? "" : " (shards: no per-character loss)");

    /* ------------------------------------------------- memory and model */
    {
        gpt_memory_plan plan;
        if ((rc = gpt_memory_estimate(&a.cfg, &a.rt, a.opts.batch_size, a.opts.seq_len, 1,
                                      a.opts.recompute, &plan, &err)))
            goto lib_fail;
        char b1[32], b2[32], b3[32], b4[32], b5[32];
        if (multi && a.zero) { /* this rank's share of the AdamW state */
            plan.total -= plan.optimizer - plan.optimizer / R;
            plan.optimizer /= R;
        }
        ADD("gpt train: model %d layers, %d heads, %d channels, MLP %d, T<=%d, V=%d: %.2fM "
                "parameters\n"
                "gpt train: memory needed: %s parameters + %s gradients + %s optimizer + %s "
                "activations = %s\n",
                a.cfg.n_layer, a.cfg.n_head, a.cfg.n_embd, a.cfg.mlp_hidden, a.cfg.max_seq_len,
                a.cfg.vocab_size, gpt_config_num_params(&a.cfg) / 1e6, cli_bytes(plan.params, b1),
                cli_bytes(plan.grads, b2), cli_bytes(plan.optimizer, b3),
                cli_bytes(plan.activations, b4), cli_bytes(plan.total, b5));
        if ((rc = gpt_memory_check(&plan, &a.rt, &err))) goto lib_fail;
    }
    if (!m) {
        if ((rc = gpt_model_create(&m, &a.cfg, &a.rt, (uint64_t)a.seed, &err))) goto lib_fail;
    }
    {
        const void *blob = NULL;
        size_t blen = 0;
        void *ser = NULL;
        const char *tname = gpt_tokenizer_name(tok);
        /* Vocabularies trained by `gpt tokenizer train` travel inside the checkpoint. */
        if (strcmp(tname, "gpt2") && strcmp(tname, "bytes")) {
            if ((rc = gpt_tokenizer_serialize(tok, &ser, &blen, &err))) goto lib_fail;
            blob = ser;
        }
        rc = gpt_model_set_tokenizer(m, tname, blob, blen, &err);
        free(ser);
        if (rc) goto lib_fail;
    }
    if (multi && (rc = gpt_model_set_dist(m, dist, a.zero, &err))) goto lib_fail;
    if ((rc = gpt_train_init(m, &a.opts, &err))) goto lib_fail;
    /* After init: a CPU backend picks its products' precision when it
     * learns that the model will train. */
    ADD("gpt train: device %s (%s, %s)\n", gpt_model_device(m), gpt_model_device_desc(m),
        gpt_model_precision(m));
    if (multi) {
        char b1[32];
        ADD("gpt train: data parallel over %d rank%s (%s), ZeRO-1 %s: %d x %d x %d = %d sequences "
            "a step; AdamW state %s a rank\n",
            R, R == 1 ? "" : "s", gpt_model_comm(m), a.zero ? "on" : "off", a.opts.batch_size, R,
            a.opts.grad_accum, a.opts.batch_size * R * a.opts.grad_accum,
            cli_bytes(gpt_model_optimizer_bytes(m), b1));
    }
    if (resume_path) {
        if ((rc = gpt_train_resume(m, resume_path, &err))) goto lib_fail;
        ADD("gpt train: resumed from %s at step %d\n", resume_path, gpt_model_step(m));
    } else {
        gpt_rng r;
        gpt_rng_seed(&r, (uint64_t)a.seed ^ 0x5DEECE66DULL);
        memcpy(st.rng, r.s, sizeof st.rng);
        st.tokens_seen = 0;
        st.best_val_loss = 0;
        if (a.init) gpt_model_reset_training(m); /* fine-tuning: a new schedule */
    }
    st.has_train = 1;
    st.opts = a.opts;
    st.opts.batch_size *= R; /* checkpoints hold the rows of a step over all ranks */
    /* A resumed run keeps the metrics rows up to its checkpoint's step:
     * rows past it came from steps the checkpoint does not hold. */
    if (is_root && resume_path && (rc = train_out_resume_metrics(&outdir, gpt_model_step(m), &err)))
        goto lib_fail;
    SAY("%s", summary);

    /* ------------------------------------------------------------- loop */
    int B = a.opts.batch_size, T = a.opts.seq_len, accum = a.opts.grad_accum;
    size_t per_step = (size_t)accum * B * (T + 1);
    batch = malloc(per_step * sizeof(int));
    vbuf = malloc((size_t)B * (T + 1) * sizeof(int));
    if (!batch || !vbuf) {
        fprintf(stderr, "gpt train: out of memory\n");
        exit_code = EXIT_RUNTIME;
        goto done;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int save_every = a.save_every ? a.save_every : a.eval_every;
    double t_start = gpt_now(), t_last = t_start, tokens_done = 0, last_val = NAN;
    int first = gpt_model_step(m), isatty_err = isatty(2);
    double smooth = NAN;
    long nan_at = 0, nan_count = 1;
#ifdef GPT_TEST_BUILD
    /* Test hook for tests/test_bad_numbers_cli.sh (gpt-test only):
     * GPT_TEST_INJECT_NAN_AT=S[:K] gives steps S to S+K-1 (as numbered in the
     * output) a NaN loss through gpt_debug_inject_nan, as if the numbers had
     * gone bad there. */
    const char *inject = getenv("GPT_TEST_INJECT_NAN_AT");
    if (inject && sscanf(inject, "%ld:%ld", &nan_at, &nan_count) < 1) nan_at = 0;
#endif
    for (int s = first; s < a.opts.max_steps; s++) {
        for (int k = 0; k < accum; k++)
            if ((rc = gpt_data_train_batch_part(data, st.rng, B * R, rank * B, B, T,
                                                batch + (size_t)k * B * (T + 1), &err)))
                goto lib_fail;
        gpt_step_info info;
        if (nan_at > 0 && s + 1 >= nan_at && s + 1 < nan_at + nan_count) gpt_debug_inject_nan(m);
        double t0 = gpt_now();
        rc = gpt_train_step(m, batch, &info, &err);
        double dt = gpt_now() - t0;
        if (rc) {
            if (info.bad_streak > 0 || rc == GPT_ERR_RUNTIME) {
                fprintf(stderr, "\ngpt train: %s\n", err.msg);
                fprintf(stderr, "gpt train: the last good checkpoint is %s\n", ckpt);
                exit_code = EXIT_RUNTIME;
                goto done;
            }
            goto lib_fail;
        }
        st.tokens_seen += (int64_t)B * R * T * accum;
        tokens_done += (double)B * R * T * accum;
        if (info.skipped)
            SAY("%sgpt train: step %d skipped: non-finite loss or gradient norm (%d in a row)\n",
                    isatty_err ? "\n" : "", info.step, info.bad_streak);
        else {
            smooth = isnan(smooth) ? info.loss : 0.9 * smooth + 0.1 * info.loss;
            series_add(&tr, info.step, info.loss);
        }
        double tok_s = (double)B * R * T * accum / dt;
        char jl[32], jn[32];
        if (metrics)
            fprintf(metrics,
                "{\"step\":%d,\"loss\":%s,\"lr\":%.6g,\"grad_norm\":%s,\"skipped\":%d,"
                "\"ms\":%.3f,\"tok_s\":%.1f}\n",
                info.step, json_num(jl, "%.6f", info.loss), info.lr,
                json_num(jn, "%.6g", info.grad_norm), info.skipped, dt * 1e3, tok_s);
        if (a.rt.profile && s == first + (first + 1 < a.opts.max_steps ? 1 : 0)) {
            char table[8192];
            gpt_profile_report(m, table, sizeof table);
            SAY("\ngpt train: time per operation, step %d:\n%s", info.step, table);
        }
        int last = s + 1 == a.opts.max_steps;
        double now = gpt_now();
        int stop = interrupted || (a.time_limit > 0 && now - t_start >= a.time_limit) ||
                   (a.stop_after > 0 && info.step - first >= a.stop_after);
        if (multi) { /* a signal or a clock seen by any rank stops every rank here */
            double votes[2] = {stop, interrupted};
            if ((rc = gpt_model_allreduce(m, votes, 2, 1, &err))) goto lib_fail;
            stop = votes[0] != 0;
            interrupted = votes[1] != 0;
        }
        if (info.step % a.eval_every == 0 || last || stop) {
            double vl = NAN;
            /* The final figure covers the whole validation split unless
             * --eval-batches was given. */
            int nb = (last || stop) && !a.eval_batches_given ? 0 : a.eval_batches;
            if ((rc = evaluate(m, data, B, T, rank, R, nb, vbuf, &vl, &err)))
                goto lib_fail;
            last_val = vl;
            series_add(&va, info.step, vl);
            if (st.best_val_loss == 0 || vl < st.best_val_loss) st.best_val_loss = (float)vl;
            char jv[32];
            if (metrics) {
                fprintf(metrics, "{\"step\":%d,\"val_loss\":%s", info.step, json_num(jv, "%.6f", vl));
                if (tpc > 0) fprintf(metrics, ",\"val_nats_per_char\":%s", json_num(jv, "%.6f", vl * tpc));
                fprintf(metrics, "}\n");
            }
            SAY("%sstep %d: val loss %.4f%s", isatty_err ? "\r\033[K" : "", info.step, vl,
                tpc > 0 ? "" : "\n");
            if (tpc > 0) SAY(" (%.4f nats/char)\n", vl * tpc);
        }
        if (metrics) fflush(metrics);
        if (info.step % save_every == 0 || last || stop) {
            st.opts = a.opts;
            st.opts.batch_size *= R;
            if ((rc = gpt_checkpoint_save(m, ckpt, 1, &st, &err))) {
                /* Saves are atomic: say that the last one is still there. */
                fprintf(stderr, "%sgpt train: %s (step %d not saved; the previous checkpoint is unchanged)\n",
                        isatty_err ? "\n" : "", err.msg, info.step);
                exit_code = gpt_status_exit_code(rc);
                goto done;
            }
            /* A new run's metrics replace the old file with its first
             * checkpoint, not before. */
            if (is_root && (rc = train_out_metrics_commit(&outdir, &err))) goto lib_fail;
        }
        if (is_root && (now - t_last >= (isatty_err ? 0.25 : 5.0) || last || s == first)) {
            t_last = now;
            double el = now - t_start, rate = tokens_done / el;
            double remain = (a.opts.max_steps - info.step) * (double)B * R * T * accum / rate;
            fprintf(stderr, "%sstep %d/%d | loss %.4f | lr %.2e | norm %.2f | %.0f tok/s | %.0f ms/step | ETA %.0fs%s",
                    isatty_err ? "\r\033[K" : "", info.step, a.opts.max_steps, smooth, info.lr,
                    info.grad_norm, rate, dt * 1e3, remain, isatty_err ? "" : "\n");
            fflush(stderr);
        }
        if (stop) {
            SAY("%sgpt train: %s at step %d; checkpoint saved to %s (continue with --resume)\n",
                    isatty_err ? "\n" : "",
                    interrupted ? "interrupted" : a.stop_after ? "stopped as asked" : "time limit reached",
                    info.step, ckpt);
            if (interrupted) exit_code = EXIT_RUNTIME; /* saved, but not finished */
            break;
        }
    }
    /* Every rank got here at the same step: the communicator ends with
     * all of them, and rank 0 alone finishes the run. */
    if (multi && (rc = gpt_model_end_dist(m, &err))) goto lib_fail;
    clean_end = 1;
    if (!is_root) goto done;
    if (isatty_err) fputc('\n', stderr);
    {
        plot_series ps[2] = {{"train loss", "#1f77b4", tr.x, tr.y, tr.n},
                             {"validation loss", "#d62728", va.x, va.y, va.n}};
        if (plot_svg(svg_path, "gpt train: loss", "step", "loss (nats/token)", ps, 2, &err))
            fprintf(stderr, "gpt train: warning: %s\n", err.msg);
    }
    double el = gpt_now() - t_start;
    fprintf(stderr, "gpt train: done in %.1fs (%.0f tokens/s); checkpoint %s, metrics %s, curve %s\n", el,
            el > 0 ? tokens_done / el : 0, ckpt, metrics_path, svg_path);
    if (a.sample > 0 && !interrupted && (rc = train_print_sample(m, tok, a.prompt, a.sample, (uint64_t)a.seed, &err)))
        goto lib_fail;
    /* The run's result, last, where it is seen: the loss over the whole
     * validation split (unless --eval-batches limited it). */
    if (!isnan(last_val)) {
        printf("final validation loss: %.4f nats/token", last_val);
        if (tpc > 0)
            printf(", %.4f nats/char (%zu held-out tokens, %.0f characters)", last_val * tpc,
                   gpt_data_val_tokens(data), (double)gpt_data_val_tokens(data) / tpc);
        printf(" after %d steps\n", gpt_model_step(m));
    }
    goto done;
lib_fail:
    exit_code = cli_lib_error(CMD, &err);
done:
    /* A rank that fails leaves without the goodbyes that wait for the
     * others (they may be waiting for it); mpirun, or the --gpus
     * launcher, stops the rest. */
    if (multi && exit_code && !clean_end) gpt_dist_fail(dist);
    train_out_close(&outdir); /* closes metrics */
    free(tr.x);
    free(tr.y);
    free(va.x);
    free(va.y);
    free(batch);
    free(vbuf);
    free(ckpt);
    free(metrics_path);
    free(svg_path);
    gpt_data_free(data);
    gpt_tokenizer_free(tok);
    gpt_model_free(m);
    gpt_dist_free(dist);
    return exit_code;
}
