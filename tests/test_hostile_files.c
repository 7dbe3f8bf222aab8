/*
 * test_hostile_files.c - the loaders and writers against files made by
 * someone hostile (issue 13): sizes in a header that the file does not
 * hold, names that point at FIFOs and devices, JSON built to inflate in
 * memory or to be read two ways, temporary names taken in advance, output
 * paths that are not files.
 *
 * Each load runs in a child process (fork) with an alarm, so that a hang
 * or a crash is a failed check here rather than a stuck suite, and the
 * child's peak memory (wait4's ru_maxrss, less that of a child that does
 * nothing) is the cost of the load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpt.h"
#include "gpt_tokenizer.h"
#include "hf.h"
#include "json.h"
#include "test.h"
#include "util.h"

static char dir[64];

/* Peak memory a refusal may cost above an idle process. The files here
 * are under 1 MB and their refusals need a few pages (3-5 MB measured in
 * the plain build, up to 23 MB with AddressSanitizer's shadow and
 * quarantine); the same files cost 0.25-3.5 GB before issue 13's fixes. */
#define REFUSAL_KB (32 * 1024)

static char *at(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f)) {
        printf("cannot write %s\n", path);
        exit(1);
    }
}

static char *read_all(const char *path, size_t *n) {
    gpt_error err = {0};
    char *d = NULL;
    if (gpt_read_file(path, 0, &d, n, &err)) {
        printf("cannot read %s: %s\n", path, err.msg);
        exit(1);
    }
    return d;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

/* ------------------------------------------------------ child processes */

typedef struct {
    int status;     /* the library status the child returned, or -1 */
    int signaled;   /* 1 if it died of a signal (SIGALRM: it hung) */
    long rss_kb;    /* peak resident memory above an idle child's */
    char msg[512];  /* the child's error message */
} outcome;

typedef int (*child_fn)(void *arg, gpt_error *err);

static int idle(void *arg, gpt_error *err) {
    (void)arg, (void)err;
    return 0;
}

/* Runs fn in a child with a 20 s alarm; the message comes back through a
 * pipe. */
static outcome run_child(child_fn fn, void *arg) {
    outcome o = {.status = -1};
    int fds[2];
    if (pipe(fds)) exit(1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(20);
        gpt_error err = {0};
        int rc = fn(arg, &err);
        ssize_t w = write(fds[1], err.msg, strnlen(err.msg, sizeof err.msg));
        (void)w;
        _exit(rc & 0x7F);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got < sizeof o.msg - 1 && (r = read(fds[0], o.msg + got, sizeof o.msg - 1 - got)) > 0)
        got += (size_t)r;
    o.msg[got] = 0;
    close(fds[0]);
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid) exit(1);
    o.rss_kb = ru.ru_maxrss;
    if (WIFSIGNALED(st)) o.signaled = WTERMSIG(st);
    else o.status = WEXITSTATUS(st);
    return o;
}

static long idle_rss_kb;

static outcome run(child_fn fn, void *arg) {
    outcome o = run_child(fn, arg);
    o.rss_kb -= idle_rss_kb;
    return o;
}

/* ------------------------------------------------------------- fixtures */

static const gpt_config CFG = {256, 0, 16, 1, 1, 8, 8, 0}; /* 4.3K parameters */

/* Saves a small model (weights only, tokenizer gpt2) at path. */
static int make_checkpoint(void *arg, gpt_error *err) {
    gpt_runtime rt = {.device = "cpu"};
    gpt_model *m = NULL;
    int rc = gpt_model_create(&m, &CFG, &rt, 1, err);
    if (!rc) rc = gpt_checkpoint_save(m, (const char *)arg, 0, NULL, err);
    gpt_model_free(m);
    return rc;
}

/* Re-computes a checkpoint's CRC (the 12 bytes before the end marker are
 * CRC + "GPTCKEND"), as a forger would. */
static void fix_ckpt_crc(unsigned char *d, size_t n) { put32(d + n - 12, gpt_crc32(0, d, n - 12)); }

