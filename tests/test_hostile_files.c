/* The helpers that keep odd files and names harmless: reading never blocks on a FIFO (whole-file
 * reads, image decode, the loader, which skips such a file like an undecodable one), paths are
 * joined or refused but never cut, printed names are escaped, closed standard descriptors are
 * filled, and a cut error message says so. A hang fails the test through alarm(). */
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
#include "dtrain/data.h"
#include "dtrain/platform.h"
#include "dtrain/text_escape.h"
#include "imagegen.h"

static char workdir[256];

static void test_fifo_reads(void) {
    char fifo[400];
    snprintf(fifo, sizeof fifo, "%s/image.jpg", workdir);
    CHECK(mkfifo(fifo, 0600) == 0);
    uint8_t *bytes = NULL;
    size_t size = 0;
    dt_error err = {{0}, 0};
    alarm(20); /* a blocking open would hang here: SIGALRM ends the test as failed */
    int rc = dt_read_file(fifo, 100, &bytes, &size, &err);
    int cause = errno;
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, EINVAL);
    CHECK_MSG(strstr(err.message, "image.jpg: not a regular file (a FIFO)"), "%s", err.message);
    dt_image img;
    CHECK_INT_EQ(dt_image_decode_file(fifo, &img, &err), -1);
    int fd = -1;
    uint64_t file_size = 0;
    CHECK_INT_EQ(dt_open_regular_file(fifo, &fd, &file_size, &err), -1);
    CHECK_INT_EQ(fd, -1);
    alarm(0);
    remove(fifo);
}

/* An image replaced by a FIFO after the scan: the loader skips it like an undecodable file. */
static void test_loader_skips_fifo(void) {
    char root[400], victim[500];
    snprintf(root, sizeof root, "%s/data", workdir);
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(root, 2, 4, 20, 20, 1, &err) == 0, "%s",
              err.message);
    dt_dataset ds;
    CHECK_MSG(dt_dataset_scan(root, &ds, &err) == 0, "%s", err.message);
    CHECK_INT_EQ(ds.n_files, 8);
    snprintf(victim, sizeof victim, "%s", ds.files[2].path);
    CHECK(remove(victim) == 0 && mkfifo(victim, 0600) == 0);
    dt_loader_options opt = {.batch_size = 4,
                             .image_size = 16,
                             .resize = DT_RESIZE_SQUASH,
                             .augment = DT_AUGMENT_NONE,
                             .workers = 2,
                             .prefetch_batches = 2,
                             .seed = 1};
    dt_loader *loader = NULL;
    CHECK_MSG(dt_loader_create(&ds, &opt, &loader, &err) == 0, "%s", err.message);
    uint32_t order[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    alarm(30);
    int counted = 0, batches = 0;
    if (loader && dt_loader_start(loader, order, 8, 1, 0, &err) == 0) {
        for (;;) {
            const dt_batch *batch = NULL;
            if (dt_loader_next(loader, &batch, &err) || !batch) break;
            if (batches == 0) CHECK_INT_EQ(batch->counts[2], 0);
            counted += batch->n_counted;
            batches++;
            dt_loader_release(loader, batch);
        }
        CHECK_INT_EQ(batches, 2);
        CHECK_INT_EQ(counted, 7);
        const uint8_t *bad = dt_loader_bad_files(loader);
        CHECK(bad[2] == 1 && bad[0] == 0 && bad[7] == 0);
    }
    alarm(0);
    dt_loader_destroy(loader);
    dt_dataset_free(&ds);
}

static void test_path_join(void) {
    char out[16];
    dt_error err = {{0}, 0};
    CHECK_INT_EQ(dt_path_join(out, sizeof out, "abcdef", "ghijklmn", &err), 0);
    CHECK_STR_EQ(out, "abcdef/ghijklmn"); /* 15 bytes + NUL: fits exactly */
    CHECK_INT_EQ(dt_path_join(out, sizeof out, "abcdefg", "ghijklmn", &err), -1);
    CHECK_STR_EQ(out, "");
    CHECK_MSG(strstr(err.message, "abcdefg/ghijklmn: path too long (16 bytes, at most 15)"), "%s",
              err.message);
}

static void test_escape(void) {
    char out[128];
    CHECK_STR_EQ(dt_escape_text("a\033[31mb\n\r\t\a\x7f", out, sizeof out),
                 "a\\e[31mb\\n\\r\\t\\x07\\x7F");
    CHECK_STR_EQ(dt_escape_text("caf\xff \xc3\xa9 \xc2\x9b!", out, sizeof out),
                 "caf\\xFF \xc3\xa9 \\u009B!");
    CHECK_STR_EQ(dt_escape_text("plain / path", out, sizeof out), "plain / path");
    /* cut: never inside a character or an escape, always with the dots */
    CHECK_STR_EQ(dt_escape_text("abcdefgh", out, 8), "abcd...");
    CHECK_STR_EQ(dt_escape_text("ab\xc3\xa9\xc3\xa9\xc3\xa9", out, 8), "ab\xc3\xa9...");
    CHECK_STR_EQ(dt_escape_text("ab\ncdefgh", out, 8), "ab\\n...");
    CHECK_STR_EQ(dt_escape_text("abc\n", out, 7), "abc\\n");
    CHECK(dt_text_is_printable("caf\xc3\xa9 \"x\" \\ y"));
    CHECK(!dt_text_is_printable("a\nb"));
    CHECK(!dt_text_is_printable("a\xff"));
    CHECK(!dt_text_is_printable("\xc2\x85"));
}

/* In a child with descriptors 1 and 2 closed: the guard fills them, so a file opened next gets a
 * descriptor above 2. */
static void test_standard_descriptors(void) {
    pid_t pid = fork();
    if (pid == 0) {
        close(1);
        close(2);
        if (dt_keep_standard_descriptors_open() != 0) _exit(10);
        int fd = open("/dev/null", O_RDONLY);
        _exit(fd > 2 ? 0 : 11);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

static void test_cut_error_message(void) {
    dt_error err = {{0}, 0};
    static char long_name[3000];
    memset(long_name, 'x', sizeof long_name - 1);
    dt_fail(&err, "%s: broken", long_name);
    size_t length = strlen(err.message);
    CHECK_INT_EQ(length, sizeof err.message - 1);
    CHECK(strcmp(err.message + length - 3, "...") == 0);
}

int main(void) {
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-hostile-files", workdir, sizeof workdir, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    test_fifo_reads();
    test_loader_skips_fifo();
    test_path_join();
    test_escape();
    test_standard_descriptors();
    test_cut_error_message();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("hostile_files");
}
