/* output.dir's lock and the earlier-run rule (src/train/run_dir.h). */
#define _GNU_SOURCE
#include "train/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "dtrain/durable.h"
#include "dtrain/platform.h"

/* What a run writes into output.dir (the first four mark a folder as holding a run). */
static const char *const run_files[] = {"config.yaml",
                                        "metrics.jsonl",
                                        "checkpoints",
                                        "model.safetensors",
                                        "best.safetensors",
                                        "metrics.csv",
                                        "classes.txt",
                                        "tensorboard",
                                        "report.html",
                                        "confusion_matrix.csv",
                                        "classification_report.txt"};
enum { RUN_MARKERS = 5 };

static int take_lock(const char *dir, int *lock_fd, dt_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.dtrain.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return dt_fail(err, "creating %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char owner[256] = "";
        ssize_t n = pread(fd, owner, sizeof owner - 1, 0);
        owner[n > 0 ? n : 0] = '\0';
        owner[strcspn(owner, "\n")] = '\0';
        close(fd);
        return dt_fail_usage(err,
                             "output.dir %s is in use by another dtrain run (%s); wait for it to "
                             "end or choose another output.dir",
                             dir, owner[0] ? owner : "owner unknown");
    }
    char host[128] = "?", owner[256];
    gethostname(host, sizeof host - 1);
    int len = snprintf(owner, sizeof owner, "pid %ld on %s\n", (long)getpid(), host);
    /* fsync: other nodes read it (dt_rel_check_output_shared), on NFS only once flushed */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, owner, (size_t)len, 0) != len || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        return dt_fail(err, "writing %s: %s", path, strerror(saved));
    }
    *lock_fd = fd;
    return 0;
}

static void remove_stale_temporaries(const char *dir) {
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", dir);
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, ".tmp-", 5) == 0 || strcmp(e->d_name, "latest.tmp") == 0) {
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            dt_remove_tree(path);
        }
    closedir(d);
}

int dt_run_dir_prepare(const char *dir, int resume, int overwrite, int *lock_fd, dt_error *err) {
    if (dt_make_directories(dir, err)) return -1;
    if (take_lock(dir, lock_fd, err)) return -1;
    char found[512] = "", path[4200];
    int n_files = (int)(sizeof run_files / sizeof run_files[0]);
    for (int i = 0; i < RUN_MARKERS; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
        if (access(path, F_OK) == 0) {
            size_t used = strlen(found);
            snprintf(found + used, sizeof found - used, "%s%s", used ? ", " : "", run_files[i]);
        }
    }
    if (resume) {
        remove_stale_temporaries(dir);
        return 0;
    }
    if (!found[0]) return 0;
    if (!overwrite)
        return dt_fail_usage(err,
                             "output.dir %s holds an earlier run (%s): continue it with --resume, "
                             "replace it with --overwrite, or choose another output.dir",
                             dir, found);
    for (int i = 0; i < n_files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
        if (dt_remove_tree(path) != 0)
            return dt_fail(err, "--overwrite: removing %s: %s", path, strerror(errno));
    }
    return 0;
}
