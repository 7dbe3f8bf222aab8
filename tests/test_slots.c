/*
 * test_slots.c - continuous batching through the slot API on the CPU
 * (the checks are in slots_check.h). Up to 8 rows the CPU's products
 * compute a row the same way at any batch size, so there a request's
 * tokens are also exactly gpt_generate's for its prompt alone.
 */
#include "slots_check.h"

int main(void) {
    slot_checks("cpu", GPT_PREC_FP32, 8);
    return test_summary();
}
