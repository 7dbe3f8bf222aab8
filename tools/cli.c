/*
 * cli.c - the table-driven argument parser (cli.h says what it accepts),
 * error printing, strict number parsing and the progress line shared by
 * the gpt command's subcommands. --help and the manual page, printed from
 * the same tables, are in cli_help.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <limits.h>
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

/* ------------------------------------------------------------- options */

/* Calls fn on every row of the table, groups flattened, with the row's
 * field offset and its index in that order; stops at a nonzero answer. */
typedef int (*visit_fn)(const cli_opt *o, size_t off, int idx, void *ctx);

static int walk(const cli_opt *t, size_t base, int *idx, visit_fn fn, void *ctx) {
    for (; t && t->kind != CLI_END; t++) {
        int r = t->kind == CLI_GROUP ? walk(t->group, base + t->off, idx, fn, ctx)
                                     : fn(t, base + t->off, (*idx)++, ctx);
        if (r) return r;
    }
    return 0;
}

static int walk_cmd(const cli_cmd *cmd, visit_fn fn, void *ctx) {
    int idx = 0;
    return walk(cmd->opts, 0, &idx, fn, ctx);
}

/* A row found by name. */
typedef struct {
    const char *name; /* a long name, a one-dash name (with its dash), or NULL */
    size_t len;       /* of name */
    char short_name;  /* when name is NULL */
    const cli_opt *o;
    size_t off;
    int idx;
} lookup;

/* 1 if one of the '|'-separated aliases is name (len bytes). */
static int alias_is(const char *aliases, const char *name, size_t len) {
    for (const char *p = aliases; p && *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, name, len)) return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

static int match(const cli_opt *o, size_t off, int idx, void *ctx) {
    lookup *l = ctx;
    if (o->kind == CLI_SECTION) return 0;
    int hit = !l->name ? o->short_name && o->short_name == l->short_name
              : l->name[0] == '-' ? alias_is(o->alias, l->name, l->len)
                                  : (o->name && strlen(o->name) == l->len &&
                                     !strncmp(o->name, l->name, l->len)) ||
                                        alias_is(o->alias, l->name, l->len);
    if (hit) l->o = o, l->off = off, l->idx = idx;
    return hit;
}

/* name: a long name without its dashes, or a one-dash name with its dash. */
static int find_long(const cli_cmd *cmd, const char *name, size_t len, lookup *l) {
    *l = (lookup){.name = name, .len = len};
    return walk_cmd(cmd, match, l);
}

static int find_short(const cli_cmd *cmd, char c, lookup *l) {
    *l = (lookup){.short_name = c};
    return walk_cmd(cmd, match, l);
}

/* An argument that is one of the command's options (or --help): taken for
 * a forgotten value rather than as the value ("--model --prompt hi"). */
static int is_option(const cli_cmd *cmd, const char *a) {
    lookup l;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
    if (a[0] != '-') return 0;
    if (a[1] == '-') return a[2] && find_long(cmd, a + 2, strcspn(a + 2, "="), &l);
    return a[1] && (find_long(cmd, a, strcspn(a, "="), &l) || find_short(cmd, a[1], &l));
}

/* The index of v among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        size_t len = strcspn(p, "|");
        if (len == n && !strncmp(p, v, n)) return i;
        p += len + (p[len] == '|');
    }
    return -1;
}

/* "expects a, b or c" for a message. */
static void choice_words(const char *choices, char *buf, size_t cap) {
    size_t n = 0, count = 1;
    for (const char *p = choices; *p; p++) count += *p == '|';
    buf[0] = 0;
    size_t i = 0;
    for (const char *p = choices; *p && n < cap; i++) {
        size_t len = strcspn(p, "|");
        const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", sep, (int)len, p);
        p += len + (p[len] == '|');
    }
}

/* Integer range of a row: its lo and hi, within the field's type. */
static void int_range(const cli_opt *o, long long tmin, long long tmax, long long *lo,
                      long long *hi) {
    *lo = tmin, *hi = tmax;
    if (o->lo == 0 && o->hi == 0) return;
    if (o->lo > (double)tmin) *lo = (long long)o->lo;
    if (o->hi < (double)tmax) *hi = (long long)o->hi;
}

