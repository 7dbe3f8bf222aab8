/*
 * fuzz_json.c - libFuzzer target for the JSON reader (src/json.c): any
 * text parses or is refused with GPT_ERR_INVALID and a one-line message;
 * whatever the outcome, the parser's memory stays within 10 bytes per
 * input byte (json.h's bound, counted by alloc_count.h); no object that
 * parses holds a key twice; and a parsed value written back out (here, in
 * a canonical form) parses to the same value and the same text.
 *
 * Large inputs without large seeds: an input starting with 'R' is a
 * recipe, "R" k0 k1 prefix NUL body NUL suffix, for the text prefix +
 * body x (k0 + 256 k1) + suffix, cut at 1 MiB, so that mutations of a few
 * bytes reach arrays of 100,000 values and objects of 100,000 keys (the
 * cases that inflated ~30x before issue 13).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "json.h"

#define MAX_TEXT ((size_t)1 << 20)

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_json: %s\n", what);
        abort();
    }
}

typedef struct {
    char *s;
    size_t n, cap;
} out_buf;

static void put(out_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        b->s = realloc(b->s, c);
        check(b->s != NULL, "out of memory");
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
}

static void put_string(out_buf *b, const json_value *v) {
    put(b, "\"", 1);
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->str[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, (const char *)&v->str[i], 1);
        }
    }
    put(b, "\"", 1);
}

static void write_value(out_buf *b, const json_value *v) {
    char num[40];
    switch (v->type) {
    case JSON_NULL: put(b, "null", 4); break;
    case JSON_BOOL: v->boolean ? put(b, "true", 4) : put(b, "false", 5); break;
    case JSON_NUMBER:
        /* Numbers past the double range read as +-inf, as Python's do. */
        if (isinf(v->number)) snprintf(num, sizeof num, "%s1e999", v->number < 0 ? "-" : "");
        else snprintf(num, sizeof num, "%.17g", v->number);
        put(b, num, strlen(num));
        break;
    case JSON_STRING: put_string(b, v); break;
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) put(b, ",", 1);
            write_value(b, &v->items[i]);
        }
        put(b, "]", 1);
        break;
    case JSON_OBJECT:
        put(b, "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) put(b, ",", 1);
            put_string(b, json_key(v, i));
            put(b, ":", 1);
            write_value(b, json_member(v, i));
        }
        put(b, "}", 1);
        break;
    default: check(0, "unknown value type");
    }
}

static int key_cmp(const void *a, const void *b) {
    const json_value *x = *(const json_value *const *)a, *y = *(const json_value *const *)b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, m);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* No object holds a key twice; strings are NUL-terminated at their length. */
static void check_value(const json_value *v) {
    if (v->type == JSON_STRING) check(v->str[v->len] == 0, "string not NUL-terminated");
    if (v->type == JSON_ARRAY)
        for (size_t i = 0; i < v->len; i++) check_value(&v->items[i]);
    if (v->type != JSON_OBJECT) return;
    const json_value **k = malloc((v->len ? v->len : 1) * sizeof *k);
    check(k != NULL, "out of memory");
    for (size_t i = 0; i < v->len; i++) {
        k[i] = json_key(v, i);
        check(k[i]->type == JSON_STRING, "a key is not a string");
        check(json_get(v, k[i]->str) != NULL || memchr(k[i]->str, 0, k[i]->len), "json_get");
        check_value(json_member(v, i));
    }
    qsort(k, v->len, sizeof *k, key_cmp);
    for (size_t i = 1; i < v->len; i++) check(key_cmp(&k[i - 1], &k[i]) != 0, "a key twice");
    free(k);
}

static void run(const char *text, size_t n) {
    json_value *v = NULL;
    gpt_error err = {0};
    alloc_begin();
    int rc = json_parse(text, n, &v, &err);
    /* json.h: at most 9 bytes per input byte for the tree, 8 for the
     * duplicate check's sort of the largest object's keys, never both at
     * their worst in one text; 10 is the bound. */
    size_t peak = alloc_peak();
    if (peak > 10 * n + 4096) {
        fprintf(stderr, "fuzz_json: %s %zu bytes of JSON took %zu bytes\n",
                rc ? "refusing" : "parsing", n, peak);
        abort();
    }
    if (rc) {
        check(rc == GPT_ERR_INVALID && err.msg[0] && !v, "refused without GPT_ERR_INVALID");
        check(!strchr(err.msg, '\n'), "a message of more than one line");
        return;
    }
    check_value(v);
    out_buf a = {0}, b = {0};
    write_value(&a, v);
    json_value *w = NULL;
    check(json_parse(a.s, a.n, &w, &err) == 0, "the written form does not parse");
    write_value(&b, w);
    check(a.n == b.n && !memcmp(a.s, b.s, a.n), "parse(write(v)) differs from v");
    json_free(w);
    json_free(v);
    free(a.s);
    free(b.s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 3 && data[0] == 'R') {
        const char *d = (const char *)data + 3, *end = (const char *)data + size;
        const char *z1 = memchr(d, 0, (size_t)(end - d));
        const char *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
        if (!z2) return 0;
        size_t k = (size_t)data[1] | (size_t)data[2] << 8, pl = (size_t)(z1 - d),
               bl = (size_t)(z2 - z1 - 1), sl = (size_t)(end - z2 - 1);
        if (bl && k > (MAX_TEXT - pl - sl) / bl) k = (MAX_TEXT - pl - sl) / bl;
        if (pl + sl > MAX_TEXT) return 0;
        size_t n = pl + k * bl + sl;
        char *t = malloc(n ? n : 1);
        check(t != NULL, "out of memory");
        memcpy(t, d, pl);
        for (size_t i = 0; i < k; i++) memcpy(t + pl + i * bl, z1 + 1, bl);
        memcpy(t + pl + k * bl, z2 + 1, sl);
        run(t, n);
        free(t);
        return 0;
    }
    /* An exact copy: ASan catches a read past the input's end. */
    char *t = malloc(size ? size : 1);
    check(t != NULL, "out of memory");
    memcpy(t, data, size);
    run(t, size);
    free(t);
    return 0;
}
