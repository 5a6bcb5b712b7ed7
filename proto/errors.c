#include <stdarg.h>
#include <stdio.h>

#include "proto/errf.h"

#include "weft/errors.h"

const char *weft_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(name, val, msg)                                                                         \
    case val:                                                                                      \
        return msg;
        WEFT_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *weft_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define XX(name, val, msg)                                                                         \
    case val:                                                                                      \
        return "E" #name;
        WEFT_ERRNO_MAP(XX)
#undef XX
    default:
        return "EUNKNOWN";
    }
}

int pr_errf(char *err, size_t cap, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && cap > 0) {
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}
