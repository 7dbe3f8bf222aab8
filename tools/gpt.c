/*
 * gpt.c - the gpt command: train, generate, eval, tokenize, info, bench.
 * Only this folder decides to exit; the library returns errors.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gpt.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"train", gpt_cmd_train, "train a model on a text file or token shards"},
    {"generate", gpt_cmd_generate, "sample text from a model (KV cache, streaming)"},
    {"eval", gpt_cmd_eval, "loss of a model on tokens or a text file"},
    {"info", gpt_cmd_info, "describe a model, preset or checkpoint and the devices"},
    {"bench", gpt_cmd_bench, "time training steps and generation on this machine"},
    {"convert", gpt_cmd_convert, "write a checkpoint as Hugging Face model.safetensors"},
    {"quantize", gpt_cmd_quantize, "write an int8 checkpoint for faster CPU generation"},
    {"tokenize", gpt_cmd_tokenize, "text to token ids or shard files, and back"},
    {"tokenizer", gpt_cmd_tokenizer, "train a byte-level BPE vocabulary"},
    {"serve", gpt_cmd_serve, "serve a model over HTTP (OpenAI completions API)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: gpt <command> [options]   (gpt <command> --help for its options)\n\n"
            "A GPT-2 style transformer that trains and generates on CPUs and NVIDIA GPUs.\n\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\nexamples:\n"
            "  gpt train --preset tiny --data data/tinyshakespeare.txt --out runs/tiny\n"
            "  gpt generate --model runs/tiny/model.ckpt --prompt \"ROMEO:\" -n 200\n"
            "  gpt eval --model runs/tiny/model.ckpt --text data/tinyshakespeare.txt\n"
            "\nexit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("gpt %s\n", GPT_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gpt: unknown command '%s' (try gpt --help)\n", argv[1]);
    return EXIT_USAGE;
}