static int load_model(void *arg, gpt_error *err) {
    gpt_runtime rt = {.device = "cpu"};
    gpt_model *m = NULL;
    int rc = gpt_model_load(&m, (const char *)arg, &rt, err);
    gpt_model_free(m);
    return rc;
}

static int open_tokenizer(void *arg, gpt_error *err) {
    gpt_tokenizer *t = NULL;
    int rc = gpt_tokenizer_open(&t, (const char *)arg, err);
    gpt_tokenizer_free(t);
    return rc;
}

static int open_shard(void *arg, gpt_error *err) {
    gpt_shard *s = NULL;
    int rc = gpt_shard_open(&s, (const char *)arg, err);
    gpt_shard_close(s);
    return rc;
}

static int read_file(void *arg, gpt_error *err) {
    char *d = NULL;
    size_t n;
    int rc = gpt_read_file((const char *)arg, 1 << 20, &d, &n, err);
    free(d);
    return rc;
}

static int read_state(void *arg, gpt_error *err) {
    gpt_config c;
    return gpt_checkpoint_read_state((const char *)arg, &c, NULL, err);
}

/* ----------------------------------------------------------------- tests */

/* Defect 1: the header's sizes drove allocation before the file's size was
 * checked (1,000,000 layers in a 33 KB file took 4.4 GB). */
static void test_header_sizes(const char *ckpt) {
    size_t n;
    unsigned char *d = (unsigned char *)read_all(ckpt, &n);
    /* Header: magic 8, version 4, flags 4, then V, Vp, maxT, L at 28;
     * tokenizer name (u16 + "gpt2") at 64, tensor count at 70. */
    const uint32_t layers[] = {100000, 1000000, 16777216};
    for (size_t k = 0; k < 3; k++)
        for (int with_count = 0; with_count < 2; with_count++) {
            test_begin("a %u-layer header in a %zu-byte checkpoint (tensor count %s) is refused "
                       "before the model is built",
                       layers[k], n, with_count ? "to match" : "unchanged");
            unsigned char *c = malloc(n);
            memcpy(c, d, n);
            put32(c + 28, layers[k]);
            if (with_count) put32(c + 70, 4 + 12 * layers[k]);
            fix_ckpt_crc(c, n);
            write_bytes(at("layers.ckpt"), c, n);
            free(c);
            outcome o = run(load_model, at("layers.ckpt"));
            EXPECT(!o.signaled && o.status == GPT_ERR_INVALID, "status %d, signal %d: %s",
                   o.status, o.signaled, o.msg);
            EXPECT(strstr(o.msg, with_count ? "truncated" : "tensors"), "message: %s", o.msg);
            EXPECT(o.rss_kb < REFUSAL_KB, "the refusal took %ld KB", o.rss_kb);
            o = run(read_state, at("layers.ckpt"));
            EXPECT(o.status == GPT_ERR_INVALID, "gpt_checkpoint_read_state: %s", o.msg);
            test_end();
        }
    free(d);
}

/* Defect 3: the tokenizer name was opened as a path at load time. */
static void test_tokenizer_name(const char *ckpt) {
    size_t n;
    unsigned char *d = (unsigned char *)read_all(ckpt, &n);
    const char *names[] = {"/dev/zero", at("fifo"), "tokenizer.bin"};
    for (int k = 0; k < 3; k++) {
        test_begin("a checkpoint naming the tokenizer '%s' without carrying it is refused",
                   names[k]);
        size_t l = strlen(names[k]), m = n - 4 + l;
        unsigned char *c = malloc(m);
        memcpy(c, d, 64);
        c[64] = (unsigned char)l, c[65] = 0;
        memcpy(c + 66, names[k], l);
        memcpy(c + 66 + l, d + 70, n - 70);
        fix_ckpt_crc(c, m);
        write_bytes(at("named.ckpt"), c, m);
        free(c);
        outcome o = run(load_model, at("named.ckpt"));
        EXPECT(!o.signaled && o.status == GPT_ERR_INVALID && strstr(o.msg, "not built in"),
               "status %d, signal %d: %s", o.status, o.signaled, o.msg);
        test_end();
    }
    test_begin("gpt_model_set_tokenizer refuses a name that is not built in without its bytes");
    gpt_runtime rt = {.device = "cpu"};
    gpt_model *m = NULL;
    gpt_error err = {0};
    EXPECT(gpt_model_create(&m, &CFG, &rt, 1, &err) == 0, "%s", err.msg);
    if (m) {
        EXPECT(gpt_model_set_tokenizer(m, "/tmp/fifo", NULL, 0, &err) == GPT_ERR_INVALID,
               "a path without bytes");
        EXPECT(gpt_model_set_tokenizer(m, "bytes", NULL, 0, &err) == 0, "%s", err.msg);
        EXPECT(gpt_model_set_tokenizer(m, "a\nb", "x", 1, &err) == GPT_ERR_INVALID,
               "a control character");
    }
    gpt_model_free(m);
    test_end();
    free(d);
}

