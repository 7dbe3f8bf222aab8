/*
 * tok_internal.h - what the tokenizer files share: the tokenizer struct,
 * its validating constructor, the GPT-2 pre-tokenizer and a byte-string
 * hash map.
 *
 * Every vocabulary, OpenAI's GPT-2 included, has the same shape:
 *   ids 0..255          the 256 single bytes (byte_id[] says which is which)
 *   id 256 + r          merge r: the concatenation of two earlier tokens
 *   id 256 + M + k      special token k (its text, e.g. "<|endoftext|>")
 * so V = 256 + M + S, and a merge's rank is its id minus 256.
 */
#ifndef GPT_TOK_INTERNAL_H
#define GPT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gpt_tokenizer.h"

/* Limits that keep hostile files from asking for absurd memory. GPT-2's
 * longest token is 128 bytes; 4096 leaves room for trained vocabularies of
 * long repeated runs. */
#define TOK_MAX_VOCAB (1 << 24)
#define TOK_MAX_SPECIAL 1024
#define TOK_MAX_TOKEN_BYTES 4096
/* All tokens' bytes together (GPT-2's take 0.3 MB). */
#define TOK_MAX_TOTAL_BYTES (1 << 28)

#define TOK_EOT_TEXT "<|endoftext|>"

struct gpt_tokenizer {
    char *name;          /* as given to open, or "(memory)", "(trained)" */
    int V, M, S;         /* vocabulary, merges, special tokens: V = 256 + M + S */
    int eot;             /* id of <|endoftext|>, or -1 */
    int byte_id[256];    /* id of each single byte: a permutation of 0..255 */
    int32_t *merges;     /* (M, 2): left and right id of merge r (it makes id 256 + r) */
    size_t *tok_off;     /* (V + 1): token i is tok_bytes[tok_off[i] .. tok_off[i + 1]) */
    char *tok_bytes;     /* every token's bytes, concatenated, NUL-terminated */
    uint64_t *pair_keys; /* (pair_mask + 1) open addressing: left << 32 | right, or ~0 */
    int32_t *pair_rank;  /* (pair_mask + 1) rank of the merge of that pair */
    size_t pair_mask;
};

/* Builds a tokenizer from its parts and checks them: byte_id a
 * permutation, each merge joining ids defined before it (bytes or earlier
 * merges), no merge twice, special texts non-empty, valid UTF-8, distinct,
 * tokens at most TOK_MAX_TOKEN_BYTES long. `what` names the source in
 * messages ("tokenizer file 'x'"). Copies everything it is given. */
int tok_build(gpt_tokenizer **out, const char *name, const char *what, const int byte_id[256],
              int M, const int32_t *merges, int S, const char *const *special,
              const size_t *special_len, gpt_error *err);

/* A tokenizer file (tok_file.c). */
int tok_load_file(gpt_tokenizer **out, const char *path, gpt_error *err);

/* OpenAI's GPT-2 vocabulary, from the encoder.json and vocab.bpe compiled
 * into the library (gpt2.c). */
int tok_open_gpt2(gpt_tokenizer **out, gpt_error *err);
/* The files themselves (gpt2_data.c). */
void tok_gpt2_files(const char **encoder_json, size_t *encoder_len, const char **vocab_bpe,
                    size_t *vocab_len);

/* The code point that stands for each byte in GPT-2's vocabulary files
 * (printable bytes for themselves, the others shifted past 255). */
void tok_byte_alphabet(uint32_t cp[256]);

/* Rank of the merge of (left, right), or -1. */
static inline int32_t tok_pair_rank(const gpt_tokenizer *t, int32_t left, int32_t right) {
    if (!t->pair_keys) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & t->pair_mask;
    for (;;) {
        if (t->pair_keys[i] == key) return t->pair_rank[i];
        if (t->pair_keys[i] == UINT64_MAX) return -1;
        i = (i + 1) & t->pair_mask;
    }
}

/* The GPT-2 pre-tokenizer: end (exclusive) of the pre-token that starts at
 * s[i], i < n. Same splits as OpenAI's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s the White_Space property; a byte that is not well-formed UTF-8
 * counts as one character of none of the classes. */
size_t tok_pretoken_end(const unsigned char *s, size_t n, size_t i);

/* ------------------------------------------------ byte-string hash map */

/* Maps byte strings (copied in) to a pair of size_t values. Open
 * addressing; entries keep insertion order (entry i is the i-th key). */
typedef struct {
    uint64_t *slot_hash; /* (mask + 1) hash of the key in the slot; 0 = empty */
    size_t *slot_entry;  /* (mask + 1) entry index */
    size_t mask;
    size_t count;        /* entries */
    size_t *key_off;     /* (count + 1) key i is keys[key_off[i] .. key_off[i + 1]) */
    char *keys;
    size_t keys_cap, entry_cap;
    size_t *val;         /* (count, 2) two values per entry */
} tok_map;

uint64_t tok_hash(const void *p, size_t n);
/* 0 or GPT_ERR_NOMEM. */
int tok_map_init(tok_map *m, size_t expected);
void tok_map_free(tok_map *m);
/* Forgets every entry, keeping the memory. */
void tok_map_clear(tok_map *m);
/* Entry index of a key, or SIZE_MAX; h = tok_hash(key, n). */
size_t tok_map_find(const tok_map *m, const void *key, size_t n, uint64_t h);
/* Adds a key that is not in the map; its entry index in *entry. 0 or
 * GPT_ERR_NOMEM. */
int tok_map_add(tok_map *m, const void *key, size_t n, uint64_t h, size_t *entry);

#endif
