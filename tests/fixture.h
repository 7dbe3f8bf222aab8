/*
 * fixture.h - reads the reference fixtures written by the tests/ref scripts:
 * b"GPTFIX01", u64 n, n bytes of JSON {"config": {...}, "tensors":
 * [{"name", "shape", "offset"}...]}, then little-endian float32 data.
 */
#ifndef GPT_FIXTURE_H
#define GPT_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

typedef struct {
    char *raw;
    size_t len;
    json_value *meta;
    const float *data;
    size_t nfloats;
} fixture;

static int fixture_load(fixture *fx, const char *path, gpt_error *err) {
    memset(fx, 0, sizeof *fx);
    int rc = gpt_read_file(path, 0, &fx->raw, &fx->len, err);
    if (rc) return rc;
    if (fx->len < 16 || memcmp(fx->raw, "GPTFIX01", 8))
        return gpt_fail(err, GPT_ERR_INVALID, "%s: not a fixture", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)fx->raw[8 + i];
    if (n > fx->len - 16) return gpt_fail(err, GPT_ERR_INVALID, "%s: bad header", path);
    if ((rc = json_parse(fx->raw + 16, (size_t)n, &fx->meta, err))) return rc;
    size_t start = 16 + (size_t)n;
    /* The floats are copied to an aligned buffer. */
    fx->nfloats = (fx->len - start) / 4;
    float *d = malloc(fx->nfloats * sizeof(float) + 1);
    if (!d) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    memcpy(d, fx->raw + start, fx->nfloats * 4);
    fx->data = d;
    return GPT_OK;
}

static void fixture_free(fixture *fx) {
    json_free(fx->meta);
    free(fx->raw);
    free((void *)fx->data);
    memset(fx, 0, sizeof *fx);
}

/* Config value by key (a number), or def. */
static double fixture_cfg(const fixture *fx, const char *key, double def) {
    const json_value *v = json_get(json_get(fx->meta, "config"), key);
    return v && v->type == JSON_NUMBER ? v->number : def;
}

/* A tensor's floats and element count, or NULL. */
static const float *fixture_get(const fixture *fx, const char *name, size_t *n) {
    const json_value *ts = json_get(fx->meta, "tensors");
    for (size_t i = 0; ts && i < ts->len; i++) {
        const json_value *t = &ts->items[i];
        const json_value *nm = json_get(t, "name");
        if (!nm || nm->type != JSON_STRING || strcmp(nm->str, name)) continue;
        const json_value *shape = json_get(t, "shape");
        long long off;
        if (!json_get_int(json_get(t, "offset"), 0, (long long)fx->nfloats, &off)) return NULL;
        size_t cnt = 1;
        for (size_t k = 0; shape && k < shape->len; k++) cnt *= (size_t)shape->items[k].number;
        if ((size_t)off + cnt > fx->nfloats) return NULL;
        if (n) *n = cnt;
        return fx->data + off;
    }
    return NULL;
}

#endif
