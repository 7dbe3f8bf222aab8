/*
 * gpt.c - the gpt command: train, generate, eval, info, bench, convert,
 * tokenize, tokenizer. Only this folder decides to exit; the library
 * returns errors. Each command's options, --help and manual section come
 * from its table (cli.h); this file lists the commands.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"

static const cli_cmd *const commands[] = {
    &gpt_train_cmd, &gpt_generate_cmd, &gpt_eval_cmd,     &gpt_info_cmd,
    &gpt_bench_cmd, &gpt_convert_cmd,  &gpt_quantize_cmd, &gpt_tokenize_cmd, &gpt_tokenizer_cmd,
    &gpt_serve_cmd,
    NULL,
};

static const cli_cmd root = {
    .name = "",
    .summary = "train, evaluate and sample GPT-2 style transformers on CPUs and GPUs",
    .usage = "<command> [options]",
    .about = "A GPT-2 style transformer that trains and generates on CPUs and NVIDIA GPUs.\n",
    .subs = commands,
    .footer = "examples:\n"
              "  gpt train --preset tiny --data data/tinyshakespeare.txt --out runs/tiny\n"
              "  gpt generate --model runs/tiny/model.ckpt --prompt \"ROMEO:\" -n 200\n"
              "  gpt eval --model runs/tiny/model.ckpt --text data/tinyshakespeare.txt\n",
};

static void usage(FILE *f) {
    cli_print_help(&root, f);
    fprintf(f, "\nalso: gpt --version, gpt --man (the manual page, roff), gpt help COMMAND\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("gpt %s\n", GPT_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--man")) {
        cli_print_man(&root, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "help")) {
        /* gpt help [COMMAND [SUB]] = gpt [COMMAND [SUB]] --help */
        const cli_cmd *c = &root;
        for (int i = 2; i < argc && c->subs; i++) {
            const cli_cmd *next = NULL;
            for (const cli_cmd *const *s = c->subs; *s; s++) {
                const char *w = strrchr((*s)->name, ' ');
                if (!strcmp(w ? w + 1 : (*s)->name, argv[i])) next = *s;
            }
            if (!next) return cli_usage_error(c->name, "unknown command '%s' (try gpt --help)", argv[i]);
            c = next;
        }
        if (c == &root) usage(stdout);
        else cli_print_help(c, stdout);
        return EXIT_OK;
    }
    if (argv[1][0] == '-')
        return cli_usage_error(NULL, "unknown option '%s' (try gpt --help)", argv[1]);
    for (const cli_cmd *const *c = commands; *c; c++)
        if (!strcmp(argv[1], (*c)->name)) return cli_dispatch(*c, argc - 1, argv + 1);
    return cli_usage_error(NULL, "unknown command '%s' (try gpt --help)", argv[1]);
}
