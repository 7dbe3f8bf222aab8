/*
 * fuzz_train_files.c - libFuzzer target for gpt train's file handling, as
 * fuzz_train_args drives its flags: the output folder (tools/train_out.c),
 * metrics.jsonl on a new and a resumed run, the loss plot (tools/plot.c)
 * and the checkpoint save, in a folder the input fills with hostile things.
 *
 * Input: byte 0 picks what the output folder is (a folder, a missing one,
 * a regular file, a link to a folder, a path under a file); bytes 1..8
 * each pick what sits at one of eight names in it (nothing, a file with
 * bytes from the input, a folder, a link to a file outside, a dangling
 * link, a FIFO): the three outputs, the temporaries of this process's pid
 * and of a dead process's. Byte 9 and 10: a new run or a resume, and the
 * checkpoint's step. The rest: metrics.jsonl's old contents, then the loss
 * values for the plot (any doubles, NaN and inf included).
 *
 * Checks: nothing hangs (a FIFO is never opened); a refusal is one line
 * with GPT_ERR_INVALID or GPT_ERR_IO; nothing outside the output folder
 * changes (a file there, the target of the links, the list of names
 * beside the folder); after a run that worked, the three outputs are
 * regular files, the checkpoint loads, metrics.jsonl holds the old rows up
 * to the checkpoint's step (a resume) or none (a new run) followed by the
 * new ones, and no temporary of this process is left.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpt.h"
#include "plot.h"
#include "train_out.h"
#include "../src/tools_internal.h"

static char root[256], outside[300];
static long dead_pid;
static gpt_model *model;

static void check(int ok, const char *what, const char *detail) {
    if (!ok) {
        fprintf(stderr, "fuzz_train_files: %s (%s)\n", what, detail ? detail : "");
        abort();
    }
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    check(f && (n == 0 || fwrite(d, 1, n, f) == n) && fclose(f) == 0, "cannot write", path);
}

/* The names in root beside the output folder, as one string. */
static void listing(char *buf, size_t cap) {
    buf[0] = 0;
    DIR *d = opendir(root);
    struct dirent *e;
    size_t o = 0;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, "out") && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s,", e->d_name);
    if (d) closedir(d);
}

