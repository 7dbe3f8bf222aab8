/*
 * tokenizer.c - byte-level BPE: building a checked vocabulary, encoding
 * and decoding.
 *
 * Encoding splits the text with the GPT-2 pre-tokenizer and runs BPE on
 * each pre-token's bytes. BPE repeatedly merges the adjacent pair with the
 * lowest merge rank (leftmost first among equals), which is what OpenAI's
 * encoder.py computes by rescanning the word; here the candidate pairs sit
 * in a min-heap keyed by (rank, position) over a linked list of symbols, so
 * a pre-token of L bytes costs O(L log L), and a per-call cache maps each
 * distinct pre-token to its ids so repeated words cost one hash lookup.
 *
 * The heap and the rescan agree because a merge's parts are always bytes or
 * results of earlier merges (tok_build checks it): a pair formed by a merge
 * of rank r contains the new token, so its own rank is above r, and all
 * occurrences of rank r are merged, left to right, before anything else.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "util.h"

/* ------------------------------------------------------------ building */

static void tok_destroy(gpt_tokenizer *t) {
    if (!t) return;
    free(t->name);
    free(t->merges);
    free(t->tok_off);
    free(t->tok_bytes);
    free(t->pair_keys);
    free(t->pair_rank);
    free(t);
}

void gpt_tokenizer_free(gpt_tokenizer *t) { tok_destroy(t); }

static int nomem(gpt_tokenizer *t, gpt_error *err) {
    tok_destroy(t);
    return gpt_fail(err, GPT_ERR_NOMEM, "out of memory building a tokenizer");
}

