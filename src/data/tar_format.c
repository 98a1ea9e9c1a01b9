/* POSIX tar (ustar) header blocks: parsing with every field checked (a shard may be hostile)
 * and writing the plain ustar headers of `dtrain pack`. */
#include "tar_internal.h"

#include <stdio.h>
#include <string.h>

/* Field offsets of a ustar header block. */
enum {
    NAME_AT = 0,
    NAME_LEN = 100,
    MODE_AT = 100,
    UID_AT = 108,
    GID_AT = 116,
    SIZE_AT = 124,
    MTIME_AT = 136,
    CHECKSUM_AT = 148,
    TYPEFLAG_AT = 156,
    MAGIC_AT = 257,
    VERSION_AT = 263,
    PREFIX_AT = 345,
    PREFIX_LEN = 155,
};

/* An octal field: optional leading spaces, digits, then NUL or space to the end. Base-256
 * (GNU, first byte with the high bit set) is accepted for sizes; a value past 2^63 is clamped
 * there, so that it fails the bounds check against the shard's size. */
static int parse_number(const uint8_t *field, size_t length, uint64_t *value) {
    uint64_t result = 0;
    if (field[0] & 0x80) {
        if (field[0] != 0x80) return -1; /* negative base-256 value */
        for (size_t i = 1; i < length; i++) {
            if (result >> 55) return *value = UINT64_MAX >> 1, 0;
            result = (result << 8) | field[i];
        }
        *value = result;
        return 0;
    }
    size_t i = 0;
    while (i < length && field[i] == ' ') i++;
    size_t digits = 0;
    for (; i < length && field[i] >= '0' && field[i] <= '7'; i++, digits++) {
        if (result >> 60) return -1;
        result = result * 8 + (uint64_t)(field[i] - '0');
    }
    for (; i < length; i++)
        if (field[i] != ' ' && field[i] != '\0') return -1;
    if (digits == 0) return -1;
    *value = result;
    return 0;
}

static size_t bounded_length(const uint8_t *field, size_t length) {
    size_t n = 0;
    while (n < length && field[n]) n++;
    return n;
}

int dt_tar_parse_header(const uint8_t block[DT_TAR_BLOCK], dt_tar_header *header, dt_error *err) {
    memset(header, 0, sizeof *header);
    int all_zero = 1;
    for (int i = 0; i < DT_TAR_BLOCK && all_zero; i++) all_zero = block[i] == 0;
    if (all_zero) return 0;
    if (memcmp(block + MAGIC_AT, "ustar", 5) != 0)
        return dt_fail(err, "not a tar header (no ustar magic)");
    uint64_t stored;
    if (parse_number(block + CHECKSUM_AT, 8, &stored) != 0)
        return dt_fail(err, "not a tar header (unreadable checksum field)");
    uint64_t sum_unsigned = 0;
    int64_t sum_signed = 0;
    for (int i = 0; i < DT_TAR_BLOCK; i++) {
        uint8_t byte = (i >= CHECKSUM_AT && i < CHECKSUM_AT + 8) ? (uint8_t)' ' : block[i];
        sum_unsigned += byte;
        sum_signed += (int8_t)byte;
    }
    if (stored != sum_unsigned && (int64_t)stored != sum_signed)
        return dt_fail(err, "not a tar header (checksum %llu, expected %llu)",
                       (unsigned long long)stored, (unsigned long long)sum_unsigned);
    if (parse_number(block + SIZE_AT, 12, &header->size) != 0)
        return dt_fail(err, "tar header with an unreadable size field");

    size_t name_length = bounded_length(block + NAME_AT, NAME_LEN);
    size_t used = 0;
    int posix = memcmp(block + MAGIC_AT, "ustar\0", 6) == 0;
    size_t prefix_length = posix ? bounded_length(block + PREFIX_AT, PREFIX_LEN) : 0;
    if (prefix_length) {
        memcpy(header->name, block + PREFIX_AT, prefix_length);
        header->name[prefix_length] = '/';
        used = prefix_length + 1;
    }
    memcpy(header->name + used, block + NAME_AT, name_length);
    header->name[used + name_length] = '\0';

    header->typeflag = (char)block[TYPEFLAG_AT];
    switch (header->typeflag) {
    case '0':
    case '\0':
    case '7':
        header->kind = DT_TAR_REGULAR;
        break;
    case '5':
        header->kind = DT_TAR_DIRECTORY;
        break;
    case 'x':
        header->kind = DT_TAR_PAX_LOCAL;
        break;
    case 'g':
        header->kind = DT_TAR_PAX_GLOBAL;
        break;
    case 'L':
        header->kind = DT_TAR_GNU_LONGNAME;
        break;
    default:
        header->kind = DT_TAR_OTHER;
        break;
    }
    return 1;
}

