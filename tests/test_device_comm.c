/* The device comms (src/comm/device_comm*.c) with NCCL and CUDA replaced by a recording test
 * double: rank 0's unique id reaches every rank's ncclCommInitRank over the host comm (and a
 * failure to make it fails every rank), the all-reduces and the stream/event ordering are queued
 * in the right order without host waits on the newest step, and an asynchronous NCCL error, an
 * all-reduce past the deadline or a failing call end the process through ncclCommAbort and the
 * host comm's abort (run in a child process). The host device comm sums over the host comm. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/backend/backend_impl.h" /* a stand-in backend: its table is private */
#include "check.h"
#include "dtrain/device_comm.h"
#include "dtrain/platform.h"

enum { ID_BYTES = 16 };

/* ---- the NCCL/CUDA test double ------------------------------------------------------------ */

static struct {
    char log[4096];
    int unique_id_calls, fail_unique_id, fail_all_reduce;
    int init_nranks, init_rank, init_device;
    unsigned char init_id[ID_BYTES];
    int hang;         /* events never complete */
    int async_failed; /* ncclCommGetAsyncError reports an error */
    int queries;
    float *base; /* offsets in the log are from here */
} fake;
static int compute_stream_token, comm_stream_token, comm_token, event_tokens[3], n_events;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    size_t used = strlen(fake.log);
    va_list args;
    va_start(args, fmt);
    vsnprintf(fake.log + used, sizeof fake.log - used, fmt, args);
    va_end(args);
}

static const char *name_of(void *handle) {
    if (handle == &compute_stream_token) return "C";
    if (handle == &comm_stream_token) return "S";
    for (int i = 0; i < 3; i++)
        if (handle == &event_tokens[i]) return i == 0 ? "E0" : i == 1 ? "E1" : "E2";
    return "?";
}

static int fake_get_unique_id(void *id, dt_error *err) {
    fake.unique_id_calls++;
    if (fake.fail_unique_id) return dt_fail(err, "ncclGetUniqueId: fake system error");
    for (int i = 0; i < ID_BYTES; i++) ((unsigned char *)id)[i] = (unsigned char)('A' + i);
    return 0;
}

static int fake_comm_init_rank(void **comm, int nranks, const void *id, int rank, int device,
                               dt_error *err) {
    (void)err;
    fake.init_nranks = nranks;
    fake.init_rank = rank;
    fake.init_device = device;
    memcpy(fake.init_id, id, ID_BYTES);
    *comm = &comm_token;
    return 0;
}

static int fake_all_reduce(float *buffer, size_t count, void *comm, void *stream, dt_error *err) {
    if (fake.fail_all_reduce) return dt_fail(err, "ncclAllReduce: fake unhandled cuda error");
    note("allreduce(%s,%ld,%ld) ", comm == &comm_token ? name_of(stream) : "badcomm",
         (long)(buffer - fake.base), (long)count);
    return 0;
}

static int fake_async_error(void *comm, int *failed, dt_error *err) {
    (void)comm;
    *failed = fake.async_failed;
    if (fake.async_failed) return dt_fail(err, "asynchronous error: fake remote process exited");
    return 0;
}

static void fake_comm_abort(void *comm) {
    (void)comm;
    fprintf(stderr, "fake: ncclCommAbort\n");
    note("abort ");
}

static void fake_comm_destroy(void *comm) {
    (void)comm;
    note("destroy ");
}

static int fake_stream_create(void **stream, dt_error *err) {
    (void)err;
    *stream = &comm_stream_token;
    return 0;
}

static void fake_stream_destroy(void *stream) {
    (void)stream;
}

static int fake_event_create(void **event, dt_error *err) {
    if (n_events == 3) return dt_fail(err, "too many events");
    *event = &event_tokens[n_events++];
    return 0;
}

static void fake_event_destroy(void *event) {
    (void)event;
}

static int fake_event_record(void *event, void *stream, dt_error *err) {
    (void)err;
    note("record(%s,%s) ", name_of(event), name_of(stream));
    return 0;
}

static int fake_stream_wait_event(void *stream, void *event, dt_error *err) {
    (void)err;
    note("wait(%s,%s) ", name_of(stream), name_of(event));
    return 0;
}

static int fake_event_query(void *event, int *done, dt_error *err) {
    (void)err;
    fake.queries++;
    *done = !fake.hang;
    if (!fake.hang) note("query(%s) ", name_of(event));
    return 0;
}

