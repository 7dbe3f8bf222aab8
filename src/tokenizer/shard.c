/*
 * shard.c - token shard files: token ids on disk for training, read
 * through a memory map so that a shard larger than memory costs nothing
 * to open. All integers little-endian.
 *
 *   offset  size  field
 *   0       8     magic "GPTSHARD"
 *   8       4     version (1)
 *   12      4     id width in bytes: 2 when vocab <= 65536, else 4
 *   16      8     token count
 *   24      4     vocabulary size (every id is below it)
 *   28      4     CRC-32 of bytes 0..27
 *   32      ..    count ids of `width` bytes
 *
 * Opening checks every header field and that the file is exactly as long
 * as the header says; the ids themselves are checked against the
 * vocabulary as gpt_shard_read copies them out.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt_tokenizer.h"
#include "util.h"

#define SHARD_MAGIC "GPTSHARD"
#define SHARD_VERSION 1u
#define SHARD_HEADER 32u

struct gpt_shard {
    char *path;
    void *map;                /* the whole file, read-only */
    size_t map_len;
    const unsigned char *ids; /* (count) ids of `width` bytes */
    size_t count;
    int width;
    int vocab;
};

static void put_u32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int shard_width(int vocab) { return vocab <= 65536 ? 2 : 4; }

int gpt_shard_write(const char *path, const int *ids, size_t n, int vocab_size, gpt_error *err) {
    if (vocab_size < 1)
        return gpt_fail(err, GPT_ERR_INVALID, "shard '%s': vocabulary size %d must be positive",
                        path, vocab_size);
    if (!ids && n) return gpt_fail(err, GPT_ERR_INVALID, "shard '%s': ids is NULL", path);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "shard '%s': token %zu is id %d, outside the vocabulary of %d", path,
                            i, ids[i], vocab_size);
    int width = shard_width(vocab_size);
    unsigned char head[SHARD_HEADER];
    memcpy(head, SHARD_MAGIC, 8);
    put_u32(head + 8, SHARD_VERSION);
    put_u32(head + 12, (uint32_t)width);
    put_u32(head + 16, (uint32_t)((uint64_t)n & 0xFFFFFFFFu));
    put_u32(head + 20, (uint32_t)((uint64_t)n >> 32));
    put_u32(head + 24, (uint32_t)vocab_size);
    put_u32(head + 28, gpt_crc32(0, head, 28));
    gpt_atomic_file af;
    int rc = gpt_atomic_open(&af, path, err);
    if (rc) return rc;
    rc = gpt_atomic_write(&af, head, sizeof head, err);
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = rc ? NULL : malloc((size_t)CHUNK * 4);
    if (!rc && !buf) rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory writing '%s'", path);
    for (size_t i = 0; !rc && i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        for (size_t k = 0; k < m; k++) {
            uint32_t v = (uint32_t)ids[i + k];
            if (width == 2) buf[2 * k] = (unsigned char)v, buf[2 * k + 1] = (unsigned char)(v >> 8);
            else put_u32(buf + 4 * k, v);
        }
        rc = gpt_atomic_write(&af, buf, m * (size_t)width, err);
    }
    free(buf);
    if (rc) {
        gpt_atomic_abort(&af);
        return rc;
    }
    return gpt_atomic_commit(&af, err);
}

void gpt_shard_close(gpt_shard *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    free(s->path);
    free(s);
}

static int bad(gpt_shard *s, int fd, gpt_error *err, const char *fmt, const char *path,
               unsigned long long a, unsigned long long b) {
    if (fd >= 0) close(fd);
    gpt_shard_close(s);
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return gpt_fail(err, GPT_ERR_INVALID, "token shard '%s' %s", path, msg);
}

