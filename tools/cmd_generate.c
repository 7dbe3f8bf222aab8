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
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"
#include "gpt_tokenizer.h"
#include "interactive.h"
#include "opts.h"
#include "../src/tools_internal.h"

static const char *CMD = "generate";

/* Prompt files larger than this are refused (a prompt must fit a context). */
#define PROMPT_FILE_CAP ((size_t)64 << 20)

/* A prompt as given: text, a file of text, or token ids. */
typedef struct {
    const char *text; /* --prompt TEXT, or the path of --file */
    int is_file;
    int *ids; /* --prompt-tokens (malloc'd), or NULL */
    size_t n_ids;
} prompt_row;

typedef struct {
    cli_model_args model;
    cli_gen_args gen;
    int batch, sliding, interactive, keep;
    const char *format;
    int n_rows; /* each --prompt, --file or --prompt-tokens is a row */
    prompt_row *rows;
} gen_args;

static int add_row(gen_args *a, const char *cmd, prompt_row r) {
    prompt_row *nr = realloc(a->rows, (size_t)(a->n_rows + 1) * sizeof *nr);
    if (!nr) {
        free(r.ids);
        return cli_usage_error(cmd, "out of memory");
    }
    a->rows = nr;
    a->rows[a->n_rows++] = r;
    return 0;
}

static int add_text(void *field, void *args, const char *cmd, const char *flag, const char *v) {
    (void)field, (void)flag;
    return add_row(args, cmd, (prompt_row){.text = v});
}

static int add_file(void *field, void *args, const char *cmd, const char *flag, const char *v) {
    (void)field;
    if (!*v) return cli_usage_error(cmd, "%s needs a file name", flag);
    return add_row(args, cmd, (prompt_row){.text = v, .is_file = 1});
}

static int add_ids(void *field, void *args, const char *cmd, const char *flag, const char *v) {
    (void)field;
    prompt_row r = {0};
    if (!cli_parse_ids(cmd, flag, v, &r.ids, &r.n_ids)) return EXIT_USAGE;
    return add_row(args, cmd, r);
}

#define O(f) offsetof(gen_args, f)
static const cli_opt gen_opts[] = {
    {CLI_SECTION, .help = "model"},
    {CLI_GROUP, .group = cli_model_opts, .off = O(model)},
    {CLI_SECTION, .help = "prompts (each --prompt, --file or --prompt-tokens is one row of the batch)"},
    {CLI_CALL, 'p', "prompt", 0, "TEXT", "text to continue (default: <|endoftext|>, i.e. no prompt)",
     .call = add_text},
    {CLI_CALL, 'f', "file", 0, "FILE", "a file whose text is the prompt", .call = add_file},
    {CLI_CALL, 0, "prompt-tokens", 0, "IDS", "token ids to continue, comma-separated: 464,3290,318",
     .call = add_ids},
    {CLI_INT, 0, "batch", O(batch), "B",
     "run the one prompt B times as a batch (rows draw different samples)", .lo = 1, .hi = 65536},
    {CLI_SECTION, .help = "sampling"},
    {CLI_GROUP, .group = cli_gen_opts, .off = O(gen)},
    {CLI_FLAG, 0, "sliding-window", O(sliding), NULL,
     .help = "go on past the context: when a row fills it, it continues from the last half of its context"},
    {CLI_SECTION, .help = "interactive"},
    {CLI_FLAG, 'i', "interactive", O(interactive), NULL,
     .help = "a conversation: the model answers the prompt, then each line you type is appended "
             "to what its KV cache holds and it goes on from there (up to -n tokens a turn, or to "
             "a --stop string). Ctrl-C stops a reply; Ctrl-D ends. A full context goes on from "
             "its last half"},
    {CLI_INT, 0, "keep", O(keep), "N",
     "with -i: tokens of the first prompt kept when the context fills; -1 = all", .def = "0",
     .lo = -1, .hi = 1 << 30},
    {CLI_SECTION, .help = "output"},
    {CLI_CHOICE, 0, "format", O(format), "text|ids",
     "text: prompt and continuation, streamed; a row ends at <|endoftext|>. ids: one JSON array of "
     "the generated ids (an array of arrays for a batch); rows end only at -n or a --stop string",
     .def = "text", .choices = "text|ids"},
    {CLI_END},
};
#undef O

