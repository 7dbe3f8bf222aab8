/*
 * fuzz_shard.c - libFuzzer target for the token shard reader: any file must
 * open or be refused with GPT_ERR_INVALID; an opened shard must read every
 * id (or refuse an id outside its vocabulary) and refuse ranges outside it.
 *
 * gpt_shard_open maps a file, so each input is written to a scratch file
 * (in /dev/shm when there is one). Each input is tried as given and with
 * every checksum corrected (the header's, each 64 KiB block's and the
 * block table's), so that mutations reach the checks behind them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_count.h"
#include "gpt_tokenizer.h"
#include "util.h"

static char path[256];

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_shard: %s\n", what);
        abort();
    }
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static void try_open(const unsigned char *d, size_t n) {
    FILE *f = fopen(path, "wb");
    check(f != NULL, "cannot write the scratch file");
    check(fwrite(d, 1, n, f) == n && fclose(f) == 0, "cannot write the scratch file");
    gpt_error err;
    gpt_shard *s = NULL;
    alloc_begin();
    int rc = gpt_shard_open(&s, path, &err);
    if (rc) {
        check(rc == GPT_ERR_INVALID && !s && err.msg[0], "refused without GPT_ERR_INVALID");
        /* The file is mapped, not read: a refusal allocates next to nothing. */
        alloc_check_refusal("fuzz_shard", "a shard", n, 1, 4096);
        return;
    }
    size_t count = gpt_shard_count(s);
    int V = gpt_shard_vocab_size(s);
    check(V >= 1, "vocabulary");
    int ids[256];
    for (size_t at = 0; at < count; at += 256) {
        size_t m = count - at < 256 ? count - at : 256;
        rc = gpt_shard_read(s, at, m, ids, &err);
        check(rc == 0 || rc == GPT_ERR_INVALID, "read status");
        if (rc == 0)
            for (size_t i = 0; i < m; i++) check(ids[i] >= 0 && ids[i] < V, "id out of range");
    }
    check(gpt_shard_read(s, count, 1, ids, &err) == GPT_ERR_INVALID, "read past the end");
    check(gpt_shard_read(s, count, 0, ids, &err) == 0, "empty read at the end");
    gpt_shard_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0])
        snprintf(path, sizeof path, "%s/fuzz_shard.%ld.bin",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    try_open(data, size);
    if (size >= 32) {
        unsigned char *d = malloc(size);
        if (!d) return 0;
        memcpy(d, data, size);
        uint32_t crc = gpt_crc32(0, d, 28);
        for (int k = 0; k < 4; k++) d[28 + k] = (unsigned char)(crc >> (8 * k));
        try_open(d, size);
        /* Version 2: the block table after the ids the header counts. */
        uint64_t count = get32(d + 16) | (uint64_t)get32(d + 20) << 32, width = get32(d + 12);
        if ((width == 2 || width == 4) && count <= (size - 32) / width) {
            size_t bytes = (size_t)count * width, nb = (bytes + 65535) / 65536;
            if (size - 32 - bytes == 4 * nb + 4) {
                unsigned char *t = d + 32 + bytes;
                for (size_t b = 0; b < nb; b++) {
                    size_t len = bytes - b * 65536 < 65536 ? bytes - b * 65536 : 65536;
                    put32(t + 4 * b, gpt_crc32(0, d + 32 + b * 65536, len));
                }
                put32(t + 4 * nb, gpt_crc32(0, t, 4 * nb));
                try_open(d, size);
            }
        }
        free(d);
    }
    unlink(path);
    return 0;
}
