/*
 * shard.c - token shard files: token ids on disk for training, read
 * through a memory map so that a shard larger than memory costs nothing
 * to open. All integers little-endian.
 *
 *   offset  size  field
 *   0       8     magic "GPTSHARD"
 *   8       4     version (2)
 *   12      4     id width in bytes: 2 when vocab <= 65536, else 4
 *   16      8     token count
 *   24      4     vocabulary size (every id is below it)
 *   28      4     CRC-32 of bytes 0..27
 *   32      D     count ids of `width` bytes (D = count * width)
 *   32+D    4*K   CRC-32 of each 64 KiB block of the ids (K = ceil(D / 64 Ki); the last
 *                 block may be shorter)
 *   ..      4     CRC-32 of the block table
 *
 * Opening checks every header field, the block table's checksum and that
 * the file is exactly as long as the header says; each block of ids is
 * checked against its CRC the first time gpt_shard_read touches it (a
 * flipped bit in an id that stays inside the vocabulary would otherwise go
 * unnoticed), so opening stays free for shards larger than memory, and the
 * ids are checked against the vocabulary as they are copied out.
 *
 * Version 1 (no block table) is still read, without the block checks:
 * what it lacks is a detection, not a bound (its ids are still checked
 * against the vocabulary), and refusing it would make users tokenize their
 * corpora again for nothing. Writers always write version 2.
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
#define SHARD_VERSION 2u
#define SHARD_HEADER 32u
#define SHARD_BLOCK ((size_t)1 << 16) /* bytes of ids per checksum */

struct gpt_shard {
    char *path;
    void *map;                /* the whole file, read-only */
    size_t map_len;
    const unsigned char *ids; /* (count) ids of `width` bytes */
    size_t count;
    int width;
    int vocab;
    const unsigned char *crcs; /* (nblocks) CRC-32 of each block of ids; NULL: version 1 */
    size_t nblocks;
    unsigned char *checked;    /* (nblocks) 1 once a block matched its CRC */
};

static void put_u32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int shard_width(int vocab) { return vocab <= 65536 ? 2 : 4; }

/* Writes one shard's bytes (header, ids, block table) into af. */
static int shard_emit(gpt_atomic_file *af, const int *ids, size_t n, int vocab_size,
                      gpt_error *err) {
    int width = shard_width(vocab_size);
    size_t data = n * (size_t)width, nblocks = (data + SHARD_BLOCK - 1) / SHARD_BLOCK;
    unsigned char head[SHARD_HEADER];
    memcpy(head, SHARD_MAGIC, 8);
    put_u32(head + 8, SHARD_VERSION);
    put_u32(head + 12, (uint32_t)width);
    put_u32(head + 16, (uint32_t)((uint64_t)n & 0xFFFFFFFFu));
    put_u32(head + 20, (uint32_t)((uint64_t)n >> 32));
    put_u32(head + 24, (uint32_t)vocab_size);
    put_u32(head + 28, gpt_crc32(0, head, 28));
    enum { CHUNK = 1 << 14 }; /* ids a write; a block holds a whole number of chunks */
    unsigned char *buf = malloc((size_t)CHUNK * 4), *table = malloc(4 * nblocks + 4);
    if (!buf || !table) {
        free(buf);
        free(table);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory writing '%s'", af->path);
    }
    int rc = gpt_atomic_write(af, head, sizeof head, err);
    uint32_t crc = 0;
    size_t in_block = 0, block = 0;
    for (size_t i = 0; !rc && i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK, bytes = m * (size_t)width;
        for (size_t k = 0; k < m; k++) {
            uint32_t v = (uint32_t)ids[i + k];
            if (width == 2) buf[2 * k] = (unsigned char)v, buf[2 * k + 1] = (unsigned char)(v >> 8);
            else put_u32(buf + 4 * k, v);
        }
        crc = gpt_crc32(crc, buf, bytes);
        in_block += bytes;
        if (in_block == SHARD_BLOCK || i + m == n) {
            put_u32(table + 4 * block++, crc);
            crc = 0;
            in_block = 0;
        }
        rc = gpt_atomic_write(af, buf, bytes, err);
    }
    GPT_ASSERT(rc || block == nblocks);
    if (!rc) {
        put_u32(table + 4 * nblocks, gpt_crc32(0, table, 4 * nblocks));
        rc = gpt_atomic_write(af, table, 4 * nblocks + 4, err);
    }
    free(buf);
    free(table);
    return rc;
}

int gpt_shard_write_all(const char *const *paths, const int *const *ids, const size_t *n,
                        int count, int vocab_size, gpt_error *err) {
    for (int f = 0; f < count; f++) {
        if (vocab_size < 1)
            return gpt_fail(err, GPT_ERR_INVALID, "shard '%s': vocabulary size %d must be positive",
                            paths[f], vocab_size);
        if (!ids[f] && n[f]) return gpt_fail(err, GPT_ERR_INVALID, "shard '%s': ids is NULL", paths[f]);
        for (size_t i = 0; i < n[f]; i++)
            if (ids[f][i] < 0 || ids[f][i] >= vocab_size)
                return gpt_fail(err, GPT_ERR_INVALID,
                                "shard '%s': token %zu is id %d, outside the vocabulary of %d",
                                paths[f], i, ids[f][i], vocab_size);
    }
    gpt_atomic_file *af = calloc(count > 0 ? (size_t)count : 1, sizeof *af);
    if (!af) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int rc = GPT_OK;
    for (int f = 0; f < count && !rc; f++) {
        rc = gpt_atomic_open(&af[f], paths[f], err);
        if (!rc) rc = shard_emit(&af[f], ids[f], n[f], vocab_size, err);
    }
    if (!rc) rc = gpt_atomic_commit_all(af, count, err);
    for (int f = 0; f < count; f++) gpt_atomic_abort(&af[f]);
    free(af);
    return rc;
}

