/* The gradient bucket plan (src/train/buckets.c): over ResNet-18's parameters and synthetic
 * ones, every gradient element is in exactly one bucket, buckets are contiguous, descending and
 * cut at parameter boundaries, no bucket exceeds the target unless one parameter alone does;
 * and per step, a bucket is handed out exactly once, only when backward has reported all of it
 * final. */
#include <stdlib.h>
#include <string.h>

#include "../src/train/buckets.h"
#include "check.h"
#include "dtrain/model.h"

/* Checks the plan's invariants against params; returns the number of buckets. */
static int check_plan(const char *what, const dt_param_extent *params, int n, size_t target,
                      const dt_bucket_plan *plan) {
    size_t begin = params[0].offset, end = params[n - 1].offset + params[n - 1].count;
    unsigned char *covered = calloc(end - begin, 1);
    if (!covered) return 0;
    size_t expect_end = end;
    int expect_last_param = n - 1, bad_bound = 0, bad_boundary = 0;
    for (int b = 0; b < plan->n_buckets; b++) {
        const dt_bucket *k = &plan->buckets[b];
        CHECK_MSG(k->offset + k->count == expect_end, "%s: bucket %d ends at %zu, expected %zu",
                  what, b, k->offset + k->count, expect_end);
        expect_end = k->offset;
        /* its parameters: first_param .. first_param + n_params - 1, the next lower ones */
        int last = k->first_param + k->n_params - 1;
        if (last != expect_last_param || params[k->first_param].offset != k->offset ||
            params[last].offset + params[last].count != k->offset + k->count)
            bad_boundary++;
        expect_last_param = k->first_param - 1;
        if (k->count > target && k->n_params != 1) bad_bound++;
        for (size_t i = k->offset; i < k->offset + k->count; i++) covered[i - begin]++;
    }
    CHECK_MSG(expect_end == begin, "%s: buckets stop at %zu, parameters start at %zu", what,
              expect_end, begin);
    CHECK_MSG(bad_boundary == 0, "%s: %d buckets not cut at parameter boundaries", what,
              bad_boundary);
    CHECK_MSG(bad_bound == 0, "%s: %d buckets of several parameters exceed %zu floats", what,
              bad_bound, target);
    size_t not_once = 0;
    for (size_t i = 0; i < end - begin; i++) not_once += covered[i] != 1;
    CHECK_MSG(not_once == 0, "%s: %zu gradient elements not in exactly one bucket", what, not_once);
    free(covered);
    return plan->n_buckets;
}

/* ResNet-18's trainable parameters, in buffer order. */
static int resnet_params(dt_param_extent *out, int max) {
    dt_model_options opt = {.arch = "resnet18", .batch = 2, .image_size = 32, .n_classes = 10};
    dt_model *m;
    dt_error err = {{0}, 0};
    if (dt_model_describe(&opt, &m, &err)) return 0;
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(m, &n_entries);
    int n = 0;
    for (size_t i = 0; i < n_entries && n < max; i++)
        if (entries[i].role == DT_TENSOR_PARAMETER)
            out[n++] = (dt_param_extent){entries[i].offset, entries[i].count};
    dt_model_destroy(m);
    return n;
}

static void test_resnet_plans(void) {
    dt_param_extent params[128];
    int n = resnet_params(params, 128);
    CHECK_INT_EQ(n, 62); /* 20 convolutions, 20 BN x 2, fc weight and bias */
    size_t total = params[n - 1].offset + params[n - 1].count;
    CHECK_INT_EQ(total, 11181642); /* torchvision resnet18(num_classes=10) */
    dt_error err = {{0}, 0};
    struct {
        int mb;
        int min_buckets, max_buckets;
    } cases[] = {{0, 2, 3}, {1, 20, 62}, {25, 2, 3}, {100, 1, 1}, {4, 10, 20}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dt_bucket_plan plan;
        size_t target = dt_bucket_floats_for_mb(cases[c].mb);
        CHECK(dt_bucket_plan_make(params, n, target, &plan, &err) == 0);
        char what[64];
        snprintf(what, sizeof what, "resnet18, %d MB", cases[c].mb);
        int buckets = check_plan(what, params, n, target, &plan);
        CHECK_MSG(buckets >= cases[c].min_buckets && buckets <= cases[c].max_buckets,
                  "%s: %d buckets", what, buckets);
        /* fc is reported first, so it is in the first bucket */
        CHECK_INT_EQ(plan.buckets[0].first_param + plan.buckets[0].n_params, n);
        dt_bucket_plan_free(&plan);
    }
    CHECK_INT_EQ(dt_bucket_floats_for_mb(0), 25u * 1024 * 1024 / 4);
    CHECK_INT_EQ(dt_bucket_floats_for_mb(2), 2u * 1024 * 1024 / 4);

    /* one float per bucket: each parameter alone */
    dt_bucket_plan plan;
    CHECK(dt_bucket_plan_make(params, n, 1, &plan, &err) == 0);
    CHECK_INT_EQ(check_plan("resnet18, 1 float", params, n, 1, &plan), n);
    dt_bucket_plan_free(&plan);
}