const cli_cmd gpt_generate_cmd = {
    .name = "generate",
    .summary = "sample text from a model (KV cache, streaming)",
    .usage = "--model PATH [options]",
    .about = "Generates text from a model with the KV cache: the prompt is read in one pass,\n"
             "then one token at a time is drawn and streamed to standard output. Prefill and\n"
             "decode speed are printed to standard error at the end. llama.cpp's spellings\n"
             "work too: -m, -p, -f, -n, -s, -t, -c, --temp.\n",
    .opts = gen_opts,
    .footer = "examples:\n"
              "  gpt generate --model runs/tiny/model.ckpt --prompt \"ROMEO:\" -n 200 --top-k 40\n"
              "  gpt generate -m gpt2-hf/ -p \"Hello\" --temp 0.8 --top-p 0.95\n"
              "  gpt generate -m gpt2-hf/ --prompt-tokens 15496,11 -n 8 --temp 0 --format ids\n",
    .run = gpt_cmd_generate,
};

static void free_args(gen_args *a) {
    for (int i = 0; i < a->n_rows; i++) free(a->rows[i].ids);
    free(a->rows);
    cli_free(&gpt_generate_cmd, a);
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, gen_args *a) {
    memset(a, 0, sizeof *a);
    int rc = cli_parse_args(&gpt_generate_cmd, argc, argv, a, NULL);
    if (rc >= 0) return rc;
    if (a->interactive && (a->batch > 1 || a->n_rows > 1))
        return cli_usage_error(CMD, "-i is one conversation: give at most one prompt and no --batch");
    if (a->interactive && a->sliding)
        return cli_usage_error(CMD, "-i always goes on past a full context: leave out --sliding-window");
    if (a->batch && a->n_rows > 1 && a->batch != a->n_rows)
        return cli_usage_error(CMD, "--batch %d with %d prompts: give one prompt, or leave out "
                                    "--batch",
                               a->batch, a->n_rows);
    return -1;
}

