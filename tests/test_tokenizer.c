/*
 * test_tokenizer.c - the GPT-2 tokenizer against OpenAI's own ids, round
 * trips on any bytes, the fast paths against literal reference
 * implementations (regex alternation, rescanning BPE, recounting BPE
 * training), trained vocabularies, and strict loading of tokenizer files
 * and token shards. Runs from the repository root (tests/run.sh cds there).
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "gpt_tokenizer.h"
#include "json.h"
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static char tmp_dir[64];

static gpt_tokenizer *must_open(const char *name) {
    gpt_error err = {0};
    gpt_tokenizer *t = NULL;
    if (gpt_tokenizer_open(&t, name, &err)) {
        printf("cannot open tokenizer %s: %s\n", name, err.msg);
        exit(1);
    }
    return t;
}

static char *must_read(const char *path, size_t *n) {
    gpt_error err = {0};
    char *d;
    if (gpt_read_file(path, 0, &d, n, &err)) {
        printf("cannot read %s: %s\n", path, err.msg);
        exit(1);
    }
    return d;
}

static int ids_equal(const int *a, size_t na, const json_value *b) {
    if (!b || b->type != JSON_ARRAY || b->len != na) return 0;
    for (size_t i = 0; i < na; i++)
        if (b->items[i].type != JSON_NUMBER || (int)b->items[i].number != a[i]) return 0;
    return 1;
}

/* 1 if decode(encode(s)) == s; fills *n_ids. */
static int round_trips(const gpt_tokenizer *t, const char *s, size_t n, int special,
                       size_t *n_ids) {
    gpt_error err = {0};
    int *ids;
    size_t m;
    if (gpt_tokenizer_encode(t, s, n, special, &ids, &m, &err)) return 0;
    char *back;
    size_t bl;
    int ok = !gpt_tokenizer_decode(t, ids, m, &back, &bl, &err) && bl == n &&
             (n == 0 || !memcmp(back, s, n));
    if (n_ids) *n_ids = m;
    free(ids);
    if (ok) free(back);
    return ok;
}

/* ------------------------------------------------ OpenAI's reference ids */

