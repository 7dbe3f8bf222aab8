/*
 * cpu_attention.c - causal multi-head self-attention on the CPU.
 *
 * Training and full forward passes work on one (batch row, head) per
 * pool task with matrix products: S = Q K^T / sqrt(HS) in a (T,T)
 * per-thread scratch, a masked softmax in place, O = P V. Only each
 * query's log-sum-exp (lse) is kept; the backward recomputes P from it
 * (as flash attention does, Dao et al. 2022) and forms
 *   dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = dS K / sqrt(HS),  dK = dS^T Q / sqrt(HS),  dV = P^T dO.
 * The products run on the task's thread (a product called from a pool task
 * does not fan out again).
 *
 * KV-cache attention: prefill in blocks of queries with the same matrix
 * products, decoding one task per chunk of cache positions with plain
 * loops (below).
 *
 * qkv (B,T,3C) holds [q | k | v]; head h uses columns [h*HS, (h+1)*HS).
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"
#include "cpu_pool.h"

typedef struct {
    gpt_backend *be;
    float *out, *lse, *dqkv, *kcache, *vcache;
    const float *qkv, *dout, *o, *lse_in;
    const int *pos0;
    int B, T, C, NH, Tq, S;
} att_job;

/* Softmax of row t of S over columns 0..t in place, zeroing the masked
 * columns; returns the row's log-sum-exp. */
static inline float causal_softmax_row(float *s, int t, int T) {
    float maxv = -INFINITY;
    for (int j = 0; j <= t; j++) maxv = s[j] > maxv ? s[j] : maxv;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= t; j++) {
        s[j] = cpu_expf(s[j] - maxv);
        sum += s[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j <= t; j++) s[j] *= inv;
    for (int j = t + 1; j < T; j++) s[j] = 0;
    return maxv + logf(sum);
}

CPU_CLONES static void att_fwd_head(void *ctx, int task) {
    const att_job *job = ctx;
    float *out = job->out, *lse = job->lse;
    const float *qkv = job->qkv;
    int T = job->T, C = job->C, NH = job->NH, b = task / NH, h = task % NH;
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    {
        {
            float *S = cpu_scratch(job->be); /* (T,T) */
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * HS;
            const float *k = q + C, *v = q + 2 * C;
            cpu_sgemm(NULL, 0, 1, T, T, HS, scale, q, C3, k, C3, 0.0f, S, T);
            for (int t = 0; t < T; t++) {
                float l = causal_softmax_row(S + (size_t)t * T, t, T);
                if (lse) lse[((size_t)b * NH + h) * T + t] = l;
            }
            cpu_sgemm(NULL, 0, 0, T, HS, T, 1.0f, S, T, v, C3, 0.0f,
                      out + (size_t)b * T * C + (size_t)h * HS, C);
        }
    }
}

void cpu_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                           int C, int NH) {
    att_job j = {.be = be, .out = out, .lse = lse, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    cpu_parallel(B * NH, att_fwd_head, &j);
}

CPU_CLONES static void att_bwd_head(void *ctx, int task) {
    const att_job *job = ctx;
    float *dqkv = job->dqkv;
    const float *dout = job->dout, *qkv = job->qkv, *out = job->o, *lse = job->lse_in;
    int T = job->T, C = job->C, NH = job->NH, b = task / NH, h = task % NH;
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    {
        {
            float *P = cpu_scratch(job->be), *dS = P + (size_t)T * T; /* (T,T) each */
            size_t head = (size_t)b * T * C3 + (size_t)h * HS;
            const float *q = qkv + head, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + head, *dk = dq + C, *dv = dq + 2 * C;
            const float *dO = dout + (size_t)b * T * C + (size_t)h * HS;
            const float *O = out + (size_t)b * T * C + (size_t)h * HS;
            const float *l = lse + ((size_t)b * NH + h) * T;
            cpu_sgemm(NULL, 0, 1, T, T, HS, scale, q, C3, k, C3, 0.0f, P, T);
            cpu_sgemm(NULL, 0, 1, T, T, HS, 1.0f, dO, C, v, C3, 0.0f, dS, T);
            for (int t = 0; t < T; t++) {
                float *p = P + (size_t)t * T, *ds = dS + (size_t)t * T;
                const float *dot = dO + (size_t)t * C, *o = O + (size_t)t * C;
                float D = 0; /* = sum_j p_j dp_j */
                for (int d = 0; d < HS; d++) D += dot[d] * o[d];
                float lt = l[t];
#pragma omp simd
                for (int j = 0; j <= t; j++) {
                    p[j] = cpu_expf(p[j] - lt);
                    ds[j] = p[j] * (ds[j] - D) * scale;
                }
                for (int j = t + 1; j < T; j++) p[j] = ds[j] = 0;
            }
            cpu_sgemm(NULL, 0, 0, T, HS, T, 1.0f, dS, T, k, C3, 0.0f, dq, C3);
            cpu_sgemm(NULL, 1, 0, T, HS, T, 1.0f, dS, T, q, C3, 0.0f, dk, C3);
            cpu_sgemm(NULL, 1, 0, T, HS, T, 1.0f, P, T, dO, C, 0.0f, dv, C3);
        }
    }
}

void cpu_attention_backward(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                            const void *out, const float *lse, int B, int T, int C, int NH) {
    att_job j = {.be = be, .dqkv = dqkv, .dout = dout, .qkv = qkv, .o = out, .lse_in = lse,
                 .B = B, .T = T, .C = C, .NH = NH};
    cpu_parallel(B * NH, att_bwd_head, &j);
}

/* out = softmax(q . keys[0..n) * scale) @ values, rows `stride` apart. */
static inline void attend(float *out, const float *q, const float *keys, const float *values,
                   size_t stride, int n, int HS, float scale, float *att) {
    float maxv = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *kj = keys + (size_t)j * stride;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < HS; d++) s += q[d] * kj[d];
        s *= scale;
        att[j] = s;
        maxv = s > maxv ? s : maxv;
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        att[j] = cpu_expf(att[j] - maxv);
        sum += att[j];
    }
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)HS * sizeof(float));
    for (int j = 0; j < n; j++) {
        const float *vj = values + (size_t)j * stride;
        float w = att[j] * inv;
#pragma omp simd
        for (int d = 0; d < HS; d++) out[d] += w * vj[d];
    }
}

