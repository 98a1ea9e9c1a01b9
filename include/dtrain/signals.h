/* Stop requests and interrupted writes: SIGTERM, SIGINT, SIGHUP and SIGUSR1 only set a flag that
 * the training loop reads at step boundaries (the ranks agree, write a checkpoint and exit 75); a
 * second SIGINT ends the process at once (exit 130) after removing the temporary files that are
 * being written. SIGXFSZ and SIGPIPE are ignored so that a file-size limit or a closed output
 * pipe is a write error, not a kill. */
#ifndef DTRAIN_SIGNALS_H
#define DTRAIN_SIGNALS_H

enum {
    DT_EXIT_STOPPED = 75,     /* stopped by a signal after writing a checkpoint */
    DT_EXIT_INTERRUPTED = 130 /* second SIGINT */
};

/* Installs the handlers (once per process). */
void dt_signals_install(void);

/* Only rank 0 prints what a signal does (once, not once per rank under mpirun). */
void dt_signals_set_rank(int rank);

/* A complete checkpoint exists (written, or resumed from): a second SIGINT says so instead of
 * "no checkpoint written". */
void dt_signals_checkpoint_complete(void);

/* The first stop signal received (SIGTERM, SIGINT, SIGHUP, SIGUSR1), or 0. */
int dt_signals_stop_requested(void);

/* The last training step is done: a stop signal from now on no longer means a stop checkpoint
 * (the run finishes its outputs and exits 0), and the handler says so. */
void dt_signals_training_over(void);

/* "SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", or "" for any other number (async-signal-safe). */
const char *dt_signals_name(int sig);

/* Test hook: behave as if signal sig had arrived. */
void dt_signals_request_stop(int sig);

/* A temporary file or folder being written, removed by the second SIGINT before it exits
 * (a folder only when it is empty by then: its files are registered too). At most a few at a
 * time; the returned slot (or -1 when full) is passed to dt_temp_forget. */
int dt_temp_register(const char *path);
void dt_temp_forget(int slot);

#endif
