/*
 * test_shard.c - token shard files: round trips at every id width,
 * refusal of bad ids on write, and strict opening of truncated, extended
 * and corrupt files (magic, version, header checksum, width, vocabulary,
 * count, block table), ids outside the vocabulary refused on read, ids
 * changed inside the vocabulary caught by the block checksums (issue 13),
 * version 1 shards still read, failed writes.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt_tokenizer.h"
#include "test.h"
#include "util.h"

static char tmp_dir[64];

static char *must_read(const char *path, size_t *n) {
    gpt_error err = {0};
    char *d;
    if (gpt_read_file(path, 0, &d, n, &err)) {
        printf("cannot read %s: %s\n", path, err.msg);
        exit(1);
    }
    return d;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recomputes every checksum of a version-2 shard image of n bytes (header,
 * 64 KiB blocks of ids, block table), as a forger would. */
static void fix_crcs(unsigned char *d, size_t n) {
    put32(d + 28, gpt_crc32(0, d, 28));
    size_t data = (size_t)(get32(d + 16) | (uint64_t)get32(d + 20) << 32) * get32(d + 12);
    size_t nb = (data + 65535) / 65536;
    unsigned char *t = d + 32 + data;
    if (32 + data + 4 * nb + 4 != n) return;
    for (size_t b = 0; b < nb; b++) {
        size_t len = data - b * 65536 < 65536 ? data - b * 65536 : 65536;
        put32(t + 4 * b, gpt_crc32(0, d + 32 + b * 65536, len));
    }
    put32(t + 4 * nb, gpt_crc32(0, t, 4 * nb));
}

static int try_shard(const char *path, gpt_error *err) {
    gpt_shard *s = NULL;
    int rc = gpt_shard_open(&s, path, err);
    gpt_shard_close(s);
    return rc;
}

static void write_bytes(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(d, 1, n, f);
    fclose(f);
}

