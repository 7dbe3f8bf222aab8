/*
 * slots_check.h - the checks of continuous batching (gpt_slots_*), shared
 * by the CPU test (tests/test_slots.c) and the CUDA one
 * (tests/gpu/test_cuda_slots.c): requests join a running batch as slots
 * free up and leave when done, and each one's tokens are exactly what it
 * gets alone in the same slot capacity, greedy or sampled with its seed; a
 * slot left out of steps keeps its state; slots are reused; a prefill and
 * a step each wait for the device once; bad slots, duplicates, empty
 * slots, full contexts and bad ids are refused; --check finds nothing
 * non-finite in the rows a step leaves untouched.
 *
 * Against gpt_generate (one prompt, batch 1): the same tokens where every
 * step's rows are computed as a single row is (the CPU's few-row products
 * take up to 8 rows); the caller says up to how many rows (gen_exact_cap),
 * and beyond it the agreement is only printed.
 */
#ifndef GPT_SLOTS_CHECK_H
#define GPT_SLOTS_CHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "model.h" /* white box: which step shapes ran */
#include "test.h"
#include "util.h"

enum { NREQ = 7, MAXN = 14, V = 97, CTX = 32 };

typedef struct {
    int prompt[9], len, n; /* n: tokens to generate */
    int sampled;           /* 0: greedy */
    uint64_t seed;
    int out[MAXN], n_out, slot;
    gpt_sampler *s;
} req;

static gpt_model *model;
static gpt_error err;

static void make_reqs(req *r) {
    gpt_rng g;
    gpt_rng_seed(&g, 5);
    for (int i = 0; i < NREQ; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].len = 1 + (int)gpt_rng_below(&g, 9);
        for (int t = 0; t < r[i].len; t++) r[i].prompt[t] = (int)gpt_rng_below(&g, V);
        r[i].n = 5 + (int)gpt_rng_below(&g, MAXN - 4);
        r[i].sampled = i % 2;
        r[i].seed = 100 + (uint64_t)i;
        r[i].slot = -1;
    }
}

/* What gpt_generate makes of request r alone. */
static int alone_generate(const req *r, int *out) {
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.max_new_tokens = r->n;
    o.sampler.temperature = r->sampled ? 0.9f : 0.0f;
    o.sampler.top_k = r->sampled ? 40 : 0;
    o.sampler.seed = r->seed;
    const int *p = r->prompt;
    int n_out = 0;
    if (gpt_generate(model, &p, &r->len, 1, &o, out, &n_out, NULL, &err)) return -1;
    return n_out;
}

static int take(req *r, int tok) {
    r->out[r->n_out++] = tok;
    return r->n_out == r->n;
}

/* Runs the requests through cap slots: each joins when a slot is free
 * (lowest first), one step at a time over the active slots, leaving when
 * it has its tokens. greedy_path: all-greedy batches decode on the device
 * (`steps` at a time); otherwise every row samples from the logits.
 * Returns 0 on success. */