/* Stores value v of option o (spelled flag) into the field at p. */
static int store(const char *cmd, const cli_opt *o, char *p, const char *flag, const char *v,
                 void *args) {
    long long x, lo, hi;
    double d;
    char words[256];
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)p = 1;
        return EXIT_OK;
    case CLI_STR:
        if ((o->flags & CLI_NONEMPTY) && !*v)
            return cli_usage_error(cmd, "%s needs a non-empty value", flag);
        *(const char **)p = v;
        return EXIT_OK;
    case CLI_CHOICE:
    case CLI_ENUM: {
        int k = choice_index(o->choices, v);
        if (k < 0) {
            choice_words(o->choices, words, sizeof words);
            return cli_usage_error(cmd, "%s expects %s, got '%s'", flag, words, v);
        }
        if (o->kind == CLI_ENUM) *(int *)p = k;
        else *(const char **)p = v;
        return EXIT_OK;
    }
    case CLI_INT:
    case CLI_I64:
        if (o->kind == CLI_INT) int_range(o, INT_MIN, INT_MAX, &lo, &hi);
        else int_range(o, LLONG_MIN, LLONG_MAX, &lo, &hi);
        if (o->flags & CLI_ABOVE_LO) lo++;
        if (!cli_parse_int(cmd, flag, v, lo, hi, &x)) return EXIT_USAGE;
        if (o->kind == CLI_INT) *(int *)p = (int)x;
        else *(long long *)p = x;
        return EXIT_OK;
    case CLI_FLOAT:
    case CLI_DOUBLE: {
        double flo = o->lo, fhi = o->hi;
        if (flo == 0 && fhi == 0) flo = -HUGE_VAL, fhi = HUGE_VAL;
        if (o->flags & CLI_ABOVE_LO) {
            char *end;
            errno = 0;
            d = strtod(v, &end);
            if (!*v || *end || errno == ERANGE || !(d > flo && d <= fhi))
                return cli_usage_error(cmd, "%s expects a number in (%g, %g], got '%s'", flag, flo,
                                       fhi, v);
        } else if (!cli_parse_float(cmd, flag, v, flo, fhi, &d)) {
            return EXIT_USAGE;
        }
        if (o->kind == CLI_FLOAT) *(float *)p = (float)d;
        else *(double *)p = d;
        return EXIT_OK;
    }
    case CLI_LIST: {
        cli_list *l = (cli_list *)(void *)p;
        if ((o->flags & CLI_NONEMPTY) && !*v)
            return cli_usage_error(cmd, "%s needs a non-empty value", flag);
        const char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
        if (!nv) return cli_usage_error(cmd, "out of memory");
        l->v = nv;
        l->v[l->n++] = v;
        return EXIT_OK;
    }
    case CLI_CALL:
        return o->call(p, args, cmd, flag, v);
    default:
        return EXIT_OK;
    }
}

typedef struct {
    const char *cmd;
    void *args;
    int rc;
} defaults_ctx;

static int apply_default(const cli_opt *o, size_t off, int idx, void *ctx) {
    defaults_ctx *d = ctx;
    (void)idx;
    if (!o->def || o->kind == CLI_SECTION) return 0;
    char flag[80];
    snprintf(flag, sizeof flag, "the default of --%s", o->name ? o->name : "?");
    d->rc = store(d->cmd, o, (char *)d->args + off, flag, o->def, d->args);
    return d->rc;
}

static void mark(cli_seen *seen, int idx) {
    if (idx >= 0 && idx < 256) seen->bits[idx / 64] |= 1ull << (idx % 64);
}

typedef struct {
    const cli_seen *seen;
    const char *cmd;
} required_ctx;

