/*
 * gpt2_data.c - OpenAI's GPT-2 vocabulary files, embedded in the library so
 * that the "gpt2" tokenizer works from any folder. The assembler's .incbin
 * copies data/gpt2/encoder.json and data/gpt2/vocab.bpe (paths relative to
 * the repository root, where make runs; the Makefile lists both files as
 * dependencies of this object). GPT_DATA_DIR overrides the folder.
 */
#include "tok_internal.h"

#ifndef GPT_DATA_DIR
#define GPT_DATA_DIR "data"
#endif

#if defined(__APPLE__)
#define GPT_SYM(name) "_" #name
#define GPT_RODATA "__TEXT,__const"
#define GPT_HIDE(name) ".private_extern " GPT_SYM(name) "\n"
#elif defined(__ELF__)
#define GPT_SYM(name) #name
#define GPT_RODATA ".rodata"
#define GPT_HIDE(name) ".hidden " GPT_SYM(name) "\n"
#else
#error "gpt2_data.c embeds files with .incbin: add this object format's section syntax"
#endif

/* name: the file's bytes and a NUL; name_size: a uint64 holding its length. */
#define GPT_INCBIN(name, file)                                                            \
    ".globl " GPT_SYM(name) "\n" GPT_HIDE(name) ".globl " GPT_SYM(name##_size) "\n"       \
    GPT_HIDE(name##_size) ".balign 8\n" GPT_SYM(name##_size) ":\n"                        \
    ".quad 2f - 1f\n" GPT_SYM(name) ":\n"                                                 \
    "1:\n.incbin \"" GPT_DATA_DIR "/" file "\"\n2:\n.byte 0\n"

__asm__(".pushsection " GPT_RODATA "\n"
        GPT_INCBIN(gpt_gpt2_encoder_json, "gpt2/encoder.json")
        GPT_INCBIN(gpt_gpt2_vocab_bpe, "gpt2/vocab.bpe")
        ".popsection\n");

extern const char gpt_gpt2_encoder_json[], gpt_gpt2_vocab_bpe[];
extern const uint64_t gpt_gpt2_encoder_json_size, gpt_gpt2_vocab_bpe_size;

void tok_gpt2_files(const char **encoder_json, size_t *encoder_len, const char **vocab_bpe,
                    size_t *vocab_len) {
    *encoder_json = gpt_gpt2_encoder_json;
    *encoder_len = (size_t)gpt_gpt2_encoder_json_size;
    *vocab_bpe = gpt_gpt2_vocab_bpe;
    *vocab_len = (size_t)gpt_gpt2_vocab_bpe_size;
}
