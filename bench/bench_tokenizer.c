/*
 * bench_tokenizer.c - encode and decode speed of the tokenizers on one
 * core: Tiny Shakespeare, mixed-script Unicode, and a 1 MB word without
 * spaces (one pre-token: the case where rescanning BPE goes quadratic).
 * Each figure is the best of several runs; an encode run includes building
 * its pre-token cache, as every real call does.
 *
 *   build/bench/bench_tokenizer [runs]      (from the repository root)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_tokenizer.h"
#include "util.h"

static void die(const char *what, const gpt_error *err) {
    fprintf(stderr, "bench_tokenizer: %s: %s\n", what, err->msg);
    exit(1);
}


/* About n bytes of words in Latin, Greek, Cyrillic, CJK and emoji. */
static char *unicode_text(size_t n, size_t *len) {
    static const uint32_t ranges[][2] = {{'a', 'z'},         {0xE0, 0xFF},     {0x3B1, 0x3C9},
                                         {0x430, 0x44F},     {0x4E00, 0x4FFF}, {0xAC00, 0xACFF},
                                         {0x1F600, 0x1F64F}, {'0', '9'}};
    char *s = malloc(n + 16);
    gpt_rng r;
    gpt_rng_seed(&r, 42);
    size_t o = 0;
    while (o < n) {
        const uint32_t *rg = ranges[gpt_rng_below(&r, 8)];
        size_t word = 1 + (size_t)gpt_rng_below(&r, 8);
        for (size_t k = 0; k < word && o < n; k++)
            o += gpt_utf8_put(s + o, rg[0] + (uint32_t)gpt_rng_below(&r, rg[1] - rg[0] + 1));
        s[o++] = gpt_rng_below(&r, 10) ? ' ' : '\n';
    }
    *len = o;
    return s;
}

static char *one_word(size_t n) {
    char *s = malloc(n);
    gpt_rng r;
    gpt_rng_seed(&r, 7);
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + gpt_rng_below(&r, 26));
    return s;
}

static void row(const gpt_tokenizer *t, const char *label, const char *text, size_t n, int runs) {
    gpt_error err = {0};
    double enc = 1e30, dec = 1e30;
    size_t m = 0;
    for (int k = 0; k < runs; k++) {
        int *ids;
        double t0 = gpt_now();
        if (gpt_tokenizer_encode(t, text, n, 0, &ids, &m, &err)) die("encode", &err);
        double t1 = gpt_now();
        char *back;
        size_t bl;
        if (gpt_tokenizer_decode(t, ids, m, &back, &bl, &err)) die("decode", &err);
        double t2 = gpt_now();
        if (bl != n || memcmp(back, text, n)) {
            fprintf(stderr, "bench_tokenizer: %s does not round trip\n", label);
            exit(1);
        }
        free(back);
        free(ids);
        if (t1 - t0 < enc) enc = t1 - t0;
        if (t2 - t1 < dec) dec = t2 - t1;
    }
    printf("| %-14s | %-28s | %6.2f | %8zu | %8.1f | %8.3f | %8.0f |\n", gpt_tokenizer_name(t),
           label, 1e-6 * (double)n, m, 1e-6 * (double)n / enc, enc, 1e-6 * (double)n / dec);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    gpt_error err = {0};
    size_t shk_n, uni_n, word_n = 1 << 20;
    char *shk;
    if (gpt_read_file("data/tinyshakespeare.txt", 0, &shk, &shk_n, &err))
        die("run from the repository root", &err);
    char *uni = unicode_text(1 << 20, &uni_n), *word = one_word(word_n);

    double t0 = gpt_now();
    gpt_tokenizer *gpt2, *bytes, *own;
    if (gpt_tokenizer_open(&gpt2, "gpt2", &err)) die("gpt2", &err);
    double t_open = gpt_now() - t0;
    if (gpt_tokenizer_open(&bytes, "bytes", &err)) die("bytes", &err);
    t0 = gpt_now();
    if (gpt_tokenizer_train(&own, shk, shk_n, 4096, NULL, NULL, &err)) die("train", &err);
    double t_train = gpt_now() - t0;

    printf("gpt2 open (parse the built-in encoder.json and vocab.bpe): %.3f s\n", t_open);
    printf("train a 4096-token vocabulary on tinyshakespeare.txt: %.3f s\n\n", t_train);
    printf("best of %d runs, one core\n\n", runs);
    printf("| tokenizer      | input                        |     MB |   tokens | enc MB/s "
           "| enc s    | dec MB/s |\n");
    printf("| -------------- | ---------------------------- | -----: | -------: | -------: "
           "| -------: | -------: |\n");
    row(gpt2, "tinyshakespeare.txt", shk, shk_n, runs);
    row(gpt2, "mixed scripts (random words)", uni, uni_n, runs);
    row(gpt2, "one 1 MB word of a-z", word, word_n, runs);
    row(own, "tinyshakespeare.txt", shk, shk_n, runs);
    row(bytes, "tinyshakespeare.txt", shk, shk_n, runs);

    gpt_tokenizer_free(gpt2);
    gpt_tokenizer_free(bytes);
    gpt_tokenizer_free(own);
    free(shk);
    free(uni);
    free(word);
    return 0;
}
