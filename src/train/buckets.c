/* The gradient bucket plan (see buckets.h): planning once at start-up, then per step the
 * bookkeeping of which buckets backward has completed. */
#include "train/buckets.h"

#include <stdlib.h>

size_t dt_bucket_floats_for_mb(int bucket_mb) {
    size_t mb = bucket_mb > 0 ? (size_t)bucket_mb : DT_BUCKET_DEFAULT_MB;
    return mb * 1024 * 1024 / sizeof(float);
}

int dt_bucket_plan_make(const dt_param_extent *params, int n_params, size_t bucket_floats,
                        dt_bucket_plan *plan, dt_error *err) {
    *plan = (dt_bucket_plan){0};
    if (n_params < 1) return dt_fail(err, "bucket plan: no parameters");
    if (bucket_floats == 0) return dt_fail(err, "bucket plan: buckets of 0 floats");
    for (int i = 1; i < n_params; i++)
        if (params[i].offset != params[i - 1].offset + params[i - 1].count)
            return dt_fail(err,
                           "bucket plan: parameter %d starts at %zu, not where parameter %d ends "
                           "(%zu)",
                           i, params[i].offset, i - 1, params[i - 1].offset + params[i - 1].count);
    for (int i = 0; i < n_params; i++)
        if (params[i].count == 0) return dt_fail(err, "bucket plan: parameter %d is empty", i);
    /* at most one bucket per parameter */
    plan->buckets = calloc((size_t)n_params, sizeof *plan->buckets);
    if (!plan->buckets) return dt_fail(err, "bucket plan: out of memory");
    int n = 0;
    for (int i = n_params - 1; i >= 0; i--) {
        dt_bucket *open = n > 0 ? &plan->buckets[n - 1] : NULL;
        if (open && open->count + params[i].count <= bucket_floats) {
            open->offset = params[i].offset;
            open->count += params[i].count;
            open->first_param = i;
            open->n_params++;
            continue;
        }
        plan->buckets[n++] = (dt_bucket){
            .offset = params[i].offset, .count = params[i].count, .first_param = i, .n_params = 1};
    }
    plan->n_buckets = n;
    plan->span_end = params[n_params - 1].offset + params[n_params - 1].count;
    dt_bucket_plan_reset(plan);
    return 0;
}

void dt_bucket_plan_free(dt_bucket_plan *plan) {
    free(plan->buckets);
    *plan = (dt_bucket_plan){0};
}

void dt_bucket_plan_reset(dt_bucket_plan *plan) {
    plan->next = 0;
    plan->ready_from = plan->span_end;
}

int dt_bucket_plan_ready(dt_bucket_plan *plan, size_t offset, size_t count, int *first, int *n,
                         dt_error *err) {
    *first = plan->next;
    *n = 0;
    if (offset + count != plan->ready_from)
        return dt_fail(err,
                       "internal: gradients [%zu, %zu) reported final, but the final ones start at "
                       "%zu",
                       offset, offset + count, plan->ready_from);
    plan->ready_from = offset;
    while (plan->next < plan->n_buckets && plan->buckets[plan->next].offset >= offset) {
        plan->next++;
        (*n)++;
    }
    return 0;
}

int dt_bucket_plan_check_done(const dt_bucket_plan *plan, dt_error *err) {
    if (plan->next != plan->n_buckets)
        return dt_fail(err,
                       "internal: backward left %d of %d gradient buckets incomplete (final from "
                       "%zu on)",
                       plan->n_buckets - plan->next, plan->n_buckets, plan->ready_from);
    return 0;
}
