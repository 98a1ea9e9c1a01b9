/* output.dir's lock, the earlier-run rule and --overwrite's clearing (src/train/run_dir.h). */
#define _GNU_SOURCE
#include "train/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/durable.h"
#include "dtrain/output_files.h"
#include "dtrain/platform.h"

/* The files a run writes at the top of output.dir; any of them (or the two folders below with
 * dtrain's entries in them) marks the folder as holding a run. */
static const char *const run_files[] = {"config.yaml",       "metrics.jsonl",
                                        "model.safetensors", "best.safetensors",
                                        "metrics.csv",       "classes.txt",
                                        "report.html",       "confusion_matrix.csv",
                                        "predictions.csv",   "classification_report.txt",
                                        "ema.safetensors"};
enum { N_RUN_FILES = sizeof run_files / sizeof run_files[0] };

static int take_lock(const char *dir, int *lock_fd, dt_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.dtrain.lock", dir);
    /* O_NOFOLLOW and the regular-file check: a planted link or FIFO is refused, never written */
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP)
        return dt_fail_usage(
            err, "%s is a symbolic link: remove it (dtrain's lock is a plain file)", path);
    if (fd < 0) return dt_fail(err, "creating %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dt_fail_usage(err, "%s is not a regular file: remove it", path);
    }
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
    /* fsync: other nodes read it (dt_checkpoints_check_output_shared), on NFS only once flushed */
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

static void append_name(char *list, size_t size, const char *name) {
    size_t used = strlen(list);
    if (used + strlen(name) + 8 >= size) {
        if (!strstr(list, ", ...")) snprintf(list + used, size - used, ", ...");
        return;
    }
    snprintf(list + used, size - used, "%s%s", used ? ", " : "", name);
}

static int is_checkpoint_entry(const char *name) {
    return strncmp(name, "step-", 5) == 0 || strncmp(name, ".tmp-step-", 10) == 0 ||
           strcmp(name, "latest") == 0 || strcmp(name, "latest.tmp") == 0;
}

/* Whether output.dir/sub/name is dtrain's: checkpoints/ holds dtrain's names once the manifest
 * has checkpoints; tensorboard/ holds the event files the manifest names (and their temps). */
static int owned_entry(const char *sub, const char *name) {
    if (strcmp(sub, "checkpoints") == 0)
        return dt_output_manifest_has("checkpoints") && is_checkpoint_entry(name);
    char entry[600];
    snprintf(entry, sizeof entry, "%s/%s", sub, name);
    size_t n = strlen(entry);
    if (n > 4 && strcmp(entry + n - 4, ".tmp") == 0) entry[n - 4] = '\0';
    return dt_output_manifest_has(entry);
}

/* Walks output.dir's run files, checkpoints/ and tensorboard/: with remove 0 lists what is there
 * (marks, "name" per entry) and what dtrain did not write (foreign); with remove 1 deletes what
 * dtrain wrote. */
static int walk_run(const char *dir, int remove, char *marks, char *foreign, size_t size) {
    char path[4400];
    for (int i = 0; i < N_RUN_FILES; i++) {
        for (int tmp = 0; tmp < 2; tmp++) {
            struct stat st;
            snprintf(path, sizeof path, "%s/%s%s", dir, run_files[i], tmp ? ".tmp" : "");
            if (lstat(path, &st) != 0) continue;
            int ours = dt_output_manifest_has(run_files[i]) && !S_ISDIR(st.st_mode);
            if (remove) {
                if (ours && unlink(path) != 0 && errno != ENOENT) return -1;
                continue;
            }
            if (!tmp) append_name(marks, size, run_files[i]);
            if (!ours) append_name(foreign, size, path + strlen(dir) + 1);
        }
    }
    static const char *const subs[] = {"checkpoints", "tensorboard"};
    for (int s = 0; s < 2; s++) {
        char root[4300];
        snprintf(root, sizeof root, "%s/%s", dir, subs[s]);
        DIR *d = opendir(root);
        if (!d) continue;
        struct dirent *e;
        int any = 0;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            int ours = owned_entry(subs[s], e->d_name);
            if (remove) {
                if (ours && dt_remove_tree(path) != 0) {
                    closedir(d);
                    return -1;
                }
                continue;
            }
            any = 1;
            if (!ours) append_name(foreign, size, path + strlen(dir) + 1);
        }
        closedir(d);
        if (any) append_name(marks, size, subs[s]);
        if (remove) rmdir(root); /* when empty; what is left stays */
    }
    return 0;
}

int dt_run_dir_clear(const char *dir, dt_error *err) {
    char marks[512] = "", foreign[768] = "";
    walk_run(dir, 0, marks, foreign, sizeof foreign);
    if (foreign[0])
        return dt_fail_usage(err,
                             "output.dir %s holds files dtrain did not write (%s; %s lists what "
                             "it wrote): they are left alone; move them away or choose another "
                             "output.dir",
                             dir, foreign, DT_OUTPUT_MANIFEST);
    if (walk_run(dir, 1, marks, foreign, sizeof foreign) != 0)
        return dt_fail(err, "clearing output.dir %s: %s", dir, strerror(errno));
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, DT_OUTPUT_MANIFEST);
    if (unlink(path) != 0 && errno != ENOENT)
        return dt_fail(err, "removing %s: %s", path, strerror(errno));
    return dt_output_dir_pin(dir, err);
}

/* Whether checkpoint folder ckpt is output.dir/checkpoints/<name> (the same folder, however
 * spelled). */
static int checkpoint_of(const char *dir, const char *ckpt) {
    char parent[4300], a[PATH_MAX], b[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/..", ckpt);
    char root[4300];
    snprintf(root, sizeof root, "%s/checkpoints", dir);
    return realpath(parent, a) && realpath(root, b) && strcmp(a, b) == 0;
}

int dt_run_dir_prepare(const char *dir, int resume, const char *resume_path, int overwrite,
                       int *lock_fd, dt_error *err) {
    if (dt_make_directories(dir, err)) return -1;
    if (take_lock(dir, lock_fd, err)) return -1;
    char path[4300];
    static const char *const folders[] = {"checkpoints", "tensorboard"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, folders[i]);
        if (dt_output_refuse_link(path, err)) return -1;
    }
    if (dt_output_dir_pin(dir, err)) return -1;
    char marks[512] = "", foreign[768] = "";
    walk_run(dir, 0, marks, foreign, sizeof foreign);
    if (resume) {
        if (resume_path && marks[0] && !checkpoint_of(dir, resume_path))
            return dt_fail_usage(err,
                                 "--resume %s: output.dir %s holds another run (%s); resume "
                                 "into an empty output.dir or into the checkpoint's own",
                                 resume_path, dir, marks);
        remove_stale_temporaries(dir);
        return 0;
    }
    if (!marks[0]) { /* a new run: a manifest left with no run must not vouch for new files */
        snprintf(path, sizeof path, "%s/%s", dir, DT_OUTPUT_MANIFEST);
        if (unlink(path) != 0 && errno != ENOENT)
            return dt_fail(err, "removing %s: %s", path, strerror(errno));
        return dt_output_dir_pin(dir, err);
    }
    if (!overwrite)
        return dt_fail_usage(err,
                             "output.dir %s holds an earlier run (%s): continue it with --resume, "
                             "replace it with --overwrite, or choose another output.dir",
                             dir, marks);
    return dt_run_dir_clear(dir, err) ? dt_error_prefix(err, "--overwrite") : 0;
}
