/*
 * safetensors.c - reading the safetensors container safely (see
 * safetensors.h for the format and what is checked).
 */
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

static const struct {
    const char *name;
    int dtype;
    size_t size;
} dtypes[] = {
    {"F32", ST_F32, 4},    {"F16", ST_F16, 2},       {"BF16", ST_BF16, 2},     {"F64", ST_OTHER, 8},
    {"I64", ST_OTHER, 8},  {"U64", ST_OTHER, 8},     {"I32", ST_OTHER, 4},     {"U32", ST_OTHER, 4},
    {"I16", ST_OTHER, 2},  {"U16", ST_OTHER, 2},     {"I8", ST_OTHER, 1},      {"U8", ST_OTHER, 1},
    {"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define ST_MAX_INT 9007199254740992LL

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Orders tensor pointers by (begin, end) for the overlap check. */
static int by_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

void st_free(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->t[i].name);
        free(f->t[i].shape);
    }
    free(f->t);
    memset(f, 0, sizeof *f);
}

/* Fills t from one header entry; name is the entry's key (len bytes). */
static int parse_entry(st_tensor *t, const char *name, size_t len, const json_value *v,
                       size_t data_len, gpt_error *err) {
    if (memchr(name, 0, len))
        return gpt_fail(err, GPT_ERR_INVALID, "safetensors header: a tensor name holds a NUL byte");
    t->name = malloc(len + 1);
    if (!t->name) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading a safetensors header");
    memcpy(t->name, name, len + 1);
    if (v->type != JSON_OBJECT)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': header entry is not an object", name);
    const json_value *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"),
                     *off = json_get(v, "data_offsets");
    if (!dt || dt->type != JSON_STRING)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': no \"dtype\" string", name);
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dt->str, dtypes[i].name) && strlen(dtypes[i].name) == dt->len) {
            t->dtype_name = dtypes[i].name;
            t->dtype = dtypes[i].dtype;
            t->elem_size = dtypes[i].size;
        }
    if (!t->dtype_name)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': unknown dtype '%.40s'", name, dt->str);
    if (!sh || sh->type != JSON_ARRAY)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': no \"shape\" array", name);
    if (sh->len > 64)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': shape has %u dimensions", name,
                        (unsigned)sh->len);
    t->ndim = (int)sh->len;
    t->shape = malloc((sh->len ? sh->len : 1) * sizeof *t->shape);
    if (!t->shape)
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading a safetensors header");
    t->numel = 1;
    for (size_t i = 0; i < sh->len; i++) {
        long long d;
        if (!json_get_int(&sh->items[i], 0, ST_MAX_INT, &d))
            return gpt_fail(err, GPT_ERR_INVALID,
                            "tensor '%s': shape entry %zu is not a non-negative integer", name, i);
        t->shape[i] = (size_t)d;
        if (!gpt_mul_size(t->numel, (size_t)d, &t->numel))
            return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': shape overflows", name);
    }
    long long b, e;
    if (!off || off->type != JSON_ARRAY || off->len != 2 ||
        !json_get_int(&off->items[0], 0, ST_MAX_INT, &b) ||
        !json_get_int(&off->items[1], 0, ST_MAX_INT, &e))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tensor '%s': \"data_offsets\" must be two non-negative integers", name);
    if (b > e)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tensor '%s': data_offsets [%lld, %lld) run backwards", name, b, e);
    if ((unsigned long long)e > data_len)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tensor '%s': data_offsets [%lld, %lld) are outside the %zu bytes of data "
                        "(truncated file?)",
                        name, b, e, data_len);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    size_t bytes;
    if (!gpt_mul_size(t->numel, t->elem_size, &bytes))
        return gpt_fail(err, GPT_ERR_INVALID, "tensor '%s': shape is too large", name);
    if (bytes != t->end - t->begin)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tensor '%s': its shape needs %zu bytes of %s but data_offsets [%lld, "
                        "%lld) hold %zu",
                        name, bytes, t->dtype_name, b, e, t->end - t->begin);
    return GPT_OK;
}