/* Task `task`'s position in the cache (-1: none, the query writes
 * nothing) and its output. A thread that finishes after the call returned
 * may read a pos0 rewritten since: the position stays within the cache. */
static long kv_query_pos(const att_job *j, int task, float **out) {
    int C = j->C, NH = j->NH, Tq = j->Tq, HS = C / NH;
    int b = task / (NH * Tq), h = task / Tq % NH, t = task % Tq;
    long p = (long)(j->pos0 ? j->pos0[b] : 0) + t;
    *out = j->out + ((size_t)b * Tq + t) * C + (size_t)h * HS;
    return p >= 0 && p < j->S ? p : -1;
}

/* One (row, head, query) of KV-cache attention, into priv (HS floats)
 * or in place (a private job: cpu_pool.h). */
CPU_CLONES static void att_kv_query(const void *args, int task, float *priv) {
    const att_job *j = args;
    int C = j->C, NH = j->NH, Tq = j->Tq, S = j->S, HS = C / NH;
    int b = task / (NH * Tq), h = task / Tq % NH, t = task % Tq;
    size_t C3 = 3 * (size_t)C;
    float *out;
    long p = kv_query_pos(j, task, &out);
    if (p < 0) return;
    size_t head = (size_t)h * HS;
    attend(priv ? priv : out, j->qkv + ((size_t)b * Tq + t) * C3 + head,
           j->kcache + (size_t)b * S * C + head, j->vcache + (size_t)b * S * C + head, (size_t)C,
           (int)p + 1, HS, 1.0f / sqrtf((float)HS), cpu_scratch(j->be));
}

static void att_kv_publish(const void *args, int task, const float *priv) {
    const att_job *j = args;
    float *out;
    if (kv_query_pos(j, task, &out) >= 0) memcpy(out, priv, (size_t)(j->C / j->NH) * sizeof(float));
}

/* Prefill (several queries a row): a task is a block of CPU_KV_QBLOCK
 * queries of one (row, head), computed as the training forward computes
 * a head, with matrix products: S = Q K^T over the cache rows the block's
 * last query sees, a causal softmax row by row (query t sees positions up
 * to pos0 + t), O = P V: the products' packed kernels, where a loop a
 * query re-reads the cache once per query with one dot product at a time. */
