/* The pixel augmentations (data.trivial_augment, data.color_jitter, data.random_erasing):
 * - each op against torchvision 0.29's functional tensor op with the same parameters on the same
 *   uint8 image (tests/reference/augment_ops.safetensors, make_augment_fixture.py);
 * - the random draws: ranges, means and frequencies of TrivialAugmentWide's ops, bins and signs,
 *   ColorJitter's factors and orders, RandomErasing's coin and boxes;
 * - a sample's pixels depend on (seed, epoch, file) only: the loader gives the same bytes with 1
 *   and 3 decode threads, with and without the decoded-sample cache where those were equal before,
 *   and evaluation samples are left alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/data/augment_ops.h"
#include "check.h"
#include "dtrain/data.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"

/* ---- against torchvision ------------------------------------------------------------------- */

static int op_from_name(const char *name, dt_trivial_op *op) {
    static const char *const names[DT_TRIVIAL_OPS] = {
        "Identity",  "ShearX",     "ShearY",       "TranslateX", "TranslateY",
        "Rotate",    "Brightness", "Color",        "Contrast",   "Sharpness",
        "Posterize", "Solarize",   "AutoContrast", "Equalize"};
    for (int i = 0; i < DT_TRIVIAL_OPS; i++)
        if (strcmp(names[i], name) == 0) {
            *op = (dt_trivial_op)i;
            return 1;
        }
    return 0;
}

/* Applies the case's op as dtrain does; 0 when the op name is unknown. */
static int apply_case(const char *op_name, double param, uint8_t *img, int size, uint8_t *scratch) {
    dt_trivial_op op;
    if (strcmp(op_name, "brightness") == 0)
        dt_aug_brightness(img, size, param);
    else if (strcmp(op_name, "contrast") == 0)
        dt_aug_contrast(img, size, param);
    else if (strcmp(op_name, "saturation") == 0)
        dt_aug_saturation(img, size, param);
    else if (strcmp(op_name, "hue") == 0)
        dt_aug_hue(img, size, param);
    else if (op_from_name(op_name, &op))
        dt_trivial_apply(img, size, op, param, scratch);
    else
        return 0;
    return 1;
}

/* The geometric ops sample a float32 grid that torch builds with a batched matrix product; a
 * source position within rounding of a pixel edge may land on either side there and here. */
static int is_geometric(const char *op_name) {
    return strstr(op_name, "Shear") || strstr(op_name, "Translate") || strstr(op_name, "Rotate");
}

