/* A learnable synthetic ImageFolder for the shell tests (tests/imagegen.h's generator):
 *   make_imagefolder DIR CLASSES PER_CLASS SIZE */
#include <stdio.h>
#include <stdlib.h>

#include "imagegen.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: make_imagefolder DIR CLASSES PER_CLASS SIZE\n");
        return 2;
    }
    int classes = atoi(argv[2]), per_class = atoi(argv[3]), size = atoi(argv[4]);
    if (classes < 1 || per_class < 1 || size < 1) {
        fprintf(stderr, "make_imagefolder: CLASSES, PER_CLASS and SIZE must be positive\n");
        return 2;
    }
    dt_error err = {{0}, 0};
    if (dt_testgen_learnable_imagefolder(argv[1], classes, per_class, size, size, 7, &err)) {
        fprintf(stderr, "make_imagefolder: %s\n", err.message);
        return 1;
    }
    return 0;
}
