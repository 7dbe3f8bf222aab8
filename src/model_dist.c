/*
 * model_dist.c - the model's side of data parallelism: binding a
 * communicator to the model's backend, the gradient buckets the backward
 * pass hands over, the rank's block of the flat parameter vector, ZeRO
 * stage 1's shards of the AdamW state, and reading and writing that state
 * tensor by tensor for checkpoints. Every entry point does nothing (or
 * answers for one process) when the model trains alone (m->dist NULL).
 *
 * The flat parameter vector (nparams elements, padded so that R ranks
 * split it evenly) is cut into R blocks of S elements; rank r's block is
 * [r S, (r + 1) S). Without ZeRO every rank holds everything and the
 * block only splits the work of the squared norm. With ZeRO rank r keeps
 * the moments (and fp32 master weights) of its block alone, updates only
 * that block, and all-gathers the parameters after the update.
 */
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "model.h"
#include "util.h"

#define BLOCK_ALIGN 64 /* elements: every block starts 256-byte aligned in fp32 */

struct dist_state {
    comm *c;
    int zero;
    size_t block; /* S: elements of one rank's block */
    size_t lo;    /* rank * S */
    float *master; /* ZeRO with bf16 parameters: fp32 master of [lo, lo + S) */
};

static int dt_of(const gpt_model *m, int cls) {
    return m->be->cls_size[cls] == 2 ? DT_BF16 : DT_F32;
}

static int comm_error(gpt_model *m, gpt_error *err) {
    comm *c = m->dist->c;
    int rc = gpt_model_backend_error(m, err);
    if (rc) return rc;
    return c->err.code ? gpt_fail(err, c->err.code, "%s", c->err.msg) : GPT_OK;
}

void dist_free(gpt_model *m) {
    dist_state *d = m->dist;
    if (!d) return;
    if (d->c) d->c->ops->destroy(d->c);
    if (d->master) m->be->ops->free(m->be, d->master);
    free(d);
    m->dist = NULL;
}

/* Grows a buffer of elements of class cls from n to n2 elements (the new
 * tail zero). */
static void *grow(gpt_model *m, void *p, size_t n, size_t n2, int cls) {
    gpt_backend *be = m->be;
    size_t es = be->cls_size[cls];
    void *q = be->ops->alloc(be, n2 * es);
    if (!q) return NULL;
    be->ops->memset0(be, q, n2 * es);
    be->ops->copy(be, q, p, n * es);
    be->ops->free(be, p);
    return q;
}

int gpt_model_set_dist(gpt_model *m, gpt_dist *d, int zero, gpt_error *err) {
    if (m->dist) return gpt_fail(err, GPT_ERR_INVALID, "gpt_model_set_dist: called twice");
    if (m->train_ready || m->grads)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_model_set_dist: call it before gpt_train_init");
    if (zero < 0 || zero > 1)
        return gpt_fail(err, GPT_ERR_INVALID, "ZeRO stage %d is not supported (0 or 1)", zero);
    /* One process started without a launcher trains alone, with no
     * collectives at all. */
    if (!d || (d->size == 1 && d->launcher == DIST_NONE)) return GPT_OK;
    gpt_backend *be = m->be;
    if (zero && be->cls_size[GPT_CLS_GRAD] != 4)
        return gpt_fail(err, GPT_ERR_INVALID, "ZeRO needs fp32 gradients on the %s backend",
                        be->name);
    /* NCCL on the CUDA backend's stream; MPI on the CPU backend's host
     * memory. Other backends' memory is neither. */
    int cuda = !strcmp(be->name, "cuda"), cpu = !strcmp(be->name, "cpu");
    if (!cuda && !cpu)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "data-parallel training runs on the cuda (NCCL) and cpu (MPI) backends, "
                        "not on %s yet",
                        be->name);
    dist_state *ds = calloc(1, sizeof *ds);
    if (!ds) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int rc = cuda ? comm_nccl_create(&ds->c, d, be, err) : comm_mpi_create(&ds->c, d, be, err);
    if (rc) {
        free(ds);
        return rc;
    }
    m->dist = ds;
    ds->zero = zero;
    size_t R = (size_t)d->size;
    ds->block = ((m->nparams + R - 1) / R + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    ds->lo = (size_t)d->rank * ds->block;
    size_t P = ds->block * R;
    if (P > m->nparams) { /* the padding stays zero: zero gradients, no update */
        size_t bytes = (P - m->nparams) * (be->cls_size[GPT_CLS_PARAM] + (m->master ? 4 : 0));
        if ((rc = gpt_model_check_memory(m, bytes, "the parameters' padding", err))) return rc;
        void *p = grow(m, m->params, m->nparams, P, GPT_CLS_PARAM);
        if (p) m->params = p;
        float *q = p && m->master ? grow(m, m->master, m->nparams, P, GPT_CLS_F32) : NULL;
        if (q) m->master = q;
        if (!p || (m->master && !q)) {
            rc = gpt_model_backend_error(m, err);
            return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        }
        m->nparams = P;
    }
    /* Every rank starts from rank 0's parameters, however it built them. */
    comm *c = ds->c;
    c->ops->broadcast(c, m->params, m->nparams, dt_of(m, GPT_CLS_PARAM), 0);
    if (m->master) c->ops->broadcast(c, m->master, m->nparams, DT_F32, 0);
    c->ops->join(c);
    c->ops->wait(c);
    /* Graphs would have to capture the collectives and the side stream's
     * events; the steps this layer is for are long enough not to need
     * them. */
    m->use_graphs = 0;
    m->graph_epoch++;
    return comm_error(m, err);
}

