/*
 * test_cli_parse.c - the gpt command's table-driven argument parser
 * (tools/cli.c, tools/cli_help.c) on a table of every kind of row: each
 * spelling of a value, defaults, ranges, choices, lists, optional values,
 * groups, required options, what counts as given, and what --help and the
 * manual page print. Error messages go to stderr (tests/test_cli_args.sh
 * checks their form end to end); here the answers and the fields.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "test.h"

typedef struct {
    const char *path;
    int threads;
} inner;

typedef struct {
    int n, flag, mode, shift, slots;
    long long seed;
    float temp;
    double frac;
    const char *name, *dev, *resume, *req;
    cli_list input, stop;
    inner in;
    char calls[64];
} args;

static int record(void *field, void *a, const char *cmd, const char *flag, const char *v) {
    args *x = a;
    (void)cmd, (void)field;
    snprintf(x->calls + strlen(x->calls), sizeof x->calls - strlen(x->calls), "%s=%s;", flag, v);
    return 0;
}

#define I(f) offsetof(inner, f)
static const cli_opt inner_opts[] = {
    {CLI_STR, 'm', "model", I(path), "PATH", .help = "a model"},
    {CLI_INT, 't', "threads", I(threads), "N", .help = "threads", .lo = 1, .hi = 64},
    {CLI_END},
};
#undef I

#define O(f) offsetof(args, f)
static const cli_opt opts[] = {
    {CLI_SECTION, .help = "numbers"},
    {CLI_INT, 'n', "count", O(n), "N", "how many", .def = "7", .lo = 1, .hi = 100},
    {CLI_INT, 0, "shift", O(shift), "K", "signed", .lo = -10, .hi = 10},
    {CLI_I64, 's', "seed", O(seed), "S", "seed", .def = "1", .lo = 0, .hi = 1e19},
    {CLI_FLOAT, 0, "temperature", O(temp), "T", "temperature", .def = "1", .alias = "temp",
     .lo = 0, .hi = 100},
    {CLI_DOUBLE, 0, "frac", O(frac), "F", "(0, 1]", .def = "0.5", .lo = 0, .hi = 1,
     .flags = CLI_ABOVE_LO},
    {CLI_SECTION, .help = "words"},
    {CLI_FLAG, 'q', "quiet", O(flag), NULL, .help = "no noise"},
    {CLI_STR, 0, "name", O(name), "NAME", "a name", .def = "anon", .flags = CLI_NONEMPTY},
    {CLI_CHOICE, 0, "device", O(dev), NULL, "where", .choices = "cpu|cuda|auto"},
    {CLI_ENUM, 0, "mode", O(mode), NULL, "how", .choices = "a|bb|ccc", .def = "bb"},
    {CLI_STR, 0, "resume", O(resume), "CKPT", "optional value", .flags = CLI_OPTIONAL},
    {CLI_LIST, 'i', "input", O(input), "FILE", "files", .flags = CLI_MANY},
    {CLI_LIST, 0, "stop", O(stop), "STR", "repeatable", .flags = CLI_NONEMPTY},
    {CLI_INT, 0, "slots", O(slots), "N", "one-dash alias", .alias = "-np|parallel", .lo = 1,
     .hi = 64},
    {CLI_CALL, 'p', "prompt", 0, "TEXT", "kept in order", .call = record},
    {CLI_STR, 0, "secret", O(name), "X", "hidden", .flags = CLI_HIDDEN},
    {CLI_GROUP, .group = inner_opts, .off = O(in)},
    {CLI_END},
};
#undef O

static const cli_cmd cmd = {.name = "demo", .summary = "a test command", .usage = "[options]",
                            .about = "About the demo.\n", .opts = opts,
                            .footer = "example:\n  gpt demo -n 3\n"};

static const cli_opt req_opts[] = {
    {CLI_STR, 0, "need", offsetof(args, req), "X", "required", .flags = CLI_REQUIRED},
    {CLI_END},
};
static const cli_cmd req_cmd = {.name = "req", .opts = req_opts};

/* Parses a space-separated argument string (argv[0] = "demo"). */
static int parse_with(const cli_cmd *c, const char *line, args *a, cli_seen *seen) {
    static char buf[512];
    static char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "demo %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    cli_free(c, a);
    memset(a, 0, sizeof *a);
    return cli_parse(c, argc, argv, a, seen);
}

