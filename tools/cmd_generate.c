/*
 * cmd_generate.c - gpt generate: sample from a model (our checkpoint or a
 * Hugging Face GPT-2 folder) through the KV cache, streaming tokens to
 * standard output as they are drawn; prefill and decode speed go to
 * standard error at the end.
 *
 * Stable machine form (kept exactly):
 *   gpt generate --model PATH --prompt-tokens "i,j,k" -n N --temperature 0 --format ids
 * prints one JSON array of the N generated ids ("[a,b,c]").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_tokenizer.h"
#include "../src/tools_internal.h"

static const char *CMD = "generate";

static void usage(FILE *f) {
    fprintf(f,
"usage: gpt generate --model PATH [options]\n"
"\n"
"Generates text from a model with the KV cache: the prompt is read in one pass,\n"
"then one token at a time is drawn and streamed to standard output. Prefill and\n"
"decode speed are printed to standard error at the end.\n"
"\n"
"model:\n"
"  --model PATH           our checkpoint, or a Hugging Face GPT-2 folder (or its\n"
"                         model.safetensors beside config.json)\n"
"  --tokenizer NAME       gpt2, bytes or a tokenizer file (default: the model's)\n"
"  --device DEV           cpu, cuda, vulkan, vulkan:N or auto (default auto)\n"
"  --threads N            CPU threads (default: the cores this process may use)\n"
"  --quant int8|none      int8: quantise the weights as the model loads (blocks of\n"
"                         32 weights with one scale; about 3.5x less to read per\n"
"                         token, CPU only); none: run an int8 checkpoint in fp32.\n"
"                         Default: as the model is stored (see gpt quantize)\n"
"\n"
"prompts (each --prompt or --prompt-tokens is one row of the batch):\n"
"  --prompt TEXT          text to continue (default: <|endoftext|>, i.e. no prompt)\n"
"  --prompt-tokens IDS    token ids to continue, comma-separated: \"464,3290,318\"\n"
"  --batch B              run the one prompt B times as a batch (rows draw\n"
"                         different samples)\n"
"\n"
"sampling:\n"
"  -n, --max-new-tokens N tokens to generate per row (default 64)\n"
"  --temperature T        0 = greedy (default 1)\n"
"  --top-k K              keep the K most likely tokens (default 0 = all)\n"
"  --top-p P              keep the smallest set of tokens whose probability\n"
"                         reaches P (default 1 = all)\n"
"  --seed S               random seed: same seed, same output (default 1)\n"
"  --stop STR             end a row when its text contains STR (repeatable)\n"
"  --sliding-window       go on past the model's context: when a row fills it,\n"
"                         it continues from the last half of its context\n"
"\n"
"output:\n"
"  --format text|ids      text (default): prompt and continuation, streamed; a\n"
"                         row ends at <|endoftext|>. ids: one JSON array of the\n"
"                         generated ids (an array of arrays for a batch); rows\n"
"                         end only at -n or a --stop string\n"
"\n"
"examples:\n"
"  gpt generate --model runs/tiny/model.ckpt --prompt \"ROMEO:\" -n 200 --top-k 40\n"
"  gpt generate --model gpt2-hf/ --prompt \"Hello\" --temperature 0.8 --top-p 0.95\n"
"  gpt generate --model gpt2-hf/ --prompt-tokens 15496,11 -n 8 --temperature 0 --format ids\n"
"\n"
"exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input\n");
}

typedef struct {
    const char *model, *tokenizer, *device, *format, *quant;
    int threads, n, batch, top_k, sliding;
    double temperature, top_p;
    long long seed;
    /* Rows in order: a text (ids == NULL) or ids. */
    int n_rows;
    const char **texts;
    int **ids;
    size_t *n_ids;
    const char **stop;
    int n_stop;
} gen_args;

static void free_args(gen_args *a) {
    for (int i = 0; i < a->n_rows; i++) free(a->ids[i]);
    free(a->texts);
    free(a->ids);
    free(a->n_ids);
    free(a->stop);
}