static void test_against_torchvision(void) {
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/reference/augment_ops.safetensors", src ? src : "..");
    dt_safetensors st;
    dt_error err = {{0}, 0};
    int rc = dt_safetensors_read(path, &st, &err);
    CHECK_MSG(rc == 0, "fixture: %s (is DTRAIN_SOURCE_DIR set?)", err.message);
    if (rc) return;
    const dt_st_tensor *input = dt_safetensors_find(&st, "input");
    CHECK(input && input->dtype == DT_ST_U8 && input->ndim == 3 && input->shape[2] == 3 &&
          input->shape[0] == input->shape[1]);
    if (!input) {
        dt_safetensors_free(&st);
        return;
    }
    int size = (int)input->shape[0];
    size_t bytes = (size_t)size * size * 3;
    uint8_t *img = malloc(bytes), *scratch = malloc(bytes);
    const char *cases = dt_safetensors_metadata_value(&st, "cases");
    CHECK(cases != NULL);
    char *list = strdup(cases ? cases : "");
    int n_cases = 0, worst_geometric = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        char key[160];
        snprintf(key, sizeof key, "op.%s", name);
        const char *op_name = dt_safetensors_metadata_value(&st, key);
        snprintf(key, sizeof key, "param.%s", name);
        const char *param_text = dt_safetensors_metadata_value(&st, key);
        snprintf(key, sizeof key, "case.%s", name);
        const dt_st_tensor *expected = dt_safetensors_find(&st, key);
        CHECK_MSG(op_name && param_text && expected && expected->end - expected->begin == bytes,
                  "fixture case %s complete", name);
        if (!op_name || !param_text || !expected || expected->end - expected->begin != bytes)
            continue;
        snprintf(key, sizeof key, "input.%s", name);
        const char *input_name = dt_safetensors_metadata_value(&st, key);
        const dt_st_tensor *start = input_name ? dt_safetensors_find(&st, input_name) : input;
        CHECK_MSG(start && start->end - start->begin == bytes, "case %s: input %s", name,
                  input_name ? input_name : "input");
        if (!start || start->end - start->begin != bytes) continue;
        memcpy(img, start->data, bytes);
        CHECK_MSG(apply_case(op_name, strtod(param_text, NULL), img, size, scratch), "known op %s",
                  op_name);
        int differ = 0, worst = 0;
        for (size_t i = 0; i < bytes; i++) {
            int d = abs((int)img[i] - (int)expected->data[i]);
            if (d) differ++;
            if (d > worst) worst = d;
        }
        if (is_geometric(op_name)) {
            /* whole pixels: at most 1 in 64 moved to a neighbour */
            if (differ * 64 > (int)bytes)
                CHECK_MSG(0, "%s (%s %s): %d of %zu bytes differ from torchvision", name, op_name,
                          param_text, differ, bytes);
            else
                CHECK(1);
            if (differ > worst_geometric) worst_geometric = differ;
        } else {
            CHECK_MSG(differ == 0, "%s (%s %s): %d bytes differ from torchvision, by up to %d",
                      name, op_name, param_text, differ, worst);
        }
        n_cases++;
    }
    CHECK_MSG(n_cases >= 39, "fixture cases checked: %d", n_cases);
    if (getenv("DTRAIN_AUGMENT_VERBOSE"))
        printf("geometric ops: at most %d bytes of %zu differ\n", worst_geometric, bytes);
    /* TrivialAugmentWide's magnitude tables, bin by bin */
    for (int op = 0; op < DT_TRIVIAL_OPS; op++) {
        static const char *const names[DT_TRIVIAL_OPS] = {
            "Identity",  "ShearX",     "ShearY",       "TranslateX", "TranslateY",
            "Rotate",    "Brightness", "Color",        "Contrast",   "Sharpness",
            "Posterize", "Solarize",   "AutoContrast", "Equalize"};
        char key[64];
        snprintf(key, sizeof key, "magnitudes.%s", names[op]);
        const dt_st_tensor *table = dt_safetensors_find(&st, key);
        int has_bins = 0, is_signed = 0;
        dt_trivial_magnitude((dt_trivial_op)op, 0, &has_bins, &is_signed);
        CHECK_MSG(!table == !has_bins, "%s: a table exactly when dtrain draws a bin", names[op]);
        if (!table || !has_bins) continue;
        CHECK_INT_EQ(table->shape[0], DT_TRIVIAL_BINS);
        int mismatches = 0;
        for (int bin = 0; bin < DT_TRIVIAL_BINS && bin < table->shape[0]; bin++) {
            double expected;
            memcpy(&expected, table->data + 8 * (size_t)bin, 8);
            if (dt_trivial_magnitude((dt_trivial_op)op, bin, &has_bins, &is_signed) != expected)
                mismatches++;
        }
        CHECK_MSG(mismatches == 0, "%s: %d of 31 magnitudes differ from torchvision's", names[op],
                  mismatches);
    }
    free(list);
    free(img);
    free(scratch);
    dt_safetensors_free(&st);
}

/* ---- the random draws --------------------------------------------------------------------- */

#define DRAWS 28000

/* |count - n p| within 5 standard deviations of a binomial. */
static int binomial_ok(long count, long n, double p) {
    double sd = sqrt(n * p * (1 - p));
    return fabs((double)count - n * p) <= 5 * sd + 1;
}

