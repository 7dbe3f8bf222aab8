/*
 * safetensors.h - the safetensors container (Hugging Face): an 8-byte
 * little-endian header length N, N bytes of JSON mapping each tensor name
 * to {"dtype", "shape", "data_offsets": [begin, end)} (offsets into the
 * byte buffer that follows the header), an optional "__metadata__" object
 * of strings, then the byte buffer. Little-endian element data.
 *
 * The reader takes an image already in memory (a memory map or a fuzzer's
 * buffer) and checks every field before anything is read: header length,
 * JSON, known dtype, shape, byte count, offsets inside the buffer, no two
 * tensors overlapping, no name twice. It never copies tensor bytes.
 */
#ifndef GPT_SAFETENSORS_H
#define GPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"

/* Dtypes that can be read as fp32; every other known dtype is ST_OTHER. */
enum { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_OTHER = 3 };

/* Headers larger than this are refused (the format's own reader's limit). */
#define ST_MAX_HEADER ((size_t)100 << 20)

typedef struct {
    char *name;             /* NUL-terminated (names with NUL bytes are refused) */
    const char *dtype_name; /* "F32", "BF16", ... (static) */
    int dtype;              /* ST_* */
    size_t elem_size;       /* bytes per element */
    int ndim;
    size_t *shape;     /* (ndim) */
    size_t numel;      /* product of shape (1 for a scalar) */
    size_t begin, end; /* byte range [begin, end) of the data buffer */
} st_tensor;

typedef struct {
    st_tensor *t; /* (n) sorted by name */
    size_t n;
    const unsigned char *data; /* the byte buffer after the header */
    size_t data_len;
} st_file;

/* Parses and checks an image of n bytes. buf must outlive f. Errors are
 * GPT_ERR_INVALID (GPT_ERR_NOMEM) with a message naming the tensor. */
int st_parse(st_file *f, const void *buf, size_t n, gpt_error *err);
void st_free(st_file *f);
/* The tensor with this name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
/* Converts elements [start, start+count) of t (F32, F16 or BF16) to fp32.
 * The range must be inside t (checked by the caller). */
void st_read_f32(const st_file *f, const st_tensor *t, size_t start, size_t count, float *dst);

/* IEEE half and bfloat16 to float (exact). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

#endif
