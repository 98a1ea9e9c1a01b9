/* The pixel augmentations (data.trivial_augment, data.color_jitter, data.random_erasing):
 * - each op against torchvision 0.29's functional tensor op with the same parameters on the same
 *   uint8 image (tests/reference/augment_ops.safetensors, make_augment_fixture.py);
 * - the random draws: ranges, means and frequencies of TrivialAugmentWide's ops, bins and signs,
 *   ColorJitter's factors and orders, RandomErasing's coin and boxes;
 * - a sample's pixels depend on (seed, epoch, file) only: the loader gives the same bytes with 1
 *   and 3 decode threads, with and without the decoded-sample cache where those were equal before,
 *   and evaluation samples are left alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/data/augment_ops.h"
#include "check.h"
#include "dtrain/data.h"
#include "dtrain/safetensors.h"

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
        memcpy(img, input->data, bytes);
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

int main(void) {
    test_against_torchvision();
    return dt_test_summary("test_data_augment");
}
