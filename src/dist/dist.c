/*
 * dist.c - the job a process belongs to: rank, size and local rank from
 * MPI (mpirun, srun) or from the environment `gpt train --gpus` sets, the
 * bootstrap that carries NCCL's id from rank 0 to the others, and the
 * stand-ins for communicators this build lacks. The only file that knows
 * whether MPI and NCCL were compiled in.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "util.h"

void comm_fail(comm *c, int code, const char *fmt, ...) {
    if (c->err.code) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
    va_end(ap);
    c->err.code = code;
}

size_t comm_dt_size(int dt) { return dt == DT_F64 ? 8 : dt == DT_BF16 ? 2 : 4; }

#ifndef GPT_HAVE_MPI
int dist_mpi_init(gpt_dist *d, gpt_error *err) {
    (void)d;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "started by an MPI launcher, but this build has no MPI (install "
                    "libopenmpi-dev and rebuild)");
}
void dist_mpi_finalize(gpt_dist *d) { (void)d; }
int dist_mpi_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err) {
    (void)d, (void)buf, (void)n;
    return gpt_fail(err, GPT_ERR_RUNTIME, "this build has no MPI");
}
int comm_mpi_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err) {
    (void)d, (void)be;
    *out = NULL;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "data-parallel training on the CPU needs MPI: install libopenmpi-dev, "
                    "rebuild, and start the ranks with mpirun");
}
#endif

#ifndef GPT_HAVE_NCCL
int comm_nccl_create(comm **out, gpt_dist *d, gpt_backend *be, gpt_error *err) {
    (void)d, (void)be;
    *out = NULL;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "data-parallel training on GPUs needs NCCL: rebuild with make CUDA=1 where "
                    "nccl.h is found (NCCL_HOME, the CUDA toolkit or the nvidia-nccl Python "
                    "package)");
}
#endif

int gpt_dist_available(const char *what) {
#ifdef GPT_HAVE_MPI
    if (!strcmp(what, "mpi")) return 1;
#endif
#ifdef GPT_HAVE_NCCL
    if (!strcmp(what, "nccl")) return 1;
#endif
    (void)what;
    return 0;
}

/* A non-negative integer environment variable, or -1 (absent or bad). */
static long env_long(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    return *end || errno || x < 0 || x > INT_MAX ? -2 : x;
}

/* Set by mpirun (Open MPI), by Hydra (MPICH) and by PMIx launchers (srun
 * --mpi=pmix, prterun). */
static int under_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           getenv("PMI_SIZE");
}

static int from_launcher(gpt_dist *d, gpt_error *err) {
    long r = env_long(GPT_DIST_ENV_RANK), s = env_long(GPT_DIST_ENV_SIZE);
    long lr = env_long(GPT_DIST_ENV_LOCAL_RANK), fd = env_long(GPT_DIST_ENV_ID_FD);
    if (r < 0 || s < 1 || r >= s || lr < 0 || fd < 0)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s, %s, %s and %s must be set together, with 0 <= rank < size (they are "
                        "set by gpt train --gpus)",
                        GPT_DIST_ENV_RANK, GPT_DIST_ENV_SIZE, GPT_DIST_ENV_LOCAL_RANK,
                        GPT_DIST_ENV_ID_FD);
    if (fcntl((int)fd, F_GETFD) < 0)
        return gpt_fail(err, GPT_ERR_INVALID, "%s=%ld is not an open file descriptor",
                        GPT_DIST_ENV_ID_FD, fd);
    d->rank = (int)r;
    d->size = (int)s;
    d->local_rank = (int)lr;
    d->id_fd = (int)fd;
    d->launcher = DIST_PIPE;
    return GPT_OK;
}