/* Reads a prompt file: at most `cap` bytes, else a one-line refusal. */
static int read_prompt_file(const char *path, size_t cap, char **text, size_t *len,
                            gpt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return gpt_fail(err, GPT_ERR_INVALID, "cannot open the prompt file '%s': %s", path,
                        strerror(errno));
    size_t n = 0, size = 1 << 16;
    char *buf = malloc(size);
    while (buf) {
        n += fread(buf + n, 1, size - n - 1, f);
        if (ferror(f) || feof(f) || n >= cap) break;
        char *nb = realloc(buf, size * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb, size *= 2;
    }
    int bad = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading '%s'", path);
    if (bad || n >= cap) {
        free(buf);
        if (bad)
            return gpt_fail(err, GPT_ERR_INVALID, "cannot read the prompt file '%s': %s", path,
                            strerror(bad));
        return gpt_fail(err, GPT_ERR_INVALID, "the prompt file '%s' is larger than %zu MiB", path,
                        cap >> 20);
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return GPT_OK;
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

static void print_rate(const char *what, long long tokens, double s) {
    fprintf(stderr, "%s %lld tokens in %.3f s (%.1f tok/s)", what, tokens, s,
            s > 0 ? (double)tokens / s : 0.0);
}

/* Row b's prompt ids from the arguments: row r's ids, text or file (the
 * one row repeated for --batch), or <|endoftext|> when there is none. */
static int build_prompt(const gen_args *a, int b, const gpt_tokenizer *tok, int eot, int **ids,
                        int *len, gpt_error *err) {
    int r = a->n_rows ? (a->n_rows == 1 ? 0 : b) : -1, rc;
    size_t n = 0;
    if (r >= 0 && a->rows[r].ids) {
        n = a->rows[r].n_ids;
        if (!(*ids = malloc(n * sizeof **ids))) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        memcpy(*ids, a->rows[r].ids, n * sizeof **ids);
        *len = (int)n;
        return GPT_OK;
    }
    char *file = NULL;
    size_t flen = 0;
    const char *text = r >= 0 ? a->rows[r].text : "";
    if (r >= 0 && a->rows[r].is_file) {
        if ((rc = read_prompt_file(text, PROMPT_FILE_CAP, &file, &flen, err))) return rc;
        text = file;
    }
    rc = gpt_tokenizer_encode(tok, text, file ? flen : strlen(text), 1, ids, &n, err);
    free(file);
    if (rc) return rc;
    if (n == 0) {
        /* No prompt: start from <|endoftext|>, as GPT-2 does. */
        if (eot < 0)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "the prompt is empty and the %s tokenizer has no <|endoftext|> to "
                            "start from: give a --prompt",
                            gpt_tokenizer_name(tok));
        free(*ids);
        if (!(*ids = malloc(sizeof **ids))) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        (*ids)[0] = eot;
        n = 1;
    }
    if (n > (size_t)1 << 30) return gpt_fail(err, GPT_ERR_INVALID, "the prompt is too long (%zu tokens)", n);
    *len = (int)n;
    return GPT_OK;
}

/* Prints every row (not streamed): ids as JSON, or prompt and text. */
static int print_rows(const gen_args *a, int B, int *const *prompts, const int *lens,
                      const int *out, const int *out_lens, const gpt_tokenizer *tok, int eot,
                      int ids_out, gpt_error *err) {
    const int N = a->gen.n;
    if (ids_out) {
        if (B > 1) printf("[");
        for (int b = 0; b < B; b++) {
            printf("%s[", b ? "," : "");
            for (int i = 0; i < out_lens[b]; i++) printf(i ? ",%d" : "%d", out[(size_t)b * N + i]);
            printf("]");
        }
        printf(B > 1 ? "]\n" : "\n");
        return GPT_OK;
    }
    for (int b = 0; b < B; b++) {
        int n = out_lens[b];
        /* The row's prompt and continuation, without a final <|endoftext|>. */
        if (n && out[(size_t)b * N + n - 1] == eot) n--;
        int skip = prompts[b][0] == eot && lens[b] == 1;
        int *all = malloc(((size_t)lens[b] + (size_t)n) * sizeof *all);
        char *text = NULL;
        size_t tl;
        if (!all) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        memcpy(all, prompts[b] + skip, (size_t)(lens[b] - skip) * sizeof *all);
        memcpy(all + lens[b] - skip, out + (size_t)b * N, (size_t)n * sizeof *all);
        int rc = gpt_tokenizer_decode(tok, all, (size_t)(lens[b] - skip + n), &text, &tl, err);
        free(all);
        if (rc) return rc;
        printf("--- sample %d of %d ---\n", b + 1, B);
        fwrite(text, 1, tl, stdout);
        printf("\n");
        free(text);
    }
    return GPT_OK;
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
    if ((rc = cli_load_model(&a.model, &m, &err))) goto lib_fail;
    if ((exit_code = cli_check_ctx(CMD, &a.gen, m))) goto done;

    /* The tokenizer is needed for text, stop strings and <|endoftext|>;
     * ids in, ids out without --stop runs without one. */
    int need_tok = !ids_out || a.gen.stop.n > 0 || a.model.tokenizer || a.n_rows == 0 || a.interactive;
    for (int i = 0; i < a.n_rows; i++) need_tok |= a.rows[i].ids == NULL;
    if (need_tok && (rc = cli_model_tokenizer(m, a.model.tokenizer, &tok, &err))) goto lib_fail;
    const int eot = tok ? gpt_tokenizer_eot(tok) : -1;
    const int V = gpt_model_config(m)->vocab_size;
    if (tok && gpt_tokenizer_vocab_size(tok) > V)
        fprintf(stderr,
                "gpt generate: warning: the %s tokenizer has %d tokens, the model only %d\n",
                gpt_tokenizer_name(tok), gpt_tokenizer_vocab_size(tok), V);

    if (a.interactive) {
        /* The conversation starts from the prompt, or from the first line
         * typed when there is none. */
        if (a.n_rows && (rc = build_prompt(&a, 0, tok, eot, &prompts[0], &lens[0], &err)))
            goto lib_fail;
        interactive_opts io = {.n = a.gen.n, .ctx = a.gen.ctx, .keep = a.keep,
                               .stop = a.gen.stop.v, .n_stop = a.gen.stop.n, .ids = ids_out};
        gpt_generate_opts g;
        gpt_generate_opts_default(&g);
        cli_gen_apply(&a.gen, &g);
        io.sampler = g.sampler;
        if ((rc = gpt_sampler_opts_validate(&io.sampler, &err)) ||
            (rc = interactive_run(m, tok, prompts[0], a.n_rows ? lens[0] : 0, &io, &err)))
            goto lib_fail;
        goto done;
    }
    for (int b = 0; b < B; b++)
        if ((rc = build_prompt(&a, b, tok, eot, &prompts[b], &lens[b], &err))) goto lib_fail;
    if (!(out = malloc((size_t)B * (size_t)a.gen.n * sizeof *out))) {
        gpt_fail(&err, GPT_ERR_NOMEM, "out of memory for %d x %d tokens", B, a.gen.n);
        goto lib_fail;
    }

    stream_ctx sc = {tok, eot, !ids_out && B == 1};
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    cli_gen_apply(&a.gen, &o);
    o.eot = ids_out ? -1 : eot;
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
    if (!sc.stream &&
        (rc = print_rows(&a, B, prompts, lens, out, out_lens, tok, eot, ids_out, &err)))
        goto lib_fail;
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
