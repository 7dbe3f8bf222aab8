/*
 * comm_check.c - the MPI communicator's collectives against values worked
 * out by hand, on 2 or more ranks: run by tests/test_dist_mpi.sh as
 *   mpirun -np N build/tests/dist/comm_check
 * Every rank checks its own results and prints them with its rank in each
 * case name; the exit status is non-zero if any rank saw a failure.
 *
 * The values are small integers (sums of a few of them stay exact in fp32),
 * so every check is exact equality: a misplaced block or a missed rank
 * shows as a wrong integer, not as rounding.
 */
#include <unistd.h>

#include "../test.h"
#include "dist/comm.h"
#include "util.h"
#include "gpt_dist.h"

static int R, rank;

/* Rank r's value at element i: small, distinct per rank and position. */
static float val(int r, size_t i) { return (float)((r + 1) * 10 + (int)(i % 7)); }

static void check_allreduce(comm *c, size_t n, int op) {
    const char *name = op == RED_SUM ? "sum" : op == RED_AVG ? "mean" : "max";
    test_begin("rank %d: allreduce %s n=%zu", rank, name, n);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = val(rank, i);
    c->ops->allreduce(c, x, n, DT_F32, op);
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) {
            double v = val(r, i);
            want = op == RED_MAX ? (v > want ? v : want) : want + v;
        }
        if (op == RED_AVG) want /= R;
        bad += fabs(x[i] - want) > 1e-6 * want;
    }
    EXPECT(bad == 0, "%zu of %zu elements wrong (x[0] = %g)", bad, n, x[0]);
    free(x);
    test_end();
}

static void check_reduce_scatter_allgather(comm *c, size_t n) {
    test_begin("rank %d: reduce_scatter then allgather in place, %zu a rank", rank, n);
    float *x = malloc((size_t)R * n * sizeof *x);
    for (size_t i = 0; i < (size_t)R * n; i++) x[i] = val(rank, i);
    c->ops->reduce_scatter(c, x, n, DT_F32);
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    size_t bad = 0;
    for (size_t i = (size_t)rank * n; i < (size_t)(rank + 1) * n; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) want += val(r, i);
        bad += x[i] != want;
    }
    EXPECT(bad == 0, "reduce_scatter: %zu of this rank's %zu wrong", bad, n);
    /* Every block gets its owner's reduced values. */
    c->ops->allgather(c, x, n, DT_F32);
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    bad = 0;
    for (size_t i = 0; i < (size_t)R * n; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) want += val(r, i);
        bad += x[i] != want;
    }
    EXPECT(bad == 0, "allgather: %zu of %zu wrong", bad, (size_t)R * n);
    free(x);
    test_end();
}

static void check_broadcast(comm *c, size_t n, int root) {
    test_begin("rank %d: broadcast from rank %d, n=%zu, bf16 as 16-bit words", rank, root, n);
    uint16_t *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (uint16_t)(rank == root ? 1000 + i % 5000 : 7);
    c->ops->broadcast(c, x, n, DT_BF16, root);
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += x[i] != 1000 + i % 5000;
    EXPECT(bad == 0, "%zu of %zu wrong", bad, n);
    free(x);
    test_end();
}

/* Several collectives in flight at once, moved along by progress() while
 * the rank "computes", as the backward pass does. */
static void check_in_flight(comm *c) {
    test_begin("rank %d: 8 all-reduces in flight, progressed, then joined", rank);
    enum { K = 8, N = 300007 };
    float *x = malloc((size_t)K * N * sizeof *x);
    for (int k = 0; k < K; k++) {
        for (size_t i = 0; i < N; i++) x[(size_t)k * N + i] = val(rank, i + k);
        c->ops->allreduce(c, x + (size_t)k * N, N, DT_F32, RED_SUM);
        for (int p = 0; p < 10; p++) {
            c->ops->progress(c);
            usleep(100);
        }
    }
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    size_t bad = 0;
    for (int k = 0; k < K; k++)
        for (size_t i = 0; i < N; i++) {
            double want = 0;
            for (int r = 0; r < R; r++) want += val(r, i + k);
            bad += x[(size_t)k * N + i] != want;
        }
    EXPECT(bad == 0, "%zu wrong", bad);
    free(x);
    test_end();
}

