/* Error sentences into a caller's buffer: the (err, errcap) convention of
 * every function that explains its failure to a person. */
#ifndef PR_ERRF_H
#define PR_ERRF_H

#include <stddef.h>

/* Formats into err (if err and cap are non-zero) and returns code, so that
 * `return pr_errf(err, cap, WEFT_EINVAL, "...")` reports and fails at once. */
int pr_errf(char *err, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
