/* The set-up shared by training, `dtrain eval` and `dtrain predict` (src/train/session.c):
 * eval's case of the device rule (more ranks on a node than GPUs is refused, never a GPU
 * shared by ranks; each rank its own GPU otherwise), and the thread plan that inference gets
 * under a one-processor affinity mask and with OMP_NUM_THREADS, equal to training's plan. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "../src/train/session.h"
#include "check.h"
#include "dtrain/threads.h"

static dt_comm ranks_on_node(int local_rank, int local_size) {
    dt_comm comm;
    dt_comm_single_init(&comm);
    comm.rank = local_rank;
    comm.size = local_size;
    comm.local_rank = local_rank;
    comm.local_size = local_size;
    return comm;
}

static void test_eval_device_rule(void) {
    dt_gpu_query two = {.count = 2, .status = DT_GPU_AVAILABLE};
    dt_device_choice choice;
    dt_error err = {{0}, 0};
    unsetenv("CUDA_VISIBLE_DEVICES");
    /* `mpirun -np 3 dtrain eval` on a node with two GPUs: refused as in training, whether the
     * config says cuda or auto (rank 2 must not share GPU 0 with rank 0) */
    dt_device_kind kinds[] = {DT_DEVICE_CUDA, DT_DEVICE_AUTO};
    for (int k = 0; k < 2; k++) {
        dt_comm comm = ranks_on_node(2, 3);
        memset(&err, 0, sizeof err);
        CHECK(dt_session_choose_device(kinds[k], &comm, 1, &two, &choice, &err) != 0);
        CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
        CHECK_STR_EQ(err.message, "3 ranks on this node but 2 GPUs visible to each: run at "
                                  "most one rank per GPU");
    }
    /* two ranks, two GPUs: each its own */
    for (int r = 0; r < 2; r++) {
        dt_comm comm = ranks_on_node(r, 2);
        memset(&err, 0, sizeof err);
        CHECK(dt_session_choose_device(DT_DEVICE_AUTO, &comm, 1, &two, &choice, &err) == 0);
        CHECK_INT_EQ(choice.kind, DT_DEVICE_CUDA);
        CHECK_INT_EQ(choice.device, r);
    }
    /* runtime.device=cpu never looks at the GPUs */
    dt_comm comm = ranks_on_node(2, 3);
    CHECK(dt_session_choose_device(DT_DEVICE_CPU, &comm, 1, NULL, &choice, &err) == 0);
    CHECK_INT_EQ(choice.kind, DT_DEVICE_CPU);
    /* no CUDA backend: cuda is a usage error with the reason, auto the CPU with it */
    dt_gpu_query none = {.count = 0, .status = DT_GPU_NOT_BUILT};
    memset(&err, 0, sizeof err);
    CHECK(dt_session_choose_device(DT_DEVICE_CUDA, &comm, 0, &none, &choice, &err) != 0);
    CHECK_STR_EQ(err.message, "runtime.device: 'cuda', but this dtrain was built without the "
                              "CUDA backend");
    CHECK(dt_session_choose_device(DT_DEVICE_AUTO, &comm, 0, &none, &choice, &err) == 0);
    CHECK_INT_EQ(choice.kind, DT_DEVICE_CPU);
    CHECK_STR_EQ(choice.fallback_reason, "runtime.device=auto: training on the CPU: this dtrain "
                                         "was built without the CUDA backend");
}

/* Inference's plan (no config: predict) equals training's for the same process. */
static void test_thread_plan(void) {
    cpu_set_t saved, one;
    CHECK(sched_getaffinity(0, sizeof saved, &saved) == 0);
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &saved)) first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0); /* as `taskset -c N` */
    dt_comm comm;
    dt_comm_single_init(&comm);
    dt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    dt_error err = {{0}, 0};
    const char *omp[] = {NULL, "3"};
    int expected[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        if (omp[i])
            setenv("OMP_NUM_THREADS", omp[i], 1);
        else
            unsetenv("OMP_NUM_THREADS");
        dt_session s;
        dt_session_init(&s, &comm, NULL);
        dt_session_request predict = {.device = DT_DEVICE_CPU};
        CHECK(dt_session_plan_threads(&s, &predict, &err) == 0);
        dt_thread_plan training;
        CHECK(dt_thread_plan_make(&cfg, &comm, &training, &err) == 0);
        CHECK_INT_EQ(s.threads, expected[i]);
        CHECK_INT_EQ(s.workers, 1);
        CHECK_INT_EQ(s.threads, training.threads);
        CHECK_INT_EQ(s.workers, training.workers);
        dt_session_close(&s);
    }
    CHECK(sched_setaffinity(0, sizeof saved, &saved) == 0);
}

int main(void) {
    test_eval_device_rule();
    test_thread_plan();
    return dt_test_summary("test_session");
}
