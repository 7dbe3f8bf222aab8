/*
 * cli.c - argument parsing, error printing and progress output shared by
 * the gpt command's subcommands.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "gpt %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

int cli_lib_error(const char *cmd, const gpt_error *err) {
    fprintf(stderr, "gpt %s: %s\n", cmd, err->msg[0] ? err->msg : "failed");
    return gpt_status_exit_code(err->code ? err->code : GPT_ERR_RUNTIME);
}

int cli_parse_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi,
                  long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a whole number from %lld to %lld, got '%s'", flag, lo,
                        hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                    double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a number from %g to %g, got '%s'", flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **ids, size_t *n) {
    size_t cap = 16, cnt = 0;
    int *v = malloc(cap * sizeof *v);
    if (!v) return 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ') p++;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno == ERANGE || x < 0 || x > 0x7fffffff) {
            free(v);
            cli_usage_error(cmd, "%s expects comma-separated token ids like 1,2,3, got '%s'",
                            flag, s);
            return 0;
        }
        if (cnt == cap) {
            cap *= 2;
            int *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return 0;
            }
            v = nv;
        }
        v[cnt++] = (int)x;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            if (!*p) break;
        } else if (*p) {
            free(v);
            cli_usage_error(cmd, "%s expects comma-separated token ids like 1,2,3, got '%s'",
                            flag, s);
            return 0;
        }
    }
    if (cnt == 0) {
        free(v);
        cli_usage_error(cmd, "%s needs at least one token id", flag);
        return 0;
    }
    *ids = v;
    *n = cnt;
    return 1;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

void cli_progress_init(cli_progress *p, double every) {
    p->start = p->last = now_s();
    p->tty = isatty(2);
    p->every = every;
}

static void fmt_dur(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void cli_progress_update(cli_progress *p, const char *label, double done, double total,
                         const char *unit, const char *extra, int force) {
    double t = now_s();
    double interval = p->tty ? 0.2 : p->every;
    if (!force && t - p->last < interval) return;
    p->last = t;
    double el = t - p->start, rate = el > 0 ? done / el : 0;
    char eta[32], elapsed[32];
    fmt_dur(rate > 0 && total > done ? (total - done) / rate : 0, eta, sizeof eta);
    fmt_dur(el, elapsed, sizeof elapsed);
    fprintf(stderr, "%s%s %.0f/%.0f (%.0f%%) %.0f %s/s elapsed %s ETA %s%s%s%s", p->tty ? "\r" : "",
            label, done, total, total > 0 ? 100.0 * done / total : 100.0, rate, unit, elapsed,
            eta, extra ? " " : "", extra ? extra : "", p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fputc('\n', stderr);
}

const char *cli_bytes(size_t n, char *buf) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int k = 0;
    while (v >= 1024 && k < 4) v /= 1024, k++;
    snprintf(buf, 32, k ? "%.2f %s" : "%.0f %s", v, u[k]);
    return buf;
}
