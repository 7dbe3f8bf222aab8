/*
 * test_dist_nccl.c - the NCCL communicator's collectives on every GPU of
 * the machine (up to 4; one works too: a one-rank NCCL job runs the same
 * code), against values worked out by hand.
 *
 * The program starts one copy of itself per GPU with the environment that
 * gpt train --gpus gives its ranks (GPT_DIST_*, a pipe for NCCL's id; a
 * process must not fork after CUDA starts, so the copies are exec'd and
 * this one never touches CUDA), collects their output and adds up their
 * summary lines.
 *
 * Values are small integers, exact in fp32 and bf16 and in their sums, so
 * every check is exact; the order checks put backend ops before and after
 * each collective, so that a collective that does not wait for the
 * backend's stream, or work that does not wait for the collective, reads
 * or leaves the wrong integers.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test.h"
#include "backend.h"
#include "dist/comm.h"
#include "gpt_dist.h"

static int R, rank;
static gpt_backend *be;

static float val(int r, size_t i) { return (float)((r + 1) * 10 + (int)(i % 7)); }

/* Device buffer of n elements of class cls holding h. */
static void *put(const float *h, size_t n, int cls) {
    void *d = be->ops->alloc(be, n * be->cls_size[cls]);
    be->ops->upload(be, d, h, n, cls);
    return d;
}

static void run_wait(comm *c) {
    c->ops->join(c);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
}

static void check_allreduce(comm *c, size_t n, int op, int cls) {
    const char *name = op == RED_SUM ? "sum" : op == RED_AVG ? "mean" : "max";
    test_begin("rank %d: allreduce %s n=%zu %s", rank, name, n, cls == GPT_CLS_PARAM ? "bf16" : "fp32");
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = val(rank, i);
    void *d = put(x, n, cls);
    c->ops->allreduce(c, d, n, be->cls_size[cls] == 2 ? DT_BF16 : DT_F32, op);
    run_wait(c);
    be->ops->download(be, x, d, n, cls);
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
    EXPECT(bad == 0, "%zu of %zu wrong (x[0] = %g)", bad, n, x[0]);
    be->ops->free(be, d);
    free(x);
    test_end();
}

static void check_scatter_gather(comm *c, size_t n) {
    test_begin("rank %d: reduce_scatter then allgather in place, %zu a rank", rank, n);
    size_t all = (size_t)R * n;
    float *x = malloc(all * sizeof *x);
    for (size_t i = 0; i < all; i++) x[i] = val(rank, i);
    float *d = put(x, all, GPT_CLS_F32);
    c->ops->reduce_scatter(c, d, n, DT_F32);
    run_wait(c);
    be->ops->download(be, x, d + (size_t)rank * n, n, GPT_CLS_F32);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) want += val(r, (size_t)rank * n + i);
        bad += x[i] != want;
    }
    EXPECT(bad == 0, "reduce_scatter: %zu of %zu wrong", bad, n);
    c->ops->allgather(c, d, n, DT_F32);
    run_wait(c);
    be->ops->download(be, x, d, all, GPT_CLS_F32);
    bad = 0;
    for (size_t i = 0; i < all; i++) {
        double want = 0;
        for (int r = 0; r < R; r++) want += val(r, i);
        bad += x[i] != want;
    }
    EXPECT(bad == 0, "allgather: %zu of %zu wrong", bad, all);
    be->ops->free(be, d);
    free(x);
    test_end();
}

static void check_broadcast(comm *c, size_t n, int root) {
    test_begin("rank %d: broadcast of bf16 from rank %d, n=%zu", rank, root, n);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = rank == root ? (float)(i % 200) : -1;
    void *d = put(x, n, GPT_CLS_PARAM);
    c->ops->broadcast(c, d, n, be->cls_size[GPT_CLS_PARAM] == 2 ? DT_BF16 : DT_F32, root);
    run_wait(c);
    be->ops->download(be, x, d, n, GPT_CLS_PARAM);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += x[i] != (float)(i % 200);
    EXPECT(bad == 0, "%zu of %zu wrong", bad, n);
    be->ops->free(be, d);
    free(x);
    test_end();
}

/* The side stream must see the backend's earlier ops and the backend's
 * later ops must see the collectives: a memset before, eight all-reduces
 * in flight, and a sum on the backend's stream after the join. */
static void check_order(comm *c) {
    test_begin("rank %d: collectives ordered against the backend's stream", rank);
    enum { K = 8, N = 1 << 20 };
    float *x = malloc((size_t)K * N * sizeof *x);
    for (size_t i = 0; i < (size_t)K * N; i++) x[i] = 1;
    float *d = put(x, (size_t)K * N, GPT_CLS_F32);
    float *out = put(x, 1, GPT_CLS_F32);
    for (int k = 0; k < K; k++) {
        /* Each buffer is zeroed on the backend's stream right before its
         * all-reduce: a collective that ran early would sum the ones. */
        be->ops->memset0(be, d + (size_t)k * N, N * 4);
        be->ops->upload(be, d + (size_t)k * N, x, 1000, GPT_CLS_F32);
        c->ops->allreduce(c, d + (size_t)k * N, N, DT_F32, RED_SUM);
    }
    c->ops->join(c);
    be->ops->sum_f32(be, out, d, (size_t)K * N, 0);
    EXPECT(c->ops->wait(c) == 0, "%s", c->err.msg);
    float s = 0;
    be->ops->download(be, &s, out, 1, GPT_CLS_F32);
    EXPECT(s == (float)K * 1000 * R, "sum %g, want %g", s, (double)K * 1000 * R);
    be->ops->free(be, d);
    be->ops->free(be, out);
    free(x);
    test_end();
}

