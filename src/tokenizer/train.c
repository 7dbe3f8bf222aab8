/*
 * train.c - byte-level BPE training (Sennrich et al. 2016, as GPT-2 uses
 * it): split the text with the GPT-2 pre-tokenizer, count each distinct
 * pre-token ("word"), then repeatedly merge the most frequent adjacent pair
 * of symbols across all words into a new token.
 *
 * Pair counts are kept up to date incrementally: each pair remembers the
 * words it occurs in, so a merge only rewrites those words and adjusts the
 * counts of the pairs around each merge site. The most frequent pair comes
 * from a max-heap with lazy deletion: counts of existing pairs only fall
 * (new pairs contain the new token and are pushed with their full count),
 * so an entry whose count is out of date is re-pushed when popped.
 *
 * Deterministic: ties go to the pair with the smaller left id, then the
 * smaller right id; nothing depends on hash order or memory addresses.
 * "<|endoftext|>" in the text separates documents and is not learned from.
 * Ids: bytes are 0..255 (id = byte value), merge r makes 256 + r, and
 * <|endoftext|> comes last.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "util.h"

typedef struct {
    int32_t *v;
    size_t n, cap;
} i32_vec;

static int vec_push(i32_vec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4, bytes;
        if (!gpt_mul_size(cap, sizeof *a->v, &bytes)) return GPT_ERR_NOMEM;
        int32_t *p = realloc(a->v, bytes);
        if (!p) return GPT_ERR_NOMEM;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct {
    int32_t a, b;  /* the pair's left and right ids */
    int64_t count; /* occurrences, weighted by word counts */
    i32_vec words; /* words it has occurred in (may repeat or be stale) */
    int fresh;     /* 1 while listed in new_pairs */
} pair_info;

typedef struct {
    int64_t count;
    int32_t pair;
} heap_item;

typedef struct {
    /* words */
    int32_t *sym;   /* all words' symbols, word w at sym[woff[w]], wlen[w] long */
    size_t *woff;
    size_t *wlen;
    int64_t *wcount;
    int32_t *stamp; /* last merge that rewrote the word */
    size_t n_words;
    /* pairs */
    pair_info *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t *slot_key; /* open addressing (a << 32 | b) -> pair index */
    int32_t *slot_pair;
    size_t slot_mask;
    heap_item *heap;
    size_t heap_n, heap_cap;
    i32_vec new_pairs; /* pairs made by the current merge */
    size_t *tok_len;   /* (256 + merges) bytes of each token */
} trainer;

static size_t slot_of(const trainer *tr, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & tr->slot_mask;
    while (tr->slot_pair[i] >= 0 && tr->slot_key[i] != key) i = (i + 1) & tr->slot_mask;
    return i;
}

static int grow_slots(trainer *tr) {
    size_t cap = tr->slot_mask ? (tr->slot_mask + 1) * 2 : 1024;
    uint64_t *keys = malloc(cap * sizeof *keys);
    int32_t *pairs = malloc(cap * sizeof *pairs);
    if (!keys || !pairs) {
        free(keys);
        free(pairs);
        return GPT_ERR_NOMEM;
    }
    for (size_t i = 0; i < cap; i++) pairs[i] = -1;
    free(tr->slot_key);
    free(tr->slot_pair);
    tr->slot_key = keys;
    tr->slot_pair = pairs;
    tr->slot_mask = cap - 1;
    for (size_t p = 0; p < tr->n_pairs; p++) {
        uint64_t key = (uint64_t)(uint32_t)tr->pairs[p].a << 32 | (uint32_t)tr->pairs[p].b;
        size_t i = slot_of(tr, key);
        tr->slot_key[i] = key;
        tr->slot_pair[i] = (int32_t)p;
    }
    return 0;
}

