/*
 * cmd_eval.c - gpt eval: the mean next-token loss of a model on given
 * token ids or on a text file, as one JSON object on stdout.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_tokenizer.h"
#include "opts.h"
#include "../src/tools_internal.h"

static const char *CMD = "eval";

/* Loss over ids in consecutive windows of T+1 tokens (T apart), B at a time;
 * a final shorter window covers the rest. Returns the token-weighted mean. */
static int eval_ids(gpt_model *m, const int *ids, size_t n, int B, int T, double *loss,
                    size_t *count, gpt_error *err) {
    double sum = 0;
    size_t done = 0;
    int *buf = malloc((size_t)B * (T + 1) * sizeof(int));
    if (!buf) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    size_t pos = 0;
    int rc = GPT_OK;
    while (pos + 1 < n && !rc) {
        size_t left = n - 1 - pos; /* predictions still to make */
        if (left >= (size_t)T * B) {
            for (int b = 0; b < B; b++) memcpy(buf + (size_t)b * (T + 1), ids + pos + (size_t)b * T, (size_t)(T + 1) * sizeof(int));
            double l;
            rc = gpt_eval_loss(m, buf, B, T, &l, err);
            sum += l * (double)B * T;
            done += (size_t)B * T;
            pos += (size_t)B * T;
        } else {
            int t = left < (size_t)T ? (int)left : T;
            double l;
            rc = gpt_eval_loss(m, ids + pos, 1, t, &l, err);
            sum += l * t;
            done += (size_t)t;
            pos += (size_t)t;
        }
    }
    free(buf);
    *loss = done ? sum / (double)done : NAN;
    *count = done;
    return rc;
}

typedef struct {
    cli_model_args model;
    const char *tokens, *text;
    int B, T;
} eval_args;

#define O(f) offsetof(eval_args, f)
static const cli_opt eval_opts[] = {
    {CLI_GROUP, .group = cli_model_opts, .off = O(model)},
    {CLI_STR, 0, "tokens", O(tokens), "IDS", .help = "comma-separated token ids, e.g. 464,2068,7586 (at least 2)"},
    {CLI_STR, 0, "text", O(text), "FILE",
     .help = "a text file, encoded with the model's tokenizer; the loss is also given per character "
     "(\"nats_per_char\")"},
    {CLI_INT, 'T', "seq", O(T), "N", "window length for --text (default: the model's maximum)",
     .lo = 1, .hi = 1 << 24},
    {CLI_INT, 'B', "batch", O(B), "N", "windows per forward pass for --text", .def = "4", .lo = 1,
     .hi = 1 << 20},
    {CLI_END},
};
#undef O

const cli_cmd gpt_eval_cmd = {
    .name = "eval",
    .summary = "loss of a model on tokens or a text file",
    .usage = "--model PATH (--tokens IDS | --text FILE) [options]",
    .about = "Prints one JSON object: {\"loss\": mean next-token cross-entropy in nats,\n"
             "\"tokens\": ids read, \"predicted\": ids predicted (each from those before\n"
             "it), \"perplexity\": exp(loss), ...}.\n",
    .opts = eval_opts,
    .footer = "example:\n"
              "  gpt eval --model runs/tiny/model.ckpt --text data/tinyshakespeare.txt\n",
    .run = gpt_cmd_eval,
};

int gpt_cmd_eval(int argc, char **argv) {
    eval_args a = {0};
    int prc = cli_parse_args(&gpt_eval_cmd, argc, argv, &a, NULL);
    if (prc >= 0) return prc;
    const char *model = a.model.path, *tokens = a.tokens, *text = a.text;
    long long B = a.B, T = a.T;
    gpt_runtime rt = cli_model_runtime(&a.model);
    if (!tokens == !text) return cli_usage_error(CMD, "give exactly one of --tokens IDS or --text FILE");
    int *ids = NULL;
    size_t n = 0;
    if (tokens && !cli_parse_ids(CMD, "--tokens", tokens, &ids, &n)) return EXIT_USAGE;
    if (tokens && n < 2) {
        free(ids);
        return cli_usage_error(CMD, "--tokens needs at least 2 ids (the loss predicts each id from those before it)");
    }
    gpt_error err = {0};
    gpt_model *m = NULL;
    gpt_tokenizer *tok = NULL;
    char *txt = NULL;
    size_t txt_len = 0;
    int rc = gpt_model_load(&m, model, &rt, &err);
    if (!rc && text) {
        rc = cli_model_tokenizer(m, a.model.tokenizer, &tok, &err);
        if (!rc) rc = gpt_read_file(text, 0, &txt, &txt_len, &err);
        if (!rc) rc = gpt_tokenizer_encode(tok, txt, txt_len, 0, &ids, &n, &err);
        if (!rc && n < 2) rc = gpt_fail(&err, GPT_ERR_INVALID, "'%s' encodes to fewer than 2 tokens", text);
    }
    double loss = NAN;
    size_t count = 0;
    if (!rc) {
        const gpt_config *c = gpt_model_config(m);
        int t = (int)(T ? T : c->max_seq_len);
        if (t > c->max_seq_len) rc = gpt_fail(&err, GPT_ERR_INVALID, "--seq %d is above the model's max_seq_len (%d)", t, c->max_seq_len);
        else if (tokens && n - 1 > (size_t)c->max_seq_len && !T)
            t = c->max_seq_len;
        if (!rc) rc = eval_ids(m, ids, n, (int)B, t, &loss, &count, &err);
    }
    int code = EXIT_OK;
    if (rc) code = cli_lib_error(CMD, &err);
    else {
        printf("{\"loss\": %.6f, \"tokens\": %zu, \"predicted\": %zu, \"perplexity\": %.4f", loss,
               n, count, exp(loss));
        if (text) printf(", \"bytes\": %zu, \"nats_per_char\": %.6f", txt_len, loss * (double)count / (double)(txt_len ? txt_len : 1));
        printf(", \"device\": \"%s\", \"precision\": \"%s\"}\n", gpt_model_device(m), gpt_model_precision(m));
    }
    free(ids);
    free(txt);
    gpt_tokenizer_free(tok);
    gpt_model_free(m);
    return code;
}
