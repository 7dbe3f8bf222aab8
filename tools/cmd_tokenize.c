/*
 * cmd_tokenize.c - gpt tokenize (text to ids or token shards, and back)
 * and gpt tokenizer (train a BPE vocabulary, describe one).
 *
 * The JSON forms are the stable machine interface that tests and scripts
 * use: `gpt tokenize --format json` prints exactly one JSON array of ids
 * and a newline; `gpt tokenize --decode` reads such an array.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "gpt_tokenizer.h"
#include "../src/tools_internal.h"

/* Inputs of this size or more get a progress line. */
#define PROGRESS_BYTES ((size_t)8 << 20)

/* ------------------------------------------------------------- helpers */

/* Reads all of standard input; NULL when out of memory or on a read error. */
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int write_out(const char *cmd, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, stdout) != n) {
        fprintf(stderr, "gpt %s: cannot write to standard output\n", cmd);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

static int finish_stdout(const char *cmd) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "gpt %s: cannot write to standard output\n", cmd);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

typedef struct {
    cli_progress bar;
    size_t before, total; /* bytes of earlier files, of all files */
    int on;
} encode_progress;

static void on_encode_progress(void *user, size_t done, size_t total) {
    encode_progress *p = user;
    (void)total;
    if (!p->on) return;
    double mb = 1e-6 * (double)(p->before + done), all = 1e-6 * (double)p->total;
    cli_progress_update(&p->bar, "tokenize", mb, all, "MB", NULL, p->before + done == p->total);
}

/* Encodes the files (or standard input) into one id array, with the
 * end-of-text id between files when the tokenizer has one. */
static int encode_inputs(const char *cmd, gpt_tokenizer *tok, const char **files, int n_files,
                         int special, int quiet, int **ids_out, size_t *n_out) {
    gpt_error err = {0};
    int *all = NULL, rc = EXIT_OK;
    size_t n_all = 0, cap = 0;
    encode_progress prog = {.on = 0};
    int n_src = n_files ? n_files : 1;
    for (int f = 0; f < n_files; f++) { /* sizes first, for the progress line */
        FILE *fp = fopen(files[f], "rb");
        if (fp && fseek(fp, 0, SEEK_END) == 0) {
            long sz = ftell(fp);
            if (sz > 0) prog.total += (size_t)sz;
        }
        if (fp) fclose(fp);
    }
    if (!quiet && prog.total >= PROGRESS_BYTES) {
        prog.on = 1;
        cli_progress_init(&prog.bar, 5.0);
    }
    for (int f = 0; f < n_src && rc == EXIT_OK; f++) {
        char *text;
        size_t len;
        if (n_files) {
            if (gpt_read_file(files[f], 0, &text, &len, &err)) {
                rc = cli_lib_error(cmd, &err);
                break;
            }
        } else if (!(text = read_stdin(&len))) {
            fprintf(stderr, "gpt %s: cannot read standard input\n", cmd);
            rc = EXIT_RUNTIME;
            break;
        }
        int *ids;
        size_t n;
        int st = gpt_tokenizer_encode_progress(tok, text, len, special, &ids, &n,
                                               on_encode_progress, &prog, &err);
        free(text);
        prog.before += len;
        if (st) {
            rc = cli_lib_error(cmd, &err);
            break;
        }
        int eot = gpt_tokenizer_eot(tok);
        size_t sep = (f > 0 && eot >= 0) ? 1 : 0;
        if (cap - n_all < n + sep) {
            size_t ncap = cap ? cap : 1024;
            while (ncap - n_all < n + sep) ncap *= 2;
            int *na = realloc(all, ncap * sizeof *na);
            if (!na) {
                free(ids);
                fprintf(stderr, "gpt %s: out of memory\n", cmd);
                rc = EXIT_RUNTIME;
                break;
            }
            all = na;
            cap = ncap;
        }
        if (sep) all[n_all++] = eot;
        if (n) memcpy(all + n_all, ids, n * sizeof *ids);
        n_all += n;
        free(ids);
    }
    if (prog.on) cli_progress_end(&prog.bar);
    if (rc) {
        free(all);
        return rc;
    }
    *ids_out = all;
    *n_out = n_all;
    return EXIT_OK;
}

