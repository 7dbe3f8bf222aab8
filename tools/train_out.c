/*
 * train_out.c - gpt train's output folder (see train_out.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "train_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/tools_internal.h"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* mkdir -p. errno is set when it fails. */
static int make_dirs(const char *path) {
    char *p = strdup(path);
    if (!p) return -1;
    int rc = 0;
    for (char *s = p + 1; *s && !rc; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = -1;
            *s = '/';
        }
    if (!rc && mkdir(p, 0777) != 0 && errno != EEXIST) rc = -1;
    free(p);
    return rc;
}

static void said_removed(void *user, const char *tmp) {
    (void)user;
    fprintf(stderr, "gpt train: removed %s, left by an interrupted save\n", tmp);
}

/* The metrics temporary: created, never opened through a link or onto an
 * existing file (one of our own pid's, from a dead process, is removed). */
static int create_metrics_tmp(train_out *o, gpt_error *err) {
    size_t n = strlen(o->metrics) + 32;
    if (!(o->metrics_tmp = malloc(n))) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    snprintf(o->metrics_tmp, n, "%s.tmp.%ld", o->metrics, (long)getpid());
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(o->metrics_tmp, flags, 0644), e = fd < 0 ? errno : 0;
    struct stat st;
    if (e == EEXIST && lstat(o->metrics_tmp, &st) == 0 && !S_ISDIR(st.st_mode) &&
        unlink(o->metrics_tmp) == 0) {
        fd = open(o->metrics_tmp, flags, 0644);
        e = fd < 0 ? errno : 0;
    }
    if (fd >= 0 && !(o->metrics_f = fdopen(fd, "w"))) {
        e = errno;
        close(fd);
        unlink(o->metrics_tmp);
    }
    if (!o->metrics_f) {
        free(o->metrics_tmp);
        o->metrics_tmp = NULL;
        return gpt_fail(err, GPT_ERR_IO, "cannot write in the output folder '%s': %s", o->dir,
                        e == EEXIST ? "a folder is in the way of metrics.jsonl's temporary"
                                    : strerror(e));
    }
    return GPT_OK;
}

int train_out_open(train_out *o, const char *dir, gpt_error *err) {
    memset(o, 0, sizeof *o);
    o->dir = strdup(dir);
    o->ckpt = join(dir, "model.ckpt");
    o->metrics = join(dir, "metrics.jsonl");
    o->svg = join(dir, "loss.svg");
    if (!o->dir || !o->ckpt || !o->metrics || !o->svg)
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    if (make_dirs(dir) != 0) {
        int e = errno;
        return gpt_fail(err, e == EACCES || e == EROFS || e == ENOSPC || e == EIO ? GPT_ERR_IO
                                                                                 : GPT_ERR_INVALID,
                        "cannot create the output folder '%s': %s", dir, strerror(e));
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return gpt_fail(err, GPT_ERR_INVALID, "the output folder '%s' is not a folder", dir);
    const char *outs[] = {o->ckpt, o->metrics, o->svg};
    for (int i = 0; i < 3; i++) {
        int rc = gpt_check_output_path(outs[i], err);
        if (rc) return rc;
    }
    for (int i = 0; i < 3; i++) gpt_atomic_remove_stale(outs[i], said_removed, NULL);
    return create_metrics_tmp(o, err);
}

long train_out_row_step(const char *line, size_t len) {
    static const char head[] = "{\"step\":";
    size_t h = sizeof head - 1, i = h;
    if (len < h + 3 || memcmp(line, head, h) || line[len - 1] != '\n' || line[len - 2] != '}')
        return -1;
    for (size_t k = 0; k + 1 < len; k++) /* JSON escapes control bytes */
        if ((unsigned char)line[k] < 0x20) return -1;
    long step = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9' && i - h < 10)
        step = step * 10 + (line[i++] - '0');
    if (i == h || (line[i] != ',' && line[i] != '}')) return -1;
    return step;
}

int train_out_resume_metrics(train_out *o, int step, gpt_error *err) {
    int fd;
    uint64_t size;
    gpt_error oerr = {0};
    int rc = GPT_OK;
    struct stat st;
    if (lstat(o->metrics, &st) == 0) {
        if ((rc = gpt_open_regular(o->metrics, &fd, &size, &oerr)))
            return gpt_fail(err, rc, "%s", oerr.msg);
        FILE *in = fdopen(fd, "r");
        if (!in) {
            close(fd);
            return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        }
        /* Our rows are short: a line longer than the buffer is not one of
         * them, and is skipped rather than read whole. */
        char line[4096], chunk[65536];
        size_t len = 0, got;
        int too_long = 0, wbad = 0;
        while (!wbad && (got = fread(chunk, 1, sizeof chunk, in)) > 0)
            for (size_t k = 0; k < got && !wbad; k++) {
                if (len < sizeof line) line[len] = chunk[k];
                else too_long = 1;
                len++;
                if (chunk[k] != '\n') continue;
                long s = too_long ? -1 : train_out_row_step(line, len);
                if (s >= 0 && s <= step) wbad = fwrite(line, 1, len, o->metrics_f) != len;
                len = 0;
                too_long = 0;
            }
        int bad = ferror(in);
        fclose(in);
        if (bad) return gpt_fail(err, GPT_ERR_IO, "cannot read '%s'", o->metrics);
        if (wbad)
            return gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", o->metrics_tmp,
                            strerror(errno));
    }
    return train_out_metrics_commit(o, err);
}

int train_out_metrics_commit(train_out *o, gpt_error *err) {
    if (!o->metrics_tmp) return GPT_OK;
    if (fflush(o->metrics_f) != 0 || fsync(fileno(o->metrics_f)) != 0)
        return gpt_fail(err, GPT_ERR_IO, "cannot write '%s': %s", o->metrics, strerror(errno));
    if (rename(o->metrics_tmp, o->metrics) != 0)
        return gpt_fail(err, GPT_ERR_IO, "cannot rename '%s' to '%s': %s", o->metrics_tmp,
                        o->metrics, strerror(errno));
    free(o->metrics_tmp);
    o->metrics_tmp = NULL;
    return GPT_OK;
}

void train_out_close(train_out *o) {
    if (o->metrics_f) fclose(o->metrics_f);
    if (o->metrics_tmp) unlink(o->metrics_tmp);
    free(o->metrics_tmp);
    free(o->dir);
    free(o->ckpt);
    free(o->metrics);
    free(o->svg);
    memset(o, 0, sizeof *o);
}
