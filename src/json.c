/*
 * json.c - recursive-descent JSON reader (RFC 8259), bounded depth.
 */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    const char *s;
    size_t n, i;
    gpt_error *err;
    int depth;
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

static int parse_string(parser *p, char **out, size_t *out_len) {
    p->i++; /* opening quote */
    /* The unescaped string is never longer than the escaped one. */
    size_t start = p->i, end = start;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->n) return perr(p, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf) return gpt_fail(p->err, GPT_ERR_NOMEM, "out of memory parsing JSON");
    size_t o = 0;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            buf[o] = 0;
            *out = buf;
            *out_len = o;
            return 0;
        }
        if (c < 0x20) {
            free(buf);
            return perr(p, "control character in string");
        }
        if (c != '\\') {
            size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!l) {
                free(buf);
                return perr(p, "invalid UTF-8 in string");
            }
            memcpy(buf + o, p->s + p->i, l);
            o += l;
            p->i += l;
            continue;
        }
        p->i++;
        if (p->i >= p->n) break;
        char e = p->s[p->i++];
        switch (e) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '/': buf[o++] = '/'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp)) {
                free(buf);
                return GPT_ERR_INVALID;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    free(buf);
                    return perr(p, "lone high surrogate in \\u escape");
                }
                p->i += 2;
                if (hex4(p, &lo)) {
                    free(buf);
                    return GPT_ERR_INVALID;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return perr(p, "bad low surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return perr(p, "lone low surrogate in \\u escape");
            }
            o += gpt_utf8_put(buf + o, cp); /* <= 6 escaped bytes give <= 4 */
            break;
        }
        default: free(buf); return perr(p, "bad escape");
        }
    }
    free(buf);
    return perr(p, "unterminated string");
}

static int parse_value(parser *p, json_value *v);

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
    char tmp[64];
    size_t len = p->i - st;
    if (len >= sizeof tmp) { /* long digit strings: parse a heap copy */
        char *h = malloc(len + 1);
        if (!h) return gpt_fail(p->err, GPT_ERR_NOMEM, "out of memory parsing JSON");
        memcpy(h, p->s + st, len);
        h[len] = 0;
        v->number = strtod(h, NULL);
        free(h);
    } else {
        memcpy(tmp, p->s + st, len);
        tmp[len] = 0;
        v->number = strtod(tmp, NULL);
    }
    v->type = JSON_NUMBER;
    return 0;
}

static int expect_word(parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0) return perr(p, "unexpected character");
    p->i += l;
    return 0;
}

static int grow(parser *p, void **arr, size_t elem, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    if (nc < need) nc = need;
    void *na = realloc(*arr, nc * elem);
    if (!na) return gpt_fail(p->err, GPT_ERR_NOMEM, "out of memory parsing JSON");
    *arr = na;
    *cap = nc;
    return 0;
}

static void free_inner(json_value *v);

static int parse_container(parser *p, json_value *v, int object) {
    if (++p->depth > JSON_MAX_DEPTH) return perr(p, "nested too deeply");
    p->i++;
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    size_t cap = 0, kcap = 0, lcap = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        char *key = NULL;
        size_t klen = 0;
        if (object) {
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "expected a key string");
            int rc = parse_string(p, &key, &klen);
            if (rc) return rc;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                return perr(p, "expected ':'");
            }
            p->i++;
            if (grow(p, (void **)&v->keys, sizeof(char *), &kcap, v->len + 1) ||
                grow(p, (void **)&v->key_lens, sizeof(size_t), &lcap, v->len + 1)) {
                free(key);
                return GPT_ERR_NOMEM;
            }
        }
        if (grow(p, (void **)&v->items, sizeof(json_value), &cap, v->len + 1)) {
            free(key);
            return GPT_ERR_NOMEM;
        }
        json_value *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        if (object) {
            v->keys[v->len] = key;
            v->key_lens[v->len] = klen;
        }
        v->len++;
        int rc = parse_value(p, item);
        if (rc) return rc;
        skip_ws(p);
        if (p->i >= p->n) return perr(p, "unterminated container");
        char c = p->s[p->i++];
        if (c == ',') continue;
        if (c == (object ? '}' : ']')) break;
        p->i--;
        return perr(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->depth--;
    return 0;
}

static int parse_value(parser *p, json_value *v) {
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "unexpected end of input");
    char c = p->s[p->i];
    switch (c) {
    case '{': return parse_container(p, v, 1);
    case '[': return parse_container(p, v, 0);
    case '"': v->type = JSON_STRING; return parse_string(p, &v->str, &v->len);
    case 't': v->type = JSON_BOOL; v->boolean = 1; return expect_word(p, "true");
    case 'f': v->type = JSON_BOOL; v->boolean = 0; return expect_word(p, "false");
    case 'n': v->type = JSON_NULL; return expect_word(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return perr(p, "unexpected character");
    }
}

static void free_inner(json_value *v) {
    if (v->type == JSON_STRING) free(v->str);
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            free_inner(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
}

int json_parse(const char *text, size_t n, json_value **out, gpt_error *err) {
    *out = NULL;
    json_value *v = calloc(1, sizeof *v);
    if (!v) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory parsing JSON");
    parser p = {text, n, 0, err, 0};
    int rc = parse_value(&p, v);
    if (!rc) {
        skip_ws(&p);
        if (p.i != n) rc = perr(&p, "trailing characters after the value");
    }
    if (rc) {
        json_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void json_free(json_value *v) {
    if (!v) return;
    free_inner(v);
    free(v);
}

const json_value *json_get(const json_value *v, const char *key) {
    if (!v || v->type != JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->len; i++)
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0) return &v->items[i];
    return NULL;
}

int json_get_int(const json_value *v, long long lo, long long hi, long long *out) {
    if (!v || v->type != JSON_NUMBER || !isfinite(v->number)) return 0;
    double d = v->number;
    if (d != floor(d) || d < (double)lo || d > (double)hi) return 0;
    *out = (long long)d;
    return 1;
}
