/* The checkpoint writer's background thread: the training thread downloads the flat buffers,
 * hands them over and goes on; files are written, fsynced and renamed here, one checkpoint at a
 * time. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/checkpoint.h"
#include "dtrain/signals.h"

struct dt_ckpt_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int busy, quit, has_report;
    dt_ckpt_payload job;
    char output_dir[4096];
    int keep;
    int failed;
    dt_error error;
    dt_ckpt_report report;
};

static void *writer_main(void *arg) {
    dt_ckpt_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->busy && !w->quit) pthread_cond_wait(&w->changed, &w->lock);
        if (!w->busy && w->quit) break;
        dt_ckpt_payload job = w->job;
        memset(&w->job, 0, sizeof w->job); /* this thread owns and frees it now */
        pthread_mutex_unlock(&w->lock);
        dt_error err = {{0}, 0};
        dt_ckpt_report report;
        memset(&report, 0, sizeof report);
        int rc = dt_checkpoint_write(w->output_dir, &job, w->keep, &report, &err);
        dt_ckpt_payload_free(&job);
        pthread_mutex_lock(&w->lock);
        if (rc) {
            w->failed = 1;
            w->error = err;
        } else {
            w->report = report;
            w->has_report = 1;
            dt_signals_checkpoint_complete();
        }
        w->busy = 0;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int dt_ckpt_writer_create(dt_ckpt_writer **out, dt_error *err) {
    dt_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return dt_fail(err, "out of memory for the checkpoint writer");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->changed);
        free(w);
        return dt_fail(err, "cannot start the checkpoint writer thread");
    }
    *out = w;
    return 0;
}

/* With the lock held: waits for the running write; fails with a write's error once. */
static int wait_idle_locked(dt_ckpt_writer *w, dt_error *err) {
    while (w->busy) pthread_cond_wait(&w->changed, &w->lock);
    if (w->failed) {
        w->failed = 0;
        if (err) *err = w->error;
        if (err) err->exit_code = 1;
        return -1;
    }
    return 0;
}

int dt_ckpt_writer_submit(dt_ckpt_writer *w, const char *output_dir, int keep, dt_ckpt_payload *p,
                          dt_error *err) {
    pthread_mutex_lock(&w->lock);
    int rc = wait_idle_locked(w, err);
    if (rc == 0) {
        w->job = *p;
        memset(p, 0, sizeof *p);
        snprintf(w->output_dir, sizeof w->output_dir, "%s", output_dir);
        w->keep = keep;
        w->busy = 1;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    if (rc) dt_ckpt_payload_free(p);
    return rc;
}

int dt_ckpt_writer_wait(dt_ckpt_writer *w, dt_error *err) {
    pthread_mutex_lock(&w->lock);
    int rc = wait_idle_locked(w, err);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int dt_ckpt_writer_take_report(dt_ckpt_writer *w, dt_ckpt_report *report) {
    pthread_mutex_lock(&w->lock);
    int has = w->has_report;
    if (has) *report = w->report;
    w->has_report = 0;
    pthread_mutex_unlock(&w->lock);
    return has;
}

void dt_ckpt_writer_destroy(dt_ckpt_writer *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    dt_ckpt_payload_free(&w->job);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->changed);
    free(w);
}
