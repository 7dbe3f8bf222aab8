/*
 * cmd_convert.c - gpt convert: write a model (our checkpoint, or a Hugging
 * Face folder) as a Hugging Face GPT-2 folder, model.safetensors +
 * config.json, that transformers' GPT2LMHeadModel.from_pretrained loads.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"

static const char *CMD = "convert";

typedef struct {
    const char *model, *out;
} convert_args;

#define O(f) offsetof(convert_args, f)
static const cli_opt convert_opts[] = {
    {CLI_STR, 'm', "model", O(model), "PATH", "our checkpoint (or a Hugging Face folder)",
     .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_STR, 'o', "out", O(out), "DIR", "the folder to write", .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_END},
};
#undef O

const cli_cmd gpt_convert_cmd = {
    .name = "convert",
    .summary = "write a model as a Hugging Face GPT-2 folder",
    .usage = "--model CKPT --out DIR",
    .about = "Writes a model as a Hugging Face GPT-2 folder: DIR/model.safetensors (F32),\n"
             "DIR/config.json and, when the model's tokenizer is built in (gpt2, bytes) or\n"
             "carried by its checkpoint (gpt tokenizer train), the tokenizer (vocab.json,\n"
             "merges.txt, tokenizer_config.json) and generation_config.json, so that\n"
             "transformers' AutoTokenizer, GPT2LMHeadModel and pipeline load DIR. DIR is\n"
             "created if its parent exists; files already there are replaced atomically.\n"
             "The output head stays tied to the token embedding; padded vocabulary rows are\n"
             "dropped.\n",
    .opts = convert_opts,
    .footer = "example:\n"
              "  gpt convert --model runs/tiny/model.ckpt --out tiny-hf\n"
              "  python -c \"import transformers as t; t.pipeline('text-generation', 'tiny-hf')\"\n",
    .run = gpt_cmd_convert,
};

int gpt_cmd_convert(int argc, char **argv) {
    convert_args a = {0};
    int rc = cli_parse_args(&gpt_convert_cmd, argc, argv, &a, NULL);
    if (rc >= 0) return rc;
    const char *model = a.model, *out = a.out;
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32};
    gpt_error err = {0};
    gpt_model *m = NULL;
    rc = gpt_model_load(&m, model, &rt, &err);
    if (!rc) rc = gpt_model_save_hf(m, out, &err);
    if (rc) {
        gpt_model_free(m);
        return cli_lib_error(CMD, &err);
    }
    const gpt_config *c = gpt_model_config(m);
    /* The library writes the tokenizer files when it can (and removes old
     * ones when it cannot): say which happened. */
    char vocab[4096];
    struct stat sb;
    snprintf(vocab, sizeof vocab, "%s/vocab.json", out);
    int with_tok = stat(vocab, &sb) == 0;
    const char *tname = gpt_model_tokenizer(m, NULL, NULL);
    fprintf(stderr,
            "gpt convert: wrote %s: model.safetensors, config.json%s (%d layers, %d channels, "
            "vocabulary %d, context %d)\n",
            out, with_tok ? ", the tokenizer (vocab.json, merges.txt, tokenizer_config.json) "
                            "and generation_config.json" : "",
            c->n_layer, c->n_embd, c->vocab_size, c->max_seq_len);
    if (!with_tok)
        fprintf(stderr,
                "gpt convert: no tokenizer files: the model's tokenizer '%s' is not one the "
                "folder can carry (built in or held by the checkpoint, no larger than the "
                "vocabulary)\n",
                tname);
    gpt_model_free(m);
    return EXIT_OK;
}