static void check_host(comm *c) {
    test_begin("rank %d: allreduce_host sum and max of doubles", rank);
    double s[2] = {rank + 0.5, -rank}, mx[2] = {rank, -rank};
    EXPECT(c->ops->allreduce_host(c, s, 2, RED_SUM) == 0, "%s", c->err.msg);
    EXPECT(c->ops->allreduce_host(c, mx, 2, RED_MAX) == 0, "%s", c->err.msg);
    double tri = R * (R - 1) / 2.0;
    EXPECT(s[0] == tri + 0.5 * R && s[1] == -tri, "sums %g %g", s[0], s[1]);
    EXPECT(mx[0] == R - 1 && mx[1] == 0, "max %g %g", mx[0], mx[1]);
    test_end();
}

static int rank_main(void) {
    gpt_error err = {0};
    gpt_dist *d = NULL;
    if (gpt_dist_init(&d, 60, &err)) {
        printf("rank: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    rank = gpt_dist_rank(d);
    R = gpt_dist_size(d);
    gpt_runtime rt = {.device = "cuda", .precision = GPT_PREC_BF16,
                      .device_index = gpt_dist_local_rank(d)};
    comm *c = NULL;
    test_begin("rank %d: NCCL communicator on GPU %d of %d ranks", rank, rt.device_index, R);
    int ok = !gpt_backend_create(&be, &rt, &err) && !comm_nccl_create(&c, d, be, &err);
    EXPECT(ok, "%s", err.msg);
    test_end();
    if (ok) {
        gpt_shape s = {.B = 1, .T = 1, .C = 64, .NH = 1, .F = 64, .V = 64, .Vp = 64, .L = 1,
                       .maxT = 1, .n_params = 1 << 23};
        be->ops->reserve(be, &s);
        check_allreduce(c, 1, RED_SUM, GPT_CLS_F32);
        check_allreduce(c, 1000003, RED_SUM, GPT_CLS_F32);
        check_allreduce(c, 4099, RED_AVG, GPT_CLS_F32);
        check_allreduce(c, 4099, RED_MAX, GPT_CLS_F32);
        check_allreduce(c, 100003, RED_SUM, GPT_CLS_PARAM);
        check_scatter_gather(c, 1);
        check_scatter_gather(c, 100003);
        check_broadcast(c, 70001, 0);
        check_broadcast(c, 70001, R - 1);
        check_order(c);
        check_host(c);
        c->ops->destroy(c);
    }
    gpt_backend_destroy(be);
    gpt_dist_free(d);
    return test_summary();
}

/* GPUs of this machine, without starting CUDA here (nvidia-smi -L). */
static int count_gpus(void) {
    FILE *p = popen("nvidia-smi -L 2>/dev/null", "r");
    int n = 0;
    char line[512];
    while (p && fgets(line, sizeof line, p))
        if (!strncmp(line, "GPU ", 4)) n++;
    if (p) pclose(p);
    return n < 1 ? 1 : n > 4 ? 4 : n;
}

int main(void) {
    if (getenv(GPT_DIST_ENV_RANK)) return rank_main();
    int n = count_gpus(), idp[2], outp[4][2];
    pid_t pid[4];
    if (pipe(idp)) return 1;
    for (int r = 0; r < n; r++) {
        if (pipe(outp[r])) return 1;
        pid[r] = fork();
        if (pid[r] == 0) {
            dup2(outp[r][1], 1);
            close(outp[r][0]);
            close(r == 0 ? idp[0] : idp[1]);
            char v[16];
            snprintf(v, sizeof v, "%d", r);
            setenv(GPT_DIST_ENV_RANK, v, 1);
            setenv(GPT_DIST_ENV_LOCAL_RANK, v, 1);
            snprintf(v, sizeof v, "%d", n);
            setenv(GPT_DIST_ENV_SIZE, v, 1);
            snprintf(v, sizeof v, "%d", r == 0 ? idp[1] : idp[0]);
            setenv(GPT_DIST_ENV_ID_FD, v, 1);
            execl("/proc/self/exe", "test_dist_nccl", (char *)NULL);
            _exit(127);
        }
        close(outp[r][1]);
    }
    close(idp[0]);
    close(idp[1]);
    int passed = 0, failed = 0;
    for (int r = 0; r < n; r++) {
        FILE *f = fdopen(outp[r][0], "r");
        char line[1024];
        int p = -1, q = -1;
        while (f && fgets(line, sizeof line, f)) {
            if (sscanf(line, "%d passed, %d failed", &p, &q) == 2) continue;
            fputs(line, stdout);
        }
        if (f) fclose(f);
        int st = 0;
        waitpid(pid[r], &st, 0);
        if (p < 0 || !WIFEXITED(st) || (WEXITSTATUS(st) && !q)) {
            printf("FAIL rank %d ended without its summary (status %d)\n", r, st);
            q = (q < 0 ? 0 : q) + 1;
            p = p < 0 ? 0 : p;
        }
        passed += p, failed += q;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
