/*
 * serve_engine.c - the thread that owns the model in `gpt serve`.
 *
 * Each turn of its loop: drop what cancelled requests hold, admit queued
 * sequences into free slots (a prefill each, in arrival order), then one
 * decoding step over every running slot, then publish each slot's token
 * (stop strings, end of text, length) and wake the HTTP threads waiting on
 * those requests. Requests join and leave between steps; a step's shape
 * is always the slot capacity (see gpt_slots_decode), so a request's
 * tokens do not depend on what else runs beside it.
 *
 * When every running sequence is greedy and wants no log-probabilities,
 * the step chooses on the device and only ids come back; `chunk` steps
 * may then run per call (fewer host waits; a sequence that ends inside a
 * chunk drops the rest). Otherwise the logits come back and each slot
 * draws from them with its own sampler (seeded per choice as gpt_generate
 * seeds its rows), so a seed repeats whatever else is running.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/tools_internal.h"
#include "serve.h"

/* -------------------------------------------------------------- requests */

srv_req *srv_req_new(srv_params *p, int n_prompts, int **prompts, int *lens) {
    srv_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->refs = 1;
    pthread_cond_init(&r->cv, NULL);
    r->p = *p;
    memset(p->stop, 0, sizeof p->stop); /* taken over */
    r->n_prompts = n_prompts;
    r->prompts = prompts;
    r->lens = lens;
    r->n_seqs = n_prompts * p->n;
    r->seqs = calloc((size_t)r->n_seqs, sizeof *r->seqs);
    r->plp = calloc((size_t)n_prompts, sizeof *r->plp);
    r->ptop = calloc((size_t)n_prompts, sizeof *r->ptop);
    int ok = r->seqs && r->plp && r->ptop;
    size_t T = (size_t)(p->max_tokens > 0 ? p->max_tokens : 1);
    size_t K = (size_t)(p->logprobs > 0 ? p->logprobs : 0);
    for (int i = 0; ok && i < r->n_seqs; i++) {
        srv_seq *q = &r->seqs[i];
        q->r = r;
        q->index = i;
        q->prompt = i / p->n;
        q->slot = -1;
        q->toks = malloc(T * sizeof *q->toks);
        q->tok_end = malloc(T * sizeof *q->tok_end);
        ok = q->toks && q->tok_end;
        if (ok && p->logprobs >= 0) {
            q->lp = malloc(T * (1 + K) * sizeof *q->lp);
            q->top = malloc(T * (K ? K : 1) * sizeof *q->top);
            ok = q->lp && q->top;
        }
    }
    if (!ok) {
        srv_req_unref(r);
        return NULL;
    }
    return r;
}

void srv_req_unref(srv_req *r) {
    if (!r || --r->refs > 0) return;
    for (int i = 0; r->seqs && i < r->n_seqs; i++) {
        srv_seq *q = &r->seqs[i];
        free(q->toks), free(q->tok_end), free(q->lp), free(q->top), free(q->text);
        gpt_sampler_free(q->sampler);
    }
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts ? r->prompts[i] : NULL);
        if (r->plp) free(r->plp[i]);
        if (r->ptop) free(r->ptop[i]);
    }
    for (int i = 0; i < SRV_MAX_STOP; i++) free(r->p.stop[i]);
    free(r->seqs), free(r->prompts), free(r->lens), free(r->plp), free(r->ptop);
    pthread_cond_destroy(&r->cv);
    free(r);
}

int srv_submit(srv_engine *e, srv_req *r) {
    if (e->queued >= e->max_queue || e->stop) return 1;
    r->refs++;
    r->next = NULL;
    if (e->tail) e->tail->next = r;
    else e->head = r;
    e->tail = r;
    e->queued++;
    pthread_cond_signal(&e->wake);
    return 0;
}

int srv_seq_tokens_ready(const srv_seq *q) {
    if (q->finish) return q->n_vis;
    int n = q->n_toks;
    while (n > 0 && q->tok_end[n - 1] > q->ready) n--;
    return n;
}

/* ------------------------------------------------------------ publishing */

/* Bytes of s[0, n) that end on a whole UTF-8 character: an incomplete
 * sequence at the end waits for the bytes of the next token. */