static void test_draw_statistics(void) {
    dt_pixel_augment aug = {
        .color_jitter = {0.4f, 1.5f, 0.2f, 0.1f}, .random_erasing = 0.5f, .trivial_augment = 1};
    const int size = 64;
    long op_count[DT_TRIVIAL_OPS] = {0}, bin_count[DT_TRIVIAL_BINS] = {0}, negative = 0,
         signed_draws = 0, first_position[4] = {0}, permutations[256] = {0}, erased = 0;
    double factor_min[4] = {1e9, 1e9, 1e9, 1e9}, factor_max[4] = {-1e9, -1e9, -1e9, -1e9};
    double factor_sum[4] = {0}, area_min = 1e9, area_max = 0, area_sum = 0;
    int box_outside = 0, magnitude_off_table = 0;
    for (uint32_t file = 0; file < DRAWS; file++) {
        dt_pixel_augment_draw d;
        dt_pixel_augment_draw_for(&aug, size, 5, 2, file, &d);
        op_count[d.trivial_op]++;
        int has_bins = 0, is_signed = 0;
        dt_trivial_magnitude((dt_trivial_op)d.trivial_op, 0, &has_bins, &is_signed);
        if (has_bins) {
            int found = -1;
            for (int bin = 0; bin < DT_TRIVIAL_BINS && found < 0; bin++) { /* the first match */
                double m =
                    dt_trivial_magnitude((dt_trivial_op)d.trivial_op, bin, &has_bins, &is_signed);
                if (m == fabs(d.trivial_magnitude)) found = bin; /* tables ascend or descend */
            }
            if (found < 0)
                magnitude_off_table++;
            else if (d.trivial_op != DT_TRIVIAL_SOLARIZE && d.trivial_op != DT_TRIVIAL_POSTERIZE)
                bin_count[found]++;
            if (is_signed && d.trivial_magnitude != 0.0) {
                signed_draws++;
                negative += d.trivial_magnitude < 0.0;
            }
        } else if (d.trivial_magnitude != 0.0) {
            magnitude_off_table++;
        }
        first_position[d.jitter_order[0]]++;
        int code = 0;
        for (int k = 0; k < 4; k++) code = code * 4 + d.jitter_order[k];
        permutations[code]++;
        for (int i = 0; i < 4; i++) {
            if (d.jitter_factor[i] < factor_min[i]) factor_min[i] = d.jitter_factor[i];
            if (d.jitter_factor[i] > factor_max[i]) factor_max[i] = d.jitter_factor[i];
            factor_sum[i] += d.jitter_factor[i];
        }
        if (d.erase) {
            erased++;
            if (d.erase_x < 0 || d.erase_y < 0 || d.erase_x + d.erase_width > size ||
                d.erase_y + d.erase_height > size || d.erase_width >= size ||
                d.erase_height >= size || d.erase_width < 1 || d.erase_height < 1)
                box_outside++;
            double area = (double)d.erase_width * d.erase_height / (size * size);
            area_sum += area;
            if (area < area_min) area_min = area;
            if (area > area_max) area_max = area;
        }
    }
    /* TrivialAugmentWide: uniform over 14 ops, over the 31 bins, signs fair */
    for (int op = 0; op < DT_TRIVIAL_OPS; op++)
        CHECK_MSG(binomial_ok(op_count[op], DRAWS, 1.0 / DT_TRIVIAL_OPS), "op %d drawn %ld times",
                  op, op_count[op]);
    long binned = 0;
    for (int bin = 0; bin < DT_TRIVIAL_BINS; bin++) binned += bin_count[bin];
    for (int bin = 1; bin < DT_TRIVIAL_BINS; bin++)
        CHECK_MSG(binomial_ok(bin_count[bin], binned, 1.0 / DT_TRIVIAL_BINS),
                  "bin %d drawn %ld of %ld times", bin, bin_count[bin], binned);
    CHECK_INT_EQ(magnitude_off_table, 0);
    CHECK_MSG(binomial_ok(negative, signed_draws, 0.5), "%ld of %ld signed magnitudes negative",
              negative, signed_draws);
    /* ColorJitter: a uniform order, factors in range with the uniform's mean */
    for (int i = 0; i < 4; i++)
        CHECK_MSG(binomial_ok(first_position[i], DRAWS, 0.25), "adjustment %d first %ld times", i,
                  first_position[i]);
    int distinct = 0;
    for (int code = 0; code < 256; code++)
        if (permutations[code]) {
            distinct++;
            CHECK_MSG(binomial_ok(permutations[code], DRAWS, 1.0 / 24), "order %d: %ld times", code,
                      permutations[code]);
        }
    CHECK_INT_EQ(distinct, 24);
    const double lo[4] = {0.6, 0.0, 0.8, -0.1}, hi[4] = {1.4, 2.5, 1.2, 0.1};
    for (int i = 0; i < 4; i++) {
        double mean = factor_sum[i] / DRAWS, width = hi[i] - lo[i];
        CHECK_MSG(factor_min[i] >= lo[i] - 1e-6 && factor_max[i] <= hi[i] + 1e-6,
                  "factor %d in [%g, %g]: drawn %g .. %g", i, lo[i], hi[i], factor_min[i],
                  factor_max[i]);
        CHECK_MSG(factor_min[i] < lo[i] + 0.01 * width && factor_max[i] > hi[i] - 0.01 * width,
                  "factor %d covers its range: %g .. %g", i, factor_min[i], factor_max[i]);
        /* the mean of a uniform: sd of the mean is width / sqrt(12 n) */
        CHECK_MSG(fabs(mean - (lo[i] + hi[i]) / 2) < 5 * width / sqrt(12.0 * DRAWS),
                  "factor %d mean %g", i, mean);
    }
    /* RandomErasing: the coin, boxes inside with area fractions near (0.02, 0.33) */
    CHECK_MSG(binomial_ok(erased, DRAWS, 0.5), "%ld of %d erased", erased, DRAWS);
    CHECK_INT_EQ(box_outside, 0);
    CHECK_MSG(area_min >= 0.015 && area_min < 0.025 && area_max <= 0.345 && area_max > 0.3,
              "erased area fractions %g .. %g", area_min, area_max);
    double area_mean = area_sum / (double)erased; /* kept boxes: large ones fail more often */
    CHECK_MSG(area_mean > 0.12 && area_mean < 0.175, "mean erased area fraction %g", area_mean);

    /* switched off: nothing drawn, nothing applied */
    dt_pixel_augment off = {0};
    CHECK(!dt_pixel_augment_enabled(&off));
    dt_pixel_augment_draw d;
    dt_pixel_augment_draw_for(&off, size, 5, 2, 7, &d);
    CHECK(d.trivial_op == -1 && !d.erase);
    /* the erased box gets the fill pixel, nothing else changes */
    uint8_t img[8 * 8 * 3], before[8 * 8 * 3];
    for (int i = 0; i < 8 * 8 * 3; i++) img[i] = before[i] = (uint8_t)(i * 7);
    const uint8_t fill[3] = {124, 116, 104};
    dt_aug_erase(img, 8, 2, 3, 4, 2, fill);
    int wrong = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++) {
                int inside = x >= 2 && x < 6 && y >= 3 && y < 5, i = (y * 8 + x) * 3 + c;
                wrong += img[i] != (inside ? fill[c] : before[i]);
            }
    CHECK_INT_EQ(wrong, 0);
}