static void test_shards(void) {
    gpt_error err = {0};
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/s.bin", tmp_dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", tmp_dir);
    const int vocabs[] = {1, 256, 50257, 65536, 65537, 1 << 24};
    gpt_rng r;
    gpt_rng_seed(&r, 7);
    enum { N = 100003 };
    int *ids = malloc(N * sizeof *ids), *got = malloc(N * sizeof *got);
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        int V = vocabs[k];
        test_begin("shard: write and read back, vocabulary %d", V);
        for (int i = 0; i < N; i++) ids[i] = i < 2 ? (i ? V - 1 : 0) : (int)gpt_rng_below(&r, (uint64_t)V);
        EXPECT(!gpt_shard_write(path, ids, N, V, &err), "%s", err.msg);
        struct stat st;
        int width = V <= 65536 ? 2 : 4;
        off_t blocks = ((off_t)N * width + 65535) / 65536;
        EXPECT(stat(path, &st) == 0 && st.st_size == 32 + (off_t)N * width + 4 * blocks + 4,
               "size");
        gpt_shard *s = NULL;
        EXPECT(!gpt_shard_open(&s, path, &err), "%s", err.msg);
        if (s) {
            EXPECT(gpt_shard_count(s) == N && gpt_shard_vocab_size(s) == V, "count, vocab");
            EXPECT(!gpt_shard_read(s, 0, N, got, &err) && !memcmp(got, ids, N * sizeof *ids),
                   "all ids");
            EXPECT(!gpt_shard_read(s, 777, 1000, got, &err) &&
                       !memcmp(got, ids + 777, 1000 * sizeof *ids),
                   "a range");
            EXPECT(!gpt_shard_read(s, N, 0, got, &err), "empty range at the end");
            EXPECT(gpt_shard_read(s, N - 5, 6, got, &err) == GPT_ERR_INVALID &&
                       strstr(err.msg, "outside"),
                   "past the end: %s", err.msg);
            EXPECT(gpt_shard_read(s, SIZE_MAX, 2, got, &err) == GPT_ERR_INVALID, "overflow");
            gpt_shard_close(s);
        }
        test_end();
    }

    test_begin("shard: an empty shard; bad ids and sizes are refused on write");
    gpt_shard *s = NULL;
    EXPECT(!gpt_shard_write(path, NULL, 0, 50257, &err), "%s", err.msg);
    EXPECT(!gpt_shard_open(&s, path, &err) && gpt_shard_count(s) == 0, "%s", err.msg);
    gpt_shard_close(s);
    int some[] = {1, 2, 256};
    EXPECT(gpt_shard_write(path, some, 3, 256, &err) == GPT_ERR_INVALID && strstr(err.msg, "256"),
           "id 256 of 256: %s", err.msg);
    some[2] = -1;
    EXPECT(gpt_shard_write(path, some, 3, 256, &err) == GPT_ERR_INVALID, "id -1");
    EXPECT(gpt_shard_write(path, some, 2, 0, &err) == GPT_ERR_INVALID, "vocab 0");
    test_end();

    /* A valid small shard to corrupt. */
    for (int i = 0; i < 10; i++) ids[i] = i * 7;
    EXPECT(!gpt_shard_write(path, ids, 10, 100, &err), "%s", err.msg);
    size_t n;
    unsigned char *good = (unsigned char *)must_read(path, &n), d[128];
    test_begin("shard: truncated, extended, wrong magic, version, header checksum");
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        write_bytes(bad, good, k);
        refused += try_shard(bad, &err) == GPT_ERR_INVALID;
    }
    EXPECT(refused == (int)n, "%d of %zu truncations refused", refused, n);
    write_bytes(bad, good, n - 1);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "says 10 tokens"), "%s",
           err.msg);
    write_bytes(bad, good, 10);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "truncated"), "%s",
           err.msg);
    memcpy(d, good, n);
    d[n] = 0;
    write_bytes(bad, d, n + 1);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID, "extra byte");
    memcpy(d, good, n);
    d[3] = 'x';
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "magic"), "%s", err.msg);
    memcpy(d, good, n);
    put32(d + 8, 9);
    put32(d + 28, gpt_crc32(0, d, 28));
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "version 9"), "%s",
           err.msg);
    memcpy(d, good, n);
    d[24] ^= 1;
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "checksum"), "%s",
           err.msg);
    test_end();

    test_begin("shard: id width, vocabulary and count that disagree");
    memcpy(d, good, n);
    put32(d + 12, 4);
    put32(d + 28, gpt_crc32(0, d, 28));
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "2-byte") == NULL &&
               strstr(err.msg, "4-byte"),
           "%s", err.msg);
    memcpy(d, good, n);
    put32(d + 24, 0);
    put32(d + 28, gpt_crc32(0, d, 28));
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "vocabulary"), "%s",
           err.msg);
    memcpy(d, good, n);
    put32(d + 20, 1); /* count + 2^32 */
    put32(d + 28, gpt_crc32(0, d, 28));
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID, "huge count");
    test_end();

    test_begin("shard: a corrupt block table is refused");
    memcpy(d, good, n);
    d[32 + 20] ^= 1; /* the first block's CRC */
    write_bytes(bad, d, n);
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID && strstr(err.msg, "block table"), "%s",
           err.msg);
    test_end();

    /* Issue 13: an id changed to another id inside the vocabulary used to
     * read back without complaint. */
    test_begin("shard: an id changed inside the vocabulary fails the block checksum when read");
    memcpy(d, good, n);
    d[32 + 2 * 6] ^= 1; /* token 6: id 42 -> 43, still below 100 */
    write_bytes(bad, d, n);
    s = NULL;
    EXPECT(!gpt_shard_open(&s, bad, &err), "opening does not read the ids: %s", err.msg);
    if (s) {
        EXPECT(gpt_shard_read(s, 8, 2, got, &err) == GPT_ERR_INVALID &&
                   strstr(err.msg, "checksum") && strstr(err.msg, "corrupt"),
               "%s", err.msg);
        gpt_shard_close(s);
    }
    test_end();

    test_begin("shard: only the corrupt 64 KiB block is refused, naming its tokens");
    char big_path[128];
    snprintf(big_path, sizeof big_path, "%s/big.bin", tmp_dir);
    for (int i = 0; i < N; i++) got[i] = i % 50257;
    EXPECT(!gpt_shard_write(big_path, got, N, 50257, &err), "%s", err.msg);
    size_t bn;
    unsigned char *big = (unsigned char *)must_read(big_path, &bn);
    big[32 + 2 * 65536 + 10] ^= 4; /* block 2 holds tokens 65536..98303 */
    write_bytes(bad, big, bn);
    free(big);
    s = NULL;
    EXPECT(!gpt_shard_open(&s, bad, &err), "%s", err.msg);
    if (s) {
        EXPECT(!gpt_shard_read(s, 0, 1000, got, &err), "block 0: %s", err.msg);
        EXPECT(!gpt_shard_read(s, 32768, 1000, got, &err), "block 1: %s", err.msg);
        EXPECT(gpt_shard_read(s, 98000, 1000, got, &err) == GPT_ERR_INVALID &&
                   strstr(err.msg, "tokens 65536 to 98303"),
               "blocks 2-3: %s", err.msg);
        EXPECT(!gpt_shard_read(s, 98304, 1000, got, &err), "block 3: %s", err.msg);
        gpt_shard_close(s);
    }
    test_end();

    test_begin("shard: version 1 (no block table) is still read");
    memcpy(d, good, n);
    put32(d + 8, 1);
    put32(d + 28, gpt_crc32(0, d, 28));
    write_bytes(bad, d, 32 + 20);
    s = NULL;
    EXPECT(!gpt_shard_open(&s, bad, &err), "%s", err.msg);
    if (s) {
        EXPECT(!gpt_shard_read(s, 0, 10, got, &err) && !memcmp(got, ids, 10 * sizeof *ids), "%s",
               err.msg);
        gpt_shard_close(s);
    }
    write_bytes(bad, d, n); /* a version 1 header with a table after the ids */
    EXPECT(try_shard(bad, &err) == GPT_ERR_INVALID, "trailing bytes after version 1 ids");
    test_end();

    test_begin("shard: an id outside the vocabulary is refused when read");
    memcpy(d, good, n);
    d[32 + 2 * 6] = 100; /* token 6 = id 100 of 100 */
    fix_crcs(d, n);
    write_bytes(bad, d, n);
    s = NULL;
    EXPECT(!gpt_shard_open(&s, bad, &err), "%s", err.msg);
    if (s) {
        EXPECT(!gpt_shard_read(s, 0, 6, got, &err), "tokens before it read");
        EXPECT(gpt_shard_read(s, 0, 10, got, &err) == GPT_ERR_INVALID &&
                   strstr(err.msg, "token 6 is id 100"),
               "%s", err.msg);
        gpt_shard_close(s);
    }
    test_end();

    test_begin("shard: missing files, folders, failed writes");
    EXPECT(try_shard("/nonexistent/s.bin", &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "/nonexistent/s.bin"),
           "%s", err.msg);
    EXPECT(try_shard(tmp_dir, &err) == GPT_ERR_INVALID, "folder: %s", err.msg);
    for (int i = 0; i < 1000; i++) ids[i] = i % 100;
    gpt_test_fail_write_after = 40;
    EXPECT(gpt_shard_write(path, ids, 1000, 100, &err) == GPT_ERR_IO, "%s", err.msg);
    gpt_test_fail_write_after = -1;
    size_t kn;
    char *kd = must_read(path, &kn);
    EXPECT(kn == n && !memcmp(kd, good, n), "previous shard intact");
    free(kd);
    test_end();

    free(good);
    free(ids);
    free(got);
}

int main(void) {
    (void)test_max_rel_err; /* test.h helpers this program has no use for */
    (void)test_rel_l2;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/gpt-test-shard-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        printf("cannot make a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    gpt_test_fail_write_after = -1;
    test_shards();
    char p[128];
    const char *names[] = {"s.bin", "bad.bin", "big.bin"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", tmp_dir, names[k]);
        unlink(p);
    }
    rmdir(tmp_dir);
    return test_summary();
}
