/*
 * comm_nccl.c - collectives with NCCL on tensors in GPU memory (the CUDA
 * backend).
 *
 * Collectives run on a side stream of their own so that they overlap the
 * backward pass: before each one the side stream waits for an event
 * recorded on the backend's stream (so it sees every op issued before it),
 * and join() makes the backend's stream wait for the side stream. Neither
 * waits on the host. The communicator is non-blocking (ncclConfig_t
 * blocking = 0) and every host wait polls ncclCommGetAsyncError and a
 * deadline, so that a rank that died (NCCL reports a remote or system
 * error) or hangs ends the wait with a message; the communicator is then
 * aborted, which releases kernels stuck waiting for a peer.
 */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"
#include "util.h"

enum { HOST_MAX = 16 }; /* doubles one allreduce_host may carry */

typedef struct {
    comm base;
    ncclComm_t nc;
    cudaStream_t main; /* the backend's */
    cudaStream_t side;
    cudaEvent_t fork, joined, done;
    int side_busy;     /* side-stream work not yet joined */
    double *dev_host;  /* device (HOST_MAX) */
    double *pinned;    /* page-locked host (HOST_MAX) */
} nccl_comm;

static nccl_comm *nc_of(comm *c) { return (nccl_comm *)c; }

static int cuda_failed(comm *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    comm_fail(c, GPT_ERR_RUNTIME, "rank %d: CUDA %s failed: %s", c->rank, what,
              cudaGetErrorString(e));
    return 1;
}

static void nap(void) {
    struct timespec ts = {0, 100 * 1000};
    nanosleep(&ts, NULL);
}

/* The communicator's state after a call: a non-blocking communicator may
 * still be enqueueing (ncclInProgress), which must end before the next
 * call. Fails on an error or past the deadline. */