static int run_batched(req *r, int nreq, int cap, int greedy_path, int steps, int flags) {
    if (gpt_slots_begin(model, cap, CTX, flags, &err)) return 1;
    float *logits = malloc((size_t)cap * V * sizeof(float));
    int *ids = malloc((size_t)cap * MAXN * sizeof(int));
    int *owner = malloc((size_t)cap * sizeof(int)), slots[64], toks[64];
    int next = 0, active = 0, rc = 0;
    for (int s = 0; s < cap; s++) owner[s] = -1;
    for (int i = 0; i < nreq; i++) {
        gpt_sampler_opts so = {r[i].sampled ? 0.9f : 0.0f, r[i].sampled ? 40 : 0, 1.0f, r[i].seed};
        r[i].n_out = 0;
        if (gpt_sampler_create(&r[i].s, &so, V, &err)) return 1;
    }
    while (!rc && (next < nreq || active)) {
        /* join */
        for (int s = 0; s < cap && next < nreq && !rc; s++) {
            if (owner[s] >= 0) continue;
            req *q = &r[next];
            int id;
            if (q->sampled) {
                rc = gpt_slot_prefill(model, s, q->prompt, q->len, logits, NULL, &err);
                id = gpt_sample(q->s, logits);
            } else {
                rc = gpt_slot_prefill(model, s, q->prompt, q->len, NULL, &id, &err);
            }
            q->slot = s;
            owner[s] = next++;
            active++;
            if (!rc && take(q, id)) owner[s] = -1, active--, gpt_slot_clear(model, s);
        }
        if (rc || !active) continue;
        int n = 0, all_greedy = 1, k = steps;
        for (int s = 0; s < cap; s++)
            if (owner[s] >= 0) {
                req *q = &r[owner[s]];
                slots[n] = s;
                toks[n++] = q->out[q->n_out - 1];
                all_greedy &= !q->sampled;
                if (q->n - q->n_out < k) k = q->n - q->n_out;
            }
        if (greedy_path && all_greedy) {
            rc = gpt_slots_decode_greedy(model, n, slots, toks, k, ids, &err);
            for (int j = 0; j < k && !rc; j++)
                for (int i = 0; i < n; i++) {
                    int s = slots[i];
                    if (owner[s] >= 0 && take(&r[owner[s]], ids[(size_t)j * cap + s]))
                        owner[s] = -1, active--, gpt_slot_clear(model, s);
                }
        } else {
            rc = gpt_slots_decode(model, n, slots, toks, logits, &err);
            for (int i = 0; i < n && !rc; i++) {
                int s = slots[i];
                req *q = &r[owner[s]];
                if (take(q, gpt_sample(q->s, logits + (size_t)s * V)))
                    owner[s] = -1, active--, gpt_slot_clear(model, s);
            }
        }
    }
    for (int i = 0; i < nreq; i++) gpt_sampler_free(r[i].s), r[i].s = NULL;
    free(logits);
    free(ids);
    free(owner);
    return rc;
}

static int same_as(const req *r, int nreq, int ref[][MAXN], const int *ref_n) {
    int bad = 0;
    for (int i = 0; i < nreq; i++)
        if (r[i].n_out != ref_n[i] || memcmp(r[i].out, ref[i], (size_t)ref_n[i] * sizeof(int))) {
            printf("     request %d (%s, slot %d): %d tokens, differs from alone\n", i,
                   r[i].sampled ? "sampled" : "greedy", r[i].slot, r[i].n_out);
            bad = 1;
        }
    return !bad;
}


/* Makes the test model on a device (every parameter from the same host
 * values whatever the device). */
static gpt_model *make_model(const char *device, int precision, int check) {
    gpt_config cfg = {V, 0, 40, 2, 4, 32, 0, 0};
    gpt_runtime rt = {0};
    rt.device = device;
    rt.precision = precision;
    rt.check = check;
    gpt_model *m;
    if (gpt_model_create(&m, &cfg, &rt, 11, &err)) return NULL;
    /* GPT-2's initialisation (std 0.02) leaves a small random model's
     * logits almost blind to the context: a corrupted cache would go
     * unnoticed. Matrices with unit-gain scales make every position count. */
    gpt_rng wr;
    gpt_rng_seed(&wr, 77);
    for (int i = 0; i < gpt_model_num_tensors(m); i++) {
        const gpt_tensor_info *ti = gpt_model_tensor(m, i);
        if (ti->ndim != 2) continue;
        float *w = malloc(ti->numel * sizeof(float)), sd = 1.5f / sqrtf((float)ti->shape[1]);
        for (size_t k = 0; k < ti->numel; k++) w[k] = sd * (2 * gpt_rng_float(&wr) - 1) * 1.7320508f;
        int rc = gpt_model_set_tensor(m, i, w, &err);
        free(w);
        if (rc) {
            gpt_model_free(m);
            return NULL;
        }
    }
    return m;
}

