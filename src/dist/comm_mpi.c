/*
 * comm_mpi.c - collectives with MPI on tensors in host memory (the CPU
 * backend), and the MPI side of a job: MPI_Init, ranks, the local rank,
 * the bootstrap broadcast.
 *
 * Every collective is non-blocking (MPI_I*) so that the gradients of one
 * layer travel while the next layer's backward runs. MPI moves a
 * non-blocking collective along only inside MPI calls, so the model calls
 * progress() between operations. Every wait polls with a deadline instead
 * of blocking in MPI_Wait: a rank that died or hangs gives an error after
 * timeout_s, not a hang.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"
#include "util.h"

/* What to do to a finished request's buffer. */
enum { POST_NONE = 0, POST_MOVE = 1, POST_SCALE = 2 };

typedef struct {
    MPI_Request req;
    int post;
    void *dst;       /* POST_MOVE: memmove(dst, src, bytes); POST_SCALE: dst (n floats) */
    const void *src;
    size_t bytes, n;
    int dt;
} pending;

typedef struct {
    comm base;
    MPI_Comm mc;
    pending *q;
    int nq, cap, head; /* in flight: q[head .. nq) */
} mpi_comm;

static mpi_comm *mpi_of(comm *c) { return (mpi_comm *)c; }

static int mpi_failed(comm *c, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    comm_fail(c, GPT_ERR_RUNTIME, "rank %d: MPI %s failed: %.*s", c->rank, what, len, msg);
    return 1;
}

static MPI_Datatype mpi_type(int dt) {
    return dt == DT_F64 ? MPI_DOUBLE : dt == DT_BF16 ? MPI_UINT16_T : MPI_FLOAT;
}

/* Room for one more request; NULL (and an error) if the count is too large
 * for MPI's int counts or memory runs out. */
static pending *push(comm *c, size_t n, int dt, int reduces) {
    mpi_comm *mc = mpi_of(c);
    if (c->err.code) return NULL;
    if (n > INT_MAX) {
        comm_fail(c, GPT_ERR_INVALID, "MPI collectives of over 2^31 elements are not supported");
        return NULL;
    }
    if (reduces && dt == DT_BF16) {
        comm_fail(c, GPT_ERR_INVALID, "MPI has no bf16 sum");
        return NULL;
    }
    if (mc->head == mc->nq) mc->head = mc->nq = 0; /* all done: start over */
    if (mc->nq == mc->cap) {
        int cap = mc->cap ? 2 * mc->cap : 64;
        pending *q = realloc(mc->q, (size_t)cap * sizeof *q);
        if (!q) {
            comm_fail(c, GPT_ERR_NOMEM, "out of memory");
            return NULL;
        }
        mc->q = q;
        mc->cap = cap;
    }
    pending *p = &mc->q[mc->nq];
    memset(p, 0, sizeof *p);
    p->req = MPI_REQUEST_NULL;
    p->dt = dt;
    return p;
}

static void finish(pending *p) {
    if (p->post == POST_MOVE) memmove(p->dst, p->src, p->bytes);
    if (p->post == POST_SCALE) {
        float *x = p->dst, s = 1.0f / (float)p->bytes; /* bytes holds the rank count */
        double *xd = p->dst;
        for (size_t i = 0; i < p->n; i++) {
            if (p->dt == DT_F64) xd[i] /= (double)p->bytes;
            else x[i] *= s;
        }
    }
}

/* Tests the requests in flight in issue order; 1 when none is left. */
static int poll_once(comm *c) {
    mpi_comm *mc = mpi_of(c);
    while (mc->head < mc->nq && !c->err.code) {
        pending *p = &mc->q[mc->head];
        int done = 0;
        if (mpi_failed(c, MPI_Test(&p->req, &done, MPI_STATUS_IGNORE), "test")) break;
        if (!done) return 0;
        finish(p);
        mc->head++;
    }
    return 1;
}

static void mpi_progress(comm *c) {
    if (!c->err.code) poll_once(c);
}

static int mpi_wait(comm *c) {
    double start = gpt_now();
    long spins = 0;
    while (!c->err.code && !poll_once(c)) {
        /* Spin briefly (a collective usually completes in microseconds once
         * the peers arrive), then sleep between tests to leave the cores to
         * the ranks still computing. */
        if (++spins > 2000) {
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
            if (gpt_now() - start > c->timeout_s) {
                comm_fail(c, GPT_ERR_RUNTIME,
                          "rank %d: a collective has not finished after %.0f s: another rank "
                          "stopped or hangs",
                          c->rank, c->timeout_s);
                break;
            }
        }
    }
    return c->err.code;
}

static void mpi_join(comm *c) { mpi_wait(c); }

static MPI_Op mpi_op(int op) { return op == RED_MAX ? MPI_MAX : MPI_SUM; }

static void mpi_allreduce(comm *c, void *buf, size_t n, int dt, int op) {
    pending *p = push(c, n, dt, 1);
    if (!p) return;
    if (mpi_failed(c, MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(dt), mpi_op(op),
                                     mpi_of(c)->mc, &p->req),
                   "allreduce"))
        return;
    if (op == RED_AVG) {
        p->post = POST_SCALE;
        p->dst = buf;
        p->n = n;
        p->bytes = (size_t)c->size;
    }
    mpi_of(c)->nq++;
}

