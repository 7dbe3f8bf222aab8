/*
 * omp_shim.h - OpenMP's runtime calls, or single-threaded stand-ins where
 * the compiler has no OpenMP (Apple clang without Homebrew's libomp: the
 * Makefile then defines GPT_NO_OPENMP and the pragmas are ignored).
 */
#ifndef GPT_OMP_SHIM_H
#define GPT_OMP_SHIM_H

#ifdef GPT_NO_OPENMP
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
#else
#include <omp.h>
#endif

#endif
