/* POSIX tar (ustar) headers: the 512-byte block layout read by the shard indexer and written by
 * `dtrain pack`. Only what WebDataset shards need: regular members, directories, pax 'x' and
 * GNU 'L' long names; everything else is reported as a member type to skip. */
#ifndef DTRAIN_TAR_INTERNAL_H
#define DTRAIN_TAR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

#define DT_TAR_BLOCK 512
#define DT_TAR_NAME_MAX 4096 /* longest member name accepted (pax or GNU long names) */

typedef enum {
    DT_TAR_REGULAR,
    DT_TAR_DIRECTORY,
    DT_TAR_PAX_LOCAL,  /* 'x': records for the next member (path, size) */
    DT_TAR_PAX_GLOBAL, /* 'g': ignored */
    DT_TAR_GNU_LONGNAME,
    DT_TAR_OTHER /* links, devices, FIFOs, sparse...: skipped as bad members */
} dt_tar_kind;

typedef struct dt_tar_header {
    char name[257]; /* prefix "/" name, NUL-terminated */
    uint64_t size;  /* declared data size */
    dt_tar_kind kind;
    char typeflag;
} dt_tar_header;

/* Parses one header block: 1 = a header, 0 = an all-zero block (end of archive), -1 = not a
 * tar header (bad checksum or magic, or an unreadable size field) with the reason in err. */
int dt_tar_parse_header(const uint8_t block[DT_TAR_BLOCK], dt_tar_header *header, dt_error *err);

/* Rounds a data size up to whole blocks. */
static inline uint64_t dt_tar_padded(uint64_t size) {
    return (size + DT_TAR_BLOCK - 1) / DT_TAR_BLOCK * DT_TAR_BLOCK;
}

/* The value of "path" in a pax extended header's records ("LEN key=value\n"...), copied to
 * path (size bytes); 1 when found, 0 when absent, -1 when the records are malformed. */
int dt_tar_pax_path(const char *records, size_t length, char *path, size_t size);

/* Fills block with a ustar header for a regular file of size bytes named name (split into
 * prefix and name fields when longer than 100 bytes). -1 when the name does not fit (255 bytes
 * at most, with a '/' at the split point) or size needs more than 11 octal digits. */
int dt_tar_make_header(const char *name, uint64_t size, uint8_t block[DT_TAR_BLOCK]);

#endif