/* Defect 3 again: every loader given a FIFO or a device. */
static void test_special_files(void) {
    struct {
        const char *what;
        child_fn fn;
    } loaders[] = {{"gpt_model_load", load_model},
                   {"gpt_tokenizer_open", open_tokenizer},
                   {"gpt_shard_open", open_shard},
                   {"gpt_read_file", read_file}};
    const char *paths[] = {at("fifo"), "/dev/zero"};
    for (size_t k = 0; k < sizeof loaders / sizeof loaders[0]; k++)
        for (int p = 0; p < 2; p++) {
            test_begin("%s refuses %s at once", loaders[k].what, p ? "/dev/zero" : "a FIFO");
            outcome o = run(loaders[k].fn, (void *)paths[p]);
            EXPECT(!o.signaled && o.status == GPT_ERR_INVALID, "status %d, signal %d (%s): %s",
                   o.status, o.signaled, o.signaled == SIGALRM ? "hung" : "", o.msg);
            EXPECT(strstr(o.msg, p ? "device" : "FIFO"), "message: %s", o.msg);
            EXPECT(o.rss_kb < REFUSAL_KB, "took %ld KB", o.rss_kb);
            test_end();
        }
    test_begin("a Hugging Face folder whose model.safetensors is a FIFO is refused at once");
    mkdir(at("hf_fifo"), 0755);
    write_bytes(at("hf_fifo/config.json"), "{\"n_layer\":1}", 13);
    mkfifo(at("hf_fifo/model.safetensors"), 0644);
    outcome o = run(load_model, at("hf_fifo"));
    EXPECT(!o.signaled && o.status == GPT_ERR_INVALID && strstr(o.msg, "FIFO"),
           "status %d, signal %d: %s", o.status, o.signaled, o.msg);
    test_end();
}

static int parse_json_file(void *arg, gpt_error *err) {
    char *d;
    size_t n;
    int rc = gpt_read_file((const char *)arg, 0, &d, &n, err);
    if (rc) return rc;
    json_value *v = NULL;
    rc = json_parse(d, n, &v, err);
    json_free(v);
    free(d);
    return rc;
}