static int print_ids(const char *cmd, const int *ids, size_t n, int csv) {
    if (!csv) putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    if (!csv) putchar(']');
    putchar('\n');
    return finish_stdout(cmd);
}

static int write_shards(const char *cmd, gpt_tokenizer *tok, const char *prefix,
                        const int *ids, size_t n, double val_fraction) {
    gpt_error err = {0};
    size_t n_val = (size_t)((double)n * val_fraction), n_train = n - n_val;
    size_t plen = strlen(prefix) + 16;
    char *train_path = malloc(plen), *val_path = malloc(plen);
    int rc = EXIT_OK;
    if (!train_path || !val_path) {
        fprintf(stderr, "gpt %s: out of memory\n", cmd);
        rc = EXIT_RUNTIME;
    } else {
        snprintf(train_path, plen, "%s_train.bin", prefix);
        snprintf(val_path, plen, "%s_val.bin", prefix);
        int V = gpt_tokenizer_vocab_size(tok);
        /* One commit: a failure leaves the old pair, not a new training
         * split beside an old validation split. */
        const char *paths[2] = {train_path, val_path};
        const int *parts[2] = {ids, ids + n_train};
        size_t counts[2] = {n_train, n_val};
        if (gpt_shard_write_all(paths, parts, counts, 2, V, &err)) rc = cli_lib_error(cmd, &err);
        else
            printf("wrote %s (%zu tokens) and %s (%zu tokens): tokenizer %s, %d tokens, "
                   "%d-byte ids\n",
                   train_path, n_train, val_path, n_val, gpt_tokenizer_name(tok), V,
                   V <= 65536 ? 2 : 4);
    }
    free(train_path);
    free(val_path);
    return rc ? rc : finish_stdout(cmd);
}

/* A file that starts like a token shard. */
static int looks_like_shard(const char *path) {
    char magic[8];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int yes = fread(magic, 1, 8, f) == 8 && !memcmp(magic, "GPTSHARD", 8);
    fclose(f);
    return yes;
}

static int decode_shard(const char *cmd, gpt_tokenizer *tok, const char *path) {
    gpt_error err = {0};
    gpt_shard *sh;
    if (gpt_shard_open(&sh, path, &err)) return cli_lib_error(cmd, &err);
    int V = gpt_tokenizer_vocab_size(tok), rc = EXIT_OK;
    if (gpt_shard_vocab_size(sh) != V) {
        fprintf(stderr,
                "gpt %s: shard '%s' was written with a %d-token vocabulary, but tokenizer %s has "
                "%d tokens (pass the shard's --tokenizer)\n",
                cmd, path, gpt_shard_vocab_size(sh), gpt_tokenizer_name(tok), V);
        gpt_shard_close(sh);
        return EXIT_USAGE;
    }
    enum { CHUNK = 1 << 20 };
    int *ids = malloc(CHUNK * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "gpt %s: out of memory\n", cmd);
        rc = EXIT_RUNTIME;
    }
    size_t count = gpt_shard_count(sh);
    for (size_t at = 0; rc == EXIT_OK && at < count; at += CHUNK) {
        size_t m = count - at < CHUNK ? count - at : CHUNK;
        char *text;
        size_t len;
        if (gpt_shard_read(sh, at, m, ids, &err) ||
            gpt_tokenizer_decode(tok, ids, m, &text, &len, &err)) {
            rc = cli_lib_error(cmd, &err);
            break;
        }
        rc = write_out(cmd, text, len);
        free(text);
    }
    free(ids);
    gpt_shard_close(sh);
    return rc ? rc : finish_stdout(cmd);
}

