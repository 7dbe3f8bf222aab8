/*
 * cmd_quantize.c - gpt quantize: write a model's int8 checkpoint (the
 * layers' matrices and the output head in blocks of 32 weights with one
 * fp16 scale), which gpt generate, eval and info load like any checkpoint.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"

static const char *CMD = "quantize";

typedef struct {
    const char *model, *out, *type;
} quantize_args;

#define O(f) offsetof(quantize_args, f)
static const cli_opt quantize_opts[] = {
    {CLI_STR, 'm', "model", O(model), "PATH", "our checkpoint, or a Hugging Face GPT-2 folder",
     .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_STR, 'o', "out", O(out), "FILE",
     "the int8 checkpoint to write (atomically; not the --model file)",
     .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_CHOICE, 0, "type", O(type), NULL, "the quantisation (int8, the only one so far)",
     .def = "int8", .choices = "int8"},
    {CLI_END},
};
#undef O

const cli_cmd gpt_quantize_cmd = {
    .name = "quantize",
    .summary = "write an int8 checkpoint for faster CPU generation",
    .usage = "--model PATH --out FILE [--type int8]",
    .about = "Writes an int8 checkpoint of a model for inference: every layer's four matrices\n"
             "and the output head become int8, in blocks of 32 weights sharing one fp16 scale\n"
             "(8.5 bits a weight; each weight within half its block's scale); layernorms,\n"
             "biases and the position embedding stay fp32. gpt generate decodes it with int8\n"
             "dot products (AVX512-VNNI, AVX2, NEON) and reads about 3.5x fewer bytes a token.\n"
             "It cannot be trained further (keep the fp32 checkpoint for that); `gpt generate\n"
             "--quant int8` quantises at load instead, without a file.\n",
    .opts = quantize_opts,
    .footer = "example:\n"
              "  gpt quantize --model runs/tiny/model.ckpt --out runs/tiny/model-int8.ckpt\n"
              "  gpt generate --model runs/tiny/model-int8.ckpt --prompt \"ROMEO:\"\n",
    .run = gpt_cmd_quantize,
};

static double file_mb(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
}

int gpt_cmd_quantize(int argc, char **argv) {
    quantize_args q = {0};
    int rc = cli_parse_args(&gpt_quantize_cmd, argc, argv, &q, NULL);
    if (rc >= 0) return rc;
    const char *model = q.model, *out = q.out;
    /* quantising loses precision: never in place of the model it came from */
    struct stat a, b;
    if (stat(model, &a) == 0 && stat(out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return cli_usage_error(CMD, "--out is the --model file: choose another path, so that the "
                                    "fp32 model is kept");
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = GPT_PREC_FP32;
    gpt_error err = {0};
    gpt_model *m = NULL;
    rc = gpt_model_load(&m, model, &rt, &err);
    if (!rc) rc = gpt_model_quantize(m, GPT_QUANT_INT8, &err);
    if (!rc) rc = gpt_checkpoint_save(m, out, 0, NULL, &err);
    if (rc) {
        gpt_model_free(m);
        return cli_lib_error(CMD, &err);
    }
    const gpt_config *c = gpt_model_config(m);
    fprintf(stderr, "gpt quantize: wrote %s (int8, %.1f MB; %d layers, %d channels, %.1fM parameters)\n",
            out, file_mb(out), c->n_layer, c->n_embd, gpt_model_num_params(m) / 1e6);
    gpt_model_free(m);
    return EXIT_OK;
}