int gpt_model_end_dist(gpt_model *m, gpt_error *err) {
    dist_state *d = m->dist;
    if (!d) return GPT_OK;
    gpt_backend *be = m->be;
    int rc = GPT_OK;
    if (d->master) { /* the whole master again: each rank's block from its owner */
        m->master = be->ops->alloc(be, m->nparams * 4);
        if (!m->master) {
            rc = gpt_model_backend_error(m, err);
            return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        }
        be->ops->copy(be, m->master + d->lo, d->master, d->block * 4);
        d->c->ops->allgather(d->c, m->master, d->block, DT_F32);
        d->c->ops->join(d->c);
    }
    if ((rc = dist_wait(m, err))) return rc;
    gpt_train_free(m);
    dist_free(m);
    m->use_graphs = !m->rt.profile && !m->rt.check;
    return GPT_OK;
}

const char *gpt_model_comm(const gpt_model *m) { return m->dist ? m->dist->c->name : "none"; }

int gpt_model_allreduce(gpt_model *m, double *x, int n, int op, gpt_error *err) {
    if (!m->dist) return GPT_OK;
    comm *c = m->dist->c;
    if (n < 0 || n > 16 || (op != 0 && op != 1))
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_model_allreduce: 0..16 values, op 0 or 1");
    c->ops->allreduce_host(c, x, n, op ? RED_MAX : RED_SUM);
    return comm_error(m, err);
}

int dist_ranks(const gpt_model *m) { return m->dist ? m->dist->c->size : 1; }
int dist_rank(const gpt_model *m) { return m->dist ? m->dist->c->rank : 0; }
int dist_zero(const gpt_model *m) { return m->dist ? m->dist->zero : 0; }

size_t dist_opt_elems(const gpt_model *m) {
    return dist_zero(m) ? m->dist->block : m->nparams;
}

size_t gpt_model_optimizer_bytes(const gpt_model *m) {
    if (!m->m) return 0;
    size_t n = 2 * m->opt_n * 4;
    if (m->master) n += m->nparams * 4;
    if (m->dist && m->dist->master) n += m->dist->block * 4;
    return n;
}

void dist_block(const gpt_model *m, size_t *lo, size_t *n) {
    *lo = m->dist ? m->dist->lo : 0;
    *n = m->dist ? m->dist->block : m->nparams;
}

void dist_update_range(const gpt_model *m, size_t *lo, size_t *n, float **master) {
    if (dist_zero(m)) {
        *lo = m->dist->lo;
        *n = m->dist->block;
        *master = m->dist->master;
    } else {
        *lo = 0;
        *n = m->nparams;
        *master = m->master;
    }
}