static int decode_json(const char *cmd, gpt_tokenizer *tok, const char *path) {
    gpt_error err = {0};
    char *data;
    size_t len;
    if (path) {
        if (gpt_read_file(path, 0, &data, &len, &err)) return cli_lib_error(cmd, &err);
    } else if (!(data = read_stdin(&len))) {
        fprintf(stderr, "gpt %s: cannot read standard input\n", cmd);
        return EXIT_RUNTIME;
    }
    json_value *v;
    int st = json_parse(data, len, &v, &err);
    free(data);
    if (st) {
        fprintf(stderr, "gpt %s: --decode expects a JSON array of token ids: %s\n", cmd,
                err.msg);
        return gpt_status_exit_code(st);
    }
    int rc = EXIT_OK;
    int *ids = NULL;
    if (v->type != JSON_ARRAY) {
        rc = cli_usage_error(cmd, "--decode expects a JSON array of token ids like [15496,995]");
    } else if (!(ids = malloc((v->len + 1) * sizeof *ids))) {
        fprintf(stderr, "gpt %s: out of memory\n", cmd);
        rc = EXIT_RUNTIME;
    }
    for (size_t i = 0; rc == EXIT_OK && i < v->len; i++) {
        long long id;
        if (!json_get_int(&v->items[i], 0, INT_MAX, &id))
            rc = cli_usage_error(cmd, "--decode: item %zu of the array is not a token id", i);
        else
            ids[i] = (int)id;
    }
    if (rc == EXIT_OK) {
        char *text;
        size_t tl;
        if (gpt_tokenizer_decode(tok, ids, v->len, &text, &tl, &err)) {
            rc = cli_lib_error(cmd, &err);
        } else {
            rc = write_out(cmd, text, tl);
            free(text);
            if (rc == EXIT_OK) rc = finish_stdout(cmd);
        }
    }
    free(ids);
    json_free(v);
    return rc;
}

/* ------------------------------------------------------- gpt tokenize */

typedef struct {
    const char *tokenizer, *out, *format, *file;
    cli_list input;
    double val_fraction;
    int decode, special, quiet, vocab;
} tok_args;

#define O(f) offsetof(tok_args, f)
static const cli_opt tokenize_opts[] = {
    {CLI_STR, 0, "tokenizer", O(tokenizer), "T",
     "gpt2, bytes (256 byte tokens, no end-of-text), or a file written by gpt tokenizer train",
     .def = "gpt2"},
    {CLI_LIST, 0, "input", O(input), "FILE", "read these files instead of standard input",
     .flags = CLI_MANY},
    {CLI_STR, 'o', "out", O(out), "PREFIX", .help = "write PREFIX_train.bin and PREFIX_val.bin (token shards)"},
    {CLI_DOUBLE, 0, "val-fraction", O(val_fraction), "F",
     "share of the tokens, taken from the end, that goes to PREFIX_val.bin; 0 <= F < 1",
     .def = "0.1", .lo = 0, .hi = 0.999999},
    {CLI_CHOICE, 0, "format", O(format), "json|csv", "print the ids as one JSON array [1,2,3] or as 1,2,3",
     .def = "json", .choices = "json|csv"},
    {CLI_FLAG, 0, "decode", O(decode), NULL,
     .help = "ids to text: a JSON array of ids on standard input or in --input FILE, or a token shard "
     "given with --input"},
    {CLI_FLAG, 0, "special", O(special), NULL,
     .help = "the text <|endoftext|> becomes the end-of-text token; without it, that text is encoded "
     "like any other"},
    {CLI_FLAG, 'q', "quiet", O(quiet), NULL, .help = "no progress line"},
    {CLI_END},
};

static const cli_opt tokenizer_train_opts[] = {
    {CLI_LIST, 0, "input", O(input), "FILE",
     "training text; files are documents (nothing is learned across two files, nor from the "
     "text <|endoftext|>)", .flags = CLI_MANY | CLI_REQUIRED},
    {CLI_INT, 0, "vocab-size", O(vocab), "N", "tokens in the vocabulary, 257 to 16777216",
     .lo = 257, .hi = 1 << 24, .flags = CLI_REQUIRED},
    {CLI_STR, 'o', "out", O(out), "FILE", "where to write the tokenizer file (atomically)",
     .flags = CLI_REQUIRED | CLI_NONEMPTY},
    {CLI_FLAG, 'q', "quiet", O(quiet), NULL, .help = "no progress line"},
    {CLI_END},
};

