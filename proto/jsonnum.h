/* Whole numbers in the JSON bodies of control messages, read one way by every
 * parser: a key that is absent is 0; one that is present must be an integer
 * in [0, hi], or the message is malformed. */
#ifndef PR_JSONNUM_H
#define PR_JSONNUM_H

#include <jansson.h>
#include <stdint.h>

#include "weft/errors.h"

static inline int pr_json_uint(const json_t *o, const char *key, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > hi)
        return WEFT_EPROTO;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

#endif
