/*
 * fuzz_tokenizer_load.c - libFuzzer target for the tokenizer-file loader:
 * any bytes must load or be refused with GPT_ERR_INVALID, never crash. A
 * file that loads must serialize back to exactly the same bytes (the format
 * is canonical) and must round trip text. A refusal allocates at most 12
 * bytes per input byte (alloc_count.h).
 *
 * Each input is tried twice: as given, and with its last 4 bytes replaced
 * by the right CRC-32, so that mutations get past the checksum and reach
 * the field-by-field checks behind it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "gpt_tokenizer.h"
#include "util.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer_load: %s\n", what);
        abort();
    }
}

static void try_load(const unsigned char *d, size_t n) {
    gpt_error err;
    gpt_tokenizer *t = NULL;
    alloc_begin();
    int rc = gpt_tokenizer_load_memory(&t, d, n, &err);
    if (rc) {
        check(rc == GPT_ERR_INVALID && !t && err.msg[0], "refused without GPT_ERR_INVALID");
        /* Every refusal comes before the token bytes are laid out: the
         * tables it may have built are the merges (twice), the ids' offsets
         * and the pair table, at most ~10 bytes per input byte. */
        alloc_check_refusal("fuzz_tokenizer_load", "a tokenizer file", n, 12, 65536);
        return;
    }
    void *ser;
    size_t sn;
    check(!gpt_tokenizer_serialize(t, &ser, &sn, &err), err.msg);
    check(sn == n && !memcmp(ser, d, n), "serialize(load(x)) != x");
    free(ser);
    static const char text[] = "Hello, world! <|endoftext|> caf\xc3\xa9 \xff\xfe 12 'll";
    int *ids;
    size_t m;
    check(!gpt_tokenizer_encode(t, text, sizeof text - 1, 1, &ids, &m, &err), err.msg);
    char *back;
    size_t bl;
    check(!gpt_tokenizer_decode(t, ids, m, &back, &bl, &err), err.msg);
    check(bl == sizeof text - 1 && !memcmp(back, text, bl), "round trip");
    free(back);
    free(ids);
    int V = gpt_tokenizer_vocab_size(t);
    for (int id = 0; id < V; id += 1 + V / 64) {
        size_t l;
        check(gpt_tokenizer_token(t, id, &l) != NULL, "token");
    }
    gpt_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try_load(data, size);
    if (size >= 4) {
        unsigned char *d = malloc(size);
        if (!d) return 0;
        memcpy(d, data, size);
        uint32_t crc = gpt_crc32(0, d, size - 4);
        for (int k = 0; k < 4; k++) d[size - 4 + k] = (unsigned char)(crc >> (8 * k));
        try_load(d, size);
        free(d);
    }
    return 0;
}