static const cli_opt tokenizer_info_opts[] = {
    {CLI_STR, 0, "tokenizer", O(tokenizer), "T", "gpt2, bytes, or a tokenizer file", .def = "gpt2"},
    {CLI_STR, 0, "input", O(file), "FILE", .help = "a text file to measure compression on"},
    {CLI_END},
};
#undef O

const cli_cmd gpt_tokenize_cmd = {
    .name = "tokenize",
    .summary = "text to token ids or shard files, and back",
    .about = "Text to token ids and back, with OpenAI's GPT-2 tokenizer or your own.\n"
             "\n"
             "  gpt tokenize [--format json|csv] < text     print the ids of the text\n"
             "  gpt tokenize --decode < ids.json             print the text of a JSON id array\n"
             "  gpt tokenize --input FILE... --out PREFIX    write token shards for training\n"
             "  gpt tokenize --decode --input SHARD          print the text of a token shard\n",
    .opts = tokenize_opts,
    .footer = "Several input files are several documents: their ids are concatenated with the\n"
              "end-of-text token between them (if the tokenizer has one). Input is bytes: text\n"
              "that is not valid UTF-8 is encoded byte by byte and decodes back unchanged.\n"
              "\n"
              "examples:\n"
              "  echo 'Hello world' | gpt tokenize               [15496,995,198]\n"
              "  echo '[15496,995]' | gpt tokenize --decode      Hello world\n"
              "  gpt tokenize --input data/tinyshakespeare.txt --out data/shakespeare\n"
              "  gpt tokenize --decode --input data/shakespeare_val.bin | head\n",
    .run = gpt_cmd_tokenize,
};

static int tokenizer_train(int argc, char **argv);
static int tokenizer_info(int argc, char **argv);

static const cli_cmd tokenizer_train_cmd = {
    .name = "tokenizer train",
    .summary = "learn a vocabulary from text files and save it",
    .usage = "--input FILE... --vocab-size N --out FILE [-q]",
    .about = "Learns a byte-level BPE vocabulary of N tokens: the 256 bytes, N - 257 merges\n"
             "and <|endoftext|> (id N - 1). The same text and N give a byte-identical file.\n"
             "If the text runs out of pairs to merge first, the vocabulary is smaller (it\n"
             "says so).\n",
    .opts = tokenizer_train_opts,
    .footer = "example:\n"
              "  gpt tokenizer train --input data/tinyshakespeare.txt --vocab-size 4096 \\\n"
              "      --out shk.tok\n",
    .run = tokenizer_train,
};

static const cli_cmd tokenizer_info_cmd = {
    .name = "tokenizer info",
    .summary = "describe a tokenizer, and how well it compresses a file",
    .usage = "[--tokenizer T] [--input FILE]",
    .about = "Prints a tokenizer's vocabulary size and end-of-text id; with --input, also the\n"
             "tokens of the file and the bytes per token.\n",
    .opts = tokenizer_info_opts,
    .run = tokenizer_info,
};

static const cli_cmd *const tokenizer_subs[] = {&tokenizer_train_cmd, &tokenizer_info_cmd, NULL};

const cli_cmd gpt_tokenizer_cmd = {
    .name = "tokenizer",
    .summary = "train a byte-level BPE vocabulary",
    .about = "Your own byte-level BPE vocabulary, trained with the GPT-2 pre-tokenizer: useful\n"
             "for small models (fewer embedding rows) and for text that is not English.\n",
    .subs = tokenizer_subs,
    .footer = "examples:\n"
              "  gpt tokenizer train --input data/tinyshakespeare.txt --vocab-size 4096 \\\n"
              "      --out shk.tok\n"
              "  gpt tokenize --tokenizer shk.tok --input data/tinyshakespeare.txt --out data/shk\n",
};

