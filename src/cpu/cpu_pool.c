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
 *
 * A private job (cpu_parallel_private) may end while a thread still holds
 * one of its tasks, so its fields are read before the claim instead: the
 * claim's compare-and-swap succeeds only while the job is still the
 * current one, and the caller rewrites them only after the job ended.
 * Each of its tasks then has a state word, (job serial << 2) | state: a
 * serial older than the job's means "held by a thread, not finished".
 */
#define _GNU_SOURCE
#include "cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#if defined(__linux__)
#include <sys/resource.h>
#endif
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

/* Private jobs: the caller takes a held task over after waiting
 * TAKEOVER_TASKS times its own mean task time, plus TAKEOVER_NS (a thread
 * that runs finishes its last task within about one task time of the
 * caller; one that was switched out takes a slice). Larger jobs run as
 * ordinary ones. */
#define TAKEOVER_TASKS 2
#define TAKEOVER_NS 5000
#define PRIV_MAX_TASKS 4096
#define PRIV_WORDS (CPU_PRIV_ARGS / 8)
enum { ST_COPYING = 1, ST_DONE = 2, ST_TAKEN = 3 };

typedef struct {
    pthread_t tid;
    float *pack;
    size_t pack_cap;
    float *priv; /* private results (cpu_parallel_private) */
    size_t priv_cap;
    _Atomic int inside; /* in run_tasks: cpu_pool_quiesce waits for 0 */
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
    _Atomic int ntasks;
    /* a private job's fields, read before the claim (see the top) */
    _Atomic int priv;            /* the current job is private */
    _Atomic(const cpu_priv_ops *) pops;
    _Atomic size_t pfloats;
    _Atomic uint64_t pserial;
    _Atomic uint64_t pargs[PRIV_WORDS];
    _Atomic uint64_t pstate[PRIV_MAX_TASKS];
    _Atomic long takeovers, discards;
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

/* Keeping the caller's core. Every job waits for the caller, so when
 * another process shares the caller's core the whole pool runs at the
 * caller's share of it, while a worker alone on its core has nothing to
 * do; with the hog beside a worker instead, the worker's share is all
 * that is lost (private jobs take its held task over). The scheduler
 * balances runnable threads, not this, so the caller watches its own
 * involuntary context switches: preempted in each of CONTENDED
 * consecutive CHECK_NS windows, it pins one worker (the last) to its own
 * core if that worker is pinned elsewhere, which leaves another core
 * idle and makes the scheduler move the caller or the other thread there;
 * if that worker is pinned there already (it is the one preempting the
 * caller), it pins it to the next allowed core instead. Only workers are
 * ever pinned, never the caller (the application's thread), and only to
 * cores in the affinity the pool started with. */
#define CHECK_NS 5000000
#define CONTENDED 2

static struct {
    int ok;           /* placement possible (Linux, >= 2 cores, pool of >= 2) */
    int ncpu, cpus[1024];
    int pinned;       /* the core the last worker is pinned to, -1: none */
    uint64_t next;    /* next check */
    long nivcsw;
    int hits;
} place;

static void place_start(void) {
    place.ok = 0;
    place.pinned = -1;
    place.next = 0;
    place.hits = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (P.n < 2 || sched_getaffinity(0, sizeof set, &set)) return;
    place.ncpu = 0;
    for (int c = 0; c < CPU_SETSIZE && place.ncpu < 1024; c++)
        if (CPU_ISSET(c, &set)) place.cpus[place.ncpu++] = c;
    place.ok = place.ncpu >= 2;
#endif
}

static void keep_caller_core(uint64_t now) {
#if defined(__linux__)
    if (!place.ok || now < place.next) return;
    place.next = now + CHECK_NS;
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru)) return;
    long d = ru.ru_nivcsw - place.nivcsw;
    place.nivcsw = ru.ru_nivcsw;
    if (d < 1) {
        place.hits = 0;
        return;
    }
    if (++place.hits < CONTENDED) return;
    place.hits = 0;
    int c = sched_getcpu(), target = c, k = 0;
    if (c < 0) return;
    if (place.pinned == c) {
        while (k < place.ncpu && place.cpus[k] != c) k++;
        target = place.cpus[(k + 1) % place.ncpu];
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(target, &set);
    if (pthread_setaffinity_np(P.w[P.n - 1].tid, sizeof set, &set) == 0) place.pinned = target;
#else
    (void)now;
#endif
}

/* The worker's private buffer, grown by the worker alone. */
static float *priv_buffer(worker *w, size_t floats) {
    if (w->priv_cap < floats) {
        free(w->priv);
        w->priv = malloc((floats ? floats : 1) * sizeof(float));
        w->priv_cap = w->priv ? floats : 0;
    }
    return w->priv;
}