int tok_build(gpt_tokenizer **out, const char *name, const char *what, const int byte_id[256],
              int M, const int32_t *merges, int S, const char *const *special,
              const size_t *special_len, gpt_error *err) {
    *out = NULL;
    if (M < 0 || S < 0 || S > TOK_MAX_SPECIAL || M > TOK_MAX_VOCAB - 256 - S)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s: %d merges and %d special tokens exceed the limits (%d tokens, %d "
                        "special tokens)",
                        what, M, S, TOK_MAX_VOCAB, TOK_MAX_SPECIAL);
    int byte_of[256];
    for (int i = 0; i < 256; i++) byte_of[i] = -1;
    for (int b = 0; b < 256; b++) {
        int id = byte_id[b];
        if (id < 0 || id > 255)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: byte 0x%02x has id %d, out of range (byte ids are 0..255)", what,
                            b, id);
        if (byte_of[id] >= 0)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: bytes 0x%02x and 0x%02x both have id %d (byte ids must be a "
                            "permutation of 0..255)",
                            what, byte_of[id], b, id);
        byte_of[id] = b;
    }
    gpt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory building a tokenizer");
    t->V = 256 + M + S;
    t->M = M;
    t->S = S;
    t->eot = -1;
    memcpy(t->byte_id, byte_id, sizeof t->byte_id);
    t->name = malloc(strlen(name) + 1);
    t->tok_off = malloc(((size_t)t->V + 1) * sizeof *t->tok_off);
    t->merges = malloc(((size_t)M * 2 + 1) * sizeof *t->merges);
    if (!t->name || !t->tok_off || !t->merges) return nomem(t, err);
    strcpy(t->name, name);
    if (M) memcpy(t->merges, merges, (size_t)M * 2 * sizeof *merges);

    /* Token lengths and order of definition; then their bytes. */
    size_t total = 0;
    t->tok_off[0] = 0;
    for (int i = 0; i < 256; i++) t->tok_off[i + 1] = ++total;
    for (int r = 0; r < M; r++) {
        int32_t a = merges[2 * r], b = merges[2 * r + 1];
        if (a < 0 || b < 0 || a >= 256 + r || b >= 256 + r) {
            int bad = (a < 0 || a >= 256 + r) ? a : b;
            tok_destroy(t);
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: merge %d uses id %d, out of range (a merge may only join the "
                            "bytes 0..255 and the %d merges before it)",
                            what, r, bad, r);
        }
        size_t len = (t->tok_off[a + 1] - t->tok_off[a]) + (t->tok_off[b + 1] - t->tok_off[b]);
        if (len > TOK_MAX_TOKEN_BYTES) {
            tok_destroy(t);
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: merge %d makes a token of %zu bytes (at most %d)", what, r, len,
                            TOK_MAX_TOKEN_BYTES);
        }
        total += len;
        t->tok_off[256 + r + 1] = total;
    }
    for (int k = 0; k < S; k++) {
        size_t len = special_len[k];
        const char *txt = special[k];
        if (len == 0 || len > TOK_MAX_TOKEN_BYTES) {
            tok_destroy(t);
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: special token %d is %zu bytes long (it must have 1 to %d)", what,
                            k, len, TOK_MAX_TOKEN_BYTES);
        }
        if (!uc_valid_utf8(txt, len)) {
            tok_destroy(t);
            return gpt_fail(err, GPT_ERR_INVALID, "%s: special token %d is not valid UTF-8",
                            what, k);
        }
        for (int j = 0; j < k; j++)
            if (special_len[j] == len && !memcmp(special[j], txt, len)) {
                tok_destroy(t);
                return gpt_fail(err, GPT_ERR_INVALID,
                                "%s: special tokens %d and %d are the same text", what, j, k);
            }
        if (len == strlen(TOK_EOT_TEXT) && !memcmp(txt, TOK_EOT_TEXT, len)) t->eot = 256 + M + k;
        total += len;
        t->tok_off[256 + M + k + 1] = total;
    }
    /* A merge of 8 file bytes can make a token of 4096: the sum is bounded
     * before anything is allocated for it, and every refusal below comes
     * first, so a refused file costs little more than its own size. */
    if (total > TOK_MAX_TOTAL_BYTES) {
        tok_destroy(t);
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s: its tokens hold %zu bytes together, more than the %d allowed", what,
                        total, TOK_MAX_TOTAL_BYTES);
    }
    /* Pair table, at most half full. */
    size_t cap = 16;
    while (cap < 2 * (size_t)M) cap *= 2;
    t->pair_keys = malloc(cap * sizeof *t->pair_keys);
    t->pair_rank = malloc(cap * sizeof *t->pair_rank);
    if (!t->pair_keys || !t->pair_rank) return nomem(t, err);
    memset(t->pair_keys, 0xFF, cap * sizeof *t->pair_keys);
    t->pair_mask = cap - 1;
    for (int r = 0; r < M; r++) {
        uint64_t key = (uint64_t)(uint32_t)merges[2 * r] << 32 | (uint32_t)merges[2 * r + 1];
        uint64_t h = key * 0x9E3779B97F4A7C15ull;
        size_t i = (size_t)(h ^ (h >> 29)) & t->pair_mask;
        while (t->pair_keys[i] != UINT64_MAX && t->pair_keys[i] != key) i = (i + 1) & t->pair_mask;
        if (t->pair_keys[i] == key) {
            int first = t->pair_rank[i];
            tok_destroy(t);
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s: merge %d (ids %d and %d) duplicates merge %d", what, r,
                            merges[2 * r], merges[2 * r + 1], first);
        }
        t->pair_keys[i] = key;
        t->pair_rank[i] = r;
    }
    t->tok_bytes = malloc(total + 1);
    if (!t->tok_bytes) return nomem(t, err);
    for (int i = 0; i < 256; i++) t->tok_bytes[i] = (char)byte_of[i];
    for (int r = 0; r < M; r++) {
        int32_t a = merges[2 * r], b = merges[2 * r + 1];
        size_t la = t->tok_off[a + 1] - t->tok_off[a], lb = t->tok_off[b + 1] - t->tok_off[b];
        char *dst = t->tok_bytes + t->tok_off[256 + r];
        memcpy(dst, t->tok_bytes + t->tok_off[a], la);
        memcpy(dst + la, t->tok_bytes + t->tok_off[b], lb);
    }
    for (int k = 0; k < S; k++)
        memcpy(t->tok_bytes + t->tok_off[256 + M + k], special[k], special_len[k]);
    t->tok_bytes[total] = 0;

    *out = t;
    return 0;
}

static int open_bytes(gpt_tokenizer **out, gpt_error *err) {
    int byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = b;
    return tok_build(out, "bytes", "bytes tokenizer", byte_id, 0, NULL, 0, NULL, NULL, err);
}

int gpt_tokenizer_is_builtin(const char *name) {
    return name && (!strcmp(name, "gpt2") || !strcmp(name, "bytes"));
}