/* ---- through the loader ------------------------------------------------------------------- */

#define N_FILES 24
#define LSIZE 24
#define BATCH 8

static size_t run_bytes(void) {
    return (size_t)N_FILES * LSIZE * LSIZE * 3;
}

/* Two epochs of batches in a fixed order: 0 on success. */
static int load_epochs(const dt_dataset *ds, const dt_pixel_augment *aug, dt_augment_mode augment,
                       int workers, const char *cache, int training, uint8_t *out) {
    dt_loader_options lo = {.batch_size = BATCH,
                            .image_size = LSIZE,
                            .resize = DT_RESIZE_SQUASH,
                            .augment = augment,
                            .workers = workers,
                            .prefetch_batches = 2,
                            .seed = 99,
                            .cache = cache,
                            .pixel_augment = *aug};
    dt_loader *loader;
    dt_error err = {{0}, 0};
    if (dt_loader_create(ds, &lo, &loader, &err)) {
        fprintf(stderr, "loader: %s\n", err.message);
        return -1;
    }
    size_t slot = (size_t)LSIZE * LSIZE * 3, at = 0;
    int bad = 0;
    for (int e = 0; e < 2 && !bad; e++) {
        uint32_t order[N_FILES];
        for (uint32_t i = 0; i < N_FILES; i++) order[i] = (i * 5u + (uint32_t)e) % N_FILES;
        if (dt_loader_start(loader, order, N_FILES, e, training, &err)) bad = 1;
        const dt_batch *b;
        while (!bad && dt_loader_next(loader, &b, &err) == 0 && b) {
            memcpy(out + at, b->pixels, slot * BATCH);
            at += slot * BATCH;
            dt_loader_release(loader, b);
        }
    }
    dt_loader_destroy(loader);
    return bad || at != 2 * run_bytes() ? -1 : 0;
}

