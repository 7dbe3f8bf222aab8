/*
 * fuzz_tokenizer_encode.c - libFuzzer target: any bytes must encode with
 * every tokenizer, give ids inside the vocabulary and decode back to the
 * same bytes; training on the input must work and its tokenizer must round
 * trip too, including through serialize / load_memory.
 *
 * Input: one flags byte, then the text.
 *   flags & 3     tokenizer: 0 or 3 gpt2, 1 bytes, 2 a vocabulary trained at start-up
 *   flags & 4     allow_special
 *   flags & 8     also train a vocabulary of 257 + 4 * (flags >> 4) tokens on the text
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_tokenizer.h"

static gpt_tokenizer *toks[3];

static const char sample[] =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
    "It's 2024; we'll see. Caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac 12345 ...!!! \t\r\n  "
    "<|endoftext|> \xc2\x85 \xef\xbb\xbf \xf0\x9f\x98\x80\xf0\x9f\x98\x80 aaaaaaaaaaaaaaaa";

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer_encode: %s\n", what);
        abort();
    }
}

static void init(void) {
    gpt_error err;
    check(!gpt_tokenizer_open(&toks[0], "gpt2", &err), err.msg);
    check(!gpt_tokenizer_open(&toks[1], "bytes", &err), err.msg);
    check(!gpt_tokenizer_train(&toks[2], sample, sizeof sample - 1, 400, NULL, NULL, &err),
          err.msg);
}

/* Encodes, checks the ids, decodes, compares. */
static void round_trip(const gpt_tokenizer *t, const char *text, size_t n, int special) {
    gpt_error err;
    int *ids;
    size_t m;
    check(!gpt_tokenizer_encode(t, text, n, special, &ids, &m, &err), err.msg);
    check(m <= n, "more ids than bytes");
    int V = gpt_tokenizer_vocab_size(t);
    for (size_t i = 0; i < m; i++) check(ids[i] >= 0 && ids[i] < V, "id out of range");
    char *back;
    size_t bl;
    check(!gpt_tokenizer_decode(t, ids, m, &back, &bl, &err), err.msg);
    check(bl == n && (n == 0 || !memcmp(back, text, n)), "decode(encode(x)) != x");
    check(back[bl] == 0, "decode output not NUL-terminated");
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) init();
    if (size == 0) return 0;
    int flags = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    round_trip(toks[(flags & 3) % 3], text, n, flags & 4);
    if (flags & 8) {
        gpt_error err;
        gpt_tokenizer *t, *t2;
        check(!gpt_tokenizer_train(&t, text, n, 257 + 4 * (flags >> 4), NULL, NULL, &err),
              err.msg);
        round_trip(t, text, n, flags & 4);
        void *ser;
        size_t sn;
        check(!gpt_tokenizer_serialize(t, &ser, &sn, &err), err.msg);
        check(!gpt_tokenizer_load_memory(&t2, ser, sn, &err), err.msg);
        int *a, *b;
        size_t na, nb;
        check(!gpt_tokenizer_encode(t, text, n, 0, &a, &na, &err), err.msg);
        check(!gpt_tokenizer_encode(t2, text, n, 0, &b, &nb, &err), err.msg);
        check(na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a)), "reloaded encodes differ");
        free(a);
        free(b);
        free(ser);
        gpt_tokenizer_free(t2);
        gpt_tokenizer_free(t);
    }
    return 0;
}