static size_t utf8_whole(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char c = (unsigned char)s[i - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back + 1 && need > 1 ? i - 1 : n;
}

/* A sequence is done: its slot is free for the next one. cut: a stop
 * string cut its text, and only the tokens that start inside what is left
 * are reported. */
static void seq_finish(srv_engine *e, srv_seq *q, int why, int cut) {
    srv_req *r = q->r;
    q->finish = why;
    if (q->slot >= 0) {
        gpt_slot_clear(e->m, q->slot);
        e->running[q->slot] = NULL;
        e->n_running--;
        q->slot = -1;
    }
    gpt_sampler_free(q->sampler);
    q->sampler = NULL;
    q->ready = q->len;
    q->n_vis = q->n_toks;
    while (cut && q->n_vis > 0 && (q->n_vis > 1 ? q->tok_end[q->n_vis - 2] : 0) >= q->len)
        q->n_vis--;
    pthread_cond_broadcast(&r->cv);
    if (++r->n_done == r->n_seqs) srv_req_unref(r); /* the engine's reference */
}

/* Appends token tok (with its log-probabilities lp, top ids) to q and
 * applies the end conditions. Lock held. */
static void seq_take(srv_engine *e, srv_seq *q, int tok, const float *lp, const int *top) {
    srv_req *r = q->r;
    const srv_params *p = &r->p;
    int i = q->n_toks++, K = p->logprobs;
    q->toks[i] = tok;
    if (K >= 0) {
        memcpy(q->lp + (size_t)i * (1 + K), lp, (size_t)(1 + K) * sizeof *lp);
        if (K) memcpy(q->top + (size_t)i * K, top, (size_t)K * sizeof *top);
    }
    e->tokens++;
    int eos = tok == e->eot && !p->ignore_eos;
    size_t old = q->len, n = 0;
    const char *bytes = eos ? NULL : gpt_tokenizer_token(e->tok, tok, &n);
    if (bytes && n) {
        if (q->len + n > q->cap) {
            size_t cap = q->cap ? q->cap : 256;
            while (cap < q->len + n) cap *= 2;
            char *t = realloc(q->text, cap);
            if (!t) {
                snprintf(r->error, sizeof r->error, "out of memory for a completion's text");
                seq_finish(e, q, SRV_FINISH_STOP, 0);
                return;
            }
            q->text = t;
            q->cap = cap;
        }
        memcpy(q->text + q->len, bytes, n);
        q->len += n;
    }
    q->tok_end[i] = q->len;
    if (eos) {
        seq_finish(e, q, SRV_FINISH_STOP, 0);
        return;
    }
    /* A stop string that ends in the new bytes ends the text where it starts. */
    size_t cut = (size_t)-1;
    for (int s = 0; s < p->n_stop; s++) {
        size_t ls = strlen(p->stop[s]);
        if (ls > q->len) continue;
        size_t from = old + 1 > ls ? old + 1 - ls : 0;
        for (size_t a = from; a + ls <= q->len; a++)
            if (!memcmp(q->text + a, p->stop[s], ls)) {
                if (a < cut) cut = a;
                break;
            }
    }
    if (cut != (size_t)-1) {
        q->len = cut;
        seq_finish(e, q, SRV_FINISH_STOP, 1);
        return;
    }
    if (q->n_toks >= p->max_tokens || r->lens[q->prompt] + q->n_toks >= e->ctx) {
        seq_finish(e, q, SRV_FINISH_LENGTH, 0);
        return;
    }
    /* Hold back a tail that may still become a stop string. */
    size_t hold = 0;
    for (int s = 0; s < p->n_stop; s++) {
        size_t ls = strlen(p->stop[s]);
        for (size_t l = ls - 1 < q->len ? ls - 1 : q->len; l > hold; l--)
            if (!memcmp(q->text + q->len - l, p->stop[s], l)) {
                hold = l;
                break;
            }
    }
    size_t ready = utf8_whole(q->text, q->len - hold);
    if (ready > q->ready) q->ready = ready;
    /* A non-streamed request's thread only cares when a choice ends
     * (seq_finish wakes it): 64 threads woken every step cost as much as a
     * GPU's step. */
    if (p->stream) pthread_cond_broadcast(&r->cv);
}

/* Drops what cancelled requests hold: their running sequences and queued
 * ones. Lock held. */
static void reap(srv_engine *e) {
    for (int s = 0; s < e->n_slots; s++) {
        srv_seq *q = e->running[s];
        if (q && q->r->cancelled) seq_finish(e, q, SRV_FINISH_STOP, 0);
    }
    srv_req **pp = &e->head, *prev = NULL;
    while (*pp) {
        srv_req *r = *pp;
        if (!r->cancelled) {
            prev = r;
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (e->tail == r) e->tail = prev;
        e->queued--;
        int left = r->n_seqs - r->next_seq;
        for (int i = r->next_seq; i < r->n_seqs; i++) r->seqs[i].finish = SRV_FINISH_STOP;
        r->next_seq = r->n_seqs;
        r->n_done += left;
        pthread_cond_broadcast(&r->cv);
        if (left && r->n_done == r->n_seqs) srv_req_unref(r);
    }
}

/* ---------------------------------------------------------- computation */

/* Log-probabilities from a row of logits: lp[0] of token tok, then the K
 * most likely tokens (ids in top, lp[1..K]), most likely first. */
static void logprobs_of(const float *x, int V, int tok, int K, float *lp, int *top) {
    float mx = -INFINITY;
    for (int j = 0; j < V; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0;
    for (int j = 0; j < V; j++) sum += exp((double)(x[j] - mx));
    float lse = mx + (float)log(sum);
    lp[0] = x[tok] - lse;
    int n = 0;
    for (int j = 0; j < V && K; j++) {
        if (n == K && !(x[j] > x[top[K - 1]])) continue;
        int at = n < K ? n++ : K - 1;
        while (at > 0 && x[j] > x[top[at - 1]]) top[at] = top[at - 1], at--;
        top[at] = j;
    }
    for (int k = 0; k < K; k++) lp[1 + k] = x[top[k]] - lse;
}

static void fail_all(srv_engine *e, srv_seq **qs, int n, const char *msg) {
    for (int i = 0; i < n; i++) {
        srv_seq *q = qs[i];
        if (q->finish) continue;
        snprintf(q->r->error, sizeof q->r->error, "%s", msg);
        seq_finish(e, q, SRV_FINISH_STOP, 0);
    }
}

/* Prompt log-probabilities for echo: one full forward pass of the prompt. */
static int prompt_logprobs(srv_engine *e, srv_req *r, int pi, gpt_error *err) {
    int T = r->lens[pi], K = r->p.logprobs, V = e->V;
    if (T < 2) return GPT_OK;
    float *x = malloc((size_t)T * V * sizeof *x);
    float *lp = malloc((size_t)T * (1 + K) * sizeof *lp);
    int *top = malloc((size_t)T * (K ? K : 1) * sizeof *top);
    int rc = x && lp && top ? gpt_forward_logits(e->m, r->prompts[pi], 1, T, x, err)
                            : gpt_fail(err, GPT_ERR_NOMEM, "out of memory for prompt logprobs");
    for (int t = 1; t < T && !rc; t++)
        logprobs_of(x + (size_t)(t - 1) * V, V, r->prompts[pi][t], K, lp + (size_t)t * (1 + K),
                    top + (size_t)t * K);
    free(x);
    if (rc) {
        free(lp), free(top);
        return rc;
    }
    r->plp[pi] = lp;
    r->ptop[pi] = top;
    return GPT_OK;
}

/* Starts an admitted sequence in its slot: the prompt's prefill and the
 * first token (*tok, with lp/top). Returns 0, 1 if it needs no token
 * (echo only), or a gpt_status. */
static int seq_start(srv_engine *e, srv_seq *q, int *tok, float *lp, int *top, gpt_error *err) {
    srv_req *r = q->r;
    const srv_params *p = &r->p;
    gpt_sampler_opts so = p->sampler;
    so.seed = p->sampler.seed ^ ((uint64_t)q->index * 0x9E3779B97F4A7C15ull);
    int rc = gpt_sampler_create(&q->sampler, &so, e->V, err);
    if (!rc && p->echo && p->logprobs >= 0 && q->index % p->n == 0)
        rc = prompt_logprobs(e, r, q->prompt, err);
    if (rc || p->max_tokens == 0) return rc ? rc : 1;
    int need_logits = p->sampler.temperature > 0 || p->logprobs >= 0;
    float *row = e->logits + (size_t)q->slot * e->V;
    rc = gpt_slot_prefill(e->m, q->slot, r->prompts[q->prompt], r->lens[q->prompt],
                          need_logits ? row : NULL, need_logits ? NULL : tok, err);
    if (rc) return rc;
    if (need_logits) *tok = gpt_sample(q->sampler, row);
    if (*tok < 0) return gpt_fail(err, GPT_ERR_RUNTIME, "the model produced no finite logit");
    if (p->logprobs >= 0) logprobs_of(row, e->V, *tok, p->logprobs, lp, top);
    return GPT_OK;
}

/* Admits queued sequences into free slots (arrival order) and starts
 * them. Lock held on entry and exit, released around the model's work. */
static void admit(srv_engine *e) {
    int n = 0, K1 = 1 + SRV_MAX_LOGPROBS;
    for (int s = 0; s < e->n_slots && e->head; s++) {
        if (e->running[s]) continue;
        srv_req *r = e->head;
        srv_seq *q = &r->seqs[r->next_seq++];
        if (r->next_seq == r->n_seqs) {
            e->head = r->next;
            if (!e->head) e->tail = NULL;
            e->queued--;
        }
        q->slot = s;
        e->running[s] = q;
        e->n_running++;
        e->fresh[n++] = q;
    }
    if (!n) return;
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < n; i++) {
        srv_seq *q = e->fresh[i];
        int s = q->slot;
        e->rcs[i] = seq_start(e, q, &e->toks[s], e->lp + (size_t)s * K1,
                              e->top + (size_t)s * SRV_MAX_LOGPROBS, &e->errs[i]);
    }
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < n; i++) {
        srv_seq *q = e->fresh[i];
        int s = q->slot;
        if (e->rcs[i] == 1) {
            seq_finish(e, q, SRV_FINISH_LENGTH, 0); /* echo only */
        } else if (e->rcs[i]) {
            fail_all(e, &q, 1, e->errs[i].msg);
        } else {
            seq_take(e, q, e->toks[s], e->lp + (size_t)s * K1, e->top + (size_t)s * SRV_MAX_LOGPROBS);
        }
    }
}

/* One decoding call over every running sequence (`chunk` greedy steps on
 * the device where all are greedy). Lock held on entry and exit. */
static void step(srv_engine *e) {
    int n = 0, greedy = 1, k = e->chunk, K1 = 1 + SRV_MAX_LOGPROBS;
    srv_seq **qs = e->fresh;
    for (int s = 0; s < e->n_slots; s++) {
        srv_seq *q = e->running[s];
        if (!q) continue;
        const srv_params *p = &q->r->p;
        qs[n] = q;
        e->slots[n] = s;
        e->toks[n++] = q->toks[q->n_toks - 1];
        greedy &= p->sampler.temperature == 0 && p->logprobs < 0;
        if (p->max_tokens - q->n_toks < k) k = p->max_tokens - q->n_toks;
    }
    if (!n) return;
    if (k < 1) k = 1;
    gpt_error err = {0};
    int rc;
    pthread_mutex_unlock(&e->lock);
    if (greedy) {
        rc = gpt_slots_decode_greedy(e->m, n, e->slots, e->toks, k, e->ids, &err);
    } else {
        k = 1;
        rc = gpt_slots_decode(e->m, n, e->slots, e->toks, e->logits, &err);
        for (int i = 0; i < n && !rc; i++) {
            srv_seq *q = qs[i];
            int s = e->slots[i], K = q->r->p.logprobs;
            const float *row = e->logits + (size_t)s * e->V;
            int t = gpt_sample(q->sampler, row);
            e->ids[s] = t;
            if (t >= 0 && K >= 0)
                logprobs_of(row, e->V, t, K, e->lp + (size_t)s * K1, e->top + (size_t)s * SRV_MAX_LOGPROBS);
        }
    }
    pthread_mutex_lock(&e->lock);
    if (rc) {
        fail_all(e, qs, n, err.msg);
        return;
    }
    for (int j = 0; j < k; j++)
        for (int i = 0; i < n; i++) {
            srv_seq *q = qs[i];
            int s = e->slots[i], t = e->ids[(size_t)j * e->n_slots + s];
            if (q->finish) continue; /* ended earlier in the chunk, or cancelled */
            if (t < 0) {
                fail_all(e, &q, 1, "the model produced no finite logit (NaN or infinite weights?)");
                continue;
            }
            seq_take(e, q, t, e->lp + (size_t)s * K1, e->top + (size_t)s * SRV_MAX_LOGPROBS);
        }
}

/* The engine thread loads the model itself and is the only thread that
 * calls into it (models are not thread-safe). */
static int engine_init(srv_engine *e, gpt_error *err) {
    int rc = gpt_model_load(&e->m, e->path, &e->rt, err);
    if (rc) return rc;
    const gpt_config *c = gpt_model_config(e->m);
    e->V = c->vocab_size;
    /* Several greedy steps per call save host round trips where they cost
     * (a GPU); on the CPU they only delay the requests that wait to join. */
    if (!e->chunk) e->chunk = strcmp(gpt_model_device(e->m), "cpu") ? 4 : 1;
    if (!e->ctx) e->ctx = c->max_seq_len;
    if (e->ctx > c->max_seq_len)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "--ctx-size %d is more than the model's context (%d)", e->ctx,
                        c->max_seq_len);
    if ((rc = gpt_slots_begin(e->m, e->n_slots, e->ctx, e->fixed ? GPT_SLOTS_FIXED_SHAPE : 0, err)))
        return rc;
    size_t S = (size_t)e->n_slots, K1 = 1 + SRV_MAX_LOGPROBS;
    e->running = calloc(S, sizeof *e->running);
    e->fresh = calloc(S, sizeof *e->fresh);
    e->logits = malloc(S * (size_t)e->V * sizeof *e->logits);
    e->ids = malloc((size_t)e->chunk * S * sizeof *e->ids);
    e->slots = malloc(S * sizeof *e->slots);
    e->toks = malloc(S * sizeof *e->toks);
    e->rcs = malloc(S * sizeof *e->rcs);
    e->errs = calloc(S, sizeof *e->errs);
    e->lp = malloc(S * K1 * sizeof *e->lp);
    e->top = malloc(S * SRV_MAX_LOGPROBS * sizeof *e->top);
    if (!e->running || !e->fresh || !e->logits || !e->ids || !e->slots || !e->toks || !e->rcs ||
        !e->errs || !e->lp || !e->top)
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory for %d slots", e->n_slots);
    return GPT_OK;
}

