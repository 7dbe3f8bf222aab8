/*
 * vk_ops.c - the table's operations on Vulkan: each checks its shape,
 * fills the push constants of its shader(s) (device addresses and sizes;
 * the structs mirror the shaders' push_constant blocks field for field)
 * and records the dispatches.
 *
 * Loss scaling (fp16 training). fp16 activation gradients underflow: the
 * gradient of a logit is dloss * (p - y) with dloss = 1/(B*T) ~ 1e-4 and p
 * down to 1e-6, below fp16's smallest normal (6e-5). So crossentropy with
 * grad multiplies dloss by a scale S held in device memory (65536 to
 * start); every activation gradient downstream carries S (the backward
 * ops are linear in their incoming gradient), and every op that adds into
 * a GRAD (fp32) tensor divides by S as it adds, so parameter gradients are
 * the true ones (the model, its tests and AdamW see no scale). An fp16
 * overflow becomes Inf in the gradients, hence a non-finite norm: adamw
 * then skips the update (reported as skipped, like any non-finite step),
 * quarters S, and doubles it after 1000 good steps in a row. A skip of
 * this kind counts in the model's bad-step streak (--max-bad-steps,
 * default 5): from 65536, four quarterings in a row reach 256, far below
 * what gradients that small overflow at, so calibration does not stop a
 * healthy run. GPT_VULKAN_LOSS_SCALE sets the starting S (the op tests set
 * 1 to compare ops against the CPU as the table defines them). In fp32, S
 * is 1 and never changes.
 */
#include <math.h>
#include <string.h>

#include "vk_internal.h"

#define U(p) vk_addr(p)

static int fail_shape(gpt_backend *be, const char *op) {
    gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan %s: invalid shape or missing buffer", op);
    return 1;
}
#define CHECK(cond, op)                                                                    \
    do {                                                                                   \
        if (be->err.code) return;                                                          \
        if (!(cond)) {                                                                     \
            fail_shape(be, op);                                                            \
            return;                                                                        \
        }                                                                                  \
    } while (0)

static uint32_t blocks(size_t n, size_t per) { return (uint32_t)((n + per - 1) / per); }
static uint32_t capped(size_t n, size_t per, uint32_t cap) {
    size_t g = (n + per - 1) / per;
    return g > cap ? cap : g ? (uint32_t)g : 1;
}
static uint64_t scale_ptr(gpt_backend *be) { return U(vk_ctx_of(be)->state) + VK_STATE_SCALE; }

/* ------------------------------------------------------------- encoder */

void vk_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                        const void *wte, const void *wpe, int B, int T, int C, int Vp, int maxT) {
    CHECK(B > 0 && T > 0 && C > 0 && Vp > 0 && maxT > 0 && out && tok && wte && wpe, "encoder_forward");
    struct { uint64_t out, tok, pos0, wte, wpe; int T, C, Vp, maxT, cblocks, N; } pc = {
        U(out), U(tok), U(pos0), U(wte), U(wpe), T, C, Vp, maxT, (int)blocks((size_t)C, 256), B * T};
    vk_dispatch(be, SH_ENCODER_FWD, NULL, &pc, sizeof pc, (uint32_t)pc.cblocks * (uint32_t)(B * T), 1, 1);
}

void vk_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout, const int *tok,
                         int B, int T, int C, int Vp) {
    CHECK(B > 0 && T > 0 && C > 0 && Vp > 0 && dwte && dwpe && dout && tok, "encoder_backward");
    struct { uint64_t dwte, tok, dout, scale; int N, C, Vp; } a = {U(dwte), U(tok), U(dout), scale_ptr(be), B * T, C, Vp};
    vk_dispatch(be, SH_ENCODER_BWD_WTE, NULL, &a, sizeof a, (uint32_t)(B * T), 1, 1);
    struct { uint64_t dwpe, dout, scale; int B, T, C; } w = {U(dwpe), U(dout), scale_ptr(be), B, T, C};
    vk_dispatch(be, SH_ENCODER_BWD_WPE, NULL, &w, sizeof w, blocks((size_t)T * C, 256), 1, 1);
}

