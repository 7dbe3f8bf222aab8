/*
 * test_cuda_slots.c - continuous batching through the slot API on CUDA, in
 * fp32 and in bf16 mixed precision (the checks are in ../slots_check.h):
 * with the decoding step recorded as a graph of fixed shape, requests that
 * join and leave decode exactly as alone in the same slot capacity. How far
 * they agree with gpt_generate's batch-1 tokens is printed, not asserted:
 * the products of a batch of 1 and of 12 or 24 rows may round differently.
 */
#include "../slots_check.h"

int main(void) {
    if (!gpt_backend_available("cuda")) {
        printf("no CUDA device: nothing to test\n");
        return test_summary();
    }
    slot_checks("cuda", GPT_PREC_FP32, 0);
    slot_checks("cuda", GPT_PREC_BF16, 0);
    return test_summary();
}
