/*
 * json.h - a small JSON reader for the files the library loads from outside
 * (encoder.json, config.json, safetensors headers, test fixtures). Safe on
 * hostile input: bounded nesting, every length checked, strings validated
 * and unescaped to UTF-8 (NUL bytes allowed, lengths kept).
 */
#ifndef GPT_JSON_H
#define GPT_JSON_H

#include <stddef.h>
#include "gpt.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    int boolean;       /* JSON_BOOL */
    double number;     /* JSON_NUMBER */
    char *str;         /* JSON_STRING: bytes, NUL-terminated */
    size_t len;        /* JSON_STRING: bytes; ARRAY/OBJECT: items */
    json_value *items; /* ARRAY/OBJECT: len values */
    char **keys;       /* OBJECT: len keys, NUL-terminated */
    size_t *key_lens;  /* OBJECT: byte length of each key */
};

/* Maximum nesting of arrays and objects. */
#define JSON_MAX_DEPTH 64

/* Parses n bytes holding exactly one JSON value (surrounding white space
 * allowed). Returns GPT_ERR_INVALID with the byte offset on bad input. */
int json_parse(const char *text, size_t n, json_value **out, gpt_error *err);
void json_free(json_value *v);

/* Member of an object by key, or NULL (also when v is not an object). */
const json_value *json_get(const json_value *v, const char *key);
/* 1 and *out if v is a number holding an integer in [lo, hi]. */
int json_get_int(const json_value *v, long long lo, long long hi, long long *out);

#endif