/* ----------------------------------------------------------- layernorm */

typedef struct { uint64_t out, mean, rstd, a, b, res, w, bias; int N, C; float eps; } ln_pc;

void vk_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd, const void *x,
                          const void *w, const void *b, int N, int C, float eps) {
    CHECK(N > 0 && C > 0 && out && x && w && b, "layernorm_forward");
    ln_pc pc = {U(out), U(mean), U(rstd), U(x), 0, 0, U(w), U(b), N, C, eps};
    vk_dispatch(be, SH_LAYERNORM_FWD, NULL, &pc, sizeof pc, (uint32_t)N, 1, 1);
}

void vk_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                   float *rstd, const void *a, const void *b, const void *w,
                                   const void *bias, int N, int C, float eps) {
    CHECK(N > 0 && C > 0 && res && out && a && b && w && bias, "residual_layernorm_forward");
    ln_pc pc = {U(out), U(mean), U(rstd), U(a), U(b), U(res), U(w), U(bias), N, C, eps};
    vk_dispatch(be, SH_LAYERNORM_FWD, NULL, &pc, sizeof pc, (uint32_t)N, 1, 1);
}

/* Row chunks for column sums: at most 64, at least 1 row each. */
static void chunks(int N, int *G, int *rows) {
    *G = N < 64 ? N : 64;
    *rows = (N + *G - 1) / *G;
    *G = (N + *rows - 1) / *rows;
}

/* dst0[c] (and dst1[c]) += sum of the G partial rows (and the next G), / S */
static void colsum_finish(gpt_backend *be, void *part, void *dst0, void *dst1, int C, int G) {
    struct { uint64_t part, dst0, dst1, scale; int C, G; } pc = {U(part), U(dst0), U(dst1), scale_ptr(be), C, G};
    vk_dispatch(be, SH_COLSUM_FINISH, NULL, &pc, sizeof pc, blocks((size_t)C, 256), 1, 1);
}

void vk_layernorm_backward(gpt_backend *be, void *dx, void *dw, void *db, const void *dout,
                           const void *x, const void *w, const float *mean, const float *rstd,
                           int N, int C) {
    CHECK(N > 0 && C > 0 && dx && dw && db && dout && x && w && mean && rstd, "layernorm_backward");
    struct { uint64_t dx, dout, x, w, mean, rstd; int N, C; } a = {U(dx), U(dout), U(x), U(w), U(mean), U(rstd), N, C};
    vk_dispatch(be, SH_LAYERNORM_BWD_DX, NULL, &a, sizeof a, (uint32_t)N, 1, 1);
    int G, rows;
    chunks(N, &G, &rows);
    void *part = vk_scratch(be, (size_t)2 * G * C * 4);
    if (!part) return;
    int cb = (int)blocks((size_t)C, 256);
    struct { uint64_t part, dout, x, mean, rstd; int N, C, G, rows, cblocks; } p = {
        U(part), U(dout), U(x), U(mean), U(rstd), N, C, G, rows, cb};
    vk_dispatch(be, SH_LAYERNORM_BWD_DW, NULL, &p, sizeof p, (uint32_t)(cb * G), 1, 1);
    colsum_finish(be, part, dw, db, C, G);
}

/* -------------------------------------------------------------- matmul */

typedef struct {
    uint64_t a, b, out, pre, bias, scale;
    int M, N, K, lda, ldb, gelu_on, tiles_n, vec_a, vec_b, k_len;
} mm_pc;

static int aligned16(const void *p) { return (U(p) & 15) == 0; }

/* C (M, N) = A B with the layouts and epilogue of shaders/matmul.comp: on
 * the tensor cores (matmul_coop.comp, 128 x 128 tiles) where the device
 * has them and the product fills at least a 32 x 32 tile, else the tiled
 * fp32 kernel (64 x 64 tiles). */
