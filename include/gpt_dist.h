/*
 * gpt_dist.h - data-parallel training over several processes (ranks): one
 * per GPU with NCCL, or one per CPU machine (or socket) with MPI.
 *
 * Every rank builds the same model, calls gpt_model_set_dist before
 * gpt_train_init, and then feeds gpt_train_step its own rows of each
 * global batch (gpt_data_train_batch_part): the gradients are summed over
 * the ranks during the backward pass, and every rank applies the same
 * update. With ZeRO stage 1 the AdamW state (moments and fp32 master
 * weights) is split across the ranks instead of repeated on each.
 * See docs/DISTRIBUTED.md.
 *
 * Conventions as in gpt.h. A job is started by mpirun/srun (ranks from
 * MPI), by `gpt train --gpus N` (ranks from the GPT_DIST_* environment it
 * sets), or as one plain process (rank 0 of 1).
 */
#ifndef GPT_DIST_H
#define GPT_DIST_H

#include "gpt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_dist gpt_dist;

/* Joins the job this process was started in. timeout_s bounds every wait
 * for the other ranks (0: 600 s): a rank that dies or hangs makes the
 * others fail with a message instead of waiting forever. Under MPI this
 * calls MPI_Init (unless the program already has) and gpt_dist_free calls
 * MPI_Finalize. */
int gpt_dist_init(gpt_dist **out, double timeout_s, gpt_error *err);
void gpt_dist_free(gpt_dist *d);
/* Marks the job as failed on this rank, before freeing the model and d:
 * what is freed after is released without the goodbyes that wait for the
 * other ranks (MPI_Finalize, NCCL's finalize), which could wait forever
 * for ranks that wait for this one. The launcher (mpirun, gpt train
 * --gpus) stops the others when this process exits non-zero. */
void gpt_dist_fail(gpt_dist *d);
int gpt_dist_rank(const gpt_dist *d);
int gpt_dist_size(const gpt_dist *d);
/* Rank among the ranks of this machine: the GPU a rank uses. */
int gpt_dist_local_rank(const gpt_dist *d);
/* How the job was started: "mpi", "gpus" (gpt train --gpus) or "none". */
const char *gpt_dist_launcher(const gpt_dist *d);
/* 1 if this build can run collectives with "mpi" or "nccl". */
int gpt_dist_available(const char *what);

/* Environment the --gpus launcher gives each rank it starts. */
#define GPT_DIST_ENV_RANK "GPT_DIST_RANK"
#define GPT_DIST_ENV_SIZE "GPT_DIST_SIZE"
#define GPT_DIST_ENV_LOCAL_RANK "GPT_DIST_LOCAL_RANK"
#define GPT_DIST_ENV_ID_FD "GPT_DIST_ID_FD" /* pipe: rank 0 writes NCCL's id */

/* Trains m data-parallel over d's ranks: NCCL on the CUDA backend, MPI on
 * the CPU backend. Call after building or loading the model and before
 * gpt_train_init; every rank then starts from rank 0's parameters.
 * zero = 1: ZeRO stage 1 (AdamW moments and fp32 master weights split
 * across ranks). Checkpoints: gpt_checkpoint_save becomes collective (every
 * rank calls it; rank 0 writes the one file, which any number of ranks can
 * resume from); gpt_model_get_tensor too under ZeRO. A job of one process
 * started without a launcher needs no call. */
int gpt_model_set_dist(gpt_model *m, gpt_dist *d, int zero, gpt_error *err);
/* Ends data parallelism; every rank calls it at the same point. The
 * communicator is released and the training state (gradients, moments) is
 * freed; the model keeps its full parameters (ZeRO's master weights are
 * gathered back) and can generate, save weights or train again alone. */
int gpt_model_end_dist(gpt_model *m, gpt_error *err);
/* "nccl", "mpi", or "none" when the model trains alone. */
const char *gpt_model_comm(const gpt_model *m);
/* x (n doubles) = the sum (op 0) or the maximum (op 1) over the ranks,
 * on every rank; waits. Without a communicator x is left as it is. */
int gpt_model_allreduce(gpt_model *m, double *x, int n, int op, gpt_error *err);
/* Bytes of AdamW state (moments, and fp32 master weights where the
 * parameters are bf16) that this rank holds after gpt_train_init. */
size_t gpt_model_optimizer_bytes(const gpt_model *m);

#ifdef __cplusplus
}
#endif
#endif
