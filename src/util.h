/*
 * util.h - small internal helpers shared by the library: error messages,
 * checked size arithmetic, whole-file reading, atomic file writing, a
 * seeded random number generator and CRC-32.
 */
#ifndef GPT_UTIL_H
#define GPT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "gpt.h"

/* Fills *err (if not NULL) and returns code. */
int gpt_fail(gpt_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Always-on invariant check for bugs (not for user input). */
#define GPT_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) gpt_assert_fail(#cond, __FILE__, __LINE__);                          \
    } while (0)
void gpt_assert_fail(const char *expr, const char *file, int line);

/* a*b and a+b with overflow detection: return 0 on overflow. */
int gpt_mul_size(size_t a, size_t b, size_t *out);
int gpt_add_size(size_t a, size_t b, size_t *out);

/* Opens a regular file for reading without ever blocking: a FIFO, device,
 * socket or directory is GPT_ERR_INVALID naming what it is ("'x' is a FIFO
 * (named pipe), not a regular file"). *size is its size. Every loader opens
 * its files through this. */
int gpt_open_regular(const char *path, int *fd, uint64_t *size, gpt_error *err);

/* Reads a whole regular file (max bytes, 0 = no limit) into a malloc'd
 * buffer with a NUL after the data. The size is checked against max before
 * anything is allocated. Missing files, directories, FIFOs and devices are
 * GPT_ERR_INVALID with the path in the message. */
int gpt_read_file(const char *path, size_t max, char **data, size_t *len, gpt_error *err);

/* Atomic file writing: gpt_atomic_open creates path.tmp.PID (O_EXCL,
 * O_NOFOLLOW, mode 0644), after removing the temporaries of path left by
 * processes that no longer exist; write with gpt_atomic_write;
 * gpt_atomic_commit flushes, fsyncs, renames over path and fsyncs the
 * folder (an error there is GPT_ERR_IO too); gpt_atomic_abort removes the
 * temporary file (safe after a failed open). Only a regular file at path is
 * replaced: anything else there (a folder, FIFO, device, symbolic link) is
 * GPT_ERR_INVALID. Failures (disk full) are GPT_ERR_IO and leave path
 * untouched. */
typedef struct {
    FILE *f;
    char *tmp_path;
    char *path;
    int failed;
    int closed;   /* the temporary is complete and closed, not yet renamed */
    uint32_t crc; /* running CRC-32 of everything written */
} gpt_atomic_file;
int gpt_atomic_open(gpt_atomic_file *af, const char *path, gpt_error *err);
/* GPT_ERR_INVALID with a one-line message if something other than a
 * regular file is at path (what gpt_atomic_open refuses): commands check
 * their outputs with it before long work. */
int gpt_check_output_path(const char *path, gpt_error *err);
int gpt_atomic_write(gpt_atomic_file *af, const void *data, size_t n, gpt_error *err);
int gpt_atomic_commit(gpt_atomic_file *af, gpt_error *err);
void gpt_atomic_abort(gpt_atomic_file *af);
/* A folder of several files as one commit (gpt convert's config, weights
 * and tokenizer files): open and write each, then commit them together.
 * All are flushed and synced before any is renamed, so a failure (disk
 * full) leaves every path as it was; the renames follow in af's order, and
 * only a crash between two of them can mix old files with new. The
 * temporaries are always removed; every af is reset. */
int gpt_atomic_commit_all(gpt_atomic_file *af, int n, gpt_error *err);
/* Removes path.tmp.PID files and links (not folders) whose process no
 * longer exists; calls removed (if not NULL) with each; returns how many. */
int gpt_atomic_remove_stale(const char *path, void (*removed)(void *user, const char *tmp),
                            void *user);
#ifdef GPT_TEST_BUILD
/* Test hook, in test builds only (libgpt_test.a, gpt-test): fail writes
 * with ENOSPC after this many bytes (-1 = never); reliability tests set it
 * through the GPT_TEST_FAIL_WRITE_AFTER environment variable. */
extern long long gpt_test_fail_write_after;
#endif

/* CRC-32 (IEEE 802.3), chainable: crc = gpt_crc32(crc, data, n), start 0. */
uint32_t gpt_crc32(uint32_t crc, const void *data, size_t n);

/* xoshiro256** generator: fast, 256-bit state saved in checkpoints. */
typedef struct {
    uint64_t s[4];
} gpt_rng;
void gpt_rng_seed(gpt_rng *r, uint64_t seed);
uint64_t gpt_rng_next(gpt_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t gpt_rng_below(gpt_rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float gpt_rng_float(gpt_rng *r);
/* Standard normal (Box-Muller). */
float gpt_rng_normal(gpt_rng *r);

/* Writes code point cp (<= 0x10FFFF) as UTF-8 into out (4 bytes room);
 * returns the bytes written. */
size_t gpt_utf8_put(char *out, uint32_t cp);

/* Monotonic wall clock in seconds. */
double gpt_now(void);

#endif