/* Reports spans the way the model does (descending, meeting) and checks what is handed out. */
static void test_step_protocol(void) {
    /* parameters of 10, 30, 5, 40, 15 floats from offset 100 */
    dt_param_extent params[5] = {{100, 10}, {110, 30}, {140, 5}, {145, 40}, {185, 15}};
    dt_error err = {{0}, 0};
    dt_bucket_plan plan;
    CHECK(dt_bucket_plan_make(params, 5, 45, &plan, &err) == 0);
    /* from the top: {185,15}+... 15+40 > 45 -> [185,200); 40+5 = 45 -> [140,185); 30+10 ->
     * [100,140) */
    CHECK_INT_EQ(check_plan("synthetic", params, 5, 45, &plan), 3);
    CHECK_INT_EQ(plan.buckets[0].offset, 185);
    CHECK_INT_EQ(plan.buckets[1].offset, 140);
    CHECK_INT_EQ(plan.buckets[2].offset, 100);

    for (int step = 0; step < 2; step++) {
        dt_bucket_plan_reset(&plan);
        int issued[3] = {0}, first, n;
        /* layer groups: [160,200) completes bucket 0 only; [120,160) completes bucket 1;
         * [100,120) bucket 2 */
        size_t spans[3][2] = {{160, 40}, {120, 40}, {100, 20}};
        int expect_first[3] = {0, 1, 2};
        for (int s = 0; s < 3; s++) {
            CHECK(dt_bucket_plan_ready(&plan, spans[s][0], spans[s][1], &first, &n, &err) == 0);
            CHECK_INT_EQ(n, 1);
            CHECK_INT_EQ(first, expect_first[s]);
            for (int k = first; k < first + n; k++) {
                issued[k]++;
                /* only complete buckets: all of it at or above the reported offset */
                CHECK(plan.buckets[k].offset >= spans[s][0]);
            }
            if (s < 2) CHECK(dt_bucket_plan_check_done(&plan, &err) == -1);
        }
        CHECK(dt_bucket_plan_check_done(&plan, &err) == 0);
        for (int k = 0; k < 3; k++) CHECK_INT_EQ(issued[k], 1);
    }

    /* one report covering everything hands out all buckets at once */
    dt_bucket_plan_reset(&plan);
    int first = -1, n = -1;
    CHECK(dt_bucket_plan_ready(&plan, 100, 100, &first, &n, &err) == 0);
    CHECK_INT_EQ(first, 0);
    CHECK_INT_EQ(n, 3);
    /* a span that does not meet the last one is refused */
    dt_bucket_plan_reset(&plan);
    CHECK(dt_bucket_plan_ready(&plan, 150, 40, &first, &n, &err) == -1);
    CHECK(strstr(err.message, "[150, 190)") != NULL);
    /* [170, 200) completes bucket 0 ([185, 200)) but not bucket 1 ([140, 185)) */
    CHECK(dt_bucket_plan_ready(&plan, 170, 30, &first, &n, &err) == 0);
    CHECK_INT_EQ(first, 0);
    CHECK_INT_EQ(n, 1);
    dt_bucket_plan_free(&plan);
}

static void test_bad_input(void) {
    dt_error err = {{0}, 0};
    dt_bucket_plan plan;
    dt_param_extent gap[2] = {{0, 10}, {11, 5}};
    CHECK(dt_bucket_plan_make(gap, 2, 100, &plan, &err) == -1);
    CHECK(strstr(err.message, "parameter 1 starts at 11") != NULL);
    dt_param_extent fine[1] = {{0, 10}};
    CHECK(dt_bucket_plan_make(fine, 1, 0, &plan, &err) == -1);
    CHECK(dt_bucket_plan_make(fine, 0, 10, &plan, &err) == -1);
    /* one parameter larger than the target: a bucket of its own */
    CHECK(dt_bucket_plan_make(fine, 1, 4, &plan, &err) == 0);
    CHECK_INT_EQ(plan.n_buckets, 1);
    CHECK_INT_EQ(plan.buckets[0].count, 10);
    dt_bucket_plan_free(&plan);
}

int main(void) {
    test_resnet_plans();
    test_step_protocol();
    test_bad_input();
    return dt_test_summary("buckets");
}
