/* A watchdog thread per rank: the training thread marks each phase (step, all-reduce,
 * evaluation, checkpoint) as it enters it; when a phase lasts longer than runtime.timeout_s
 * (three times that, at least 300 s, for start-up, the first step, evaluation and checkpoints) the
 * watchdog prints where this rank is stuck and ends the whole job through the comm layer's abort. A
 * rank stopped or hung elsewhere leaves the others waiting inside a collective: their watchdogs end
 * the job. */
#ifndef DTRAIN_TRAIN_WATCHDOG_H
#define DTRAIN_TRAIN_WATCHDOG_H

#include "dtrain/comm.h"
#include "dtrain/error.h"

typedef struct dt_watchdog dt_watchdog;

int dt_watchdog_start(dt_comm *comm, int timeout_s, dt_watchdog **out, dt_error *err);
/* phase: a static string; long_allowance: the first step, evaluation, checkpoint writing. */
void dt_watchdog_mark(dt_watchdog *w, const char *phase, long step, int long_allowance);
void dt_watchdog_stop(dt_watchdog *w);
/* Called on the watchdog's thread before the comm's abort (the device comm's
 * abort_collectives: ncclCommAbort before MPI_Abort). */
void dt_watchdog_set_abort_hook(dt_watchdog *w, void (*hook)(void *user), void *user);

#endif
