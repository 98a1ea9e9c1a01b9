/* `dtrain pack SRC OUT [--shard-size MB] [--resize N] [--quality Q]`: the command line of the
 * ImageFolder-to-tar-shards writer (src/data/pack.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dtrain/data.h"

static const char usage[] =
    "usage: dtrain pack SRC OUT [--shard-size MB] [--resize N] [--quality Q]\n"
    "  SRC           an ImageFolder (one sub-folder per class)\n"
    "  OUT           folder for shard-NNNNNN.tar, their .idx files and classes.txt\n"
    "  --shard-size  start a new shard before one grows past MB megabytes (MiB; default\n"
    "                256; fractions allowed)\n"
    "  --resize      resize the shorter side to N pixels and store JPEGs (default: the\n"
    "                original bytes)\n"
    "  --quality     JPEG quality of resized samples, 1..100 (default 95)\n";

static int parse_megabytes(const char *text, double *value) {
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || errno || *end || end == text || !(v >= 0.001 && v <= 1048576)) {
        fprintf(stderr, "dtrain pack: --shard-size expects megabytes, 0.001..1048576, got '%s'\n",
                text ? text : "");
        return -1;
    }
    *value = v;
    return 0;
}

static int parse_int(const char *flag, const char *text, long low, long high, long *value) {
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || *end || end == text || v < low || v > high) {
        fprintf(stderr, "dtrain pack: %s expects a whole number %ld..%ld, got '%s'\n", flag, low,
                high, text ? text : "");
        return -1;
    }
    *value = v;
    return 0;
}

int dt_cli_pack(int argc, char **argv) {
    const char *positional[2] = {NULL, NULL};
    int n_positional = 0;
    long resize = 0, quality = 95;
    double shard_mb = 256;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        int rc = 0;
        if (strcmp(arg, "--shard-size") == 0)
            rc = parse_megabytes(i + 1 < argc ? argv[++i] : NULL, &shard_mb);
        else if (strcmp(arg, "--resize") == 0)
            rc = parse_int(arg, i + 1 < argc ? argv[++i] : NULL, 1, 8192, &resize);
        else if (strcmp(arg, "--quality") == 0)
            rc = parse_int(arg, i + 1 < argc ? argv[++i] : NULL, 1, 100, &quality);
        else if (arg[0] == '-' && arg[1]) {
            fprintf(stderr, "dtrain pack: unknown option '%s'\n%s", arg, usage);
            return 2;
        } else if (n_positional < 2)
            positional[n_positional++] = arg;
        else {
            fprintf(stderr, "dtrain pack: unexpected argument '%s'\n%s", arg, usage);
            return 2;
        }
        if (rc) return 2;
    }
    if (n_positional != 2) {
        fputs(usage, stderr);
        return 2;
    }
    dt_pack_options opt = {.shard_bytes = (uint64_t)(shard_mb * 1048576.0),
                           .resize = (int)resize,
                           .quality = (int)quality,
                           .progress = isatty(STDERR_FILENO)};
    dt_pack_result result;
    dt_error err = {{0}, 0};
    if (dt_pack_imagefolder(positional[0], positional[1], &opt, &result, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.message);
        return err.exit_code ? err.exit_code : 1;
    }
    printf("packed %zu images into %d shard%s (%.1f MB) in %s", result.samples, result.shards,
           result.shards == 1 ? "" : "s", (double)result.bytes / 1e6, positional[1]);
    if (result.skipped) printf("; skipped %zu undecodable", result.skipped);
    printf("\n");
    return 0;
}
