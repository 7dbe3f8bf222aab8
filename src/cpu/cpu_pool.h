/*
 * cpu_pool.h - the CPU backend's worker threads.
 *
 * Work is cut into independent tasks that threads claim one at a time from
 * a shared counter; the calling thread claims too. The caller waits only
 * for tasks already claimed, never for a thread that has not started, so
 * when another process holds one of the cores the threads that do run take
 * the work instead of all waiting at a barrier for the descheduled one
 * (with OpenMP's static schedule a greedy decoding step ran 4.6x slower
 * with one core busy). Idle workers spin briefly for the next call (ops
 * follow each other within microseconds), then sleep.
 *
 * Each task writes its own outputs, so results do not depend on which
 * thread ran a task, nor on the thread count.
 */
#ifndef GPT_CPU_POOL_H
#define GPT_CPU_POOL_H

#include <stddef.h>

/* fn(ctx, task) for task in [0, n) */
typedef void (*cpu_task_fn)(void *ctx, int task);

/* Starts (first call) or resizes the pool to n threads in all (the caller
 * included; n <= 0: one per CPU this process may run on). Returns 0, or -1
 * if no thread could be started (the pool then runs on the caller alone).
 * Reference counted: each cpu_pool_acquire is paired with a release. */
int cpu_pool_acquire(int n);
void cpu_pool_release(void);

/* Runs fn over n tasks on the pool and returns when all are done. A call
 * from inside a task runs its tasks on the calling thread. */
void cpu_parallel(int n, cpu_task_fn fn, void *ctx);

/* Jobs a thread can be relieved of (decoding's short products). A thread
 * that is switched out while it holds a task of an ordinary job holds up
 * the caller for a scheduler slice (milliseconds, against jobs of 10-100
 * us). Here the caller, once its own share is done, waits for a held task
 * about twice as long as its own tasks took, then runs the task itself;
 * the thread that held it computes into a private buffer and publishes it
 * (publish: the copy into place) only if it wins the task's state from
 * the caller by compare-and-swap, so nothing late is ever written where
 * the caller has moved on. Both runs are the same function on the same
 * inputs: the same bits whoever wins. Where the caller itself keeps being
 * preempted, these jobs also move a worker's affinity so that the caller
 * gets a core to itself (cpu_pool.c, "Keeping the caller's core").
 *
 * run(args, task, NULL) writes the task's outputs in place; run(args,
 * task, priv) writes them into priv (at most priv_floats) and nothing
 * else but the calling thread's own buffers (cpu_pool_pack_buffer,
 * cpu_scratch). args (at most CPU_PRIV_ARGS bytes) is copied by the pool:
 * a task must not reach the caller's stack. A task may still be running
 * after the call returned, reading its inputs: they must stay allocated
 * until cpu_pool_quiesce (the backend calls it before it frees memory),
 * and any index read from memory must be bounds-checked against args. */
#define CPU_PRIV_ARGS 192
typedef struct {
    void (*run)(const void *args, int task, float *priv);
    void (*publish)(const void *args, int task, const float *priv);
} cpu_priv_ops;
void cpu_parallel_private(int n, const cpu_priv_ops *ops, const void *args, size_t args_size,
                          size_t priv_floats);

/* Returns once no thread is inside a task of a job that has returned
 * (cpu_parallel_private): call before freeing or reusing memory a task
 * may read. Costs a few loads when none is. */
void cpu_pool_quiesce(void);

/* Tasks of cpu_parallel_private: (n + chunk - 1) / chunk for about eight
 * per thread, at least min_chunk items each. */
size_t cpu_private_chunk(size_t n, size_t min_chunk);

/* fn(ctx, lo, hi) over [0, n) cut into chunks of at least min_chunk
 * items, about eight per thread (so that threads that run take over the
 * share of one that does not). For work whose items are independent: the
 * chunking depends on the thread count. */
typedef void (*cpu_range_fn)(void *ctx, size_t lo, size_t hi);
void cpu_parallel_range(size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx);

/* Threads in the pool (>= 1), and the index in [0, threads) of the calling
 * thread (0 for the thread that called cpu_parallel or any other thread). */
int cpu_pool_threads(void);
int cpu_thread_index(void);

/* Per-thread packing buffer of the matrix products (cpu_gemm.c), floats;
 * NULL outside a job of the pool. */
float *cpu_pool_pack_buffer(size_t floats);

/* A buffer shared by the tasks of the next cpu_parallel calls (an operand
 * packed once for all of them), floats, kept between calls; NULL inside a
 * task (a nested product packs on its own) or if memory is short. */
float *cpu_pool_shared_buffer(size_t floats);

/* CPUs this process may run on (sched_getaffinity), at least 1. */
int cpu_available_cores(void);

#ifdef GPT_TEST_BUILD
/* Test builds: 0 turns the solo mode (cpu_pool.c) off, so that every job
 * with several tasks is published to the workers (the claim race tests
 * want that); 1 turns it back on. */
void cpu_pool_test_solo(int on);
/* Private tasks the caller took over, and results threads discarded
 * because the caller had taken their task over, since the pool started. */
void cpu_pool_test_stats(long *takeovers, long *discards);
#endif

#endif