int gpt_dist_init(gpt_dist **out, double timeout_s, gpt_error *err) {
    *out = NULL;
    if (!(timeout_s >= 0) || timeout_s > 1e9)
        return gpt_fail(err, GPT_ERR_INVALID, "the collective timeout must be in [0, 1e9] seconds");
    gpt_dist *d = calloc(1, sizeof *d);
    if (!d) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    d->size = 1;
    d->id_fd = -1;
    d->timeout_s = timeout_s > 0 ? timeout_s : 600;
    int rc = GPT_OK;
    if (getenv(GPT_DIST_ENV_RANK)) rc = from_launcher(d, err);
    else if (under_mpi()) rc = dist_mpi_init(d, err);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return GPT_OK;
}

void gpt_dist_fail(gpt_dist *d) {
    if (d) d->failed = 1;
}

void gpt_dist_free(gpt_dist *d) {
    if (!d) return;
    if (d->launcher == DIST_MPI && !d->failed) dist_mpi_finalize(d);
    if (d->id_fd >= 0) close(d->id_fd);
    free(d);
}

int gpt_dist_rank(const gpt_dist *d) { return d ? d->rank : 0; }
int gpt_dist_size(const gpt_dist *d) { return d ? d->size : 1; }
int gpt_dist_local_rank(const gpt_dist *d) { return d ? d->local_rank : 0; }
const char *gpt_dist_launcher(const gpt_dist *d) {
    return !d || d->launcher == DIST_NONE ? "none" : d->launcher == DIST_MPI ? "mpi" : "gpus";
}

/* The launcher gave rank 0 the pipe's write end and every other rank the
 * read end: rank 0 writes the bytes once per reader, each write whole
 * (n <= PIPE_BUF), and each reader takes one copy. If rank 0 dies first,
 * the readers see the end of the pipe. */
static int pipe_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err) {
    if (n > PIPE_BUF) return gpt_fail(err, GPT_ERR_INVALID, "bootstrap message too long");
    int rc = GPT_OK;
    if (d->rank == 0) {
        for (int r = 1; r < d->size && !rc; r++) {
            ssize_t w;
            do w = write(d->id_fd, buf, n);
            while (w < 0 && errno == EINTR);
            if (w != (ssize_t)n)
                rc = gpt_fail(err, GPT_ERR_RUNTIME, "rank 0 could not hand its id to the other "
                              "ranks: %s", w < 0 ? strerror(errno) : "short write");
        }
    } else {
        double deadline = gpt_now() + d->timeout_s;
        size_t got = 0;
        while (got < n && !rc) {
            double left = deadline - gpt_now();
            if (left <= 0) {
                rc = gpt_fail(err, GPT_ERR_RUNTIME,
                              "rank %d: no word from rank 0 within %.0f s of starting", d->rank,
                              d->timeout_s);
                break;
            }
            struct pollfd p = {.fd = d->id_fd, .events = POLLIN};
            int pr = poll(&p, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
            if (pr < 0 && errno != EINTR)
                rc = gpt_fail(err, GPT_ERR_RUNTIME, "poll: %s", strerror(errno));
            if (pr <= 0) continue;
            ssize_t k = read(d->id_fd, (char *)buf + got, n - got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0)
                rc = gpt_fail(err, GPT_ERR_RUNTIME,
                              "rank %d: rank 0 ended before it sent its id (see its message)",
                              d->rank);
            else got += (size_t)k;
        }
    }
    /* The pipe serves once: closing it lets a reader's end see EOF early. */
    close(d->id_fd);
    d->id_fd = -1;
    return rc;
}

int dist_bootstrap_bcast(gpt_dist *d, void *buf, size_t n, gpt_error *err) {
    if (d->size == 1) return GPT_OK;
    if (d->launcher == DIST_MPI) return dist_mpi_bcast(d, buf, n, err);
    if (d->launcher == DIST_PIPE && d->id_fd >= 0) return pipe_bcast(d, buf, n, err);
    return gpt_fail(err, GPT_ERR_INVALID, "no way to reach the other ranks (bootstrap used twice?)");
}
