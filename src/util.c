/*
 * util.c - internal helpers: errors, checked arithmetic, file reading,
 * atomic writes, CRC-32, the random number generator, the clock.
 */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
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

/* What a path is, for messages about files that are not regular. */
static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a regular file";
}

int gpt_open_regular(const char *path, int *fd_out, uint64_t *size, gpt_error *err) {
    *fd_out = -1;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever; the type is checked on the open file itself (fstat),
     * so nothing can be swapped in between. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return gpt_fail(err, e == ENOMEM ? GPT_ERR_NOMEM : GPT_ERR_INVALID, "cannot open '%s': %s",
                        path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gpt_fail(err, GPT_ERR_IO, "cannot open '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gpt_fail(err, GPT_ERR_INVALID, "'%s' is %s, not a regular file", path,
                        kind_of(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return GPT_OK;
}

int gpt_read_file(const char *path, size_t max, char **data, size_t *len, gpt_error *err) {
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    int rc = gpt_open_regular(path, &fd, &size, err);
    if (rc) return rc;
    /* The size is known before anything is allocated; a file that grows
     * while it is read is cut at that size (never past the cap). */
    if ((max && size > max) || size >= SIZE_MAX) {
        close(fd);
        return gpt_fail(err, GPT_ERR_INVALID, "'%s' is larger than %zu bytes", path,
                        max ? max : SIZE_MAX - 1);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory reading '%s' (%llu bytes)", path,
                        (unsigned long long)size);
    }
    size_t n = 0;
    while (n < size) {
        ssize_t got = read(fd, buf + n, (size_t)size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return gpt_fail(err, GPT_ERR_IO, "cannot read '%s': %s", path, strerror(e));
        }
        if (got == 0) break; /* shrank while being read */
        n += (size_t)got;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return GPT_OK;
}

#ifdef GPT_TEST_BUILD
long long gpt_test_fail_write_after = -2; /* -2: read the environment once */

static long long fail_write_budget(void) {
    if (gpt_test_fail_write_after == -2) {
        const char *s = getenv("GPT_TEST_FAIL_WRITE_AFTER");
        gpt_test_fail_write_after = s ? atoll(s) : -1;
    }
    return gpt_test_fail_write_after;
}
#endif

/* The folder part of path ("." when there is none), malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* 1 if name is base ".tmp." followed by the decimal pid of a process that
 * no longer exists (ours is never stale). */
static int stale_name(const char *name, const char *base, size_t blen) {
    if (strncmp(name, base, blen) || strncmp(name + blen, ".tmp.", 5)) return 0;
    const char *digits = name + blen + 5;
    char *end;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int gpt_atomic_remove_stale(const char *path, void (*removed)(void *user, const char *tmp),
                            void *user) {
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base), dlen = dir ? strlen(dir) : 0;
    DIR *d = dir && blen ? opendir(dir) : NULL;
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!stale_name(e->d_name, base, blen)) continue;
        size_t n = dlen + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s/%s", dir, e->d_name);
        struct stat st;
        /* Only files and links: a folder of that name is not ours. */
        if (lstat(p, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(p) == 0) {
            count++;
            if (removed) removed(user, p);
        }
        free(p);
    }
    if (d) closedir(d);
    free(dir);
    return count;
}

int gpt_check_output_path(const char *path, gpt_error *err) {
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "cannot write '%s': it is %s; remove it or write somewhere else", path,
                        kind_of(st.st_mode));
    return GPT_OK;
}

int gpt_atomic_open(gpt_atomic_file *af, const char *path, gpt_error *err) {
    memset(af, 0, sizeof *af);
    /* Only a regular file is ever replaced: a folder, FIFO, device or
     * symbolic link at path is refused, not swapped for a file. */
    int rc = gpt_check_output_path(path, err);
    if (rc) return rc;
    struct stat st;
    size_t n = strlen(path);
    af->path = malloc(n + 1);
    af->tmp_path = malloc(n + 32);
    if (!af->path || !af->tmp_path) {
        gpt_atomic_abort(af);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp_path, n + 32, "%s.tmp.%ld", path, (long)getpid());
    gpt_atomic_remove_stale(path, NULL, NULL);
    /* O_EXCL | O_NOFOLLOW: never write through a link or into a file
     * someone else placed at the temporary name. A leftover at our own
     * name (a dead process that had our pid, or a planted link) is removed
     * once: no live process but us can own that name. */
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(af->tmp_path, flags, 0644), e = fd < 0 ? errno : 0;
    if (e == EEXIST && lstat(af->tmp_path, &st) == 0 && !S_ISDIR(st.st_mode) &&
        unlink(af->tmp_path) == 0) {
        fd = open(af->tmp_path, flags, 0644);
        e = fd < 0 ? errno : 0;
    }
    if (fd >= 0 && !(af->f = fdopen(fd, "wb"))) {
        e = errno;
        close(fd);
        unlink(af->tmp_path);
    }
    if (!af->f) {
        rc = e == EEXIST
                     ? gpt_fail(err, GPT_ERR_IO, "cannot create '%s': '%s' is in the way", path,
                                af->tmp_path)
                     : gpt_fail(err, e == ENOENT || e == ENOTDIR ? GPT_ERR_INVALID : GPT_ERR_IO,
                                "cannot create '%s': %s", path, strerror(e));
        gpt_atomic_abort(af);
        return rc;
    }
    return GPT_OK;
}

int gpt_atomic_write(gpt_atomic_file *af, const void *data, size_t n, gpt_error *err) {
    if (af->failed) return GPT_ERR_IO;
#ifdef GPT_TEST_BUILD
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
#endif
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        return gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", af->path, strerror(errno));
    }
    af->crc = gpt_crc32(af->crc, data, n);
    return GPT_OK;
}