int gpt_tokenizer_open(gpt_tokenizer **out, const char *name, gpt_error *err) {
    *out = NULL;
    if (!name || !*name)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "no tokenizer named: use gpt2, bytes or a tokenizer file");
    if (!strcmp(name, "gpt2")) return tok_open_gpt2(out, err);
    if (!strcmp(name, "bytes")) return open_bytes(out, err);
    return tok_load_file(out, name, err);
}

const char *gpt_tokenizer_name(const gpt_tokenizer *t) { return t->name; }
int gpt_tokenizer_vocab_size(const gpt_tokenizer *t) { return t->V; }
int gpt_tokenizer_eot(const gpt_tokenizer *t) { return t->eot; }

const char *gpt_tokenizer_token(const gpt_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->V) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

/* ------------------------------------------------------------ encoding */

/* A candidate merge, rank << 40 | pos: the pair starting at symbol pos has
 * that merge rank. One integer compare orders by rank, then position.
 * Ranks fit 24 bits (TOK_MAX_VOCAB); positions 40 (a terabyte). */
typedef uint64_t bpe_item;
#define ITEM_POS_BITS 40
#define ITEM_POS_MASK ((UINT64_C(1) << ITEM_POS_BITS) - 1)
_Static_assert(TOK_MAX_VOCAB <= (1 << 24), "merge ranks must fit 24 bits");

typedef struct {
    const gpt_tokenizer *t;
    int *ids; /* output */
    size_t n_ids, cap_ids;
    tok_map cache;       /* pre-token -> val[0] offset in cache_ids, val[1] count */
    int32_t *cache_ids;
    size_t cache_n, cache_cap;
    int32_t *sym;        /* (L) symbol ids; -1 once merged into its left neighbour */
    size_t *prev, *next; /* (L) linked list of live symbols; SIZE_MAX ends it */
    bpe_item *heap;      /* (3L) every pair ever formed is pushed once */
    size_t scratch_cap;
} enc_state;

/* Enough for any real text: ~1M distinct pre-tokens. Past it the cache
 * starts over, which bounds its memory on hostile input. */
#define CACHE_MAX_ENTRIES ((size_t)1 << 20)

static int push_ids(enc_state *e, const int32_t *ids, size_t n) {
    if (!e->ids || e->cap_ids - e->n_ids < n) {
        size_t cap = e->cap_ids ? e->cap_ids : 64, bytes;
        while (cap - e->n_ids < n) cap *= 2;
        if (!gpt_mul_size(cap, sizeof *e->ids, &bytes)) return GPT_ERR_NOMEM;
        int *p = realloc(e->ids, bytes);
        if (!p) return GPT_ERR_NOMEM;
        e->ids = p;
        e->cap_ids = cap;
    }
    for (size_t i = 0; i < n; i++) e->ids[e->n_ids + i] = ids[i];
    e->n_ids += n;
    return 0;
}

static int ensure_scratch(enc_state *e, size_t L) {
    if (L <= e->scratch_cap) return 0;
    size_t cap = e->scratch_cap ? e->scratch_cap : 64, b1, b2, b3;
    while (cap < L) cap *= 2;
    if (!gpt_mul_size(cap, sizeof(size_t), &b1) || !gpt_mul_size(cap, 3 * sizeof(bpe_item), &b2) ||
        !gpt_mul_size(cap, sizeof(int32_t), &b3))
        return GPT_ERR_NOMEM;
    free(e->sym);
    free(e->prev);
    free(e->next);
    free(e->heap);
    e->sym = malloc(b3);
    e->prev = malloc(b1);
    e->next = malloc(b1);
    e->heap = malloc(b2);
    e->scratch_cap = 0;
    if (!e->sym || !e->prev || !e->next || !e->heap) return GPT_ERR_NOMEM;
    e->scratch_cap = cap;
    return 0;
}

