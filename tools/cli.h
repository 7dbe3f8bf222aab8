/*
 * cli.h - shared pieces of the gpt command: exit codes, strict number
 * parsing for flags, error printing, a progress line.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input.
 * Every command prints "gpt <cmd>: <one line saying what is wrong>" on
 * standard error before exiting non-zero.
 */
#ifndef GPT_CLI_H
#define GPT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include "gpt.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

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

/* Returns the value of a flag that takes one (argv[*i + 1]) and advances
 * *i, or prints "<flag> needs a value" and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* 1 if a is one of the spellings "-h", "--help". */
int cli_is_help(const char *a);

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
