/* Printable copies of names and paths for terminals and log files: control characters and bytes
 * that are not UTF-8 are written as escapes, so a file or folder name can neither move the cursor,
 * recolour the terminal nor forge a line of output. */
#ifndef DTRAIN_TEXT_ESCAPE_H
#define DTRAIN_TEXT_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Copies text into out (NUL-terminated, at most size bytes in all) with \n \r \t \e for those
 * characters, \xHH for the other C0 controls, DEL, C1 controls (U+0080..U+009F) and bytes that
 * are not part of well-formed UTF-8; everything else (printable ASCII, other UTF-8) unchanged.
 * Cut text ends with "..." (never in the middle of a character or an escape). Returns out. */
const char *dt_escape_text(const char *text, char *out, size_t size);

/* True when text is well-formed UTF-8 with none of the characters dt_escape_text escapes, i.e.
 * it prints as it is. */
bool dt_text_is_printable(const char *text);

#endif
