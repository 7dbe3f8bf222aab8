/*
 * test_cuda_ops.c - every backend operation on CUDA against the CPU
 * backend (the cases and tolerances are in ops_cases.h), for three CUDA
 * configurations:
 *   fp32           GPT_PREC_FP32: the same arithmetic as the CPU, up to
 *                  summation order;
 *   bf16           mixed precision: bf16 PARAM/ACT, fp32 GRAD/F32, the
 *                  tensor-core attention and fused cuBLASLt epilogues;
 *   bf16-unfused   the same with GPT_CUDA_NO_EPILOGUE=1 and
 *                  GPT_CUDA_NO_FAST_ATTN=1: the fallback kernels.
 * and the CUDA backend's folded decoding products (t_fold).
 */
#include "ops_cases.h"

/* CUDA takes the folds in bf16 for N <= 16 and K a multiple of 32 (and
 * K <= 1024 with the layernorm). */
static int fold_takes(int ln, int N, int IC) {
    return bf16() && N <= 16 && IC % 32 == 0 && (!ln || IC <= 1024);
}

/* ln, N, IC, OC, gelu */
static void run_fold(void) {
    t_fold(1, 1, 768, 2304, 0);  /* gpt2 qkv at batch 1: 8 warps */
    t_fold(1, 16, 768, 3072, 1); /* gpt2 fc at batch 16, two batch tiles, GELU and pre */
    t_fold(1, 9, 96, 1000, 0);   /* 3 k blocks for 4 warps, partial row tile */
    t_fold(1, 3, 1024, 50, 1);   /* the widest taken: 32 k blocks */
    t_fold(1, 16, 320, 1003, 0); /* a head: odd vocabulary */
    t_fold(0, 1, 768, 768, 0);   /* gpt2 proj */
    t_fold(0, 16, 3072, 768, 0); /* gpt2 fc2 at batch 16: 16 warps */
    t_fold(0, 9, 96, 1000, 0);
    t_fold(0, 2, 8192, 20, 0);   /* two rounds of loads */
    /* declined: no write */
    t_fold(1, 2, 1056, 64, 0);   /* K > 1024 with the layernorm */
    t_fold(1, 17, 768, 64, 0);   /* N > 16 */
    t_fold(0, 17, 768, 64, 0);
    t_fold(0, 4, 100, 64, 0);    /* K not a multiple of 32 */
}


/* ----------------------------------------------------------------- main */

/* The decoding cases alone (GPT_TEST_DECODE_ONLY=1: the sanitizer runs). */
static void run_decode(void) {
    run_fold();
    t_layernorm(1, 768, 1, 1);
    t_layernorm(3, 100, 1, 0);
    t_matmul(1, 768, 2304, 1, 0, 0, 0);
    t_matmul(1, 3072, 768, 1, 0, 0, 0);
    t_matmul(16, 768, 3072, 1, 1, 1, 0);
    t_matmul(9, 64, 1000, 0, 0, 0, 0);
    t_matmul(3, 101, 203, 0, 0, 0, 0);
    t_argmax(5, 1000, 1024, 0);
    t_argmax(2, 50257, 50304, 0);
    t_argmax(4, 1001, 1001, 0);
    t_argmax(6, 50257, 50304, 1);
    t_argmax(5, 1001, 1001, 1);
    t_copy(1000);
    t_add(16 * 768);
    t_attention_kv(1, 1, 1024, 768, 12);
    t_attention_kv(5, 1, 300, 768, 12);
    t_attention_kv(3, 1, 40, 256, 2);
    t_attention_kv(2, 1, 100, 64, 2);
    t_attention_kv(3, 1, 40, 100, 5);
}

