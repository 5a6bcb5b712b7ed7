/* Edge session data: the answer of GET /v1/edge/session (docs/dataplane.md,
 * "Edge session data"), parsed with jansson into fixed records. */
#ifndef WEFT_LIB_SESSDATA_H
#define WEFT_LIB_SESSDATA_H

#include <stddef.h>
#include <stdint.h>

#include "edge/lib/msg.h"

typedef struct {
    char id[WEFT_NAME_MAX];
    char name[WEFT_NAME_MAX];
    char intercept[256]; /* "tcp:HOST:PORT" / "udp:HOST:PORT", "" when not given */
    char host[256];
    int dial, bind;
    char *dial_token; /* NULL when the identity may not dial */
    char *bind_token;
    int64_t expires_at; /* Unix time the tokens expire; 0 if not given */
} weft_svc;

typedef struct {
    char id[WEFT_NAME_MAX];
    char name[WEFT_NAME_MAX];
    char edge_listen[256];
} weft_router;

typedef struct {
    char identity_id[WEFT_NAME_MAX];
    weft_svc *svcs;
    size_t nsvcs;
    weft_router *routers;
    size_t nrouters;
    unsigned refresh_s;
} weft_sessdata;

/* Parses the JSON body (len bytes); the "data" envelope is optional. */
int weft__sessdata_parse(const char *json, size_t len, weft_sessdata *out, char *err,
                         size_t errcap);
void weft__sessdata_free(weft_sessdata *sd);
const weft_svc *weft__sessdata_find(const weft_sessdata *sd, const char *name);
/* Seconds until the next refresh: refresh_s (the smaller of ours and the
 * controller's), earlier when a token expires first (a minute of margin, or
 * half of what is left); at least 1. */
unsigned weft__sessdata_next_refresh(const weft_sessdata *sd, int64_t now, unsigned refresh_s);
/* RFC 3339 UTC ("2026-11-25T03:00:00Z", fractions allowed) to Unix time. */
int weft__parse_rfc3339(const char *s, int64_t *out);

#endif