/* Defect 4: JSON took about 30 bytes of memory per input byte. */
static void test_json_memory(void) {
    const size_t N = ((size_t)8 << 20) - 1; /* odd: '[' then "0," pairs, the last "0]" */
    char *t = malloc(N);
    t[0] = '[';
    for (size_t i = 1; i + 1 < N; i += 2) t[i] = '0', t[i + 1] = ',';
    t[N - 2] = '0', t[N - 1] = ']';
    write_bytes(at("big.json"), t, N);
    test_begin("an 8 MB JSON array of zeros parses in at most 12 bytes of memory per byte");
    outcome o = run(parse_json_file, at("big.json"));
    printf("     peak %ld KB above an idle process for %zu KB of JSON\n", o.rss_kb, N / 1024);
    EXPECT(o.status == 0, "%s", o.msg);
    EXPECT(o.rss_kb < (long)(12 * N / 1024) + REFUSAL_KB, "took %ld KB for %zu KB", o.rss_kb,
           N / 1024);
    test_end();

    /* The same array as config.json, and as safetensors metadata. */
    mkdir(at("hf_big"), 0755);
    write_bytes(at("hf_big/config.json"), t, N);
    write_bytes(at("hf_big/model.safetensors"), "\x02\0\0\0\0\0\0\0{}", 10);
    test_begin("an 8 MB config.json is refused in at most 12 bytes of memory per byte");
    o = run(load_model, at("hf_big"));
    EXPECT(o.status == GPT_ERR_INVALID && strstr(o.msg, "config.json"), "%s", o.msg);
    EXPECT(o.rss_kb < (long)(12 * N / 1024) + REFUSAL_KB, "took %ld KB for %zu KB", o.rss_kb,
           N / 1024);
    test_end();

    mkdir(at("hf_meta"), 0755);
    const char *small = "{\"vocab_size\":8,\"n_positions\":4,\"n_embd\":4,\"n_layer\":1,\"n_head\":1}";
    write_bytes(at("hf_meta/config.json"), small, strlen(small));
    const char pre[] = "{\"__metadata__\":{\"x\":";
    size_t hl = (sizeof pre - 1) + N + 2;
    unsigned char *st = malloc(8 + hl);
    for (int i = 0; i < 8; i++) st[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(st + 8, pre, sizeof pre - 1);
    memcpy(st + 8 + sizeof pre - 1, t, N);
    memcpy(st + 8 + hl - 2, "}}", 2);
    write_bytes(at("hf_meta/model.safetensors"), st, 8 + hl);
    free(st);
    test_begin("8 MB of safetensors metadata is refused in at most 13 bytes of memory per byte");
    o = run(load_model, at("hf_meta"));
    EXPECT(o.status == GPT_ERR_INVALID && strstr(o.msg, "safetensors"), "%s", o.msg);
    /* The file is mapped and read once more than config.json is. */
    EXPECT(o.rss_kb < (long)(13 * N / 1024) + REFUSAL_KB, "took %ld KB for %zu KB", o.rss_kb,
           N / 1024);
    test_end();
    free(t);
}

/* Defect 7: duplicate keys took the first value, Python the last. */
static void test_json_duplicates(void) {
    test_begin("JSON objects with a key twice are refused, at any size and depth");
    const char *bad[] = {"{\"a\":1,\"a\":2}", "{\"x\":{\"b\":1,\"c\":2,\"b\":3}}",
                         "[{\"\":0,\"\":0}]", "{\"\\u0061\":1,\"a\":2}"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        json_value *v = NULL;
        gpt_error err = {0};
        EXPECT(json_parse(bad[k], strlen(bad[k]), &v, &err) == GPT_ERR_INVALID &&
                   strstr(err.msg, "twice"),
               "%s: %s", bad[k], err.msg);
        json_free(v);
    }
    /* 1,000 keys (sorted, not compared pairwise), one repeated. */
    char *big = malloc(20000), *p = big;
    p += sprintf(p, "{");
    for (int i = 0; i < 1000; i++) p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i == 999 ? 3 : i, i);
    p += sprintf(p, "}");
    json_value *v = NULL;
    gpt_error err = {0};
    EXPECT(json_parse(big, (size_t)(p - big), &v, &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "\"k3\" appears twice"),
           "%s", err.msg);
    json_free(v);
    free(big);
    const char *good = "{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":3},{\"a\":4}]}";
    v = NULL;
    EXPECT(json_parse(good, strlen(good), &v, &err) == 0, "the same key in different objects: %s",
           err.msg);
    if (v) {
        EXPECT(json_get(v, "a")->number == 1 && json_get(json_get(v, "b"), "a")->number == 2 &&
                   json_get(&json_get(v, "c")->items[1], "a")->number == 4,
               "values");
    }
    json_free(v);
    test_end();

    test_begin("a config.json with a field twice is refused");
    mkdir(at("hf_dup"), 0755);
    const char *cfg = "{\"n_layer\":1,\"n_layer\":2}";
    write_bytes(at("hf_dup/config.json"), cfg, strlen(cfg));
    write_bytes(at("hf_dup/model.safetensors"), "\x02\0\0\0\0\0\0\0{}", 10);
    outcome o = run(load_model, at("hf_dup"));
    EXPECT(o.status == GPT_ERR_INVALID && strstr(o.msg, "twice"), "%s", o.msg);
    test_end();
}

