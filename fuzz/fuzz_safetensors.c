/*
 * fuzz_safetensors.c - libFuzzer target for the Hugging Face checkpoint
 * reader (safetensors container + config.json): any bytes must parse or be
 * refused with GPT_ERR_INVALID and a message, never crash or read outside
 * the input. What parses must read every tensor within its bounds.
 *
 * Input: a 4-byte little-endian length c, then c bytes of config.json,
 * then the model.safetensors image (c is clamped to what is there). The
 * image is also parsed alone, so the container is fuzzed even when the
 * config is broken.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "hf.h"
#include "safetensors.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t c = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
               (size_t)data[3] << 24;
    if (c > size - 4) c = size - 4;
    /* Copies of exactly the input's bytes: ASan catches a read past them. */
    char *cfg = malloc(c ? c : 1);
    size_t n = size - 4 - c;
    unsigned char *img = malloc(n ? n : 1);
    check(cfg && img, "out of memory");
    memcpy(cfg, data + 4, c);
    memcpy(img, data + 4 + c, n);

    gpt_error err = {0};
    st_file st;
    alloc_begin();
    int rc = st_parse(&st, img, n, &err);
    if (rc) {
        check(rc == GPT_ERR_INVALID && err.msg[0], "container refused without a message");
        alloc_check_refusal("fuzz_safetensors", "a safetensors image", n, 16, 65536);
    } else {
        for (size_t i = 0; i < st.n; i++) {
            const st_tensor *t = &st.t[i];
            check(t->begin <= t->end && t->end <= st.data_len, "tensor outside the data");
            check(st_find(&st, t->name) == t, "st_find");
            if (t->dtype != ST_OTHER && t->numel) {
                float first, last;
                st_read_f32(&st, t, 0, 1, &first);
                st_read_f32(&st, t, t->numel - 1, 1, &last);
            }
        }
        st_free(&st);
    }

    gpt_hf_file *f = NULL;
    memset(&err, 0, sizeof err);
    alloc_begin();
    rc = gpt_hf_parse_memory(&f, cfg, c, img, n, &err);
    if (rc) {
        check(!f && (rc == GPT_ERR_INVALID || rc == GPT_ERR_NOMEM) && err.msg[0],
              "checkpoint refused without GPT_ERR_INVALID and a message");
        alloc_check_refusal("fuzz_safetensors", "config.json and a safetensors image", c + n, 16,
                            65536);
    } else {
        const gpt_config *cf = gpt_hf_config(f);
        check(gpt_hf_num_tensors(f) == 4 + 12 * cf->n_layer, "tensor count");
        for (int i = 0; i < gpt_hf_num_tensors(f); i++) {
            const gpt_tensor_info *t = gpt_hf_tensor(f, i);
            check(gpt_hf_find(f, t->name) == i, "gpt_hf_find");
            float *buf = malloc((t->numel ? t->numel : 1) * sizeof *buf);
            check(buf != NULL, "out of memory");
            gpt_hf_read(f, i, buf);
            free(buf);
        }
        gpt_hf_close(f);
    }
    free(cfg);
    free(img);
    return 0;
}