static void mpi_reduce_scatter(comm *c, void *buf, size_t n, int dt) {
    pending *p = push(c, n, dt, 1);
    if (!p) return;
    /* In place, MPI leaves this rank's block at the start of the buffer;
     * it moves to the block's own place when the request completes. */
    if (mpi_failed(c, MPI_Ireduce_scatter_block(MPI_IN_PLACE, buf, (int)n, mpi_type(dt), MPI_SUM,
                                                mpi_of(c)->mc, &p->req),
                   "reduce_scatter"))
        return;
    p->post = c->rank ? POST_MOVE : POST_NONE;
    p->dst = (char *)buf + (size_t)c->rank * n * comm_dt_size(dt);
    p->src = buf;
    p->bytes = n * comm_dt_size(dt);
    mpi_of(c)->nq++;
}

static void mpi_allgather(comm *c, void *buf, size_t n, int dt) {
    pending *p = push(c, n, dt, 0);
    if (!p) return;
    if (mpi_failed(c, MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)n, mpi_type(dt),
                                     mpi_of(c)->mc, &p->req),
                   "allgather"))
        return;
    mpi_of(c)->nq++;
}

static void mpi_broadcast(comm *c, void *buf, size_t n, int dt, int root) {
    pending *p = push(c, n, dt, 0);
    if (!p) return;
    if (mpi_failed(c, MPI_Ibcast(buf, (int)n, mpi_type(dt), root, mpi_of(c)->mc, &p->req),
                   "broadcast"))
        return;
    mpi_of(c)->nq++;
}

static int mpi_allreduce_host(comm *c, double *x, int n, int op) {
    mpi_allreduce(c, x, (size_t)n, DT_F64, op);
    return mpi_wait(c);
}

static void mpi_destroy(comm *c) {
    mpi_comm *mc = mpi_of(c);
    /* A communicator with requests in flight (after an error), or of a
     * failed job, is left to the end of the process: freeing it could
     * wait for them. */
    if (mc->head == mc->nq && !(c->job && c->job->failed) && mc->mc != MPI_COMM_NULL)
        MPI_Comm_free(&mc->mc);
    free(mc->q);
    free(mc);
}

static const comm_ops mpi_ops = {
    .destroy = mpi_destroy,
    .allreduce = mpi_allreduce,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .progress = mpi_progress,
    .join = mpi_join,
    .wait = mpi_wait,
    .allreduce_host = mpi_allreduce_host,
};

int comm_mpi_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err) {
    *out = NULL;
    if (strcmp(be->name, "cpu"))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "MPI collectives need tensors in host memory (the cpu backend), not %s's",
                        be->name);
    if (d->launcher != DIST_MPI)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "data-parallel training on the CPU runs under MPI: start it with mpirun "
                        "-np N (gpt train --gpus is for GPUs)");
    mpi_comm *mc = calloc(1, sizeof *mc);
    if (!mc) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    mc->base.ops = &mpi_ops;
    mc->base.job = d;
    mc->base.name = "mpi";
    mc->base.rank = d->rank;
    mc->base.size = d->size;
    mc->base.timeout_s = d->timeout_s;
    /* A communicator of our own, so that our traffic never matches an
     * application's messages; errors come back as codes. */
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &mc->mc);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(mc->mc, MPI_ERRORS_RETURN);
    if (mpi_failed(&mc->base, rc, "comm_dup")) {
        int code = gpt_fail(err, mc->base.err.code, "%s", mc->base.err.msg);
        free(mc);
        return code;
    }
    *out = &mc->base;
    return GPT_OK;
}

/* ---------------------------------------------------------------- world */

int dist_mpi_init(gpt_dist *d, gpt_error *err) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return gpt_fail(err, GPT_ERR_RUNTIME, "MPI_Init failed");
        d->mpi_owned = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    /* The local rank (which GPU) is the rank among the processes that
     * share this machine's memory. */
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL,
                            &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &d->local_rank);
        MPI_Comm_free(&local);
    }
    d->launcher = DIST_MPI;
    return GPT_OK;
}

void dist_mpi_finalize(gpt_dist *d) {
    if (d->mpi_owned) MPI_Finalize();
}

int dist_mpi_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err) {
    mpi_comm mc = {.mc = MPI_COMM_WORLD};
    mc.base.ops = &mpi_ops;
    mc.base.rank = d->rank;
    mc.base.size = d->size;
    mc.base.timeout_s = d->timeout_s;
    pending *p = push(&mc.base, n, DT_F32, 0);
    if (p && !mpi_failed(&mc.base, MPI_Ibcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &p->req),
                         "broadcast"))
        mc.nq++;
    int rc = mpi_wait(&mc.base);
    free(mc.q);
    return rc ? gpt_fail(err, rc, "%s", mc.base.err.msg) : GPT_OK;
}