static void test_reference_cases(const gpt_tokenizer *t, const char *path, const char *key) {
    size_t n;
    char *d = must_read(path, &n);
    int line = 0;
    for (char *p = d; p < d + n;) {
        char *nl = memchr(p, '\n', (size_t)(d + n - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(d + n - p);
        if (len) {
            line++;
            gpt_error err = {0};
            json_value *v = NULL;
            int rc = json_parse(p, len, &v, &err);
            const json_value *text = json_get(v, "text");
            char shown[41] = "?";
            if (text && text->type == JSON_STRING) { /* the first 40 bytes, controls as '.' */
                size_t k = 0;
                for (; k < 40 && k < text->len; k++)
                    shown[k] = (unsigned char)text->str[k] < 0x20 ? '.' : text->str[k];
                shown[k] = 0;
            }
            test_begin("%s line %d: %s", path, line, shown);
            EXPECT(rc == 0 && text && text->type == JSON_STRING, "bad line: %s", err.msg);
            if (!rc && text) {
                int *ids;
                size_t m;
                EXPECT(!gpt_tokenizer_encode(t, text->str, text->len, 0, &ids, &m, &err), "%s",
                       err.msg);
                EXPECT(ids_equal(ids, m, json_get(v, key)), "ids differ from '%s' (got %zu ids)",
                       key, m);
                EXPECT(round_trips(t, text->str, text->len, 0, NULL), "round trip");
                free(ids);
            }
            json_free(v);
            test_end();
        }
        p += len + 1;
    }
    free(d);
}

static void test_gpt2_basics(const gpt_tokenizer *t) {
    test_begin("gpt2: vocabulary, eot, token bytes");
    EXPECT(gpt_tokenizer_vocab_size(t) == 50257, "V %d", gpt_tokenizer_vocab_size(t));
    EXPECT(gpt_tokenizer_eot(t) == 50256, "eot %d", gpt_tokenizer_eot(t));
    EXPECT(!strcmp(gpt_tokenizer_name(t), "gpt2"), "name %s", gpt_tokenizer_name(t));
    size_t len;
    const char *tok = gpt_tokenizer_token(t, 15496, &len);
    EXPECT(tok && len == 5 && !memcmp(tok, "Hello", 5), "token 15496");
    tok = gpt_tokenizer_token(t, 50256, &len);
    EXPECT(tok && len == 13 && !memcmp(tok, "<|endoftext|>", 13), "token 50256");
    tok = gpt_tokenizer_token(t, 220, &len);
    EXPECT(tok && len == 1 && tok[0] == ' ', "token 220 is a space");
    EXPECT(!gpt_tokenizer_token(t, 50257, &len) && !gpt_tokenizer_token(t, -1, &len),
           "out of range ids give NULL");
    test_end();

    test_begin("gpt2: <|endoftext|> is text unless allow_special");
    gpt_error err = {0};
    int *ids;
    size_t m;
    const char *s = "a<|endoftext|>b<|endoftext|><|endoftext|>";
    EXPECT(!gpt_tokenizer_encode(t, s, strlen(s), 1, &ids, &m, &err), "%s", err.msg);
    int want[] = {64, 50256, 65, 50256, 50256};
    EXPECT(m == 5 && !memcmp(ids, want, sizeof want), "got %zu ids", m);
    free(ids);
    EXPECT(!gpt_tokenizer_encode(t, s, strlen(s), 0, &ids, &m, &err), "%s", err.msg);
    EXPECT(m > 5, "without allow_special: %zu ids", m);
    for (size_t i = 0; i < m; i++) EXPECT(ids[i] != 50256, "id %zu is eot", i);
    free(ids);
    EXPECT(round_trips(t, s, strlen(s), 1, NULL), "round trip with specials");
    const char *partial = "<|endoftext|<|endoftext";
    EXPECT(!gpt_tokenizer_encode(t, partial, strlen(partial), 1, &ids, &m, &err), "%s",
           err.msg);
    for (size_t i = 0; i < m; i++) EXPECT(ids[i] != 50256, "partial text matched as eot");
    free(ids);
    test_end();

    test_begin("gpt2: empty text, NUL bytes, decode errors");
    EXPECT(!gpt_tokenizer_encode(t, "", 0, 0, &ids, &m, &err) && m == 0 && ids, "empty");
    free(ids);
    EXPECT(!gpt_tokenizer_encode(t, NULL, 0, 0, &ids, &m, &err) && m == 0, "NULL, 0");
    free(ids);
    EXPECT(round_trips(t, "a\0b\0\0", 5, 0, NULL), "NUL bytes");
    char *text;
    size_t tl;
    int bad[] = {15496, 50257};
    EXPECT(gpt_tokenizer_decode(t, bad, 2, &text, &tl, &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "50257"),
           "id 50257: %s", err.msg);
    int neg[] = {-1};
    EXPECT(gpt_tokenizer_decode(t, neg, 1, &text, &tl, &err) == GPT_ERR_INVALID, "id -1");
    EXPECT(!gpt_tokenizer_decode(t, NULL, 0, &text, &tl, &err) && tl == 0 && text[0] == 0,
           "no ids");
    free(text);
    test_end();
}

static void test_shakespeare(const gpt_tokenizer *t) {
    size_t n;
    char *s = must_read("data/tinyshakespeare.txt", &n);
    test_begin("gpt2: whole tinyshakespeare.txt: 338,025 tokens, round trip, speed");
    gpt_error err = {0};
    int *ids;
    size_t m;
    double t0 = gpt_now();
    EXPECT(!gpt_tokenizer_encode(t, s, n, 0, &ids, &m, &err), "%s", err.msg);
    double secs = gpt_now() - t0;
    EXPECT(m == 338025, "%zu tokens", m);
    printf("     encoded %zu bytes in %.3f s (%.1f MB/s)\n", n, secs, 1e-6 * (double)n / secs);
    EXPECT(secs < (SANITIZED ? 5.0 : 0.5), "took %.3f s", secs);
    char *back;
    size_t bl;
    EXPECT(!gpt_tokenizer_decode(t, ids, m, &back, &bl, &err) && bl == n && !memcmp(back, s, n),
           "round trip");
    free(back);
    free(ids);
    test_end();

    /* llm.c's tokenisation: <|endoftext|> before each "\n\n" section. */
    test_begin("gpt2: llm.c's Shakespeare sections with <|endoftext|>: 338,028 tokens");
    char *doc = malloc(2 * n + 64);
    size_t dn = 0;
    const char *eot = "<|endoftext|>";
    for (size_t i = 0; i < n;) {
        const char *sep = NULL;
        for (size_t k = i; k + 1 < n; k++)
            if (s[k] == '\n' && s[k + 1] == '\n') {
                sep = s + k;
                break;
            }
        size_t end = sep ? (size_t)(sep - s) + 2 : n;
        memcpy(doc + dn, eot, 13);
        dn += 13;
        memcpy(doc + dn, s + i, end - i);
        dn += end - i;
        i = end;
    }
    EXPECT(!gpt_tokenizer_encode(t, doc, dn, 1, &ids, &m, &err), "%s", err.msg);
    EXPECT(m == 338028, "%zu tokens", m);
    free(ids);
    free(doc);
    test_end();
    free(s);
}

/* ----------------------------------------------- random inputs */

/* Appends the UTF-8 of cp to buf. */

/* Random text of up to max bytes: mode 0 any bytes, 1 valid Unicode from
 * many scripts, 2 characters chosen to stress the pre-tokenizer. */
static size_t random_text(gpt_rng *r, char *buf, size_t max, int mode) {
    static const uint32_t ranges[][2] = {
        {0x20, 0x7E},       {0x00, 0x1F},       {0xA0, 0xFF},       {0x100, 0x17F},
        {0x370, 0x3FF},     {0x400, 0x4FF},     {0x590, 0x5FF},     {0x600, 0x6FF},
        {0x900, 0x97F},     {0xE00, 0xE7F},     {0x1100, 0x11FF},   {0x3040, 0x30FF},
        {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},   {0x300, 0x36F},     {0x2000, 0x206F},
        {0x1F300, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x10000, 0x1007F}, {0xFE00, 0xFEFF},
        {0x0660, 0x0669},   {0x2150, 0x218F},   {0xE000, 0xE0FF},   {0x10FF00, 0x10FFFF},
    };
    static const char *const pieces[] = {
        " ",     "  ",     "\n",          "\t",       "\r\n", "'",         "'s",   "'t",
        "'re",   "'ve",    "'m",          "'ll",      "'d",   "'S",        "a",    "Z",
        "é",     "中",     "7",           "½",        "Ⅻ",    "!",         "?!",   "-",
        "\xc2\x85", "\xc2\xa0", "\xe3\x80\x80", "\xef\xbb\xbf", "\xff", "\xc3", "\xed\xa0\x80",
        "\xe2\x80\xa8", "\x1c", "\x0b", "<|endoftext|>", "😀", "\xcc\x81", "\x80",
    };
    size_t len = (size_t)gpt_rng_below(r, max / 4), o = 0;
    while (o + 16 < max && o < len) {
        if (mode == 0) {
            buf[o++] = (char)gpt_rng_below(r, 256);
        } else if (mode == 1) {
            const uint32_t *rg = ranges[gpt_rng_below(r, sizeof ranges / sizeof ranges[0])];
            uint32_t cp = rg[0] + (uint32_t)gpt_rng_below(r, rg[1] - rg[0] + 1);
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
            o += gpt_utf8_put(buf + o, cp);
        } else {
            const char *p = pieces[gpt_rng_below(r, sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            memcpy(buf + o, p, l);
            o += l;
        }
    }
    return o;
}

/* OpenAI's algorithm (encoder.py's bpe): find the lowest-ranked adjacent
 * pair, merge all of its occurrences left to right, repeat. */
static size_t naive_bpe(const gpt_tokenizer *t, const unsigned char *w, size_t L, int *out) {
    size_t n = L;
    for (size_t i = 0; i < L; i++) out[i] = t->byte_id[w[i]];
    for (;;) {
        int32_t best = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t r = tok_pair_rank(t, out[i], out[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r;
        }
        if (best < 0) return n;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && out[i] == t->merges[2 * best] && out[i + 1] == t->merges[2 * best + 1]) {
                out[o++] = 256 + best;
                i += 2;
            } else {
                out[o++] = out[i++];
            }
        }
        n = o;
    }
}

static int naive_encode_equal(const gpt_tokenizer *t, const char *s, size_t n) {
    gpt_error err = {0};
    int *ids, *ref = malloc((n + 1) * sizeof *ref);
    size_t m, k = 0;
    if (gpt_tokenizer_encode(t, s, n, 0, &ids, &m, &err)) {
        free(ref);
        return 0;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t j = tok_pretoken_end(u, n, i);
        k += naive_bpe(t, u + i, j - i, ref + k);
        i = j;
    }
    int ok = k == m && !memcmp(ids, ref, m * sizeof *ids);
    free(ids);
    free(ref);
    return ok;
}

/* The pattern's alternatives tried literally, in order, at position i of a
 * string of characters (classes cls, code points cp; invalid bytes are
 * class OTHER): returns the end of the match. */
static size_t regex_match(const int *cls, const uint32_t *cp, size_t n, size_t i) {
    static const char *const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    if (cp[i] == '\'')
        for (int k = 0; k < 7; k++) {
            size_t l = strlen(contractions[k]), j = 0;
            while (j < l && i + 1 + j < n && cp[i + 1 + j] == (uint32_t)contractions[k][j]) j++;
            if (j == l) return i + 1 + l;
        }
    static const int runs[3] = {UC_LETTER, UC_NUMBER, UC_OTHER}; /* OTHER: [^\s\p{L}\p{N}] */
    for (int alt = 0; alt < 3; alt++) {
        int c = runs[alt];
        for (int opt = 1; opt >= 0; opt--) { /* " ?" is greedy: with the space first */
            size_t j = i;
            if (opt) {
                if (cp[i] != ' ') continue;
                j++;
            }
            size_t k = j;
            while (k < n && cls[k] == c) k++;
            if (k > j) return k;
        }
    }
    size_t k = i;
    while (k < n && cls[k] == UC_SPACE) k++;
    for (size_t e = k; e > i; e--) /* \s+(?!\S), backtracking */
        if (e == n || cls[e] == UC_SPACE) return e;
    if (k > i) return k; /* \s+ */
    return i + 1;        /* unreachable: every character is in some class */
}

static int pretokenizer_agrees(const char *s, size_t n) {
    int *cls = malloc((n + 1) * sizeof *cls);
    uint32_t *cp = malloc((n + 1) * sizeof *cp);
    size_t *at = malloc((n + 1) * sizeof *at), m = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = uc_decode(u + i, n - i, &cp[m]);
        if (!l) {
            l = 1;
            cp[m] = 0xDC00 + u[i]; /* what surrogateescape would give */
            cls[m] = UC_OTHER;
        } else {
            cls[m] = uc_class(cp[m]);
        }
        at[m++] = i;
        i += l;
    }
    at[m] = n;
    int ok = 1;
    for (size_t c = 0, i = 0; c < m && ok;) {
        size_t e = regex_match(cls, cp, m, c);
        size_t j = tok_pretoken_end(u, n, i);
        ok = at[e] == j;
        c = e;
        i = j;
    }
    free(cls);
    free(cp);
    free(at);
    return ok;
}

static void test_random(const gpt_tokenizer *gpt2, const gpt_tokenizer *bytes,
                        const gpt_tokenizer *trained) {
    enum { MAX = 4096 };
    char *buf = malloc(MAX);
    const char *mode_name[] = {"random bytes", "random Unicode from many scripts",
                               "pre-tokenizer stress text"};
    for (int mode = 0; mode < 3; mode++) {
        gpt_rng r;
        gpt_rng_seed(&r, 1234 + (uint64_t)mode);
        int rt = 0, naive = 0, pre = 0, N = SANITIZED ? 300 : 1500;
        for (int k = 0; k < N; k++) {
            size_t n = random_text(&r, buf, MAX, mode);
            const gpt_tokenizer *t = k % 3 == 0 ? gpt2 : k % 3 == 1 ? trained : bytes;
            rt += round_trips(t, buf, n, k & 1, NULL);
            naive += naive_encode_equal(k % 2 ? gpt2 : trained, buf, n);
            pre += pretokenizer_agrees(buf, n);
        }
        test_begin("%s: round trip (gpt2, trained, bytes)", mode_name[mode]);
        EXPECT(rt == N, "%d of %d round trip", rt, N);
        test_end();
        test_begin("%s: heap BPE equals OpenAI's rescanning BPE", mode_name[mode]);
        EXPECT(naive == N, "%d of %d agree", naive, N);
        test_end();
        test_begin("%s: pre-tokenizer equals the regex's alternatives", mode_name[mode]);
        EXPECT(pre == N, "%d of %d agree", pre, N);
        test_end();
    }
    free(buf);

    test_begin("invalid UTF-8 encodes byte by byte and round trips");
    static const char *const bad[] = {"\xff", "\xc3", "a\x80z", "\xed\xa0\x80", "\xc0\xaf",
                                      "\xf4\x90\x80\x80", "\xe2\x82", "caf\xe9 cr\xe8me",
                                      " \xfe\xfe 's \xf0\x9f\x98"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        EXPECT(round_trips(gpt2, bad[k], strlen(bad[k]), 0, NULL), "gpt2 case %zu", k);
        EXPECT(round_trips(trained, bad[k], strlen(bad[k]), 0, NULL), "trained case %zu", k);
    }
    gpt_error err = {0};
    int *ids;
    size_t m;
    EXPECT(!gpt_tokenizer_encode(gpt2, "\xff\xfe", 2, 0, &ids, &m, &err) && m == 2, "2 ids");
    free(ids);
    test_end();
}

static void test_bytes(const gpt_tokenizer *t) {
    test_begin("bytes tokenizer: 256 tokens, no eot, ids are bytes");
    EXPECT(gpt_tokenizer_vocab_size(t) == 256 && gpt_tokenizer_eot(t) == -1, "V %d eot %d",
           gpt_tokenizer_vocab_size(t), gpt_tokenizer_eot(t));
    gpt_error err = {0};
    int *ids;
    size_t m;
    const char *s = "ab\xff<|endoftext|>";
    EXPECT(!gpt_tokenizer_encode(t, s, strlen(s), 1, &ids, &m, &err), "%s", err.msg);
    EXPECT(m == strlen(s), "%zu ids", m);
    for (size_t i = 0; i < m; i++) EXPECT(ids[i] == (unsigned char)s[i], "id %zu", i);
    free(ids);
    test_end();
}

/* ------------------------------------------------------------- training */

/* BPE training the slow way: recount every pair before each merge. */
static int naive_train(const char *text, size_t n, int vocab, int32_t *merges) {
    size_t cap = n + 1, W = 0, *off = malloc(cap * sizeof *off), *len = malloc(cap * sizeof *len);
    int32_t *sym = malloc(cap * sizeof *sym);
    size_t *tl = malloc(((size_t)vocab + 1) * sizeof *tl), total = 0;
    for (int i = 0; i < 256; i++) tl[i] = 1;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < n;) { /* every pre-token is a word of count 1 */
        if (n - i >= 13 && !memcmp(text + i, "<|endoftext|>", 13)) { /* a separator */
            i += 13;
            continue;
        }
        size_t end = i;
        while (end < n && !(n - end >= 13 && !memcmp(text + end, "<|endoftext|>", 13))) end++;
        size_t j = tok_pretoken_end(u, end, i);
        off[W] = total;
        len[W++] = j - i;
        for (size_t k = i; k < j; k++) sym[total++] = u[k];
        i = j;
    }
    int done = 0, V = 256;
    int64_t *counts = calloc((size_t)vocab * (size_t)vocab, sizeof *counts);
    while (done < vocab - 257) {
        memset(counts, 0, (size_t)vocab * (size_t)vocab * sizeof *counts);
        for (size_t w = 0; w < W; w++)
            for (size_t i = 0; i + 1 < len[w]; i++)
                counts[(size_t)sym[off[w] + i] * (size_t)vocab + (size_t)sym[off[w] + i + 1]]++;
        int64_t best = 0;
        int ba = -1, bb = -1;
        for (int a = 0; a < V; a++)
            for (int b = 0; b < V; b++) {
                int64_t c = counts[(size_t)a * (size_t)vocab + (size_t)b];
                if (c > best && tl[a] + tl[b] <= TOK_MAX_TOKEN_BYTES) best = c, ba = a, bb = b;
            }
        if (ba < 0) break;
        int z = 256 + done;
        merges[2 * done] = ba;
        merges[2 * done + 1] = bb;
        tl[z] = tl[ba] + tl[bb];
        for (size_t w = 0; w < W; w++) {
            int32_t *s = sym + off[w];
            size_t o = 0;
            for (size_t i = 0; i < len[w];) {
                if (i + 1 < len[w] && s[i] == ba && s[i + 1] == bb) s[o++] = z, i += 2;
                else s[o++] = s[i++];
            }
            len[w] = o;
        }
        done++;
        V++;
    }
    free(off);
    free(len);
    free(sym);
    free(tl);
    free(counts);
    return done;
}

static gpt_tokenizer *test_training(const char *shk, size_t shk_n) {
    gpt_error err = {0};
    gpt_tokenizer *t = NULL, *t2 = NULL;
    test_begin("train: Shakespeare at vocabulary 4096 in seconds");
    double t0 = gpt_now();
    EXPECT(!gpt_tokenizer_train(&t, shk, shk_n, 4096, NULL, NULL, &err), "%s", err.msg);
    double secs = gpt_now() - t0;
    printf("     trained in %.3f s\n", secs);
    EXPECT(secs < (SANITIZED ? 30.0 : 5.0), "took %.2f s", secs);
    EXPECT(gpt_tokenizer_vocab_size(t) == 4096 && gpt_tokenizer_eot(t) == 4095, "V %d eot %d",
           gpt_tokenizer_vocab_size(t), gpt_tokenizer_eot(t));
    test_end();

    test_begin("train: round trip and better compression than bytes on Shakespeare");
    size_t m = 0;
    EXPECT(round_trips(t, shk, shk_n, 0, &m), "round trip");
    printf("     %zu bytes -> %zu tokens (%.2f bytes per token)\n", shk_n, m,
           (double)shk_n / (double)m);
    EXPECT(m < shk_n / 3, "%zu tokens for %zu bytes", m, shk_n);
    EXPECT(round_trips(t, "<|endoftext|>x", 14, 1, NULL), "eot round trip");
    test_end();

    test_begin("train: deterministic (same text and size give identical files)");
    EXPECT(!gpt_tokenizer_train(&t2, shk, shk_n, 4096, NULL, NULL, &err), "%s", err.msg);
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    EXPECT(!gpt_tokenizer_serialize(t, &a, &na, &err) && !gpt_tokenizer_serialize(t2, &b, &nb, &err),
           "%s", err.msg);
    EXPECT(na == nb && na && !memcmp(a, b, na), "serializations differ");
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/a.tok", tmp_dir);
    snprintf(p2, sizeof p2, "%s/b.tok", tmp_dir);
    EXPECT(!gpt_tokenizer_save(t, p1, &err) && !gpt_tokenizer_save(t2, p2, &err), "%s", err.msg);
    size_t fa, fb;
    char *da = must_read(p1, &fa), *db = must_read(p2, &fb);
    EXPECT(fa == fb && fa == na && !memcmp(da, db, fa) && !memcmp(da, a, fa), "files differ");
    free(da);
    free(db);
    free(a);
    free(b);
    gpt_tokenizer_free(t2);
    test_end();

    test_begin("train: a saved file loads back and encodes the same");
    gpt_tokenizer *t3 = NULL;
    EXPECT(!gpt_tokenizer_open(&t3, p1, &err), "%s", err.msg);
    if (t3) {
        EXPECT(!strcmp(gpt_tokenizer_name(t3), p1), "name %s", gpt_tokenizer_name(t3));
        int *i1 = NULL, *i2 = NULL;
        size_t n1, n2;
        size_t part = shk_n < 200000 ? shk_n : 200000;
        EXPECT(!gpt_tokenizer_encode(t, shk, part, 0, &i1, &n1, &err) &&
                   !gpt_tokenizer_encode(t3, shk, part, 0, &i2, &n2, &err) && n1 == n2 &&
                   !memcmp(i1, i2, n1 * sizeof *i1),
               "encodings differ");
        free(i1);
        free(i2);
        gpt_tokenizer_free(t3);
    }
    test_end();

    test_begin("train: incremental counts give the merges of naive recounting");
    gpt_rng r;
    gpt_rng_seed(&r, 99);
    char *buf = malloc(4096);
    int agree = 0, cases = 0;
    for (int k = 0; k < 12; k++, cases++) {
        size_t n;
        const char *txt;
        if (k < 4) {
            n = 3000 + 2000 * (size_t)k;
            txt = shk + 10000 * (size_t)k;
        } else {
            n = random_text(&r, buf, 4096, k % 3);
            txt = buf;
        }
        int vocab = 257 + 40 + 10 * k;
        int32_t *ref = malloc((size_t)vocab * 2 * sizeof *ref);
        int done = naive_train(txt, n, vocab, ref);
        gpt_tokenizer *tk = NULL;
        if (!gpt_tokenizer_train(&tk, txt, n, vocab, NULL, NULL, &err)) {
            agree += tk->M == done && !memcmp(tk->merges, ref, (size_t)done * 2 * sizeof *ref);
            if (tk->M != done) printf("     case %d: %d merges vs %d\n", k, tk->M, done);
            gpt_tokenizer_free(tk);
        }
        free(ref);
    }
    EXPECT(agree == cases, "%d of %d agree", agree, cases);
    free(buf);
    test_end();

    test_begin("train: <|endoftext|> separates documents and is not learned from");
    {
        size_t dn = 0;
        char *docs = malloc(100 * 20);
        for (int k = 0; k < 100; k++) {
            memcpy(docs + dn, "<|endoftext|>hello ", 19);
            dn += 19;
        }
        gpt_tokenizer *te = NULL;
        EXPECT(!gpt_tokenizer_train(&te, docs, dn, 300, NULL, NULL, &err), "%s", err.msg);
        for (int id = 256; te && id < gpt_tokenizer_vocab_size(te) - 1; id++) {
            size_t l;
            const char *tb = gpt_tokenizer_token(te, id, &l);
            EXPECT(!memchr(tb, '<', l) && !memchr(tb, '|', l) && !memchr(tb, '>', l),
                   "token %d is '%.*s'", id, (int)l, tb);
        }
        size_t m2;
        /* eot, "hello", " " per document */
        EXPECT(te && round_trips(te, docs, dn, 1, &m2) && m2 == 300, "%zu tokens", m2);
        gpt_tokenizer_free(te);
        free(docs);
    }
    test_end();

    test_begin("train: edge cases (sizes, empty text, long runs)");
    gpt_tokenizer *tk = NULL;
    EXPECT(gpt_tokenizer_train(&tk, "ab", 2, 256, NULL, NULL, &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "257"),
           "vocab 256: %s", err.msg);
    EXPECT(!gpt_tokenizer_train(&tk, "", 0, 300, NULL, NULL, &err) &&
               gpt_tokenizer_vocab_size(tk) == 257,
           "empty text");
    gpt_tokenizer_free(tk);
    EXPECT(!gpt_tokenizer_train(&tk, "hello hello", 11, 100000, NULL, NULL, &err) &&
               gpt_tokenizer_vocab_size(tk) < 300,
           "runs out of pairs: %d", tk ? gpt_tokenizer_vocab_size(tk) : 0);
    gpt_tokenizer_free(tk);
    size_t big = 100000;
    char *run = malloc(big);
    memset(run, 'a', big);
    EXPECT(!gpt_tokenizer_train(&tk, run, big, 400, NULL, NULL, &err), "%s", err.msg);
    if (tk) {
        size_t longest = 0;
        for (int id = 0; id < gpt_tokenizer_vocab_size(tk); id++) {
            size_t l;
            gpt_tokenizer_token(tk, id, &l);
            if (l > longest) longest = l;
        }
        EXPECT(longest <= TOK_MAX_TOKEN_BYTES, "longest token %zu", longest);
        EXPECT(round_trips(tk, run, big, 0, NULL), "round trip");
        gpt_tokenizer_free(tk);
    }
    free(run);
    test_end();
    return t;
}

/* ------------------------------------------------------ tokenizer files */

static void put32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fix_crc(unsigned char *d, size_t n) { put32(d + n - 4, gpt_crc32(0, d, n - 4)); }

/* Loads data; returns the status and leaves the message in err. */
static int try_load(const unsigned char *d, size_t n, gpt_error *err) {
    gpt_tokenizer *t = NULL;
    int rc = gpt_tokenizer_load_memory(&t, d, n, err);
    gpt_tokenizer_free(t);
    return rc;
}

#define EXPECT_REFUSED(d, n, word)                                                       \
    do {                                                                                 \
        gpt_error e_ = {0};                                                              \
        int rc_ = try_load(d, n, &e_);                                                   \
        EXPECT(rc_ == GPT_ERR_INVALID && strstr(e_.msg, word), "rc %d, message '%s'", rc_, \
               e_.msg);                                                                  \
    } while (0)

static void test_tokenizer_files(const gpt_tokenizer *gpt2, const char *shk) {
    gpt_error err = {0};
    gpt_tokenizer *t = NULL;
    EXPECT(!gpt_tokenizer_train(&t, shk, 20000, 300, NULL, NULL, &err), "%s", err.msg);
    void *data;
    size_t n;
    gpt_tokenizer_serialize(t, &data, &n, &err);
    unsigned char *good = data, *d = malloc(n + 64);
    const size_t merges_at = 32 + 1024, special_at = merges_at + 8 * 43;

    test_begin("tokenizer file: the valid file loads and serializes back identically");
    gpt_tokenizer *back = NULL;
    EXPECT(!gpt_tokenizer_load_memory(&back, good, n, &err), "%s", err.msg);
    void *again;
    size_t n2;
    if (back) {
        EXPECT(!gpt_tokenizer_serialize(back, &again, &n2, &err) && n2 == n &&
                   !memcmp(again, good, n),
               "not canonical");
        free(again);
        EXPECT(!strcmp(gpt_tokenizer_name(back), "(memory)"), "name");
        gpt_tokenizer_free(back);
    }
    EXPECT(get32(good + 20) == 43 && n == special_at + 4 + 13 + 4, "layout: %u merges, %zu bytes",
           get32(good + 20), n);
    test_end();

    test_begin("tokenizer file: truncated at every length is refused");
    int refused = 0;
    for (size_t k = 0; k < n; k++) refused += try_load(good, k, &err) == GPT_ERR_INVALID;
    EXPECT(refused == (int)n, "%d of %zu refused", refused, n);
    EXPECT_REFUSED(good, n - 1, "truncated");
    EXPECT_REFUSED(good, 100, "truncated");
    EXPECT_REFUSED(good, 0, "magic");
    test_end();

    test_begin("tokenizer file: wrong magic, version, pre-tokenizer, reserved field");
    memcpy(d, good, n);
    d[0] = 'X';
    EXPECT_REFUSED(d, n, "magic");
    memcpy(d, good, n);
    put32(d + 8, 2);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "version 2");
    memcpy(d, good, n);
    put32(d + 12, 7);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "pre-tokenizer");
    memcpy(d, good, n);
    put32(d + 28, 1);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "reserved");
    test_end();

    test_begin("tokenizer file: bad checksum");
    memcpy(d, good, n);
    d[merges_at + 5] ^= 1;
    EXPECT_REFUSED(d, n, "checksum");
    memcpy(d, good, n);
    d[n - 1] ^= 0x80;
    EXPECT_REFUSED(d, n, "checksum");
    test_end();

    test_begin("tokenizer file: counts that disagree, trailing bytes");
    memcpy(d, good, n);
    put32(d + 16, get32(good + 16) + 1);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "counts");
    memcpy(d, good, n);
    put32(d + 20, 0xFFFFFFFFu);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "counts");
    memcpy(d, good, n);
    memmove(d + n - 3, d + n - 4, 4);
    d[n - 4] = 0;
    fix_crc(d, n + 1);
    EXPECT_REFUSED(d, n + 1, "after the last special");
    test_end();

    test_begin("tokenizer file: duplicate merges");
    memcpy(d, good, n);
    memcpy(d + merges_at + 8 * 5, d + merges_at + 8 * 4, 8);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "duplicates merge 4");
    test_end();

    test_begin("tokenizer file: ids out of range");
    memcpy(d, good, n);
    put32(d + merges_at + 8 * 3, 100000);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "out of range");
    memcpy(d, good, n);
    put32(d + merges_at + 8 * 3 + 4, 256 + 3); /* its own result: not defined yet */
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "out of range");
    memcpy(d, good, n);
    put32(d + 32 + 4 * 7, 256);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "out of range");
    memcpy(d, good, n);
    put32(d + 32 + 4 * 7, 8); /* bytes 7 and 8 share an id */
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "permutation");
    test_end();

    test_begin("tokenizer file: special tokens that are not UTF-8, empty or repeated");
    memcpy(d, good, n);
    d[special_at + 4 + 2] = (char)0xFF;
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "UTF-8");
    memcpy(d, good, n);
    d[special_at + 4 + 2] = (char)0xC3; /* a truncated two-byte sequence */
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "UTF-8");
    memcpy(d, good, n);
    put32(d + special_at, 0);
    memmove(d + special_at + 4, d + special_at + 4 + 13, 4);
    fix_crc(d, n - 13);
    EXPECT_REFUSED(d, n - 13, "1 to");
    memcpy(d, good, n);
    put32(d + special_at, 1000);
    fix_crc(d, n);
    EXPECT_REFUSED(d, n, "truncated");
    /* Two specials, the same text. */
    memcpy(d, good, special_at);
    put32(d + 16, get32(good + 16) + 1);
    put32(d + 24, 2);
    for (int k = 0; k < 2; k++) {
        put32(d + special_at + 17 * (size_t)k, 13);
        memcpy(d + special_at + 17 * (size_t)k + 4, "<|endoftext|>", 13);
    }
    fix_crc(d, special_at + 34 + 4);
    EXPECT_REFUSED(d, special_at + 34 + 4, "same text");
    test_end();

    test_begin("tokenizer file: errors name the file; missing files; other folders");
    char path[128];
    snprintf(path, sizeof path, "%s/corrupt.tok", tmp_dir);
    FILE *f = fopen(path, "wb");
    fwrite(good, 1, n / 2, f);
    fclose(f);
    gpt_tokenizer *x = NULL;
    EXPECT(gpt_tokenizer_open(&x, path, &err) == GPT_ERR_INVALID && strstr(err.msg, path) &&
               strstr(err.msg, "truncated"),
           "%s", err.msg);
    EXPECT(gpt_tokenizer_open(&x, "/nonexistent/x.tok", &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "/nonexistent/x.tok") && strstr(err.msg, "gpt2"),
           "%s", err.msg);
    EXPECT(gpt_tokenizer_open(&x, "", &err) == GPT_ERR_INVALID, "empty name");
    EXPECT(gpt_tokenizer_open(&x, tmp_dir, &err) == GPT_ERR_INVALID, "a folder: %s", err.msg);
    char cwd[4096];
    EXPECT(getcwd(cwd, sizeof cwd) && chdir("/") == 0, "chdir");
    EXPECT(!gpt_tokenizer_open(&x, "gpt2", &err), "gpt2 from /: %s", err.msg);
    gpt_tokenizer_free(x);
    EXPECT(chdir(cwd) == 0, "chdir back");
    test_end();

    test_begin("tokenizer file: a failed save leaves the previous file intact");
    snprintf(path, sizeof path, "%s/keep.tok", tmp_dir);
    EXPECT(!gpt_tokenizer_save(t, path, &err), "%s", err.msg);
    gpt_test_fail_write_after = 100;
    EXPECT(gpt_tokenizer_save(gpt2, path, &err) == GPT_ERR_IO, "rc: %s", err.msg);
    gpt_test_fail_write_after = -1;
    size_t kn;
    char *kd = must_read(path, &kn);
    EXPECT(kn == n && !memcmp(kd, good, n), "file changed");
    free(kd);
    snprintf(path, sizeof path, "%s/no/such/dir.tok", tmp_dir);
    EXPECT(gpt_tokenizer_save(t, path, &err) != 0, "save into a missing folder");
    test_end();

    test_begin("gpt2 serialized and loaded back encodes identically");
    void *g;
    size_t gn;
    gpt_tokenizer *g2 = NULL;
    EXPECT(!gpt_tokenizer_serialize(gpt2, &g, &gn, &err), "%s", err.msg);
    EXPECT(!gpt_tokenizer_load_memory(&g2, g, gn, &err), "%s", err.msg);
    if (g2) {
        EXPECT(gpt_tokenizer_vocab_size(g2) == 50257 && gpt_tokenizer_eot(g2) == 50256, "V eot");
        for (int id = 0; id < 50257; id++) {
            size_t l1, l2;
            const char *a = gpt_tokenizer_token(gpt2, id, &l1), *b = gpt_tokenizer_token(g2, id, &l2);
            if (l1 != l2 || memcmp(a, b, l1)) {
                EXPECT(0, "token %d differs", id);
                break;
            }
        }
        int *i1 = NULL, *i2 = NULL;
        size_t n1, m2;
        EXPECT(!gpt_tokenizer_encode(gpt2, shk, 300000, 1, &i1, &n1, &err) &&
                   !gpt_tokenizer_encode(g2, shk, 300000, 1, &i2, &m2, &err) && n1 == m2 &&
                   !memcmp(i1, i2, n1 * sizeof *i1),
               "encodings differ");
        free(i1);
        free(i2);
        gpt_tokenizer_free(g2);
    }
    free(g);
    test_end();

    free(d);
    free(data);
    gpt_tokenizer_free(t);
}