int gpt_cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    tok_args a = {0};
    cli_seen seen;
    int rc = cli_parse(&gpt_tokenize_cmd, argc, argv, &a, &seen);
    if (rc == CLI_HELP) cli_print_help(&gpt_tokenize_cmd, stdout);
    if (rc) {
        cli_free(&gpt_tokenize_cmd, &a);
        return rc == CLI_HELP ? EXIT_OK : rc;
    }
    const char *tok_name = a.tokenizer, *out = a.out, *format = a.format;
    const char **files = a.input.v;
    int n_files = a.input.n, decode = a.decode, special = a.special, quiet = a.quiet;
    double val_fraction = a.val_fraction;
    int val_given = cli_given(&gpt_tokenize_cmd, &seen, "val-fraction");
    if (decode && (out || val_given || special)) {
        cli_usage_error(cmd, "--decode prints text; it takes no --out, --val-fraction or "
                             "--special");
        goto usage;
    }
    if (decode && n_files > 1) {
        cli_usage_error(cmd, "--decode reads one --input (a shard or a JSON array of ids)");
        goto usage;
    }
    if (val_given && !out) {
        cli_usage_error(cmd, "--val-fraction only applies with --out PREFIX");
        goto usage;
    }

    gpt_error err = {0};
    gpt_tokenizer *tok;
    if (gpt_tokenizer_open(&tok, tok_name, &err)) {
        cli_free(&gpt_tokenize_cmd, &a);
        return cli_lib_error(cmd, &err);
    }
    if (decode) {
        if (n_files == 1 && looks_like_shard(files[0])) rc = decode_shard(cmd, tok, files[0]);
        else rc = decode_json(cmd, tok, n_files ? files[0] : NULL);
    } else {
        int *ids = NULL;
        size_t n = 0;
        rc = encode_inputs(cmd, tok, files, n_files, special, quiet, &ids, &n);
        if (rc == EXIT_OK) {
            if (out) rc = write_shards(cmd, tok, out, ids, n, val_fraction);
            else rc = print_ids(cmd, ids, n, !strcmp(format, "csv"));
        }
        free(ids);
    }
    gpt_tokenizer_free(tok);
    cli_free(&gpt_tokenize_cmd, &a);
    return rc;
usage:
    cli_free(&gpt_tokenize_cmd, &a);
    return EXIT_USAGE;
}

/* ------------------------------------------------------ gpt tokenizer */

typedef struct {
    cli_progress bar;
    int quiet;
} train_progress;

static void on_train_progress(void *user, int done, int total) {
    train_progress *p = user;
    if (!p->quiet)
        cli_progress_update(&p->bar, "train", done, total, "merges", NULL, done == total);
}

