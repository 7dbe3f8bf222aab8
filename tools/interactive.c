/*
 * interactive.c - gpt generate -i: a conversation with a model that keeps
 * its KV cache between turns. Each line typed is appended to what the
 * cache already holds (the model sees the whole conversation without
 * reading it again), then the model continues for up to -n tokens, until
 * <|endoftext|> or a --stop string, and control comes back. Ctrl-C stops a
 * reply; Ctrl-C at the prompt or Ctrl-D ends.
 *
 * When the cache is full, the conversation goes on from its last half
 * (after --keep tokens of the first prompt): GPT-2's positions are learned
 * absolute embeddings, so a shifted cache would be wrong, and the kept
 * tokens are read again in one prefill. A notice says so on stderr.
 *
 * New tokens go into the cache one decode step each (exactly what
 * generation does); only an empty cache (the first prompt, a slide) is
 * filled by one prefill.
 */
#define _POSIX_C_SOURCE 200809L
#include "interactive.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../src/tools_internal.h"

/* A line longer than this is refused (and skipped), not held in memory. */
#define LINE_CAP ((size_t)1 << 20)

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    gpt_model *m;
    const gpt_tokenizer *tok;
    const interactive_opts *o;
    int ctx, keep, V;
    int *hist; /* (ctx) the tokens in the cache, in order */
    int len;   /* positions used */
    float *logits; /* (V) after the last token fed */
    gpt_sampler *s;
    long long fed, generated, slides;
    double read_s, gen_s; /* time reading the user's tokens, and replying */
} chat;

/* Makes room for token t: the cache restarts from the kept prefix, the
 * last part of the conversation and t (half the context in all, as
 * gpt_generate's sliding window), read in one prefill. */
static int slide(chat *c, int t, gpt_error *err) {
    int keep = c->keep < c->ctx / 2 ? c->keep : c->ctx / 2;
    int tail = c->ctx / 2 - keep; /* the recent part, t included */
    if (tail < 1) tail = 1;
    memmove(c->hist + keep, c->hist + c->len - (tail - 1), (size_t)(tail - 1) * sizeof *c->hist);
    c->hist[keep + tail - 1] = t;
    c->len = keep + tail;
    fprintf(stderr, "\n[gpt generate: context full (%d positions): going on from the last %d tokens%s]\n",
            c->ctx, tail, keep ? " and the kept start" : "");
    c->slides++;
    const int *rows[1] = {c->hist};
    int rc = gpt_kv_begin(c->m, 1, c->ctx, err);
    if (!rc) rc = gpt_kv_prefill(c->m, rows, &c->len, c->logits, err);
    return rc;
}

/* Appends n tokens to the conversation; the logits are then those of the
 * position after the last. */
static int feed(chat *c, const int *t, int n, gpt_error *err) {
    int rc = GPT_OK;
    while (n > 0 && !rc) {
        if (c->len == 0) {
            int k = n < c->ctx ? n : c->ctx;
            memcpy(c->hist, t, (size_t)k * sizeof *t);
            const int *rows[1] = {c->hist};
            if (!(rc = gpt_kv_begin(c->m, 1, c->ctx, err)))
                rc = gpt_kv_prefill(c->m, rows, &k, c->logits, err);
            c->len = k, c->fed += k, t += k, n -= k;
        } else if (c->len == c->ctx) {
            rc = slide(c, *t, err);
            c->fed++, t++, n--;
        } else {
            c->hist[c->len++] = *t;
            rc = gpt_kv_decode(c->m, t, c->logits, err);
            c->fed++, t++, n--;
        }
    }
    return rc;
}

/* Writes bytes to stdout now (the reply streams). */
static void put(const void *p, size_t n) {
    if (n) fwrite(p, 1, n, stdout); /* a token may decode to no bytes (p NULL) */
    fflush(stdout);
}

/* 1 if the reply's text now contains one of the stop strings. */
static int stopped(const interactive_opts *o, const char *text, size_t n) {
    for (int i = 0; i < o->n_stop; i++) {
        size_t ls = strlen(o->stop[i]);
        for (size_t a = 0; ls <= n && a + ls <= n; a++)
            if (!memcmp(text + a, o->stop[i], ls)) return 1;
    }
    return 0;
}

/* The model's turn: up to o->n tokens, streamed; in text mode it also
 * ends at <|endoftext|> (not printed). */
