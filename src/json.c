/*
 * json.c - recursive-descent JSON reader (RFC 8259), bounded depth and
 * memory.
 *
 * The text is parsed three times by the same code: the first pass checks
 * the syntax and counts values, containers and string bytes; the second
 * records how many items each container has; the third fills one block
 * allocated for exactly that many values and bytes, each container's items
 * contiguous (so arrays index in O(1)). Three passes over text that is
 * already in memory cost little next to a tree that grows by doubling
 * (which held about 30 bytes per input byte).
 */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { PASS_COUNT, PASS_SIZES, PASS_BUILD };

_Static_assert(sizeof(json_value) == 16, "a JSON value is 16 bytes: the memory bound depends on it");

typedef struct {
    const char *s;
    size_t n, i;
    gpt_error *err;
    int depth, pass;
    size_t nodes, containers, str_bytes; /* PASS_COUNT's totals */
    uint32_t *sizes;  /* items of each container, in the order they open */
    size_t k;         /* the next container's index into sizes */
    json_value *next; /* PASS_BUILD: the next free value */
    char *strs;       /* PASS_BUILD: the next free string byte */
} parser;

static int perr(parser *p, const char *what) {
    return gpt_fail(p->err, GPT_ERR_INVALID, "bad JSON at byte %zu: %s", p->i, what);
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hex4(parser *p, unsigned *out) {
    if (p->n - p->i < 4) return perr(p, "short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return perr(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* One escape after the backslash; the code point into *cp. */
static int escape(parser *p, unsigned *cp) {
    if (p->i >= p->n) return perr(p, "unterminated string");
    char e = p->s[p->i++];
    switch (e) {
    case '"': *cp = '"'; return 0;
    case '\\': *cp = '\\'; return 0;
    case '/': *cp = '/'; return 0;
    case 'b': *cp = '\b'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'u': break;
    default: return perr(p, "bad escape");
    }
    if (hex4(p, cp)) return GPT_ERR_INVALID;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return perr(p, "lone low surrogate in \\u escape");
    if (*cp < 0xD800 || *cp > 0xDBFF) return 0;
    unsigned lo;
    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
        return perr(p, "lone high surrogate in \\u escape");
    p->i += 2;
    if (hex4(p, &lo)) return GPT_ERR_INVALID;
    if (lo < 0xDC00 || lo > 0xDFFF) return perr(p, "bad low surrogate in \\u escape");
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 0;
}

/* A string at p->i (the opening quote), unescaped into v (PASS_BUILD) or
 * counted. Never longer unescaped than escaped (<= 6 escaped bytes give
 * <= 4). */
static int parse_string(parser *p, json_value *v) {
    p->i++;
    char *out = p->pass == PASS_BUILD ? p->strs : NULL, tmp[4];
    size_t o = 0;
    for (;;) {
        if (p->i >= p->n) return perr(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') break;
        if (c < 0x20) return perr(p, "control character in string");
        if (c != '\\') {
            size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!l) return perr(p, "invalid UTF-8 in string");
            if (out) memcpy(out + o, p->s + p->i, l);
            o += l;
            p->i += l;
            continue;
        }
        p->i++;
        unsigned cp;
        int rc = escape(p, &cp);
        if (rc) return rc;
        o += gpt_utf8_put(out ? out + o : tmp, cp);
    }
    p->i++;
    if (p->pass == PASS_COUNT) p->str_bytes += o + 1;
    if (out) {
        out[o] = 0;
        v->type = JSON_STRING;
        v->str = out;
        v->len = (uint32_t)o;
        p->strs += o + 1;
    }
    return 0;
}

static int parse_number(parser *p, json_value *v) {
    size_t st = p->i;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) return perr(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else if (p->s[p->i] >= '1' && p->s[p->i] <= '9')
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else return perr(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    size_t len = p->i - st;
    if (len > JSON_MAX_NUMBER) {
        p->i = st;
        return perr(p, "number longer than 1024 characters");
    }
    if (v) {
        char tmp[JSON_MAX_NUMBER + 1];
        memcpy(tmp, p->s + st, len);
        tmp[len] = 0;
        v->type = JSON_NUMBER;
        v->number = strtod(tmp, NULL);
    }
    return 0;
}

static int expect_word(parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0) return perr(p, "unexpected character");
    p->i += l;
    return 0;
}

static int key_order(const void *a, const void *b) {
    const json_value *x = *(const json_value *const *)a, *y = *(const json_value *const *)b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, m);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int same_key(const json_value *x, const json_value *y) {
    return x->len == y->len && !memcmp(x->str, y->str, x->len);
}

static int dup_error(parser *p, const json_value *k) {
    char shown[41];
    size_t n = k->len < 40 ? k->len : 40;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k->str[i];
        shown[i] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    shown[n] = 0;
    return gpt_fail(p->err, GPT_ERR_INVALID,
                    "bad JSON at byte %zu: key \"%s\" appears twice in one object", p->i, shown);
}

/* Refuses an object that holds a key twice (readers disagree on which one
 * counts). Small objects compare every pair; large ones sort. */
static int check_duplicates(parser *p, const json_value *o) {
    size_t n = o->len;
    if (n <= 16) {
        for (size_t a = 1; a < n; a++)
            for (size_t b = 0; b < a; b++)
                if (same_key(json_key(o, a), json_key(o, b))) return dup_error(p, json_key(o, a));
        return 0;
    }
    const json_value **k = malloc(n * sizeof *k);
    if (!k) return gpt_fail(p->err, GPT_ERR_NOMEM, "out of memory parsing JSON");
    for (size_t i = 0; i < n; i++) k[i] = json_key(o, i);
    qsort(k, n, sizeof *k, key_order);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (same_key(k[i - 1], k[i])) rc = dup_error(p, k[i]);
    free(k);
    return rc;
}

static int parse_value(parser *p, json_value *v);

static int parse_container(parser *p, json_value *v, int object) {
    if (++p->depth > JSON_MAX_DEPTH) return perr(p, "nested too deeply");
    p->i++;
    size_t idx = p->k++, count = 0, want = 0;
    json_value *items = NULL;
    if (p->pass == PASS_COUNT) p->containers++;
    if (p->pass == PASS_BUILD) {
        want = p->sizes[idx];
        items = p->next;
        p->next += object ? 2 * want : want;
        v->type = object ? JSON_OBJECT : JSON_ARRAY;
        v->len = (uint32_t)want;
        v->items = items;
    }
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            json_value *slot = items ? items + (object ? 2 * count : count) : NULL;
            if (object) {
                if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "expected a key string");
                if (p->pass == PASS_COUNT) p->nodes++;
                int rc = parse_string(p, slot);
                if (rc) return rc;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return perr(p, "expected ':'");
                p->i++;
                if (slot) slot++;
            }
            int rc = parse_value(p, slot);
            if (rc) return rc;
            count++;
            skip_ws(p);
            if (p->i >= p->n) return perr(p, "unterminated container");
            char c = p->s[p->i++];
            if (c == ',') continue;
            if (c == (object ? '}' : ']')) break;
            p->i--;
            return perr(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (p->pass == PASS_SIZES) p->sizes[idx] = (uint32_t)count;
    if (p->pass == PASS_BUILD) {
        GPT_ASSERT(count == want);
        if (object) {
            int rc = check_duplicates(p, v);
            if (rc) return rc;
        }
    }
    p->depth--;
    return 0;
}

static int parse_value(parser *p, json_value *v) {
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "unexpected end of input");
    if (p->pass == PASS_COUNT) p->nodes++;
    if (v) memset(v, 0, sizeof *v);
    char c = p->s[p->i];
    switch (c) {
    case '{': return parse_container(p, v, 1);
    case '[': return parse_container(p, v, 0);
    case '"': return parse_string(p, v);
    case 'n': if (v) v->type = JSON_NULL; return expect_word(p, "null");
    case 't':
    case 'f':
        if (v) v->type = JSON_BOOL, v->boolean = c == 't';
        return expect_word(p, c == 't' ? "true" : "false");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return perr(p, "unexpected character");
    }
}

/* One pass over the whole text. */
static int run_pass(parser *p, int pass, json_value *root) {
    p->pass = pass;
    p->i = 0;
    p->k = 0;
    p->depth = 0;
    int rc = parse_value(p, root);
    if (!rc) {
        skip_ws(p);
        if (p->i != p->n) rc = perr(p, "trailing characters after the value");
    }
    return rc;
}

int json_parse(const char *text, size_t n, json_value **out, gpt_error *err) {
    *out = NULL;
    if (n > UINT32_MAX)
        return gpt_fail(err, GPT_ERR_INVALID, "bad JSON: %zu bytes is more than the 4 GiB allowed", n);
    parser p = {.s = text, .n = n, .err = err};
    int rc = run_pass(&p, PASS_COUNT, NULL);
    if (rc) return rc;
    /* Every value, key and container holds at least one input byte, so
     * these sizes cannot overflow. */
    p.sizes = malloc((p.containers ? p.containers : 1) * sizeof *p.sizes);
    json_value *block = malloc(p.nodes * sizeof *block + p.str_bytes);
    if (!p.sizes || !block) {
        free(p.sizes);
        free(block);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory parsing JSON");
    }
    if (!(rc = run_pass(&p, PASS_SIZES, NULL))) {
        p.next = block + 1; /* the root is block[0] */
        p.strs = (char *)(block + p.nodes);
        rc = run_pass(&p, PASS_BUILD, block);
        GPT_ASSERT(rc || (p.next == block + p.nodes && p.strs == (char *)(block + p.nodes) + p.str_bytes));
    }
    free(p.sizes);
    if (rc) {
        free(block);
        return rc;
    }
    *out = block;
    return 0;
}

void json_free(json_value *v) { free(v); }

const json_value *json_get(const json_value *v, const char *key) {
    if (!v || v->type != JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->len; i++) {
        const json_value *k = json_key(v, i);
        if (k->len == kl && memcmp(k->str, key, kl) == 0) return json_member(v, i);
    }
    return NULL;
}

int json_get_int(const json_value *v, long long lo, long long hi, long long *out) {
    if (!v || v->type != JSON_NUMBER || !isfinite(v->number)) return 0;
    double d = v->number;
    if (d != floor(d) || d < (double)lo || d > (double)hi) return 0;
    *out = (long long)d;
    return 1;
}
