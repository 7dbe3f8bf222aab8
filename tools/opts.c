/*
 * opts.c - the option groups several commands share (opts.h), and what
 * they turn into: a runtime, a loaded model and its tokenizer, generation
 * settings.
 */
#include "opts.h"

#include <stddef.h>
#include <string.h>

#define M(f) offsetof(cli_model_args, f)
const cli_opt cli_model_opts[] = {
    {CLI_STR, 'm', "model", M(path), "PATH",
     "our checkpoint, or a Hugging Face GPT-2 folder (or its model.safetensors beside "
     "config.json)", .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_STR, 0, "tokenizer", M(tokenizer), "NAME",
     .help = "gpt2, bytes or a tokenizer file (default: the model's)"},
    {CLI_CALL, 0, "device", M(device), "DEV", CLI_DEVICE_HELP, .call = cli_set_device},
    {CLI_INT, 't', "threads", M(threads), "N", "CPU threads (default: the cores this process may use)", .lo = 1,
     .hi = 4096},
    {CLI_ENUM, 0, "precision", M(precision), NULL,
     CLI_PRECISION_HELP, .choices = CLI_PRECISIONS, .def = "auto"},
    {CLI_CHOICE, 0, "quant", M(quant), NULL,
     "int8: quantise the weights as the model loads (blocks of 32 weights with one scale; about "
     "3.5x less to read per token, CPU only); none: run an int8 checkpoint in fp32 (default: as "
     "the model is stored; see gpt quantize)", .choices = "int8|none"},
    {CLI_END},
};
#undef M

#define G(f) offsetof(cli_gen_args, f)
const cli_opt cli_gen_opts[] = {
    {CLI_INT, 'n', "max-new-tokens", G(n), "N", "tokens to generate per row", .def = "64", .lo = 1,
     .hi = 1 << 30},
    {CLI_FLOAT, 0, "temperature", G(temperature), "T", "0 = greedy", .def = "1", .alias = "temp",
     .lo = 0, .hi = 1e6},
    {CLI_INT, 0, "top-k", G(top_k), "K", "keep the K most likely tokens; 0 = all", .def = "0",
     .lo = 0, .hi = 1 << 30},
    {CLI_FLOAT, 0, "top-p", G(top_p), "P",
     "keep the smallest set of tokens whose probability reaches P; 1 = all", .def = "1", .lo = 0,
     .hi = 1, .flags = CLI_ABOVE_LO},
    {CLI_I64, 's', "seed", G(seed), "S", "random seed: same seed, same output", .def = "1",
     .lo = 0, .hi = 1e19},
    {CLI_LIST, 'r', "stop", G(stop), "STR",
     "end a row (with -i: a reply) when its text contains STR (repeatable)",
     .alias = "reverse-prompt", .flags = CLI_NONEMPTY},
    {CLI_INT, 'c', "ctx-size", G(ctx), "N",
     "positions a row may use, prompt included (default: the model's context)", .lo = 1,
     .hi = 1 << 30},
    {CLI_END},
};
#undef G

gpt_runtime cli_model_runtime(const cli_model_args *a) {
    gpt_runtime rt = {0};
    rt.device = a->device;
    rt.threads = a->threads;
    rt.precision = a->precision;
    return rt;
}

int cli_load_model(const cli_model_args *a, gpt_model **m, gpt_error *err) {
    gpt_runtime rt = cli_model_runtime(a);
    int rc = gpt_model_load(m, a->path, &rt, err);
    if (!rc && a->quant)
        rc = gpt_model_quantize(*m, strcmp(a->quant, "int8") ? GPT_QUANT_NONE : GPT_QUANT_INT8, err);
    return rc;
}

int cli_model_tokenizer(gpt_model *m, const char *name, gpt_tokenizer **tok, gpt_error *err) {
    if (name) return gpt_tokenizer_open(tok, name, err);
    const void *blob = NULL;
    size_t len = 0;
    const char *own = gpt_model_tokenizer(m, &blob, &len);
    if (blob) return gpt_tokenizer_load_memory(tok, blob, len, err);
    return gpt_tokenizer_open(tok, own && *own ? own : "gpt2", err);
}

void cli_gen_apply(const cli_gen_args *a, gpt_generate_opts *o) {
    o->max_new_tokens = a->n;
    o->sampler.temperature = a->temperature;
    o->sampler.top_k = a->top_k;
    o->sampler.top_p = a->top_p;
    o->sampler.seed = (uint64_t)a->seed;
    o->stop = a->stop.v;
    o->n_stop = a->stop.n;
    o->ctx = a->ctx;
}

int cli_check_ctx(const char *cmd, const cli_gen_args *a, const gpt_model *m) {
    int maxT = gpt_model_config(m)->max_seq_len;
    if (a->ctx > maxT)
        return cli_usage_error(cmd, "--ctx-size %d is above the model's context of %d positions",
                               a->ctx, maxT);
    return 0;
}