static int settle(comm *c, ncclResult_t r, const char *what) {
    nccl_comm *n = nc_of(c);
    double start = gpt_now();
    while (r == ncclInProgress) {
        if (gpt_now() - start > c->timeout_s) break;
        nap();
        if (ncclCommGetAsyncError(n->nc, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r == ncclSuccess) return 0;
    const char *last = n->nc ? ncclGetLastError(n->nc) : "";
    if (r == ncclInProgress)
        comm_fail(c, GPT_ERR_RUNTIME, "rank %d: NCCL %s did not start within %.0f s", c->rank,
                  what, c->timeout_s);
    else
        comm_fail(c, GPT_ERR_RUNTIME, "rank %d: NCCL %s failed: %s%s%s", c->rank, what,
                  ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
    return 1;
}

static ncclDataType_t nccl_type(int dt) {
    return dt == DT_F64 ? ncclFloat64 : dt == DT_BF16 ? ncclBfloat16 : ncclFloat32;
}

static ncclRedOp_t nccl_op(int op) {
    return op == RED_MAX ? ncclMax : op == RED_AVG ? ncclAvg : ncclSum;
}

/* The side stream waits for everything issued on the backend's stream. */
static int fork_side(comm *c) {
    nccl_comm *n = nc_of(c);
    if (c->err.code) return 1;
    if (cuda_failed(c, cudaEventRecord(n->fork, n->main), "event record") ||
        cuda_failed(c, cudaStreamWaitEvent(n->side, n->fork, 0), "stream wait"))
        return 1;
    n->side_busy = 1;
    return 0;
}

static void nccl_allreduce(comm *c, void *buf, size_t count, int dt, int op) {
    if (fork_side(c)) return;
    settle(c, ncclAllReduce(buf, buf, count, nccl_type(dt), nccl_op(op), nc_of(c)->nc,
                            nc_of(c)->side),
           "all-reduce");
}

static void nccl_reduce_scatter(comm *c, void *buf, size_t count, int dt) {
    if (fork_side(c)) return;
    /* In place: the result lands at buf + rank * count. */
    void *mine = (char *)buf + (size_t)c->rank * count * comm_dt_size(dt);
    settle(c, ncclReduceScatter(buf, mine, count, nccl_type(dt), ncclSum, nc_of(c)->nc,
                                nc_of(c)->side),
           "reduce-scatter");
}

static void nccl_allgather(comm *c, void *buf, size_t count, int dt) {
    if (fork_side(c)) return;
    const void *mine = (const char *)buf + (size_t)c->rank * count * comm_dt_size(dt);
    settle(c, ncclAllGather(mine, buf, count, nccl_type(dt), nc_of(c)->nc, nc_of(c)->side),
           "all-gather");
}

static void nccl_broadcast(comm *c, void *buf, size_t count, int dt, int root) {
    if (fork_side(c)) return;
    settle(c, ncclBroadcast(buf, buf, count, nccl_type(dt), root, nc_of(c)->nc, nc_of(c)->side),
           "broadcast");
}

static void nccl_progress(comm *c) { (void)c; /* NCCL's own threads and kernels move it */ }

static void nccl_join(comm *c) {
    nccl_comm *n = nc_of(c);
    if (c->err.code || !n->side_busy) return;
    if (cuda_failed(c, cudaEventRecord(n->joined, n->side), "event record") ||
        cuda_failed(c, cudaStreamWaitEvent(n->main, n->joined, 0), "stream wait"))
        return;
    n->side_busy = 0;
}

/* Polls ev until it completes, NCCL reports an error, or the deadline. */
static int wait_event(comm *c, cudaEvent_t ev) {
    nccl_comm *n = nc_of(c);
    double start = gpt_now();
    long spins = 0;
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) {
            cuda_failed(c, e, "wait");
            break;
        }
        ncclResult_t st;
        if (ncclCommGetAsyncError(n->nc, &st) != ncclSuccess || (st != ncclSuccess &&
                                                                  st != ncclInProgress)) {
            settle(c, st, "collective");
            break;
        }
        if (++spins > 1000) {
            nap();
            if (gpt_now() - start > c->timeout_s) {
                comm_fail(c, GPT_ERR_RUNTIME,
                          "rank %d: a collective has not finished after %.0f s: another rank "
                          "stopped or hangs",
                          c->rank, c->timeout_s);
                break;
            }
        }
    }
    if (c->err.code && n->nc) {
        /* Kernels waiting for a dead peer never end on their own. */
        ncclCommAbort(n->nc);
        n->nc = NULL;
    }
    return c->err.code;
}

static int nccl_wait(comm *c) {
    nccl_comm *n = nc_of(c);
    nccl_join(c);
    if (c->err.code) return c->err.code;
    if (cuda_failed(c, cudaEventRecord(n->done, n->main), "event record")) return c->err.code;
    return wait_event(c, n->done);
}

static int nccl_allreduce_host(comm *c, double *x, int count, int op) {
    nccl_comm *n = nc_of(c);
    if (count > HOST_MAX) {
        comm_fail(c, GPT_ERR_INVALID, "allreduce_host carries at most %d values", HOST_MAX);
        return c->err.code;
    }
    if (c->err.code) return c->err.code;
    memcpy(n->pinned, x, (size_t)count * sizeof *x);
    /* Page-locked staging, so that neither copy waits on the host. */
    if (fork_side(c) ||
        cuda_failed(c, cudaMemcpyAsync(n->dev_host, n->pinned, (size_t)count * 8,
                                       cudaMemcpyHostToDevice, n->side), "copy"))
        return c->err.code;
    if (settle(c, ncclAllReduce(n->dev_host, n->dev_host, (size_t)count, ncclFloat64, nccl_op(op),
                                n->nc, n->side),
               "all-reduce"))
        return c->err.code;
    if (cuda_failed(c, cudaMemcpyAsync(n->pinned, n->dev_host, (size_t)count * 8,
                                       cudaMemcpyDeviceToHost, n->side), "copy") ||
        cuda_failed(c, cudaEventRecord(n->done, n->side), "event record") || wait_event(c, n->done))
        return c->err.code;
    memcpy(x, n->pinned, (size_t)count * sizeof *x);
    return GPT_OK;
}

static void nccl_destroy(comm *c) {
    nccl_comm *n = nc_of(c);
    if (n->nc && !c->err.code && !(c->job && c->job->failed)) {
        /* Finalize flushes what is in flight; past the deadline, abort. */
        ncclResult_t r = ncclCommFinalize(n->nc);
        double start = gpt_now();
        while (r == ncclSuccess || r == ncclInProgress) {
            if (ncclCommGetAsyncError(n->nc, &r) != ncclSuccess || r != ncclInProgress) break;
            if (gpt_now() - start > c->timeout_s) break;
            nap();
        }
        if (r == ncclSuccess) ncclCommDestroy(n->nc);
        else ncclCommAbort(n->nc);
    } else if (n->nc) {
        ncclCommAbort(n->nc);
    }
    if (n->side) {
        if (!c->err.code && !(c->job && c->job->failed)) cudaStreamSynchronize(n->side);
        cudaStreamDestroy(n->side);
    }
    if (n->fork) cudaEventDestroy(n->fork);
    if (n->joined) cudaEventDestroy(n->joined);
    if (n->done) cudaEventDestroy(n->done);
    if (n->dev_host) cudaFree(n->dev_host);
    if (n->pinned) cudaFreeHost(n->pinned);
    free(n);
}

static const comm_ops nccl_ops = {
    .destroy = nccl_destroy,
    .allreduce = nccl_allreduce,
    .reduce_scatter = nccl_reduce_scatter,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .progress = nccl_progress,
    .join = nccl_join,
    .wait = nccl_wait,
    .allreduce_host = nccl_allreduce_host,
};

int comm_nccl_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err) {
    *out = NULL;
    if (!be->ops->stream || strcmp(be->name, "cuda"))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "NCCL collectives need the CUDA backend (on CPUs, start the ranks with "
                        "mpirun)");
    nccl_comm *n = calloc(1, sizeof *n);
    if (!n) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    comm *c = &n->base;
    c->ops = &nccl_ops;
    c->job = d;
    c->name = "nccl";
    c->rank = d->rank;
    c->size = d->size;
    c->timeout_s = d->timeout_s;
    n->main = (cudaStream_t)be->ops->stream(be);
    /* Rank 0 makes the id; the launcher's bootstrap carries it to the rest. */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rc = GPT_OK;
    if (d->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            rc = gpt_fail(err, GPT_ERR_RUNTIME, "ncclGetUniqueId failed: %s",
                          ncclGetErrorString(r));
    }
    if (!rc) rc = dist_bootstrap_bcast(d, &id, sizeof id, err);
    int lo = 0, hi = 0;
    cudaDeviceGetStreamPriorityRange(&lo, &hi);
    if (!rc) {
        /* The highest priority: a collective's blocks start as soon as the
         * backward's kernels leave room, instead of queueing behind them. */
        if (cuda_failed(c, cudaStreamCreateWithPriority(&n->side, cudaStreamNonBlocking, hi),
                        "stream create") ||
            cuda_failed(c, cudaEventCreateWithFlags(&n->fork, cudaEventDisableTiming), "event") ||
            cuda_failed(c, cudaEventCreateWithFlags(&n->joined, cudaEventDisableTiming), "event") ||
            cuda_failed(c, cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming), "event") ||
            cuda_failed(c, cudaMalloc((void **)&n->dev_host, HOST_MAX * 8), "malloc") ||
            cuda_failed(c, cudaMallocHost((void **)&n->pinned, HOST_MAX * 8), "host malloc"))
            rc = gpt_fail(err, c->err.code, "%s", c->err.msg);
    }
    if (!rc) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        ncclResult_t r = ncclCommInitRankConfig(&n->nc, d->size, id, d->rank, &cfg);
        if (r != ncclSuccess && r != ncclInProgress) n->nc = NULL;
        if (settle(c, r, "initialisation")) rc = gpt_fail(err, c->err.code, "%s", c->err.msg);
    }
    if (rc) {
        c->err.code = rc; /* nothing is flushed on the way out */
        nccl_destroy(c);
        return rc;
    }
    *out = c;
    return GPT_OK;
}
