/*
 * test_vulkan_model.c - the whole model on Vulkan against the CPU (the
 * checks and tolerances are tests/gpu/model_cases.h): a training step's
 * loss and every gradient, ten AdamW steps with at most one host wait
 * each (the second step on replays recorded command buffers), KV-cache
 * decoding against full recomputation, and greedy decoding on the device,
 * in fp32 and in fp16 (loss-scaled, fp32 master weights), on the issue's
 * odd shape (T=37, C=100, 5 heads of 20, V=1000) and on head size 64.
 * fp16 runs where the device stores 16-bit values (lavapipe does).
 */
#include "../gpu/model_cases.h"

int main(void) {
    /* new allocations full of NaN bytes (see test_vulkan_ops.c) */
    setenv("GPT_VULKAN_POISON", "1", 0);
    if (!gpt_backend_available("vulkan")) {
        const char *req = getenv("GPT_REQUIRE_VULKAN");
        test_begin("a usable Vulkan device exists");
        EXPECT(!(req && atoi(req)), "GPT_REQUIRE_VULKAN=1 but no usable Vulkan device (install mesa-vulkan-drivers)");
        if (!(req && atoi(req))) printf("no usable Vulkan device: nothing to test\n");
        else test_end();
        return test_summary();
    }
    GPU = "vulkan";
    static const shape shapes[] = {{"odd (C=100, 5 heads, V=1000)", 1000, 64, 2, 5, 100},
                                   {"head size 64 (C=128, 2 heads, V=1000)", 1000, 64, 2, 2, 128}};
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 2; p++) {
            int prec = p ? GPT_PREC_FP16 : GPT_PREC_FP32;
            check_training(&shapes[i], prec);
            check_kv(&shapes[i], prec);
            check_greedy(&shapes[i], prec);
        }
    return test_summary();
}
