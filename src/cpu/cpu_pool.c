/*
 * cpu_pool.c - worker threads that claim tasks from one counter (see
 * cpu_pool.h for why). A job is published as a 64-bit ticket: the job's
 * generation in the high half, the number of tasks not yet claimed in the
 * low half. A thread claims a task by compare-and-swap on the ticket, so a
 * thread that wakes late, after its job was finished and the next one
 * published, cannot take a task of a job it has not read.
 *
 * Whether a task is left must come from the ticket itself: the job's other
 * fields (fn, ctx, ntasks) are rewritten by the next job before its ticket
 * is published, and a thread that compared the old ticket's next-task
 * index with the new job's larger ntasks claimed a task that did not exist
 * and ran it with the next job's fn on a context half rewritten (gpt serve
 * crashed so under load). Only after a successful claim is the job fixed.
 */
#define _GNU_SOURCE
#include "cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins before it sleeps, and how long the caller
 * spins for claimed tasks before it yields its core: long enough to cover
 * the gap between two ops of a step, short enough that a process that
 * shares the machine gets the cores back at once. */
#define SPIN_NS 50000

/* Solo mode. When the caller has finished its share of a job and then
 * waits longer for claimed tasks than its own share took (and at least
 * STALL_NS), a worker holding a task was most likely descheduled: another
 * process wants the core. For the next solo period the caller then runs
 * every job alone (the same tasks, so the same bits), which for the short
 * jobs of decoding is faster than waiting a scheduler slice for the
 * descheduled worker at every op. The period starts at SOLO_MIN_NS and
 * doubles while stalls recur right after it (up to SOLO_MAX_NS), so a
 * machine that stays busy costs one stall per long period; CLEAN_JOBS
 * pooled jobs without a stall reset it. */
#define STALL_NS 200000
#define SOLO_MIN_NS 20000000ull
#define SOLO_MAX_NS 640000000ull
#define CLEAN_JOBS 2000

#define MAX_THREADS 256

typedef struct {
    pthread_t tid;
    float *pack;
    size_t pack_cap;
} worker;

static struct {
    int refs, n;                 /* acquisitions; threads including the caller */
    worker w[MAX_THREADS];       /* w[0] is the caller's slot (no thread) */
    pthread_mutex_t busy;        /* held by the thread running a job */
    pthread_mutex_t mu;          /* sleeping and waking */
    pthread_cond_t cv;
    _Atomic uint64_t ticket;     /* generation << 32 | tasks not yet claimed */
    _Atomic int done;            /* tasks finished in this generation */
    _Atomic int sleepers;
    _Atomic int quit;
    _Atomic uint32_t wake_seq;
    _Atomic uint64_t solo_until; /* now_ns() before which jobs run on the caller alone */
    uint64_t solo_ns;            /* the current solo period (0: none yet) */
    int clean;                   /* pooled jobs since the last stall */
    float *shared;               /* cpu_pool_shared_buffer */
    size_t shared_cap;
    cpu_task_fn fn;              /* the job of the current generation */
    void *ctx;
    int ntasks;
} P = {.busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER};

static pthread_mutex_t g_setup = PTHREAD_MUTEX_INITIALIZER;
static int g_solo_off; /* cpu_pool_test_solo */
static _Thread_local int t_index = -1; /* pool slot of this thread, -1 outside a job */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cpu_available_cores(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    return 1;
}

/* Claims and runs tasks of generation gen until none is left; returns
 * how many it ran. */
static int run_tasks(uint32_t gen) {
    int ran = 0;
    for (;;) {
        uint64_t t = atomic_load(&P.ticket);
        uint32_t left = (uint32_t)t;
        if ((uint32_t)(t >> 32) != gen || left == 0) break;
        if (!atomic_compare_exchange_weak(&P.ticket, &t, t - 1)) continue;
        /* Claimed: the job cannot change while one of its tasks is
         * unfinished, so its fields may be read now (not before). Tasks go
         * out in order, 0 first. */
        P.fn(P.ctx, P.ntasks - (int)left);
        ran++;
    }
    return ran;
}

static void *worker_main(void *arg) {
    int idx = (int)(intptr_t)arg;
    uint32_t seen = 0;
    for (;;) {
        uint64_t start = now_ns();
        uint32_t gen;
        int spins = 0;
        /* Spin for a new generation, then sleep on wake_seq. */
        while ((gen = (uint32_t)(atomic_load(&P.ticket) >> 32)) == seen && !atomic_load(&P.quit)) {
            CPU_RELAX();
            if (++spins % 64 == 0 && now_ns() - start > SPIN_NS) {
                pthread_mutex_lock(&P.mu);
                uint32_t seq = atomic_load(&P.wake_seq);
                atomic_fetch_add(&P.sleepers, 1);
                while ((uint32_t)(atomic_load(&P.ticket) >> 32) == seen &&
                       !atomic_load(&P.quit) && atomic_load(&P.wake_seq) == seq)
                    pthread_cond_wait(&P.cv, &P.mu);
                atomic_fetch_sub(&P.sleepers, 1);
                pthread_mutex_unlock(&P.mu);
                start = now_ns();
            }
        }
        if (atomic_load(&P.quit)) return NULL;
        seen = gen;
        t_index = idx;
        int ran = run_tasks(gen);
        t_index = -1;
        if (ran) atomic_fetch_add(&P.done, ran);
    }
}

static void stop_workers(void) {
    atomic_store(&P.quit, 1);
    pthread_mutex_lock(&P.mu);
    atomic_fetch_add(&P.wake_seq, 1);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i < P.n; i++) pthread_join(P.w[i].tid, NULL);
    atomic_store(&P.quit, 0);
    for (int i = 1; i < P.n; i++) {
        free(P.w[i].pack);
        P.w[i].pack = NULL;
        P.w[i].pack_cap = 0;
    }
    P.n = 1;
}

