/* Stop signals end a run with a complete checkpoint, whoever receives them, while the writes are
 * slowed (DTRAIN_TEST_SLOW_WRITE_MS) so that a launcher that kills too early is caught:
 *   single: SIGHUP stops like SIGTERM (exit 75); a second SIGINT while report.html.tmp or a CSV
 *           temporary is being written leaves no temporary; SIGTERM after the last step says the
 *           run finishes instead and exits 0.
 *   mpi:    SIGTERM, SIGINT and SIGHUP to launch/dtrain-run -n 2 (which runs mpirun) give exit 75
 *           with a complete stop checkpoint and model.safetensors, every time; SIGUSR1 to a
 *           plain mpirun does too; SIGTERM to a plain mpirun (which kills the ranks a second
 *           later) never leaves a rank claiming a checkpoint that is not complete.
 * usage: stop_signals_check single DTRAIN
 *        stop_signals_check mpi DTRAIN DTRAIN_RUN MPIRUN [MPIRUN_FLAGS...] */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/checkpoint.h"
#include "dtrain/platform.h"
#include "imagegen.h"
#include "process.h"

enum { MAX_ARGS = 32 };

static char workdir[256];
static const char *dtrain_bin, *dtrain_run;
static const char *mpirun_argv[MAX_ARGS];
static int mpirun_argc;

/* Starts argv (NULL-ended) with output to workdir/NAME.log and the extra environment (NULL or
 * a NULL-ended list of NAME=VALUE), in its own process group like a job of a shell. */
