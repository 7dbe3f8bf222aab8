/*
 * cmd_info.c - gpt info: the build, its backends and devices, the presets,
 * and what a preset or a saved model holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_dist.h"

static const char *CMD = "info";

static void usage(FILE *f) {
    fprintf(f,
            "usage: gpt info [--preset NAME | --model PATH] [-B N -T N] [--device D]\n"
            "\n"
            "Without arguments: version, backends, devices and the presets.\n"
            "  --preset NAME   a preset's configuration and the memory training needs\n"
            "  --model PATH    a checkpoint's or Hugging Face folder's configuration,\n"
            "                  step, tokenizer and trainer state\n"
            "  -B N, -T N      batch and sequence length for the memory estimate\n"
            "                  (default 8 and min(256, max-seq))\n"
            "  --device D      cpu, cuda, vulkan[:N] or auto (default) for the memory estimate\n");
}

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

int gpt_cmd_info(int argc, char **argv) {
    const char *preset = NULL, *model = NULL;
    long long B = 8, T = 0;
    gpt_runtime rt = {0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (cli_is_help(f)) {
            usage(stdout);
            return EXIT_OK;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return EXIT_USAGE;
        if (!strcmp(f, "--preset")) preset = v;
        else if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "-B") || !strcmp(f, "--batch")) {
            if (!cli_parse_int(CMD, f, v, 1, 1 << 20, &B)) return EXIT_USAGE;
        } else if (!strcmp(f, "-T") || !strcmp(f, "--seq")) {
            if (!cli_parse_int(CMD, f, v, 1, 1 << 24, &T)) return EXIT_USAGE;
        } else if (!strcmp(f, "--device")) rt.device = v;
        else return cli_usage_error(CMD, "unknown option '%s' (see gpt info --help)", f);
    }
    if (!gpt_device_name_valid(rt.device))
        return cli_usage_error(CMD, "--device expects cpu, cuda, vulkan, vulkan:N or auto, got '%s'", rt.device);
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
