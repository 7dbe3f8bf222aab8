/*
 * cmd_info.c - gpt info: the build, its backends and devices, the presets,
 * and what a preset or a saved model holds.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_dist.h"

static const char *CMD = "info";

static void print_config(const gpt_config *c) {
    printf("  layers %d, heads %d, channels %d (head size %d), MLP %d\n", c->n_layer, c->n_head,
           c->n_embd, c->n_embd / c->n_head, c->mlp_hidden);
    printf("  vocabulary %d (padded to %d), max sequence %d, layernorm eps %g\n", c->vocab_size,
           c->padded_vocab, c->max_seq_len, (double)c->ln_eps);
    printf("  parameters %.2fM (%zu)\n", gpt_config_num_params(c) / 1e6, gpt_config_num_params(c));
}

static void print_memory(const gpt_config *c, const gpt_runtime *rt, int B, int T) {
    gpt_memory_plan p;
    gpt_error err;
    if (gpt_memory_estimate(c, rt, B, T, 1, 0, &p, &err)) {
        printf("  memory: %s\n", err.msg);
        return;
    }
    char a[32], b[32], d[32], e[32], f[32];
    printf("  training at B=%d T=%d needs %s: parameters %s, gradients %s, optimizer %s, "
           "activations %s\n",
           B, T, cli_bytes(p.total, a), cli_bytes(p.params, b), cli_bytes(p.grads, d),
           cli_bytes(p.optimizer, e), cli_bytes(p.activations, f));
}

typedef struct {
    const char *preset, *model, *device;
    int B, T, precision;
} info_args;

#define O(f) offsetof(info_args, f)
static const cli_opt info_opts[] = {
    {CLI_STR, 0, "preset", O(preset), "NAME", .help = "a preset's configuration and the memory training needs"},
    {CLI_STR, 'm', "model", O(model), "PATH",
     .help = "a checkpoint's or Hugging Face folder's configuration, step, tokenizer and trainer state"},
    {CLI_INT, 'B', "batch", O(B), "N", "batch for the memory estimate", .def = "8", .lo = 1,
     .hi = 1 << 20},
    {CLI_INT, 'T', "seq", O(T), "N", "sequence length for the memory estimate (default min(256, max-seq))",
     .lo = 1, .hi = 1 << 24},
    {CLI_CALL, 0, "device", O(device), "DEV", CLI_DEVICE_HELP, .call = cli_set_device},
    {CLI_ENUM, 0, "precision", O(precision), NULL, "the precision of the memory estimate",
     .choices = CLI_PRECISIONS, .def = "auto"},
    {CLI_END},
};
#undef O

const cli_cmd gpt_info_cmd = {
    .name = "info",
    .summary = "describe a model, preset or checkpoint and the devices",
    .usage = "[--preset NAME | --model PATH] [-B N -T N] [--device D]",
    .about = "Without arguments: version, backends, devices and the presets.\n",
    .opts = info_opts,
    .run = gpt_cmd_info,
};

int gpt_cmd_info(int argc, char **argv) {
    info_args a = {0};
    int rc = cli_parse_args(&gpt_info_cmd, argc, argv, &a, NULL);
    if (rc >= 0) return rc;
    const char *preset = a.preset, *model = a.model;
    long long B = a.B, T = a.T;
    gpt_runtime rt = {0};
    rt.device = a.device;
    rt.precision = a.precision;
    gpt_error err = {0};
    if (preset) {
        gpt_config c;
        if (gpt_config_preset(preset, &c, &err)) return cli_lib_error(CMD, &err);
        if (T > c.max_seq_len)
            return cli_usage_error(CMD, "-T %lld is above the max_seq_len of %s (%d): use -T %d or less",
                                   T, preset, c.max_seq_len, c.max_seq_len);
        printf("preset %s:\n", preset);
        print_config(&c);
        print_memory(&c, &rt, (int)B, (int)(T ? T : (c.max_seq_len < 256 ? c.max_seq_len : 256)));
        return EXIT_OK;
    }
    if (model) {
        gpt_model *m;
        rt.device = rt.device ? rt.device : "cpu";
        if (gpt_model_load(&m, model, &rt, &err)) return cli_lib_error(CMD, &err);
        const gpt_config *c = gpt_model_config(m);
        printf("model %s:\n", model);
        print_config(c);
        printf("  tokenizer %s, trained for %d steps\n", gpt_model_tokenizer(m, NULL, NULL),
               gpt_model_step(m));
        if (strcmp(gpt_model_quant(m), "none"))
            printf("  weights %s (matrices and head; products on the %s kernel)\n",
                   gpt_model_quant(m), gpt_model_quant_kernel(m));
        gpt_train_state st;
        if (gpt_checkpoint_read_state(model, NULL, &st, &err) == 0 && st.has_train)
            printf("  trainer state: B=%d T=%d grad_accum=%d, %d steps planned, lr %g -> %g, "
                   "%lld tokens seen, best validation loss %.4f\n",
                   st.opts.batch_size, st.opts.seq_len, st.opts.grad_accum, st.opts.max_steps,
                   (double)st.opts.lr, (double)st.opts.min_lr, (long long)st.tokens_seen,
                   (double)st.best_val_loss);
        gpt_model_free(m);
        return EXIT_OK;
    }
    printf("gpt %s\nbackends compiled in:", GPT_VERSION);
    for (const char *const *n = gpt_backend_names(); *n; n++)
        printf(" %s%s", *n, gpt_backend_available(*n) ? "" : " (no device found)");
    printf("\ndata-parallel collectives: %s%s%s\n", gpt_dist_available("mpi") ? "mpi " : "",
           gpt_dist_available("nccl") ? "nccl " : "",
           gpt_dist_available("mpi") || gpt_dist_available("nccl") ? "(docs/DISTRIBUTED.md)" : "none in this build");
    printf("devices:\n");
    for (const char *const *n = gpt_backend_names(); *n; n++) {
        if (!gpt_backend_available(*n)) continue;
        gpt_runtime drt = {0};
        drt.device = *n;
        char desc[512];
        if (gpt_device_describe(&drt, desc, sizeof desc, &err) == 0) printf("  %-7s %s\n", *n, desc);
        else printf("  %-7s unusable: %s\n", *n, err.msg);
    }
    gpt_runtime art = {0};
    char adesc[512];
    if (gpt_device_describe(&art, adesc, sizeof adesc, &err) == 0) printf("  auto    picks: %s\n", adesc);
    printf("cpu: %s\n", gpt_cpu_kernels());
    printf("presets:\n");
    for (const char *const *n = gpt_config_preset_names(); *n; n++) {
        gpt_config c;
        gpt_config_preset(*n, &c, &err);
        printf("  %-12s L=%-2d NH=%-2d C=%-4d F=%-4d T<=%-4d V=%d  %.1fM parameters\n", *n,
               c.n_layer, c.n_head, c.n_embd, c.mlp_hidden, c.max_seq_len, c.vocab_size,
               gpt_config_num_params(&c) / 1e6);
    }
    return EXIT_OK;
}