static int tokenizer_train(int argc, char **argv) {
    const char *cmd = "tokenizer train";
    tok_args a = {0};
    int prc = cli_parse_args(&tokenizer_train_cmd, argc, argv, &a, NULL);
    if (prc >= 0) {
        cli_free(&tokenizer_train_cmd, &a);
        return prc;
    }
    const char *out = a.out, **files = a.input.v;
    int n_files = a.input.n, quiet = a.quiet;
    long long vocab = a.vocab;

    /* Training can take minutes: an output folder that is not there is
     * refused before it starts, not after. */
    {
        char *dir = strdup(out), *slash = dir ? strrchr(dir, '/') : NULL;
        struct stat st;
        int missing = slash && slash != dir && (*slash = 0, stat(dir, &st) != 0 || !S_ISDIR(st.st_mode));
        if (missing) cli_usage_error(cmd, "cannot create '%s': the folder '%s' does not exist", out, dir);
        free(dir);
        if (missing) {
            cli_free(&tokenizer_train_cmd, &a);
            return EXIT_USAGE;
        }
    }
    /* Files are documents: joined with <|endoftext|>, which training cuts
     * out, so no pair is learned across two files. */
    gpt_error err = {0};
    char *text = NULL;
    size_t len = 0;
    const char *sep = "<|endoftext|>";
    for (int f = 0; f < n_files; f++) {
        char *part;
        size_t pl;
        if (gpt_read_file(files[f], 0, &part, &pl, &err)) {
            free(text);
            cli_free(&tokenizer_train_cmd, &a);
            return cli_lib_error(cmd, &err);
        }
        size_t sl = f ? strlen(sep) : 0;
        char *nt = realloc(text, len + sl + pl + 1);
        if (!nt) {
            free(part);
            free(text);
            cli_free(&tokenizer_train_cmd, &a);
            fprintf(stderr, "gpt %s: out of memory\n", cmd);
            return EXIT_RUNTIME;
        }
        text = nt;
        memcpy(text + len, sep, sl);
        memcpy(text + len + sl, part, pl);
        len += sl + pl;
        free(part);
    }
    cli_free(&tokenizer_train_cmd, &a);
    train_progress prog = {.quiet = quiet};
    cli_progress_init(&prog.bar, 5.0);
    double t0 = gpt_now();
    gpt_tokenizer *tok;
    int st = gpt_tokenizer_train(&tok, text, len, (int)vocab, on_train_progress, &prog, &err);
    if (!quiet) cli_progress_end(&prog.bar);
    if (st) {
        free(text);
        return cli_lib_error(cmd, &err);
    }
    double secs = gpt_now() - t0;
    int V = gpt_tokenizer_vocab_size(tok);
    if (V < vocab)
        fprintf(stderr,
                "gpt %s: note: the text ran out of pairs to merge; the vocabulary has %d tokens, "
                "not %lld\n",
                cmd, V, vocab);
    int *ids;
    size_t n_ids;
    int rc = EXIT_OK;
    if (gpt_tokenizer_save(tok, out, &err) ||
        gpt_tokenizer_encode(tok, text, len, 1, &ids, &n_ids, &err)) {
        rc = cli_lib_error(cmd, &err);
    } else {
        printf("trained %d tokens (%d merges) on %zu bytes in %.2f s; wrote %s\n", V, V - 257,
               len, secs, out);
        printf("the training text is %zu tokens, %.2f bytes per token\n", n_ids,
               n_ids ? (double)len / (double)n_ids : 0.0);
        free(ids);
        rc = finish_stdout(cmd);
    }
    gpt_tokenizer_free(tok);
    free(text);
    return rc;
}

static int tokenizer_info(int argc, char **argv) {
    const char *cmd = "tokenizer info";
    tok_args a = {0};
    int prc = cli_parse_args(&tokenizer_info_cmd, argc, argv, &a, NULL);
    const char *tok_name = a.tokenizer, *input = a.file;
    cli_free(&tokenizer_info_cmd, &a);
    if (prc >= 0) return prc;
    gpt_error err = {0};
    gpt_tokenizer *tok;
    if (gpt_tokenizer_open(&tok, tok_name, &err)) return cli_lib_error(cmd, &err);
    printf("tokenizer %s: %d tokens, end-of-text id %d\n", gpt_tokenizer_name(tok),
           gpt_tokenizer_vocab_size(tok), gpt_tokenizer_eot(tok));
    int rc = EXIT_OK;
    if (input) {
        char *text;
        size_t len, n;
        int *ids;
        if (gpt_read_file(input, 0, &text, &len, &err)) {
            rc = cli_lib_error(cmd, &err);
        } else {
            if (gpt_tokenizer_encode(tok, text, len, 0, &ids, &n, &err)) {
                rc = cli_lib_error(cmd, &err);
            } else {
                printf("%s: %zu bytes, %zu tokens, %.2f bytes per token\n", input, len, n,
                       n ? (double)len / (double)n : 0.0);
                free(ids);
            }
            free(text);
        }
    }
    gpt_tokenizer_free(tok);
    return rc ? rc : finish_stdout(cmd);
}
