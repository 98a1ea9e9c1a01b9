/* Tests of the shared helpers in src/util: dt_read_file (contents, NUL end, pipes, refusals and
 * the errno causes callers word their messages from), the text buffer, strict UTF-8 decoding and
 * validation, and FNV-1a 64 against the published test vectors. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/bytes.h"
#include "dtrain/platform.h"

static char dir[256];

static void write_file(const char *path, const void *bytes, size_t size) {
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    if (!file) return;
    CHECK(fwrite(bytes, 1, size, file) == size);
    CHECK(fclose(file) == 0);
}

static void test_read_file(void) {
    char path[400];
    dt_error err = {0};
    uint8_t *bytes = NULL;
    size_t size = 0;
    int rc, cause;

    snprintf(path, sizeof path, "%s/data.bin", dir);
    const uint8_t data[] = {'a', 0, 0xff, 'z'};
    write_file(path, data, sizeof data);
    CHECK_INT_EQ(dt_read_file(path, 4, &bytes, &size, &err), 0);
    CHECK_INT_EQ(size, 4);
    CHECK(bytes && memcmp(bytes, data, 4) == 0 && bytes[4] == 0);
    free(bytes);

    /* Over the limit: refused before reading, EFBIG. */
    rc = dt_read_file(path, 3, &bytes, &size, &err);
    cause = errno; /* before anything else can change it */
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, EFBIG);
    CHECK(bytes == NULL && size == 0);
    CHECK_MSG(strstr(err.message, "data.bin: file too large (4 bytes)"), "%s", err.message);

    /* Empty: a buffer holding just the NUL. */
    snprintf(path, sizeof path, "%s/empty.bin", dir);
    write_file(path, "", 0);
    CHECK_INT_EQ(dt_read_file(path, 0, &bytes, &size, &err), 0);
    CHECK(bytes != NULL && size == 0 && bytes[0] == 0);
    free(bytes);

    /* Missing: the open error, with errno as open set it. */
    snprintf(path, sizeof path, "%s/absent.bin", dir);
    rc = dt_read_file(path, SIZE_MAX, &bytes, &size, &err);
    cause = errno; /* before anything else can change it */
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, ENOENT);
    CHECK_MSG(strstr(err.message, "absent.bin: cannot open: No such file or directory"), "%s",
              err.message);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_RUNTIME);

    /* A folder is not a regular file (nor a pipe). */
    rc = dt_read_file(dir, SIZE_MAX, &bytes, &size, &err);
    cause = errno;
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, EISDIR);
    rc = dt_read_file_or_pipe(dir, SIZE_MAX, &bytes, &size, &err);
    cause = errno; /* before anything else can change it */
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, EISDIR);
    CHECK_MSG(strstr(err.message, ": not a regular file"), "%s", err.message);
}

/* A pipe holding n bytes of text (its write end closed), opened again through /dev/fd. */
static int pipe_holding(const char *text, size_t n, char *path, size_t path_size) {
    int ends[2];
    if (pipe(ends) != 0) return -1;
    ssize_t written = write(ends[1], text, n);
    close(ends[1]);
    if (written != (ssize_t)n) {
        close(ends[0]);
        return -1;
    }
    snprintf(path, path_size, "/dev/fd/%d", ends[0]);
    return ends[0];
}

static void test_read_pipes(void) {
    char path[64];
    dt_error err = {0};
    uint8_t *bytes = NULL;
    size_t size = 0;
    int rc, cause;

    /* dt_read_file refuses a pipe. */
    int fd = pipe_holding("abc", 3, path, sizeof path);
    CHECK(fd >= 0);
    rc = dt_read_file(path, 100, &bytes, &size, &err);
    cause = errno;
    CHECK_INT_EQ(rc, -1);
    CHECK_INT_EQ(cause, EINVAL);
    CHECK_MSG(strstr(err.message, ": not a regular file"), "%s", err.message);
    close(fd);

    /* Read to the end, over several growth steps. */
    static char text[20000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 26);
    fd = pipe_holding(text, sizeof text, path, sizeof path);
    CHECK(fd >= 0);
    CHECK_INT_EQ(dt_read_file_or_pipe(path, sizeof text, &bytes, &size, &err), 0);
    CHECK_INT_EQ(size, sizeof text);
    CHECK(bytes && memcmp(bytes, text, sizeof text) == 0 && bytes[sizeof text] == 0);
    free(bytes);
    close(fd);

    /* One byte over the limit, whether or not the limit falls on a growth step. */
    size_t limits[] = {sizeof text - 1, 10};
    for (size_t i = 0; i < 2; i++) {
        fd = pipe_holding(text, limits[i] + 1, path, sizeof path);
        CHECK(fd >= 0);
        rc = dt_read_file_or_pipe(path, limits[i], &bytes, &size, &err);
        cause = errno;
        CHECK_INT_EQ(rc, -1);
        CHECK_INT_EQ(cause, EFBIG);
        CHECK(bytes == NULL && size == 0);
        CHECK_MSG(strstr(err.message, ": file too large (over "), "%s", err.message);
        close(fd);
    }

    /* Empty. */
    fd = pipe_holding("", 0, path, sizeof path);
    CHECK_INT_EQ(dt_read_file_or_pipe(path, 10, &bytes, &size, &err), 0);
    CHECK(bytes != NULL && size == 0 && bytes[0] == 0);
    free(bytes);
    close(fd);
}