static void run_all(void) {
    if (getenv("GPT_TEST_DECODE_ONLY") && atoi(getenv("GPT_TEST_DECODE_ONLY"))) {
        run_decode();
        return;
    }
    t_nonfinite();
    t_graph();
    t_errors();
    t_encoder(3, 37, 100, 1024, 64, 0);
    t_encoder(3, 37, 100, 1024, 64, 1);
    t_encoder(2, 64, 768, 512, 128, 0);
    int ln_c[] = {100, 768, 1044, 2000};
    for (int i = 0; i < 4; i++) {
        t_layernorm(111, ln_c[i], 0, 0);
        t_layernorm(111, ln_c[i], 1, 0);
    }
    t_layernorm(37, 100, 1, 1);
    /* N, IC, OC, bias, gelu, pre, dgelu */
    t_matmul(111, 100, 300, 1, 0, 0, 0);
    t_matmul(111, 100, 400, 1, 1, 1, 0);
    t_matmul(111, 400, 100, 1, 0, 0, 1);
    t_matmul(37, 100, 1024, 0, 0, 0, 0);  /* the tied head: C=100, Vp=1024 */
    t_matmul(37, 100, 1000, 0, 1, 0, 0);  /* GELU without pre, OC odd to 8 */
    t_matmul(37, 101, 203, 1, 1, 1, 1);   /* nothing aligned */
    t_matmul(1, 768, 2304, 1, 0, 0, 0);   /* decoding: the small-N forward */
    t_matmul(5, 100, 400, 1, 1, 1, 0);
    t_matmul(16, 3072, 768, 1, 1, 0, 0);
    t_matmul(3, 101, 203, 0, 0, 0, 0);
    /* decoding shapes: the tensor-core small-N kernel (K % 32 == 0), one
     * or two batch tiles, partial row tiles, 4, 8 and 16 warps */
    t_matmul(1, 3072, 768, 1, 0, 0, 0);
    t_matmul(16, 768, 3072, 1, 1, 1, 0);
    t_matmul(9, 64, 1000, 0, 0, 0, 0);
    t_matmul(2, 96, 100, 1, 1, 1, 0);
    t_matmul(4, 768, 5000, 0, 0, 0, 0);
    t_matmul(8, 256, 33, 1, 0, 0, 0);
    t_matmul(7, 1536, 200, 1, 1, 1, 0); /* K of 48 blocks: 8 warps a block */
    t_matmul(16, 4096, 40, 1, 0, 0, 0); /* 128 blocks: 16 warps, two rounds */
    t_argmax(5, 1000, 1024, 0);
    t_argmax(2, 50257, 50304, 0);
    t_argmax(4, 1001, 1001, 0);
    t_argmax(6, 50257, 50304, 1);
    t_argmax(5, 1001, 1001, 1); /* Vp odd: the scalar kernel */
    t_copy(1000);
    run_fold();
    t_matmul(128, 768, 2304, 1, 0, 0, 0); /* gpt2 qkv */
    t_matmul(128, 768, 3072, 1, 1, 1, 0); /* gpt2 fc */
    t_matmul(128, 3072, 768, 1, 0, 0, 1); /* gpt2 fc2 */
    t_gelu(1001);
    t_add(1001);
    t_add(3000001); /* past the decoding-sized launch */
    /* B, T, C, NH: generic (head size 20, 116) and tensor-core (64, 128) */
    t_attention(2, 37, 100, 5);
    t_attention(1, 70, 1044, 9);
    t_attention(2, 37, 128, 2);
    t_attention(2, 200, 768, 12);
    t_attention(1, 130, 256, 2);
    t_attention(1, 1, 128, 2);
    t_attention(1, 20, 105, 5); /* odd head size */
    t_attention_kv(3, 1, 40, 100, 5);
    t_attention_kv(3, 5, 40, 100, 5);
    t_attention_kv(2, 1, 300, 768, 12);
    t_attention_kv(2, 7, 100, 1044, 9);
    t_attention_kv(2, 3, 30, 105, 5); /* odd head size: the generic KV kernel */
    t_attention_kv_at(3, 37, 40, 100, 5, 1); /* prefills: flash kernels over qkv */
    t_attention_kv_at(2, 64, 100, 768, 12, 1);
    t_attention_kv_at(1, 40, 40, 256, 2, 1);
    t_attention_kv_at(2, 12, 8, 100, 5, 1); /* Tq > S: the generic kernel, rows past S untouched */
    /* decoding: 16-byte kernel, keys split over a cluster when few blocks */
    t_attention_kv(1, 1, 1024, 768, 12);
    t_attention_kv(1, 1, 77, 768, 12);
    t_attention_kv(5, 1, 300, 768, 12);
    t_attention_kv(3, 1, 40, 256, 2);  /* head size 128 */
    t_attention_kv(2, 1, 100, 64, 2);  /* head size 32 */
    t_attention_kv(8, 1, 600, 512, 2); /* head size 256 */
    t_crossentropy(37, 1000, 1024, 1);
    t_crossentropy(37, 1000, 1024, 0);
    t_crossentropy(5, 1001, 1001, 1);
    t_crossentropy(3, 50257, 50304, 1); /* GPT-2's vocabulary: 13 vectors a thread */
    t_sum(1001, 0);
    t_sum(100000, 1);
    t_sumsq(10007);
    t_sumsq(3000001);
    t_adamw(10007, 5000, 1.f, 0);
    t_adamw(10007, 5000, 0.f, 0);
    t_adamw(4096, 4096, 1e-6f, 0); /* the clip binds */
    t_adamw(1001, 10, 1.f, 1);
}

int main(void) {
    gpt_error err;
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = GPT_PREC_FP32; /* the fp32 reference (AUTO trains in bf16 where the CPU can) */
    gpt_rng_seed(&rng, 1234);
    if (gpt_backend_create(&ref, &rt, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    /* Workspaces for every case below (the largest of each dimension). */
    gpt_shape s = {4, 256, 2048, 16, 8192, 1001, 1024, 1, 1100, 1, 200000, 8, 0};
    static dev_cfg cfgs[] = {{"cuda-fp32", "cuda", GPT_PREC_FP32, 0, NULL},
                             {"cuda-bf16", "cuda", GPT_PREC_BF16, 0, NULL},
                             {"cuda-bf16-unfused", "cuda", GPT_PREC_BF16, 1, NULL}};
    if (ref->ops->reserve(ref, &s)) {
        printf("cpu reserve: %s\n", ref->err.msg);
        return 1;
    }
    /* GPT_TEST_CONFIGS=name,name limits the run (the sanitizers use it) */
    const char *only = getenv("GPT_TEST_CONFIGS");
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        dev_cfg *c = &cfgs[i];
        if (only && *only) {
            const char *f = strstr(only, c->name);
            size_t l = strlen(c->name);
            if (!f || (f[l] && f[l] != ',')) continue;
        }
        setenv("GPT_CUDA_NO_EPILOGUE", c->unfused ? "1" : "0", 1);
        setenv("GPT_CUDA_NO_FAST_ATTN", c->unfused ? "1" : "0", 1);
        rt.device = "cuda";
        rt.precision = c->precision;
        test_begin("%s: create and reserve", c->name);
        int rc = gpt_backend_create(&c->be, &rt, &err);
        EXPECT(rc == 0, "create: %s", err.msg);
        if (!rc) {
            EXPECT(c->be->ops->reserve(c->be, &s) == 0, "reserve: %s", c->be->err.msg);
            printf("     device: %s\n", c->be->ops->device_desc(c->be));
        }
        test_end();
        if (rc) continue;
        K = c;
        run_all();
        gpt_backend_destroy(c->be);
    }
    gpt_backend_destroy(ref);
    return test_summary();
}
