/*
 * bench_decode_ops.c - what each operation of a decoding step costs on a
 * device, one op kind at a time, so that two backends (CUDA and Vulkan on
 * the same GPU) can be compared op by op.
 *
 *   build/bench/bench_decode_ops [--device vulkan] [--preset gpt2] [--batch 1]
 *       [--pos 320] [--reps 96]
 *
 * Each op is issued --reps times back to back inside one graph (where the
 * backend has graphs), the way a decoding step issues dependent ops; the
 * graph is replayed and the time divided by the ops. The weights of
 * consecutive products lie in different parts of a 256 MiB arena (more than
 * the GPU's L2), so they come from memory as in a real step. Buffers hold
 * zeros: the times do not depend on the values. Prints a table and one JSON
 * line per op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

#define ARENA ((size_t)256 << 20)

typedef struct {
    gpt_backend *be;
    int B, C, F, NH, Vp, S, pos, reps;
    size_t esz;                      /* bytes of a PARAM/ACT element */
    char *arena;                     /* weights, ARENA bytes */
    void *x, *y, *qkv, *big, *kc, *vc, *ln_w, *ln_b, *bias, *ids, *pos0;
    size_t off;                      /* next weight offset in the arena */
} bench;

/* The next `bytes` of the arena, wrapping (256-byte aligned). */
static void *weights(bench *b, size_t bytes) {
    bytes = (bytes + 255) & ~(size_t)255;
    if (b->off + bytes > ARENA) b->off = 0;
    void *p = b->arena + b->off;
    b->off += bytes;
    return p;
}

enum { OP_ADD, OP_QKV, OP_QKV_PLAIN, OP_ATTN, OP_PROJ, OP_ATTN_PROJ, OP_FC, OP_FC2, OP_FC2_PLAIN,
       OP_HEAD, OP_ARGMAX, OP_COUNT };
/* The plain products (no layernorm or residual folded in) show what the
 * folds cost. */
static const char *op_name[OP_COUNT] = {"add (trivial)", "ln + qkv", "qkv (plain)", "attention (kv)",
                                        "proj += x", "attention, proj", "ln + fc + gelu", "fc2 += x",
                                        "fc2 (plain)",
                                        "ln + head", "argmax"};

/* ln + product: the folded op where the backend has it, else the two ops. */
static void ln_mm(bench *b, void *out, int IC, int OC, int gelu) {
    gpt_backend *be = b->be;
    void *w = weights(b, (size_t)OC * IC * b->esz);
    if (be->ops->matmul_ln_forward &&
        be->ops->matmul_ln_forward(be, out, NULL, b->x, b->ln_w, b->ln_b, 1e-5f, w, b->bias, b->B,
                                   IC, OC, gelu))
        return;
    be->ops->layernorm_forward(be, b->y, NULL, NULL, b->x, b->ln_w, b->ln_b, b->B, IC, 1e-5f);
    be->ops->matmul_forward(be, out, NULL, b->y, w, b->bias, b->B, IC, OC, gelu);
}

static void mm_add(bench *b, const void *in, int IC, int OC) {
    gpt_backend *be = b->be;
    void *w = weights(b, (size_t)OC * IC * b->esz);
    if (be->ops->matmul_residual_forward &&
        be->ops->matmul_residual_forward(be, b->x, in, w, b->bias, b->B, IC, OC))
        return;
    be->ops->matmul_forward(be, b->y, NULL, in, w, b->bias, b->B, IC, OC, 0);
    be->ops->add(be, b->x, b->x, b->y, (size_t)b->B * OC);
}

/* The attention and the projection after it: one op where the backend
 * folds them, else the two. */
static void attn_proj(bench *b) {
    gpt_backend *be = b->be;
    const void *w = weights(b, (size_t)b->C * b->C * b->esz);
    if (be->ops->attention_kv_residual_forward &&
        be->ops->attention_kv_residual_forward(be, b->x, b->qkv, b->kc, b->vc, b->pos0, b->B, b->S,
                                               b->C, b->NH, w, b->bias))
        return;
    be->ops->attention_kv_forward(be, b->y, b->qkv, b->kc, b->vc, b->pos0, b->B, 1, b->S, b->C, b->NH);
    mm_add(b, b->y, b->C, b->C);
}