static const dt_nccl_api fake_api = {
    .unique_id_bytes = ID_BYTES,
    .get_unique_id = fake_get_unique_id,
    .comm_init_rank = fake_comm_init_rank,
    .all_reduce_sum_float = fake_all_reduce,
    .comm_get_async_error = fake_async_error,
    .comm_abort = fake_comm_abort,
    .comm_destroy = fake_comm_destroy,
    .stream_create = fake_stream_create,
    .stream_destroy = fake_stream_destroy,
    .event_create = fake_event_create,
    .event_destroy = fake_event_destroy,
    .event_record = fake_event_record,
    .stream_wait_event = fake_stream_wait_event,
    .event_query = fake_event_query,
};

static void reset_fake(void) {
    memset(&fake, 0, sizeof fake);
    n_events = 0;
}

/* ---- a backend that only has a compute stream, and a host comm of a chosen rank ----------- */

static void *fake_compute_stream(void *ctx) {
    (void)ctx;
    return &compute_stream_token;
}
static int fake_synchronize(void *ctx, dt_error *err) {
    (void)ctx;
    (void)err;
    return 0;
}
/* the check the device comm installs for the backend's host waits */
static dt_wait_check_fn installed_check;
static void *installed_user;
static int wait_check_calls;
static void fake_set_wait_check(void *ctx, dt_wait_check_fn check, void *user) {
    (void)ctx;
    installed_check = check;
    installed_user = user;
    wait_check_calls++;
}
static const dt_backend_ops fake_backend_ops = {.name = "gpu-double",
                                                .compute_stream = fake_compute_stream,
                                                .synchronize = fake_synchronize,
                                                .set_wait_check = fake_set_wait_check};
static dt_backend fake_backend = {&fake_backend_ops, NULL};

/* What rank 0 sends in the broadcast, as rank != 0 receives it: flag byte, then the id. */
static unsigned char broadcast_message[ID_BYTES + 1];
static int host_broadcasts;

static int host_broadcast(void *ctx, void *buffer, size_t bytes, int root, dt_error *err) {
    int *rank = ctx;
    host_broadcasts++;
    if (root != 0 || bytes != ID_BYTES + 1) return dt_fail(err, "unexpected broadcast");
    if (*rank != 0) memcpy(buffer, broadcast_message, bytes);
    return 0;
}

static int host_allreduce_float(void *ctx, float *buffer, size_t count, dt_reduce_op op,
                                dt_error *err) {
    (void)ctx;
    (void)err;
    for (size_t i = 0; i < count; i++) buffer[i] *= op == DT_REDUCE_SUM ? 3.0f : -1.0f;
    return 0;
}

static void host_abort(void *ctx, int exit_code) {
    (void)ctx;
    fprintf(stderr, "fake: host abort %d\n", exit_code);
    fflush(NULL);
    _exit(exit_code);
}

static const dt_comm_ops host_ops = {.name = "host-double",
                                     .broadcast = host_broadcast,
                                     .allreduce_float = host_allreduce_float,
                                     .abort = host_abort};
static int host_rank_storage;

static dt_comm host_comm(int rank, int size) {
    host_rank_storage = rank;
    return (dt_comm){.rank = rank, .size = size, .ops = &host_ops, .ctx = &host_rank_storage};
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_unique_id_exchange(void) {
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    /* rank 0 makes the id and passes it to its own init */
    reset_fake();
    dt_comm host = host_comm(0, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 3, &fake_api, 10, &dc, &err) == 0);
    CHECK_INT_EQ(fake.unique_id_calls, 1);
    CHECK_INT_EQ(fake.init_nranks, 2);
    CHECK_INT_EQ(fake.init_rank, 0);
    CHECK_INT_EQ(fake.init_device, 3);
    CHECK(fake.init_id[0] == 'A' && fake.init_id[ID_BYTES - 1] == 'A' + ID_BYTES - 1);
    CHECK_INT_EQ(dc.size, 2);
    CHECK_STR_EQ(dc.ops->name, "nccl");
    dc.ops->destroy(dc.ctx);

    /* rank 1 uses what the broadcast brings and makes none */
    reset_fake();
    broadcast_message[0] = 1;
    for (int i = 0; i < ID_BYTES; i++) broadcast_message[1 + i] = (unsigned char)(0x70 + i);
    host = host_comm(1, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 1, &fake_api, 10, &dc, &err) == 0);
    CHECK_INT_EQ(fake.unique_id_calls, 0);
    CHECK_INT_EQ(fake.init_rank, 1);
    CHECK(memcmp(fake.init_id, broadcast_message + 1, ID_BYTES) == 0);
    dc.ops->destroy(dc.ctx);

    /* rank 0 cannot make the id: it fails with the reason, rank 1 fails too (no init, no wait) */
    reset_fake();
    fake.fail_unique_id = 1;
    host = host_comm(0, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 10, &dc, &err) == -1);
    CHECK(strstr(err.message, "fake system error") != NULL);
    CHECK_INT_EQ(fake.init_nranks, 0);
    reset_fake();
    broadcast_message[0] = 0;
    host = host_comm(1, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 10, &dc, &err) == -1);
    CHECK(strstr(err.message, "rank 0 could not create the NCCL unique id") != NULL);
    CHECK_INT_EQ(fake.init_nranks, 0);
}