static void test_loader(void) {
    char dir[1024], src[1200];
    dt_error err = {{0}, 0};
    CHECK(dt_testgen_make_temp_dir("dtrain-augment", dir, sizeof dir, &err) == 0);
    snprintf(src, sizeof src, "%s/folder", dir);
    CHECK(dt_testgen_learnable_imagefolder(src, 3, N_FILES / 3, 40, 30, 3, &err) == 0);
    dt_dataset ds;
    if (dt_dataset_open(src, &ds, &err) != 0) {
        CHECK_MSG(0, "dataset: %s", err.message);
        dt_testgen_finish_temp_dir(dir);
        return;
    }
    size_t bytes = 2 * run_bytes();
    uint8_t *one = malloc(bytes), *three = malloc(bytes), *plain = malloc(bytes),
            *cached = malloc(bytes), *eval_on = malloc(bytes), *eval_off = malloc(bytes);
    dt_pixel_augment all = {.color_jitter = {0.4f, 0.4f, 0.4f, 0.1f},
                            .random_erasing = 0.5f,
                            .trivial_augment = 1,
                            .erase_fill = {124, 116, 104}};
    dt_pixel_augment off = {0};
    dt_augment_mode modes[] = {DT_AUGMENT_FLIP, DT_AUGMENT_CROP_FLIP};
    for (int m = 0; m < 2; m++) {
        /* the same bytes with 1 and 3 decode threads */
        CHECK(load_epochs(&ds, &all, modes[m], 1, NULL, 1, one) == 0);
        CHECK(load_epochs(&ds, &all, modes[m], 3, NULL, 1, three) == 0);
        CHECK_MSG(memcmp(one, three, bytes) == 0, "augment %d: 1 and 3 threads differ", m);
        /* and they are applied: different from the run without them */
        CHECK(load_epochs(&ds, &off, modes[m], 2, NULL, 1, plain) == 0);
        CHECK_MSG(memcmp(one, plain, bytes) != 0, "augment %d: no pixel changed", m);
        /* through the cache: the augmentations follow the cached crop, with threads alike */
        CHECK(load_epochs(&ds, &all, modes[m], 1, "memory", 1, cached) == 0);
        CHECK(load_epochs(&ds, &all, modes[m], 3, "memory", 1, three) == 0);
        CHECK_MSG(memcmp(cached, three, bytes) == 0, "augment %d, cache: 1 and 3 threads differ",
                  m);
        if (modes[m] == DT_AUGMENT_FLIP) /* bitwise the uncached batches, as before */
            CHECK_MSG(memcmp(cached, one, bytes) == 0, "flip: cache changes the batches");
    }
    /* each sample as dt_sample_load_from makes it alone: not a function of its batch */
    dt_loader_options lo = {.batch_size = BATCH,
                            .image_size = LSIZE,
                            .resize = DT_RESIZE_SQUASH,
                            .augment = DT_AUGMENT_CROP_FLIP,
                            .workers = 1,
                            .prefetch_batches = 2,
                            .seed = 99,
                            .pixel_augment = all};
    CHECK(load_epochs(&ds, &all, DT_AUGMENT_CROP_FLIP, 2, NULL, 1, one) == 0);
    uint8_t sample[LSIZE * LSIZE * 3];
    int mismatched = 0;
    for (uint32_t i = 0; i < N_FILES; i++) {
        uint32_t file = (i * 5u + 1u) % N_FILES; /* epoch 1 */
        if (dt_sample_load_from(&ds, file, &lo, 1, 1, sample, &err))
            mismatched++;
        else if (memcmp(sample, one + run_bytes() + (size_t)i * sizeof sample, sizeof sample))
            mismatched++;
    }
    CHECK_INT_EQ(mismatched, 0);
    /* evaluation samples get none of them */
    CHECK(load_epochs(&ds, &all, DT_AUGMENT_CROP_FLIP, 2, NULL, 0, eval_on) == 0);
    CHECK(load_epochs(&ds, &off, DT_AUGMENT_NONE, 2, NULL, 0, eval_off) == 0);
    CHECK_MSG(memcmp(eval_on, eval_off, bytes) == 0, "evaluation batches augmented");
    free(one);
    free(three);
    free(plain);
    free(cached);
    free(eval_on);
    free(eval_off);
    dt_dataset_free(&ds);
    dt_testgen_finish_temp_dir(dir);
}

int main(void) {
    test_against_torchvision();
    test_draw_statistics();
    test_loader();
    return dt_test_summary("test_data_augment");
}
