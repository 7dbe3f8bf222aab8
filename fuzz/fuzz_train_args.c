/*
 * fuzz_train_args.c - libFuzzer target for gpt train's command line
 * (tools/train_args.c over the table-driven parser of tools/cli.c) and the
 * checks behind it: any argument list must parse or be refused with exit
 * code 2, never crash; parsing the same list twice gives the same result
 * (the parser keeps no state); --help prints from the table. What parses
 * goes through what gpt train does next, without files or a device: the
 * model configuration (preset and overrides), gpt_config_validate,
 * gpt_train_opts_validate and gpt_memory_estimate. What both validations
 * accept must get a memory plan, and the plan must not have wrapped around:
 * it is compared with a lower bound computed in floating point (the token
 * embedding, the logits and the residual streams alone).
 *
 * Input: the arguments, separated by NUL or newline bytes (at most 64).
 * argv[0] is "train", as gpt train receives it. A first byte 'V' makes the
 * tokenizer's vocabulary 256 (bytes) instead of 50257 (gpt2).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpt.h"
#include "train_args.h"

static void check(int ok, const char *what, const char *detail) {
    if (!ok) {
        fprintf(stderr, "fuzz_train_args: %s (%s)\n", what, detail ? detail : "");
        abort();
    }
}

/* What gpt train does with a configuration both validations accept: a
 * memory plan, or a refusal with a message; a plan never smaller than
 * what it must hold (the lower bound, computed in floating point, would
 * catch a size product that wrapped around). */
static void plan_checks(const gpt_config *cfg, const gpt_runtime *rt, int B, int T, int train,
                        int recompute) {
    gpt_memory_plan p;
    gpt_error err = {0};
    int rc = gpt_memory_estimate(cfg, rt, B, T, train, recompute, &p, &err);
    double N = (double)B * T, C = cfg->n_embd, Vp = cfg->padded_vocab, L = cfg->n_layer;
    /* Bytes of the token embedding, and in training of the logits and the
     * residual streams; halved because bf16 halves parameters and
     * activations. */
    double low = 2.0 * (Vp * C + (train ? N * Vp + (L + 1) * N * C : 0));
    char msg[200];
    snprintf(msg, sizeof msg, "B %d T %d train %d: plan %zu bytes, lower bound %.4g (%s)", B, T,
             train, rc ? 0 : p.total, low, rc ? err.msg : "");
    if (rc) {
        check(rc == GPT_ERR_INVALID && err.msg[0], "memory plan refused without a message", msg);
        return;
    }
    check(p.total == p.params + p.grads + p.optimizer + p.activations, "plan parts", msg);
    check((double)p.total >= low, "memory plan wrapped around", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    int V = size > 0 && buf[0] == 'V' ? 256 : 50257;
    char *argv[66];
    int argc = 0;
    argv[argc++] = "train";
    char *s = buf + (V == 256), *end = buf + size;
    while (s < end && argc < 65) {
        char *e = s;
        while (e < end && *e && *e != '\n') e++;
        *e = 0;
        argv[argc++] = s;
        s = e + 1;
    }
    argv[argc] = NULL;

    static train_args a, again;
    static FILE *devnull;
    if (!devnull) devnull = fopen("/dev/null", "w");
    int rc = train_args_parse(argc, argv, &a);
    check(rc == EXIT_OK || rc == EXIT_USAGE || rc == TRAIN_ARGS_HELP, "parse status", NULL);
    check(train_args_parse(argc, argv, &again) == rc && !memcmp(&a, &again, sizeof a),
          "a second parse of the same arguments differs", NULL);
    if (rc == TRAIN_ARGS_HELP && devnull) {
        const cli_cmd help = {.name = "train", .opts = train_opts};
        cli_print_help(&help, devnull);
    }
    if (rc != EXIT_OK) {
        free(buf);
        return 0;
    }
    gpt_error err = {0};
    gpt_config cfg;
    rc = train_args_config(&a, &cfg, &err);
    check(rc == 0 || (rc == GPT_ERR_INVALID && err.msg[0]), "preset refused without a message",
          NULL);
    if (rc == 0) {
        if (!a.cfg_set[5]) cfg.vocab_size = V;
        gpt_config_resolve(&cfg);
        int cfg_ok = gpt_config_validate(&cfg, &err) == 0;
        check(cfg_ok || err.msg[0], "configuration refused without a message", NULL);
        if (!a.opts_T) a.opts.seq_len = cfg.max_seq_len < 256 ? cfg.max_seq_len : 256;
        int opts_ok = gpt_train_opts_validate(&a.opts, cfg_ok ? &cfg : NULL, &err) == 0;
        check(opts_ok || err.msg[0], "options refused without a message", NULL);
        if (cfg_ok && opts_ok) {
            plan_checks(&cfg, &a.rt, a.opts.batch_size, a.opts.seq_len, 1, a.opts.recompute);
            plan_checks(&cfg, &a.rt, a.opts.batch_size, a.opts.seq_len, 0, 0);
        }
    }
    free(buf);
    return 0;
}
