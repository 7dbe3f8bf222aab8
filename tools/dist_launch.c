/*
 * dist_launch.c - gpt train --gpus N: one machine, N GPUs, no MPI. Starts N
 * copies of this command, rank r on GPU r, hands NCCL's id from rank 0 to
 * the others through a pipe, and watches them: when one fails, the others
 * are stopped (SIGTERM, then SIGKILL) and the launcher says which failed.
 */
#define _POSIX_C_SOURCE 200809L
#include "dist_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gpt_dist.h"

enum { GRACE_S = 10 }; /* between SIGTERM and SIGKILL */

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

static void stop_all(const pid_t *pid, int n, int sig) {
    for (int r = 0; r < n; r++)
        if (pid[r] > 0) kill(pid[r], sig);
}

static void describe(char *buf, size_t len, int status) {
    if (WIFEXITED(status)) snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                                           strsignal(WTERMSIG(status)));
    else snprintf(buf, len, "ended (status %d)", status);
}

/* Starts rank r: the pipe end it needs (write for rank 0, read for the
 * others) stays open across exec, the rest closes. */
static pid_t start_rank(int r, int n, const int fds[2], char **argv) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int keep = r == 0 ? fds[1] : fds[0];
    close(r == 0 ? fds[0] : fds[1]);
    int fl = fcntl(keep, F_GETFD);
    if (fl >= 0) fcntl(keep, F_SETFD, fl & ~FD_CLOEXEC);
    char v[32];
    snprintf(v, sizeof v, "%d", r);
    setenv(GPT_DIST_ENV_RANK, v, 1);
    setenv(GPT_DIST_ENV_LOCAL_RANK, v, 1);
    snprintf(v, sizeof v, "%d", n);
    setenv(GPT_DIST_ENV_SIZE, v, 1);
    snprintf(v, sizeof v, "%d", keep);
    setenv(GPT_DIST_ENV_ID_FD, v, 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "gpt train: cannot start rank %d: %s\n", r, strerror(errno));
    _exit(EXIT_RUNTIME);
}

int dist_launch(int argc, char **argv, int n) {
    /* argv[0] is "train": the ranks run "gpt train ..." again, with the
     * same flags. */
    char **child = calloc((size_t)argc + 2, sizeof *child);
    pid_t *pid = calloc((size_t)n, sizeof *pid);
    int fds[2];
    if (!child || !pid || pipe(fds) != 0) {
        fprintf(stderr, "gpt train: cannot start the ranks: %s\n", strerror(errno));
        free(child);
        free(pid);
        return EXIT_RUNTIME;
    }
    child[0] = "gpt";
    for (int i = 0; i < argc; i++) child[i + 1] = argv[i];
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    /* Ctrl-C reaches the ranks through the terminal's process group; a
     * signal sent to the launcher alone is passed on. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fflush(NULL);
    int started = 0;
    for (; started < n; started++)
        if ((pid[started] = start_rank(started, n, fds, child)) < 0) break;
    close(fds[0]);
    close(fds[1]);
    int code = EXIT_OK, left = started, failed = -1;
    if (started < n) {
        fprintf(stderr, "gpt train: cannot start rank %d: %s; stopping the others\n", started,
                strerror(errno));
        code = EXIT_RUNTIME;
        failed = started;
        stop_all(pid, started, SIGTERM);
    }
    time_t kill_at = failed >= 0 ? time(NULL) + GRACE_S : 0;
    while (left > 0) {
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w < 0 && errno != EINTR) break;
        if (w <= 0) {
            if (got_signal == SIGTERM) {
                stop_all(pid, n, SIGTERM);
                got_signal = 0;
            }
            if (kill_at && time(NULL) >= kill_at) {
                stop_all(pid, n, SIGKILL);
                kill_at = 0;
            }
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        int r = 0;
        while (r < n && pid[r] != w) r++;
        if (r == n) continue;
        pid[r] = 0;
        left--;
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failed < 0) {
            char how[96];
            describe(how, sizeof how, status);
            failed = r;
            code = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_RUNTIME;
            if (left > 0) {
                fprintf(stderr, "gpt train: rank %d %s: stopping the other ranks\n", r, how);
                stop_all(pid, n, SIGTERM);
                kill_at = time(NULL) + GRACE_S;
            } else {
                fprintf(stderr, "gpt train: rank %d %s\n", r, how);
            }
        }
    }
    free(child);
    free(pid);
    return code;
}