/* Safe on a zeroed struct, after a failed open, and twice. */
void gpt_atomic_abort(gpt_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->f || af->closed) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
}

/* Syncs the folder of path: until then a crash could undo a rename. Some
 * file systems cannot sync a folder (EINVAL): nothing more can be done
 * there. */
static int sync_folder(const char *path, gpt_error *err) {
    char *dir = dir_of(path);
    int rc = GPT_OK;
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
        int e = dir ? errno : ENOMEM;
        rc = gpt_fail(err, GPT_ERR_IO, "wrote '%s' but cannot sync its folder: %s", path,
                      strerror(e));
    }
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int gpt_atomic_commit_all(gpt_atomic_file *af, int n, gpt_error *err) {
    /* Every file complete on disk before any is renamed: a failure here
     * (disk full, an I/O error) leaves every path as it was. */
    int rc = GPT_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (af[i].failed) {
            rc = GPT_ERR_IO; /* the failed write set the message */
            break;
        }
        int e = 0;
        if (fflush(af[i].f) != 0 || fsync(fileno(af[i].f)) != 0) e = errno;
        if (fclose(af[i].f) != 0 && !e) e = errno;
        af[i].f = NULL;
        af[i].closed = 1;
        if (e) rc = gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", af[i].path, strerror(e));
    }
    /* Then the renames, in the caller's order: only a crash between two of
     * them can leave some files new and some old. */
    for (int i = 0; i < n && !rc; i++) {
        if (rename(af[i].tmp_path, af[i].path) != 0) {
            int e = errno;
            rc = gpt_fail(err, e == EISDIR ? GPT_ERR_INVALID : GPT_ERR_IO,
                          "cannot rename '%s' to '%s': %s%s", af[i].tmp_path, af[i].path,
                          strerror(e), i ? " (the files before it were replaced)" : "");
            break;
        }
        af[i].closed = 0; /* renamed: nothing left to remove */
    }
    for (int i = 0; i < n && !rc; i++) rc = sync_folder(af[i].path, err);
    for (int i = 0; i < n; i++) gpt_atomic_abort(&af[i]);
    return rc;
}

int gpt_atomic_commit(gpt_atomic_file *af, gpt_error *err) { return gpt_atomic_commit_all(af, 1, err); }

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