/* Index of pair (a, b), created with count 0 if new; -1 when out of memory. */
static int32_t pair_get(trainer *tr, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = slot_of(tr, key);
    if (tr->slot_pair[i] >= 0) return tr->slot_pair[i];
    if (tr->n_pairs >= INT32_MAX) return -1;
    if (2 * (tr->n_pairs + 1) > tr->slot_mask + 1) {
        if (grow_slots(tr)) return -1;
        i = slot_of(tr, key);
    }
    if (tr->n_pairs == tr->cap_pairs) {
        size_t cap = tr->cap_pairs ? tr->cap_pairs * 2 : 1024, bytes;
        if (!gpt_mul_size(cap, sizeof *tr->pairs, &bytes)) return -1;
        pair_info *p = realloc(tr->pairs, bytes);
        if (!p) return -1;
        tr->pairs = p;
        tr->cap_pairs = cap;
    }
    int32_t p = (int32_t)tr->n_pairs++;
    memset(&tr->pairs[p], 0, sizeof tr->pairs[p]);
    tr->pairs[p].a = a;
    tr->pairs[p].b = b;
    tr->slot_key[i] = key;
    tr->slot_pair[i] = p;
    return p;
}

/* Heap order: larger count first, then smaller (a, b). */
static int heap_before(const trainer *tr, heap_item x, heap_item y) {
    if (x.count != y.count) return x.count > y.count;
    const pair_info *px = &tr->pairs[x.pair], *py = &tr->pairs[y.pair];
    if (px->a != py->a) return px->a < py->a;
    return px->b < py->b;
}

static int heap_push(trainer *tr, int32_t pair) {
    if (tr->heap_n == tr->heap_cap) {
        size_t cap = tr->heap_cap ? tr->heap_cap * 2 : 1024, bytes;
        if (!gpt_mul_size(cap, sizeof *tr->heap, &bytes)) return GPT_ERR_NOMEM;
        heap_item *h = realloc(tr->heap, bytes);
        if (!h) return GPT_ERR_NOMEM;
        tr->heap = h;
        tr->heap_cap = cap;
    }
    heap_item x = {tr->pairs[pair].count, pair};
    size_t i = tr->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(tr, x, tr->heap[p])) break;
        tr->heap[i] = tr->heap[p];
        i = p;
    }
    tr->heap[i] = x;
    return 0;
}

static heap_item heap_pop(trainer *tr) {
    heap_item top = tr->heap[0], x = tr->heap[--tr->heap_n];
    size_t i = 0, m = tr->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_before(tr, tr->heap[c + 1], tr->heap[c])) c++;
        if (!heap_before(tr, tr->heap[c], x)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (m) tr->heap[i] = x;
    return top;
}

/* Adds delta occurrences of (a, b) in word w. */
static int pair_add(trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t w, int track) {
    int32_t p = pair_get(tr, a, b);
    if (p < 0) return GPT_ERR_NOMEM;
    pair_info *pi = &tr->pairs[p];
    pi->count += delta;
    if (delta > 0) {
        if ((!pi->words.n || pi->words.v[pi->words.n - 1] != w) && vec_push(&pi->words, w))
            return GPT_ERR_NOMEM;
        if (track && !pi->fresh) {
            pi->fresh = 1;
            if (vec_push(&tr->new_pairs, p)) return GPT_ERR_NOMEM;
        }
    }
    return 0;
}

/* Rewrites word w with merge (a, b) -> z and updates the pair counts:
 * the old pairs touching a merge site go, the pairs around each new z come. */
