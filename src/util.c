/*
 * util.c - internal helpers: errors, checked arithmetic, file reading,
 * atomic writes, CRC-32, the random number generator, the clock.
 */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int gpt_fail(gpt_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void gpt_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "gpt: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

int gpt_status_exit_code(int status) {
    if (status == GPT_OK) return 0;
    return status == GPT_ERR_INVALID ? 2 : 1;
}

int gpt_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int gpt_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

int gpt_read_file(const char *path, size_t max, char **data, size_t *len, gpt_error *err) {
    *data = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return gpt_fail(err, GPT_ERR_INVALID, "cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return gpt_fail(err, GPT_ERR_INVALID, "'%s' is a directory, not a file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return gpt_fail(err, GPT_ERR_INVALID, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, n = 0;
    if (max && cap > max + 1) cap = max + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (max && n >= max) {
                free(buf);
                fclose(f);
                return gpt_fail(err, GPT_ERR_INVALID, "'%s' is larger than %zu bytes", path, max);
            }
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading '%s'", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return gpt_fail(err, GPT_ERR_INVALID, "cannot read '%s'", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return GPT_OK;
}

long long gpt_test_fail_write_after = -2; /* -2: read the environment once */

static long long fail_write_budget(void) {
    if (gpt_test_fail_write_after == -2) {
        const char *s = getenv("GPT_TEST_FAIL_WRITE_AFTER");
        gpt_test_fail_write_after = s ? atoll(s) : -1;
    }
    return gpt_test_fail_write_after;
}

int gpt_atomic_open(gpt_atomic_file *af, const char *path, gpt_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->path = malloc(n + 1);
    af->tmp_path = malloc(n + 32);
    if (!af->path || !af->tmp_path) {
        free(af->path);
        free(af->tmp_path);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp_path, n + 32, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int e = errno;
        free(af->path);
        free(af->tmp_path);
        return gpt_fail(err, e == ENOENT ? GPT_ERR_INVALID : GPT_ERR_IO,
                        "cannot create '%s': %s", path, strerror(e));
    }
    return GPT_OK;
}

int gpt_atomic_write(gpt_atomic_file *af, const void *data, size_t n, gpt_error *err) {
    if (af->failed) return GPT_ERR_IO;
    long long budget = fail_write_budget();
    if (budget >= 0) {
        if ((long long)n > budget) {
            af->failed = 1;
            gpt_test_fail_write_after = 0;
            return gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", af->path,
                            strerror(ENOSPC));
        }
        gpt_test_fail_write_after -= (long long)n;
    }
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        return gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", af->path, strerror(errno));
    }
    af->crc = gpt_crc32(af->crc, data, n);
    return GPT_OK;
}

void gpt_atomic_abort(gpt_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int gpt_atomic_commit(gpt_atomic_file *af, gpt_error *err) {
    if (af->failed) {
        gpt_atomic_abort(af);
        return GPT_ERR_IO;
    }
    int e = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) e = errno;
    if (fclose(af->f) != 0 && !e) e = errno;
    af->f = NULL;
    if (e) {
        gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", af->path, strerror(e));
        gpt_atomic_abort(af);
        return GPT_ERR_IO;
    }
    if (rename(af->tmp_path, af->path) != 0) {
        gpt_fail(err, GPT_ERR_IO, "cannot rename '%s' to '%s': %s", af->tmp_path, af->path,
                 strerror(errno));
        gpt_atomic_abort(af);
        return GPT_ERR_IO;
    }
    /* Make the rename itself durable. */
    char *dir = strdup(af->path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = ".";
        if (slash == dir) d = "/";
        else if (slash) *slash = 0, d = dir;
        int fd = open(d, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        free(dir);
    }
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
    return GPT_OK;
}

uint32_t gpt_crc32(uint32_t crc, const void *data, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* benign race: every thread writes the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void gpt_rng_seed(gpt_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gpt_rng_next(gpt_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t gpt_rng_below(gpt_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = gpt_rng_next(r);
        if (x < limit) return x % n;
    }
}

float gpt_rng_float(gpt_rng *r) { return (float)(gpt_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float gpt_rng_normal(gpt_rng *r) {
    double u1 = ((double)(gpt_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(gpt_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

size_t gpt_utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

double gpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
