/*
 * serve_api.c - the OpenAI-style API of `gpt serve`: checking a
 * /v1/completions request as OpenAI's API does (unknown fields, wrong
 * types and out-of-range values are a 400 that names the field; a prompt
 * that does not fit the context is context_length_exceeded), and writing
 * completions, server-sent stream chunks, errors, /tokenize and
 * /detokenize. Request bodies are parsed with the library's JSON reader.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/tools_internal.h"
#include "serve.h"

/* ---------------------------------------------------------------- strings */

static int sb_reserve(srv_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

void sb_add(srv_buf *b, const char *s, size_t n) {
    if (!sb_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sb_str(srv_buf *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_printf(srv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    if (!sb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_free(srv_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 character at s (n bytes left), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0], cp;
    size_t len;
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

void sb_json_str(srv_buf *b, const char *s_, size_t n) {
    const unsigned char *s = (const unsigned char *)s_;
    sb_add(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') run++;
        if (run > i) {
            sb_add(b, (const char *)s + i, run - i);
            i = run;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2), i++;
        } else if (c < 0x20) {
            if (c == '\n') sb_add(b, "\\n", 2);
            else if (c == '\t') sb_add(b, "\\t", 2);
            else if (c == '\r') sb_add(b, "\\r", 2);
            else sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t len = utf8_char(s + i, n - i);
            if (len) sb_add(b, (const char *)s + i, len), i += len;
            else sb_add(b, "\xEF\xBF\xBD", 3), i++; /* U+FFFD for a broken byte */
        }
    }
    sb_add(b, "\"", 1);
}

/* Characters (as a decoder that replaces broken bytes counts them) in s[0, n). */
static long chars_in(const char *s, size_t n) {
    long c = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_char((const unsigned char *)s + i, n - i);
        i += len ? len : 1;
        c++;
    }
    return c;
}

/* A log-probability as JSON (-inf as -9999.0, as vLLM writes it). */
static void sb_lp(srv_buf *b, float x) {
    if (isfinite(x)) sb_printf(b, "%.6g", (double)x);
    else sb_str(b, "-9999.0");
}

/* ----------------------------------------------------------------- errors */

static void verror(srv_reply *out, int status, const char *type, const char *param,
                   const char *code, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    sb_free(&out->body);
    out->status = status;
    srv_buf *b = &out->body;
    sb_str(b, "{\"error\":{\"message\":");
    sb_json_str(b, msg, strlen(msg));
    sb_str(b, ",\"type\":");
    sb_json_str(b, type, strlen(type));
    sb_str(b, ",\"param\":");
    if (param) sb_json_str(b, param, strlen(param));
    else sb_str(b, "null");
    sb_str(b, ",\"code\":");
    if (code) sb_json_str(b, code, strlen(code));
    else sb_str(b, "null");
    sb_str(b, "}}");
}

void srv_error(srv_reply *out, int status, const char *type, const char *param,
               const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(out, status, type, param, code, fmt, ap);
    va_end(ap);
}

/* A 400 invalid_request_error; returns 1. */
static int bad(srv_reply *err, const char *param, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int bad(srv_reply *err, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(err, 400, "invalid_request_error", param, code, fmt, ap);
    va_end(ap);
    return 1;
}

static const char *type_name(const json_value *v) {
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an array",
                                        "an object"};
    return names[v->type];
}

/* Parses a body that must be a JSON object. */
static int parse_object(const char *body, size_t n, json_value **out, srv_reply *err) {
    gpt_error perr = {0};
    if (json_parse(body, n, out, &perr))
        return bad(err, NULL, NULL,
                   "We could not parse the JSON body of your request (%s). The body must be one "
                   "JSON object.",
                   perr.msg);
    if ((*out)->type != JSON_OBJECT) {
        int rc = bad(err, NULL, NULL, "The request body must be a JSON object, not %s.",
                     type_name(*out));
        json_free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

/* Refuses fields not in known (NULL-terminated), as OpenAI's API does. */
static int known_fields(const json_value *o, const char *const *known, srv_reply *err) {
    for (size_t i = 0; i < o->len; i++) {
        const json_value *key = json_key(o, i);
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = !strcmp(key->str, *k);
        if (!ok || strlen(key->str) != key->len)
            return bad(err, key->str, "unknown_parameter",
                       "Unrecognized request argument supplied: %s", key->str);
    }
    return 0;
}

static int bad_type(srv_reply *err, const char *field, const char *want, const json_value *v) {
    return bad(err, field, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
               field, want, type_name(v));
}

/* Optional integer field in [lo, hi]; absent or null keeps *out. */
static int get_int(const json_value *o, const char *f, long long lo, long long hi, long long *out,
                   srv_reply *err) {
    const json_value *v = json_get(o, f);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER || v->number != floor(v->number) || fabs(v->number) > 9007199254740992.0)
        return bad_type(err, f, "an integer", v);
    if (v->number < (double)lo)
        return bad(err, f, "invalid_value", "Invalid '%s': %.0f is less than the minimum of %lld.", f,
                   v->number, lo);
    if (v->number > (double)hi)
        return bad(err, f, "invalid_value", "Invalid '%s': %.0f is greater than the maximum of %lld.",
                   f, v->number, hi);
    *out = (long long)v->number;
    return 0;
}

static int get_num(const json_value *o, const char *f, double lo, double hi, double *out,
                   srv_reply *err) {
    const json_value *v = json_get(o, f);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER) return bad_type(err, f, "a number", v);
    if (!(v->number >= lo && v->number <= hi))
        return bad(err, f, "invalid_value", "Invalid '%s': %g is outside [%g, %g].", f, v->number, lo,
                   hi);
    *out = v->number;
    return 0;
}

static int get_bool(const json_value *o, const char *f, int *out, srv_reply *err) {
    const json_value *v = json_get(o, f);
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_BOOL) return bad_type(err, f, "a boolean", v);
    *out = v->boolean;
    return 0;
}

/* ---------------------------------------------------------------- prompts */

/* One prompt from a string (encoded; empty: <|endoftext|>) or from an
 * array of token ids. */
static int prompt_of(const srv_info *in, const json_value *v, int **ids, int *len,
                     srv_reply *err) {
    *ids = NULL;
    size_t n = 0;
    if (v->type == JSON_STRING) {
        gpt_error e = {0};
        if (gpt_tokenizer_encode(in->tok, v->str, v->len, 1, ids, &n, &e))
            return bad(err, "prompt", NULL, "Cannot tokenize the prompt: %s", e.msg);
        if (n == 0) {
            free(*ids);
            if (in->eot < 0)
                return bad(err, "prompt", NULL,
                           "The prompt is empty and this tokenizer has no <|endoftext|> to start "
                           "from.");
            *ids = malloc(sizeof **ids);
            if (!*ids) return bad(err, "prompt", NULL, "Out of memory.");
            (*ids)[0] = in->eot;
            n = 1;
        }
        for (size_t i = 0; i < n; i++)
            if ((*ids)[i] >= in->V) {
                int id = (*ids)[i];
                free(*ids);
                *ids = NULL;
                return bad(err, "prompt", "invalid_value",
                           "The prompt's text has token %d, outside this model's vocabulary of "
                           "%d (its tokenizer knows more tokens than the model).",
                           id, in->V);
            }
    } else {
        if (v->len == 0) return bad(err, "prompt", NULL, "A prompt of token ids must not be empty.");
        *ids = malloc(v->len * sizeof **ids);
        if (!*ids) return bad(err, "prompt", NULL, "Out of memory.");
        for (size_t i = 0; i < v->len; i++) {
            const json_value *t = &v->items[i];
            if (t->type != JSON_NUMBER || t->number != floor(t->number) || t->number < 0 ||
                t->number >= in->V) {
                free(*ids);
                *ids = NULL;
                return bad(err, "prompt", "invalid_value",
                           "Invalid token in 'prompt' at position %zu: token ids are integers "
                           "from 0 to %d.",
                           i, in->V - 1);
            }
            (*ids)[i] = (int)t->number;
        }
        n = v->len;
    }
    if (n > (size_t)in->ctx) {
        free(*ids);
        *ids = NULL;
        return bad(err, "prompt", "context_length_exceeded",
                   "This model's maximum context length is %d tokens, however your prompt has "
                   "%zu tokens. Please reduce the length of the prompt.",
                   in->ctx, n);
    }
    *len = (int)n;
    return 0;
}

/* prompt: a string, an array of strings, an array of ids, or an array of
 * arrays of ids. */
static int prompts_of(const srv_info *in, const json_value *o, int ***prompts, int **lens, int *np,
                      srv_reply *err) {
    const json_value *v = json_get(o, "prompt"), one = {JSON_STRING, 0, {.str = ""}};
    if (!v || v->type == JSON_NULL) v = &one; /* OpenAI's default: <|endoftext|> */
    const json_value *list = NULL;
    int count = 1;
    if (v->type == JSON_ARRAY) {
        if (v->len == 0) return bad(err, "prompt", NULL, "'prompt' must not be an empty array.");
        json_type t0 = v->items[0].type;
        if (t0 == JSON_STRING || t0 == JSON_ARRAY) {
            for (size_t i = 0; i < v->len; i++)
                if (v->items[i].type != t0)
                    return bad(err, "prompt", "invalid_type",
                               "'prompt' must be a string, an array of strings, an array of "
                               "token ids, or an array of arrays of token ids.");
            list = v;
            count = (int)(v->len < 1000000 ? v->len : 1000000);
        } else if (t0 != JSON_NUMBER) {
            return bad_type(err, "prompt", "a string or an array", &v->items[0]);
        }
    } else if (v->type != JSON_STRING) {
        return bad_type(err, "prompt", "a string or an array", v);
    }
    if (count > 256) return bad(err, "prompt", NULL, "At most 256 prompts per request, got %d.", count);
    *prompts = calloc((size_t)count, sizeof **prompts);
    *lens = calloc((size_t)count, sizeof **lens);
    *np = count;
    if (!*prompts || !*lens) return bad(err, NULL, NULL, "Out of memory.");
    for (int i = 0; i < count; i++)
        if (prompt_of(in, list ? &list->items[i] : v, &(*prompts)[i], &(*lens)[i], err)) return 1;
    return 0;
}

/* ---------------------------------------------------------------- request */

static const char *const completion_fields[] = {
    "model",  "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options",
    "logprobs", "echo", "stop", "presence_penalty", "frequency_penalty", "best_of",
    "logit_bias", "user", "seed", "suffix", "top_k", "ignore_eos", NULL};

/* Fields OpenAI has that change nothing at their default; anything else
 * is refused rather than silently ignored. */
static int unsupported(const json_value *o, srv_params *p, srv_reply *err) {
    double pen = 0;
    if (get_num(o, "presence_penalty", -2, 2, &pen, err)) return 1;
    if (pen != 0) return bad(err, "presence_penalty", NULL, "presence_penalty is not supported by this server.");
    if (get_num(o, "frequency_penalty", -2, 2, &pen, err)) return 1;
    if (pen != 0) return bad(err, "frequency_penalty", NULL, "frequency_penalty is not supported by this server.");
    long long best = p->n;
    if (get_int(o, "best_of", 1, 1 << 20, &best, err)) return 1;
    if (best != p->n) return bad(err, "best_of", NULL, "best_of other than n is not supported by this server.");
    const json_value *v = json_get(o, "logit_bias");
    if (v && v->type != JSON_NULL && v->type != JSON_OBJECT) return bad_type(err, "logit_bias", "an object", v);
    if (v && v->type == JSON_OBJECT && v->len) return bad(err, "logit_bias", NULL, "logit_bias is not supported by this server.");
    v = json_get(o, "suffix");
    if (v && v->type != JSON_NULL && v->type != JSON_STRING) return bad_type(err, "suffix", "a string", v);
    if (v && v->type == JSON_STRING && v->len) return bad(err, "suffix", NULL, "suffix is not supported by this server.");
    v = json_get(o, "user");
    if (v && v->type != JSON_NULL && v->type != JSON_STRING) return bad_type(err, "user", "a string", v);
    return 0;
}

static int stops_of(const json_value *o, srv_params *p, srv_reply *err) {
    const json_value *v = json_get(o, "stop");
    if (!v || v->type == JSON_NULL) return 0;
    const json_value *items = v;
    size_t n = 1;
    if (v->type == JSON_ARRAY) items = v->items, n = v->len;
    else if (v->type != JSON_STRING) return bad_type(err, "stop", "a string or an array of strings", v);
    if (n > SRV_MAX_STOP) return bad(err, "stop", NULL, "At most %d stop sequences, got %zu.", SRV_MAX_STOP, n);
    for (size_t i = 0; i < n; i++) {
        const json_value *s = &items[i];
        if (s->type != JSON_STRING) return bad_type(err, "stop", "a string or an array of strings", s);
        if (s->len == 0 || strlen(s->str) != s->len)
            return bad(err, "stop", NULL, "Stop sequences must be non-empty strings without NUL.");
        if (!(p->stop[p->n_stop++] = strdup(s->str))) return bad(err, NULL, NULL, "Out of memory.");
    }
    return 0;
}

static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static uint64_t counter;
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

static int params_of(const srv_info *in, const json_value *o, srv_params *p, srv_reply *err) {
    long long x;
    double d;
    memset(p, 0, sizeof *p);
    gpt_sampler_opts_default(&p->sampler);
    p->logprobs = -1;
    x = 16;
    if (get_int(o, "max_tokens", 0, in->ctx, &x, err)) return 1;
    p->max_tokens = (int)x;
    d = 1;
    if (get_num(o, "temperature", 0, 2, &d, err)) return 1;
    p->sampler.temperature = (float)d;
    d = 1;
    if (get_num(o, "top_p", 0, 1, &d, err)) return 1;
    if (d <= 0) return bad(err, "top_p", "invalid_value", "Invalid 'top_p': it must be in (0, 1].");
    p->sampler.top_p = (float)d;
    x = 0;
    if (get_int(o, "top_k", -1, 1 << 30, &x, err)) return 1;
    p->sampler.top_k = x < 0 ? 0 : (int)x;
    x = 1;
    if (get_int(o, "n", 1, 128, &x, err)) return 1;
    p->n = (int)x;
    if (get_bool(o, "stream", &p->stream, err) || get_bool(o, "echo", &p->echo, err) ||
        get_bool(o, "ignore_eos", &p->ignore_eos, err))
        return 1;
    const json_value *so = json_get(o, "stream_options");
    if (so && so->type != JSON_NULL) {
        static const char *const so_fields[] = {"include_usage", NULL};
        if (so->type != JSON_OBJECT) return bad_type(err, "stream_options", "an object", so);
        if (!p->stream) return bad(err, "stream_options", NULL, "stream_options is only allowed when stream is true.");
        if (known_fields(so, so_fields, err) || get_bool(so, "include_usage", &p->include_usage, err))
            return 1;
    }
    x = -1;
    if (get_int(o, "logprobs", 0, SRV_MAX_LOGPROBS, &x, err)) return 1;
    p->logprobs = (int)x;
    const json_value *sv = json_get(o, "seed");
    p->sampler.seed = random_seed();
    if (sv && sv->type != JSON_NULL) {
        if (get_int(o, "seed", -9007199254740992LL, 9007199254740992LL, &x, err)) return 1;
        p->sampler.seed = (uint64_t)x;
    }
    if (p->max_tokens == 0 && !p->echo)
        return bad(err, "max_tokens", "invalid_value", "Invalid 'max_tokens': 0 is only allowed with echo.");
    if (unsupported(o, p, err) || stops_of(o, p, err)) return 1;
    return 0;
}

int srv_parse_completion(const srv_info *in, const char *body, size_t n, srv_req **out,
                         srv_reply *err) {
    *out = NULL;
    json_value *o = NULL;
    if (parse_object(body, n, &o, err)) return 1;
    srv_params p;
    memset(&p, 0, sizeof p);
    int **prompts = NULL, *lens = NULL, np = 0, rc = 1;
    const json_value *mv = json_get(o, "model");
    if (known_fields(o, completion_fields, err)) goto done;
    if (mv && mv->type != JSON_NULL && mv->type != JSON_STRING) {
        bad_type(err, "model", "a string", mv);
        goto done;
    }
    if (mv && mv->type == JSON_STRING && strcmp(mv->str, in->model_name)) {
        srv_error(err, 404, "invalid_request_error", "model", "model_not_found",
                  "The model `%s` does not exist (this server serves `%s`).", mv->str,
                  in->model_name);
        goto done;
    }
    if (params_of(in, o, &p, err) || prompts_of(in, o, &prompts, &lens, &np, err)) goto done;
    if ((long long)np * p.n > 256) {
        bad(err, "n", NULL, "A request may ask for at most 256 completions (prompts x n), got %lld.",
            (long long)np * p.n);
        goto done;
    }
    for (int i = 0; i < np; i++)
        if (lens[i] + p.max_tokens > in->ctx) {
            bad(err, "max_tokens", "context_length_exceeded",
                "This model's maximum context length is %d tokens, however you requested %d "
                "tokens (%d in your prompt; %d for the completion). Please reduce your prompt; "
                "or completion length.",
                in->ctx, lens[i] + p.max_tokens, lens[i], p.max_tokens);
            goto done;
        }
    *out = srv_req_new(&p, np, prompts, lens);
    if (!*out) {
        srv_error(err, 500, "server_error", NULL, NULL, "Out of memory for the request.");
        goto done;
    }
    prompts = NULL, lens = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    (*out)->created = (long long)ts.tv_sec;
    snprintf((*out)->id, sizeof (*out)->id, "cmpl-%016llx%08lx",
             (unsigned long long)random_seed(), (unsigned long)ts.tv_nsec);
    rc = 0;
done:
    for (int i = 0; prompts && i < np; i++) free(prompts[i]);
    free(prompts);
    free(lens);
    for (int i = 0; i < SRV_MAX_STOP; i++) free(p.stop[i]);
    json_free(o);
    return rc;
}

/* --------------------------------------------------------------- responses */

static void token_str(const srv_info *in, srv_buf *b, int id) {
    size_t n = 0;
    const char *s = gpt_tokenizer_token(in->tok, id, &n);
    sb_json_str(b, s ? s : "", s ? n : 0);
}

/* Top alternatives of one position as {"token": lp, ...}, the chosen one
 * added when it is not among them (OpenAI gives up to logprobs + 1). */
static void top_dict(const srv_info *in, srv_buf *b, int chosen, const float *lp, const int *top,
                     int K) {
    sb_str(b, "{");
    int has = 0;
    for (int k = 0; k < K; k++) {
        if (k) sb_str(b, ",");
        token_str(in, b, top[k]);
        sb_str(b, ":");
        sb_lp(b, lp[1 + k]);
        has |= top[k] == chosen;
    }
    if (!has) {
        if (K) sb_str(b, ",");
        token_str(in, b, chosen);
        sb_str(b, ":");
        sb_lp(b, lp[0]);
    }
    sb_str(b, "}");
}

/* The logprobs object of choice q for its tokens [t0, t1), after the
 * prompt's when with_prompt (echo: the first has no log-probability).
 * text_offset counts characters from the start of the choice's text (the
 * prompt's included with echo). */
static void logprobs_json(const srv_info *in, const srv_req *r, const srv_seq *q, int t0, int t1,
                          int with_prompt, srv_buf *b) {
    int K = r->p.logprobs, P = with_prompt ? r->lens[q->prompt] : 0;
    const int *pt = r->prompts[q->prompt];
    const float *plp = r->plp[q->prompt];
    const int *ptop = r->ptop[q->prompt];
    sb_str(b, "{\"tokens\":[");
    for (int i = 0; i < P; i++) sb_str(b, i ? "," : ""), token_str(in, b, pt[i]);
    for (int i = t0; i < t1; i++) sb_str(b, i > t0 || P ? "," : ""), token_str(in, b, q->toks[i]);
    sb_str(b, "],\"token_logprobs\":[");
    for (int i = 0; i < P; i++) {
        sb_str(b, i ? "," : "");
        if (i && plp) sb_lp(b, plp[(size_t)i * (1 + K)]);
        else sb_str(b, "null");
    }
    for (int i = t0; i < t1; i++) sb_str(b, i > t0 || P ? "," : ""), sb_lp(b, q->lp[(size_t)i * (1 + K)]);
    sb_str(b, "],\"top_logprobs\":[");
    for (int i = 0; i < P; i++) {
        sb_str(b, i ? "," : "");
        if (i && plp) top_dict(in, b, pt[i], plp + (size_t)i * (1 + K), ptop + (size_t)i * K, K);
        else sb_str(b, "null");
    }
    for (int i = t0; i < t1; i++) {
        sb_str(b, i > t0 || P ? "," : "");
        top_dict(in, b, q->toks[i], q->lp + (size_t)i * (1 + K), q->top + (size_t)i * K, K);
    }
    sb_str(b, "],\"text_offset\":[");
    long base = 0;
    for (int i = 0; r->p.echo && i < r->lens[q->prompt]; i++) {
        size_t n = 0;
        const char *s = gpt_tokenizer_token(in->tok, pt[i], &n);
        if (i < P) sb_printf(b, "%s%ld", i ? "," : "", base);
        base += s ? chars_in(s, n) : 0;
    }
    for (int i = t0; i < t1; i++) {
        size_t start = i ? q->tok_end[i - 1] : 0;
        if (start > q->len) start = q->len;
        sb_printf(b, "%s%ld", i > t0 || P ? "," : "", base + chars_in(q->text ? q->text : "", start));
    }
    sb_str(b, "]}");
}

static const char *finish_name(int f) {
    return f == SRV_FINISH_STOP ? "\"stop\"" : f == SRV_FINISH_LENGTH ? "\"length\"" : "null";
}

/* The prompt's text (echo). */
static void prompt_text(const srv_info *in, const srv_req *r, int pi, srv_buf *b) {
    char *t = NULL;
    size_t n = 0;
    gpt_error e;
    if (gpt_tokenizer_decode(in->tok, r->prompts[pi], (size_t)r->lens[pi], &t, &n, &e)) n = 0;
    sb_add(b, t ? t : "", n);
    free(t);
}

static void usage_json(const srv_req *r, srv_buf *b) {
    long long pt = 0, ct = 0;
    for (int i = 0; i < r->n_prompts; i++) pt += r->lens[i];
    for (int i = 0; i < r->n_seqs; i++) ct += r->seqs[i].n_toks;
    sb_printf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}", pt,
              ct, pt + ct);
}

static void head_json(const srv_info *in, const srv_req *r, srv_buf *b) {
    sb_printf(b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":", r->id,
              r->created);
    sb_json_str(b, in->model_name, strlen(in->model_name));
}

void srv_completion_json(const srv_info *in, srv_req *r, srv_buf *b) {
    head_json(in, r, b);
    sb_str(b, ",\"choices\":[");
    for (int i = 0; i < r->n_seqs; i++) {
        const srv_seq *q = &r->seqs[i];
        srv_buf text = {0};
        if (r->p.echo) prompt_text(in, r, q->prompt, &text);
        sb_add(&text, q->text ? q->text : "", q->len);
        sb_str(b, i ? ",{\"text\":" : "{\"text\":");
        sb_json_str(b, text.s ? text.s : "", text.len);
        sb_free(&text);
        sb_printf(b, ",\"index\":%d,\"logprobs\":", q->index);
        if (r->p.logprobs >= 0) logprobs_json(in, r, q, 0, q->n_vis, r->p.echo, b);
        else sb_str(b, "null");
        sb_printf(b, ",\"finish_reason\":%s}", finish_name(q->finish));
    }
    sb_str(b, "],\"usage\":");
    usage_json(r, b);
    sb_str(b, "}");
}

int srv_stream_events(const srv_info *in, srv_req *r, srv_stream *st, srv_buf *b) {
    if (st->done_sent) return 1;
    for (int i = 0; i < r->n_seqs; i++) {
        const srv_seq *q = &r->seqs[i];
        int t1 = srv_seq_tokens_ready(q), t0 = st->tsent[i];
        size_t ready = q->ready < q->len ? q->ready : q->len;
        int fin = q->finish && !st->fin_sent[i] && ready == q->len;
        int echo = r->p.echo && !st->echoed[i] && (q->n_toks || q->finish);
        if (ready <= st->sent[i] && t1 <= t0 && !fin && !echo) continue;
        sb_str(b, "data: ");
        head_json(in, r, b);
        sb_str(b, ",\"choices\":[{\"text\":");
        srv_buf text = {0};
        if (echo) prompt_text(in, r, q->prompt, &text);
        if (ready > st->sent[i]) sb_add(&text, q->text + st->sent[i], ready - st->sent[i]);
        sb_json_str(b, text.s ? text.s : "", text.len);
        sb_free(&text);
        sb_printf(b, ",\"index\":%d,\"logprobs\":", q->index);
        if (r->p.logprobs >= 0) logprobs_json(in, r, q, t0, t1, echo, b);
        else sb_str(b, "null");
        sb_printf(b, ",\"finish_reason\":%s}]%s}\n\n", fin ? finish_name(q->finish) : "null",
                  r->p.include_usage ? ",\"usage\":null" : "");
        st->sent[i] = ready;
        st->tsent[i] = t1;
        st->fin_sent[i] |= fin;
        st->echoed[i] |= echo;
    }
    if (r->error[0]) {
        sb_str(b, "data: {\"error\":{\"message\":");
        sb_json_str(b, r->error, strlen(r->error));
        sb_str(b, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
    }
    if (r->n_done < r->n_seqs && !r->error[0]) return 0;
    for (int i = 0; i < r->n_seqs && !r->error[0]; i++)
        if (!st->fin_sent[i]) return 0;
    if (r->p.include_usage) {
        sb_str(b, "data: ");
        head_json(in, r, b);
        sb_str(b, ",\"choices\":[],\"usage\":");
        usage_json(r, b);
        sb_str(b, "}\n\n");
    }
    sb_str(b, "data: [DONE]\n\n");
    st->done_sent = 1;
    return 1;
}

/* ------------------------------------------------------- tokenize/detokenize */

void srv_tokenize(const srv_info *in, const char *body, size_t n, srv_reply *out) {
    static const char *const fields[] = {"model", "prompt", "content", "add_special_tokens", NULL};
    srv_reply *err = out;
    json_value *o = NULL;
    if (parse_object(body, n, &o, err) || known_fields(o, fields, err)) goto done;
    const json_value *v = json_get(o, "prompt");
    if (!v) v = json_get(o, "content");
    if (!v || v->type != JSON_STRING) {
        if (v) bad_type(err, "prompt", "a string", v);
        else bad(err, "prompt", NULL, "'prompt' (the text to tokenize) is required.");
        goto done;
    }
    int *ids = NULL;
    size_t k = 0;
    gpt_error e = {0};
    if (gpt_tokenizer_encode(in->tok, v->str, v->len, 1, &ids, &k, &e)) {
        bad(err, "prompt", NULL, "Cannot tokenize: %s", e.msg);
        goto done;
    }
    sb_free(&out->body);
    out->status = 200;
    sb_printf(&out->body, "{\"count\":%zu,\"max_model_len\":%d,\"tokens\":[", k, in->ctx);
    for (size_t i = 0; i < k; i++) sb_printf(&out->body, i ? ",%d" : "%d", ids[i]);
    sb_str(&out->body, "]}");
    free(ids);
done:
    json_free(o);
}

void srv_detokenize(const srv_info *in, const char *body, size_t n, srv_reply *out) {
    static const char *const fields[] = {"model", "tokens", NULL};
    srv_reply *err = out;
    json_value *o = NULL;
    int *ids = NULL;
    if (parse_object(body, n, &o, err) || known_fields(o, fields, err)) goto done;
    const json_value *v = json_get(o, "tokens");
    if (!v || v->type != JSON_ARRAY) {
        if (v) bad_type(err, "tokens", "an array of token ids", v);
        else bad(err, "tokens", NULL, "'tokens' (the ids to turn into text) is required.");
        goto done;
    }
    ids = malloc((v->len ? v->len : 1) * sizeof *ids);
    if (!ids) {
        srv_error(out, 500, "server_error", NULL, NULL, "Out of memory.");
        goto done;
    }
    for (size_t i = 0; i < v->len; i++) {
        const json_value *t = &v->items[i];
        if (t->type != JSON_NUMBER || t->number != floor(t->number) || t->number < 0 ||
            t->number >= in->V) {
            bad(err, "tokens", "invalid_value", "Invalid token at position %zu: token ids are integers from 0 to %d.",
                i, in->V - 1);
            goto done;
        }
        ids[i] = (int)t->number;
    }
    char *text = NULL;
    size_t len = 0;
    gpt_error e = {0};
    if (gpt_tokenizer_decode(in->tok, ids, v->len, &text, &len, &e)) {
        bad(err, "tokens", NULL, "Cannot detokenize: %s", e.msg);
        goto done;
    }
    sb_free(&out->body);
    out->status = 200;
    sb_str(&out->body, "{\"prompt\":");
    sb_json_str(&out->body, text, len);
    sb_str(&out->body, "}");
    free(text);
done:
    free(ids);
    json_free(o);
}