static int start_workers(int n) {
    int rc = 0;
    P.n = 1;
    atomic_store(&P.solo_until, 0); /* a new pool starts pooled */
    P.solo_ns = 0;
    P.clean = 0;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&P.w[i].tid, NULL, worker_main, (void *)(intptr_t)i)) {
            rc = -1;
            break;
        }
        P.n = i + 1;
    }
    return rc;
}

int cpu_pool_acquire(int n) {
    if (n <= 0) n = cpu_available_cores();
    if (n > MAX_THREADS) n = MAX_THREADS;
    pthread_mutex_lock(&g_setup);
    pthread_mutex_lock(&P.busy);
    int rc = 0;
    if (P.refs == 0 || n != P.n) {
        if (P.n > 1) stop_workers();
        rc = start_workers(n);
    }
    P.refs++;
    pthread_mutex_unlock(&P.busy);
    pthread_mutex_unlock(&g_setup);
    return rc;
}

void cpu_pool_release(void) {
    pthread_mutex_lock(&g_setup);
    pthread_mutex_lock(&P.busy);
    if (P.refs > 0 && --P.refs == 0) {
        if (P.n > 1) stop_workers();
        free(P.w[0].pack);
        P.w[0].pack = NULL;
        P.w[0].pack_cap = 0;
        free(P.shared);
        P.shared = NULL;
        P.shared_cap = 0;
    }
    pthread_mutex_unlock(&P.busy);
    pthread_mutex_unlock(&g_setup);
}

int cpu_pool_threads(void) { return P.n > 0 ? P.n : 1; }

int cpu_thread_index(void) { return t_index > 0 ? t_index : 0; }

float *cpu_pool_pack_buffer(size_t floats) {
    if (t_index < 0) return NULL; /* not inside a job of the pool */
    worker *w = &P.w[t_index];
    if (w->pack_cap < floats) {
        free(w->pack);
        w->pack = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        w->pack_cap = w->pack ? floats : 0;
    }
    return w->pack;
}

float *cpu_pool_shared_buffer(size_t floats) {
    if (t_index >= 0 || P.refs == 0) return NULL;
    if (P.shared_cap < floats) {
        free(P.shared);
        P.shared = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        P.shared_cap = P.shared ? floats : 0;
    }
    return P.shared;
}

void cpu_parallel(int n, cpu_task_fn fn, void *ctx) {
    if (n <= 0) return;
    /* Nested call, a single task, a one-thread pool, solo mode, or
     * another thread holding the pool: run here. */
    uint64_t t0 = 0;
    if (t_index < 0 && n > 1 && P.n > 1) {
        t0 = now_ns();
        if (!g_solo_off && t0 < atomic_load_explicit(&P.solo_until, memory_order_relaxed)) t0 = 0;
    }
    if (!t0 || pthread_mutex_trylock(&P.busy)) {
        int outer = t_index;
        if (outer < 0) t_index = 0;
        for (int i = 0; i < n; i++) fn(ctx, i);
        t_index = outer;
        return;
    }
    P.fn = fn;
    P.ctx = ctx;
    P.ntasks = n;
    atomic_store(&P.done, 0);
    uint32_t gen = (uint32_t)(atomic_load(&P.ticket) >> 32) + 1;
    atomic_store(&P.ticket, (uint64_t)gen << 32 | (uint32_t)n);
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        atomic_fetch_add(&P.wake_seq, 1);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    t_index = 0;
    int ran = run_tasks(gen);
    t_index = -1;
    /* Wait only for tasks other threads have claimed. */
    uint64_t start = 0;
    int stalled = 0;
    int spins = 0;
    while (atomic_load(&P.done) + ran < n) {
        CPU_RELAX();
        if (++spins % 64 == 0) {
            if (!start) start = now_ns();
            else if (now_ns() - start > SPIN_NS) sched_yield();
        }
    }
    if (start) { /* waited: how long, against the caller's own share */
        uint64_t t1 = now_ns(), own = start - t0, wait = t1 - start;
        stalled = !g_solo_off && wait > STALL_NS && wait > own;
        if (stalled) {
            /* a stall soon after a solo period: the machine is still busy */
            int again = P.clean < CLEAN_JOBS && P.solo_ns;
            P.solo_ns = again ? (P.solo_ns * 2 < SOLO_MAX_NS ? P.solo_ns * 2 : SOLO_MAX_NS)
                              : SOLO_MIN_NS;
            P.clean = 0;
            atomic_store_explicit(&P.solo_until, t1 + P.solo_ns, memory_order_relaxed);
        }
    }
    if (!stalled && P.clean < CLEAN_JOBS) P.clean++;
    pthread_mutex_unlock(&P.busy);
}

#ifdef GPT_TEST_BUILD
void cpu_pool_test_solo(int on) { g_solo_off = !on; }
#endif

typedef struct {
    cpu_range_fn fn;
    void *ctx;
    size_t n, chunk;
} range_job;

static void range_task(void *ctx, int task) {
    const range_job *r = ctx;
    size_t lo = (size_t)task * r->chunk, hi = lo + r->chunk < r->n ? lo + r->chunk : r->n;
    r->fn(r->ctx, lo, hi);
}

void cpu_parallel_range(size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx) {
    if (n == 0) return;
    if (min_chunk < 1) min_chunk = 1;
    size_t tasks = 8 * (size_t)cpu_pool_threads();
    size_t chunk = (n + tasks - 1) / tasks;
    if (chunk < min_chunk) chunk = min_chunk;
    range_job r = {fn, ctx, n, chunk};
    cpu_parallel((int)((n + chunk - 1) / chunk), range_task, &r);
}
