/*
 * cli.h - the gpt command's shared pieces: exit codes, error printing, the
 * table-driven argument parser that every command uses (and that prints
 * each command's --help and the manual page from the same table), strict
 * number parsing, a progress line.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input.
 * Every command prints "gpt <cmd>: <one line saying what is wrong>" on
 * standard error before exiting non-zero.
 *
 * Options. A command describes its options as a table of cli_opt rows, one
 * row a flag, each naming the field of the command's argument struct that
 * receives the value (offsetof), its type, range or choices, default and
 * help text. cli_parse then accepts, for every command alike:
 *   --name value   --name=value   -x value   -xvalue   -x=value
 *   --flag         (flags take no value; --flag=1 is an error)
 *   --             (the end of the options; nothing after it is accepted)
 * and refuses with one line and exit code 2: unknown options, a missing
 * value, numbers that are not numbers or out of range, values not among
 * the choices, and any argument that is not an option. The last use of a
 * flag wins, except list flags, which collect every use.
 *
 * Adding a flag is one row, e.g. in cmd_generate.c:
 *   {CLI_INT, 'k', "top-k", O(top_k), "K", "keep the K most likely tokens", .lo = 0, .hi = 1e9},
 */
#ifndef GPT_CLI_H
#define GPT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "gpt.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* ------------------------------------------------------------- options */

typedef enum {
    CLI_END = 0, /* ends a table */
    CLI_SECTION, /* a heading in --help; .help is its title */
    CLI_GROUP,   /* the rows of .group, their offsets relative to .off */
    CLI_FLAG,    /* int, set to 1; takes no value */
    CLI_STR,     /* const char *, pointing into argv (or .def) */
    CLI_CHOICE,  /* const char *, one of .choices ("cpu|cuda|auto") */
    CLI_ENUM,    /* int: the position of the value in .choices, from 0 */
    CLI_INT,     /* int in [lo, hi] */
    CLI_I64,     /* long long in [lo, hi] */
    CLI_FLOAT,   /* float in [lo, hi] */
    CLI_DOUBLE,  /* double in [lo, hi] */
    CLI_LIST,    /* cli_list: every use appends its value */
    CLI_CALL,    /* .call(args, flag, value) stores the value itself */
} cli_kind;

enum {
    CLI_OPTIONAL = 1u << 0, /* the value may be left out ("--resume [CKPT]"): the
                               next argument is taken only if it is not an option */
    CLI_MANY = 1u << 1,     /* CLI_LIST: also takes the arguments after the first
                               value up to the next option ("--input a b c") */
    CLI_NONEMPTY = 1u << 2, /* strings: the empty string is refused */
    CLI_ABOVE_LO = 1u << 3, /* numbers: lo itself is refused, (lo, hi] */
    CLI_HIDDEN = 1u << 4,   /* not shown in --help or the manual */
    CLI_REQUIRED = 1u << 5, /* parsing fails when the option is not given */
};

/* A list flag's values, in the order given. Freed by cli_free. */
typedef struct {
    const char **v;
    int n;
} cli_list;

typedef struct cli_opt {
    cli_kind kind;
    char short_name;   /* 'n' for -n, or 0 */
    const char *name;  /* long name without the dashes ("max-new-tokens"), or NULL */
    size_t off;        /* offset of the field in the command's argument struct */
    const char *arg;   /* the value's name in --help ("N", "PATH") */
    const char *help;  /* what it does; wrapped to the terminal's width */
    const char *def;   /* default value: stored before parsing, shown in --help */
    /* Other spellings, '|'-separated: long names ("temp" for "temperature")
     * and, written with their dash, one-dash names of several letters as
     * llama.cpp has them ("-np"). NULL if none. */
    const char *alias;
    double lo, hi;     /* numbers: the accepted range */
    const char *choices;            /* CLI_CHOICE, CLI_ENUM: "a|b|c" */
    unsigned flags;                 /* CLI_OPTIONAL, ... */
    const struct cli_opt *group;    /* CLI_GROUP */
    /* CLI_CALL: stores value (field points at the row's field, args at the
     * whole argument struct); returns 0, or prints one line (cli_usage_error)
     * and returns EXIT_USAGE. cmd is the command's name, for the message. */
    int (*call)(void *field, void *args, const char *cmd, const char *flag, const char *value);
} cli_opt;

