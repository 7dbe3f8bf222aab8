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
#endif

#endif