static pid_t start(const char *name, const char *const *argv, const char *const *env) {
    char log[600];
    snprintf(log, sizeof log, "%s/%s.log", workdir, name);
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    for (int i = 0; env && env[i]; i++) putenv(strdup(env[i]));
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* The exit code (128 + signal when killed), or -1 when it did not end within the seconds. */
static int finish(pid_t pid, double seconds) {
    double end = dt_monotonic_seconds() + seconds;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (dt_monotonic_seconds() > end) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(50 * 1000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int path_exists(const char *run, const char *rel) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s/%s", workdir, run, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Waits until workdir/run/rel exists (polling often: some files live only for a few seconds). */
static int wait_for(const char *run, const char *rel, double seconds) {
    double end = dt_monotonic_seconds() + seconds;
    while (!path_exists(run, rel))
        if (dt_monotonic_seconds() > end)
            return -1;
        else
            usleep(10 * 1000);
    return 0;
}

/* Names ending in .tmp or starting with .tmp- anywhere under workdir/run. */
static int temporaries_left(const char *run) {
    char cmd[800];
    snprintf(cmd, sizeof cmd,
             "test -z \"$(find %s/%s \\( -name '*.tmp' -o -name '.tmp-*' \\) -print -quit)\"",
             workdir, run);
    return dt_test_run(cmd) != 0;
}

/* The step in "PREFIX<step>" of the log, or -1. */
static long step_after(const char *log, const char *prefix) {
    const char *at = strstr(log, prefix);
    return at ? atol(at + strlen(prefix)) : -1;
}

/* 1 when checkpoints/step-<step> of workdir/run verifies (every file there with its size and
 * checksum) and `latest` names it. */
static int checkpoint_complete(const char *run, long step) {
    char dir[700], latest[700];
    snprintf(dir, sizeof dir, "%s/%s/checkpoints/step-%08ld", workdir, run, step);
    snprintf(latest, sizeof latest, "%s/%s/checkpoints/latest", workdir, run);
    dt_ckpt_state state;
    dt_error err = {{0}, 0};
    if (dt_checkpoint_verify(dir, &state, &err)) {
        fprintf(stderr, "  %s\n", err.message);
        return 0;
    }
    char *pointer = dt_test_read_text(latest), want[64];
    snprintf(want, sizeof want, "step-%08ld", step);
    int named = pointer && strncmp(pointer, want, strlen(want)) == 0;
    free(pointer);
    return named && state.step == step;
}

/* The checks of a run stopped by a signal: exit 75, every rank at the same step, that step's
 * checkpoint complete and named by latest, model.safetensors written, no temporary left. */
static void check_stopped(const char *run, const char *how, int rc, int ranks) {
    CHECK_MSG(rc == 75, "%s: exit %d, not 75", how, rc);
    char *log = dt_test_read_log(workdir, run);
    long step = step_after(log, "dtrain: stopped by a signal after step ");
    CHECK_MSG(step > 0, "%s: rank 0 names no stop step", how);
    if (ranks > 1) {
        long other = step_after(log, "dtrain: rank 1: stopped by a signal after step ");
        CHECK_MSG(other == step, "%s: ranks stopped at steps %ld and %ld", how, step, other);
    }
    CHECK_MSG(step > 0 && checkpoint_complete(run, step),
              "%s: the stop checkpoint of step %ld is not complete", how, step);
    CHECK_MSG(path_exists(run, "model.safetensors"), "%s: no model.safetensors", how);
    CHECK_MSG(!temporaries_left(run), "%s: temporary files left", how);
    if (rc != 75 || step <= 0) fprintf(stderr, "---- %s ----\n%s\n", run, log);
    free(log);
}

static void config_args(const char *run, const char **argv, int *n, const char *extra) {
    static char config[600], dir[12][700];
    static int next;
    snprintf(config, sizeof config, "%s/base.yaml", workdir);
    char *d = dir[next++ % 12];
    snprintf(d, 700, "output.dir=%s/%s", workdir, run);
    argv[(*n)++] = dtrain_bin;
    argv[(*n)++] = config;
    argv[(*n)++] = d;
    if (extra) argv[(*n)++] = extra;
    argv[*n] = NULL;
}

/* ---- one process ---- */

static void test_sighup(void) {
    const char *argv[8];
    int n = 0;
    config_args("hup", argv, &n, NULL);
    const char *env[] = {"DTRAIN_TEST_STEP_DELAY_MS=200", "DTRAIN_TEST_SLOW_WRITE_MS=300", NULL};
    pid_t pid = start("hup", argv, env);
    CHECK(wait_for("hup", "checkpoints/latest", 300) == 0);
    kill(pid, SIGHUP);
    check_stopped("hup", "SIGHUP to dtrain", finish(pid, 300), 1);
}

/* A second SIGINT while the file `temporary` of the first evaluation's outputs is written. */
static void test_second_interrupt(const char *run, const char *temporary) {
    const char *argv[8];
    int n = 0;
    config_args(run, argv, &n, NULL);
    const char *env[] = {"DTRAIN_TEST_SLOW_WRITE_MS=2000", NULL};
    pid_t pid = start(run, argv, env);
    int seen = wait_for(run, temporary, 600) == 0;
    CHECK_MSG(seen, "%s never appeared", temporary);
    kill(pid, SIGINT);
    /* the second only once the first was handled: two pending SIGINTs would merge into one */
    double end = dt_monotonic_seconds() + 60;
    for (;;) {
        char *log = dt_test_read_log(workdir, run);
        int handled = strstr(log, "SIGINT received") != NULL;
        free(log);
        if (handled || dt_monotonic_seconds() > end) break;
        usleep(10 * 1000);
    }
    kill(pid, SIGINT);
    int rc = finish(pid, 120);
    CHECK_MSG(rc == 130, "second SIGINT during %s: exit %d, not 130", temporary, rc);
    CHECK_MSG(!temporaries_left(run), "second SIGINT during %s: temporary files left", temporary);
}

static void test_term_after_last_step(void) {
    const char *argv[8];
    int n = 0;
    config_args("late", argv, &n, "train.epochs=1");
    const char *env[] = {"DTRAIN_TEST_SLOW_WRITE_MS=1000", NULL};
    pid_t pid = start("late", argv, env);
    /* the final model file is written after the last step */
    CHECK(wait_for("late", "model.safetensors.tmp", 600) == 0);
    kill(pid, SIGTERM);
    int rc = finish(pid, 300);
    char *log = dt_test_read_log(workdir, "late");
    CHECK_MSG(rc == 0, "SIGTERM after the last step: exit %d, not 0", rc);
    CHECK(strstr(log, "SIGTERM received after the last training step: finishing"));
    CHECK_MSG(!strstr(log, "stopping after the current step with a checkpoint"),
              "the log promises a stop checkpoint that never comes");
    CHECK(path_exists("late", "model.safetensors"));
    CHECK(!temporaries_left("late"));
    free(log);
}

/* ---- two ranks ---- */

#define SLOW_ENV "DTRAIN_TEST_STEP_DELAY_MS=200", "DTRAIN_TEST_SLOW_WRITE_MS=1500"

static void test_launcher_signal(int sig, const char *name, int attempt) {
    char run[64], how[128], extra[600] = "DTRAIN_MPIRUN_ARGS=", mpirun[600], bin[4200];
    snprintf(run, sizeof run, "run-%s-%d", name, attempt);
    snprintf(how, sizeof how, "%s to dtrain-run -n 2 (try %d)", name, attempt);
    /* dtrain-run adds --allow-run-as-root itself; the other test flags pass through */
    for (int i = 1; i < mpirun_argc; i++)
        if (strcmp(mpirun_argv[i], "--allow-run-as-root") != 0)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " %s", mpirun_argv[i]);
    snprintf(mpirun, sizeof mpirun, "DTRAIN_MPIRUN=%s", mpirun_argv[0]);
    snprintf(bin, sizeof bin, "DTRAIN_BIN=%s", dtrain_bin);
    const char *env[] = {SLOW_ENV, mpirun, extra, bin, "OMP_NUM_THREADS=1", NULL};
    const char *argv[12] = {dtrain_run, "-n", "2", "--"};
    const char *dtrain_argv[8];
    int n = 0;
    config_args(run, dtrain_argv, &n, NULL);
    for (int i = 1; i <= n; i++) argv[3 + i] = dtrain_argv[i]; /* with the trailing NULL */
    pid_t pid = start(run, argv, env);
    CHECK_MSG(wait_for(run, "checkpoints/latest", 600) == 0, "%s: no first checkpoint", how);
    kill(pid, sig);
    check_stopped(run, how, finish(pid, 600), 2);
}

static int mpirun_args(const char **argv) {
    int n = 0;
    for (int i = 0; i < mpirun_argc; i++) argv[n++] = mpirun_argv[i];
    argv[n++] = "-np";
    argv[n++] = "2";
    return n;
}

static void test_plain_mpirun(void) {
    /* SIGUSR1 to mpirun: forwarded to every rank as it is, the documented safe stop */
    const char *argv[MAX_ARGS + 16], *env[] = {SLOW_ENV, "OMP_NUM_THREADS=1", NULL};
    int n = mpirun_args(argv);
    config_args("mpirun-usr1", argv, &n, NULL);
    pid_t pid = start("mpirun-usr1", argv, env);
    CHECK(wait_for("mpirun-usr1", "checkpoints/latest", 600) == 0);
    kill(pid, SIGUSR1);
    check_stopped("mpirun-usr1", "SIGUSR1 to a plain mpirun", finish(pid, 600), 2);
    /* SIGTERM to mpirun: it kills the ranks about a second later, before the slowed stop
     * checkpoint is complete. No rank may then claim that it was written. */
    n = mpirun_args(argv);
    config_args("mpirun-term", argv, &n, NULL);
    pid = start("mpirun-term", argv, env);
    CHECK(wait_for("mpirun-term", "checkpoints/latest", 600) == 0);
    kill(pid, SIGTERM);
    int rc = finish(pid, 600);
    printf("SIGTERM to a plain mpirun: exit %d\n", rc);
    char *log = dt_test_read_log(workdir, "mpirun-term");
    long claimed = step_after(log, "stopped by a signal after step ");
    if (claimed < 0) claimed = step_after(log, "rank 1: stopped by a signal after step ");
    CHECK_MSG(claimed < 0 || checkpoint_complete("mpirun-term", claimed),
              "a rank claims the checkpoint of step %ld, which is not complete", claimed);
    free(log);
}

/* Rank 0 cannot write the stop's model.safetensors (its temporary name is taken by a folder):
 * rank 1 must not claim the checkpoint and model written, nor exit 75. */
static void test_stop_write_fails(void) {
    const char *argv[MAX_ARGS + 16], *env[] = {SLOW_ENV, "OMP_NUM_THREADS=1", NULL};
    int n = mpirun_args(argv);
    config_args("fails", argv, &n, NULL);
    pid_t pid = start("fails", argv, env);
    CHECK(wait_for("fails", "checkpoints/latest", 600) == 0);
    char blocker[600];
    snprintf(blocker, sizeof blocker, "%s/fails/model.safetensors.tmp", workdir);
    CHECK(mkdir(blocker, 0755) == 0);
    kill(pid, SIGUSR1);
    int rc = finish(pid, 600);
    char *log = dt_test_read_log(workdir, "fails");
    CHECK_MSG(rc != 0 && rc != 75, "a stop whose model file failed: exit %d", rc);
    CHECK_MSG(!strstr(log, "rank 1: stopped by a signal after step"),
              "rank 1 claims files that rank 0 did not write");
    CHECK(strstr(log, "model.safetensors.tmp") != NULL);
    if (rc == 75 || strstr(log, "rank 1: stopped by a signal after step"))
        fprintf(stderr, "---- fails ----\n%s\n", log);
    free(log);
}

int main(int argc, char **argv) {
    int mpi = argc >= 5 && strcmp(argv[1], "mpi") == 0;
    if (!mpi && !(argc == 3 && strcmp(argv[1], "single") == 0)) {
        fprintf(stderr, "usage: %s single DTRAIN | mpi DTRAIN DTRAIN_RUN MPIRUN [FLAGS...]\n",
                argv[0]);
        return 2;
    }
    static char bin[4096];
    if (dt_test_program_path(argv[2], bin, sizeof bin)) return 2;
    dtrain_bin = bin;
    if (mpi) {
        dtrain_run = argv[3];
        for (int i = 4; i < argc && mpirun_argc < MAX_ARGS - 1; i++)
            mpirun_argv[mpirun_argc++] = argv[i];
    }
    if (dt_test_small_run_setup("dtrain-stops", 100, mpi ? 2 : 4, 2, workdir, sizeof workdir))
        return 1;

    if (!mpi) {
        test_sighup();
        test_second_interrupt("int-report", "report.html.tmp");
        test_second_interrupt("int-csv", "confusion_matrix.csv.tmp");
        test_term_after_last_step();
    } else {
        /* several tries each: the race this guards against does not show every time */
        static const struct {
            int sig;
            const char *name;
        } stops[] = {{SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"}, {SIGHUP, "SIGHUP"}};
        for (int attempt = 1; attempt <= 2; attempt++)
            for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
                test_launcher_signal(stops[i].sig, stops[i].name, attempt);
        test_plain_mpirun();
        test_stop_write_fails();
    }
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary(mpi ? "stop_signals_mpi" : "stop_signals");
}
