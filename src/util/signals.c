/* Signal handling of include/dtrain/signals.h: flags set from async-signal-safe handlers, and a
 * small fixed table of temporary paths that the immediate exit removes. */
#include "dtrain/signals.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define TEMP_SLOTS 8
#define TEMP_PATH_MAX 4096

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t interrupts;
static volatile sig_atomic_t training_over; /* the last step is done: no stop checkpoint comes */
static volatile sig_atomic_t quiet_rank;    /* a rank other than 0: rank 0 tells the user */
static volatile sig_atomic_t checkpoint_complete; /* checkpoints/latest names a complete one */
static volatile sig_atomic_t stderr_terminal;     /* isatty(2), asked before any signal */
static char temp_paths[TEMP_SLOTS][TEMP_PATH_MAX];
static volatile sig_atomic_t temp_used[TEMP_SLOTS];
static pthread_mutex_t temp_lock = PTHREAD_MUTEX_INITIALIZER; /* writer thread and main thread */

static void write_text(const char *text) {
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

static void on_stop_signal(int sig) {
    if (sig == SIGINT && ++interrupts >= 2) {
        /* files first, folders (registered earlier, so at lower slots) last */
        for (int i = TEMP_SLOTS - 1; i >= 0; i--)
            if (temp_used[i] && unlink(temp_paths[i]) != 0) rmdir(temp_paths[i]);
        if (!quiet_rank)
            write_text(checkpoint_complete
                           ? "\ndtrain: second interrupt: stopped at once; the checkpoint in "
                             "progress, if any, was not written (--resume continues from the "
                             "last complete one, checkpoints/latest)\n"
                           : "\ndtrain: second interrupt: stopped at once, no checkpoint "
                             "written\n");
        _exit(DT_EXIT_INTERRUPTED);
    }
    if (!stop_signal) {
        stop_signal = sig;
        /* Ctrl-C is answered at once, and so is any signal after the last step (no step
         * boundary follows). SIGTERM, SIGHUP and SIGUSR1 are announced by rank 0 at the step
         * boundary, when the checkpoint follows: a launcher that ends a job's ranks sends
         * SIGTERM to ranks blocked in a collective, which never get there. "\r\033[K" on a
         * terminal: the live progress line (stdout) is cleared, not continued. */
        if (!quiet_rank && (sig == SIGINT || training_over)) {
            write_text(stderr_terminal ? "\r\033[K" : "\n");
            write_text("dtrain: ");
            write_text(dt_signals_name(sig));
            if (training_over)
                write_text(" received after the last training step: finishing the run's outputs "
                           "instead (exit 0)");
            else
                write_text(" received: stopping after the current step with a checkpoint");
            write_text(sig == SIGINT ? " (a second Ctrl-C stops at once)\n" : "\n");
        }
    }
}

void dt_signals_install(void) {
    static int installed;
    if (installed) return;
    installed = 1;
    stderr_terminal = isatty(STDERR_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a closed terminal or ssh session */
    signal(SIGXFSZ, SIG_IGN);
    /* output to a closed pipe or session is a write error, not a kill before the checkpoint */
    signal(SIGPIPE, SIG_IGN);
}

void dt_signals_set_rank(int rank) {
    quiet_rank = rank != 0;
}

void dt_signals_checkpoint_complete(void) {
    checkpoint_complete = 1;
}

const char *dt_signals_name(int sig) {
    return sig == SIGTERM   ? "SIGTERM"
           : sig == SIGINT  ? "SIGINT"
           : sig == SIGHUP  ? "SIGHUP"
           : sig == SIGUSR1 ? "SIGUSR1"
                            : "";
}

int dt_signals_stop_requested(void) {
    return stop_signal;
}

void dt_signals_training_over(void) {
    training_over = 1;
}

void dt_signals_request_stop(int sig) {
    if (!stop_signal) stop_signal = sig;
}

int dt_temp_register(const char *path) {
    size_t n = strlen(path);
    if (n >= TEMP_PATH_MAX) return -1;
    int slot = -1;
    pthread_mutex_lock(&temp_lock);
    for (int i = 0; i < TEMP_SLOTS && slot < 0; i++)
        if (!temp_used[i]) {
            memcpy(temp_paths[i], path, n + 1);
            temp_used[i] = 1;
            slot = i;
        }
    pthread_mutex_unlock(&temp_lock);
    return slot;
}

void dt_temp_forget(int slot) {
    if (slot < 0 || slot >= TEMP_SLOTS) return;
    pthread_mutex_lock(&temp_lock);
    temp_used[slot] = 0;
    pthread_mutex_unlock(&temp_lock);
}