static void issue(bench *b, int op) {
    gpt_backend *be = b->be;
    int B = b->B, C = b->C;
    switch (op) {
    case OP_ADD: be->ops->add(be, b->y, b->y, b->x, (size_t)B * C); break;
    case OP_QKV: ln_mm(b, b->qkv, C, 3 * C, 0); break;
    case OP_QKV_PLAIN:
        be->ops->matmul_forward(be, b->qkv, NULL, b->x, weights(b, (size_t)3 * C * C * b->esz), b->bias,
                                B, C, 3 * C, 0);
        break;
    case OP_ATTN:
        be->ops->attention_kv_forward(be, b->y, b->qkv, b->kc, b->vc, b->pos0, B, 1, b->S, C, b->NH);
        break;
    case OP_PROJ: mm_add(b, b->y, C, C); break;
    case OP_ATTN_PROJ: attn_proj(b); break;
    case OP_FC: ln_mm(b, b->big, C, b->F, 1); break;
    case OP_FC2: mm_add(b, b->big, b->F, C); break;
    case OP_FC2_PLAIN:
        be->ops->matmul_forward(be, b->y, NULL, b->big, weights(b, (size_t)b->F * C * b->esz), b->bias,
                                B, b->F, C, 0);
        break;
    case OP_HEAD: ln_mm(b, b->big, C, b->Vp, 0); break;
    case OP_ARGMAX: be->ops->argmax(be, b->ids, b->big, B, b->Vp, b->Vp, NULL, NULL, 0); break;
    }
}

/* Weight bytes an op reads (0 for the others). */
static double op_bytes(const bench *b, int op) {
    double C = b->C, F = b->F, e = (double)b->esz;
    switch (op) {
    case OP_QKV: case OP_QKV_PLAIN: return 3 * C * C * e;
    case OP_PROJ: case OP_ATTN_PROJ: return C * C * e;
    case OP_FC: case OP_FC2: case OP_FC2_PLAIN: return C * F * e;
    case OP_HEAD: return C * b->Vp * e;
    default: return 0;
    }
}