static void remove_tmp(void) {
    const char *names[] = {"a.tok", "b.tok", "corrupt.tok", "keep.tok"};
    char p[128];
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", tmp_dir, names[k]);
        unlink(p);
    }
    rmdir(tmp_dir);
}

int main(void) {
    (void)test_max_rel_err; /* test.h helpers this program has no use for */
    (void)test_rel_l2;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/gpt-test-tok-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        printf("cannot make a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    gpt_test_fail_write_after = -1;
    double t0 = gpt_now();
    gpt_tokenizer *gpt2 = must_open("gpt2");
    printf("     gpt2 opened in %.3f s\n", gpt_now() - t0);
    gpt_tokenizer *bytes = must_open("bytes");
    size_t shk_n;
    char *shk = must_read("data/tinyshakespeare.txt", &shk_n);

    test_reference_cases(gpt2, "tests/data/encode_cases.jsonl", "ids");
    test_reference_cases(gpt2, "tests/data/encode_divergent.jsonl", "ids_openai");
    test_gpt2_basics(gpt2);
    test_shakespeare(gpt2);
    test_bytes(bytes);
    gpt_tokenizer *trained = test_training(shk, shk_n);
    test_random(gpt2, bytes, trained);
    test_tokenizer_files(gpt2, shk);

    gpt_tokenizer_free(trained);
    gpt_tokenizer_free(bytes);
    gpt_tokenizer_free(gpt2);
    free(shk);
    remove_tmp();
    return test_summary();
}
