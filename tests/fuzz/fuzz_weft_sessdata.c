/* Fuzzes libweft's session-data parser (edge/lib/sessdata.c): the JSON body of
 * GET /v1/edge/session, and the RFC 3339 times and refresh arithmetic behind
 * it.
 *
 * Checks, beyond "no crash, no read out of bounds, no undefined behaviour":
 *  - a parsed result is self-consistent (every name NUL-terminated and found
 *    again by weft__sessdata_find, every router has an address);
 *  - the next refresh is between 1 s and refresh_s whatever the expiry times,
 *    at any clock. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/lib/sessdata.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const weft_sessdata *sd)
{
    static const int64_t clocks[] = {0, 1764000000, INT64_MAX, INT64_MIN};
    unsigned n;
    size_t i;

    for (i = 0; i < sd->nsvcs; i++) {
        if (memchr(sd->svcs[i].name, '\0', sizeof(sd->svcs[i].name)) == NULL ||
            weft__sessdata_find(sd, sd->svcs[i].name) == NULL)
            abort();
    }
    for (i = 0; i < sd->nrouters; i++)
        if (memchr(sd->routers[i].edge_listen, '\0', sizeof(sd->routers[i].edge_listen)) == NULL)
            abort();
    for (i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
        n = weft__sessdata_next_refresh(sd, clocks[i], 60);
        if (n < 1 || n > 60)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_sessdata sd;
    char err[256], *s;
    int64_t t;

    if (weft__sessdata_parse((const char *)data, size, &sd, err, sizeof(err)) == 0) {
        check(&sd);
        weft__sessdata_free(&sd);
    } else if (memchr(err, '\0', sizeof(err)) == NULL) {
        abort();
    }
    /* The time parser alone, on the raw bytes as a string. */
    if ((s = malloc(size + 1)) == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    weft__parse_rfc3339(s, &t);
    free(s);
    return 0;
}