static int add_row(gen_args *a, const char *text, int *ids, size_t n) {
    const char **t = realloc(a->texts, (size_t)(a->n_rows + 1) * sizeof *t);
    if (t) a->texts = t;
    int **i = realloc(a->ids, (size_t)(a->n_rows + 1) * sizeof *i);
    if (i) a->ids = i;
    size_t *k = realloc(a->n_ids, (size_t)(a->n_rows + 1) * sizeof *k);
    if (k) a->n_ids = k;
    if (!t || !i || !k) return 0;
    a->texts[a->n_rows] = text;
    a->ids[a->n_rows] = ids;
    a->n_ids[a->n_rows] = n;
    a->n_rows++;
    return 1;
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, gen_args *a) {
    memset(a, 0, sizeof *a);
    a->format = "text";
    a->n = 64;
    a->batch = 0;
    a->temperature = 1;
    a->top_p = 1;
    a->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        long long x;
        if (cli_is_help(f)) {
            usage(stdout);
            return EXIT_OK;
        }
#define VAL()                                                                                     \
    do {                                                                                          \
        if (!(v = cli_value(CMD, argc, argv, &i))) return EXIT_USAGE;                             \
    } while (0)
        if (!strcmp(f, "--model")) {
            VAL();
            a->model = v;
        } else if (!strcmp(f, "--tokenizer")) {
            VAL();
            a->tokenizer = v;
        } else if (!strcmp(f, "--device")) {
            VAL();
            if (!gpt_device_name_valid(v))
                return cli_usage_error(CMD, "--device expects cpu, cuda, vulkan, vulkan:N or auto, got '%s'", v);
            a->device = v;
        } else if (!strcmp(f, "--threads")) {
            VAL();
            if (!cli_parse_int(CMD, f, v, 1, 4096, &x)) return EXIT_USAGE;
            a->threads = (int)x;
        } else if (!strcmp(f, "--quant")) {
            VAL();
            if (strcmp(v, "int8") && strcmp(v, "none"))
                return cli_usage_error(CMD, "--quant expects int8 or none, got '%s'", v);
            a->quant = v;
        } else if (!strcmp(f, "--prompt")) {
            VAL();
            if (!add_row(a, v, NULL, 0)) return cli_usage_error(CMD, "out of memory");
        } else if (!strcmp(f, "--prompt-tokens")) {
            VAL();
            int *ids;
            size_t n;
            if (!cli_parse_ids(CMD, f, v, &ids, &n)) return EXIT_USAGE;
            if (!add_row(a, NULL, ids, n)) {
                free(ids);
                return cli_usage_error(CMD, "out of memory");
            }
        } else if (!strcmp(f, "--batch")) {
            VAL();
            if (!cli_parse_int(CMD, f, v, 1, 65536, &x)) return EXIT_USAGE;
            a->batch = (int)x;
        } else if (!strcmp(f, "-n") || !strcmp(f, "--max-new-tokens")) {
            VAL();
            if (!cli_parse_int(CMD, f, v, 1, 1 << 30, &x)) return EXIT_USAGE;
            a->n = (int)x;
        } else if (!strcmp(f, "--temperature")) {
            VAL();
            if (!cli_parse_float(CMD, f, v, 0, 1e6, &a->temperature)) return EXIT_USAGE;
        } else if (!strcmp(f, "--top-k")) {
            VAL();
            if (!cli_parse_int(CMD, f, v, 0, 1 << 30, &x)) return EXIT_USAGE;
            a->top_k = (int)x;
        } else if (!strcmp(f, "--top-p")) {
            VAL();
            if (!cli_parse_float(CMD, f, v, 0, 1, &a->top_p)) return EXIT_USAGE;
            if (a->top_p <= 0)
                return cli_usage_error(CMD, "--top-p expects a number in (0, 1], got '%s'", v);
        } else if (!strcmp(f, "--seed")) {
            VAL();
            if (!cli_parse_int(CMD, f, v, 0, (long long)((~0ull) >> 1), &a->seed))
                return EXIT_USAGE;
        } else if (!strcmp(f, "--stop")) {
            VAL();
            if (!*v) return cli_usage_error(CMD, "--stop needs a non-empty string");
            const char **s = realloc(a->stop, (size_t)(a->n_stop + 1) * sizeof *s);
            if (!s) return cli_usage_error(CMD, "out of memory");
            a->stop = s;
            a->stop[a->n_stop++] = v;
        } else if (!strcmp(f, "--sliding-window")) {
            a->sliding = 1;
        } else if (!strcmp(f, "--format")) {
            VAL();
            if (strcmp(v, "text") && strcmp(v, "ids"))
                return cli_usage_error(CMD, "--format expects text or ids, got '%s'", v);
            a->format = v;
        } else {
            return cli_usage_error(CMD, "unknown option '%s' (try gpt generate --help)", f);
        }
#undef VAL
    }
    if (!a->model) return cli_usage_error(CMD, "--model PATH is required (try --help)");
    if (a->batch && a->n_rows > 1 && a->batch != a->n_rows)
        return cli_usage_error(CMD, "--batch %d with %d prompts: give one prompt, or leave out "
                                    "--batch",
                               a->batch, a->n_rows);
    return -1;
}