static int merge_word(trainer *tr, int32_t w, int32_t a, int32_t b, int32_t z) {
    int32_t *s = tr->sym + tr->woff[w];
    size_t L = tr->wlen[w], o = 0;
    int64_t c = tr->wcount[w];
    size_t removed = SIZE_MAX; /* last old pair position already taken off */
    for (size_t i = 0; i < L;) {
        if (i + 1 < L && s[i] == a && s[i + 1] == b) {
            /* Old pairs at i-1, i and i+1; s[i-1] still holds its old value
             * because writes trail reads (o <= i). */
            for (size_t q = i ? i - 1 : 0; q <= i + 1 && q + 1 < L; q++) {
                if (removed != SIZE_MAX && q <= removed) continue;
                if (pair_add(tr, s[q], s[q + 1], -c, w, 0)) return GPT_ERR_NOMEM;
                removed = q;
            }
            s[o++] = z;
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    tr->wlen[w] = o;
    size_t added = SIZE_MAX; /* last new pair position already counted */
    for (size_t k = 0; k < o; k++) {
        if (s[k] != z) continue;
        if (k > 0 && (added == SIZE_MAX || k - 1 > added)) {
            if (pair_add(tr, s[k - 1], z, c, w, 1)) return GPT_ERR_NOMEM;
            added = k - 1;
        }
        if (k + 1 < o) {
            if (pair_add(tr, z, s[k + 1], c, w, 1)) return GPT_ERR_NOMEM;
            added = k;
        }
    }
    return 0;
}

static void trainer_free(trainer *tr) {
    free(tr->sym);
    free(tr->woff);
    free(tr->wlen);
    free(tr->wcount);
    free(tr->stamp);
    for (size_t p = 0; p < tr->n_pairs; p++) free(tr->pairs[p].words.v);
    free(tr->pairs);
    free(tr->slot_key);
    free(tr->slot_pair);
    free(tr->heap);
    free(tr->new_pairs.v);
    free(tr->tok_len);
}

/* Start of the next "<|endoftext|>" at or after i, or n. */
static size_t next_eot(const char *s, size_t n, size_t i) {
    const size_t m = sizeof TOK_EOT_TEXT - 1;
    while (i < n && n - i >= m) {
        const char *p = memchr(s + i, '<', n - i - m + 1);
        if (!p) break;
        if (!memcmp(p, TOK_EOT_TEXT, m)) return (size_t)(p - s);
        i = (size_t)(p - s) + 1;
    }
    return n;
}

/* Distinct pre-tokens of two or more bytes and their counts. The text
 * "<|endoftext|>" separates documents: it has its own id, so it is cut out
 * and nothing is learned from it or across it. */
static int count_words(trainer *tr, const char *text, size_t n) {
    tok_map words;
    if (tok_map_init(&words, 1024)) return GPT_ERR_NOMEM;
    int64_t *counts = NULL;
    size_t cap = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0, end = next_eot(text, n, 0); i < n;) {
        if (i == end) { /* skip the separator */
            i += sizeof TOK_EOT_TEXT - 1;
            end = next_eot(text, n, i);
            continue;
        }
        size_t j = tok_pretoken_end(s, end, i);
        if (j - i >= 2) {
            uint64_t h = tok_hash(s + i, j - i);
            size_t e = tok_map_find(&words, s + i, j - i, h);
            if (e == SIZE_MAX) {
                if (tok_map_add(&words, s + i, j - i, h, &e)) goto nomem;
                if (e == cap) {
                    cap = cap ? cap * 2 : 1024;
                    int64_t *c = realloc(counts, cap * sizeof *c);
                    if (!c) goto nomem;
                    counts = c;
                }
                counts[e] = 0;
            }
            counts[e]++;
        }
        i = j;
    }
    size_t W = words.count, total = words.count ? words.key_off[W] : 0;
    if (W > INT32_MAX) goto nomem;
    tr->n_words = W;
    tr->sym = malloc((total + 1) * sizeof *tr->sym);
    tr->woff = malloc((W + 1) * sizeof *tr->woff);
    tr->wlen = malloc((W + 1) * sizeof *tr->wlen);
    tr->wcount = malloc((W + 1) * sizeof *tr->wcount);
    tr->stamp = malloc((W + 1) * sizeof *tr->stamp);
    if (!tr->sym || !tr->woff || !tr->wlen || !tr->wcount || !tr->stamp) goto nomem;
    for (size_t w = 0; w < W; w++) {
        tr->woff[w] = words.key_off[w];
        tr->wlen[w] = words.key_off[w + 1] - words.key_off[w];
        tr->wcount[w] = counts[w];
        tr->stamp[w] = -1;
    }
    for (size_t k = 0; k < total; k++) tr->sym[k] = (unsigned char)words.keys[k];
    free(counts);
    tok_map_free(&words);
    return 0;
nomem:
    free(counts);
    tok_map_free(&words);
    return GPT_ERR_NOMEM;
}

static int train(trainer *tr, const char *text, size_t n, int merges_wanted, int32_t *merges,
                 int *merges_done, void (*progress)(void *, int, int), void *user) {
    int rc = count_words(tr, text, n);
    if (rc) return rc;
    tr->tok_len = malloc(((size_t)256 + (size_t)merges_wanted) * sizeof *tr->tok_len);
    if (!tr->tok_len || grow_slots(tr)) return GPT_ERR_NOMEM;
    for (int i = 0; i < 256; i++) tr->tok_len[i] = 1;
    for (size_t w = 0; w < tr->n_words; w++) {
        const int32_t *s = tr->sym + tr->woff[w];
        for (size_t i = 0; i + 1 < tr->wlen[w]; i++)
            if (pair_add(tr, s[i], s[i + 1], tr->wcount[w], (int32_t)w, 0)) return GPT_ERR_NOMEM;
    }
    for (size_t p = 0; p < tr->n_pairs; p++)
        if (heap_push(tr, (int32_t)p)) return GPT_ERR_NOMEM;
    int done = 0;
    while (done < merges_wanted && tr->heap_n) {
        heap_item top = heap_pop(tr);
        pair_info *pi = &tr->pairs[top.pair];
        if (top.count != pi->count) { /* out of date: counts only fall */
            if (pi->count > 0 && heap_push(tr, top.pair)) return GPT_ERR_NOMEM;
            continue;
        }
        int32_t a = pi->a, b = pi->b, z = 256 + done;
        if (tr->tok_len[a] + tr->tok_len[b] > TOK_MAX_TOKEN_BYTES) continue; /* never again */
        merges[2 * done] = a;
        merges[2 * done + 1] = b;
        tr->tok_len[z] = tr->tok_len[a] + tr->tok_len[b];
        /* The pair's word list is not appended to while we walk it: every
         * pair the merge makes contains z. Pairs may move (realloc), so keep
         * the list itself. */
        i32_vec words = pi->words;
        memset(&pi->words, 0, sizeof pi->words);
        tr->new_pairs.n = 0;
        for (size_t k = 0; k < words.n; k++) {
            int32_t w = words.v[k];
            if (tr->stamp[w] == done) continue;
            tr->stamp[w] = done;
            if (merge_word(tr, w, a, b, z)) {
                free(words.v);
                return GPT_ERR_NOMEM;
            }
        }
        free(words.v);
        for (size_t k = 0; k < tr->new_pairs.n; k++) {
            int32_t p = tr->new_pairs.v[k];
            tr->pairs[p].fresh = 0;
            if (heap_push(tr, p)) return GPT_ERR_NOMEM;
        }
        done++;
        if (progress) progress(user, done, merges_wanted);
    }
    *merges_done = done;
    return 0;
}

int gpt_tokenizer_train(gpt_tokenizer **out, const char *text, size_t n, int vocab_size,
                        void (*progress)(void *user, int merges_done, int merges_total),
                        void *user, gpt_error *err) {
    *out = NULL;
    if (vocab_size < 257 || vocab_size > TOK_MAX_VOCAB)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "vocabulary size %d is out of range: it must be 257 (256 bytes and "
                        "<|endoftext|>) to %d",
                        vocab_size, TOK_MAX_VOCAB);
    if (!text && n) return gpt_fail(err, GPT_ERR_INVALID, "train: text is NULL");
    int wanted = vocab_size - 257, done = 0;
    int32_t *merges = malloc(((size_t)wanted * 2 + 1) * sizeof *merges);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    int rc = merges ? train(&tr, text, n, wanted, merges, &done, progress, user) : GPT_ERR_NOMEM;
    trainer_free(&tr);
    if (rc) {
        free(merges);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory training on %zu bytes of text", n);
    }
    int byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = b;
    const char *eot = TOK_EOT_TEXT;
    size_t eot_len = strlen(eot);
    rc = tok_build(out, "(trained)", "trained tokenizer", byte_id, done, merges, 1, &eot,
                   &eot_len, err);
    free(merges);
    return rc;
}