/* A command of the gpt tool: its options and texts, or its subcommands. */
typedef struct cli_cmd {
    const char *name;    /* as typed after "gpt": "generate", "tokenizer train" */
    const char *summary; /* one line, for the list of commands */
    const char *usage;   /* after "usage: gpt <name> ": "--model PATH [options]" */
    const char *about;   /* paragraphs (blank line between) after the usage line */
    const cli_opt *opts; /* the options table (NULL: none) */
    const char *footer;  /* examples and notes, printed as they are */
    int (*run)(int argc, char **argv);   /* argv[0] is the last word of the name */
    const struct cli_cmd *const *subs;   /* subcommands, NULL-terminated, or NULL */
} cli_cmd;

/* Which options were given on the command line (not just defaulted). */
typedef struct {
    uint64_t bits[4];
} cli_seen;

/* cli_parse's answers besides EXIT_OK and EXIT_USAGE. */
#define CLI_HELP (-1)

/* Stores every default of the table into args, then parses argv[1..argc)
 * (argv[0] is the command's name). Returns EXIT_OK, CLI_HELP when -h or
 * --help was given (nothing printed), or EXIT_USAGE after printing one
 * line. seen may be NULL. No other side effects: strings stored point into
 * argv or the table. Call cli_free afterwards in every case. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *args, cli_seen *seen);
/* cli_parse for a command's entry point: prints --help to stdout and
 * returns EXIT_OK, returns EXIT_USAGE on errors, and -1 to go on. */
int cli_parse_args(const cli_cmd *cmd, int argc, char **argv, void *args, cli_seen *seen);
/* 1 if the option with this long name was given. */
int cli_given(const cli_cmd *cmd, const cli_seen *seen, const char *name);
/* Frees what parsing allocated (the lists). */
void cli_free(const cli_cmd *cmd, void *args);

/* Calls fn(row, field offset, index, ctx) on every row of the command's
 * table, groups flattened, until fn returns nonzero (which it returns). */
int cli_walk(const cli_cmd *cmd, int (*fn)(const cli_opt *o, size_t off, int idx, void *ctx),
             void *ctx);

/* --help, from the table. */
void cli_print_help(const cli_cmd *cmd, FILE *f);
/* The commands under root (each with its --help), as a roff manual page. */
void cli_print_man(const cli_cmd *root, FILE *f);
/* Runs a command: its subcommand (argv[1]) when it has some, else run.
 * `gpt <cmd>` with subcommands and none given is a one-line usage error. */
int cli_dispatch(const cli_cmd *cmd, int argc, char **argv);

/* A CLI_CALL for --device: a const char * field, one of the device names
 * the library knows (gpt_device_name_valid: cpu, cuda, vulkan, vulkan:N,
 * auto). CLI_DEVICE_HELP says so. */
int cli_set_device(void *field, void *args, const char *cmd, const char *flag, const char *value);
#define CLI_DEVICE_HELP "cpu, cuda, vulkan, vulkan:N or auto (default auto: CUDA, else a Vulkan GPU, else the CPU)"
/* The choices of a --precision CLI_ENUM row: their positions are gpt_precision's values. */
#define CLI_PRECISIONS "auto|fp32|bf16|fp16"
#define CLI_PRECISION_HELP \
    "auto: bf16 on CUDA, fp16 on a Vulkan GPU, bf16 when training on a CPU with AVX512-BF16 " \
    "(fp32 master weights), else fp32"

/* ------------------------------------------------- errors and numbers */

/* Prints "gpt <cmd>: <message>" to stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints the library error and returns its exit code (1 or 2). */
int cli_lib_error(const char *cmd, const gpt_error *err);

/* Strict parsers: the whole string must be a number in [lo, hi]. On
 * failure they print "gpt <cmd>: <flag> expects ..." and return 0. */
int cli_parse_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi,
                  long long *out);
int cli_parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                    double *out);
/* Comma-separated non-negative ids ("1,2,3"); *ids malloc'd. */
int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **ids, size_t *n);

/* ------------------------------------------------------------ progress */

/* A progress line on stderr, redrawn in place when stderr is a terminal
 * and printed every `every` seconds otherwise. */
typedef struct {
    double start, last;
    int tty;
    double every;
} cli_progress;
void cli_progress_init(cli_progress *p, double every);
/* Prints "<label> done/total (pct) rate unit/s ETA ..." when due. */
void cli_progress_update(cli_progress *p, const char *label, double done, double total,
                         const char *unit, const char *extra, int force);
void cli_progress_end(cli_progress *p);

/* Human-readable bytes ("1.50 GiB"). buf needs 32 bytes. */
const char *cli_bytes(size_t n, char *buf);

#endif