/* A worker's run of task `task` of private job `serial`: into its private
 * buffer, published only if the caller has not taken the task over. */
static void run_private(worker *w, const cpu_priv_ops *ops, const void *args, size_t floats,
                        uint64_t serial, int task) {
    float *buf = priv_buffer(w, floats);
    if (!buf) return; /* out of memory: the caller takes it over */
    ops->run(args, task, buf);
    _Atomic uint64_t *st = &P.pstate[task];
    uint64_t s = atomic_load(st);
    if (s >> 2 < serial && atomic_compare_exchange_strong(st, &s, serial << 2 | ST_COPYING)) {
        ops->publish(args, task, buf);
        atomic_store_explicit(st, serial << 2 | ST_DONE, memory_order_release);
    } else {
        atomic_fetch_add_explicit(&P.discards, 1, memory_order_relaxed);
    }
}

/* A worker claims and runs tasks of generation gen until none is left;
 * returns how many tasks of an ordinary job it ran. */
static int run_tasks(uint32_t gen, worker *w) {
    int ran = 0, read = 0, priv = 0, n = 0;
    const cpu_priv_ops *ops = NULL;
    size_t floats = 0;
    uint64_t serial = 0;
    _Alignas(16) uint64_t args[PRIV_WORDS];
    for (;;) {
        uint64_t t = atomic_load(&P.ticket);
        uint32_t left = (uint32_t)t;
        if ((uint32_t)(t >> 32) != gen || left == 0) break;
        if (!read) { /* valid for gen if a claim below succeeds */
            priv = atomic_load_explicit(&P.priv, memory_order_relaxed);
            if (priv) {
                ops = atomic_load_explicit(&P.pops, memory_order_relaxed);
                floats = atomic_load_explicit(&P.pfloats, memory_order_relaxed);
                serial = atomic_load_explicit(&P.pserial, memory_order_relaxed);
                n = atomic_load_explicit(&P.ntasks, memory_order_relaxed);
                for (int i = 0; i < PRIV_WORDS; i++)
                    args[i] = atomic_load_explicit(&P.pargs[i], memory_order_relaxed);
            }
            read = 1;
        }
        if (!atomic_compare_exchange_weak(&P.ticket, &t, t - 1)) continue;
        /* Claimed. An ordinary job cannot change while one of its tasks is
         * unfinished, so its fields may be read now (not before). Tasks go
         * out in order, 0 first. */
        if (priv) {
            run_private(w, ops, args, floats, serial, n - (int)left);
        } else {
            P.fn(P.ctx, atomic_load_explicit(&P.ntasks, memory_order_relaxed) - (int)left);
            ran++;
        }
    }
    return ran;
}

