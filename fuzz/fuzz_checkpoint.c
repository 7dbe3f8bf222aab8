/*
 * fuzz_checkpoint.c - libFuzzer target for our checkpoint reader (src/ckpt.c):
 * any file must load or be refused with GPT_ERR_INVALID (GPT_ERR_NOMEM for a
 * failed allocation) and a message; never crash, never read outside the
 * file, never allocate more than the runtime allows. A file that loads
 * must also give its trainer state, run a forward pass, and save back to
 * exactly the same bytes (the format is canonical), optimizer state
 * included when it has some.
 *
 * gpt_model_load takes a path, so each input is written to a scratch file
 * (in /dev/shm when there is one). The runtime is the CPU, one thread, with
 * a 64 MiB memory limit: configurations that are valid but huge must be
 * refused, not allocated. Each input is tried as given and with its CRC-32
 * (the 4 bytes before the 8-byte end marker) corrected, so that mutations
 * get past the checksum to what lies behind it. A refusal allocates at most
 * 16 bytes per input byte (alloc_count.h): the memory limit alone let a
 * 33 KB file claiming a million layers build a model before it was refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_count.h"
#include "gpt.h"
#include "util.h"

static char path[256], path2[256];

static void check(int ok, const char *what, const gpt_error *err) {
    if (!ok) {
        fprintf(stderr, "fuzz_checkpoint: %s (%s)\n", what, err ? err->msg : "");
        abort();
    }
}

static void write_file(const char *p, const unsigned char *d, size_t n) {
    FILE *f = fopen(p, "wb");
    check(f != NULL, "cannot write the scratch file", NULL);
    check(fwrite(d, 1, n, f) == n && fclose(f) == 0, "cannot write the scratch file", NULL);
}

static void refused(int rc, const gpt_error *err, const char *what) {
    check((rc == GPT_ERR_INVALID || rc == GPT_ERR_NOMEM) && err->msg[0], what, err);
}

/* Saves m to path2 and compares it with the input. */
static void round_trip(gpt_model *m, int with_opt, const gpt_train_state *st,
                       const unsigned char *d, size_t n) {
    gpt_error err = {0};
    check(gpt_checkpoint_save(m, path2, with_opt, st, &err) == 0, "cannot save a loaded model",
          &err);
    char *back;
    size_t bn;
    check(gpt_read_file(path2, 0, &back, &bn, &err) == 0, "cannot read the saved copy", &err);
    check(bn == n && !memcmp(back, d, n), "save(load(x)) != x", NULL);
    free(back);
}

static void try_load(const unsigned char *d, size_t n) {
    write_file(path, d, n);
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32, .threads = 1, .memory_limit = (size_t)64 << 20};
    gpt_error err = {0};
    gpt_config cfg;
    gpt_train_state st;
    alloc_begin();
    int rc_state = gpt_checkpoint_read_state(path, &cfg, &st, &err);
    if (rc_state) {
        refused(rc_state, &err, "state refused without GPT_ERR_INVALID and a message");
        alloc_check_refusal("fuzz_checkpoint", "a checkpoint's header", n, 2, 65536);
    }
    gpt_model *m = NULL;
    memset(&err, 0, sizeof err);
    alloc_begin();
    int rc = gpt_model_load(&m, path, &rt, &err);
    if (rc) {
        check(m == NULL, "a refused load handed out a model", &err);
        refused(rc, &err, "load refused without GPT_ERR_INVALID and a message");
        /* The model is built only for a file at least as large as its
         * parameters and a 33-byte table entry per tensor; the build's host
         * tables and alignment padding cost under 16 bytes per such byte. */
        char what[640];
        snprintf(what, sizeof what, "a checkpoint (%s)", err.msg);
        alloc_check_refusal("fuzz_checkpoint", what, n, 16, (size_t)1 << 20);
        return;
    }
    check(rc_state == 0, "the model loads but its state does not", NULL);
    const gpt_config *c = gpt_model_config(m);
    check(!memcmp(c, &cfg, sizeof cfg), "configurations of load and read_state differ", NULL);
    check(gpt_config_validate(c, &err) == 0, "a loaded configuration is invalid", &err);

    /* A forward pass over one position: finite weights of any size must
     * not crash (the loss may overflow to inf; that is not an error). */
    int tok[2] = {0, c->vocab_size - 1};
    double loss;
    rc = gpt_eval_loss(m, tok, 1, 1, &loss, &err);
    if (rc) refused(rc, &err, "forward pass failed without a message");

    uint32_t flags = (uint32_t)d[12] | (uint32_t)d[13] << 8 | (uint32_t)d[14] << 16 |
                     (uint32_t)d[15] << 24;
    if (!(flags & 1)) {
        round_trip(m, 0, &st, d, n);
    } else {
        /* The moments need the training buffers; a trainer state whose
         * batch does not fit the memory limit is refused, and that is fine. */
        gpt_train_opts o;
        gpt_train_opts_default(&o);
        o.batch_size = o.seq_len = 1;
        if (st.has_train) o = st.opts;
        rc = gpt_train_init(m, &o, &err);
        if (rc) refused(rc, &err, "train_init failed without a message");
        else {
            rc = gpt_train_resume(m, path, &err);
            if (rc) refused(rc, &err, "resume refused without a message");
            else round_trip(m, 1, &st, d, n);
        }
    }
    gpt_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/fuzz_ckpt.%ld.ckpt", dir, (long)getpid());
        snprintf(path2, sizeof path2, "%s/fuzz_ckpt.%ld.saved.ckpt", dir, (long)getpid());
    }
    static int warm;
    if (!warm) {
        /* The OpenMP runtime allocates for itself once, when the first
         * backend is made: not the loader's cost. */
        gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32, .threads = 1,
                          .memory_limit = (size_t)64 << 20};
        gpt_config cfg = {16, 0, 4, 1, 1, 4, 4, 0};
        gpt_model *m = NULL;
        gpt_error err;
        check(gpt_model_create(&m, &cfg, &rt, 1, &err) == 0, "cannot make a model", &err);
        gpt_model_free(m);
        warm = 1;
    }
    try_load(data, size);
    if (size >= 16 + 12) {
        unsigned char *d = malloc(size);
        if (!d) return 0;
        memcpy(d, data, size);
        uint32_t crc = gpt_crc32(0, d, size - 12);
        for (int k = 0; k < 4; k++) d[size - 12 + k] = (unsigned char)(crc >> (8 * k));
        try_load(d, size);
        free(d);
    }
    unlink(path);
    unlink(path2);
    return 0;
}
