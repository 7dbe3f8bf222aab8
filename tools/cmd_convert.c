/*
 * cmd_convert.c - gpt convert: write a model (our checkpoint, or a Hugging
 * Face folder) as a Hugging Face GPT-2 folder, model.safetensors +
 * config.json, that transformers' GPT2LMHeadModel.from_pretrained loads.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"

static const char *CMD = "convert";

static void usage(FILE *f) {
    fprintf(f,
"usage: gpt convert --model CKPT --out DIR\n"
"\n"
"Writes a model as a Hugging Face GPT-2 checkpoint: DIR/model.safetensors (F32)\n"
"and DIR/config.json, which transformers loads with\n"
"GPT2LMHeadModel.from_pretrained(DIR). DIR is created if its parent exists;\n"
"files already there are replaced atomically. The output head stays tied to\n"
"the token embedding; padded vocabulary rows are dropped.\n"
"\n"
"options:\n"
"  --model PATH   our checkpoint (or a Hugging Face folder)\n"
"  --out DIR      the folder to write\n"
"\n"
"example:\n"
"  gpt convert --model runs/tiny/model.ckpt --out runs/tiny/hf\n"
"  python -c \"from transformers import GPT2LMHeadModel as M; M.from_pretrained('runs/tiny/hf')\"\n"
"\n"
"exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input\n");
}

int gpt_cmd_convert(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (cli_is_help(f)) {
            usage(stdout);
            return EXIT_OK;
        }
        if (!strcmp(f, "--model") || !strcmp(f, "--out")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return EXIT_USAGE;
            if (!strcmp(f, "--model")) model = v;
            else out = v;
        } else {
            return cli_usage_error(CMD, "unknown option '%s' (try gpt convert --help)", f);
        }
    }
    if (!model || !out) return cli_usage_error(CMD, "--model and --out are required (try --help)");
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32};
    gpt_error err = {0};
    gpt_model *m = NULL;
    int rc = gpt_model_load(&m, model, &rt, &err);
    if (!rc) rc = gpt_model_save_hf(m, out, &err);
    if (rc) {
        gpt_model_free(m);
        return cli_lib_error(CMD, &err);
    }
    const gpt_config *c = gpt_model_config(m);
    fprintf(stderr,
            "gpt convert: wrote %s/model.safetensors and config.json (%d layers, %d channels, "
            "vocabulary %d, context %d)\n",
            out, c->n_layer, c->n_embd, c->vocab_size, c->max_seq_len);
    gpt_model_free(m);
    return EXIT_OK;
}