/* Issue 13, smaller: vocab_size INT_MAX said "padded_vocab (0) must be at
 * least vocab_size". */
static void test_vocab_int_max(void) {
    test_begin("vocab_size INT_MAX is refused as too large, not as a padded_vocab of 0");
    gpt_config c = CFG;
    c.vocab_size = 2147483647;
    c.padded_vocab = 0;
    gpt_config_resolve(&c);
    gpt_error err = {0};
    EXPECT(gpt_config_validate(&c, &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "vocab_size (2147483647) is too large") &&
               !strstr(err.msg, "padded_vocab (0)"),
           "%s", err.msg);
    mkdir(at("hf_vocab"), 0755);
    const char *cfg = "{\"vocab_size\":2147483647,\"n_positions\":4,\"n_embd\":4,\"n_layer\":1,"
                      "\"n_head\":1}";
    write_bytes(at("hf_vocab/config.json"), cfg, strlen(cfg));
    write_bytes(at("hf_vocab/model.safetensors"), "\x02\0\0\0\0\0\0\0{}", 10);
    outcome o = run(load_model, at("hf_vocab"));
    EXPECT(o.status == GPT_ERR_INVALID && strstr(o.msg, "vocab_size (2147483647) is too large"),
           "%s", o.msg);
    test_end();
}

/* A tokenizer file whose 68,352 merges (8 bytes each in the file) make
 * tokens of 256 MiB together: 256 tokens of each length 2, 4, ..., 2,048
 * (each the previous one joined with itself), then all 65,536 pairs of
 * the 2,048-byte ones. */
static void test_tokenizer_amplification(void) {
    const uint32_t levels = 11, M = 256 * levels + 65536;
    size_t n = 32 + 1024 + (size_t)M * 8 + 4;
    unsigned char *d = calloc(1, n), *m = d + 32 + 1024;
    memcpy(d, "GPTVOCAB", 8);
    put32(d + 8, 1), put32(d + 12, 1), put32(d + 16, 256 + M), put32(d + 20, M);
    for (uint32_t b = 0; b < 256; b++) put32(d + 32 + 4 * b, b);
    uint32_t r = 0;
    for (uint32_t l = 1; l <= levels; l++)
        for (uint32_t x = 0; x < 256; x++, r++) {
            uint32_t prev = l == 1 ? x : 256 + (l - 2) * 256 + x;
            put32(m + 8 * r, prev), put32(m + 8 * r + 4, prev);
        }
    for (uint32_t i = 0; i < 256; i++)
        for (uint32_t j = 0; j < 256; j++, r++)
            put32(m + 8 * r, 256 + (levels - 1) * 256 + i),
                put32(m + 8 * r + 4, 256 + (levels - 1) * 256 + j);
    put32(d + n - 4, gpt_crc32(0, d, n - 4));
    write_bytes(at("long.tok"), d, n);
    free(d);
    test_begin("a %zu KB tokenizer file whose tokens would take 257 MB is refused in little memory",
               n / 1024);
    outcome o = run(open_tokenizer, at("long.tok"));
    EXPECT(o.status == GPT_ERR_INVALID && strstr(o.msg, "bytes together"), "status %d: %s",
           o.status, o.msg);
    EXPECT(o.rss_kb < REFUSAL_KB, "took %ld KB", o.rss_kb);
    test_end();
}

/* A folder at the temporary name of arg, then an atomic open and the
 * abort every caller makes on failure (it freed the paths a second time). */
static int open_blocked(void *arg, gpt_error *err) {
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", (const char *)arg, (long)getpid());
    mkdir(tmp, 0755);
    gpt_atomic_file af;
    int rc = gpt_atomic_open(&af, (const char *)arg, err);
    gpt_atomic_abort(&af);
    gpt_atomic_abort(&af);
    rmdir(tmp);
    return rc;
}