static int parse(const char *line, args *a) { return parse_with(&cmd, line, a, NULL); }

/* Runs f(arg) with stdout into a string (for --help and the manual). */
static char *capture(void (*f)(const cli_cmd *, FILE *), const cli_cmd *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    f(c, m);
    fclose(m);
    return buf;
}

int main(void) {
    args a = {0};
    cli_seen seen;

    test_begin("defaults are stored before parsing");
    EXPECT(parse("", &a) == EXIT_OK, "rc");
    EXPECT(a.n == 7 && a.seed == 1 && a.temp == 1.0f && a.frac == 0.5, "%d %lld %g %g", a.n,
           a.seed, (double)a.temp, a.frac);
    EXPECT(!strcmp(a.name, "anon") && a.mode == 1 && !a.dev && !a.flag, "%s %d", a.name, a.mode);
    test_end();

    test_begin("every spelling of a value gives the same value");
    const char *forms[] = {"--count 5", "--count=5", "-n 5", "-n5", "-n=5", "-n 9 --count 5"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        int rc = parse(forms[i], &a);
        EXPECT(rc == EXIT_OK && a.n == 5, "'%s': rc %d n %d", forms[i], rc, a.n);
    }
    EXPECT(parse("--temp 0.25", &a) == 0 && a.temp == 0.25f, "alias --temp: %g", (double)a.temp);
    EXPECT(parse("--temperature=0.5", &a) == 0 && a.temp == 0.5f, "%g", (double)a.temp);
    EXPECT(parse("--shift -3", &a) == 0 && a.shift == -3, "a negative value after its flag: %d",
           a.shift);
    EXPECT(parse("--name=a=b", &a) == 0 && !strcmp(a.name, "a=b"), "value with '=': %s", a.name);
    EXPECT(parse("--seed 9223372036854775807", &a) == 0 && a.seed == LLONG_MAX, "%lld", a.seed);
    const char *np[] = {"-np 4", "-np=4", "--parallel 4", "--slots=4", "--parallel=9 -np 4"};
    for (size_t i = 0; i < sizeof np / sizeof *np; i++)
        EXPECT(parse(np[i], &a) == 0 && a.slots == 4, "'%s': %d", np[i], a.slots);
    EXPECT(parse("-n5 -np 3", &a) == 0 && a.n == 5 && a.slots == 3, "-n5 is still -n: %d %d", a.n,
           a.slots);
    test_end();

    test_begin("flags, choices, enums, groups");
    EXPECT(parse("-q --device cuda --mode ccc -m x.ckpt -t 4", &a) == 0, "rc");
    EXPECT(a.flag == 1 && !strcmp(a.dev, "cuda") && a.mode == 2, "%d %s %d", a.flag, a.dev, a.mode);
    EXPECT(a.in.path && !strcmp(a.in.path, "x.ckpt") && a.in.threads == 4, "group fields: %s %d",
           a.in.path ? a.in.path : "(null)", a.in.threads);
    EXPECT(parse("--threads=2 --model=y", &a) == 0 && a.in.threads == 2 && !strcmp(a.in.path, "y"),
           "group, long forms");
    test_end();

    test_begin("lists, many-valued flags, optional values, calls in order");
    EXPECT(parse("--input a b c --stop x --stop y -i d", &a) == 0, "rc");
    EXPECT(a.input.n == 4 && !strcmp(a.input.v[3], "d") && !strcmp(a.input.v[2], "c"), "input %d",
           a.input.n);
    EXPECT(a.stop.n == 2 && !strcmp(a.stop.v[0], "x") && !strcmp(a.stop.v[1], "y"), "stop %d",
           a.stop.n);
    EXPECT(parse("--resume", &a) == 0 && !a.resume, "bare optional");
    EXPECT(parse("--resume r.ckpt -q", &a) == 0 && a.resume && !strcmp(a.resume, "r.ckpt") && a.flag,
           "optional with value");
    EXPECT(parse("--resume -q", &a) == 0 && !a.resume && a.flag, "optional before a flag");
    EXPECT(parse("--resume=z", &a) == 0 && a.resume && !strcmp(a.resume, "z"), "optional =");
    EXPECT(parse("-p one --prompt two -ptri", &a) == 0 &&
               !strcmp(a.calls, "-p=one;--prompt=two;-p=tri;"),
           "calls: %s", a.calls);
    test_end();

    test_begin("what was given, not defaulted, is seen");
    EXPECT(parse_with(&cmd, "--temp 2 -n 7", &a, &seen) == 0, "rc");
    EXPECT(cli_given(&cmd, &seen, "temperature") && cli_given(&cmd, &seen, "count"), "given");
    EXPECT(!cli_given(&cmd, &seen, "seed") && !cli_given(&cmd, &seen, "name"), "defaults only");
    EXPECT(!cli_given(&cmd, &seen, "nosuch"), "unknown name");
    EXPECT(parse_with(&cmd, "--threads 3", &a, &seen) == 0 && cli_given(&cmd, &seen, "threads"),
           "in a group");
    test_end();

    test_begin("bad arguments are refused with exit code 2");
    const char *bad[] = {
        "--bogus",          "--bogus=1",     "-Z",          "-n",         "-n 0",
        "-n 101",           "-n abc",        "-n 5x",       "--count=",   "--quiet=1",
        "-qx",              "stray",         "-- stray",    "-",          "--device tpu",
        "--mode d",         "--name=",       "--stop=",     "--frac 0",   "--frac 1.5",
        "--temp nan",       "--temp inf",    "--seed -1",   "--seed 9223372036854775808",
        "--count --quiet",  "-m --count 3",  "--shift -11", "-t 0", "-np", "-np 0", "-npx 3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i], &a);
        EXPECT(rc == EXIT_USAGE, "'%s' gave %d", bad[i], rc);
    }
    EXPECT(parse("--", &a) == EXIT_OK, "a final -- is fine");
    EXPECT(parse("-n 3 --help", &a) == CLI_HELP && parse("-h", &a) == CLI_HELP, "help");
    EXPECT(parse("--bogus -h", &a) == EXIT_USAGE, "an error before --help wins");
    test_end();

    test_begin("required options");
    EXPECT(parse_with(&req_cmd, "", &a, NULL) == EXIT_USAGE, "missing");
    EXPECT(parse_with(&req_cmd, "--need=x", &a, NULL) == EXIT_OK && !strcmp(a.req, "x"), "given");
    EXPECT(parse_with(&req_cmd, "--help", &a, NULL) == CLI_HELP, "help without it");
    test_end();

    test_begin("--help prints every visible row from the table");
    char *h = capture(cli_print_help, &cmd);
    EXPECT(h && !strncmp(h, "usage: gpt demo [options]\n", 26), "%.40s", h ? h : "");
    const char *want[] = {"-n, --count N", "(default 7)", "--temperature, --temp T",
                          "-np, --slots, --parallel N",
                          "--device cpu|cuda|auto", "--resume [CKPT]", "-i, --input FILE...",
                          "-m, --model PATH", "numbers:", "words:", "-h, --help",
                          "example:", "exit codes: 0 success"};
    for (size_t i = 0; h && i < sizeof want / sizeof *want; i++)
        EXPECT(strstr(h, want[i]), "'%s' missing", want[i]);
    EXPECT(h && !strstr(h, "secret"), "a hidden row was printed");
    for (char *l = h; l && *l; l = strchr(l, '\n') + 1) {
        size_t n = strcspn(l, "\n");
        EXPECT(n <= 80, "a help line of %zu columns: %.*s", n, (int)n, l);
        if (!l[n]) break;
    }
    free(h);
    test_end();

    test_begin("the manual page: roff with escaped dashes");
    const cli_cmd *const subs[] = {&cmd, NULL};
    const cli_cmd root = {.name = "", .summary = "root", .subs = subs};
    char *man = capture(cli_print_man, &root);
    EXPECT(man && strstr(man, ".TH GPT 1"), "no .TH");
    EXPECT(man && strstr(man, ".SS \"gpt demo\""), "no section for the command");
    EXPECT(man && strstr(man, "\\-n, \\-\\-count N"), "option not escaped");
    EXPECT(man && !strstr(man, "--count"), "an unescaped option");
    free(man);
    test_end();

    cli_free(&cmd, &a);
    return test_summary();
}