static void gemm(gpt_backend *be, int ta, int tb, int epi, mm_pc pc) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->coop && pc.M >= 32 && pc.N >= 32 && pc.K >= 32) {
        /* 16-byte staging copies need 16-byte aligned rows */
        pc.vec_a = aligned16((void *)(uintptr_t)pc.a) && pc.lda % 8 == 0;
        pc.vec_b = aligned16((void *)(uintptr_t)pc.b) && pc.ldb % 8 == 0;
        pc.tiles_n = (int)blocks((size_t)pc.N, 128);
        size_t tiles = (size_t)blocks((size_t)pc.M, 128) * (size_t)pc.tiles_n;
        /* A weight gradient with few output tiles and a long K (gpt2's
         * 768 x 768 projection: 36 tiles, K = B * T) would leave most of
         * the GPU idle: K is split into S parts of whole 64-wide steps,
         * at least 256 each, so that about 256 workgroups run; their
         * partial tiles are then added in a fixed order. */
        int S = 1, k_len = pc.K;
        if (epi == 2 && c->splitk && tiles < 256) {
            S = (int)((256 + tiles - 1) / tiles);
            if (S > pc.K / 256) S = pc.K / 256;
            while (S > 1 && (size_t)S * pc.M * pc.N * 4 > c->splitk_bytes) S--;
            if (S > 1) {
                k_len = (int)((blocks((size_t)pc.K, (size_t)S) + 63) / 64 * 64);
                S = (int)blocks((size_t)pc.K, (size_t)k_len);
            }
        }
        if (S > 1) {
            mm_pc part = pc;
            part.out = U(c->splitk);
            part.k_len = k_len;
            int spec[VK_MAX_SPEC] = {ta, tb, 3, c->coop_n};
            vk_dispatch(be, SH_MATMUL_COOP, spec, &part, sizeof part, (uint32_t)(tiles * S), 1, 1);
            uint32_t n = (uint32_t)pc.M * (uint32_t)pc.N;
            struct { uint64_t out, part, scale; uint32_t n; int S; } sp = {pc.out, U(c->splitk), pc.scale, n, S};
            vk_dispatch(be, SH_SPLITK_SUM, NULL, &sp, sizeof sp, blocks(n, 256), 1, 1);
            return;
        }
        int spec[VK_MAX_SPEC] = {ta, tb, epi, c->coop_n};
        vk_dispatch(be, SH_MATMUL_COOP, spec, &pc, sizeof pc, (uint32_t)tiles, 1, 1);
        return;
    }
    pc.tiles_n = (int)blocks((size_t)pc.N, 64);
    int spec[VK_MAX_SPEC] = {ta, tb, epi, 0};
    size_t groups = (size_t)blocks((size_t)pc.M, 64) * (size_t)pc.tiles_n;
    vk_dispatch(be, SH_MATMUL, spec, &pc, sizeof pc, (uint32_t)groups, 1, 1);
}

/* What matvec folds in before its product (shaders/matvec.comp's PRE):
 * nothing (mode 0), the layernorm (1: lnw, lnb, eps), or the merge of the
 * decoding attention's chunks (2: the product's input is the chunks, pos
 * the rows' positions, S, NH, NS their shape). */
typedef struct {
    int mode;
    const void *lnw, *lnb, *pos;
    float eps;
    int S, NH, NS;
} mv_pre;

/* Few rows (decoding): one pass over the weights, with a fold before
 * (f) or the residual add after (res). */
