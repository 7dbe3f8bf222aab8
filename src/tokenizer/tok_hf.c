/*
 * tok_hf.c - a tokenizer as Hugging Face's GPT-2 tokenizer files
 * (hf_tokenizer_files in hf.h), so that AutoTokenizer.from_pretrained reads
 * the folder gpt convert writes and gives our ids.
 *
 * GPT2Tokenizer's vocab.json maps each token's text to its id, the text
 * being the token's bytes each written as one character of GPT-2's byte
 * alphabet (tok_byte_alphabet); merges.txt lists the merges in rank order
 * as two such texts. Our vocabularies have that shape already (bytes, then
 * merge r as id 256 + r, then the special tokens: tok_internal.h), so the
 * files of OpenAI's vocabulary come out equal to its encoder.json and
 * vocab.bpe, and a trained vocabulary keeps its ids.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hf.h"
#include "tok_internal.h"
#include "util.h"

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *p, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
}

#define PUTS(b, lit) put(b, lit, sizeof lit - 1)

static void putf(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_cp(buf *b, uint32_t c) {
    char u[4];
    size_t n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 63)), n = 2;
    else u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | (c >> 6 & 63)),
    u[2] = (char)(0x80 | (c & 63)), n = 3;
    put(b, u, n);
}

/* A regular token's text: its bytes through the byte alphabet, escaped for
 * a JSON string when json (the alphabet holds '"' and '\' as themselves). */
static void put_token(buf *b, const gpt_tokenizer *t, const uint32_t cp[256], int id, int json) {
    const unsigned char *p = (const unsigned char *)t->tok_bytes + t->tok_off[id];
    size_t n = t->tok_off[id + 1] - t->tok_off[id];
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[p[i]];
        if (json && (c == '"' || c == '\\')) PUTS(b, "\\");
        put_cp(b, c);
    }
}

/* A special token's text (valid UTF-8, checked by tok_build) as a JSON string. */
static void put_json_text(buf *b, const char *s, size_t n) {
    PUTS(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') PUTS(b, "\\"), put(b, s + i, 1);
        else if (c < 0x20) putf(b, "\\u%04x", c);
        else put(b, s + i, 1);
    }
    PUTS(b, "\"");
}

/* Two regular tokens with the same bytes (two merge paths to one string)
 * would be one key of vocab.json: 1 and the pair if there are, 0 if not,
 * -1 when out of memory. */
static int same_bytes(const gpt_tokenizer *t, int *a, int *b) {
    tok_map seen;
    int found = 0, n = 256 + t->M;
    if (tok_map_init(&seen, (size_t)n)) return -1;
    for (int id = 0; id < n && !found; id++) {
        const char *p = t->tok_bytes + t->tok_off[id];
        size_t len = t->tok_off[id + 1] - t->tok_off[id], e;
        uint64_t h = tok_hash(p, len);
        if ((e = tok_map_find(&seen, p, len, h)) != SIZE_MAX) {
            *a = (int)seen.val[2 * e], *b = id, found = 1;
        } else if (tok_map_add(&seen, p, len, h, &e)) {
            found = -1;
        } else {
            seen.val[2 * e] = (size_t)id;
        }
    }
    tok_map_free(&seen);
    return found;
}

static void vocab_json(buf *b, const gpt_tokenizer *t, const uint32_t cp[256]) {
    PUTS(b, "{");
    for (int id = 0; id < t->V; id++) {
        if (id) PUTS(b, ", ");
        if (id < 256 + t->M) {
            PUTS(b, "\"");
            put_token(b, t, cp, id, 1);
            PUTS(b, "\"");
        } else {
            put_json_text(b, t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id]);
        }
        putf(b, ": %d", id);
    }
    PUTS(b, "}\n");
}

static void merges_txt(buf *b, const gpt_tokenizer *t, const uint32_t cp[256]) {
    PUTS(b, "#version: 0.2\n");
    for (int r = 0; r < t->M; r++) {
        put_token(b, t, cp, t->merges[2 * r], 0);
        PUTS(b, " ");
        put_token(b, t, cp, t->merges[2 * r + 1], 0);
        PUTS(b, "\n");
    }
}

static void tokenizer_config(buf *b, const gpt_tokenizer *t, int max_len) {
    putf(b, "{\n  \"tokenizer_class\": \"GPT2Tokenizer\",\n  \"model_max_length\": %d,\n", max_len);
    PUTS(b, "  \"add_prefix_space\": false,\n  \"errors\": \"replace\",\n");
    const char *names[] = {"bos_token", "eos_token", "unk_token"};
    for (int k = 0; k < 3; k++) {
        putf(b, "  \"%s\": ", names[k]);
        if (t->eot >= 0) put_json_text(b, t->tok_bytes + t->tok_off[t->eot], t->tok_off[t->eot + 1] - t->tok_off[t->eot]);
        else PUTS(b, "null");
        PUTS(b, ",\n");
    }
    /* The special tokens, so that they are not split into bytes. */
    PUTS(b, "  \"added_tokens_decoder\": {");
    for (int k = 0; k < t->S; k++) {
        int id = 256 + t->M + k;
        putf(b, "%s\n    \"%d\": {\"content\": ", k ? "," : "", id);
        put_json_text(b, t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id]);
        PUTS(b, ", \"lstrip\": false, \"normalized\": true, \"rstrip\": false, "
               "\"single_word\": false, \"special\": true}");
    }
    if (t->S) PUTS(b, "\n  }\n}\n");
    else PUTS(b, "}\n}\n");
}

static void generation_config(buf *b, const gpt_tokenizer *t) {
    if (t->eot >= 0) putf(b, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n", t->eot, t->eot);
    else PUTS(b, "{\n  \"bos_token_id\": null,\n  \"eos_token_id\": null\n}\n");
}

int hf_tokenizer_files(const gpt_tokenizer *t, int max_len, hf_file files[HF_TOKENIZER_FILES],
                       gpt_error *err) {
    int a = 0, b2 = 0, dup = same_bytes(t, &a, &b2);
    if (dup < 0) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    if (dup)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tokens %d and %d of the %s tokenizer have the same bytes: Hugging Face's "
                        "vocab.json cannot hold both",
                        a, b2, t->name);
    uint32_t cp[256];
    tok_byte_alphabet(cp);
    static const char *const names[HF_TOKENIZER_FILES] = {
        "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json"};
    buf bufs[HF_TOKENIZER_FILES] = {{0}};
    vocab_json(&bufs[0], t, cp);
    merges_txt(&bufs[1], t, cp);
    tokenizer_config(&bufs[2], t, max_len);
    generation_config(&bufs[3], t);
    int oom = 0;
    for (int i = 0; i < HF_TOKENIZER_FILES; i++) oom |= bufs[i].oom;
    for (int i = 0; i < HF_TOKENIZER_FILES; i++) {
        if (oom) free(bufs[i].s);
        files[i] = (hf_file){names[i], oom ? NULL : bufs[i].s, bufs[i].len};
    }
    return oom ? gpt_fail(err, GPT_ERR_NOMEM, "out of memory writing the tokenizer files") : GPT_OK;
}
