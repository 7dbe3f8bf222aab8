/*
 * dist_launch.h - gpt train --gpus N: starts N ranks of the same command
 * on one machine (no MPI) and stops them all when one fails.
 */
#ifndef GPT_DIST_LAUNCH_H
#define GPT_DIST_LAUNCH_H

/* argv as gpt_cmd_train got it (argv[0] "train"). Returns the exit code:
 * 0 if every rank succeeded, else the first failing rank's (1 if it was
 * killed by a signal). */
int dist_launch(int argc, char **argv, int n);

#endif