static void matvec(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                   const void *bias, int N, int IC, int OC, int gelu, int res, const mv_pre *f) {
    vk_ctx *c = vk_ctx_of(be);
    static const mv_pre none = {0};
    if (!f) f = &none;
    int per = c->f16 ? 8 : 4;
    /* 16-byte loads of w (and of x, unless it comes from shared memory) */
    int vec = IC % per == 0 && aligned16(w) && (f->mode || aligned16(in));
    uint32_t L = c->subgroup_size >= 1 && c->subgroup_size <= 256 ? c->subgroup_size : 32;
    uint32_t nsub = 256 / L;
    /* Subgroups a column: enough that a lane has at most four of the
     * shader's loads of its row to make, at most 8 */
    size_t nk = vec ? (size_t)IC / per : (size_t)IC;
    uint32_t G = 1;
    while (G < 8 && G < nsub && (size_t)G * L * 4 < nk) G *= 2;
    uint32_t per_group = nsub / G;
    struct {
        uint64_t out, pre, x, w, bias, lnw, lnb;
        int M, N, K, gelu_on, per_group;
        float eps;
        int S, NH, NS;
    } pc = {U(out), U(pre), U(in), U(w), U(bias), U(f->mode == 2 ? f->pos : f->lnw), U(f->lnb),
            N, OC, IC, gelu, (int)per_group, f->eps, f->S, f->NH, f->NS};
    int spec[VK_MAX_SPEC] = {vec, f->mode, res, (int)G};
    vk_dispatch(be, SH_MATVEC, spec, &pc, sizeof pc, blocks((size_t)OC, per_group), 1, 1);
}

/* Decoding's folded products (backend.h): taken for N <= 8 rows, and with
 * the layernorm while the normalized rows fit the shader's 4096 floats. */
int vk_matmul_ln_forward(gpt_backend *be, void *out, void *pre, const void *x, const void *lnw,
                         const void *lnb, float eps, const void *w, const void *bias, int N, int IC,
                         int OC, int gelu) {
    if (be->err.code || N < 1 || N > 8 || IC < 1 || OC < 1 || (size_t)N * IC > 4096) return 0;
    if (!out || !x || !lnw || !lnb || !w || (!gelu && pre)) return 0;
    mv_pre f = {1, lnw, lnb, NULL, eps, 0, 0, 0};
    matvec(be, out, pre, x, w, bias, N, IC, OC, gelu, 0, &f);
    return 1;
}

int vk_matmul_residual_forward(gpt_backend *be, void *x, const void *in, const void *w,
                               const void *bias, int N, int IC, int OC) {
    if (be->err.code || N < 1 || N > 8 || IC < 1 || OC < 1 || !x || !in || !w) return 0;
    matvec(be, x, NULL, in, w, bias, N, IC, OC, 0, 1, NULL);
    return 1;
}

void vk_matmul_forward(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                       const void *bias, int N, int IC, int OC, int gelu) {
    CHECK(N > 0 && IC > 0 && OC > 0 && out && in && w && (gelu || !pre), "matmul_forward");
    if (N <= 8) {
        matvec(be, out, pre, in, w, bias, N, IC, OC, gelu, 0, NULL);
        return;
    }
    mm_pc pc = {U(in), U(w), U(out), U(pre), U(bias), 0, N, OC, IC, IC, IC, gelu, 0, 0, 0};
    gemm(be, 0, 0, 0, pc);
}

void vk_matmul_backward(gpt_backend *be, void *din, void *dw, void *dbias, const void *dout,
                        const void *in, const void *w, const void *gelu_pre, int N, int IC, int OC) {
    CHECK(N > 0 && IC > 0 && OC > 0 && dw && dout && in && w, "matmul_backward");
    if (din) { /* din (N, IC) = dout (N, OC) @ w (OC, IC) [* gelu'(pre)] */
        mm_pc pc = {U(dout), U(w), U(din), U(gelu_pre), 0, 0, N, IC, OC, OC, IC, 0, 0, 0, 0};
        gemm(be, 0, 1, 1, pc);
    }
    /* dw (OC, IC) += dout^T (OC, N) @ in (N, IC) / S */
    mm_pc pw = {U(dout), U(in), U(dw), 0, 0, scale_ptr(be), OC, IC, N, OC, IC, 0, 0, 0, 0};
    gemm(be, 1, 1, 2, pw);
    if (dbias) {
        int G, rows;
        chunks(N, &G, &rows);
        void *part = vk_scratch(be, (size_t)G * OC * 4);
        if (!part) return;
        int cb = (int)blocks((size_t)OC, 256);
        struct { uint64_t part, x; int N, C, G, rows, cblocks; } p = {U(part), U(dout), N, OC, G, rows, cb};
        vk_dispatch(be, SH_COLSUM, NULL, &p, sizeof p, (uint32_t)(cb * G), 1, 1);
        colsum_finish(be, part, dbias, NULL, OC, G);
    }
}

