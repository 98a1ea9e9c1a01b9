/* The per-rank watchdog thread (src/train/watchdog.h). */
#include "train/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dtrain/platform.h"

struct dt_watchdog {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int quit;
    dt_comm *comm;
    int timeout_s;
    const char *phase;
    long step;
    int long_allowance;
    double since;
    void (*abort_hook)(void *user);
    void *abort_user;
};

static void *watch(void *arg) {
    dt_watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (w->quit) break;
        /* start-up, the first step, evaluation and checkpoints: 3 x timeout_s, at least 300 s
         * (oneDNN's or cuDNN's first plans, a data set's first scan) */
        double limit = (double)w->timeout_s;
        if (w->long_allowance) limit = limit * 3 < 300 ? 300 : limit * 3;
        double stalled = dt_monotonic_seconds() - w->since;
        if (stalled <= limit) continue;
        int rank = w->comm->rank;
        const char *phase = w->phase;
        long step = w->step;
        pthread_mutex_unlock(&w->lock);
        fprintf(stderr,
                "dtrain: rank %d: error: no progress for %.0f s (runtime.timeout_s %d%s) in %s at "
                "step %ld%s; ending the job\n",
                rank, stalled, w->timeout_s,
                w->long_allowance ? ", x3 and at least 300 s for this phase" : "", phase, step,
                w->comm->size > 1 ? " (in a collective operation this means another rank stopped "
                                    "making progress)"
                                  : "");
        fflush(stderr);
        pthread_mutex_lock(&w->lock);
        void (*hook)(void *) = w->abort_hook;
        void *user = w->abort_user;
        pthread_mutex_unlock(&w->lock);
        if (hook) hook(user);
        w->comm->ops->abort(w->comm->ctx, 1);
        abort(); /* not reached: the comm abort ends the process */
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int dt_watchdog_start(dt_comm *comm, int timeout_s, dt_watchdog **out, dt_error *err) {
    dt_watchdog *w = calloc(1, sizeof *w);
    if (!w) return dt_fail(err, "out of memory for the watchdog");
    w->comm = comm;
    w->timeout_s = timeout_s;
    w->phase = "start-up";
    w->long_allowance = 1;
    w->since = dt_monotonic_seconds();
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, watch, w) != 0) {
        free(w);
        return dt_fail(err, "cannot start the watchdog thread");
    }
    *out = w;
    return 0;
}

void dt_watchdog_mark(dt_watchdog *w, const char *phase, long step, int long_allowance) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->phase = phase;
    w->step = step;
    w->long_allowance = long_allowance;
    w->since = dt_monotonic_seconds();
    pthread_mutex_unlock(&w->lock);
}

void dt_watchdog_set_abort_hook(dt_watchdog *w, void (*hook)(void *user), void *user) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->abort_hook = hook;
    w->abort_user = user;
    pthread_mutex_unlock(&w->lock);
}

void dt_watchdog_stop(dt_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
