/*
 * tok_file.c - the tokenizer file: what gpt_tokenizer_save writes and
 * gpt_tokenizer_open reads. All integers little-endian.
 *
 *   offset  size     field
 *   0       8        magic "GPTVOCAB"
 *   8       4        version (1)
 *   12      4        pre-tokenizer (1: GPT-2's pattern)
 *   16      4        V, tokens (= 256 + M + S)
 *   20      4        M, merges
 *   24      4        S, special tokens
 *   28      4        reserved (0)
 *   32      256 x 4  id of each byte 0..255 (a permutation of 0..255)
 *   ..      M x 8    merge r: left id, right id (it makes id 256 + r)
 *   ..      S x ..   special token k (id 256 + M + k): byte length, UTF-8 text
 *   end-4   4        CRC-32 of everything before it
 *
 * The format is canonical: a file that loads serializes back to the same
 * bytes. Reading is strict; every field is checked and each failure names
 * what is wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "util.h"

#define TOK_MAGIC "GPTVOCAB"
#define TOK_VERSION 1u
#define TOK_PRETOK_GPT2 1u
#define TOK_HEADER 32u
/* 1 GiB: far above any real vocabulary (GPT-2's file is 0.4 MB). */
#define TOK_MAX_FILE ((size_t)1 << 30)

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int gpt_tokenizer_serialize(const gpt_tokenizer *t, void **data, size_t *n, gpt_error *err) {
    *data = NULL;
    *n = 0;
    size_t size = TOK_HEADER + 256 * 4 + (size_t)t->M * 8 + 4;
    for (int k = 0; k < t->S; k++) {
        int id = 256 + t->M + k;
        size += 4 + (t->tok_off[id + 1] - t->tok_off[id]);
    }
    unsigned char *buf = malloc(size), *p = buf;
    if (!buf) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory serializing a tokenizer");
    memcpy(p, TOK_MAGIC, 8);
    put_u32(p + 8, TOK_VERSION);
    put_u32(p + 12, TOK_PRETOK_GPT2);
    put_u32(p + 16, (uint32_t)t->V);
    put_u32(p + 20, (uint32_t)t->M);
    put_u32(p + 24, (uint32_t)t->S);
    put_u32(p + 28, 0);
    p += TOK_HEADER;
    for (int b = 0; b < 256; b++, p += 4) put_u32(p, (uint32_t)t->byte_id[b]);
    for (int r = 0; r < t->M; r++, p += 8) {
        put_u32(p, (uint32_t)t->merges[2 * r]);
        put_u32(p + 4, (uint32_t)t->merges[2 * r + 1]);
    }
    for (int k = 0; k < t->S; k++) {
        int id = 256 + t->M + k;
        size_t len = t->tok_off[id + 1] - t->tok_off[id];
        put_u32(p, (uint32_t)len);
        memcpy(p + 4, t->tok_bytes + t->tok_off[id], len);
        p += 4 + len;
    }
    put_u32(p, gpt_crc32(0, buf, (size_t)(p - buf)));
    *data = buf;
    *n = size;
    return 0;
}

int gpt_tokenizer_save(const gpt_tokenizer *t, const char *path, gpt_error *err) {
    void *data;
    size_t n;
    int rc = gpt_tokenizer_serialize(t, &data, &n, err);
    if (rc) return rc;
    gpt_atomic_file af;
    rc = gpt_atomic_open(&af, path, err);
    if (!rc) {
        rc = gpt_atomic_write(&af, data, n, err);
        if (rc) gpt_atomic_abort(&af);
        else rc = gpt_atomic_commit(&af, err);
    }
    free(data);
    return rc;
}

