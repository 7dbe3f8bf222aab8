/*
 * data.c - training data in memory or memory-mapped shards: the split into
 * training and validation tokens, random training windows and sequential
 * validation windows.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt_data.h"
#include "util.h"

typedef struct {
    int *ids;          /* tokens held in memory (text input), or NULL */
    gpt_shard *shard;  /* memory-mapped shard, or NULL */
    size_t start, n;   /* the split's range within ids / shard */
} split;

struct gpt_data {
    split train, val;
    int *text_ids; /* owned token array when the input was text */
    int *val_ids;  /* owned validation tokens when val came from its own text */
    gpt_shard *shards[2];
    int max_id;
    double val_tokens_per_byte, val_tokens_per_char;
};

/* UTF-8 characters in n bytes: every byte but continuation bytes
 * (10xxxxxx) starts one, so a character split across tokens is counted
 * once, in the token holding its first byte. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int read_split(const split *s, size_t off, size_t n, int *out, gpt_error *err) {
    if (off > s->n || n > s->n - off)
        return gpt_fail(err, GPT_ERR_INVALID, "data window %zu+%zu outside %zu tokens", off, n,
                        s->n);
    if (s->ids) {
        memcpy(out, s->ids + s->start + off, n * sizeof(int));
        return GPT_OK;
    }
    return gpt_shard_read(s->shard, s->start + off, n, out, err);
}

/* 1 if path is a regular file starting with a shard's magic; anything else
 * (a FIFO, which must not be opened blocking, a missing file) is left for
 * the text reader to refuse with its message. */
static int is_shard(const char *path) {
    int fd;
    uint64_t size;
    if (gpt_open_regular(path, &fd, &size, NULL)) return 0;
    char magic[8] = {0};
    ssize_t got = size >= 8 ? read(fd, magic, 8) : 0;
    close(fd);
    return got == 8 && !memcmp(magic, "GPTSHARD", 8); /* gpt_shard files */
}

/* Tokenises a text file. *bytes is the text's length, *chars its UTF-8
 * characters. */
static int encode_file(const char *path, const gpt_tokenizer *tok, int **ids, size_t *n,
                       size_t *bytes, size_t *chars, gpt_error *err) {
    if (!tok)
        return gpt_fail(err, GPT_ERR_INVALID, "'%s' is text: a tokenizer is needed to read it",
                        path);
    char *text;
    size_t len;
    int rc = gpt_read_file(path, 0, &text, &len, err);
    if (rc) return rc;
    rc = gpt_tokenizer_encode(tok, text, len, 0, ids, n, err);
    *chars = utf8_chars(text, len);
    free(text);
    *bytes = len;
    return rc;
}

static int scan_max(const split *s, int *max_id, gpt_error *err) {
    /* Shards check their ids against the shard's vocabulary when read; text
     * ids come from the tokenizer. Both bound max_id by their vocabulary. */
    if (s->ids) {
        for (size_t i = 0; i < s->n; i++)
            if (s->ids[s->start + i] + 1 > *max_id) *max_id = s->ids[s->start + i] + 1;
    } else if (s->shard) {
        int v = gpt_shard_vocab_size(s->shard);
        if (v > *max_id) *max_id = v;
    }
    return GPT_OK;
}

