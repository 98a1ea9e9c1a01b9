/* The training run: data, model, backend and comm wired together; the epoch loop, rank-0
 * evaluation, logs and output files. */
#ifndef DTRAIN_TRAIN_H
#define DTRAIN_TRAIN_H

#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/error.h"

/* Runs the whole job described by cfg on this rank. Collective: every rank calls it. */
int dt_train_run(const dt_config *cfg, dt_comm *comm, dt_error *err);

#endif