void vk_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n) {
    CHECK(out && in, "gelu_forward");
    if (!n) return;
    struct { uint64_t out, in, n; } pc = {U(out), U(in), n};
    vk_dispatch(be, SH_GELU, NULL, &pc, sizeof pc, capped(n, 256, 65535), 1, 1);
}

void vk_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n) {
    CHECK(out && a && b, "add");
    if (!n) return;
    struct { uint64_t out, a, b, n; } pc = {U(out), U(a), U(b), n};
    vk_dispatch(be, SH_ADD, NULL, &pc, sizeof pc, capped(n, 256, 65535), 1, 1);
}

/* ----------------------------------------------------------- attention */

/* Keys staged per round: K and V tiles of BC x HS floats within 16 KiB. */
static int attn_bc(int HS) {
    int bc = 32;
    while (bc > 4 && bc * HS > 2048) bc /= 2;
    return bc;
}

static int attn_shape_ok(gpt_backend *be, int B, int T, int C, int NH) {
    if (B < 1 || T < 1 || C < 1 || NH < 1 || C % NH || C / NH > VK_MAX_HS || B > 65535 || NH > 65535) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "vulkan attention: B=%d T=%d C=%d NH=%d not taken (head size must divide C "
                         "and be at most %d)",
                         B, T, C, NH, VK_MAX_HS);
        return 0;
    }
    return 1;
}

void vk_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                          int C, int NH) {
    if (be->err.code || !attn_shape_ok(be, B, T, C, NH)) return;
    CHECK(out && qkv, "attention_forward");
    int HS = C / NH;
    struct { uint64_t out, lse, qkv; int B, T, C, NH; float scale; } pc = {
        U(out), U(lse), U(qkv), B, T, C, NH, 1.0f / sqrtf((float)HS)};
    vk_ctx *c = vk_ctx_of(be);
    if (c->coop_attn && HS % 16 == 0 && HS <= 64) { /* 64 queries a workgroup, on the tensor cores */
        /* 16-byte staging loads where every row of q, k, v is aligned */
        int spec[VK_MAX_SPEC] = {HS, c->coop_n, aligned16(qkv) && C % 8 == 0, 0};
        vk_dispatch(be, SH_ATTN_FWD_COOP, spec, &pc, sizeof pc, blocks((size_t)T, 64), (uint32_t)NH,
                    (uint32_t)B);
        return;
    }
    int spec[VK_MAX_SPEC] = {HS, attn_bc(HS), 0, 0};
    vk_dispatch(be, SH_ATTN_FWD, spec, &pc, sizeof pc, blocks((size_t)T, 64), (uint32_t)NH, (uint32_t)B);
}