/* Defects 2 and 5: the temporary name taken by a folder (double free) or
 * a symbolic link (written through). */
static void test_temporaries(const char *ckpt) {
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", at("out.ckpt"), (long)getpid());

    test_begin("a folder at the temporary name: the save fails with a message, no double free");
    /* The child's pid names the temporary: it makes the folder itself. */
    outcome o = run(open_blocked, at("out.ckpt"));
    EXPECT(!o.signaled && o.status == GPT_ERR_IO && strstr(o.msg, "in the way"),
           "status %d, signal %d: %s", o.status, o.signaled, o.msg);
    test_end();
    gpt_atomic_file af;
    gpt_error err = {0};
    int rc;

    test_begin("a symbolic link at the temporary name is not written through");
    write_bytes(at("victim"), "precious", 8);
    EXPECT(symlink(at("victim"), tmp) == 0, "symlink: %s", strerror(errno));
    umask(022);
    rc = gpt_atomic_open(&af, at("out.ckpt"), &err);
    EXPECT(rc == 0, "%s", err.msg);
    if (!rc) {
        gpt_atomic_write(&af, "new", 3, &err);
        EXPECT(gpt_atomic_commit(&af, &err) == 0, "%s", err.msg);
    }
    size_t n;
    char *v = read_all(at("victim"), &n);
    EXPECT(n == 8 && !memcmp(v, "precious", 8), "the link's target was changed");
    free(v);
    struct stat st;
    EXPECT(lstat(at("out.ckpt"), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0644,
           "the output is a regular file with mode 0644 (mode %o)", (unsigned)st.st_mode & 0777);
    EXPECT(access(tmp, F_OK) != 0, "the temporary is gone");
    test_end();

    test_begin("stale temporaries of dead processes are removed, a live one's kept");
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[300], live[300];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", at("s.bin"), (long)dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", at("s.bin"), (long)getppid());
    write_bytes(stale, "old", 3);
    write_bytes(live, "busy", 4);
    int ids[3] = {1, 2, 3};
    EXPECT(gpt_shard_write(at("s.bin"), ids, 3, 10, &err) == 0, "%s", err.msg);
    EXPECT(access(stale, F_OK) != 0, "a shard's stale temporary was left");
    EXPECT(access(live, F_OK) == 0, "a live process's temporary was removed");
    unlink(live);
    snprintf(stale, sizeof stale, "%s.tmp.%ld", at("tok.bin"), (long)dead);
    write_bytes(stale, "old", 3);
    gpt_tokenizer *t = NULL;
    EXPECT(gpt_tokenizer_open(&t, "bytes", &err) == 0, "%s", err.msg);
    EXPECT(t && gpt_tokenizer_save(t, at("tok.bin"), &err) == 0, "%s", err.msg);
    gpt_tokenizer_free(t);
    EXPECT(access(stale, F_OK) != 0, "a tokenizer file's stale temporary was left");
    snprintf(stale, sizeof stale, "%s.tmp.%ld", ckpt, (long)dead);
    write_bytes(stale, "old", 3);
    o = run(make_checkpoint, (void *)ckpt);
    EXPECT(o.status == 0, "%s", o.msg);
    EXPECT(access(stale, F_OK) != 0, "a checkpoint's stale temporary was left");
    test_end();

    test_begin("an output path that is a link, a FIFO or a folder is refused, the target untouched");
    symlink(at("victim"), at("link.ckpt"));
    const char *outs[] = {at("link.ckpt"), at("fifo"), at("hf_big")};
    const char *kind[] = {"symbolic link", "FIFO", "directory"};
    for (int k = 0; k < 3; k++) {
        rc = gpt_atomic_open(&af, outs[k], &err);
        EXPECT(rc == GPT_ERR_INVALID && strstr(err.msg, kind[k]), "%s: rc %d: %s", outs[k], rc,
               err.msg);
        if (!rc) gpt_atomic_abort(&af);
    }
    v = read_all(at("victim"), &n);
    EXPECT(n == 8 && !memcmp(v, "precious", 8), "the link's target was changed");
    free(v);
    EXPECT(lstat(at("link.ckpt"), &st) == 0 && S_ISLNK(st.st_mode), "the link is still a link");
    test_end();
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x), free(y);
    return same;
}

