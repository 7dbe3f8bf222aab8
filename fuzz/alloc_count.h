/*
 * alloc_count.h - what a loader allocates, for the fuzz targets' memory
 * oracle: "refusing a file costs at most a small multiple of its size"
 * (docs/RELIABILITY.md). The sanitizer allocator's hooks see every malloc,
 * calloc, realloc and aligned allocation in the process with its size; a
 * free is sized with __sanitizer_get_allocated_size. alloc_begin() zeroes
 * the count, alloc_peak() is the most live bytes since then. More exact
 * than -rss_limit_mb, which sees pages, only above a fixed ceiling, and
 * only after the fact; memory maps of the input file are not counted
 * (they cost no memory of their own).
 */
#ifndef GPT_FUZZ_ALLOC_COUNT_H
#define GPT_FUZZ_ALLOC_COUNT_H

#include <sanitizer/allocator_interface.h>
#include <stdio.h>
#include <stdlib.h>

static long long alloc_live_, alloc_peak_;

static void alloc_on_malloc_(const volatile void *p, size_t n) {
    (void)p;
    long long live = __atomic_add_fetch(&alloc_live_, (long long)n, __ATOMIC_RELAXED);
    long long peak = __atomic_load_n(&alloc_peak_, __ATOMIC_RELAXED);
    while (live > peak &&
           !__atomic_compare_exchange_n(&alloc_peak_, &peak, live, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
}

static void alloc_on_free_(const volatile void *p) {
    if (!p) return;
    /* A block allocated before alloc_begin may make live negative: the
     * peak is then an underestimate by at most that block, never an
     * overestimate. */
    __atomic_sub_fetch(&alloc_live_, (long long)__sanitizer_get_allocated_size((const void *)p),
                       __ATOMIC_RELAXED);
}

static void alloc_begin(void) {
    static int installed;
    if (!installed) {
        if (!__sanitizer_install_malloc_and_free_hooks(alloc_on_malloc_, alloc_on_free_)) {
            fprintf(stderr, "alloc_count.h: cannot install the allocator hooks\n");
            abort();
        }
        installed = 1;
    }
    __atomic_store_n(&alloc_live_, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_peak_, 0, __ATOMIC_RELAXED);
}

static size_t alloc_peak(void) {
    long long p = __atomic_load_n(&alloc_peak_, __ATOMIC_RELAXED);
    return p > 0 ? (size_t)p : 0;
}

/* Aborts (a fuzzing failure) when a refusal of an n-byte input allocated
 * more than factor * n + slack bytes at its peak. */
static void alloc_check_refusal(const char *target, const char *what, size_t n, size_t factor,
                                size_t slack) {
    size_t peak = alloc_peak();
    if (peak > factor * n + slack) {
        fprintf(stderr,
                "%s: refusing %s of %zu bytes allocated %zu bytes at its peak (more than %zu x "
                "its size + %zu)\n",
                target, what, n, peak, factor, slack);
        abort();
    }
}

#endif
