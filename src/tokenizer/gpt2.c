/*
 * gpt2.c - OpenAI's GPT-2 vocabulary from its two published files,
 * compiled into the library (gpt2_data.c): encoder.json maps 50,257 token
 * strings to ids and vocab.bpe lists the 50,000 merges by rank.
 *
 * Token strings are written in GPT-2's printable alphabet (bytes_to_unicode
 * in OpenAI's encoder.py): each byte is one character, the printable
 * Latin-1 bytes standing for themselves and the other 68 bytes for
 * U+0100.. in byte order. We turn strings back into bytes and check that
 * the files have the shape every vocabulary here has: ids 0..255 the bytes,
 * id 256 + r the result of merge r, then the special <|endoftext|>.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tok_internal.h"
#include "unicode.h"
#include "util.h"

#define WHAT "built-in GPT-2 vocabulary"

void tok_byte_alphabet(uint32_t cp[256]) {
    uint32_t extra = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = printable ? (uint32_t)b : extra++;
    }
}

/* The bytes a token string stands for, written to out (at most n bytes
 * since every character is at least one byte); returns their count or
 * SIZE_MAX if a character is not in the alphabet. */
static size_t string_bytes(const char *s, size_t n, const int inv[324], char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = uc_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l || cp >= 324 || inv[cp] < 0) return SIZE_MAX;
        out[o++] = (char)inv[cp];
        i += l;
    }
    return o;
}

typedef struct {
    json_value *enc;
    tok_map map;      /* token string -> val[0] id */
    int32_t *merges;
    char *buf;
    const char **special;
    size_t *special_len;
    char *special_bytes;
} gpt2_parts;

static void parts_free(gpt2_parts *p) {
    json_free(p->enc);
    tok_map_free(&p->map);
    free(p->merges);
    free(p->buf);
    free(p->special);
    free(p->special_len);
    free(p->special_bytes);
}

static int fail(gpt2_parts *p, gpt_error *err, int code, const char *msg, size_t at) {
    parts_free(p);
    if (code == GPT_ERR_NOMEM) return gpt_fail(err, code, "out of memory loading the " WHAT);
    return gpt_fail(err, code, WHAT ": %s (at %zu); the library was built from damaged files",
                    msg, at);
}

static int lookup(const gpt2_parts *p, const char *s, size_t n) {
    size_t e = tok_map_find(&p->map, s, n, tok_hash(s, n));
    return e == SIZE_MAX ? -1 : (int)p->map.val[2 * e];
}