CPU_CLONES static void att_kv_block(void *ctx, int task) {
    const att_job *j = ctx;
    int C = j->C, NH = j->NH, Tq = j->Tq, HS = C / NH;
    int nblk = (Tq + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK;
    int b = task / (NH * nblk), h = task / nblk % NH, t0 = task % nblk * CPU_KV_QBLOCK;
    int qn = Tq - t0 < CPU_KV_QBLOCK ? Tq - t0 : CPU_KV_QBLOCK;
    int p0 = j->pos0 ? j->pos0[b] : 0, n = p0 + t0 + qn; /* keys the block sees */
    size_t C3 = 3 * (size_t)C, head = (size_t)h * HS;
    float *S = cpu_scratch(j->be); /* (qn, n) */
    const float *q = j->qkv + ((size_t)b * Tq + t0) * C3 + head;
    const float *k = j->kcache + (size_t)b * j->S * C + head, *v = j->vcache + (size_t)b * j->S * C + head;
    cpu_sgemm(NULL, 0, 1, qn, n, HS, 1.0f / sqrtf((float)HS), q, (int)C3, k, C, 0.0f, S, n);
    for (int r = 0; r < qn; r++) causal_softmax_row(S + (size_t)r * n, p0 + t0 + r, n);
    cpu_sgemm(NULL, 0, 0, qn, HS, n, 1.0f, S, n, v, C, 0.0f,
              j->out + ((size_t)b * Tq + t0) * C + head, C);
}

/* Decoding (one query a row): tasks are chunks of CPU_KV_CHUNK cache
 * positions, each over all heads, so that a task reads whole cache rows one
 * after the other. Split by head instead (attend above), a task read HS of
 * every C floats: a strided walk through rows that come from DRAM (the
 * weights went through the caches since they were written), which the
 * prefetchers follow badly (docs/CPU.md).
 * A chunk leaves each head's maximum score m, sum of exp(s - m) and
 * exp-weighted sum of values; kv_merge combines the chunks in order (the
 * chunking depends on the position only, so results do not depend on the
 * thread count). */
typedef struct {
    gpt_backend *be;
    float *part; /* (B, nchunk, 2 NH + C) */
    const float *qkv, *kcache, *vcache;
    const int *pos0;
    int C, NH, S, nchunk;
} kvc_job;

static size_t kvc_stride(int C, int NH) { return 2 * (size_t)NH + (size_t)C; }

/* Cache positions [lo, hi) of task `task`'s row, or 0 if it has none. */
static int kvc_range(const kvc_job *j, int task, int *lo, int *hi) {
    long p = j->pos0[task / j->nchunk];
    if (p < 0 || p >= j->S) return 0;
    *lo = task % j->nchunk * CPU_KV_CHUNK;
    *hi = (int)p + 1 < *lo + CPU_KV_CHUNK ? (int)p + 1 : *lo + CPU_KV_CHUNK;
    return *lo < *hi;
}

/* a . b over n floats: 16 running sums (one AVX-512 or two AVX2 vectors)
 * added as a tree, not one scalar chain. */
static inline float dot16(const float *a, const float *b, int n) {
    float acc[16] = {0}, tail = 0;
    int d = 0;
    for (; d + 16 <= n; d += 16)
        for (int i = 0; i < 16; i++) acc[i] += a[d + i] * b[d + i];
    for (; d < n; d++) tail += a[d] * b[d];
    for (int w = 8; w; w >>= 1)
        for (int i = 0; i < w; i++) acc[i] += acc[i + w];
    return acc[0] + tail;
}

CPU_CLONES static void kvc_chunk(const void *args, int task, float *priv) {
    const kvc_job *j = args;
    int lo, hi;
    if (!kvc_range(j, task, &lo, &hi)) return;
    int C = j->C, NH = j->NH, HS = C / NH, b = task / j->nchunk;
    float *o = priv ? priv : j->part + (size_t)task * kvc_stride(C, NH);
    float *m = o, *l = o + NH, *acc = o + 2 * NH;
    float *s = cpu_scratch(j->be); /* (NH, CPU_KV_CHUNK) */
    const float *q = j->qkv + (size_t)b * 3 * C;
    const float *kc = j->kcache + (size_t)b * j->S * C, *vc = j->vcache + (size_t)b * j->S * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int t = lo; t < hi; t++) {
        const float *k = kc + (size_t)t * C;
        for (int h = 0; h < NH; h++)
            s[h * CPU_KV_CHUNK + t - lo] = dot16(q + h * HS, k + h * HS, HS) * scale;
    }
    for (int h = 0; h < NH; h++) {
        float *sh = s + h * CPU_KV_CHUNK, mx = -INFINITY, sum = 0;
        for (int t = 0; t < hi - lo; t++) mx = sh[t] > mx ? sh[t] : mx;
#pragma omp simd reduction(+ : sum)
        for (int t = 0; t < hi - lo; t++) {
            sh[t] = cpu_expf(sh[t] - mx);
            sum += sh[t];
        }
        m[h] = mx, l[h] = sum;
    }
    memset(acc, 0, (size_t)C * sizeof(float));
    for (int t = lo; t < hi; t++) {
        const float *v = vc + (size_t)t * C;
        for (int h = 0; h < NH; h++) {
            float w = s[h * CPU_KV_CHUNK + t - lo], *a = acc + h * HS;
            const float *vh = v + h * HS;
#pragma omp simd
            for (int d = 0; d < HS; d++) a[d] += w * vh[d];
        }
    }
}

static void kvc_publish(const void *args, int task, const float *priv) {
    const kvc_job *j = args;
    int lo, hi;
    if (kvc_range(j, task, &lo, &hi))
        memcpy(j->part + (size_t)task * kvc_stride(j->C, j->NH), priv,
               kvc_stride(j->C, j->NH) * sizeof(float));
}