/* Converts a model with seed `seed` into dir, failing every write after
 * GPT_TEST_FAIL_WRITE_AFTER-style budget `fail_after` (-1: none). */
typedef struct {
    const char *dir;
    uint64_t seed;
    long long fail_after;
} convert_job;

static int convert(void *arg, gpt_error *err) {
    const convert_job *j = arg;
    gpt_runtime rt = {.device = "cpu"};
    gpt_model *m = NULL;
    int rc = gpt_model_create(&m, &CFG, &rt, j->seed, err);
    gpt_test_fail_write_after = j->fail_after;
    if (!rc) rc = gpt_model_save_hf(m, j->dir, err);
    gpt_test_fail_write_after = -1;
    gpt_model_free(m);
    return rc;
}

/* Defect 6: convert wrote model.safetensors, then config.json; a failure
 * in the second left new weights beside the old config. */
static void test_convert_atomic(void) {
    convert_job j = {at("hf_out"), 1, -1};
    outcome o = run(convert, &j);
    EXPECT(o.status == 0, "%s", o.msg);
    mkdir(at("hf_keep"), 0755);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/model.safetensors' '%s/'", at("hf_out"),
             at("hf_out"), at("hf_keep"));
    if (system(cmd)) printf("cannot copy the pair\n");
    struct stat st;
    stat(at("hf_out/model.safetensors"), &st);
    /* A different model (seed 2): the weights differ, the config is the
     * same length. Fail in the weights, then at config.json's first byte. */
    const long long fails[] = {100, (long long)st.st_size, (long long)st.st_size + 1};
    for (int k = 0; k < 3; k++) {
        test_begin("convert failing after %lld bytes (%s) leaves the old pair whole", fails[k],
                   fails[k] < st.st_size ? "in the weights" : "in config.json");
        convert_job f = {at("hf_out"), 2, fails[k]};
        o = run(convert, &f);
        EXPECT(o.status == GPT_ERR_IO && strstr(o.msg, "No space left"), "status %d: %s",
               o.status, o.msg);
        EXPECT(same_bytes(at("hf_out/model.safetensors"), at("hf_keep/model.safetensors")),
               "model.safetensors changed");
        EXPECT(same_bytes(at("hf_out/config.json"), at("hf_keep/config.json")),
               "config.json changed");
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", at("hf_out"));
        EXPECT(system(cmd) != 0, "a temporary file was left in the folder");
        o = run(load_model, at("hf_out"));
        EXPECT(o.status == 0, "the old pair no longer loads: %s", o.msg);
        test_end();
    }
    test_begin("convert without a failure replaces both files");
    convert_job ok = {at("hf_out"), 2, -1};
    o = run(convert, &ok);
    EXPECT(o.status == 0, "%s", o.msg);
    EXPECT(!same_bytes(at("hf_out/model.safetensors"), at("hf_keep/model.safetensors")),
           "the weights did not change");
    test_end();
}

int main(void) {
    (void)test_max_rel_err;
    (void)test_rel_l2;
    snprintf(dir, sizeof dir, "/tmp/gpt-test-hostile-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    if (mkfifo(at("fifo"), 0644)) {
        printf("mkfifo: %s\n", strerror(errno));
        return 1;
    }
    idle_rss_kb = run_child(idle, NULL).rss_kb;
    char ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s", at("small.ckpt"));
    outcome o = run_child(make_checkpoint, ckpt);
    if (o.status) {
        printf("cannot make a checkpoint: %s\n", o.msg);
        return 1;
    }
    test_header_sizes(ckpt);
    test_tokenizer_name(ckpt);
    test_special_files();
    test_json_memory();
    test_json_duplicates();
    test_tokenizer_amplification();
    test_vocab_int_max();
    test_temporaries(ckpt);
    test_convert_atomic();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) printf("cannot remove %s\n", dir);
    return test_summary();
}
