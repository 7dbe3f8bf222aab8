/*
 * comm.h - the communicator the training step calls: collectives over the
 * ranks of a data-parallel job, on tensors in a backend's memory.
 *
 * Implementations: NCCL (comm_nccl.c, CUDA backend: on a side stream
 * ordered against the backend's stream by events, no host wait) and MPI
 * (comm_mpi.c, CPU backend: non-blocking collectives on host memory, moved
 * along by progress()). A single process has no communicator at all: the
 * model skips every call (model_dist.c).
 *
 * Ordering: a collective sees every op the backend issued before the call
 * and must not be overlapped by later ops that touch its buffer; backend
 * work issued after join() sees its result. Between the call and join()
 * the caller leaves the buffer alone. Several collectives may be in flight;
 * they complete in issue order.
 *
 * Errors: like the backend's. A call records the first failure in c->err
 * and later calls do nothing; wait() returns c->err.code. A collective that
 * has not finished timeout_s seconds after wait() began waiting fails with
 * a message that says so (a rank died, hangs, or is far behind): nothing
 * blocks forever.
 *
 * Shapes: n counts elements of dtype. reduce_scatter and allgather work in
 * place on a buffer of size * n elements in which rank r's block is
 * [r * n, (r + 1) * n).
 */
#ifndef GPT_DIST_COMM_H
#define GPT_DIST_COMM_H

#include <stddef.h>

#include "backend.h"
#include "gpt_dist.h"

enum { DT_F32 = 0, DT_BF16 = 1, DT_F64 = 2 };
enum { RED_SUM = 0, RED_AVG = 1, RED_MAX = 2 };

typedef struct comm comm;

typedef struct {
    void (*destroy)(comm *c);
    /* buf (n) = the elementwise sum / mean / max over ranks, in place. */
    void (*allreduce)(comm *c, void *buf, size_t n, int dt, int op);
    /* buf (size, n): block rank of the sum over ranks lands in block rank;
     * the other blocks are left undefined. */
    void (*reduce_scatter)(comm *c, void *buf, size_t n, int dt);
    /* buf (size, n): every rank's block rank is copied to every rank. */
    void (*allgather)(comm *c, void *buf, size_t n, int dt);
    /* buf (n) of rank root to every rank. */
    void (*broadcast)(comm *c, void *buf, size_t n, int dt, int root);
    /* Moves collectives in flight along (MPI progresses only inside calls);
     * cheap, never waits. */
    void (*progress)(comm *c);
    /* Backend work issued after this sees every collective issued before
     * (NCCL: the backend's stream waits for the side stream; MPI: waits). */
    void (*join)(comm *c);
    /* Host wait until every collective issued so far and every backend op
     * issued before this call have finished, or timeout_s has passed.
     * Returns c->err.code. */
    int (*wait)(comm *c);
    /* x (n doubles, host memory) = the sum or max over ranks; waits. */
    int (*allreduce_host)(comm *c, double *x, int n, int op);
} comm_ops;

struct comm {
    const comm_ops *ops;
    const gpt_dist *job; /* the job it joins: job->failed ends it without goodbyes */
    const char *name;    /* "nccl", "mpi" */
    int rank, size;
    double timeout_s;
    gpt_error err;
};

/* Records a failure in c->err unless one is there already. */
void comm_fail(comm *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Bytes of one element of dt. */
size_t comm_dt_size(int dt);

/* The job a process belongs to (dist.c): its rank, size and local rank,
 * and how it was launched, which decides how the ranks first reach each
 * other (bootstrap): MPI, or the pipe the `gpt train --gpus` launcher
 * hands each rank. */
struct gpt_dist {
    int rank, size, local_rank;
    int launcher;  /* DIST_MPI, DIST_PIPE or DIST_NONE */
    int id_fd;     /* DIST_PIPE: rank 0 writes, the others read */
    int mpi_owned; /* we called MPI_Init, so we call MPI_Finalize */
    int failed;    /* gpt_dist_fail: leave without waiting for the others */
    double timeout_s;
};
enum { DIST_NONE = 0, DIST_MPI = 1, DIST_PIPE = 2 };

/* Sends n bytes of rank 0 to every rank through the bootstrap. */
int dist_bootstrap_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err);

/* Constructors, each bound to one backend's memory. The unavailable ones
 * (not compiled in) fail with a message naming what to install. */
int comm_mpi_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err);
int comm_nccl_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err);

/* MPI world setup and teardown (comm_mpi.c). */
int dist_mpi_init(gpt_dist *d, gpt_error *err);
void dist_mpi_finalize(gpt_dist *d);
int dist_mpi_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err);

#endif