static void test_text_buffer(void) {
    dt_text t = {0};
    dt_text_append(&t, "ab", 2);
    CHECK_STR_EQ(t.data, "ab");
    dt_text_printf(&t, "-%d-%s", 42, "x");
    CHECK_STR_EQ(t.data, "ab-42-x");
    /* Longer than any first capacity: grows, keeps what was there. */
    char long_text[5000];
    memset(long_text, 'q', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    dt_text_printf(&t, "%s", long_text);
    CHECK_INT_EQ(t.length, 7 + sizeof long_text - 1);
    CHECK(t.data && strncmp(t.data, "ab-42-x", 7) == 0 && strcmp(t.data + 7, long_text) == 0);
    CHECK(!t.failed);
    free(t.data);
}

static void test_utf8(void) {
    uint32_t code = 0;
    CHECK_INT_EQ(dt_utf8_decode((const uint8_t *)"A", 1, &code), 1);
    CHECK_INT_EQ(code, 'A');
    CHECK_INT_EQ(dt_utf8_decode((const uint8_t *)"\xc3\xa9", 2, &code), 2);
    CHECK_INT_EQ(code, 0xE9);
    CHECK_INT_EQ(dt_utf8_decode((const uint8_t *)"\xe2\x80\xa8", 3, &code), 3);
    CHECK_INT_EQ(code, 0x2028);
    CHECK_INT_EQ(dt_utf8_decode((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, &code), 4);
    CHECK_INT_EQ(code, 0x10FFFF);
    CHECK_INT_EQ(dt_utf8_decode((const uint8_t *)"\xf0\x9f\x98\x80", 4, NULL), 4);

    /* Each of these is not well formed at its first byte. */
    static const struct {
        const char *bytes;
        size_t length;
    } bad[] = {
        {"\x80", 1},             /* a stray continuation byte */
        {"\xc0\xaf", 2},         /* overlong '/' */
        {"\xc1\xbf", 2},         /* overlong */
        {"\xe0\x9f\xbf", 3},     /* overlong */
        {"\xf0\x8f\xbf\xbf", 4}, /* overlong */
        {"\xed\xa0\x80", 3},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4}, /* no such lead byte */
        {"\xe2\x82", 2},         /* cut short */
        {"\xc3\x28", 2},         /* a lead byte without its continuation */
        {"\xff", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const uint8_t *b = (const uint8_t *)bad[i].bytes;
        CHECK_MSG(dt_utf8_decode(b, bad[i].length, &code) == 0, "bad case %zu decoded", i);
        size_t offset = 99;
        CHECK_MSG(dt_utf8_validate(b, bad[i].length, &offset) == -1 && offset == 0,
                  "bad case %zu: validate gave offset %zu", i, offset);
    }
    /* The offset is that of the first byte of the first bad sequence. */
    const char *text = "ok \xc3\xa9 \xe2\x82";
    size_t offset = 0;
    CHECK_INT_EQ(dt_utf8_validate((const uint8_t *)text, strlen(text), &offset), -1);
    CHECK_INT_EQ(offset, 6);
    CHECK_INT_EQ(dt_utf8_validate((const uint8_t *)text, 6, NULL), 0);
    CHECK_INT_EQ(dt_utf8_validate((const uint8_t *)"", 0, NULL), 0);
    /* A NUL is a valid (one-byte) code point. */
    CHECK_INT_EQ(dt_utf8_validate((const uint8_t *)"a\0b", 3, NULL), 0);
}

static void test_fnv1a64(void) {
    /* Test vectors from the FNV reference (draft-eastlake-fnv). */
    CHECK(dt_fnv1a64(DT_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
    CHECK(dt_fnv1a64(DT_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(dt_fnv1a64(DT_FNV1A64_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
    /* Feeding in pieces gives the hash of the whole. */
    CHECK(dt_fnv1a64(dt_fnv1a64(DT_FNV1A64_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dtrain_test_util_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_read_file();
    test_read_pipes();
    test_text_buffer();
    test_utf8();
    test_fnv1a64();

    char path[400];
    const char *names[] = {"data.bin", "empty.bin"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return dt_test_summary("test_util");
}