/* Streaming state for text output. */
typedef struct {
    const gpt_tokenizer *tok;
    int eot;
    int stream; /* print tokens as they come (one row) */
} stream_ctx;

static const char *token_bytes(void *user, int id, size_t *len) {
    const stream_ctx *s = user;
    return gpt_tokenizer_token(s->tok, id, len);
}

static int on_token(void *user, int row, int tok) {
    const stream_ctx *s = user;
    (void)row;
    if (!s->stream || tok == s->eot) return 0;
    size_t n;
    const char *b = gpt_tokenizer_token(s->tok, tok, &n);
    if (b) fwrite(b, 1, n, stdout);
    fflush(stdout);
    return 0;
}

static int open_tokenizer(gpt_model *m, const char *name, gpt_tokenizer **tok, gpt_error *err) {
    if (name) return gpt_tokenizer_open(tok, name, err);
    const void *blob = NULL;
    size_t len = 0;
    const char *own = gpt_model_tokenizer(m, &blob, &len);
    if (blob) return gpt_tokenizer_load_memory(tok, blob, len, err);
    return gpt_tokenizer_open(tok, own && *own ? own : "gpt2", err);
}

static void print_rate(const char *what, long long tokens, double s) {
    fprintf(stderr, "%s %lld tokens in %.3f s (%.1f tok/s)", what, tokens, s,
            s > 0 ? (double)tokens / s : 0.0);
}