static int reply(chat *c, gpt_error *err) {
    const int eot = c->o->ids ? -1 : gpt_tokenizer_eot(c->tok);
    char *text = NULL;
    size_t tn = 0, tcap = 0;
    int *ids = malloc((size_t)c->o->n * sizeof *ids), n = 0, rc = GPT_OK;
    if (!ids) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    double t0 = gpt_now();
    while (n < c->o->n && !interrupted) {
        int t = gpt_sample(c->s, c->logits);
        if (t < 0) {
            rc = gpt_fail(err, GPT_ERR_RUNTIME, "the model produced no finite logit");
            break;
        }
        ids[n++] = t;
        c->generated++;
        if ((rc = feed(c, &t, 1, err))) break;
        if (t == eot) break;
        size_t bl;
        const char *b = gpt_tokenizer_token(c->tok, t, &bl);
        if (!b) bl = 0;
        if (!c->o->ids) put(b, bl);
        if (tn + bl + 1 > tcap) {
            size_t cap = tcap ? tcap * 2 : 256;
            while (cap < tn + bl + 1) cap *= 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
                break;
            }
            text = nt, tcap = cap;
        }
        if (bl) memcpy(text + tn, b, bl); /* b may be NULL for no bytes */
        tn += bl;
        if (stopped(c->o, text, tn)) break;
    }
    c->gen_s += gpt_now() - t0;
    if (c->o->ids) {
        putchar('[');
        for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        put("]\n", 2);
    } else if (tn == 0 || text[tn - 1] != '\n') {
        put("\n", 1);
    }
    free(ids);
    free(text);
    return rc;
}

/* Reads one line (newline included) into *line; 0 at the end of input. A
 * line of LINE_CAP bytes or more is read to its end and refused. */
static int read_line(char **line, size_t *len, int *too_long) {
    size_t n = 0, cap = 256;
    char *b = malloc(cap);
    *too_long = 0;
    if (!b) return 0;
    int ch;
    while ((ch = getchar()) != EOF) {
        if (n + 2 > cap && n < LINE_CAP) {
            char *nb = realloc(b, cap * 2);
            if (!nb) break;
            b = nb, cap *= 2;
        }
        if (n < LINE_CAP) b[n++] = (char)ch;
        else *too_long = 1;
        if (ch == '\n') break;
    }
    if (ch == EOF && n == 0) {
        free(b);
        return 0;
    }
    b[n] = 0;
    *line = b;
    *len = n;
    return 1;
}

int interactive_run(gpt_model *m, const gpt_tokenizer *tok, const int *prompt, int prompt_len,
                    const interactive_opts *o, gpt_error *err) {
    chat c = {.m = m, .tok = tok, .o = o};
    const gpt_config *cfg = gpt_model_config(m);
    c.V = cfg->vocab_size;
    c.ctx = o->ctx > 0 && o->ctx < cfg->max_seq_len ? o->ctx : cfg->max_seq_len;
    c.keep = o->keep < 0 ? prompt_len : o->keep;
    if (c.ctx < 2)
        return gpt_fail(err, GPT_ERR_INVALID, "interactive mode needs a context of 2 or more");
    c.hist = malloc((size_t)c.ctx * sizeof *c.hist);
    c.logits = malloc((size_t)c.V * sizeof *c.logits);
    int rc = c.hist && c.logits ? gpt_sampler_create(&c.s, &o->sampler, c.V, err)
                                : gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    const int tty = isatty(0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C ends a read at the prompt */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    if (!rc && tty)
        fprintf(stderr, "gpt generate: interactive: type text and press Enter; the model goes on "
                        "from it (up to %d tokens a turn). Ctrl-C stops a reply; Ctrl-D ends.\n",
                o->n);
    if (!rc && prompt_len > 0) {
        if (!o->ids) {
            char *t;
            size_t n;
            if (!(rc = gpt_tokenizer_decode(tok, prompt, (size_t)prompt_len, &t, &n, err))) {
                put(t, n);
                free(t);
            }
        }
        double t0 = gpt_now();
        if (!rc) rc = feed(&c, prompt, prompt_len, err);
        c.read_s += gpt_now() - t0;
        if (!rc) rc = reply(&c, err);
    }
    while (!rc) {
        interrupted = 0;
        if (tty) put("> ", 2);
        char *line;
        size_t n;
        int too_long;
        if (!read_line(&line, &n, &too_long)) {
            if (tty) put("\n", 1);
            break; /* Ctrl-D, or Ctrl-C at the prompt */
        }
        if (too_long) {
            fprintf(stderr, "gpt generate: that line is longer than %zu MiB: not sent\n",
                    LINE_CAP >> 20);
            free(line);
            continue;
        }
        int *ids = NULL;
        size_t k = 0;
        rc = gpt_tokenizer_encode(tok, line, n, 0, &ids, &k, err);
        free(line);
        double t0 = gpt_now();
        if (!rc && k > 0) rc = feed(&c, ids, (int)k, err);
        c.read_s += gpt_now() - t0;
        free(ids);
        if (!rc && k > 0) rc = reply(&c, err);
    }
    sigaction(SIGINT, &old, NULL);
    if (!rc)
        fprintf(stderr,
                "gpt generate: %lld tokens read in %.2f s, %lld generated in %.2f s (%.1f tok/s)%s\n",
                c.fed - c.generated, c.read_s, c.generated, c.gen_s,
                c.gen_s > 0 ? (double)c.generated / c.gen_s : 0.0,
                c.slides ? ", the context slid" : "");
    gpt_sampler_free(c.s);
    free(c.hist);
    free(c.logits);
    return rc;
}