int gpt_shard_open(gpt_shard **out, const char *path, gpt_error *err) {
    *out = NULL;
    gpt_shard *s = calloc(1, sizeof *s);
    if (!s || !(s->path = malloc(strlen(path) + 1))) {
        free(s);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    strcpy(s->path, path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        int e = errno;
        gpt_shard_close(s);
        return gpt_fail(err, GPT_ERR_INVALID, "cannot open token shard '%s': %s", path,
                        strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return bad(s, fd, err, "is not a regular file", path, 0, 0);
    if ((unsigned long long)st.st_size < SHARD_HEADER)
        return bad(s, fd, err, "is truncated: %llu bytes, shorter than the %llu-byte header",
                   path, (unsigned long long)st.st_size, SHARD_HEADER);
    if ((unsigned long long)st.st_size > SIZE_MAX)
        return bad(s, fd, err, "is too large to map (%llu bytes)", path,
                   (unsigned long long)st.st_size, 0);
    s->map_len = (size_t)st.st_size;
    void *map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        gpt_shard_close(s);
        return gpt_fail(err, GPT_ERR_IO, "cannot map token shard '%s': %s", path, strerror(e));
    }
    close(fd);
    fd = -1;
    s->map = map;
    const unsigned char *h = map;
    if (memcmp(h, SHARD_MAGIC, 8) != 0)
        return bad(s, fd, err,
                   "is not a token shard (bad magic; shards come from gpt tokenize --out)", path,
                   0, 0);
    uint32_t version = get_u32(h + 8), width = get_u32(h + 12), vocab = get_u32(h + 24);
    uint64_t count = (uint64_t)get_u32(h + 16) | (uint64_t)get_u32(h + 20) << 32;
    if (version != SHARD_VERSION)
        return bad(s, fd, err, "has version %llu; this build reads version %llu", path, version,
                   SHARD_VERSION);
    if (get_u32(h + 28) != gpt_crc32(0, h, 28))
        return bad(s, fd, err, "has a corrupt header (checksum %08llx, computed %08llx)", path,
                   get_u32(h + 28), gpt_crc32(0, h, 28));
    if (vocab < 1 || vocab > INT_MAX)
        return bad(s, fd, err, "has a vocabulary size of %llu, out of range", path, vocab, 0);
    if (width != (uint32_t)shard_width((int)vocab))
        return bad(s, fd, err, "stores %llu-byte ids, but its vocabulary size needs %llu", path,
                   width, (unsigned long long)shard_width((int)vocab));
    size_t data = s->map_len - SHARD_HEADER;
    if (count > data / width || count * width != data)
        return bad(s, fd, err, "has %llu bytes of ids but its header says %llu tokens", path,
                   data, count);
    s->ids = h + SHARD_HEADER;
    s->count = (size_t)count;
    s->width = (int)width;
    s->vocab = (int)vocab;
    *out = s;
    return 0;
}

size_t gpt_shard_count(const gpt_shard *s) { return s->count; }
int gpt_shard_vocab_size(const gpt_shard *s) { return s->vocab; }

int gpt_shard_read(const gpt_shard *s, size_t start, size_t n, int *out, gpt_error *err) {
    if (start > s->count || n > s->count - start)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "token shard '%s': tokens [%zu, %zu+%zu) are outside its %zu tokens",
                        s->path, start, start, n, s->count);
    if (n && !out) return gpt_fail(err, GPT_ERR_INVALID, "token shard read: out is NULL");
    uint32_t bad_id = 0;
    size_t bad_at = SIZE_MAX;
    if (s->width == 2) {
        const unsigned char *p = s->ids + 2 * start;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
            if (v >= (uint32_t)s->vocab && bad_at == SIZE_MAX) bad_at = i, bad_id = v;
            out[i] = (int)v;
        }
    } else {
        const unsigned char *p = s->ids + 4 * start;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = get_u32(p + 4 * i);
            if (v >= (uint32_t)s->vocab && bad_at == SIZE_MAX) bad_at = i, bad_id = v;
            out[i] = v < (uint32_t)s->vocab ? (int)v : 0;
        }
    }
    if (bad_at != SIZE_MAX)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "token shard '%s': token %zu is id %u, outside its vocabulary of %d "
                        "(the file is corrupt)",
                        s->path, start + bad_at, bad_id, s->vocab);
    return 0;
}
