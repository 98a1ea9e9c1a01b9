/* The gradient bucket plan: the trainable parameters, last first, grouped into buckets of about
 * a target size, each one contiguous span of the flat gradient buffer that is all-reduced as soon
 * as backward has made every gradient in it final (communication overlapping the rest of
 * backward, as PyTorch DDP's buckets). Pure bookkeeping: no backend, no comm. */
#ifndef DTRAIN_TRAIN_BUCKETS_H
#define DTRAIN_TRAIN_BUCKETS_H

#include <stddef.h>

#include "dtrain/error.h"

/* Bucket target when runtime.bucket_mb is 0 (PyTorch DDP's default bucket_cap_mb). */
#define DT_BUCKET_DEFAULT_MB 25

typedef struct dt_bucket {
    size_t offset, count;      /* floats of the flat gradient buffer: [offset, offset + count) */
    int first_param, n_params; /* indices into the parameter list given to the plan */
} dt_bucket;

typedef struct dt_bucket_plan {
    dt_bucket *buckets; /* in issue order: highest offsets first */
    int n_buckets;
    int next;          /* first bucket not yet issued in this step */
    size_t ready_from; /* gradients from this offset on are final in this step */
    size_t span_end;   /* offset + count of the planned span */
} dt_bucket_plan;

/* One parameter tensor of the flat buffer. */
typedef struct dt_param_extent {
    size_t offset, count;
} dt_param_extent;

/* Plans buckets over params (n_params extents in ascending, contiguous order: each starts where
 * the previous ends) of at most bucket_floats floats each, a parameter never split: a bucket
 * holds more only when one parameter alone is larger. Fails on a gap, an overlap, an empty
 * list or bucket_floats 0. */
int dt_bucket_plan_make(const dt_param_extent *params, int n_params, size_t bucket_floats,
                        dt_bucket_plan *plan, dt_error *err);
void dt_bucket_plan_free(dt_bucket_plan *plan);

/* Floats per bucket for runtime.bucket_mb (0: DT_BUCKET_DEFAULT_MB). */
size_t dt_bucket_floats_for_mb(int bucket_mb);

/* Starts a step: nothing is final, nothing issued. */
void dt_bucket_plan_reset(dt_bucket_plan *plan);

/* Backward reports [offset, offset + count) final. Spans must arrive in descending order and
 * meet the previous one (a gap or an overlap fails). Returns in *first and *n the buckets that
 * became complete (plan->buckets[*first .. *first + *n - 1]) and marks them issued. */
int dt_bucket_plan_ready(dt_bucket_plan *plan, size_t offset, size_t count, int *first, int *n,
                         dt_error *err);

/* After backward: fails unless every bucket was issued in this step. */
int dt_bucket_plan_check_done(const dt_bucket_plan *plan, dt_error *err);

#endif