/* Every check on one device; the prefix names the cases. */
static void slot_checks(const char *device, int precision, int gen_exact_cap) {
    const char *pn = precision == GPT_PREC_BF16 ? "bf16" : "fp32";
    char what[64];
    snprintf(what, sizeof what, "%s %s", device, pn);
    model = make_model(device, precision, 0);
    if (!model) {
        test_begin("%s: model", what);
        EXPECT(0, "%s", err.msg);
        test_end();
        return;
    }
    req r[NREQ];
    make_reqs(r);
    int ref[NREQ][MAXN], ref_n[NREQ];

    test_begin("%s: reference: each request alone through gpt_generate", what);
    for (int i = 0; i < NREQ; i++) {
        ref_n[i] = alone_generate(&r[i], ref[i]);
        EXPECT(ref_n[i] == r[i].n, "request %d: %d tokens (%s)", i, ref_n[i], err.msg);
    }
    test_end();

    /* Capacities: few rows, and more rows than the few-row products take
     * (the CPU's sgemm above 8 rows, CUDA's cuBLASLt above 16). With
     * GPT_SLOTS_FIXED_SHAPE every step has all cap rows: exactly as alone. */
    static const int caps[] = {3, 12, 24};
    for (int c = 0; c < 3; c++) {
        int cap = caps[c];
        req alone[NREQ], batch[NREQ];
        int aref[NREQ][MAXN], aref_n[NREQ];
        test_begin("%s, %d fixed-shape slots: greedy and sampled requests joining and leaving "
                   "decode as each alone", what, cap);
        for (int i = 0; i < NREQ; i++) {
            alone[i] = r[i];
            EXPECT(run_batched(&alone[i], 1, cap, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
            aref_n[i] = alone[i].n_out;
            memcpy(aref[i], alone[i].out, sizeof aref[i]);
        }
        memcpy(batch, r, sizeof batch);
        EXPECT(run_batched(batch, NREQ, cap, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
        EXPECT(same_as(batch, NREQ, aref, aref_n), "batched tokens differ");
        test_end();
        /* Steps of a power of two rows (the default): the same arithmetic as
         * gpt_generate's single row where the backend's products compute a
         * row the same way at every size up to cap. */
        memcpy(batch, r, sizeof batch);
        int rc = run_batched(batch, NREQ, cap, 0, 1, 0);
        int agree = 0, total = 0;
        for (int i = 0; i < NREQ; i++) {
            for (int k = 0; k < ref_n[i] && k < batch[i].n_out && batch[i].out[k] == ref[i][k]; k++) agree++;
            total += ref_n[i];
        }
        /* at most NREQ slots are busy: steps of up to rmax rows */
        int rmax = 1;
        while (rmax < NREQ && rmax < cap) rmax *= 2;
        if (rmax > cap) rmax = cap;
        if (rmax <= gen_exact_cap) {
            test_begin("%s, %d slots, steps of a power of two rows: the same tokens as gpt_generate "
                       "alone", what, cap);
            EXPECT(rc == 0, "%s", err.msg);
            EXPECT(same_as(batch, NREQ, ref, ref_n), "tokens differ from gpt_generate's");
            test_end();
        } else {
            test_begin("%s, %d slots, steps of a power of two rows: every request completes", what, cap);
            EXPECT(rc == 0, "%s", err.msg);
            for (int i = 0; i < NREQ; i++) EXPECT(batch[i].n_out == r[i].n, "request %d: %d tokens", i, batch[i].n_out);
            test_end();
            printf("     %s, %d slots: %d of %d tokens as gpt_generate alone (batch 1) makes "
                   "them, before the first difference\n", what, cap, agree, total);
        }
    }

    test_begin("%s: greedy requests decoded on the device, 1 and 4 steps a call", what);
    {
        req g[NREQ], g1[NREQ];
        int gref[NREQ][MAXN], gref_n[NREQ], ng = 0;
        for (int i = 0; i < NREQ; i++)
            if (!r[i].sampled) g[ng++] = r[i];
        /* the reference: the same requests, each alone, through the logits */
        for (int i = 0; i < ng; i++) {
            g1[i] = g[i];
            EXPECT(run_batched(&g1[i], 1, 3, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
            gref_n[i] = g1[i].n_out;
            memcpy(gref[i], g1[i].out, sizeof gref[i]);
        }
        EXPECT(run_batched(g, ng, 3, 1, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
        EXPECT(same_as(g, ng, gref, gref_n), "steps of 1 differ");
        EXPECT(run_batched(g, ng, 3, 1, 4, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
        EXPECT(same_as(g, ng, gref, gref_n), "steps of 4 differ");
    }
    test_end();

    test_begin("%s: slots are reused: more requests than slots, each used more than once", what);
    {
        req a[NREQ], b[NREQ];
        int aref[NREQ][MAXN], aref_n[NREQ];
        for (int i = 0; i < NREQ; i++) {
            a[i] = r[i];
            EXPECT(run_batched(&a[i], 1, 2, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
            aref_n[i] = a[i].n_out;
            memcpy(aref[i], a[i].out, sizeof aref[i]);
        }
        memcpy(b, r, sizeof b);
        EXPECT(run_batched(b, NREQ, 2, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
        EXPECT(same_as(b, NREQ, aref, aref_n), "tokens differ");
        int uses[2] = {0, 0};
        for (int i = 0; i < NREQ; i++)
            if (b[i].slot >= 0 && b[i].slot < 2) uses[b[i].slot]++;
        EXPECT(uses[0] > 1 && uses[1] > 1, "slot uses %d %d", uses[0], uses[1]);
    }
    test_end();

    test_begin("%s: a slot left out of steps keeps its state while another decodes", what);
    {
        /* r[0] and r[2] (greedy) alone in 3 slots, then r[0] waiting in
         * slot 2 while r[2] decodes in slot 0 to its end */
        req a0 = r[0], a2 = r[2];
        EXPECT(run_batched(&a0, 1, 3, 1, 1, GPT_SLOTS_FIXED_SHAPE) == 0 &&
                   run_batched(&a2, 1, 3, 1, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s",
               err.msg);
        int id0, id2, s0 = 0, s2 = 2, got0[MAXN], got2[MAXN], ids[MAXN * 3];
        EXPECT(gpt_slots_begin(model, 3, CTX, GPT_SLOTS_FIXED_SHAPE, &err) == 0, "%s", err.msg);
        EXPECT(gpt_slot_prefill(model, s2, r[0].prompt, r[0].len, NULL, &id0, &err) == 0, "%s", err.msg);
        EXPECT(gpt_slot_prefill(model, s0, r[2].prompt, r[2].len, NULL, &id2, &err) == 0, "%s", err.msg);
        got0[0] = id0, got2[0] = id2;
        EXPECT(gpt_slots_decode_greedy(model, 1, &s0, &id2, r[2].n - 1, ids, &err) == 0, "%s", err.msg);
        for (int k = 1; k < r[2].n; k++) got2[k] = ids[(size_t)(k - 1) * 3 + s0];
        for (int k = 1; k < r[0].n; k++) {
            EXPECT(gpt_slots_decode_greedy(model, 1, &s2, &got0[k - 1], 1, ids, &err) == 0, "%s", err.msg);
            got0[k] = ids[s2];
        }
        EXPECT(!memcmp(got0, a0.out, (size_t)r[0].n * sizeof(int)), "the waiting slot's tokens differ");
        EXPECT(!memcmp(got2, a2.out, (size_t)r[2].n * sizeof(int)), "the decoding slot's tokens differ");
    }
    test_end();

    test_begin("%s: a step runs the busy slots rounded up to a power of two, or all of them "
               "when fixed", what);
    {
        /* ids12: gpt_slots_decode_greedy's ids are (steps, n_slots) */
        int id, ids12[12], s0 = 0, s5[2] = {0, 5}, s11 = 11, t2[2] = {3, 4}, t = 3;
        EXPECT(gpt_slots_begin(model, 12, CTX, 0, &err) == 0, "%s", err.msg);
        for (int s = 0; s < 12; s++)
            EXPECT(gpt_slot_prefill(model, s, r[0].prompt, r[0].len, NULL, &id, &err) == 0, "%s", err.msg);
        EXPECT(model->kv.rows_ready == 0 && !model->kv.decode_ready, "no step yet");
        EXPECT(gpt_slots_decode_greedy(model, 1, &s0, &t, 1, ids12, &err) == 0, "%s", err.msg);
        EXPECT(model->kv.rows_ready == 1u && !model->kv.decode_ready, "slot 0: rows %x", model->kv.rows_ready);
        float *lg = malloc((size_t)12 * V * sizeof(float));
        EXPECT(gpt_slots_decode(model, 2, s5, t2, lg, &err) == 0, "%s", err.msg);
        EXPECT(model->kv.rows_ready == (1u | 8u) && !model->kv.decode_ready, "slots 0, 5: rows %x",
               model->kv.rows_ready);
        EXPECT(gpt_slots_decode(model, 1, &s11, &t, lg, &err) == 0, "%s", err.msg);
        EXPECT(model->kv.decode_ready, "slot 11 of 12: the full step");
        EXPECT(gpt_slots_begin(model, 12, CTX, GPT_SLOTS_FIXED_SHAPE, &err) == 0, "%s", err.msg);
        model->kv.decode_ready = 0, model->kv.rows_ready = 0;
        EXPECT(gpt_slot_prefill(model, 0, r[0].prompt, r[0].len, NULL, &id, &err) == 0, "%s", err.msg);
        EXPECT(gpt_slots_decode(model, 1, &s0, &t, lg, &err) == 0, "%s", err.msg);
        EXPECT(model->kv.decode_ready && !model->kv.rows_ready, "fixed: slot 0 alone runs all 12 rows");
        free(lg);
    }
    test_end();

    test_begin("%s: each prefill and each step waits for the device once", what);
    int id, slot0 = 0, slot1 = 1, tok = 3, ids[8 * 4];
    float *logits = malloc((size_t)4 * V * sizeof(float));
    EXPECT(gpt_slots_begin(model, 4, CTX, 0, &err) == 0, "%s", err.msg);
    long w0 = gpt_backend_sync_count(model);
    EXPECT(gpt_slot_prefill(model, 0, r[0].prompt, r[0].len, NULL, &id, &err) == 0, "%s", err.msg);
    EXPECT(gpt_backend_sync_count(model) == w0 + 1, "prefill: %ld waits", gpt_backend_sync_count(model) - w0);
    EXPECT(gpt_slot_prefill(model, 1, r[1].prompt, r[1].len, logits, NULL, &err) == 0, "%s", err.msg);
    for (int rep = 0; rep < 3; rep++) { /* eager, then (CUDA) recorded and replayed */
        w0 = gpt_backend_sync_count(model);
        EXPECT(gpt_slots_decode(model, 1, &slot0, &tok, logits, &err) == 0, "%s", err.msg);
        EXPECT(gpt_backend_sync_count(model) == w0 + 1, "step: %ld waits", gpt_backend_sync_count(model) - w0);
    }
    w0 = gpt_backend_sync_count(model);
    EXPECT(gpt_slots_decode_greedy(model, 1, &slot1, &tok, 8, ids, &err) == 0, "%s", err.msg);
    EXPECT(gpt_backend_sync_count(model) == w0 + 1, "8 greedy steps: %ld waits", gpt_backend_sync_count(model) - w0);
    EXPECT(gpt_kv_length(model, 0) == r[0].len + 3 && gpt_kv_length(model, 1) == r[1].len + 8,
           "lengths %d %d", gpt_kv_length(model, 0), gpt_kv_length(model, 1));
    EXPECT(gpt_kv_length(model, 2) == 0 && gpt_slots_count(model) == 4, "slot 2 untouched");
    test_end();

    test_begin("%s: bad slots, duplicates, empty slots, full contexts and bad ids are refused", what);
    int two[2] = {0, 0}, toks2[2] = {1, 2}, badtok = V, full[CTX], big_prompt[CTX + 1] = {0};
    int three = 3, two_s = 2;
    for (int i = 0; i < CTX; i++) full[i] = i % V;
    EXPECT(gpt_slot_prefill(model, -1, r[0].prompt, 1, NULL, &id, &err) == GPT_ERR_INVALID, "slot -1");
    EXPECT(gpt_slot_prefill(model, 4, r[0].prompt, 1, NULL, &id, &err) == GPT_ERR_INVALID, "slot 4");
    EXPECT(strstr(err.msg, "slot 4") != NULL, "message: %s", err.msg);
    EXPECT(gpt_slot_prefill(model, 2, r[0].prompt, 0, NULL, &id, &err) == GPT_ERR_INVALID, "empty prompt");
    EXPECT(gpt_slot_prefill(model, 2, full, CTX, NULL, &id, &err) == 0, "a full slot: %s", err.msg);
    EXPECT(gpt_slot_prefill(model, 3, big_prompt, CTX + 1, NULL, &id, &err) == GPT_ERR_INVALID, "prompt > ctx");
    EXPECT(strstr(err.msg, "context") != NULL, "message: %s", err.msg);
    EXPECT(gpt_slot_prefill(model, 3, &badtok, 1, NULL, &id, &err) == GPT_ERR_INVALID, "token V");
    EXPECT(gpt_slots_decode(model, 2, two, toks2, logits, &err) == GPT_ERR_INVALID, "duplicate");
    EXPECT(strstr(err.msg, "twice") != NULL, "message: %s", err.msg);
    EXPECT(gpt_slots_decode(model, 1, &three, &tok, logits, &err) == GPT_ERR_INVALID, "empty slot");
    EXPECT(strstr(err.msg, "empty") != NULL, "message: %s", err.msg);
    EXPECT(gpt_slots_decode(model, 1, &two_s, &tok, logits, &err) == GPT_ERR_INVALID, "full context");
    EXPECT(gpt_slots_decode(model, 1, &slot0, &badtok, logits, &err) == GPT_ERR_INVALID, "token V");
    EXPECT(gpt_slots_decode(model, 0, &slot0, &tok, logits, &err) == GPT_ERR_INVALID, "no slots");
    EXPECT(gpt_slots_decode(model, 5, two, toks2, logits, &err) == GPT_ERR_INVALID, "5 of 4 slots");
    EXPECT(gpt_slots_decode_greedy(model, 1, &slot0, &tok, 0, ids, &err) == GPT_ERR_INVALID, "0 steps");
    EXPECT(gpt_slots_decode_greedy(model, 1, &slot0, &tok, CTX, ids, &err) == GPT_ERR_INVALID, "past ctx");
    EXPECT(gpt_kv_length(model, 0) == r[0].len + 3, "a refused call changed slot 0: %d", gpt_kv_length(model, 0));
    gpt_slot_clear(model, 0);
    EXPECT(gpt_slots_decode(model, 1, &slot0, &tok, logits, &err) == GPT_ERR_INVALID, "cleared slot");
    EXPECT(gpt_slots_begin(model, 4, 41, 0, &err) == GPT_ERR_INVALID, "ctx > maxT");
    EXPECT(gpt_slots_begin(model, 0, 8, 0, &err) == GPT_ERR_INVALID, "no slots");
    EXPECT(gpt_slots_begin(model, 4, 8, 2, &err) == GPT_ERR_INVALID, "unknown flag");
    gpt_model *fresh = make_model(device, precision, 0);
    EXPECT(fresh != NULL, "%s", err.msg);
    if (fresh) {
        EXPECT(gpt_slot_prefill(fresh, 0, r[0].prompt, 1, NULL, &id, &err) == GPT_ERR_INVALID, "before begin");
        EXPECT(gpt_slots_decode(fresh, 1, &slot0, &tok, logits, &err) == GPT_ERR_INVALID, "before begin");
    }
    gpt_model_free(fresh);
    test_end();
    free(logits);
    gpt_model_free(model);

    /* --check scans every op's whole output, the rows of absent slots
     * included: they must hold finite values (zeroed at gpt_slots_begin). */
    test_begin("%s: --check finds nothing wrong with a batch that is mostly empty", what);
    model = make_model(device, precision, 1);
    EXPECT(model != NULL, "%s", err.msg);
    if (model) {
        req c[2] = {r[0], r[1]};
        EXPECT(run_batched(c, 2, 12, 0, 1, GPT_SLOTS_FIXED_SHAPE) == 0, "%s", err.msg);
        EXPECT(c[0].n_out == r[0].n && c[1].n_out == r[1].n, "%d and %d tokens", c[0].n_out,
               c[1].n_out);
    }
    gpt_model_free(model);
    model = NULL;
    test_end();
}

#endif
