/* The non-finite guard's state update for one checked step (see dt_guard_state in backend.h),
 * written once for the CPU backend and the CUDA kernel (host and device code): the CPU and GPU
 * runs count, record and halt alike. */
#ifndef DTRAIN_GUARD_VERDICT_H
#define DTRAIN_GUARD_VERDICT_H

#include <stdint.h>

#include "dtrain/backend.h"

#if defined(__CUDACC__)
#define DT_GUARD_HD __host__ __device__
#else
#define DT_GUARD_HD
#endif

/* first_bad: index of the first non-finite gradient of the step, or -1 when all are finite. */
DT_GUARD_HD static inline void dt_guard_apply(dt_guard_state *s, int64_t halt_after, int64_t step,
                                              int64_t first_bad, int is_nan) {
    if (s->halted_step >= 0) { /* halted: the last good state stays */
        s->step_skipped = 1;
        s->skipped++;
        return;
    }
    if (first_bad < 0) {
        s->in_row = 0;
        s->step_skipped = 0;
        return;
    }
    s->in_row++;
    s->total++;
    s->skipped++;
    s->step_skipped = 1;
    { /* when full, the last slot keeps the newest: a halting step is always recorded */
        dt_guard_record *r =
            &s->records[s->n_records < DT_GUARD_RECORDS ? s->n_records : DT_GUARD_RECORDS - 1];
        r->step = step;
        r->index = first_bad;
        r->is_nan = is_nan;
        r->in_row = s->in_row;
        r->total = s->total;
    }
    s->n_records++;
    if (s->in_row >= halt_after) s->halted_step = step;
}

/* The state after a read: records and the skipped count start again. */
DT_GUARD_HD static inline void dt_guard_clear_read(dt_guard_state *s) {
    s->n_records = 0;
    s->skipped = 0;
}

#endif