static int check_required(const cli_opt *o, size_t off, int idx, void *vctx) {
    required_ctx *c = vctx;
    (void)off;
    if (!(o->flags & CLI_REQUIRED) || idx >= 256 || (c->seen->bits[idx / 64] >> (idx % 64) & 1)) return 0;
    char sp[80];
    if (o->name) snprintf(sp, sizeof sp, "--%s", o->name);
    else snprintf(sp, sizeof sp, "-%c", o->short_name);
    return cli_usage_error(c->cmd, "%s %s is required (see gpt %s --help)", sp,
                           o->arg ? o->arg : "VALUE", c->cmd);
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *args, cli_seen *seen) {
    const char *name = cmd->name;
    cli_seen local; /* required options need to know what was given */
    if (!seen) seen = &local;
    memset(seen, 0, sizeof *seen);
    defaults_ctx dc = {name, args, 0};
    walk_cmd(cmd, apply_default, &dc);
    if (dc.rc) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char flag[80];
        lookup l;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return CLI_HELP;
        if (!strcmp(a, "--")) {
            if (i + 1 < argc)
                return cli_usage_error(name, "unexpected argument '%s' (see gpt %s --help)",
                                       argv[i + 1], name);
            break;
        }
        if (a[0] != '-' || !a[1])
            return cli_usage_error(name, "unexpected argument '%s' (see gpt %s --help)", a, name);
        if (a[1] == '-') {
            size_t len = strcspn(a + 2, "=");
            snprintf(flag, sizeof flag, "--%.*s", (int)(len < 60 ? len : 60), a + 2);
            if (!find_long(cmd, a + 2, len, &l))
                return cli_usage_error(name, "unknown option '%s' (see gpt %s --help)", flag, name);
            if (a[2 + len] == '=') v = a + 3 + len;
        } else if (a[2] && a[2] != '=' && find_long(cmd, a, strcspn(a, "="), &l)) {
            /* a one-dash name of several letters ("-np 4", "-np=4") */
            size_t len = strcspn(a, "=");
            snprintf(flag, sizeof flag, "%.*s", (int)(len < 60 ? len : 60), a);
            if (a[len] == '=') v = a + len + 1;
        } else {
            snprintf(flag, sizeof flag, "-%c", a[1]);
            if (!find_short(cmd, a[1], &l))
                return cli_usage_error(name, "unknown option '%s' (see gpt %s --help)", flag, name);
            if (a[2]) v = a + 2 + (a[2] == '=');
        }
        const cli_opt *o = l.o;
        if (o->kind == CLI_FLAG) {
            if (v) return cli_usage_error(name, "%s takes no value, got '%s'", flag, a);
        } else if (!v) {
            if (o->flags & CLI_OPTIONAL) {
                if (i + 1 < argc && argv[i + 1][0] != '-') v = argv[++i];
            } else if (i + 1 < argc && !is_option(cmd, argv[i + 1])) {
                v = argv[++i];
            } else {
                return cli_usage_error(name, "%s needs a value", flag);
            }
        }
        mark(seen, l.idx);
        if (!v && o->kind != CLI_FLAG) continue; /* an optional value left out */
        int rc = store(name, o, (char *)args + l.off, flag, v, args);
        while (!rc && (o->flags & CLI_MANY) && i + 1 < argc && argv[i + 1][0] != '-')
            rc = store(name, o, (char *)args + l.off, flag, argv[++i], args);
        if (rc) return rc;
    }
    required_ctx rc = {seen, name};
    return walk_cmd(cmd, check_required, &rc) ? EXIT_USAGE : EXIT_OK;
}

int cli_given(const cli_cmd *cmd, const cli_seen *seen, const char *name) {
    lookup l;
    if (!seen || !find_long(cmd, name, strlen(name), &l) || l.idx >= 256) return 0;
    return (int)(seen->bits[l.idx / 64] >> (l.idx % 64)) & 1;
}

static int free_list(const cli_opt *o, size_t off, int idx, void *args) {
    (void)idx;
    if (o->kind == CLI_LIST) {
        cli_list *l = (cli_list *)(void *)((char *)args + off);
        free(l->v);
        l->v = NULL;
        l->n = 0;
    }
    return 0;
}

void cli_free(const cli_cmd *cmd, void *args) { walk_cmd(cmd, free_list, args); }

int cli_walk(const cli_cmd *cmd, int (*fn)(const cli_opt *, size_t, int, void *), void *ctx) {
    return walk_cmd(cmd, fn, ctx);
}

int cli_set_device(void *field, void *args, const char *cmd, const char *flag, const char *value) {
    (void)args;
    if (!gpt_device_name_valid(value))
        return cli_usage_error(cmd, "%s expects cpu, cuda, vulkan, vulkan:N or auto, got '%s'", flag,
                               value);
    *(const char **)field = value;
    return 0;
}

/* ------------------------------------------------- errors and numbers */

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    if (cmd && *cmd) fprintf(stderr, "gpt %s: ", cmd);
    else fputs("gpt: ", stderr);
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