int tok_open_gpt2(gpt_tokenizer **out, gpt_error *err) {
    *out = NULL;
    const char *enc_text, *bpe;
    size_t enc_len, bpe_len;
    tok_gpt2_files(&enc_text, &enc_len, &bpe, &bpe_len);
    gpt2_parts p;
    memset(&p, 0, sizeof p);
    int rc = json_parse(enc_text, enc_len, &p.enc, err);
    if (rc) return rc;
    const json_value *enc = p.enc;
    if (enc->type != JSON_OBJECT || enc->len < 257 || enc->len > TOK_MAX_VOCAB)
        return fail(&p, err, GPT_ERR_INVALID, "encoder.json is not an object of tokens", 0);
    int V = (int)enc->len;
    uint32_t cp[256];
    int inv[324];
    tok_byte_alphabet(cp);
    for (int i = 0; i < 324; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) inv[cp[b]] = b;

    if (tok_map_init(&p.map, (size_t)V)) return fail(&p, err, GPT_ERR_NOMEM, NULL, 0);
    for (size_t i = 0; i < enc->len; i++) {
        long long id;
        const json_value *key = json_key(enc, i);
        if (!json_get_int(json_member(enc, i), 0, V - 1, &id))
            return fail(&p, err, GPT_ERR_INVALID, "encoder.json id out of range", i);
        uint64_t h = tok_hash(key->str, key->len);
        size_t e;
        if (tok_map_find(&p.map, key->str, key->len, h) != SIZE_MAX)
            return fail(&p, err, GPT_ERR_INVALID, "encoder.json repeats a key", i);
        if (tok_map_add(&p.map, key->str, key->len, h, &e))
            return fail(&p, err, GPT_ERR_NOMEM, NULL, 0);
        p.map.val[2 * e] = (size_t)id;
    }

    int byte_id[256];
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t l = cp[b] < 0x80 ? 1 : 2; /* cp < 0x800 */
        if (l == 1) s[0] = (char)cp[b];
        else s[0] = (char)(0xC0 | (cp[b] >> 6)), s[1] = (char)(0x80 | (cp[b] & 0x3F));
        byte_id[b] = lookup(&p, s, l);
        if (byte_id[b] < 0)
            return fail(&p, err, GPT_ERR_INVALID, "encoder.json lacks a byte", (size_t)b);
    }

    /* vocab.bpe: a "#version" line, then "left right" per line by rank. */
    size_t max_line = 0;
    for (size_t i = 0, st = 0; i <= bpe_len; i++)
        if (i == bpe_len || bpe[i] == '\n') {
            if (i - st > max_line) max_line = i - st;
            st = i + 1;
        }
    size_t buf_len = max_line;
    for (size_t i = 0; i < enc->len; i++)
        if (json_key(enc, i)->len > buf_len) buf_len = json_key(enc, i)->len;
    int M = V - 257;
    p.merges = malloc((size_t)M * 2 * sizeof *p.merges);
    p.buf = malloc(buf_len + 1);
    if (!p.merges || !p.buf) return fail(&p, err, GPT_ERR_NOMEM, NULL, 0);
    int r = 0;
    for (size_t st = 0, first = 1; st < bpe_len; first = 0) {
        const char *line = bpe + st;
        const char *nl = memchr(line, '\n', bpe_len - st);
        size_t len = nl ? (size_t)(nl - line) : bpe_len - st;
        st += len + 1;
        /* "# #" is a merge; only the first line is the version. */
        if (len == 0 || (first && len >= 8 && !memcmp(line, "#version", 8))) continue;
        const char *sp = memchr(line, ' ', len);
        if (!sp || sp == line || sp == line + len - 1 || r >= M)
            return fail(&p, err, GPT_ERR_INVALID, "bad line in vocab.bpe", (size_t)r);
        size_t la = (size_t)(sp - line), lb = len - la - 1;
        memcpy(p.buf, line, la);
        memcpy(p.buf + la, sp + 1, lb);
        int a = lookup(&p, line, la), b = lookup(&p, sp + 1, lb), c = lookup(&p, p.buf, la + lb);
        if (a < 0 || b < 0 || c != 256 + r)
            return fail(&p, err, GPT_ERR_INVALID, "vocab.bpe merge disagrees with encoder.json",
                        (size_t)r);
        p.merges[2 * r] = a;
        p.merges[2 * r + 1] = b;
        r++;
    }
    if (r != M) return fail(&p, err, GPT_ERR_INVALID, "vocab.bpe has too few merges", (size_t)r);

    /* What is left after bytes and merges: the special token(s). */
    int S = V - 256 - M;
    p.special = malloc((size_t)S * sizeof *p.special);
    p.special_len = malloc((size_t)S * sizeof *p.special_len);
    p.special_bytes = malloc(enc_len);
    if (!p.special || !p.special_len || !p.special_bytes)
        return fail(&p, err, GPT_ERR_NOMEM, NULL, 0);
    size_t used = 0;
    for (size_t i = 0; i < enc->len; i++) {
        int id = (int)p.map.val[2 * i];
        if (id < 256 + M) continue;
        size_t l = string_bytes(json_key(enc, i)->str, json_key(enc, i)->len, inv, p.special_bytes + used);
        if (l == SIZE_MAX)
            return fail(&p, err, GPT_ERR_INVALID, "bad special token in encoder.json", i);
        p.special[id - 256 - M] = p.special_bytes + used;
        p.special_len[id - 256 - M] = l;
        used += l;
    }
    gpt_tokenizer *t;
    rc = tok_build(&t, "gpt2", WHAT, byte_id, M, p.merges, S, p.special, p.special_len, err);
    if (rc) {
        parts_free(&p);
        return rc;
    }

    /* Every token's bytes must be what encoder.json says. */
    for (size_t i = 0; i < enc->len; i++) {
        int id = (int)p.map.val[2 * i];
        size_t l = string_bytes(json_key(enc, i)->str, json_key(enc, i)->len, inv, p.buf);
        size_t tl;
        const char *tb = gpt_tokenizer_token(t, id, &tl);
        if (l == SIZE_MAX || l != tl || memcmp(tb, p.buf, l)) {
            gpt_tokenizer_free(t);
            return fail(&p, err, GPT_ERR_INVALID, "token bytes disagree with encoder.json", i);
        }
    }
    parts_free(&p);
    *out = t;
    return 0;
}