int st_parse(st_file *f, const void *buf, size_t n, gpt_error *err) {
    memset(f, 0, sizeof *f);
    const unsigned char *p = buf;
    if (n < 8)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%zu bytes is too short for a safetensors file (8-byte header length)", n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > n - 8)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "bad header length %llu: the file has only %zu bytes after it (truncated, "
                        "or not a safetensors file)",
                        (unsigned long long)hlen, n - 8);
    if (hlen > ST_MAX_HEADER)
        return gpt_fail(err, GPT_ERR_INVALID, "bad header length %llu: more than the %zu allowed",
                        (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2 || p[8] != '{')
        return gpt_fail(err, GPT_ERR_INVALID,
                        "bad header: it must be a JSON object right after the 8-byte length");
    json_value *root;
    gpt_error jerr = {0};
    if (json_parse((const char *)p + 8, (size_t)hlen, &root, &jerr))
        return gpt_fail(err, jerr.code, "bad safetensors header: %s", jerr.msg);
    int rc = GPT_OK;
    f->data = p + 8 + hlen;
    f->data_len = n - 8 - (size_t)hlen;
    if (root->type != JSON_OBJECT) {
        rc = gpt_fail(err, GPT_ERR_INVALID, "bad safetensors header: not a JSON object");
        goto done;
    }
    f->t = calloc(root->len ? root->len : 1, sizeof *f->t);
    if (!f->t) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading a safetensors header");
        goto done;
    }
    for (size_t i = 0; i < root->len; i++) {
        const json_value *key = json_key(root, i), *val = json_member(root, i);
        if (!strcmp(key->str, "__metadata__") && key->len == 12) {
            if (val->type != JSON_OBJECT) {
                rc =
                    gpt_fail(err, GPT_ERR_INVALID, "safetensors \"__metadata__\" is not an object");
                goto done;
            }
            continue;
        }
        rc = parse_entry(&f->t[f->n], key->str, key->len, val, f->data_len, err);
        f->n++; /* counted even on failure so st_free releases it */
        if (rc) goto done;
    }
    qsort(f->t, f->n, sizeof *f->t, by_name);
    for (size_t i = 1; i < f->n; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name)) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "tensor '%s' appears twice in the header",
                          f->t[i].name);
            goto done;
        }
    if (f->n > 1) {
        const st_tensor **o = malloc(f->n * sizeof *o);
        if (!o) {
            rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading a safetensors header");
            goto done;
        }
        for (size_t i = 0; i < f->n; i++)
            o[i] = &f->t[i];
        qsort(o, f->n, sizeof *o, by_offset);
        /* Sorted by start, two non-empty ranges overlap iff one starts
         * before the furthest end seen so far. */
        const st_tensor *furthest = NULL;
        for (size_t i = 0; i < f->n && !rc; i++) {
            if (o[i]->begin == o[i]->end) continue;
            if (furthest && o[i]->begin < furthest->end)
                rc = gpt_fail(err, GPT_ERR_INVALID,
                              "tensor '%s' (bytes [%zu, %zu)) overlaps tensor '%s' ([%zu, %zu))",
                              o[i]->name, o[i]->begin, o[i]->end, furthest->name, furthest->begin,
                              furthest->end);
            if (!furthest || o[i]->end > furthest->end) furthest = o[i];
        }
        free(o);
    }
done:
    json_free(root);
    if (rc) st_free(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key;
    key.name = (char *)name;
    return f->n ? bsearch(&key, f->t, f->n, sizeof *f->t, by_name) : NULL;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13); /* inf, NaN (payload kept) */
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else if (man) {
        /* Subnormal: value man * 2^-24, normalise for float. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void st_read_f32(const st_file *f, const st_tensor *t, size_t start, size_t count, float *dst) {
    const unsigned char *p = f->data + t->begin + start * t->elem_size;
    /* Byte-wise little-endian decoding: correct on any host, unaligned-safe,
     * and compiled to plain loads on little-endian machines. */
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < count; i++, p += 4) {
            uint32_t u =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < count; i++, p += 2)
            dst[i] = st_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        break;
    case ST_BF16:
        for (size_t i = 0; i < count; i++, p += 2)
            dst[i] = st_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
        break;
    default: GPT_ASSERT(!"st_read_f32 on a dtype that is not F32, F16 or BF16");
    }
}