void vk_attention_backward(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                           const void *out, const float *lse, int B, int T, int C, int NH) {
    if (be->err.code || !attn_shape_ok(be, B, T, C, NH)) return;
    CHECK(dqkv && dout && qkv && out && lse, "attention_backward");
    vk_ctx *c = vk_ctx_of(be);
    int HS = C / NH;
    size_t dd_bytes = (size_t)B * NH * T * 4;
    void *dd = c->attn_d;
    if (c->attn_d_bytes < dd_bytes) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "vulkan attention_backward: B=%d T=%d NH=%d is larger than reserve() sized "
                         "(train shapes)", B, T, NH);
        return;
    }
    float scale = 1.0f / sqrtf((float)HS);
    uint32_t gx = blocks((size_t)T, 64);
    /* on cooperative matrices: 64 queries, then 64 keys (dk and dv in one
     * pass) a workgroup, 16-byte staging loads where rows are aligned */
    int coop = c->coop_attn_bwd && HS % 16 == 0 && HS <= 64;
    int spec[VK_MAX_SPEC] = {HS, attn_bc(HS), 0, 0};
    if (coop) spec[1] = c->coop_n, spec[2] = aligned16(qkv) && aligned16(dout) && C % 8 == 0;
    struct { uint64_t dqkv, dout, qkv, out, lse, dd; int B, T, C, NH; float scale; } q = {
        U(dqkv), U(dout), U(qkv), U(out), U(lse), U(dd), B, T, C, NH, scale};
    vk_dispatch(be, coop ? SH_ATTN_BWD_DQ_COOP : SH_ATTN_BWD_DQ, spec, &q, sizeof q, gx, (uint32_t)NH,
                (uint32_t)B);
    struct { uint64_t dqkv, dout, qkv, lse, dd; int B, T, C, NH; float scale; } k = {
        U(dqkv), U(dout), U(qkv), U(lse), U(dd), B, T, C, NH, scale};
    vk_dispatch(be, coop ? SH_ATTN_BWD_DKV_COOP : SH_ATTN_BWD_DK, spec, &k, sizeof k, gx,
                (uint32_t)NH, (uint32_t)B);
    if (coop) return;
    struct { uint64_t dqkv, dout, qkv, lse; int B, T, C, NH; float scale; } v = {
        U(dqkv), U(dout), U(qkv), U(lse), B, T, C, NH, scale};
    vk_dispatch(be, SH_ATTN_BWD_DV, spec, &v, sizeof v, gx, (uint32_t)NH, (uint32_t)B);
}

/* Decoding's attention over chunks of 64 cache positions, a workgroup per
 * (row, query, head, chunk), into c->kv_part, k and v appended where
 * Tq = 1 (the chunk that holds p does it); attn_kv_combine or matvec's
 * PRE = 2 merges the chunks. 0 where the chunks do not fit (or nothing to
 * split: a prefill from position 0). */
static int kv_split_fits(gpt_backend *be, const int *pos0, int B, int Tq, int S, int C, int NH) {
    vk_ctx *c = vk_ctx_of(be);
    int HS = C / NH, NS = (S + 63) / 64;
    size_t part_bytes = (size_t)B * Tq * NH * NS * (HS + 2) * 4;
    return (pos0 || Tq > S) && part_bytes <= c->kv_part_bytes && HS <= 256 &&
           (size_t)B * Tq * NH <= c->props.limits.maxComputeWorkGroupCount[0] &&
           (uint32_t)NS <= c->props.limits.maxComputeWorkGroupCount[1];
}

static void kv_split(gpt_backend *be, const void *qkv, void *kcache, void *vcache,
                     const int *pos0, int B, int Tq, int S, int C, int NH) {
    vk_ctx *c = vk_ctx_of(be);
    int HS = C / NH, NS = (S + 63) / 64;
    int per = c->f16 ? 8 : 4, vec = HS % per == 0 && C % per == 0;
    int spec[VK_MAX_SPEC] = {vec, Tq == 1, 0, 0};
    struct { uint64_t part, qkv, kc, vc, pos0; int B, Tq, S, C, NH, HS, NS; float scale; } sp = {
        U(c->kv_part), U(qkv), U(kcache), U(vcache), U(pos0), B, Tq, S, C, NH, HS, NS,
        1.0f / sqrtf((float)HS)};
    vk_dispatch(be, SH_ATTN_KV_SPLIT, spec, &sp, sizeof sp, (uint32_t)((size_t)B * Tq * NH),
                (uint32_t)NS, 1);
}