/* Buckets queue after the compute stream's work, the optimizer waits on the comm stream, and
 * the host only ever waits for the previous step's all-reduces. */
static void test_stream_order(void) {
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    reset_fake();
    dt_comm host = host_comm(0, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 10, &dc, &err) == 0);
    float grads[64];
    fake.base = grads;
    /* step 1: two buckets (last parameters first), then the optimizer's wait */
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, grads + 40, 24, &err) == 0);
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, grads, 40, &err) == 0);
    CHECK(dc.ops->wait(dc.ctx, &err) == 0);
    CHECK_STR_EQ(fake.log, "record(E0,C) wait(S,E0) allreduce(S,40,24) "
                           "record(E0,C) wait(S,E0) allreduce(S,0,40) "
                           "record(E1,S) wait(C,E1) ");
    CHECK_INT_EQ(fake.queries, 0); /* nothing earlier to wait for */
    /* step 2: its wait polls step 1's done event only */
    fake.log[0] = 0;
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, grads, 64, &err) == 0);
    CHECK(dc.ops->wait(dc.ctx, &err) == 0);
    CHECK_STR_EQ(fake.log, "record(E0,C) wait(S,E0) allreduce(S,0,64) "
                           "record(E2,S) wait(C,E2) query(E1) ");
    /* step 3, then a drain before reading results: waits for steps 2 and 3 */
    fake.log[0] = 0;
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, grads, 64, &err) == 0);
    CHECK(dc.ops->drain(dc.ctx, &err) == 0);
    CHECK_STR_EQ(fake.log, "record(E0,C) wait(S,E0) allreduce(S,0,64) "
                           "record(E1,S) wait(C,E1) query(E1) query(E2) ");
    /* nothing issued since: a drain or wait queues and polls nothing */
    fake.log[0] = 0;
    CHECK(dc.ops->drain(dc.ctx, &err) == 0);
    CHECK(dc.ops->wait(dc.ctx, &err) == 0);
    CHECK_STR_EQ(fake.log, "");
    dc.ops->destroy(dc.ctx);
    CHECK(strstr(fake.log, "destroy") != NULL);
}

/* Runs scenario in a child process whose stderr goes to a file; returns its exit code (-1 if
 * it did not exit) and the seconds it took, and leaves its stderr in out. */
static int run_child(void (*scenario)(void), char *out, size_t out_size, double *seconds) {
    FILE *capture = tmpfile();
    if (!capture) return -1;
    double start = dt_monotonic_seconds();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(capture), 2);
        scenario();
        _exit(0); /* the scenario should not get here */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    *seconds = dt_monotonic_seconds() - start;
    rewind(capture);
    size_t n = fread(out, 1, out_size - 1, capture);
    out[n] = 0;
    fclose(capture);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A step whose previous all-reduce never completes, polled by the next step's wait. */
static void hung_step(double timeout_s) {
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    dt_comm host = host_comm(0, 2);
    if (dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, timeout_s, &dc, &err))
        return;
    float grads[8];
    fake.base = grads;
    dc.ops->allreduce_sum_float(dc.ctx, grads, 8, &err);
    dc.ops->wait(dc.ctx, &err);
    dc.ops->allreduce_sum_float(dc.ctx, grads, 8, &err);
    dc.ops->wait(dc.ctx, &err); /* polls the first step's event */
}

static void scenario_async_error(void) {
    reset_fake();
    fake.hang = 1;
    fake.async_failed = 1;
    hung_step(60);
}

static void scenario_deadline(void) {
    reset_fake();
    fake.hang = 1;
    hung_step(0.3);
}