int dt_tar_pax_path(const char *records, size_t length, char *path, size_t size) {
    size_t at = 0;
    int found = 0;
    while (at < length) {
        size_t record_length = 0, digits = 0;
        while (at + digits < length && records[at + digits] >= '0' && records[at + digits] <= '9') {
            if (record_length > length) return -1;
            record_length = record_length * 10 + (size_t)(records[at + digits] - '0');
            digits++;
        }
        if (digits == 0 || record_length <= digits + 1 || record_length > length - at ||
            records[at + digits] != ' ' || records[at + record_length - 1] != '\n')
            return -1;
        const char *key = records + at + digits + 1;
        size_t rest = record_length - digits - 2; /* "key=value" without the newline */
        const char *equals = memchr(key, '=', rest);
        if (!equals) return -1;
        size_t key_length = (size_t)(equals - key), value_length = rest - key_length - 1;
        if (key_length == 4 && memcmp(key, "path", 4) == 0) {
            if (value_length + 1 > size || memchr(equals + 1, '\0', value_length)) return -1;
            memcpy(path, equals + 1, value_length);
            path[value_length] = '\0';
            found = 1;
        }
        at += record_length;
    }
    return found;
}

static void write_octal(uint8_t *field, size_t length, uint64_t value) {
    /* length - 1 digits, zero-padded, then NUL */
    for (size_t i = length - 1; i-- > 0;) {
        field[i] = (uint8_t)('0' + (value & 7));
        value >>= 3;
    }
    field[length - 1] = '\0';
}

int dt_tar_make_header(const char *name, uint64_t size, uint8_t block[DT_TAR_BLOCK]) {
    memset(block, 0, DT_TAR_BLOCK);
    size_t length = strlen(name);
    if (size >= ((uint64_t)1 << 33)) return -1;
    if (length <= NAME_LEN) {
        memcpy(block + NAME_AT, name, length);
    } else {
        /* split at a '/' so that the prefix fits 155 bytes and the rest 100 */
        size_t split = length < PREFIX_LEN + 1 ? length - 1 : PREFIX_LEN;
        while (split > 0 && name[split] != '/') split--;
        if (split == 0 || length - split - 1 > NAME_LEN || length - split - 1 == 0) return -1;
        memcpy(block + PREFIX_AT, name, split);
        memcpy(block + NAME_AT, name + split + 1, length - split - 1);
    }
    write_octal(block + MODE_AT, 8, 0644);
    write_octal(block + UID_AT, 8, 0);
    write_octal(block + GID_AT, 8, 0);
    write_octal(block + SIZE_AT, 12, size);
    write_octal(block + MTIME_AT, 12, 0);
    block[TYPEFLAG_AT] = '0';
    memcpy(block + MAGIC_AT, "ustar", 6); /* with its NUL */
    memcpy(block + VERSION_AT, "00", 2);
    memset(block + CHECKSUM_AT, ' ', 8);
    uint64_t sum = 0;
    for (int i = 0; i < DT_TAR_BLOCK; i++) sum += block[i];
    /* six octal digits, NUL, space: the layout tar programs write */
    snprintf((char *)block + CHECKSUM_AT, 8, "%06o", (unsigned)sum);
    block[CHECKSUM_AT + 7] = ' ';
    return 0;
}
