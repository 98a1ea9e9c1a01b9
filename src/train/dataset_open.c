/* data.root opened once per job: rank 0 scans the folder (or reads the shards' indexes) and
 * broadcasts the resulting file list over the host comm; the other ranks unpack it. On a
 * parallel file system this turns N ranks' directory walks and stat calls into one. A rank 0
 * that cannot read data.root tells the others, which end with a pointer to rank 0's message. */
#include "dtrain/comm.h"
#include "dtrain/data.h"

#include <stdlib.h>
#include <string.h>

#include "trainer_internal.h"

int dt_train_open_dataset(dt_comm *comm, const char *root, dt_dataset *ds, dt_error *err) {
    if (comm->size == 1) return dt_dataset_scan_key("data.root", root, ds, err);
    uint64_t header[2] = {0, 0}; /* ok, byte count */
    uint8_t *bytes = NULL;
    size_t size = 0;
    int rc = 0;
    if (comm->rank == 0) {
        rc = dt_dataset_scan_key("data.root", root, ds, err);
        if (rc == 0) rc = dt_dataset_pack_bytes(ds, &bytes, &size, err);
        header[0] = rc == 0;
        header[1] = size;
    }
    dt_error comm_err = {{0}, 0};
    if (comm->ops->broadcast(comm->ctx, header, sizeof header, 0, &comm_err)) {
        free(bytes);
        *err = comm_err;
        return -1;
    }
    if (!header[0]) {
        if (comm->rank == 0) return -1;
        return dt_fail_usage(err, "%s: rank 0 could not read the data (its message says why)",
                             root);
    }
    if (comm->rank != 0 && !(bytes = malloc((size_t)header[1] ? (size_t)header[1] : 1)))
        return dt_fail(err, "out of memory for the file list (%llu bytes)",
                       (unsigned long long)header[1]);
    if (comm->ops->broadcast(comm->ctx, bytes, (size_t)header[1], 0, err)) {
        free(bytes);
        return dt_error_prefix(err, "sharing the file list of %s", root);
    }
    if (comm->rank != 0) rc = dt_dataset_unpack_bytes(bytes, (size_t)header[1], ds, err);
    free(bytes);
    return rc;
}
