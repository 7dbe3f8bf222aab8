/*
 * gpt_tokenizer.h - byte-level BPE tokenizers (OpenAI's GPT-2 and our own
 * trained vocabularies) and token shard files. Same conventions as gpt.h:
 * 0 on success, else a gpt_status with *err filled; never exits.
 */
#ifndef GPT_TOKENIZER_H
#define GPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "gpt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_tokenizer gpt_tokenizer;

/* name: "gpt2" (OpenAI's GPT-2 BPE, built into the library), "bytes" (256
 * tokens, one per byte, id = byte value, no <|endoftext|>: eot is -1), or
 * the path of a tokenizer file written by gpt_tokenizer_save. */
int gpt_tokenizer_open(gpt_tokenizer **out, const char *name, gpt_error *err);
/* 1 if name is a tokenizer built into the library ("gpt2", "bytes"), which
 * gpt_tokenizer_open makes without opening a file. */
int gpt_tokenizer_is_builtin(const char *name);
/* A tokenizer file's bytes, already in memory (checkpoints, fuzzing). */
int gpt_tokenizer_load_memory(gpt_tokenizer **out, const void *data, size_t n, gpt_error *err);
void gpt_tokenizer_free(gpt_tokenizer *t);

/* Name given to open ("gpt2", "bytes", or the file path); "(memory)" after
 * gpt_tokenizer_load_memory, "(trained)" after gpt_tokenizer_train. */
const char *gpt_tokenizer_name(const gpt_tokenizer *t);
int gpt_tokenizer_vocab_size(const gpt_tokenizer *t);
/* Id of <|endoftext|>, or -1 if the vocabulary has none. */
int gpt_tokenizer_eot(const gpt_tokenizer *t);

/* Encodes n bytes of text (any bytes; invalid UTF-8 is encoded byte by
 * byte). With allow_special, the text "<|endoftext|>" becomes the eot id;
 * without it, it is ordinary text. *ids is malloc'd (free it), *n_ids set. */
int gpt_tokenizer_encode(const gpt_tokenizer *t, const char *text, size_t n, int allow_special,
                         int **ids, size_t *n_ids, gpt_error *err);
/* gpt_tokenizer_encode that also calls progress (may be NULL) now and then
 * with the bytes of text encoded so far, and once at the end with n. */
int gpt_tokenizer_encode_progress(const gpt_tokenizer *t, const char *text, size_t n,
                                  int allow_special, int **ids, size_t *n_ids,
                                  void (*progress)(void *user, size_t done, size_t total),
                                  void *user, gpt_error *err);
/* Decodes ids to bytes; *text is malloc'd and NUL-terminated (*len excludes
 * the NUL). Ids out of range are an error. */
int gpt_tokenizer_decode(const gpt_tokenizer *t, const int *ids, size_t n, char **text,
                         size_t *len, gpt_error *err);
/* The bytes of one token (for streaming), or NULL if id is out of range. */
const char *gpt_tokenizer_token(const gpt_tokenizer *t, int id, size_t *len);

/* Trains a byte-level BPE vocabulary of vocab_size tokens (>= 257: 256
 * bytes, the merges, and <|endoftext|>) on text, with the GPT-2
 * pre-tokenizer. Deterministic. progress may be NULL. Ids: byte b is b,
 * merge r is 256 + r, <|endoftext|> is last; occurrences of the text
 * "<|endoftext|>" separate documents and are not learned from. If the text
 * runs out of pairs first, the vocabulary is smaller (check
 * gpt_tokenizer_vocab_size). */
int gpt_tokenizer_train(gpt_tokenizer **out, const char *text, size_t n, int vocab_size,
                        void (*progress)(void *user, int merges_done, int merges_total),
                        void *user, gpt_error *err);
/* Writes the tokenizer file (versioned; atomic). */
int gpt_tokenizer_save(const gpt_tokenizer *t, const char *path, gpt_error *err);
/* The tokenizer file's bytes (for embedding in a checkpoint); malloc'd. */
int gpt_tokenizer_serialize(const gpt_tokenizer *t, void **data, size_t *n, gpt_error *err);

/* ------------------------------------------------------- token shards */

/* A token shard file: a versioned header (magic, version, token count, id
 * width, vocabulary size), the ids as uint16 (vocab <= 65536) or uint32,
 * and a CRC-32 of every 64 KiB of ids. Opened files are memory-mapped;
 * gpt_shard_read checks each block of ids against its CRC the first time
 * it reads from it, and every id against the vocabulary. */
typedef struct gpt_shard gpt_shard;

/* Writes ids atomically; every id must be in [0, vocab_size). */
int gpt_shard_write(const char *path, const int *ids, size_t n, int vocab_size, gpt_error *err);
/* Writes count shards (ids[f], n[f] ids, to paths[f]) as one commit: all are
 * written and synced before any replaces an old file, so a failure (disk
 * full) leaves every old shard as it was (a training and a validation
 * split stay a pair). */
int gpt_shard_write_all(const char *const *paths, const int *const *ids, const size_t *n,
                        int count, int vocab_size, gpt_error *err);
int gpt_shard_open(gpt_shard **out, const char *path, gpt_error *err);
void gpt_shard_close(gpt_shard *s);
size_t gpt_shard_count(const gpt_shard *s);
int gpt_shard_vocab_size(const gpt_shard *s);
/* Copies ids [start, start+n) as int; fails if the range is outside. */
int gpt_shard_read(const gpt_shard *s, size_t start, size_t n, int *out, gpt_error *err);

#ifdef __cplusplus
}
#endif
#endif