int gpt_cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        free_args(&a);
        return rc;
    }
    const int ids_out = !strcmp(a.format, "ids");
    gpt_error err = {0};
    gpt_model *m = NULL;
    gpt_tokenizer *tok = NULL;
    int B = a.batch ? a.batch : a.n_rows ? a.n_rows : 1, exit_code = EXIT_OK;
    int **prompts = calloc((size_t)B, sizeof *prompts), *lens = calloc((size_t)B, sizeof *lens);
    int *out = NULL, *out_lens = calloc((size_t)B, sizeof *out_lens);
    if (!prompts || !lens || !out_lens) {
        gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
        goto lib_fail;
    }
    gpt_runtime rt = {.device = a.device, .precision = GPT_PREC_AUTO, .threads = a.threads};
    if ((rc = gpt_model_load(&m, a.model, &rt, &err))) goto lib_fail;
    if (a.quant && (rc = gpt_model_quantize(m, strcmp(a.quant, "int8") ? GPT_QUANT_NONE
                                                                        : GPT_QUANT_INT8, &err)))
        goto lib_fail;

    /* The tokenizer is needed for text, stop strings and <|endoftext|>;
     * ids in, ids out without --stop runs without one. */
    int need_tok = !ids_out || a.n_stop > 0 || a.tokenizer || a.n_rows == 0;
    for (int i = 0; i < a.n_rows; i++) need_tok |= a.texts[i] != NULL;
    if (need_tok && (rc = open_tokenizer(m, a.tokenizer, &tok, &err))) goto lib_fail;
    const int eot = tok ? gpt_tokenizer_eot(tok) : -1;
    const int V = gpt_model_config(m)->vocab_size;
    if (tok && gpt_tokenizer_vocab_size(tok) > V)
        fprintf(stderr,
                "gpt generate: warning: the %s tokenizer has %d tokens, the model only %d\n",
                gpt_tokenizer_name(tok), gpt_tokenizer_vocab_size(tok), V);

    /* Rows: each given prompt, or the one prompt repeated --batch times. */
    for (int b = 0; b < B; b++) {
        int r = a.n_rows ? (a.n_rows == 1 ? 0 : b) : -1;
        if (r >= 0 && a.ids[r]) {
            prompts[b] = malloc(a.n_ids[r] * sizeof **prompts);
            if (!prompts[b]) {
                gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
                goto lib_fail;
            }
            memcpy(prompts[b], a.ids[r], a.n_ids[r] * sizeof **prompts);
            lens[b] = (int)a.n_ids[r];
            continue;
        }
        size_t n = 0;
        const char *text = r >= 0 ? a.texts[r] : "";
        if ((rc = gpt_tokenizer_encode(tok, text, strlen(text), 1, &prompts[b], &n, &err)))
            goto lib_fail;
        if (n == 0) {
            /* No prompt: start from <|endoftext|>, as GPT-2 does. */
            if (eot < 0) {
                gpt_fail(&err, GPT_ERR_INVALID,
                         "the prompt is empty and the %s tokenizer has no <|endoftext|> to "
                         "start from: give a --prompt",
                         gpt_tokenizer_name(tok));
                goto lib_fail;
            }
            free(prompts[b]);
            if (!(prompts[b] = malloc(sizeof **prompts))) {
                gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
                goto lib_fail;
            }
            prompts[b][0] = eot;
            n = 1;
        }
        if (n > (size_t)1 << 30) {
            gpt_fail(&err, GPT_ERR_INVALID, "the prompt is too long (%zu tokens)", n);
            goto lib_fail;
        }
        lens[b] = (int)n;
    }
    if (!(out = malloc((size_t)B * (size_t)a.n * sizeof *out))) {
        gpt_fail(&err, GPT_ERR_NOMEM, "out of memory for %d x %d tokens", B, a.n);
        goto lib_fail;
    }

    stream_ctx sc = {tok, eot, !ids_out && B == 1};
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.max_new_tokens = a.n;
    o.sampler.temperature = (float)a.temperature;
    o.sampler.top_k = a.top_k;
    o.sampler.top_p = (float)a.top_p;
    o.sampler.seed = (uint64_t)a.seed;
    o.eot = ids_out ? -1 : eot;
    o.stop = a.stop;
    o.n_stop = a.n_stop;
    o.token_bytes = tok ? token_bytes : NULL;
    o.sliding_window = a.sliding;
    o.on_token = on_token;
    o.user = &sc;
    if (sc.stream) {
        /* The prompt as text, then the continuation as it comes. */
        char *text;
        size_t n;
        int skip = prompts[0][0] == eot && lens[0] == 1; /* no prompt given */
        if (!skip) {
            if ((rc = gpt_tokenizer_decode(tok, prompts[0], (size_t)lens[0], &text, &n, &err)))
                goto lib_fail;
            fwrite(text, 1, n, stdout);
            free(text);
        }
        fflush(stdout);
    }
    gpt_generate_stats st;
    rc = gpt_generate(m, (const int *const *)prompts, lens, B, &o, out, out_lens, &st, &err);
    if (sc.stream) printf("\n");
    if (rc) goto lib_fail;

    if (ids_out) {
        if (B > 1) printf("[");
        for (int b = 0; b < B; b++) {
            printf("%s[", b ? "," : "");
            for (int i = 0; i < out_lens[b]; i++) printf(i ? ",%d" : "%d", out[(size_t)b * a.n + i]);
            printf("]");
        }
        printf(B > 1 ? "]\n" : "\n");
    } else if (!sc.stream) {
        for (int b = 0; b < B; b++) {
            int n = out_lens[b];
            /* The row's prompt and continuation, without a final <|endoftext|>. */
            if (n && out[(size_t)b * a.n + n - 1] == eot) n--;
            int skip = prompts[b][0] == eot && lens[b] == 1;
            int *all = malloc(((size_t)lens[b] + (size_t)n) * sizeof *all);
            char *text = NULL;
            size_t tl;
            if (!all) {
                gpt_fail(&err, GPT_ERR_NOMEM, "out of memory");
                goto lib_fail;
            }
            memcpy(all, prompts[b] + skip, (size_t)(lens[b] - skip) * sizeof *all);
            memcpy(all + lens[b] - skip, out + (size_t)b * a.n, (size_t)n * sizeof *all);
            rc = gpt_tokenizer_decode(tok, all, (size_t)(lens[b] - skip + n), &text, &tl, &err);
            free(all);
            if (rc) goto lib_fail;
            printf("--- sample %d of %d ---\n", b + 1, B);
            fwrite(text, 1, tl, stdout);
            printf("\n");
            free(text);
        }
    }
    fflush(stdout);
    fprintf(stderr, "gpt generate: batch %d, ", B);
    if (strcmp(gpt_model_quant(m), "none"))
        fprintf(stderr, "%s weights (%s kernel), ", gpt_model_quant(m), gpt_model_quant_kernel(m));
    print_rate("prefill", st.prefill_tokens, st.prefill_s);
    fprintf(stderr, ", ");
    print_rate("decode", st.decode_tokens, st.decode_s);
    if (st.reprefills) fprintf(stderr, ", %d window slides", st.reprefills);
    fprintf(stderr, "\n");
    goto done;
lib_fail:
    exit_code = cli_lib_error(CMD, &err);
done:
    for (int b = 0; prompts && b < B; b++) free(prompts[b]);
    free(prompts);
    free(lens);
    free(out);
    free(out_lens);
    gpt_tokenizer_free(tok);
    gpt_model_free(m);
    free_args(&a);
    return exit_code;
}
