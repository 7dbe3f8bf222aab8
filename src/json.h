/*
 * json.h - a small JSON reader for the files the library loads from outside
 * (encoder.json, config.json, safetensors headers, test fixtures). Safe on
 * hostile input: bounded nesting, every length checked, strings validated
 * and unescaped to UTF-8 (NUL bytes allowed, lengths kept), duplicate keys
 * refused, and memory bounded by the input: the whole tree is one
 * allocation of 16 bytes a value plus the unescaped strings, at most about
 * 9 bytes per input byte (an array of one-digit numbers, 2 input bytes a
 * value, is the worst case).
 */
#ifndef GPT_JSON_H
#define GPT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "gpt.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

/* 16 bytes. An object's items are its members as (key, value) pairs:
 * items[2i] is key i (a JSON_STRING), items[2i + 1] its value; use
 * json_key and json_member. */
typedef struct json_value json_value;
struct json_value {
    json_type type;
    uint32_t len; /* STRING: bytes; ARRAY: items; OBJECT: members */
    union {
        int boolean;       /* JSON_BOOL */
        double number;     /* JSON_NUMBER */
        char *str;         /* JSON_STRING: bytes, NUL-terminated */
        json_value *items; /* ARRAY: len values; OBJECT: 2 * len (key, value) */
    };
};

/* Maximum nesting of arrays and objects. */
#define JSON_MAX_DEPTH 64
/* Longest number text accepted (strtod's cost grows with the digits; no
 * real file writes more than a few dozen). */
#define JSON_MAX_NUMBER 1024

/* Parses n bytes holding exactly one JSON value (surrounding white space
 * allowed). Returns GPT_ERR_INVALID with the byte offset on bad input: bad
 * syntax, invalid UTF-8, a key twice in one object (readers disagree on
 * which one counts: Python's takes the last), more than 4 GiB of text. */
int json_parse(const char *text, size_t n, json_value **out, gpt_error *err);
void json_free(json_value *v);

/* Member of an object by key, or NULL (also when v is not an object). */
const json_value *json_get(const json_value *v, const char *key);
/* Key and value of member i (< len) of an object. */
static inline const json_value *json_key(const json_value *o, size_t i) { return &o->items[2 * i]; }
static inline const json_value *json_member(const json_value *o, size_t i) {
    return &o->items[2 * i + 1];
}
/* 1 and *out if v is a number holding an integer in [lo, hi]. */
int json_get_int(const json_value *v, long long lo, long long hi, long long *out);

#endif
