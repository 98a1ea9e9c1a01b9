/* The training run: data, model, backend and comm wired together; the epoch loop, rank-0
 * evaluation, logs and output files. */
#ifndef DTRAIN_TRAIN_H
#define DTRAIN_TRAIN_H

#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/error.h"

/* Runs the whole job described by cfg on this rank. Collective: every rank calls it. */
int dt_train_run(const dt_config *cfg, dt_comm *comm, dt_error *err);

/* How the run treats output.dir: --resume (from resume_path, or output.dir/checkpoints/latest
 * when NULL) or --overwrite (replace an earlier run's files). */
typedef struct dt_train_options {
    int resume;
    const char *resume_path;
    int overwrite;
} dt_train_options;

int dt_train_run_with(const dt_config *cfg, const dt_train_options *opt, dt_comm *comm,
                      dt_error *err);

#endif