/* The caller's claims (it writes in place). */
static int caller_tasks(uint32_t gen, int n, void (*run)(void *, int), void *arg) {
    int ran = 0;
    for (;;) {
        uint64_t t = atomic_load(&P.ticket);
        uint32_t left = (uint32_t)t;
        if ((uint32_t)(t >> 32) != gen || left == 0) break;
        if (!atomic_compare_exchange_weak(&P.ticket, &t, t - 1)) continue;
        run(arg, n - (int)left);
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
        /* before run_tasks reads the ticket: a cpu_pool_quiesce that sees
         * 0 here knows this thread cannot claim a task of a job that ended */
        atomic_store(&P.w[idx].inside, 1);
        t_index = idx;
        int ran = run_tasks(gen, &P.w[idx]);
        t_index = -1;
        if (ran) atomic_fetch_add(&P.done, ran);
        atomic_store_explicit(&P.w[idx].inside, 0, memory_order_release);
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
        free(P.w[i].priv);
        P.w[i].priv = NULL;
        P.w[i].priv_cap = 0;
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
    place_start();
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

/* Publishes the job whose fields are set: its ticket, and a wake-up for
 * sleeping workers. Returns its generation. */
static uint32_t publish(int n) {
    uint32_t gen = (uint32_t)(atomic_load(&P.ticket) >> 32) + 1;
    atomic_store(&P.ticket, (uint64_t)gen << 32 | (uint32_t)n);
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        atomic_fetch_add(&P.wake_seq, 1);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    return gen;
}

struct plain_job {
    cpu_task_fn fn;
    void *ctx;
};
static void call_task(void *job, int task) {
    struct plain_job *j = job;
    j->fn(j->ctx, task);
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
    atomic_store_explicit(&P.ntasks, n, memory_order_relaxed);
    atomic_store_explicit(&P.priv, 0, memory_order_relaxed);
    atomic_store(&P.done, 0);
    uint32_t gen = publish(n);
    t_index = 0;
    int ran = caller_tasks(gen, n, call_task, &(struct plain_job){fn, ctx});
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

struct priv_job {
    const cpu_priv_ops *ops;
    const void *args;
    uint64_t serial;
};

/* A task the caller claimed: in place, then marked done. */
static void caller_private(void *job, int task) {
    struct priv_job *j = job;
    j->ops->run(j->args, task, NULL);
    atomic_store_explicit(&P.pstate[task], j->serial << 2 | ST_DONE, memory_order_relaxed);
}

static void inplace_task(void *ctx, int task) {
    struct priv_job *j = ctx;
    j->ops->run(j->args, task, NULL);
}

size_t cpu_private_chunk(size_t n, size_t min_chunk) {
    size_t tasks = 8 * (size_t)cpu_pool_threads(), chunk = (n + tasks - 1) / tasks;
    return chunk > min_chunk ? chunk : min_chunk > 0 ? min_chunk : 1;
}

void cpu_parallel_private(int n, const cpu_priv_ops *ops, const void *args, size_t args_size,
                          size_t priv_floats) {
    if (n <= 0) return;
    struct priv_job j = {ops, args, 0};
    /* Too large for the state words or the copy of args: an ordinary job
     * (nested calls, one task or one thread: on the caller, as there). */
    if (n > PRIV_MAX_TASKS || args_size > CPU_PRIV_ARGS || t_index >= 0 || n == 1 || P.n <= 1 ||
        pthread_mutex_trylock(&P.busy)) {
        cpu_parallel(n, inplace_task, &j);
        return;
    }
    j.serial = atomic_load_explicit(&P.pserial, memory_order_relaxed) + 1;
    _Alignas(16) uint64_t words[PRIV_WORDS] = {0};
    memcpy(words, args, args_size);
    for (int i = 0; i < PRIV_WORDS; i++)
        atomic_store_explicit(&P.pargs[i], words[i], memory_order_relaxed);
    atomic_store_explicit(&P.pops, ops, memory_order_relaxed);
    atomic_store_explicit(&P.pfloats, priv_floats, memory_order_relaxed);
    atomic_store_explicit(&P.pserial, j.serial, memory_order_relaxed);
    atomic_store_explicit(&P.ntasks, n, memory_order_relaxed);
    atomic_store_explicit(&P.priv, 1, memory_order_relaxed);
    uint64_t t0 = now_ns();
    keep_caller_core(t0);
    uint32_t gen = publish(n);
    t_index = 0;
    int ran = caller_tasks(gen, n, caller_private, &j);
    if (ran < n) {
        /* Tasks held by others: wait for each to be published, or take it
         * over once it is late. Its state's serial is older than ours until
         * its thread starts publishing (ST_COPYING: wait, the copy is short)
         * or we take it (ST_TAKEN: its thread will discard its result). */
        uint64_t t1 = now_ns(), own = ran ? (t1 - t0) / (uint64_t)ran : t1 - t0;
        uint64_t late = TAKEOVER_TASKS * own + TAKEOVER_NS, done = j.serial << 2 | ST_DONE;
        for (int t = 0; t < n; t++) {
            int spins = 0;
            for (;;) {
                uint64_t s = atomic_load_explicit(&P.pstate[t], memory_order_acquire);
                if (s == done) break;
                if (++spins % 16 == 0) {
                    uint64_t waited = now_ns() - t1;
                    if (s >> 2 < j.serial && waited > late) {
                        if (atomic_compare_exchange_strong(&P.pstate[t], &s,
                                                           j.serial << 2 | ST_TAKEN)) {
                            ops->run(args, t, NULL);
                            atomic_fetch_add_explicit(&P.takeovers, 1, memory_order_relaxed);
                            break;
                        }
                        continue;
                    }
                    if (waited > SPIN_NS) sched_yield(); /* a copy held up */
                }
                CPU_RELAX();
            }
        }
    }
    t_index = -1;
    pthread_mutex_unlock(&P.busy);
}

void cpu_pool_quiesce(void) {
    for (int i = 1; i < P.n; i++) {
        int spins = 0;
        while (i != t_index && atomic_load(&P.w[i].inside)) {
            CPU_RELAX();
            if (++spins > 1000) sched_yield();
        }
    }
}

#ifdef GPT_TEST_BUILD
void cpu_pool_test_solo(int on) { g_solo_off = !on; }
void cpu_pool_test_stats(long *takeovers, long *discards) {
    *takeovers = atomic_load(&P.takeovers);
    *discards = atomic_load(&P.discards);
}
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
