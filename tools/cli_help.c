/*
 * cli_help.c - what the option tables print: each command's --help, the
 * manual page (gpt --man, installed as gpt.1), and the dispatch from a
 * command to its subcommands. The parser itself is in cli.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { HELP_COL = 27, HELP_WIDTH = 79 };

static const char exit_codes[] =
    "exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid input\n";

/* The option's spellings and value: "-n, --max-new-tokens N"; one-dash
 * aliases after the short name, long ones after the name. */
static void spellings(const cli_opt *o, char *buf, size_t cap) {
    size_t n = 0;
    int first = 1;
#define ADD(...) (n < cap ? n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__) : 0)
    if (!o->short_name && !(o->alias && strstr(o->alias, "-") == o->alias)) ADD("    ");
    if (o->short_name) ADD("-%c", o->short_name), first = 0;
    for (int dash = 1; dash >= 0; dash--) {
        if (!dash && o->name) ADD("%s--%s", first ? "" : ", ", o->name), first = 0;
        for (const char *p = o->alias; p && *p;) {
            size_t k = strcspn(p, "|");
            if ((p[0] == '-') == dash) ADD("%s%s%.*s", first ? "" : ", ", dash ? "" : "--", (int)k, p), first = 0;
            p += k + (p[k] == '|');
        }
    }
#undef ADD
    if (o->kind == CLI_FLAG || n >= cap) return;
    const char *arg = o->arg ? o->arg : o->choices ? o->choices : "VALUE";
    snprintf(buf + n, cap - n, (o->flags & CLI_OPTIONAL) ? " [%s]"
                               : (o->flags & CLI_MANY)   ? " %s..."
                                                         : " %s",
             arg);
}

/* The help text with its default: "tokens to generate (default 64)". */
static void help_text(const cli_opt *o, char *buf, size_t cap) {
    const char *h = o->help ? o->help : "";
    if (o->def && !strstr(h, "(default"))
        snprintf(buf, cap, "%s%s(default %s)", h, *h ? " " : "", o->def);
    else
        snprintf(buf, cap, "%s", h);
}

/* Prints text word-wrapped, the cursor at column `at`, continuation lines
 * indented to `indent`; a '\n' in the text starts a new line. */
static void wrap(FILE *f, const char *text, int at, int indent) {
    const char *p = text;
    while (*p) {
        if (*p == '\n') {
            fprintf(f, "\n%*s", indent, "");
            at = indent;
            p++;
            continue;
        }
        size_t w = strcspn(p, " \n");
        if (at > indent && at + 1 + (int)w > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            at = indent;
        } else if (at > indent) {
            fputc(' ', f);
            at++;
        }
        fwrite(p, 1, w, f);
        at += (int)w;
        p += w;
        while (*p == ' ') p++;
    }
    fputc('\n', f);
}

typedef struct {
    FILE *f;
    int man;
    int rows; /* rows printed so far */
} print_ctx;

static void roff(FILE *f, const char *s, size_t n);

static int print_row(const cli_opt *o, size_t off, int idx, void *vctx) {
    print_ctx *c = vctx;
    char left[160], help[1024];
    (void)off, (void)idx;
    if (o->flags & CLI_HIDDEN) return 0;
    if (o->kind == CLI_SECTION) {
        if (c->man) {
            fputs(".PP\n.I ", c->f);
            roff(c->f, o->help, strlen(o->help));
            fputc('\n', c->f);
        } else {
            fputc('\n', c->f);
            char title[512];
            snprintf(title, sizeof title, "%s:", o->help);
            wrap(c->f, title, 0, 2);
        }
        c->rows++;
        return 0;
    }
    if (c->rows++ == 0 && !c->man) fputs("\noptions:\n", c->f);
    spellings(o, left, sizeof left);
    help_text(o, help, sizeof help);
    if (c->man) {
        const char *l = left;
        while (*l == ' ') l++;
        fputs(".TP\n.B ", c->f);
        roff(c->f, l, strlen(l));
        fputc('\n', c->f);
        roff(c->f, help, strlen(help));
        fputc('\n', c->f);
        return 0;
    }
    int at = fprintf(c->f, "  %s", left);
    if (at + 2 > HELP_COL) {
        fputc('\n', c->f);
        at = 0;
    }
    fprintf(c->f, "%*s", HELP_COL - at, "");
    wrap(c->f, help, HELP_COL, HELP_COL);
    return 0;
}

/* The last word of a command's name ("train" of "tokenizer train"). */
static const char *last_word(const char *name) {
    const char *s = strrchr(name, ' ');
    return s ? s + 1 : name;
}

void cli_print_help(const cli_cmd *cmd, FILE *f) {
    const char *usage = cmd->usage ? cmd->usage : cmd->subs ? "<command> [options]" : "[options]";
    fprintf(f, "usage: gpt%s%s %s\n", *cmd->name ? " " : "", cmd->name, usage);
    if (cmd->about) fprintf(f, "\n%s%s", cmd->about, cmd->about[strlen(cmd->about) - 1] == '\n' ? "" : "\n");
    if (cmd->subs) {
        fputs("\ncommands:\n", f);
        for (const cli_cmd *const *s = cmd->subs; *s; s++)
            fprintf(f, "  %-10s %s\n", last_word((*s)->name), (*s)->summary);
        fprintf(f, "\n(gpt %s%s<command> --help for its options)\n", cmd->name, *cmd->name ? " " : "");
    }
    if (cmd->opts) {
        print_ctx c = {f, 0, 0};
        cli_walk(cmd, print_row, &c);
        fprintf(f, "  %-*s%s\n", HELP_COL - 2, "-h, --help", "this help");
    }
    if (cmd->footer) fprintf(f, "\n%s", cmd->footer);
    fprintf(f, "\n%s", exit_codes);
}