static void scenario_failing_call(void) {
    reset_fake();
    fake.fail_all_reduce = 1;
    hung_step(60);
}

/* A backend host wait polled past the deadline (the GPU waits behind a hung all-reduce). */
static void scenario_backend_wait_deadline(void) {
    reset_fake();
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    dt_comm host = host_comm(0, 2);
    if (dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 5, &dc, &err)) return;
    installed_check(installed_user, 5.5, &err);
}

static void scenario_backend_wait_async_error(void) {
    reset_fake();
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    dt_comm host = host_comm(0, 2);
    if (dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 60, &dc, &err)) return;
    fake.async_failed = 1;
    installed_check(installed_user, 0.01, &err);
}

/* The backend's waits get the deadline and error check; an error path's abort_collectives is
 * ncclCommAbort, after which destroy never calls ncclCommDestroy. */
static void test_backend_waits_and_abort(void) {
    dt_error err = {{0}, 0};
    dt_device_comm dc;
    reset_fake();
    installed_check = NULL;
    dt_comm host = host_comm(0, 2);
    CHECK(dt_device_comm_nccl_create(&host, &fake_backend, 0, &fake_api, 10, &dc, &err) == 0);
    CHECK(installed_check != NULL && installed_user == dc.ctx);
    if (installed_check) CHECK(installed_check(installed_user, 9.0, &err) == 0);
    fake.log[0] = 0;
    dc.ops->abort_collectives(dc.ctx);
    dc.ops->abort_collectives(dc.ctx); /* once only */
    dc.ops->destroy(dc.ctx);
    CHECK_STR_EQ(fake.log, "abort ");
    CHECK(installed_check == NULL); /* removed with the comm */

    char out[4096];
    double seconds = 0;
    int code = run_child(scenario_backend_wait_deadline, out, sizeof out, &seconds);
    CHECK_INT_EQ(code, DT_EXIT_RUNTIME);
    CHECK_MSG(strstr(out, "did not finish its work within 5 s") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "fake: ncclCommAbort\nfake: host abort 1") != NULL, "stderr: %s", out);
    code = run_child(scenario_backend_wait_async_error, out, sizeof out, &seconds);
    CHECK_INT_EQ(code, DT_EXIT_RUNTIME);
    CHECK_MSG(strstr(out, "fake remote process exited") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "fake: ncclCommAbort\nfake: host abort 1") != NULL, "stderr: %s", out);
}

static void test_failures_end_the_job(void) {
    char out[4096];
    double seconds = 0;
    int code = run_child(scenario_async_error, out, sizeof out, &seconds);
    CHECK_INT_EQ(code, DT_EXIT_RUNTIME);
    CHECK_MSG(strstr(out, "fake remote process exited") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "fake: ncclCommAbort\nfake: host abort 1") != NULL, "stderr: %s", out);
    CHECK_MSG(seconds < 30, "the async error took %.1f s to end the process", seconds);

    code = run_child(scenario_deadline, out, sizeof out, &seconds);
    CHECK_INT_EQ(code, DT_EXIT_RUNTIME);
    CHECK_MSG(strstr(out, "did not complete within 0.3 s") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "fake: ncclCommAbort\nfake: host abort 1") != NULL, "stderr: %s", out);
    CHECK_MSG(seconds >= 0.3 && seconds < 30, "the deadline ended the process after %.2f s",
              seconds);

    code = run_child(scenario_failing_call, out, sizeof out, &seconds);
    CHECK_INT_EQ(code, DT_EXIT_RUNTIME);
    CHECK_MSG(strstr(out, "fake unhandled cuda error") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "fake: ncclCommAbort") != NULL, "stderr: %s", out);
}

/* The host device comm: the host comm's sum, nothing at all for one rank; the factory picks it
 * for host-memory backends and single ranks, and asks for NCCL otherwise. */