int gpt_data_open(gpt_data **out, const char *path, const char *val_path,
                  const gpt_tokenizer *tok, double val_fraction, gpt_error *err) {
    *out = NULL;
    if (!val_path && !(val_fraction > 0 && val_fraction <= 0.5))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "val_fraction (%g) must be in (0, 0.5]: try --val-fraction 0.1",
                        val_fraction);
    gpt_data *d = calloc(1, sizeof *d);
    if (!d) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int rc = GPT_OK;
    size_t bytes = 0, chars = 0, n = 0;
    if (is_shard(path)) {
        if ((rc = gpt_shard_open(&d->shards[0], path, err))) goto fail;
        n = gpt_shard_count(d->shards[0]);
        d->train.shard = d->shards[0];
    } else {
        if ((rc = encode_file(path, tok, &d->text_ids, &n, &bytes, &chars, err))) goto fail;
        d->train.ids = d->text_ids;
    }
    d->train.n = n;
    if (val_path) {
        size_t vbytes = 0, vchars = 0, vn = 0;
        if (is_shard(val_path)) {
            if ((rc = gpt_shard_open(&d->shards[1], val_path, err))) goto fail;
            d->val.shard = d->shards[1];
            vn = gpt_shard_count(d->shards[1]);
        } else {
            if ((rc = encode_file(val_path, tok, &d->val_ids, &vn, &vbytes, &vchars, err))) goto fail;
            d->val.ids = d->val_ids;
            d->val_tokens_per_byte = vbytes ? (double)vn / (double)vbytes : 0;
            d->val_tokens_per_char = vchars ? (double)vn / (double)vchars : 0;
        }
        d->val.n = vn;
    } else {
        /* The last val_fraction of the tokens is the validation split. */
        size_t nv = (size_t)((double)n * val_fraction);
        d->val = d->train;
        d->val.start = n - nv;
        d->val.n = nv;
        d->train.n = n - nv;
        if (d->text_ids && tok) {
            size_t vbytes = 0, vchars = 0;
            for (size_t i = 0; i < nv; i++) {
                size_t l = 0;
                const char *b = gpt_tokenizer_token(tok, d->text_ids[n - nv + i], &l);
                vbytes += l;
                if (b) vchars += utf8_chars(b, l);
            }
            d->val_tokens_per_byte = vbytes ? (double)nv / (double)vbytes : 0;
            d->val_tokens_per_char = vchars ? (double)nv / (double)vchars : 0;
        }
    }
    (void)bytes;
    (void)chars;
    if (d->train.n < 2 || d->val.n < 2) {
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "'%s' gives %zu training and %zu validation tokens: at least 2 of each are "
                      "needed (use a longer text)",
                      path, d->train.n, d->val.n);
        goto fail;
    }
    scan_max(&d->train, &d->max_id, err);
    scan_max(&d->val, &d->max_id, err);
    *out = d;
    return GPT_OK;
fail:
    gpt_data_free(d);
    return rc;
}

void gpt_data_free(gpt_data *d) {
    if (!d) return;
    free(d->text_ids);
    free(d->val_ids);
    gpt_shard_close(d->shards[0]);
    gpt_shard_close(d->shards[1]);
    free(d);
}

size_t gpt_data_train_tokens(const gpt_data *d) { return d->train.n; }
size_t gpt_data_val_tokens(const gpt_data *d) { return d->val.n; }
int gpt_data_max_id(const gpt_data *d) { return d->max_id; }
double gpt_data_val_tokens_per_byte(const gpt_data *d) { return d->val_tokens_per_byte; }
double gpt_data_val_tokens_per_char(const gpt_data *d) { return d->val_tokens_per_char; }

int gpt_data_train_batch_part(const gpt_data *d, uint64_t rng[4], int B, int first, int n, int T,
                              int *out, gpt_error *err) {
    size_t need = (size_t)T + 1;
    if (first < 0 || n < 0 || first > B || n > B - first)
        return gpt_fail(err, GPT_ERR_INVALID, "rows [%d, %d) are not within a batch of %d", first,
                        first + n, B);
    if (d->train.n < need)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "the training split has %zu tokens, fewer than seq_len + 1 (%d): use a "
                        "smaller --seq",
                        d->train.n, T + 1);
    gpt_rng r;
    memcpy(r.s, rng, sizeof r.s);
    int rc = GPT_OK;
    /* Every row's offset is drawn, so that the generator advances alike
     * whichever rows this caller reads. */
    for (int b = 0; b < B && !rc; b++) {
        size_t off = (size_t)gpt_rng_below(&r, d->train.n - need + 1);
        if (b >= first && b < first + n)
            rc = read_split(&d->train, off, need, out + (size_t)(b - first) * need, err);
    }
    memcpy(rng, r.s, sizeof r.s);
    return rc;
}

int gpt_data_train_batch(const gpt_data *d, uint64_t rng[4], int B, int T, int *out,
                         gpt_error *err) {
    return gpt_data_train_batch_part(d, rng, B, 0, B, T, out, err);
}

size_t gpt_data_val_batches(const gpt_data *d, int B, int T) {
    if (d->val.n < (size_t)T + 1) return 0;
    size_t windows = (d->val.n - 1) / (size_t)T;
    return windows / (size_t)B;
}

int gpt_data_val_batch(const gpt_data *d, size_t i, int B, int T, int *out, gpt_error *err) {
    if (i >= gpt_data_val_batches(d, B, T))
        return gpt_fail(err, GPT_ERR_INVALID, "validation batch %zu out of range", i);
    int rc = GPT_OK;
    for (int b = 0; b < B && !rc; b++) {
        size_t w = i * (size_t)B + (size_t)b;
        rc = read_split(&d->val, w * (size_t)T, (size_t)T + 1, out + (size_t)b * (T + 1), err);
    }
    return rc;
}