int gpt_shard_write(const char *path, const int *ids, size_t n, int vocab_size, gpt_error *err) {
    return gpt_shard_write_all(&path, &ids, &n, 1, vocab_size, err);
}

void gpt_shard_close(gpt_shard *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    free(s->checked);
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
    int fd;
    uint64_t size;
    gpt_error oerr = {0};
    int rc = gpt_open_regular(path, &fd, &size, &oerr);
    if (rc) {
        gpt_shard_close(s);
        return gpt_fail(err, rc, "token shard: %s", oerr.msg);
    }
    if (size < SHARD_HEADER)
        return bad(s, fd, err, "is truncated: %llu bytes, shorter than the %llu-byte header",
                   path, (unsigned long long)size, SHARD_HEADER);
    if (size > SIZE_MAX)
        return bad(s, fd, err, "is too large to map (%llu bytes)", path,
                   (unsigned long long)size, 0);
    s->map_len = (size_t)size;
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
    if (version != 1 && version != SHARD_VERSION)
        return bad(s, fd, err, "has version %llu; this build reads versions 1 and %llu", path,
                   version, SHARD_VERSION);
    if (get_u32(h + 28) != gpt_crc32(0, h, 28))
        return bad(s, fd, err, "has a corrupt header (checksum %08llx, computed %08llx)", path,
                   get_u32(h + 28), gpt_crc32(0, h, 28));
    if (vocab < 1 || vocab > INT_MAX)
        return bad(s, fd, err, "has a vocabulary size of %llu, out of range", path, vocab, 0);
    if (width != (uint32_t)shard_width((int)vocab))
        return bad(s, fd, err, "stores %llu-byte ids, but its vocabulary size needs %llu", path,
                   width, (unsigned long long)shard_width((int)vocab));
    size_t body = s->map_len - SHARD_HEADER;
    if (count > body / width)
        return bad(s, fd, err, "has %llu bytes of ids but its header says %llu tokens", path,
                   body, count);
    size_t data = (size_t)count * width;
    size_t nblocks = version == 1 ? 0 : (data + SHARD_BLOCK - 1) / SHARD_BLOCK;
    size_t tail = version == 1 ? 0 : 4 * nblocks + 4;
    if (body != data + tail)
        return bad(s, fd, err, "has %llu bytes of ids but its header says %llu tokens", path,
                   body - (body > tail ? tail : body), count);
    if (version != 1) {
        const unsigned char *t = h + SHARD_HEADER + data;
        if (get_u32(t + 4 * nblocks) != gpt_crc32(0, t, 4 * nblocks))
            return bad(s, fd, err, "has a corrupt block table (checksum %08llx, computed %08llx)",
                       path, get_u32(t + 4 * nblocks), gpt_crc32(0, t, 4 * nblocks));
        s->crcs = t;
        s->nblocks = nblocks;
        if (nblocks && !(s->checked = calloc(nblocks, 1))) {
            gpt_shard_close(s);
            return gpt_fail(err, GPT_ERR_NOMEM, "out of memory opening '%s'", path);
        }
    }
    s->ids = h + SHARD_HEADER;
    s->count = (size_t)count;
    s->width = (int)width;
    s->vocab = (int)vocab;
    *out = s;
    return 0;
}

/* Checks the blocks holding bytes [from, to) of the ids against their CRCs,
 * each once in the shard's life. The flags are written with relaxed
 * atomics: two threads reading one shard may both check a block. */
static int check_blocks(const gpt_shard *s, size_t from, size_t to, gpt_error *err) {
    if (!s->crcs || from >= to) return 0;
    size_t data = s->count * (size_t)s->width;
    for (size_t b = from / SHARD_BLOCK; b <= (to - 1) / SHARD_BLOCK; b++) {
        if (__atomic_load_n(&s->checked[b], __ATOMIC_RELAXED)) continue;
        size_t at = b * SHARD_BLOCK, len = data - at < SHARD_BLOCK ? data - at : SHARD_BLOCK;
        uint32_t want = get_u32(s->crcs + 4 * b), got = gpt_crc32(0, s->ids + at, len);
        if (got != want)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "token shard '%s': tokens %zu to %zu fail their checksum (stored "
                            "%08x, computed %08x): the file is corrupt",
                            s->path, at / (size_t)s->width, (at + len) / (size_t)s->width - 1,
                            want, got);
        __atomic_store_n(&s->checked[b], 1, __ATOMIC_RELAXED);
    }
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
    int rc = check_blocks(s, start * (size_t)s->width, (start + n) * (size_t)s->width, err);
    if (rc) return rc;
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
