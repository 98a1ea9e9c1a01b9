/* A job that must die promptly: every rank records its pid in the directory given as argv[1],
 * then rank 1 calls the comm layer's abort(3) while the other ranks wait in a barrier that rank 1
 * never enters. tests/comm_abort_check.sh runs it under mpirun and checks that the whole job
 * ended, non-zero, within seconds, and that no rank outlived it. */
#include "dtrain/comm.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_pid_file(const char *directory, int rank) {
    char path[4096];
    snprintf(path, sizeof path, "%s/rank-%d.pid", directory, rank);
    FILE *file = fopen(path, "w");
    if (!file) {
        perror(path);
        return -1;
    }
    fprintf(file, "%ld\n", (long)getpid());
    return fclose(file) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mpirun -np 3 %s PID_DIRECTORY\n", argv[0]);
        return 2;
    }
    const char *pid_directory = argv[1];
    dt_comm comm;
    dt_error err = {0};
    if (dt_comm_init(&argc, &argv, &comm, &err)) {
        fprintf(stderr, "comm_abort_check: %s\n", err.message);
        return 1;
    }
    if (comm.size < 2 || write_pid_file(pid_directory, comm.rank)) {
        fprintf(stderr, "comm_abort_check: needs >= 2 ranks and a writable pid directory\n");
        comm.ops->abort(comm.ctx, 1);
    }
    /* Everyone has written its pid before anyone aborts. */
    if (comm.ops->barrier(comm.ctx, &err)) {
        fprintf(stderr, "comm_abort_check: %s\n", err.message);
        return 1;
    }
    if (comm.rank == 1) {
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
        fprintf(stderr, "comm_abort_check: rank 1 aborts the job with code 3\n");
        comm.ops->abort(comm.ctx, 3);
        /* Only reached if abort returned: complete the barrier so the job ends cleanly with
         * exit code 0, which the script reports as a failure. */
        fprintf(stderr, "comm_abort_check: abort returned on rank 1\n");
    }
    if (comm.ops->barrier(comm.ctx, &err))
        fprintf(stderr, "comm_abort_check: rank %d: %s\n", comm.rank, err.message);
    else
        fprintf(stderr, "comm_abort_check: rank %d passed the barrier after the abort\n",
                comm.rank);
    comm.ops->finalize(comm.ctx);
    return 0;
}