static void check_host(comm *c) {
    test_begin("rank %d: allreduce_host sum and max of doubles", rank);
    double s[3] = {rank + 0.5, 1e-3 * rank, -rank}, mx[2] = {rank, -rank};
    EXPECT(c->ops->allreduce_host(c, s, 3, RED_SUM) == 0, "%s", c->err.msg);
    EXPECT(c->ops->allreduce_host(c, mx, 2, RED_MAX) == 0, "%s", c->err.msg);
    double n = R, tri = n * (n - 1) / 2;
    EXPECT(fabs(s[0] - (tri + 0.5 * n)) < 1e-12 && fabs(s[1] - 1e-3 * tri) < 1e-12 &&
               s[2] == -tri,
           "sums %g %g %g", s[0], s[1], s[2]);
    EXPECT(mx[0] == R - 1 && mx[1] == 0, "max %g %g", mx[0], mx[1]);
    test_end();
}

/* Rank 0 waits for a collective the others issue only after its deadline:
 * the wait must end with the timeout's message, not hang. The others then
 * match it, so that the job can end cleanly. */
static void check_timeout(gpt_dist *d, gpt_backend *be) {
    test_begin("rank %d: a collective no other rank joins fails after the timeout", rank);
    comm *c = NULL;
    gpt_error err = {0};
    double saved = d->timeout_s;
    d->timeout_s = 1;
    EXPECT(comm_mpi_create(&c, d, be, &err) == 0, "%s", err.msg);
    d->timeout_s = saved;
    if (!c) return;
    /* static: rank 0's request outlives this call (it completes later) */
    static float x[4] = {1, 2, 3, 4};
    if (rank == 0) {
        double t0 = gpt_now();
        c->ops->allreduce(c, x, 4, DT_F32, RED_SUM);
        int rc = c->ops->wait(c);
        double t = gpt_now() - t0;
        EXPECT(rc == GPT_ERR_RUNTIME && strstr(c->err.msg, "has not finished after 1 s"),
               "rc %d: %s", rc, c->err.msg);
        EXPECT(t >= 0.9 && t < 30, "gave up after %.2f s", t);
    } else {
        usleep(2500 * 1000);
        c->ops->allreduce(c, x, 4, DT_F32, RED_SUM);
    }
    test_end();
    /* Rank 0's request completes once both took part; the other ranks
     * wait for it, moved along by rank 0's next collective. */
    if (rank) c->ops->wait(c);
    else c->err.code = 0;
    c->ops->destroy(c);
}

int main(void) {
    gpt_error err = {0};
    gpt_dist *d = NULL;
    if (gpt_dist_init(&d, 30, &err) || strcmp(gpt_dist_launcher(d), "mpi")) {
        printf("comm_check: run under mpirun (%s)\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    rank = gpt_dist_rank(d);
    R = gpt_dist_size(d);
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32, .threads = 1};
    gpt_backend *be = NULL;
    comm *c = NULL;
    if (gpt_backend_create(&be, &rt, &err) || comm_mpi_create(&c, d, be, &err)) {
        printf("comm_check: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    test_begin("rank %d: ranks and sizes", rank);
    EXPECT(c->rank == rank && c->size == R && R >= 2, "rank %d size %d", c->rank, c->size);
    EXPECT(gpt_dist_local_rank(d) == rank, "local rank %d on one machine", gpt_dist_local_rank(d));
    test_end();
    check_allreduce(c, 1, RED_SUM);
    check_allreduce(c, 1000003, RED_SUM);
    check_allreduce(c, 4099, RED_AVG);
    check_allreduce(c, 4099, RED_MAX);
    check_reduce_scatter_allgather(c, 1);
    check_reduce_scatter_allgather(c, 100003);
    check_broadcast(c, 70001, 0);
    check_broadcast(c, 70001, R - 1);
    check_in_flight(c);
    check_host(c);
    check_timeout(d, be);
    test_begin("rank %d: the communicator still works after another one timed out", rank);
    double one = 1;
    EXPECT(c->ops->allreduce_host(c, &one, 1, RED_SUM) == 0 && one == R, "%s (%g)", c->err.msg,
           one);
    test_end();
    c->ops->destroy(c);
    gpt_backend_destroy(be);
    gpt_dist_free(d);
    return test_summary();
}