/* Parses and checks a tokenizer file's bytes; `what` names it in messages. */
static int load(gpt_tokenizer **out, const void *data, size_t n, const char *name,
                const char *what, gpt_error *err) {
    *out = NULL;
    const unsigned char *d = data;
    if (!d && n) return gpt_fail(err, GPT_ERR_INVALID, "%s: data is NULL", what);
    if (n < 8 || memcmp(d, TOK_MAGIC, 8) != 0)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s is not a tokenizer file (bad magic: it should start with \"%s\"; "
                        "tokenizer files come from gpt tokenizer train)",
                        what, TOK_MAGIC);
    if (n < TOK_HEADER + 256 * 4 + 4)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s is truncated: %zu bytes, shorter than the %u of the smallest "
                        "tokenizer file",
                        what, n, TOK_HEADER + 256 * 4 + 4);
    uint32_t version = get_u32(d + 8), pretok = get_u32(d + 12), V = get_u32(d + 16),
             M = get_u32(d + 20), S = get_u32(d + 24), reserved = get_u32(d + 28);
    if (version != TOK_VERSION)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s has version %u; this build reads version %u (upgrade gpt?)", what,
                        version, TOK_VERSION);
    if (pretok != TOK_PRETOK_GPT2)
        return gpt_fail(err, GPT_ERR_INVALID, "%s uses pre-tokenizer %u; only 1 (GPT-2) exists",
                        what, pretok);
    if (reserved != 0)
        return gpt_fail(err, GPT_ERR_INVALID, "%s: reserved header field is %u, not 0", what,
                        reserved);
    if (M > TOK_MAX_VOCAB || S > TOK_MAX_SPECIAL || V != 256 + M + S || V > TOK_MAX_VOCAB)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s: counts disagree or exceed the limits: %u tokens, %u merges, %u "
                        "special tokens (tokens must be 256 + merges + special, at most %d)",
                        what, V, M, S, TOK_MAX_VOCAB);
    size_t off = TOK_HEADER + 256 * 4 + (size_t)M * 8;
    if (off + 4 > n)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s is truncated: %zu bytes, but its %u merges need %zu", what, n, M,
                        off + 4);
    const char **special = malloc((S + 1) * sizeof *special);
    size_t *special_len = malloc((S + 1) * sizeof *special_len);
    int32_t *merges = malloc(((size_t)M * 2 + 1) * sizeof *merges);
    if (!special || !special_len || !merges) {
        free(special);
        free(special_len);
        free(merges);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading %s", what);
    }
    int rc = 0;
    for (uint32_t k = 0; k < S && !rc; k++) {
        if (n - off < 8) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "%s is truncated inside special token %u", what,
                          k);
            break;
        }
        uint32_t len = get_u32(d + off);
        if (len > n - off - 8) {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s is truncated: special token %u says %u bytes, past the end", what,
                          k, len);
            break;
        }
        special[k] = (const char *)d + off + 4;
        special_len[k] = len;
        off += 4 + (size_t)len;
    }
    if (!rc && n - off != 4)
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "%s: %zu bytes after the last special token, expected 4 (the checksum)",
                      what, n - off);
    if (!rc && get_u32(d + off) != gpt_crc32(0, d, off))
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                      what, get_u32(d + off), gpt_crc32(0, d, off));
    if (!rc) {
        int byte_id[256];
        for (int b = 0; b < 256 && !rc; b++) {
            uint32_t v = get_u32(d + TOK_HEADER + 4 * b);
            if (v > 255)
                rc = gpt_fail(err, GPT_ERR_INVALID,
                              "%s: byte 0x%02x has id %u, out of range (byte ids are 0..255)",
                              what, b, v);
            byte_id[b] = (int)v;
        }
        for (size_t i = 0; i < (size_t)M * 2 && !rc; i++) {
            uint32_t v = get_u32(d + TOK_HEADER + 1024 + 4 * i);
            if (v >= V)
                rc = gpt_fail(err, GPT_ERR_INVALID,
                              "%s: merge %zu uses id %u, out of range (the vocabulary has %u "
                              "tokens)",
                              what, i / 2, v, V);
            merges[i] = (int32_t)v;
        }
        if (!rc)
            rc = tok_build(out, name, what, byte_id, (int)M, merges, (int)S, special,
                           special_len, err);
    }
    free(special);
    free(special_len);
    free(merges);
    return rc;
}

int gpt_tokenizer_load_memory(gpt_tokenizer **out, const void *data, size_t n, gpt_error *err) {
    return load(out, data, n, "(memory)", "tokenizer data", err);
}

int tok_load_file(gpt_tokenizer **out, const char *path, gpt_error *err) {
    *out = NULL;
    char *data;
    size_t n;
    int rc = gpt_read_file(path, TOK_MAX_FILE, &data, &n, err);
    if (rc) {
        if (rc == GPT_ERR_INVALID && err) {
            /* Say what the name could have meant. */
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l,
                     " (a tokenizer is gpt2, bytes or a file from gpt tokenizer train)");
        }
        return rc;
    }
    size_t wl = strlen(path) + 32;
    char *what = malloc(wl);
    if (!what) {
        free(data);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    snprintf(what, wl, "tokenizer file '%s'", path);
    rc = load(out, data, n, path, what, err);
    free(what);
    free(data);
    return rc;
}