int main(int argc, char **argv) {
    const char *device = "vulkan", *preset = "gpt2";
    int B = 1, pos = 320, reps = 96;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--device")) device = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--preset")) preset = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--pos")) pos = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_decode_ops [--device vulkan] [--preset gpt2] [--batch 1] "
                            "[--pos 320] [--reps 96]\n");
            return 2;
        }
    }
    gpt_error err = {0};
    gpt_config cfg;
    if (gpt_config_preset(preset, &cfg, &err) || (gpt_config_resolve(&cfg), gpt_config_validate(&cfg, &err))) {
        fprintf(stderr, "bench_decode_ops: %s\n", err.msg);
        return 2;
    }
    if (B < 1 || B > 8 || pos < 1 || pos >= cfg.max_seq_len || reps < 1 || reps > 4096) {
        fprintf(stderr, "bench_decode_ops: --batch 1..8, --pos 1..%d, --reps 1..4096\n",
                cfg.max_seq_len - 1);
        return 2;
    }
    bench b = {0};
    b.B = B, b.C = cfg.n_embd, b.F = cfg.mlp_hidden, b.NH = cfg.n_head, b.Vp = cfg.padded_vocab;
    b.S = cfg.max_seq_len, b.pos = pos, b.reps = reps;
    gpt_runtime rt = {0};
    rt.device = device;
    if (gpt_backend_create(&b.be, &rt, &err)) {
        fprintf(stderr, "bench_decode_ops: %s\n", err.msg);
        return 1;
    }
    gpt_backend *be = b.be;
    char desc[512];
    snprintf(desc, sizeof desc, "%s", be->ops->device_desc(be));
    gpt_shape s = {B, 1, b.C, b.NH, b.F, cfg.vocab_size, b.Vp, 1, b.S, 0, 0, 0, 0};
    be->ops->reserve(be, &s);
    b.esz = be->cls_size[GPT_CLS_PARAM];
    size_t rowsz = (size_t)B * b.Vp * b.esz;
    b.arena = be->ops->alloc(be, ARENA);
    b.x = be->ops->alloc(be, (size_t)B * b.C * b.esz);
    b.y = be->ops->alloc(be, (size_t)B * b.C * b.esz);
    b.qkv = be->ops->alloc(be, (size_t)B * 3 * b.C * b.esz);
    b.big = be->ops->alloc(be, rowsz);
    b.kc = be->ops->alloc(be, (size_t)B * b.S * b.C * b.esz);
    b.vc = be->ops->alloc(be, (size_t)B * b.S * b.C * b.esz);
    b.ln_w = be->ops->alloc(be, (size_t)b.Vp * b.esz);
    b.ln_b = be->ops->alloc(be, (size_t)b.Vp * b.esz);
    b.bias = be->ops->alloc(be, (size_t)b.Vp * b.esz);
    b.ids = be->ops->alloc(be, (size_t)B * 4);
    b.pos0 = be->ops->alloc(be, (size_t)B * 4);
    if (be->err.code) {
        fprintf(stderr, "bench_decode_ops: %s\n", be->err.msg);
        gpt_backend_destroy(be);
        return 1;
    }
    void *bufs[] = {b.arena, b.x, b.y, b.qkv, b.big, b.kc, b.vc, b.ln_w, b.ln_b, b.bias, b.ids};
    size_t sizes[] = {ARENA, (size_t)B * b.C * b.esz, (size_t)B * b.C * b.esz,
                      (size_t)B * 3 * b.C * b.esz, rowsz, (size_t)B * b.S * b.C * b.esz,
                      (size_t)B * b.S * b.C * b.esz, (size_t)b.Vp * b.esz, (size_t)b.Vp * b.esz,
                      (size_t)b.Vp * b.esz, (size_t)B * 4};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->ops->memset0(be, bufs[i], sizes[i]);
    int *p = malloc((size_t)B * sizeof *p);
    for (int i = 0; i < B; i++) p[i] = pos;
    be->ops->upload(be, b.pos0, p, (size_t)B, GPT_CLS_I32);
    free(p);

    printf("device: %s\n%s B=%d at position %d, %d ops a graph\n", desc, preset, B, pos, reps);
    printf("%-16s %10s %10s\n", "op", "us", "GB/s");
    for (int op = 0; op < OP_COUNT; op++) {
        double best = 1e30;
        for (int r = 0; r < 6; r++) { /* run 0 records the graph and warms up */
            b.off = 0;
            be->ops->sync(be);
            double t0 = gpt_now();
            if (!be->ops->graph_begin(be, op)) {
                for (int k = 0; k < reps; k++) issue(&b, op);
                be->ops->graph_end(be, op);
            }
            be->ops->sync(be);
            double t = (gpt_now() - t0) / reps;
            if (r > 0 && t < best) best = t;
        }
        if (be->err.code) {
            fprintf(stderr, "bench_decode_ops: %s: %s\n", op_name[op], be->err.msg);
            gpt_backend_destroy(be);
            return 1;
        }
        double gbs = op_bytes(&b, op) / best / 1e9;
        printf("%-16s %10.2f %10.0f\n", op_name[op], best * 1e6, gbs);
        printf("{\"bench\": \"decode_ops\", \"device\": \"%s\", \"preset\": \"%s\", \"batch\": %d, "
               "\"op\": \"%s\", \"us\": %.3f, \"gb_s\": %.1f}\n",
               device, preset, B, op_name[op], best * 1e6, gbs);
    }
    gpt_backend_destroy(be);
    return 0;
}
