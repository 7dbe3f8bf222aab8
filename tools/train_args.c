/*
 * train_args.c - parsing gpt train's options: every number strictly
 * checked and range-limited here; the model and training settings are then
 * validated by the library (gpt_config_validate, gpt_train_opts_validate).
 */
#include "train_args.h"

#include <string.h>

#include "cli.h"

static const char *CMD = "train";

int train_args_parse(int argc, char **argv, train_args *a) {
    memset(a, 0, sizeof *a);
    a->tokenizer = "gpt2";
    a->preset = "tiny";
    a->val_fraction = 0.1;
    a->seed = 1337;
    a->eval_every = 200;
    a->eval_batches = 20;
    a->sample = 200;
    a->prompt = "\n";
    gpt_train_opts_default(&a->opts);
    a->opts.batch_size = 8;
    a->opts.max_steps = 2000;
    a->opts.lr = 1e-3f;
    a->opts.min_lr = 1e-4f;
    a->opts.warmup_steps = 100;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        long long n;
        double x;
#define VAL() \
    if (!(v = cli_value(CMD, argc, argv, &i))) return EXIT_USAGE
#define INT(lo, hi, dst)                                     \
    do {                                                     \
        VAL();                                               \
        if (!cli_parse_int(CMD, f, v, lo, hi, &n)) return EXIT_USAGE; \
        dst = n;                                             \
    } while (0)
#define FLT(lo, hi, dst)                                     \
    do {                                                     \
        VAL();                                               \
        if (!cli_parse_float(CMD, f, v, lo, hi, &x)) return EXIT_USAGE; \
        dst = x;                                             \
    } while (0)
        if (cli_is_help(f)) return TRAIN_ARGS_HELP;
        else if (!strcmp(f, "--data")) { VAL(); a->data = v; }
        else if (!strcmp(f, "--val")) { VAL(); a->val = v; }
        else if (!strcmp(f, "--val-fraction")) FLT(1e-6, 0.5, a->val_fraction);
        else if (!strcmp(f, "--tokenizer")) { VAL(); a->tokenizer = v; }
        else if (!strcmp(f, "--preset")) { VAL(); a->preset = v; }
        else if (!strcmp(f, "--layers")) { INT(1, 100000, a->cfg.n_layer); a->cfg_set[0] = 1; }
        else if (!strcmp(f, "--heads")) { INT(1, 100000, a->cfg.n_head); a->cfg_set[1] = 1; }
        else if (!strcmp(f, "--channels")) { INT(1, 1 << 20, a->cfg.n_embd); a->cfg_set[2] = 1; }
        else if (!strcmp(f, "--mlp")) { INT(1, 1 << 24, a->cfg.mlp_hidden); a->cfg_set[3] = 1; }
        else if (!strcmp(f, "--max-seq")) { INT(1, 1 << 24, a->cfg.max_seq_len); a->cfg_set[4] = 1; }
        else if (!strcmp(f, "--vocab")) { INT(1, 1 << 30, a->cfg.vocab_size); a->cfg_set[5] = 1; }
        else if (!strcmp(f, "--init")) { VAL(); a->init = v; }
        else if (!strcmp(f, "-B") || !strcmp(f, "--batch")) { INT(1, 1 << 20, a->opts.batch_size); a->opts_B = 1; }
        else if (!strcmp(f, "-T") || !strcmp(f, "--seq")) { INT(1, 1 << 24, a->opts.seq_len); a->opts_T = 1; }
        else if (!strcmp(f, "--grad-accum")) INT(1, 1 << 20, a->opts.grad_accum);
        else if (!strcmp(f, "--steps")) INT(1, 1000000000, a->opts.max_steps);
        else if (!strcmp(f, "--lr")) FLT(1e-12, 10, a->opts.lr);
        else if (!strcmp(f, "--min-lr")) FLT(0, 10, a->opts.min_lr);
        else if (!strcmp(f, "--warmup")) INT(0, 1000000000, a->opts.warmup_steps);
        else if (!strcmp(f, "--weight-decay")) FLT(0, 10, a->opts.weight_decay);
        else if (!strcmp(f, "--beta1")) FLT(0, 0.999999, a->opts.beta1);
        else if (!strcmp(f, "--beta2")) FLT(0, 0.999999999, a->opts.beta2);
        else if (!strcmp(f, "--eps")) FLT(1e-30, 1, a->opts.eps);
        else if (!strcmp(f, "--grad-clip")) FLT(0, 1e30, a->opts.grad_clip);
        else if (!strcmp(f, "--recompute")) a->opts.recompute = 1;
        else if (!strcmp(f, "--max-bad-steps")) INT(1, 1000000, a->opts.max_bad_steps);
        else if (!strcmp(f, "--seed")) INT(0, INT64_MAX, a->seed);
        else if (!strcmp(f, "--time-limit")) FLT(0.001, 1e9, a->time_limit);
        else if (!strcmp(f, "--stop-after")) INT(1, 1000000000, a->stop_after);
        else if (!strcmp(f, "--out")) { VAL(); a->out = v; }
        else if (!strcmp(f, "--eval-every")) INT(1, 1000000000, a->eval_every);
        else if (!strcmp(f, "--eval-batches")) {
            INT(0, 1000000000, a->eval_batches);
            a->eval_batches_given = 1;
        }
        else if (!strcmp(f, "--save-every")) INT(1, 1000000000, a->save_every);
        else if (!strcmp(f, "--resume")) {
            a->resume_flag = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') a->resume = argv[++i];
        } else if (!strcmp(f, "--sample")) INT(0, 1000000, a->sample);
        else if (!strcmp(f, "--prompt")) { VAL(); a->prompt = v; }
        else if (!strcmp(f, "--device")) { VAL(); a->rt.device = v; }
        else if (!strcmp(f, "--precision")) {
            VAL();
            if (!strcmp(v, "fp32")) a->rt.precision = GPT_PREC_FP32;
            else if (!strcmp(v, "bf16")) a->rt.precision = GPT_PREC_BF16;
            else if (!strcmp(v, "fp16")) a->rt.precision = GPT_PREC_FP16;
            else return cli_usage_error(CMD, "--precision expects fp32, bf16 or fp16, got '%s'", v);
        } else if (!strcmp(f, "--threads")) INT(1, 4096, a->rt.threads);
        else if (!strcmp(f, "--profile")) a->rt.profile = 1;
        else if (!strcmp(f, "--check")) a->rt.check = 1;
        else if (!strcmp(f, "--gpus")) INT(1, 1024, a->gpus);
        else if (!strcmp(f, "--zero")) INT(0, 1, a->zero);
        else if (!strcmp(f, "--dist-timeout")) FLT(1, 1e9, a->dist_timeout);
        else return cli_usage_error(CMD, "unknown option '%s' (see gpt train --help)", f);
#undef VAL
#undef INT
#undef FLT
    }
    if (!gpt_device_name_valid(a->rt.device))
        return cli_usage_error(CMD, "--device expects cpu, cuda, vulkan, vulkan:N or auto, got '%s'",
                               a->rt.device);
    if (a->gpus && a->rt.device && !strcmp(a->rt.device, "cpu"))
        return cli_usage_error(CMD, "--gpus starts one rank per GPU: on CPUs, start the ranks with "
                                    "mpirun -np N gpt train ...");
    if (!a->data && !a->resume_flag)
        return cli_usage_error(CMD, "--data FILE is required (see gpt train --help)");
    if (a->init && a->resume_flag)
        return cli_usage_error(CMD, "--init and --resume cannot be used together");
    return EXIT_OK;
}


int train_args_config(const train_args *a, gpt_config *cfg, gpt_error *err) {
    int rc = gpt_config_preset(a->preset, cfg, err);
    if (rc) return rc;
    cfg->padded_vocab = 0;
    /* F follows C (4 C) when --channels is given without --mlp. */
    cfg->mlp_hidden = a->cfg_set[3] ? a->cfg.mlp_hidden : (a->cfg_set[2] ? 0 : cfg->mlp_hidden);
    if (a->cfg_set[0]) cfg->n_layer = a->cfg.n_layer;
    if (a->cfg_set[1]) cfg->n_head = a->cfg.n_head;
    if (a->cfg_set[2]) cfg->n_embd = a->cfg.n_embd;
    if (a->cfg_set[4]) cfg->max_seq_len = a->cfg.max_seq_len;
    if (a->cfg_set[5]) cfg->vocab_size = a->cfg.vocab_size;
    return GPT_OK;
}
