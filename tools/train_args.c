/*
 * train_args.c - gpt train's options as a table (cli.h): every number
 * strictly checked and range-limited here; the model and training settings
 * are then validated by the library (gpt_config_validate,
 * gpt_train_opts_validate).
 */
#include "train_args.h"

#include <stddef.h>
#include <string.h>

#define O(f) offsetof(train_args, f)
const cli_opt train_opts[] = {
    {CLI_SECTION, .help = "data"},
    {CLI_STR, 0, "data", O(data), "FILE", .help = "training text or shard file (required unless --resume)"},
    {CLI_STR, 0, "val", O(val), "FILE", .help = "validation text or shard (default: the last part of --data)"},
    {CLI_DOUBLE, 0, "val-fraction", O(val_fraction), "F", "share of --data held out for validation",
     .def = "0.1", .lo = 1e-6, .hi = 0.5},
    {CLI_STR, 0, "tokenizer", O(tokenizer), "NAME",
     "gpt2, bytes, or a file from `gpt tokenizer train`", .def = "gpt2"},
    {CLI_SECTION, .help = "model (a preset, then any override)"},
    {CLI_STR, 0, "preset", O(preset), "NAME",
     "tiny, seed-small, seed-medium, seed-large, gpt2, gpt2-medium, gpt2-large, gpt2-xl",
     .def = "tiny"},
    {CLI_INT, 0, "layers", O(cfg.n_layer), "N", "transformer blocks", .lo = 1, .hi = 100000},
    {CLI_INT, 0, "heads", O(cfg.n_head), "N", "attention heads", .lo = 1, .hi = 100000},
    {CLI_INT, 0, "channels", O(cfg.n_embd), "N", "embedding width", .lo = 1, .hi = 1 << 20},
    {CLI_INT, 0, "mlp", O(cfg.mlp_hidden), "N", "MLP hidden size (default 4 x channels)", .lo = 1,
     .hi = 1 << 24},
    {CLI_INT, 0, "max-seq", O(cfg.max_seq_len), "N", "context length", .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "vocab", O(cfg.vocab_size), "N", "vocabulary (default: the tokenizer's)", .lo = 1,
     .hi = 1 << 30},
    {CLI_STR, 0, "init", O(init), "CKPT", .help = "start from a checkpoint's weights (fine-tuning)"},
    {CLI_SECTION, .help = "training (the tiny preset's own defaults: -B 16, -T 64, --steps 1000, "
                          "--lr 2e-3, --min-lr 2e-4, --warmup 30, --eval-every 200, --eval-batches 0)"},
    {CLI_INT, 'B', "batch", O(opts.batch_size), "N", "sequences per micro-batch", .def = "8",
     .lo = 1, .hi = 1 << 20},
    {CLI_INT, 'T', "seq", O(opts.seq_len), "N", "tokens per sequence (default: min(256, max-seq))",
     .lo = 1, .hi = 1 << 24},
    {CLI_INT, 0, "grad-accum", O(opts.grad_accum), "N", "micro-batches per step", .def = "1",
     .lo = 1, .hi = 1 << 20},
    {CLI_INT, 0, "steps", O(opts.max_steps), "N", "optimizer steps", .def = "2000", .lo = 1,
     .hi = 1000000000},
    {CLI_FLOAT, 0, "lr", O(opts.lr), "X", "peak learning rate (cosine schedule)", .def = "1e-3",
     .lo = 1e-12, .hi = 10},
    {CLI_FLOAT, 0, "min-lr", O(opts.min_lr), "X", "final learning rate", .def = "1e-4", .lo = 0,
     .hi = 10},
    {CLI_INT, 0, "warmup", O(opts.warmup_steps), "N", "linear warmup steps", .def = "100", .lo = 0,
     .hi = 1000000000},
    {CLI_FLOAT, 0, "weight-decay", O(opts.weight_decay), "X", "AdamW weight decay on matrices",
     .def = "0.1", .lo = 0, .hi = 10},
    {CLI_FLOAT, 0, "beta1", O(opts.beta1), "X", "AdamW", .def = "0.9", .lo = 0, .hi = 0.999999},
    {CLI_FLOAT, 0, "beta2", O(opts.beta2), "X", "AdamW", .def = "0.95", .lo = 0, .hi = 0.999999999},
    {CLI_FLOAT, 0, "eps", O(opts.eps), "X", "AdamW", .def = "1e-8", .lo = 1e-30, .hi = 1},
    {CLI_FLOAT, 0, "grad-clip", O(opts.grad_clip), "X", "clip the global gradient norm; 0 = off",
     .def = "1.0", .lo = 0, .hi = 1e30},
    {CLI_FLAG, 0, "recompute", O(opts.recompute), NULL, .help = "recompute GELU in the backward pass (less memory)"},
    {CLI_INT, 0, "max-bad-steps", O(opts.max_bad_steps), "N",
     "stop after N consecutive non-finite steps", .def = "5", .lo = 1, .hi = 1000000},
    {CLI_I64, 0, "seed", O(seed), "N", "weights and batch order", .def = "1337", .lo = 0, .hi = 1e19},
    {CLI_DOUBLE, 0, "time-limit", O(time_limit), "S", "stop (and save) after S seconds of training",
     .lo = 0.001, .hi = 1e9},
    {CLI_INT, 0, "stop-after", O(stop_after), "N",
     "stop (and save) after N steps of this run; --resume continues exactly where it stopped",
     .lo = 1, .hi = 1000000000},
    {CLI_SECTION, .help = "evaluation and output"},
    {CLI_STR, 'o', "out", O(out), "DIR", .help = "where to write (default runs/<preset>)"},
    {CLI_INT, 0, "eval-every", O(eval_every), "N", "validation loss every N steps", .def = "200",
     .lo = 1, .hi = 1000000000},
    {CLI_INT, 0, "eval-batches", O(eval_batches), "N",
     "validation batches per evaluation (default 20, and the whole split at the end; 0 = always "
     "the whole split)", .def = "20", .lo = 0, .hi = 1000000000},
    {CLI_INT, 0, "save-every", O(save_every), "N", "checkpoint every N steps (default: at evaluations)",
     .lo = 1, .hi = 1000000000},
    {CLI_STR, 0, "resume", O(resume), "CKPT",
     "continue exactly where a checkpoint stopped (default OUT/model.ckpt)", .flags = CLI_OPTIONAL},
    {CLI_INT, 0, "sample", O(sample), "N", "tokens to sample at the end; 0 = none", .def = "200",
     .lo = 0, .hi = 1000000},
    {CLI_STR, 0, "prompt", O(prompt), "TEXT", "start of the sample (default: newline)", .def = "\n"},
    {CLI_SECTION, .help = "device"},
    {CLI_CALL, 0, "device", O(rt.device), "DEV", CLI_DEVICE_HELP, .call = cli_set_device},
    {CLI_ENUM, 0, "precision", O(precision), NULL, CLI_PRECISION_HELP,
     .choices = CLI_PRECISIONS, .def = "auto"},
    {CLI_INT, 't', "threads", O(rt.threads), "N", "CPU threads (default: the cores this process may use)", .lo = 1, .hi = 4096},
    {CLI_FLAG, 0, "profile", O(rt.profile), NULL, .help = "print a table of time per operation for one step"},
    {CLI_FLAG, 0, "check", O(rt.check), NULL, .help = "scan every operation's output for NaN/Inf"},
    {CLI_SECTION, .help = "data parallel (docs/DISTRIBUTED.md; -B is per rank, so a step takes B x "
                          "ranks x grad-accum sequences, the same rows whatever the number of ranks)"},
    {CLI_INT, 0, "gpus", O(gpus), "N",
     "start N ranks on this machine's GPUs (NCCL, no MPI needed); on CPUs or several machines: "
     "mpirun -np N gpt train ...", .lo = 1, .hi = 1024},
    {CLI_INT, 0, "zero", O(zero), "1", "ZeRO stage 1: split the AdamW state across the ranks",
     .lo = 0, .hi = 1},
    {CLI_DOUBLE, 0, "dist-timeout", O(dist_timeout), "S",
     "a rank that waits S seconds for the others fails (default 600)", .lo = 1, .hi = 1e9},
    {CLI_END},
};
#undef O