static void heap_push(bpe_item *h, size_t *n, bpe_item x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (x >= h[p]) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

/* Moves x down from slot i of the heap h[0..m) to its place. */
static void sift_down(bpe_item *h, size_t m, size_t i, bpe_item x) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static bpe_item heap_pop(bpe_item *h, size_t *n) {
    bpe_item top = h[0], x = h[--*n];
    if (*n) sift_down(h, *n, 0, x);
    return top;
}

static void push_pair(enc_state *e, size_t *hn, size_t pos) {
    int32_t r = tok_pair_rank(e->t, e->sym[pos], e->sym[e->next[pos]]);
    if (r >= 0) heap_push(e->heap, hn, (uint64_t)r << ITEM_POS_BITS | pos);
}

/* BPE of one pre-token w[0..L), ids appended to the output. */
static int bpe_word(enc_state *e, const unsigned char *w, size_t L) {
    const gpt_tokenizer *t = e->t;
    if (L == 1) {
        int32_t id = t->byte_id[w[0]];
        return push_ids(e, &id, 1);
    }
    uint64_t h = tok_hash(w, L);
    size_t ent = tok_map_find(&e->cache, w, L, h);
    if (ent != SIZE_MAX)
        return push_ids(e, e->cache_ids + e->cache.val[2 * ent], e->cache.val[2 * ent + 1]);
    if ((uint64_t)L > ITEM_POS_MASK) return GPT_ERR_INVALID;
    if (ensure_scratch(e, L)) return GPT_ERR_NOMEM;
    int32_t *sym = e->sym;
    size_t *prev = e->prev, *next = e->next, hn = 0;
    for (size_t i = 0; i < L; i++) {
        sym[i] = t->byte_id[w[i]];
        prev[i] = i - 1; /* SIZE_MAX for the first */
        next[i] = i + 1 < L ? i + 1 : SIZE_MAX;
    }
    for (size_t i = 0; i + 1 < L; i++) { /* the first pairs, heapified in O(L) */
        int32_t r = tok_pair_rank(t, sym[i], sym[i + 1]);
        if (r >= 0) e->heap[hn++] = (uint64_t)r << ITEM_POS_BITS | i;
    }
    for (size_t k = hn / 2; k-- > 0;) sift_down(e->heap, hn, k, e->heap[k]);
    while (hn) {
        bpe_item it = heap_pop(e->heap, &hn);
        size_t i = (size_t)(it & ITEM_POS_MASK), j = next[i];
        int32_t rank = (int32_t)(it >> ITEM_POS_BITS);
        if (sym[i] < 0 || j == SIZE_MAX || sym[i] != t->merges[2 * rank] ||
            sym[j] != t->merges[2 * rank + 1])
            continue; /* stale: one of the two symbols has been merged since */
        sym[i] = 256 + rank;
        sym[j] = -1;
        next[i] = next[j];
        if (next[i] != SIZE_MAX) prev[next[i]] = i;
        if (prev[i] != SIZE_MAX) push_pair(e, &hn, prev[i]);
        if (next[i] != SIZE_MAX) push_pair(e, &hn, i);
    }
    /* Compact the result in place (symbol 0 always survives). */
    size_t n = 0;
    for (size_t i = 0; i != SIZE_MAX; i = next[i]) sym[n++] = sym[i];
    if (e->cache.count >= CACHE_MAX_ENTRIES) {
        tok_map_clear(&e->cache);
        e->cache_n = 0;
    }
    if (e->cache_cap - e->cache_n < n) {
        size_t cap = e->cache_cap ? e->cache_cap : 4096, bytes;
        while (cap - e->cache_n < n) cap *= 2;
        if (!gpt_mul_size(cap, sizeof *e->cache_ids, &bytes)) return GPT_ERR_NOMEM;
        int32_t *p = realloc(e->cache_ids, bytes);
        if (!p) return GPT_ERR_NOMEM;
        e->cache_ids = p;
        e->cache_cap = cap;
    }
    if (tok_map_add(&e->cache, w, L, h, &ent)) return GPT_ERR_NOMEM;
    memcpy(e->cache_ids + e->cache_n, sym, n * sizeof *sym);
    e->cache.val[2 * ent] = e->cache_n;
    e->cache.val[2 * ent + 1] = n;
    e->cache_n += n;
    return push_ids(e, sym, n);
}

/* First occurrence of pat[0..m) in s[from..n), or n. */
static size_t find_text(const char *s, size_t n, size_t from, const char *pat, size_t m) {
    while (from < n && n - from >= m) {
        const char *p = memchr(s + from, pat[0], n - from - m + 1);
        if (!p) break;
        size_t at = (size_t)(p - s);
        if (!memcmp(p, pat, m)) return at;
        from = at + 1;
    }
    return n;
}

#define PROGRESS_EVERY ((size_t)4 << 20)

int gpt_tokenizer_encode_progress(const gpt_tokenizer *t, const char *text, size_t n,
                                  int allow_special, int **ids, size_t *n_ids,
                                  void (*progress)(void *user, size_t done, size_t total),
                                  void *user, gpt_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && n) return gpt_fail(err, GPT_ERR_INVALID, "encode: text is NULL");
    enc_state e;
    memset(&e, 0, sizeof e);
    e.t = t;
    int rc = tok_map_init(&e.cache, n / 64 < 4096 ? n / 64 : 4096);
    size_t *next_special = NULL;
    int S = allow_special ? t->S : 0;
    if (!rc && S) {
        next_special = malloc((size_t)S * sizeof *next_special);
        if (!next_special) rc = GPT_ERR_NOMEM;
        for (int k = 0; !rc && k < S; k++) {
            int id = 256 + t->M + k;
            next_special[k] = find_text(text, n, 0, t->tok_bytes + t->tok_off[id],
                                        t->tok_off[id + 1] - t->tok_off[id]);
        }
    }
    e.cap_ids = n / 4 + 16; /* GPT-2 averages over 3 bytes a token on English */
    if (!rc) rc = push_ids(&e, NULL, 0);
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0, report = PROGRESS_EVERY;
    while (!rc && pos < n) {
        /* The segment up to the next special token, leftmost then longest. */
        size_t end = n, special_len = 0;
        int special = -1;
        for (int k = 0; k < S; k++) {
            int id = 256 + t->M + k;
            const char *pat = t->tok_bytes + t->tok_off[id];
            size_t m = t->tok_off[id + 1] - t->tok_off[id];
            if (next_special[k] < pos) next_special[k] = find_text(text, n, pos, pat, m);
            if (next_special[k] < end || (next_special[k] == end && end < n && m > special_len)) {
                end = next_special[k];
                special = id;
                special_len = m;
            }
        }
        while (!rc && pos < end) {
            size_t stop = tok_pretoken_end(s, end, pos);
            rc = bpe_word(&e, s + pos, stop - pos);
            pos = stop;
            if (progress && pos >= report) {
                progress(user, pos, n);
                report = pos + PROGRESS_EVERY;
            }
        }
        if (!rc && special >= 0) {
            int32_t id = special;
            rc = push_ids(&e, &id, 1);
            pos = end + special_len;
        }
    }
    if (!rc && progress) progress(user, n, n);
    free(next_special);
    tok_map_free(&e.cache);
    free(e.cache_ids);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    if (rc) {
        free(e.ids);
        if (rc == GPT_ERR_INVALID)
            return gpt_fail(err, rc, "encode: a single pre-token of over 2^40 bytes");
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory encoding %zu bytes of text", n);
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    return 0;
}

int gpt_tokenizer_encode(const gpt_tokenizer *t, const char *text, size_t n, int allow_special,
                         int **ids, size_t *n_ids, gpt_error *err) {
    return gpt_tokenizer_encode_progress(t, text, n, allow_special, ids, n_ids, NULL, NULL, err);
}

/* ------------------------------------------------------------ decoding */

int gpt_tokenizer_decode(const gpt_tokenizer *t, const int *ids, size_t n, char **text,
                         size_t *len, gpt_error *err) {
    *text = NULL;
    if (len) *len = 0;
    if (!ids && n) return gpt_fail(err, GPT_ERR_INVALID, "decode: ids is NULL");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->V)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "decode: token %zu is id %d, outside the vocabulary of %d tokens of "
                            "tokenizer '%s'",
                            i, ids[i], t->V, t->name);
        if (!gpt_add_size(total, t->tok_off[ids[i] + 1] - t->tok_off[ids[i]], &total) ||
            total == SIZE_MAX)
            return gpt_fail(err, GPT_ERR_NOMEM, "decode: text too large");
    }
    char *out = malloc(total + 1);
    if (!out) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = t->tok_off[ids[i]], l = t->tok_off[ids[i] + 1] - a;
        memcpy(out + o, t->tok_bytes + a, l);
        o += l;
    }
    out[o] = 0;
    *text = out;
    if (len) *len = o;
    return 0;
}
