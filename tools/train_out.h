/*
 * train_out.h - gpt train's output folder: model.ckpt, metrics.jsonl and
 * loss.svg (issue 13).
 *
 * train_out_open checks the folder before anything is built or read: it is
 * made if missing (mkdir -p), must be a folder, each output there must be
 * a regular file or absent (a link, FIFO or folder is refused, never
 * written through or waited on), and the folder must take a new file: the
 * run's metrics are written to a temporary there from the start
 * (metrics.jsonl.tmp.PID, O_EXCL | O_NOFOLLOW), which is also the test.
 * Temporaries of model.ckpt, loss.svg and metrics.jsonl that interrupted
 * runs left are removed, with a line on stderr for each.
 *
 * metrics.jsonl itself changes only together with a checkpoint: a new run's
 * temporary replaces it at its first checkpoint (train_out_metrics_commit),
 * so a run that fails before it leaves the old metrics beside the old
 * checkpoint; a resumed run copies the old rows up to the checkpoint's step
 * (rows past it came from steps the checkpoint does not hold: a kill after
 * them, before the next save) and replaces the file at once.
 */
#ifndef GPT_TRAIN_OUT_H
#define GPT_TRAIN_OUT_H

#include <stdio.h>

#include "gpt.h"

typedef struct {
    char *dir, *ckpt, *metrics, *svg; /* paths */
    char *metrics_tmp;                /* the metrics temporary, while it is one */
    FILE *metrics_f;                  /* rows are appended here */
} train_out;

/* Checks and prepares dir (see above). GPT_ERR_INVALID for a path that
 * cannot be an output folder (exit 2), GPT_ERR_IO when the system refuses
 * (a read-only folder, a full disk: exit 1); one line in err. */
int train_out_open(train_out *o, const char *dir, gpt_error *err);
/* For a resumed run at step `step`: copies metrics.jsonl's rows up to that
 * step (complete lines of our own form only) into the temporary and makes
 * it metrics.jsonl. A missing metrics.jsonl is an empty one. */
int train_out_resume_metrics(train_out *o, int step, gpt_error *err);
/* After a checkpoint: a new run's metrics replace the old file (once). */
int train_out_metrics_commit(train_out *o, gpt_error *err);
/* Closes; a temporary never committed is removed. */
void train_out_close(train_out *o);

/* The step of one metrics row ({"step":N,...} on one complete line), or
 * -1 when the line is not one of ours. */
long train_out_row_step(const char *line, size_t len);

#endif
