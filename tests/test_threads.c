/* Tests of the thread-count inputs: the cgroup v2 CPU quota (cpu.max along the hierarchy, v1
 * lines ignored, "max" = none) on a fake cgroup tree, each rank's share of the cores from the
 * ranks' affinity masks, and the calling process's own limits against sched_getaffinity. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/threads.h"
#include "imagegen.h"

static char dir[256];

static void put(const char *relative, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, relative);
    dt_error err = {{0}, 0};
    CHECK(dt_testgen_write_bytes(path, text, strlen(text), &err) == 0);
}

static void test_cgroup_quota(void) {
    char folder[512];
    dt_error err = {{0}, 0};
    snprintf(folder, sizeof folder, "%s/job/step/task", dir);
    CHECK(dt_make_directories(folder, &err) == 0);
    /* No cpu.max anywhere: no limit. */
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/job/step/task\n"), 0, 0, 0);
    put("job/step/task/cpu.max", "max 100000\n");
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/job/step/task\n"), 0, 0, 0);
    /* A parent's limit applies; the smallest along the way wins. */
    put("job/cpu.max", "400000 100000\n");
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/job/step/task\n"), 4.0, 0, 1e-12);
    put("job/step/cpu.max", "150000 100000\n");
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/job/step/task\n"), 1.5, 0, 1e-12);
    /* cgroup v1 lines before the v2 one are skipped. */
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "12:cpu,cpuacct:/x\n0::/job/step/task\n"), 1.5, 0, 1e-12);
    /* A container with its own cgroup namespace sees "/" and the limit at the top. */
    put("cpu.max", "200000 100000\n");
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/\n"), 2.0, 0, 1e-12);
    /* cgroup v1 only, or nothing: no limit. */
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "3:cpu:/job\n"), 0, 0, 0);
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, ""), 0, 0, 0);
    put("job/step/task/cpu.max", "garbage\n");
    CHECK_CLOSE(dt_cgroup_cpu_quota(dir, "0::/job/step/task\n"), 1.5, 0, 1e-12);
}

static void set_cpus(dt_cpu_record *record, int64_t node, int first, int count) {
    memset(record, 0, sizeof *record);
    record->node = node;
    for (int cpu = first; cpu < first + count; cpu++) record->mask[cpu / 64] |= 1ull << (cpu % 64);
}

static void test_share(void) {
    dt_cpu_record r[4];
    int here = 0;
    /* 4 ranks, no binding, 128 cores: 32 each. */
    for (int i = 0; i < 4; i++) set_cpus(&r[i], 1, 0, 128);
    CHECK_CLOSE(dt_cpu_share(r, 4, 2, &here), 32.0, 0, 1e-9);
    CHECK_INT_EQ(here, 4);
    /* srun --cpus-per-task=8: disjoint masks, 8 each. */
    for (int i = 0; i < 4; i++) set_cpus(&r[i], 1, 8 * i, 8);
    CHECK_CLOSE(dt_cpu_share(r, 4, 3, &here), 8.0, 0, 1e-9);
    /* Bound to sockets: 2 ranks on each 64-core half, 32 each. */
    for (int i = 0; i < 4; i++) set_cpus(&r[i], 1, 64 * (i / 2), 64);
    CHECK_CLOSE(dt_cpu_share(r, 4, 0, &here), 32.0, 0, 1e-9);
    /* Two nodes with the same core numbers: ranks on the other node do not count. */
    for (int i = 0; i < 4; i++) set_cpus(&r[i], i < 2 ? 1 : 2, 0, 16);
    CHECK_CLOSE(dt_cpu_share(r, 4, 3, &here), 8.0, 0, 1e-9);
    CHECK_INT_EQ(here, 2);
    /* Overlapping masks: 0-3 and 2-5 share cores 2 and 3. */
    set_cpus(&r[0], 1, 0, 4);
    set_cpus(&r[1], 1, 2, 4);
    CHECK_CLOSE(dt_cpu_share(r, 2, 0, &here), 3.0, 0, 1e-9);
    /* Processors above 64 are counted too (several mask words). */
    set_cpus(&r[0], 1, 60, 200);
    CHECK_CLOSE(dt_cpu_share(r, 1, 0, &here), 200.0, 0, 1e-9);
    CHECK_INT_EQ(here, 1);
}

static void test_own_limits(void) {
    dt_cpu_limits limits;
    dt_cpu_limits_read(&limits);
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
    CHECK_INT_EQ(limits.affinity, CPU_COUNT(&set));
    CHECK(limits.online >= limits.affinity);
    CHECK(limits.quota >= 0);
    int bits = 0;
    for (int w = 0; w < DT_CPU_MASK_WORDS; w++) bits += __builtin_popcountll(limits.mask[w]);
    CHECK_INT_EQ(bits, CPU_COUNT(&set));
    for (int cpu = 0; cpu < 64; cpu++)
        CHECK_INT_EQ(!!(limits.mask[0] & (1ull << cpu)), !!CPU_ISSET(cpu, &set));
}

int main(void) {
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-threads", dir, sizeof dir, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    test_cgroup_quota();
    test_share();
    test_own_limits();
    dt_testgen_finish_temp_dir(dir);
    return dt_test_summary("test_threads");
}