static void init(void) {
    snprintf(root, sizeof root, "%s/fuzz_train_files.%ld",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    rm_rf(root);
    check(mkdir(root, 0755) == 0, "cannot make the scratch folder", root);
    snprintf(outside, sizeof outside, "%s/outside.txt", root);
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    dead_pid = (long)p;
    gpt_runtime rt = {"cpu", GPT_PREC_FP32, 1, 0, 0, 0};
    gpt_config cfg = {16, 0, 4, 1, 1, 4, 4, 0};
    gpt_error err;
    check(gpt_model_create(&model, &cfg, &rt, 1, &err) == 0, "cannot make a model", err.msg);
}

/* Puts thing `kind` at path: 0 nothing, 1 a file of `d`, 2 a folder, 3 a
 * link to the outside file, 4 a dangling link, 5 a FIFO. */
static void place(const char *path, int kind, const unsigned char *d, size_t n) {
    switch (kind % 6) {
    case 1: write_file(path, d, n); break;
    case 2: mkdir(path, 0755); break;
    case 3: symlink(outside, path); break;
    case 4: symlink("/nonexistent/gpt-fuzz", path); break;
    case 5: mkfifo(path, 0644); break;
    default: break;
    }
}

static int is_regular_kind(int kind) { return kind % 6 == 1; }

static int is_regular(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *slurp(const char *p, size_t *n) {
    char *d = NULL;
    gpt_error err;
    return gpt_read_file(p, 0, &d, n, &err) ? NULL : d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!root[0]) init();
    if (size < 11) return 0;
    char out[300], path[400], before[4096], after[4096];
    snprintf(out, sizeof out, "%s/out", root);
    rm_rf(out);
    write_file(outside, "outside", 7);
    /* The rest of the input: metrics.jsonl's old bytes up to a 0xFF, then
     * the plot's values. */
    const unsigned char *rest = data + 11;
    size_t rn = size - 11, mlen = 0;
    while (mlen < rn && rest[mlen] != 0xFF) mlen++;
    const unsigned char *vals = rest + (mlen < rn ? mlen + 1 : mlen);
    size_t nv = (size_t)(data + size - vals) / 8;

    const char *dir = out;
    char sub[320];
    switch (data[0] % 5) {
    case 0: mkdir(out, 0755); break;
    case 1: break; /* made by train_out_open */
    case 2: write_file(out, "x", 1); break;
    case 3: {
        char real[300];
        snprintf(real, sizeof real, "%s/real", root);
        rm_rf(real);
        mkdir(real, 0755);
        symlink(real, out);
        break;
    }
    default:
        write_file(out, "x", 1);
        snprintf(sub, sizeof sub, "%s/sub", out);
        dir = sub;
    }
    struct stat st;
    int is_dir = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) {
        const char *names[8] = {"model.ckpt", "metrics.jsonl", "loss.svg", NULL, NULL, NULL, NULL, NULL};
        char tmpn[5][64];
        snprintf(tmpn[0], 64, "model.ckpt.tmp.%ld", (long)getpid());
        snprintf(tmpn[1], 64, "loss.svg.tmp.%ld", (long)getpid());
        snprintf(tmpn[2], 64, "metrics.jsonl.tmp.%ld", (long)getpid());
        snprintf(tmpn[3], 64, "model.ckpt.tmp.%ld", dead_pid);
        snprintf(tmpn[4], 64, "metrics.jsonl.tmp.%ld", dead_pid);
        for (int i = 0; i < 5; i++) names[3 + i] = tmpn[i];
        for (int i = 0; i < 8; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            place(path, data[1 + i], rest, mlen);
        }
    }
    listing(before, sizeof before);
    int resume = data[9] & 1, step = data[10];

    train_out o;
    gpt_error err = {0};
    int rc = train_out_open(&o, dir, &err);
    if (!rc && resume) rc = train_out_resume_metrics(&o, step, &err);
    int rows = 0, plot_ok = 0;
    if (!rc) {
        for (int s = step + 1; s <= step + 3; s++, rows++)
            fprintf(o.metrics_f, "{\"step\":%d,\"loss\":1.5}\n", s);
        double *x = malloc((nv ? nv : 1) * sizeof *x), *y = malloc((nv ? nv : 1) * sizeof *y);
        check(x && y, "out of memory", NULL);
        for (size_t i = 0; i < nv; i++) {
            x[i] = (double)i;
            memcpy(&y[i], vals + 8 * i, 8);
        }
        plot_series ps[1] = {{"train loss", "#1f77b4", x, y, nv}};
        gpt_error perr = {0};
        /* The plot may fail (a folder at its temporary name): gpt train
         * warns and goes on; the message is still one line. */
        if (plot_svg(o.svg, "loss", "step", "loss", ps, 1, &perr))
            check(perr.msg[0] && !strchr(perr.msg, '\n'), "a plot failure is not one line",
                  perr.msg);
        else plot_ok = 1;
        free(x);
        free(y);
        rc = gpt_checkpoint_save(model, o.ckpt, 0, NULL, &err);
        if (!rc) rc = train_out_metrics_commit(&o, &err);
    }
    if (rc) {
        check(rc == GPT_ERR_INVALID || rc == GPT_ERR_IO, "refused without INVALID or IO", err.msg);
        check(err.msg[0] && !strchr(err.msg, '\n'), "a refusal is not one line", err.msg);
    }
    char *save_dir = strdup(dir), *metrics = o.metrics ? strdup(o.metrics) : NULL;
    int ok = !rc;
    train_out_close(&o);

    size_t n;
    char *d = slurp(outside, &n);
    check(d && n == 7 && !memcmp(d, "outside", 7), "a file outside the folder changed", NULL);
    free(d);
    listing(after, sizeof after);
    check(!strcmp(before, after), "names beside the output folder changed", after);
    if (ok) {
        const char *outs[] = {"model.ckpt", "metrics.jsonl", "loss.svg"};
        for (int i = 0; i < 2 + plot_ok; i++) {
            snprintf(path, sizeof path, "%s/%s", save_dir, outs[i]);
            check(is_regular(path), "an output is not a regular file", path);
        }
        snprintf(path, sizeof path, "%s/model.ckpt", save_dir);
        gpt_model *m = NULL;
        gpt_runtime rt = {"cpu", GPT_PREC_FP32, 1, 0, 0, 0};
        check(gpt_model_load(&m, path, &rt, &err) == 0, "the checkpoint does not load", err.msg);
        gpt_model_free(m);
        /* metrics.jsonl: on a resume, the old file's complete rows (lines
         * of at most 4,096 bytes) up to the step, in order; then the three
         * new rows. */
        char *md = slurp(metrics, &n);
        check(md != NULL, "metrics.jsonl unreadable", metrics);
        char *want = malloc(mlen + 256);
        size_t wn = 0;
        int had_old = resume && is_dir && is_regular_kind(data[2]);
        for (size_t a = 0; had_old && a < mlen;) {
            const unsigned char *nl = memchr(rest + a, '\n', mlen - a);
            if (!nl) break;
            size_t len = (size_t)(nl - (rest + a)) + 1;
            long s2 = train_out_row_step((const char *)rest + a, len);
            if (len <= 4096 && s2 >= 0 && s2 <= step) memcpy(want + wn, rest + a, len), wn += len;
            a += len;
        }
        for (int s2 = step + 1; s2 <= step + 3; s2++)
            wn += (size_t)sprintf(want + wn, "{\"step\":%d,\"loss\":1.5}\n", s2);
        check(n == wn && !memcmp(md, want, n), "metrics.jsonl is not the old rows then the new",
              NULL);
        free(want);
        free(md);
        const char *ours[] = {"model.ckpt", "loss.svg", "metrics.jsonl"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s.tmp.%ld", save_dir, ours[i], (long)getpid());
            check(!is_regular(path), "a temporary of this process was left", path);
        }
    }
    free(save_dir);
    free(metrics);
    rm_rf(out);
    return 0;
}