void vk_attention_kv_forward(gpt_backend *be, void *out, const void *qkv, void *kcache,
                             void *vcache, const int *pos0, int B, int Tq, int S, int C, int NH) {
    if (be->err.code || !attn_shape_ok(be, B, Tq, C, NH)) return;
    CHECK(out && qkv && kcache && vcache && S > 0, "attention_kv_forward");
    vk_ctx *c = vk_ctx_of(be);
    int HS = C / NH, NS = (S + 63) / 64;
    int split = kv_split_fits(be, pos0, B, Tq, S, C, NH);
    if (!(split && Tq == 1)) { /* else the split kernel appends k and v itself */
        struct { uint64_t qkv, kc, vc, pos0; int B, Tq, S, C; } st = {U(qkv), U(kcache), U(vcache), U(pos0), B, Tq, S, C};
        vk_dispatch(be, SH_ATTN_KV_STORE, NULL, &st, sizeof st, blocks((size_t)B * Tq * C, 256), 1, 1);
    }
    if (!pos0 && Tq <= S) {
        /* a prefill from position 0: plain causal attention over qkv */
        vk_attention_forward(be, out, NULL, qkv, B, Tq, C, NH);
        return;
    }
    if (split) {
        kv_split(be, qkv, kcache, vcache, pos0, B, Tq, S, C, NH);
        struct { uint64_t out, part, pos0; int B, Tq, S, C, NH, HS, NS; } cp = {
            U(out), U(c->kv_part), U(pos0), B, Tq, S, C, NH, HS, NS};
        vk_dispatch(be, SH_ATTN_KV_COMBINE, NULL, &cp, sizeof cp, (uint32_t)((size_t)B * Tq * NH), 1, 1);
        return;
    }
    struct { uint64_t out, qkv, kc, vc, pos0; int B, Tq, S, C, NH, HS; float scale; } pc = {
        U(out), U(qkv), U(kcache), U(vcache), U(pos0), B, Tq, S, C, NH, HS, 1.0f / sqrtf((float)HS)};
    vk_dispatch(be, SH_ATTN_KV, NULL, &pc, sizeof pc, (uint32_t)((size_t)B * Tq * NH), 1, 1);
}

/* The split, then the projection's matvec merging the chunks into its
 * input (PRE = 2) and adding into x: two dispatches where the separate ops
 * take three. Taken while the matvec's shared memory holds the B rows. */
int vk_attention_kv_residual_forward(gpt_backend *be, void *x, const void *qkv, void *kcache,
                                     void *vcache, const int *pos0, int B, int S, int C, int NH,
                                     const void *w, const void *bias) {
    if (be->err.code || B < 1 || B > 8 || C < 1 || NH < 1 || C % NH || (size_t)B * C > 4096 ||
        S < 1 || !x || !qkv || !kcache || !vcache || !pos0 || !w ||
        !kv_split_fits(be, pos0, B, 1, S, C, NH))
        return 0;
    kv_split(be, qkv, kcache, vcache, pos0, B, 1, S, C, NH);
    mv_pre f = {2, NULL, NULL, pos0, 0, S, NH, (S + 63) / 64};
    matvec(be, x, NULL, vk_ctx_of(be)->kv_part, w, bias, B, C, C, 0, 1, &f);
    return 1;
}

/* ------------------------------------------------------ loss, sums, adamw */

void vk_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt, int N, int V,
                     int Vp, float dloss, int grad) {
    CHECK(N > 0 && V > 0 && Vp >= V && losses && logits && tgt, "crossentropy");
    struct { uint64_t losses, logits, tgt, scale; int N, V, Vp, grad; float dloss; } pc = {
        U(losses), U(logits), U(tgt), scale_ptr(be), N, V, Vp, grad, dloss};
    vk_dispatch(be, SH_CROSSENTROPY, NULL, &pc, sizeof pc, (uint32_t)N, 1, 1);
}