int dist_train_alloc(gpt_model *m, gpt_error *err) {
    dist_state *d = m->dist;
    if (!d || !d->zero || !m->master || d->master) return GPT_OK;
    /* ZeRO: this rank's block of the fp32 master weights replaces the
     * whole copy. */
    gpt_backend *be = m->be;
    d->master = be->ops->alloc(be, d->block * 4);
    if (!d->master) {
        int rc = gpt_model_backend_error(m, err);
        return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    be->ops->copy(be, d->master, m->master + d->lo, d->block * 4);
    be->ops->free(be, m->master);
    m->master = NULL;
    return gpt_model_backend_error(m, err);
}

/* ------------------------------------------------------------- the step */

void dist_bucket(gpt_model *m, size_t off, size_t n) {
    if (!m->dist || m->dist->zero || !n) return;
    comm *c = m->dist->c;
    c->ops->allreduce(c, gpt_at(m, m->grads, off, GPT_CLS_GRAD), n, dt_of(m, GPT_CLS_GRAD),
                      RED_SUM);
}

void dist_progress(gpt_model *m) {
    if (m->dist) m->dist->c->ops->progress(m->dist->c);
}

void dist_grads_done(gpt_model *m) {
    if (!m->dist) return;
    comm *c = m->dist->c;
    if (m->dist->zero)
        c->ops->reduce_scatter(c, m->grads, m->dist->block, dt_of(m, GPT_CLS_GRAD));
    c->ops->join(c);
}

void dist_sum_stats(gpt_model *m, gpt_step_stats *stats) {
    if (!m->dist) return;
    comm *c = m->dist->c;
    c->ops->allreduce(c, stats, sizeof *stats / 4, DT_F32, RED_SUM);
    c->ops->join(c);
}

void dist_update_done(gpt_model *m) {
    dist_state *d = m->dist;
    if (!d || !d->zero) return;
    gpt_backend *be = m->be;
    size_t es = be->cls_size[GPT_CLS_GRAD], end = d->lo + d->block;
    /* adamw zeroed this rank's block of the gradient; the rest holds what
     * the reduce-scatter left there. */
    be->ops->memset0(be, m->grads, d->lo * es);
    be->ops->memset0(be, gpt_at(m, m->grads, end, GPT_CLS_GRAD), (m->nparams - end) * es);
    d->c->ops->allgather(d->c, m->params, d->block, dt_of(m, GPT_CLS_PARAM));
    d->c->ops->join(d->c);
}

int dist_wait(gpt_model *m, gpt_error *err) {
    if (!m->dist) return GPT_OK;
    m->dist->c->ops->wait(m->dist->c);
    return comm_error(m, err);
}

/* ------------------------------------------------- state for checkpoints */

/* dst (n) = elements [off, off + n) of a vector whose rank-r block lives
 * on rank r at shard (block elements, fp32): each owner broadcasts its
 * piece into the (zero, fp32) gradient buffer, which serves as staging
 * and is zeroed again after. Collective. */
static int gather(gpt_model *m, const float *shard, size_t off, size_t n, float *dst,
                  gpt_error *err) {
    dist_state *d = m->dist;
    gpt_backend *be = m->be;
    comm *c = d->c;
    float *stage = (float *)m->grads;
    for (int r = 0; r < c->size; r++) {
        size_t a = (size_t)r * d->block, b = a + d->block;
        if (a < off) a = off;
        if (b > off + n) b = off + n;
        if (a >= b) continue;
        if (r == c->rank) be->ops->copy(be, stage + a, shard + (a - d->lo), (b - a) * 4);
        c->ops->broadcast(c, stage + a, b - a, DT_F32, r);
    }
    c->ops->join(c);
    int rc = dist_wait(m, err);
    if (rc) return rc;
    be->ops->download(be, dst, stage + off, n, GPT_CLS_F32);
    be->ops->memset0(be, stage + off, n * 4);
    return gpt_model_backend_error(m, err);
}

/* Uploads the part of src (n elements at off) that falls in this rank's
 * block into shard. */
static void scatter(gpt_model *m, float *shard, size_t off, size_t n, const float *src) {
    dist_state *d = m->dist;
    size_t a = d->lo > off ? d->lo : off, b = d->lo + d->block;
    if (b > off + n) b = off + n;
    if (a < b) m->be->ops->upload(m->be, shard + (a - d->lo), src + (a - off), b - a, GPT_CLS_F32);
}

int dist_sharded_master(const gpt_model *m) { return m->dist && m->dist->master; }

int dist_get_master(gpt_model *m, int i, float *dst, gpt_error *err) {
    return gather(m, m->dist->master, m->toff[i], m->tinfo[i].numel, dst, err);
}

void dist_set_master(gpt_model *m, int i, const float *src) {
    scatter(m, m->dist->master, m->toff[i], m->tinfo[i].numel, src);
}

int gpt_train_get_moment(gpt_model *m, int which, int i, float *dst, gpt_error *err) {
    float *base = which ? m->v : m->m;
    if (dist_zero(m)) return gather(m, base, m->toff[i], m->tinfo[i].numel, dst, err);
    m->be->ops->download(m->be, dst, base + m->toff[i], m->tinfo[i].numel, GPT_CLS_F32);
    return gpt_model_backend_error(m, err);
}

void gpt_train_set_moment(gpt_model *m, int which, int i, const float *src) {
    float *base = which ? m->v : m->m;
    if (dist_zero(m)) scatter(m, base, m->toff[i], m->tinfo[i].numel, src);
    else m->be->ops->upload(m->be, base + m->toff[i], src, m->tinfo[i].numel, GPT_CLS_F32);
}

int dist_save_collective(const gpt_model *m) { return dist_zero(m); }
