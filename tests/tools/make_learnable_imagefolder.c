/* make_learnable_imagefolder: writes the end-to-end test's synthetic, learnable ImageFolder
 * (tests/testlib/imagegen.h) for training runs outside the test suite, e.g. on a GPU machine.
 *
 *   make_learnable_imagefolder ROOT [CLASSES=3] [PER_CLASS=80] [SIDE=40] [SEED=5] */
#include <stdio.h>
#include <stdlib.h>

#include "imagegen.h"

static int arg(int argc, char **argv, int i, int fallback) {
    return argc > i ? atoi(argv[i]) : fallback;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: %s ROOT [CLASSES=3] [PER_CLASS=80] [SIDE=40] [SEED=5]\n", argv[0]);
        return 2;
    }
    int classes = arg(argc, argv, 2, 3), per_class = arg(argc, argv, 3, 80);
    int side = arg(argc, argv, 4, 40), seed = arg(argc, argv, 5, 5);
    if (classes < 2 || per_class < 1 || side < 8 || seed < 0) {
        fprintf(stderr, "%s: want CLASSES >= 2, PER_CLASS >= 1, SIDE >= 8, SEED >= 0\n", argv[0]);
        return 2;
    }
    dt_error err = {{0}, 0};
    if (dt_testgen_learnable_imagefolder(argv[1], classes, per_class, side, side, (uint64_t)seed,
                                         &err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err.message);
        return 1;
    }
    printf("%s: %d classes x %d JPEGs of %dx%d\n", argv[1], classes, per_class, side, side);
    return 0;
}