void vk_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate) {
    CHECK(out && (in || !n), "sum_f32");
    struct { uint64_t out, in, n; int accumulate; } pc = {U(out), U(in), n, accumulate};
    vk_dispatch(be, SH_SUM, NULL, &pc, sizeof pc, 1, 1, 1);
}

/* out[0] = sum of grad^2: per-workgroup compensated partials, then the
 * partials added in order by one workgroup (sum.comp). */
void vk_sumsq(gpt_backend *be, float *out, const void *grad, size_t n) {
    CHECK(out && (grad || !n), "sumsq");
    uint32_t parts = capped(n, 256, 1024);
    void *part = vk_scratch(be, (size_t)parts * 4);
    if (!part) return;
    struct { uint64_t part, grad, n; } a = {U(part), U(grad), n};
    vk_dispatch(be, SH_ADAMW_NORM, NULL, &a, sizeof a, parts, 1, 1);
    vk_sum_f32(be, out, part, n ? parts : 0, 0);
}

void vk_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
              size_t n, size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats) {
    CHECK(params && grad && m && v && hyper && stats && n > 0, "adamw");
    vk_ctx *c = vk_ctx_of(be);
    struct {
        uint64_t params, master, grad, m, v, hyper, stats, state, n, n_decay;
        int dynamic_scale;
    } u = {U(params), U(master), U(grad), U(m), U(v), U(hyper), U(stats),
           U(c->state) + VK_STATE_SCALE, n, n_decay, c->f16};
    vk_dispatch(be, SH_ADAMW_UPDATE, NULL, &u, sizeof u, capped(n, 256, 4096), 1, 1);
}

/* ---------------------------------------------------------- decoding, misc */

void vk_argmax(gpt_backend *be, int *out, const void *logits, int N, int V, int Vp, int *pos,
               int *hist, int S) {
    CHECK(N > 0 && V > 0 && Vp >= V && out && logits, "argmax");
    struct { uint64_t out, logits, pos, hist; int N, V, Vp, S; } pc = {U(out), U(logits), U(pos), U(hist), N, V, Vp, S};
    int spec[VK_MAX_SPEC] = {aligned16(logits) && Vp % (vk_ctx_of(be)->f16 ? 8 : 4) == 0};
    vk_dispatch(be, SH_ARGMAX, spec, &pc, sizeof pc, (uint32_t)N, 1, 1);
}

void vk_count_nonfinite(gpt_backend *be, const void *p, size_t n, int cls) {
    vk_ctx *c = vk_ctx_of(be);
    int f32 = be->cls_size[cls] == 4;
    uint32_t parts = capped(n, 256, 1024);
    void *part = vk_scratch(be, (size_t)parts * 4);
    if (!part) return;
    struct { uint64_t x, n, part, counter; int parts; } pc = {U(p), n, U(part), U(c->state) + VK_STATE_COUNT, (int)parts};
    int spec[VK_MAX_SPEC] = {f32, 0, 0, 0};
    vk_dispatch(be, SH_NONFINITE, spec, &pc, sizeof pc, parts, 1, 1);
    spec[1] = 1;
    vk_dispatch(be, SH_NONFINITE, spec, &pc, sizeof pc, 1, 1, 1);
}

void vk_fill_zero(gpt_backend *be, void *p, size_t bytes) {
    vk_ctx *c = vk_ctx_of(be);
    size_t unit = c->f16 ? 2 : 4;
    if (bytes % unit || U(p) % unit) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan memset0: %zu bytes at %p are not whole elements", bytes, p);
        return;
    }
    struct { uint64_t p, n; } pc = {U(p), bytes / unit};
    vk_dispatch(be, SH_FILL, NULL, &pc, sizeof pc, capped(bytes / unit, 256, 4096), 1, 1);
}