static void *engine_main(void *arg) {
    srv_engine *e = arg;
    int rc = engine_init(e, &e->init_err);
    pthread_mutex_lock(&e->lock);
    e->init_done = rc ? -1 : 1;
    pthread_cond_broadcast(&e->wake);
    while (!rc) {
        reap(e);
        if (!e->head && !e->n_running) {
            if (e->stop) break;
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        if (!e->tok) { /* the HTTP side has not finished starting */
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        admit(e);
        if (e->hold) { /* the running sequences keep their slots; nothing advances */
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        step(e);
    }
    /* wait to be told to stop, then free the model in this thread */
    while (!e->stop) pthread_cond_wait(&e->wake, &e->lock);
    pthread_mutex_unlock(&e->lock);
    gpt_model_free(e->m);
    e->m = NULL;
    return NULL;
}

int srv_engine_start(srv_engine *e, const char *path, const gpt_runtime *rt, int n_slots,
                     int ctx, int max_queue, int chunk, int fixed, gpt_error *err) {
    memset(e, 0, sizeof *e);
    e->fixed = fixed;
    e->path = path;
    e->rt = *rt;
    e->ctx = ctx;
    e->n_slots = n_slots;
    e->max_queue = max_queue;
    e->chunk = chunk < 0 ? 0 : chunk;
    e->eot = -1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e))
        return gpt_fail(err, GPT_ERR_RUNTIME, "cannot start the engine thread");
    e->started = 1;
    pthread_mutex_lock(&e->lock);
    while (!e->init_done) pthread_cond_wait(&e->wake, &e->lock);
    pthread_mutex_unlock(&e->lock);
    if (e->init_done < 0) {
        *err = e->init_err;
        return err->code ? err->code : GPT_ERR_RUNTIME;
    }
    return GPT_OK;
}

void srv_engine_set_tokenizer(srv_engine *e, const gpt_tokenizer *tok) {
    pthread_mutex_lock(&e->lock);
    e->tok = tok;
    e->eot = gpt_tokenizer_eot(tok);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void srv_engine_hold(srv_engine *e, int on) {
    pthread_mutex_lock(&e->lock);
    e->hold = on;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void srv_cancel_all(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->hold = 0;
    for (srv_req *r = e->head; r; r = r->next) r->cancelled = 1;
    for (int s = 0; s < e->n_slots; s++)
        if (e->running[s]) e->running[s]->r->cancelled = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void srv_engine_free(srv_engine *e) {
    if (e->started) {
        pthread_mutex_lock(&e->lock);
        e->stop = 1;
        e->hold = 0;
        pthread_cond_broadcast(&e->wake);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->thread, NULL);
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->wake);
        e->started = 0;
    }
    free(e->running), free(e->fresh), free(e->logits), free(e->ids), free(e->slots);
    free(e->toks), free(e->rcs), free(e->errs), free(e->lp), free(e->top);
    e->running = NULL, e->fresh = NULL, e->logits = NULL, e->ids = NULL, e->slots = NULL;
    e->toks = NULL, e->rcs = NULL, e->errs = NULL, e->lp = NULL, e->top = NULL;
}