/* out = the chunks of each row combined, chunk 0 first. */
CPU_CLONES static void kv_merge(const kvc_job *j, float *out, int B) {
    int C = j->C, NH = j->NH, HS = C / NH;
    size_t st = kvc_stride(C, NH);
    for (int b = 0; b < B; b++) {
        long p = j->pos0[b];
        if (p < 0 || p >= j->S) continue;
        int nc = (int)(p / CPU_KV_CHUNK) + 1;
        const float *pb = j->part + (size_t)b * j->nchunk * st;
        for (int h = 0; h < NH; h++) {
            float M = -INFINITY, L = 0, *o = out + (size_t)b * C + h * HS;
            for (int c = 0; c < nc; c++) M = pb[c * st + h] > M ? pb[c * st + h] : M;
            memset(o, 0, (size_t)HS * sizeof(float));
            for (int c = 0; c < nc; c++) {
                const float *pc = pb + c * st;
                float f = cpu_expf(pc[h] - M);
                L += f * pc[NH + h];
                const float *a = pc + 2 * NH + h * HS;
#pragma omp simd
                for (int d = 0; d < HS; d++) o[d] += f * a[d];
            }
            float inv = 1.0f / L;
#pragma omp simd
            for (int d = 0; d < HS; d++) o[d] *= inv;
        }
    }
}

size_t cpu_kv_partials_floats(int B, int S, int C, int NH) {
    return (size_t)B * (size_t)((S + CPU_KV_CHUNK - 1) / CPU_KV_CHUNK) * kvc_stride(C, NH);
}

void cpu_attention_kv_forward(gpt_backend *be, void *out_, const void *qkv_, void *kcache_,
                              void *vcache_, const int *pos0, int B, int Tq, int S, int C,
                              int NH) {
    float *out = out_, *kcache = kcache_, *vcache = vcache_;
    const float *qkv = qkv_;
    size_t C3 = 3 * (size_t)C;
    /* Store this call's keys and values first: query t attends to them. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tq; t++) {
            long p = (long)(pos0 ? pos0[b] : 0) + t;
            if (p < 0 || p >= S) continue;
            const float *src = qkv + ((size_t)b * Tq + t) * C3;
            memcpy(kcache + ((size_t)b * S + (size_t)p) * C, src + C, (size_t)C * sizeof(float));
            memcpy(vcache + ((size_t)b * S + (size_t)p) * C, src + 2 * (size_t)C,
                   (size_t)C * sizeof(float));
        }
    cpu_ctx *cc = be->ctx;
    if (Tq == 1 && pos0) {
        int maxp = -1;
        for (int b = 0; b < B; b++)
            if (pos0[b] >= 0 && pos0[b] < S && pos0[b] > maxp) maxp = pos0[b];
        if (maxp < 0) return;
        int nchunk = maxp / CPU_KV_CHUNK + 1;
        if ((size_t)B * nchunk * kvc_stride(C, NH) <= cc->kv_part_floats &&
            (size_t)NH * CPU_KV_CHUNK <= cc->scratch_per_thread) {
            kvc_job k = {.be = be, .part = cc->kv_part, .qkv = qkv, .kcache = kcache,
                         .vcache = vcache, .pos0 = pos0, .C = C, .NH = NH, .S = S,
                         .nchunk = nchunk};
            static const cpu_priv_ops kops = {kvc_chunk, kvc_publish};
            cpu_parallel_private(B * nchunk, &kops, &k, sizeof k, kvc_stride(C, NH));
            kv_merge(&k, out, B);
            return;
        }
    }
    att_job j = {.be = be, .out = out, .kcache = kcache, .vcache = vcache, .qkv = qkv,
                 .pos0 = pos0, .B = B, .C = C, .NH = NH, .Tq = Tq, .S = S};
    if (Tq > 1) {
        /* blocks where every row's queries are in the cache and a block's
         * scores fit this thread's scratch */
        int maxend = 0;
        for (int b = 0; b < B && maxend >= 0; b++) {
            long p0 = pos0 ? pos0[b] : 0;
            maxend = p0 < 0 || p0 + Tq > S ? -1 : (int)p0 + Tq > maxend ? (int)p0 + Tq : maxend;
        }
        if (maxend > 0 && (size_t)CPU_KV_QBLOCK * maxend <= cc->scratch_per_thread) {
            cpu_parallel(B * NH * ((Tq + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK), att_kv_block, &j);
            return;
        }
    }
    static const cpu_priv_ops ops = {att_kv_query, att_kv_publish};
    cpu_parallel_private(B * NH * Tq, &ops, &j, sizeof j, (size_t)(C / NH));
}
