/* Parsing of the edge session data (GET /v1/edge/session). */
#define _GNU_SOURCE /* strptime */
#include "edge/lib/sessdata.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/errors.h"

static int copy_str(json_t *o, const char *key, char *out, size_t cap, int required)
{
    const char *s = json_string_value(json_object_get(o, key));

    out[0] = '\0';
    if (s == NULL)
        return required ? WEFT_EJSON : 0;
    if (strlen(s) >= cap)
        return WEFT_ETOOBIG;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int weft__parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm;
    const char *p;

    memset(&tm, 0, sizeof(tm));
    if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return WEFT_EINVAL;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    /* Only UTC: the controller writes "Z"; an offset would need arithmetic
     * nobody has asked for. */
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return WEFT_EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static char *dup_token(json_t *tokens, const char *act)
{
    const char *t = json_string_value(json_object_get(tokens, act));

    return t ? strdup(t) : NULL;
}

static int parse_svc(json_t *o, weft_svc *s)
{
    json_t *tokens = json_object_get(o, "tokens");
    const char *exp = json_string_value(json_object_get(o, "expires_at"));

    if (!json_is_object(o) || copy_str(o, "name", s->name, sizeof(s->name), 1) < 0 ||
        copy_str(o, "id", s->id, sizeof(s->id), 0) < 0 ||
        copy_str(o, "intercept", s->intercept, sizeof(s->intercept), 0) < 0 ||
        copy_str(o, "host", s->host, sizeof(s->host), 0) < 0)
        return WEFT_EJSON;
    s->dial = json_is_true(json_object_get(o, "dial"));
    s->bind = json_is_true(json_object_get(o, "bind"));
    s->dial_token = dup_token(tokens, "dial");
    s->bind_token = dup_token(tokens, "bind");
    if (exp && weft__parse_rfc3339(exp, &s->expires_at) < 0)
        return WEFT_EJSON;
    return 0;
}

static int parse_router(json_t *o, weft_router *r)
{
    if (!json_is_object(o) ||
        copy_str(o, "edge_listen", r->edge_listen, sizeof(r->edge_listen), 1) < 0 ||
        copy_str(o, "id", r->id, sizeof(r->id), 0) < 0 ||
        copy_str(o, "name", r->name, sizeof(r->name), 0) < 0)
        return WEFT_EJSON;
    return 0;
}

static int parse_arrays(json_t *d, weft_sessdata *sd, char *err, size_t errcap)
{
    json_t *svcs = json_object_get(d, "services"), *rts = json_object_get(d, "routers");
    size_t i;

    if (!json_is_array(svcs) || !json_is_array(rts)) {
        snprintf(err, errcap, "session data lacks the services or routers array");
        return WEFT_EJSON;
    }
    sd->svcs = calloc(json_array_size(svcs) + 1, sizeof(*sd->svcs));
    sd->routers = calloc(json_array_size(rts) + 1, sizeof(*sd->routers));
    if (sd->svcs == NULL || sd->routers == NULL)
        return WEFT_ENOMEM;
    for (i = 0; i < json_array_size(svcs); i++)
        if ((sd->nsvcs = i + 1) && parse_svc(json_array_get(svcs, i), &sd->svcs[i]) < 0) {
            snprintf(err, errcap, "service %zu in session data is malformed", i);
            return WEFT_EJSON;
        }
    for (i = 0; i < json_array_size(rts); i++)
        if ((sd->nrouters = i + 1) && parse_router(json_array_get(rts, i), &sd->routers[i]) < 0) {
            snprintf(err, errcap, "router %zu in session data is malformed", i);
            return WEFT_EJSON;
        }
    return 0;
}

int weft__sessdata_parse(const char *json, size_t len, weft_sessdata *sd, char *err, size_t errcap)
{
    json_t *root, *d;
    json_error_t je;
    int ret = WEFT_EJSON;

    memset(sd, 0, sizeof(*sd));
    if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        snprintf(err, errcap, "session data is not JSON: %s", je.text);
        return WEFT_EJSON;
    }
    d = json_object_get(root, "data") ? json_object_get(root, "data") : root;
    if (!json_is_object(d)) {
        snprintf(err, errcap, "session data is not an object");
        goto out;
    }
    if ((ret = parse_arrays(d, sd, err, errcap)) < 0)
        goto out;
    copy_str(json_object_get(d, "identity"), "id", sd->identity_id, sizeof(sd->identity_id), 0);
    /* A day at most: a larger value would only be truncated into a small one. */
    if (json_integer_value(json_object_get(d, "refresh_s")) > 0)
        sd->refresh_s = json_integer_value(json_object_get(d, "refresh_s")) > 86400
                            ? 86400
                            : (unsigned)json_integer_value(json_object_get(d, "refresh_s"));
out:
    json_decref(root);
    if (ret < 0)
        weft__sessdata_free(sd);
    return ret;
}

void weft__sessdata_free(weft_sessdata *sd)
{
    size_t i;

    for (i = 0; sd->svcs && i < sd->nsvcs; i++) {
        free(sd->svcs[i].dial_token);
        free(sd->svcs[i].bind_token);
    }
    free(sd->svcs);
    free(sd->routers);
    memset(sd, 0, sizeof(*sd));
}

const weft_svc *weft__sessdata_find(const weft_sessdata *sd, const char *name)
{
    size_t i;

    for (i = 0; i < sd->nsvcs; i++)
        if (strcmp(sd->svcs[i].name, name) == 0)
            return &sd->svcs[i];
    return NULL;
}

/* t - now without overflow, for any clock and any year strptime accepted. */
static int64_t until(int64_t t, int64_t now)
{
    uint64_t d;

    if (t <= now)
        return 0;
    d = (uint64_t)t - (uint64_t)now;
    return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

unsigned weft__sessdata_next_refresh(const weft_sessdata *sd, int64_t now, unsigned refresh_s)
{
    int64_t next = refresh_s, left;
    size_t i;

    if (sd->refresh_s && sd->refresh_s < next)
        next = sd->refresh_s;
    for (i = 0; i < sd->nsvcs; i++) {
        if (sd->svcs[i].expires_at == 0)
            continue;
        left = until(sd->svcs[i].expires_at, now);
        left = left > 120 ? left - 60 : left / 2;
        if (left < next)
            next = left;
    }
    return next < 1 ? 1 : (unsigned)next;
}