int cli_parse_args(const cli_cmd *cmd, int argc, char **argv, void *args, cli_seen *seen) {
    int rc = cli_parse(cmd, argc, argv, args, seen);
    if (rc == CLI_HELP) {
        cli_print_help(cmd, stdout);
        return EXIT_OK;
    }
    return rc == EXIT_OK ? -1 : rc;
}

/* "a, b or c" of the subcommands' names. */
static void sub_names(const cli_cmd *cmd, char *buf, size_t cap) {
    size_t n = 0, count = 0;
    buf[0] = 0;
    for (const cli_cmd *const *s = cmd->subs; *s; s++) count++;
    for (size_t i = 0; i < count && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i == 0 ? "" : i + 1 == count ? " or " : ", ",
                              last_word(cmd->subs[i]->name));
}

int cli_dispatch(const cli_cmd *cmd, int argc, char **argv) {
    if (!cmd->subs) return cmd->run(argc, argv);
    char names[256];
    sub_names(cmd, names, sizeof names);
    if (argc < 2)
        return cli_usage_error(cmd->name, "expects a subcommand: %s (see gpt %s --help)", names,
                               cmd->name);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        cli_print_help(cmd, stdout);
        return EXIT_OK;
    }
    for (const cli_cmd *const *s = cmd->subs; *s; s++)
        if (!strcmp(argv[1], last_word((*s)->name))) return cli_dispatch(*s, argc - 1, argv + 1);
    return cli_usage_error(cmd->name, "unknown subcommand '%s' (expected %s)", argv[1], names);
}

/* ------------------------------------------------------------- manual */

/* Text for roff: backslashes and dashes escaped, no line starting with a
 * control character. */
static void roff(FILE *f, const char *s, size_t n) {
    int bol = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (bol && (c == '.' || c == '\'')) fputs("\\&", f);
        if (c == '\\') fputs("\\e", f);
        else if (c == '-') fputs("\\-", f);
        else fputc(c, f);
        bol = c == '\n';
    }
}

/* Paragraphs (blank line between) as .PP blocks, lines joined; one with
 * an indented line (a table of examples) keeps its lines as they are. */
static void roff_paragraphs(FILE *f, const char *text) {
    const char *p = text;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int pre = p[0] == ' ';
        for (size_t i = 0; i + 1 < n; i++) pre |= p[i] == '\n' && p[i + 1] == ' ';
        fputs(pre ? ".PP\n.nf\n" : ".PP\n", f);
        roff(f, p, n);
        if (n && p[n - 1] != '\n') fputc('\n', f);
        if (pre) fputs(".fi\n", f);
        p += n;
        while (*p == '\n') p++;
    }
}

static void man_command(const cli_cmd *cmd, FILE *f) {
    if (cmd->subs) {
        for (const cli_cmd *const *s = cmd->subs; *s; s++) man_command(*s, f);
        return;
    }
    const char *usage = cmd->usage ? cmd->usage : "[options]";
    fputs(".SS \"gpt ", f);
    roff(f, cmd->name, strlen(cmd->name));
    fputs("\"\n.B gpt ", f);
    roff(f, cmd->name, strlen(cmd->name));
    fputc(' ', f);
    roff(f, usage, strlen(usage));
    fputc('\n', f);
    if (cmd->about) roff_paragraphs(f, cmd->about);
    else if (cmd->summary) roff_paragraphs(f, cmd->summary);
    if (cmd->opts) {
        print_ctx c = {f, 1, 0};
        cli_walk(cmd, print_row, &c);
    }
    if (cmd->footer) {
        fputs(".PP\n.nf\n", f);
        roff(f, cmd->footer, strlen(cmd->footer));
        fputs(".fi\n", f);
    }
}

void cli_print_man(const cli_cmd *root, FILE *f) {
    fprintf(f, ".\\\" Generated by `gpt --man` from the option tables in tools/; do not edit.\n");
    fputs(".TH GPT 1 \"\" \"gpt ", f);
    roff(f, GPT_VERSION, strlen(GPT_VERSION));
    fputs("\" \"User Commands\"\n.SH NAME\ngpt \\- ", f);
    roff(f, root->summary, strlen(root->summary));
    fputs("\n.SH SYNOPSIS\n.B gpt\n.I command\n.RI [ options ]\n", f);
    fputs(".br\n.B gpt\n.I command\n.B \\-\\-help\n.SH DESCRIPTION\n", f);
    if (root->about) roff_paragraphs(f, root->about);
    fputs(".PP\nEvery option is written\n.B \\-\\-name value\nor\n.BR \\-\\-name=value ;\n"
          "one-letter options as\n.B \\-x value\nor\n.BR \\-xvalue .\n"
          "The last use of an option wins, except those that collect a list.\n",
          f);
    fputs(".SH COMMANDS\n", f);
    man_command(root, f);
    if (root->footer) {
        fputs(".SH EXAMPLES\n.nf\n", f);
        roff(f, root->footer, strlen(root->footer));
        fputs(".fi\n", f);
    }
    fputs(".SH EXIT STATUS\n0 on success, 1 on a runtime failure, 2 on bad usage or invalid input.\n"
          "Every failure prints one line on standard error saying what is wrong.\n"
          ".SH SEE ALSO\nThe README of the gpt source tree; the C library's header\n"
          ".IR gpt.h ;\n.BR pkg-config (1)\nwith the package\n.IR gpt .\n",
          f);
}