static void test_host_comm_and_choice(void) {
    dt_error err = {{0}, 0};
    dt_backend_ops cpu_like = fake_backend_ops;
    cpu_like.name = "cpu";
    cpu_like.flags = DT_BACKEND_HOST_MEMORY;
    dt_backend cpu = {&cpu_like, NULL};
    dt_comm host = host_comm(0, 2);
    dt_device_comm dc;
    CHECK(dt_device_comm_create(&host, &cpu, 0, &dc, &err) == 0);
    CHECK_STR_EQ(dc.ops->name, "host");
    float values[3] = {1, 2, 4};
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, values, 3, &err) == 0);
    CHECK(values[0] == 3.0f && values[1] == 6.0f && values[2] == 12.0f); /* the double's x3 */
    CHECK(dc.ops->wait(dc.ctx, &err) == 0 && dc.ops->drain(dc.ctx, &err) == 0);
    dc.ops->destroy(dc.ctx);

    dt_comm alone = host_comm(0, 1);
    CHECK(dt_device_comm_create(&alone, &fake_backend, 0, &dc, &err) == 0);
    CHECK_STR_EQ(dc.ops->name, "host"); /* one GPU: no NCCL */
    CHECK(dc.ops->allreduce_sum_float(dc.ctx, values, 3, &err) == 0);
    CHECK(values[0] == 3.0f); /* one rank: untouched */
    dc.ops->destroy(dc.ctx);

    unsetenv("DTRAIN_NCCL_TIMEOUT_S");
    CHECK_CLOSE(dt_device_comm_timeout_seconds(), DT_NCCL_DEFAULT_TIMEOUT_S, 0, 0);
    setenv("DTRAIN_NCCL_TIMEOUT_S", "2.5", 1);
    CHECK_CLOSE(dt_device_comm_timeout_seconds(), 2.5, 0, 0);
    setenv("DTRAIN_NCCL_TIMEOUT_S", "nonsense", 1);
    CHECK_CLOSE(dt_device_comm_timeout_seconds(), DT_NCCL_DEFAULT_TIMEOUT_S, 0, 0);
    unsetenv("DTRAIN_NCCL_TIMEOUT_S");
}

/* Two GPU ranks whose NCCL cannot be loaded (DTRAIN_NCCL_LIBRARY names a missing file): a usage
 * error naming the library and how to provide it. Printed to stderr by the child. */
static void scenario_nccl_missing(void) {
    setenv("DTRAIN_NCCL_LIBRARY", "/nonexistent-dir/libnccl.so.2", 1);
    dt_error err = {{0}, 0};
    dt_comm host = host_comm(0, 2);
    dt_device_comm dc;
    int rc = dt_device_comm_create(&host, &fake_backend, 0, &dc, &err);
    fprintf(stderr, "rc=%d exit_code=%d loaded=%d: %s\n", rc, err.exit_code,
            dt_nccl_loaded_version(), err.message);
    _exit(0);
}

#ifdef DTRAIN_HAVE_NCCL
/* The NCCL this machine's loader finds, when it has one: loaded at run time, version read. */
static void scenario_nccl_present(void) {
    fprintf(stderr, "loaded=%d\n", dt_nccl_loaded_version());
    _exit(0);
}
#endif

/* NCCL is loaded at run time, only for several GPU ranks: missing, it is a usage error that
 * says how to provide it; present, its version is read through the dlopened library. */
static void test_nccl_loaded_at_run_time(void) {
    char out[4096];
    double seconds = 0;
    CHECK_INT_EQ(run_child(scenario_nccl_missing, out, sizeof out, &seconds), 0);
    CHECK_MSG(strstr(out, "rc=-1 exit_code=2 loaded=0") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "2 ranks on the gpu-double backend need NCCL") != NULL, "stderr: %s",
              out);
#ifdef DTRAIN_HAVE_NCCL
    CHECK_MSG(strstr(out, "/nonexistent-dir/libnccl.so.2") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "pip install nvidia-nccl-cu13") != NULL, "stderr: %s", out);
    CHECK_MSG(strstr(out, "LD_LIBRARY_PATH") != NULL, "stderr: %s", out);
    /* the check below can only pass when dtrain resolves the real library's symbols */
    void *probe = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (probe) {
        dlclose(probe);
        unsetenv("DTRAIN_NCCL_LIBRARY");
        CHECK_INT_EQ(run_child(scenario_nccl_present, out, sizeof out, &seconds), 0);
        int version = 0;
        CHECK_MSG(sscanf(out, "loaded=%d", &version) == 1 && version >= 21800, "stderr: %s", out);
    } else {
        printf("libnccl.so.2 is not on this machine: the loading of the real library untested\n");
    }
#else
    CHECK_MSG(strstr(out, "built without NCCL") != NULL, "stderr: %s", out);
#endif
}

int main(void) {
    test_nccl_loaded_at_run_time();
    test_unique_id_exchange();
    test_stream_order();
    test_failures_end_the_job();
    test_backend_waits_and_abort();
    test_host_comm_and_choice();
    return dt_test_summary("device_comm");
}