static const cli_cmd parse_cmd = {.name = "train", .opts = train_opts};

int train_args_given(const train_args *a, const char *name) {
    return cli_given(&parse_cmd, &a->seen, name);
}

int train_args_parse(int argc, char **argv, train_args *a) {
    memset(a, 0, sizeof *a);
    gpt_train_opts_default(&a->opts);
    int rc = cli_parse(&parse_cmd, argc, argv, a, &a->seen);
    cli_free(&parse_cmd, a); /* no lists in this table: nothing to keep */
    if (rc) return rc;
    a->rt.precision = a->precision;
    static const char *const cfg_flags[6] = {"layers", "heads", "channels", "mlp", "max-seq", "vocab"};
    for (int i = 0; i < 6; i++) a->cfg_set[i] = train_args_given(a, cfg_flags[i]);
    a->opts_B = train_args_given(a, "batch");
    a->opts_T = train_args_given(a, "seq");
    a->resume_flag = train_args_given(a, "resume");
    a->eval_batches_given = train_args_given(a, "eval-batches");
    if (a->gpus && a->rt.device && !strcmp(a->rt.device, "cpu"))
        return cli_usage_error("train", "--gpus starts one rank per GPU: on CPUs, start the ranks "
                                        "with mpirun -np N gpt train ...");
    if (!a->data && !a->resume_flag)
        return cli_usage_error("train", "--data FILE is required (see gpt train --help)");
    if (a->init && a->resume_flag)
        return cli_usage_error("train", "--init and --resume cannot be used together");
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
