/* The processors this process may use: the online count, the affinity mask (what taskset,
 * Slurm and mpirun's binding restrict) and the cgroup v2 CPU quota (containers, systemd). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/platform.h"
#include "dtrain/threads.h"

/* The affinity mask of this process, counted and copied (the first 1024 processors). */
static void read_affinity(dt_cpu_limits *limits) {
    long configured = sysconf(_SC_NPROCESSORS_CONF);
    int slots = configured > 1024 ? (int)configured : 1024;
    for (int attempt = 0; attempt < 4; attempt++, slots *= 2) {
        cpu_set_t *set = CPU_ALLOC(slots);
        if (!set) break;
        size_t bytes = CPU_ALLOC_SIZE(slots);
        if (sched_getaffinity(0, bytes, set) == 0) {
            limits->affinity = CPU_COUNT_S(bytes, set);
            for (int cpu = 0; cpu < 64 * DT_CPU_MASK_WORDS && cpu < slots; cpu++)
                if (CPU_ISSET_S(cpu, bytes, set)) limits->mask[cpu / 64] |= 1ull << (cpu % 64);
            CPU_FREE(set);
            return;
        }
        CPU_FREE(set); /* EINVAL: the kernel's mask is larger; try a larger set */
    }
    /* No mask readable: every online processor, as the kernel would schedule us. */
    limits->affinity = limits->online;
    for (int cpu = 0; cpu < limits->online && cpu < 64 * DT_CPU_MASK_WORDS; cpu++)
        limits->mask[cpu / 64] |= 1ull << (cpu % 64);
}

/* "QUOTA PERIOD" in microseconds, or "max PERIOD": cores, or 0 for no limit. */
static double parse_cpu_max(const char *text) {
    double quota = 0, period = 0;
    if (sscanf(text, "%lf %lf", &quota, &period) != 2 || quota <= 0 || period <= 0) return 0;
    return quota / period;
}

double dt_cgroup_cpu_quota(const char *cgroup_fs, const char *self_cgroup) {
    /* cgroup v2 has the single line "0::/path"; v1 lines (other numbers) are ignored. */
    const char *line = self_cgroup;
    while (line && strncmp(line, "0::", 3) != 0) {
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!line) return 0;
    char path[4096];
    size_t len = strcspn(line + 3, "\n");
    if (len >= sizeof path) return 0;
    memcpy(path, line + 3, len);
    path[len] = '\0';
    /* A limit on any ancestor applies too: walk up to the root, keep the smallest. */
    double smallest = 0;
    for (;;) {
        char file[4600];
        snprintf(file, sizeof file, "%s%s/cpu.max", cgroup_fs, strcmp(path, "/") ? path : "");
        FILE *f = fopen(file, "re");
        if (f) {
            char text[128] = "";
            if (fgets(text, sizeof text, f)) {
                double cores = parse_cpu_max(text);
                if (cores > 0 && (smallest == 0 || cores < smallest)) smallest = cores;
            }
            fclose(f);
        }
        char *slash = strrchr(path, '/');
        if (!slash || strcmp(path, "/") == 0 || path[0] == '\0') break;
        if (slash == path)
            path[1] = '\0'; /* up to "/" */
        else
            *slash = '\0';
    }
    return smallest;
}

void dt_cpu_limits_read(dt_cpu_limits *limits) {
    memset(limits, 0, sizeof *limits);
    limits->online = dt_online_cores();
    read_affinity(limits);
    if (limits->affinity < 1) limits->affinity = 1;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return;
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    limits->quota = dt_cgroup_cpu_quota("/sys/fs/cgroup", text);
}
