/*
 * test_dist_pipe.c - the bootstrap of jobs started by gpt train --gpus
 * (no MPI): ranks from the GPT_DIST_* environment, and NCCL's id carried
 * from rank 0 to the others through the launcher's pipe. Real processes:
 * this program starts copies of itself with the environment the launcher
 * gives (tools/dist_launch.c), as rank 0 with the write end and the others
 * with the read end.
 *  - 4 ranks: every rank gets rank 0's 128 bytes, whole;
 *  - rank 0 ends without sending: the others fail at once with a message
 *    (the pipe's end), not after the timeout, and not in a hang;
 *  - rank 0 alive but silent: the others fail after the timeout;
 *  - bad environments are refused with a message.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "dist/comm.h"
#include "gpt_dist.h"
#include "util.h"

enum { IDLEN = 128 };

/* A rank: mode 0 sends (rank 0) or checks the id; mode 1: rank 0 exits
 * without sending; mode 2: rank 0 sleeps past the others' timeout. Exit 0
 * when the rank saw what the mode expects. */
static int rank_main(int mode) {
    gpt_error err = {0};
    gpt_dist *d = NULL;
    if (gpt_dist_init(&d, mode == 2 ? 1 : 30, &err)) {
        fprintf(stderr, "init: %s\n", err.msg);
        return 10;
    }
    unsigned char id[IDLEN];
    for (int i = 0; i < IDLEN; i++) id[i] = d->rank == 0 ? (unsigned char)(i * 7 + 3) : 0;
    if (d->rank == 0 && mode == 1) _exit(0);
    if (d->rank == 0 && mode == 2) {
        sleep(3);
        _exit(0);
    }
    double t0 = gpt_now();
    int rc = dist_bootstrap_bcast(d, id, IDLEN, &err);
    double t = gpt_now() - t0;
    int ok;
    if (mode == 0) {
        ok = rc == 0;
        for (int i = 0; i < IDLEN; i++) ok &= id[i] == (unsigned char)(i * 7 + 3);
    } else if (mode == 1) {
        ok = rc == GPT_ERR_RUNTIME && strstr(err.msg, "rank 0 ended before it sent") && t < 10;
    } else {
        ok = rc == GPT_ERR_RUNTIME && strstr(err.msg, "no word from rank 0 within 1 s") && t >= 0.9;
    }
    if (!ok) fprintf(stderr, "rank %d mode %d: rc %d after %.2f s: %s\n", d->rank, mode, rc, t, err.msg);
    gpt_dist_free(d);
    return ok ? 0 : 1;
}

/* Starts n ranks in the given mode; returns how many ended with exit 0. */
static int job(int n, int mode) {
    int fds[2];
    if (pipe(fds)) return 0;
    pid_t pid[8];
    for (int r = 0; r < n; r++) {
        pid[r] = fork();
        if (pid[r] == 0) {
            close(r == 0 ? fds[0] : fds[1]);
            char v[16];
            snprintf(v, sizeof v, "%d", r);
            setenv(GPT_DIST_ENV_RANK, v, 1);
            setenv(GPT_DIST_ENV_LOCAL_RANK, v, 1);
            snprintf(v, sizeof v, "%d", n);
            setenv(GPT_DIST_ENV_SIZE, v, 1);
            snprintf(v, sizeof v, "%d", r == 0 ? fds[1] : fds[0]);
            setenv(GPT_DIST_ENV_ID_FD, v, 1);
            snprintf(v, sizeof v, "%d", mode);
            execl("/proc/self/exe", "test_dist_pipe", v, (char *)NULL);
            _exit(127);
        }
    }
    close(fds[0]);
    close(fds[1]);
    int good = 0;
    for (int r = 0; r < n; r++) {
        int st;
        waitpid(pid[r], &st, 0);
        good += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return good;
}

static int init_fails(const char *rank, const char *size, const char *fd, const char *want) {
    setenv(GPT_DIST_ENV_RANK, rank, 1);
    setenv(GPT_DIST_ENV_SIZE, size, 1);
    setenv(GPT_DIST_ENV_LOCAL_RANK, "0", 1);
    setenv(GPT_DIST_ENV_ID_FD, fd, 1);
    gpt_dist *d = NULL;
    gpt_error err = {0};
    int rc = gpt_dist_init(&d, 0, &err);
    gpt_dist_free(d);
    unsetenv(GPT_DIST_ENV_RANK);
    return rc == GPT_ERR_INVALID && strstr(err.msg, want);
}

int main(int argc, char **argv) {
    if (getenv(GPT_DIST_ENV_RANK)) return rank_main(argc > 1 ? atoi(argv[1]) : 0);
    signal(SIGPIPE, SIG_IGN);

    test_begin("4 ranks: each gets rank 0's id through the pipe");
    EXPECT(job(4, 0) == 4, "not every rank got the id");
    test_end();

    test_begin("rank 0 ends without sending: the others fail at once with a message");
    double t0 = gpt_now();
    EXPECT(job(3, 1) == 3, "see the ranks' messages above");
    EXPECT(gpt_now() - t0 < 10, "took %.1f s", gpt_now() - t0);
    test_end();

    test_begin("rank 0 silent: the others fail after their 1 s timeout");
    EXPECT(job(2, 2) == 2, "see the ranks' messages above");
    test_end();

    test_begin("bad GPT_DIST_* environments are refused");
    EXPECT(init_fails("2", "2", "0", "0 <= rank < size"), "rank = size");
    EXPECT(init_fails("0", "x", "0", "0 <= rank < size"), "size not a number");
    EXPECT(init_fails("0", "2", "987", "not an open file descriptor"), "closed descriptor");
    test_end();

    test_begin("a plain process is rank 0 of 1");
    gpt_dist *d = NULL;
    gpt_error err = {0};
    EXPECT(gpt_dist_init(&d, 0, &err) == 0 && gpt_dist_rank(d) == 0 && gpt_dist_size(d) == 1 &&
               !strcmp(gpt_dist_launcher(d), "none"),
           "%s", err.msg);
    gpt_dist_free(d);
    test_end();
    return test_summary();
}
