/* The REST API's front door: the route table, admin authentication by client
 * certificate, and the helpers every handler uses to validate a request and
 * answer it. Handlers live in api_<collection>.c and enroll.c. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "controller/admit.h"
#include "controller/controller.h"
#include "controller/events.h"
#include "controller/metrics.h"
#include "controller/netmap.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

#define SEG_MAX 256

static void api_version(ctl_call *call);

typedef struct {
    const char *method;
    const char *path; /* "{id}" matches one path segment */
    ctl_route_fn fn;
    int admin; /* needs an admin client certificate */
} route;

static const route routes[] = {
    {"GET", "/v1/version", api_version, 0},
    {"GET", "/v1/enroll/ca", ctl_api_enroll_ca, 0},
    {"POST", "/v1/enroll", ctl_api_enroll, 0},
    {"GET", "/v1/identities", ctl_api_identities_list, 1},
    {"POST", "/v1/identities", ctl_api_identities_create, 1},
    {"GET", "/v1/identities/{id}", ctl_api_identities_get, 1},
    {"PATCH", "/v1/identities/{id}", ctl_api_identities_patch, 1},
    {"DELETE", "/v1/identities/{id}", ctl_api_identities_delete, 1},
    {"POST", "/v1/identities/{id}/disable", ctl_api_identities_disable, 1},
    {"POST", "/v1/identities/{id}/enable", ctl_api_identities_enable, 1},
    {"GET", "/v1/services", ctl_api_services_list, 1},
    {"POST", "/v1/services", ctl_api_services_create, 1},
    {"GET", "/v1/services/{id}", ctl_api_services_get, 1},
    {"PATCH", "/v1/services/{id}", ctl_api_services_patch, 1},
    {"DELETE", "/v1/services/{id}", ctl_api_services_delete, 1},
    {"GET", "/v1/policies", ctl_api_policies_list, 1},
    {"POST", "/v1/policies", ctl_api_policies_create, 1},
    {"GET", "/v1/policies/{id}", ctl_api_policies_get, 1},
    {"PATCH", "/v1/policies/{id}", ctl_api_policies_patch, 1},
    {"DELETE", "/v1/policies/{id}", ctl_api_policies_delete, 1},
    {"GET", "/v1/routers", ctl_api_routers_list, 1},
    {"POST", "/v1/routers", ctl_api_routers_create, 1},
    {"GET", "/v1/routers/{id}", ctl_api_routers_get, 1},
    {"PATCH", "/v1/routers/{id}", ctl_api_routers_patch, 1},
    {"DELETE", "/v1/routers/{id}", ctl_api_routers_delete, 1},
    {"GET", "/v1/edge/session", ctl_api_edge_session, 0},
    {"GET", "/v1/links", ctl_api_links_list, 1},
    {"GET", "/v1/circuits", ctl_api_circuits_list, 1},
    {"GET", "/v1/mesh", ctl_api_mesh_get, 1},
    {"POST", "/v1/enroll/factory", ctl_api_enroll_factory, 0},
    {"POST", "/v1/renew", ctl_api_renew, 0},
    {"GET", "/v1/edge/credentials", ctl_api_edge_credentials, 0},
    {"GET", "/v1/cas", ctl_api_cas_list, 1},
    {"POST", "/v1/cas", ctl_api_cas_create, 1},
    {"GET", "/v1/cas/{id}", ctl_api_cas_get, 1},
    {"PATCH", "/v1/cas/{id}", ctl_api_cas_patch, 1},
    {"DELETE", "/v1/cas/{id}", ctl_api_cas_delete, 1},
    {"POST", "/v1/cas/{id}/verify", ctl_api_cas_verify, 1},
    {"POST", "/v1/cas/{id}/disable", ctl_api_cas_disable, 1},
    {"POST", "/v1/cas/{id}/enable", ctl_api_cas_enable, 1},
    {"GET", "/v1/events", ctl_api_events_list, 1},
    {"GET", "/v1/webhooks", ctl_api_webhooks_list, 1},
    {"POST", "/v1/webhooks", ctl_api_webhooks_create, 1},
    {"PATCH", "/v1/webhooks/{id}", ctl_api_webhooks_patch, 1},
    {"DELETE", "/v1/webhooks/{id}", ctl_api_webhooks_delete, 1},
    {"POST", "/v1/identities/{id}/rebind", ctl_api_identities_rebind, 1},
    {"GET", "/v1/credentials", ctl_api_credentials_list, 1},
    {"POST", "/v1/credentials", ctl_api_credentials_create, 1},
    {"GET", "/v1/credentials/{id}", ctl_api_credentials_get, 1},
    {"DELETE", "/v1/credentials/{id}", ctl_api_credentials_delete, 1},
    {"GET", "/v1/settings/anomaly", ctl_api_anomaly_get, 1},
    {"PATCH", "/v1/settings/anomaly", ctl_api_anomaly_patch, 1},
    {"DELETE", "/v1/settings/anomaly", ctl_api_anomaly_delete, 1},
    {"GET", "/v1/identities/{id}/baseline", ctl_api_identities_baseline, 1},
    {"DELETE", "/v1/identities/{id}/baseline", ctl_api_identities_baseline_delete, 1},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

void ctl_api_print_routes(FILE *out)
{
    for (size_t i = 0; i < NROUTES; i++)
        fprintf(out, "%s %s\n", routes[i].method, routes[i].path);
}

/* ---- answers ---- */

void ctl_reply_raw(ctl_call *call, int status, const char *content_type, const char *body,
                   size_t len)
{
    if (call->answered)
        return;
    call->answered = 1;
    ctl_metrics_count(call->c->metrics, call->req->method, call->req->path, status);
    ctl_http_respond(call->req, status, content_type, body, len);
}

void ctl_reply(ctl_call *call, int status, json_t *body)
{
    char *text = NULL;

    if (body == NULL) {
        ctl_reply_raw(call, status, NULL, NULL, 0);
        return;
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        ctl_reply_raw(call, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    ctl_reply_raw(call, status, "application/json", text, strlen(text));
    free(text);
}

void ctl_reply_data(ctl_call *call, int status, json_t *data)
{
    ctl_reply(call, status, json_pack("{s:o}", "data", data));
}

void ctl_reply_error(ctl_call *call, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_reply(call, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

void ctl_reply_store_error(ctl_call *call, int rc, const char *what, const char *key)
{
    switch (rc) {
    case WEFT_ENOTFOUND:
        ctl_reply_error(call, 404, "not_found", "no %s with id or name '%s'; list them to check",
                        what, key);
        break;
    case WEFT_EEXISTS:
    case WEFT_ECONFLICT:
        ctl_reply_error(call, 409, "conflict",
                        "%s '%s' already exists; choose another name or update that one", what,
                        key);
        break;
    default:
        pr_error("store_error", "what=%s err=%s hint=%s", what, weft_err_name(rc),
                 pr_log_q("check disk space and permissions of weft.db"));
        ctl_reply_error(call, 500, "internal",
                        "the store failed (%s); retry, and check the controller's log",
                        weft_strerror(rc));
    }
}

/* ---- validation ---- */

static int charset_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

int ctl_valid_name(const char *s)
{
    return charset_ok(s, CTL_NAME_MAX);
}

int ctl_valid_role(const char *s)
{
    return charset_ok(s, CTL_ROLE_MAX);
}

static int is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    if (ct == NULL || strncasecmp(ct, want, n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static int unknown_field(ctl_call *call, const char *key, const char *const *allowed)
{
    char list[256] = "";
    size_t used = 0;

    for (int i = 0; allowed[i]; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", allowed[i]);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
    }
    ctl_reply_error(call, 400, "unknown_field", "unknown field '%s'; allowed fields: %s", key,
                    list);
    return WEFT_EINVAL;
}

int ctl_body(ctl_call *call, const char *const *allowed, json_t **out)
{
    json_error_t jerr;
    json_t *body;
    const char *key;
    json_t *v;

    *out = NULL;
    if (!is_json_type(call->req->content_type)) {
        ctl_reply_error(call, 400, "bad_request",
                        "the request body must be JSON: send Content-Type: application/json");
        return WEFT_EINVAL;
    }
    body = json_loadb(call->req->body, call->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        ctl_reply_error(call, 400, "bad_request", "malformed JSON body at line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
        return WEFT_EJSON;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        ctl_reply_error(call, 400, "bad_request", "the request body must be a JSON object");
        return WEFT_EJSON;
    }
    json_object_foreach(body, key, v)
    {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            int rc = unknown_field(call, key, allowed); /* key lives in body */
            json_decref(body);
            return rc;
        }
    }
    *out = body;
    return 0;
}

static int bad_field(ctl_call *call, const char *key, const char *must)
{
    ctl_reply_error(call, 400, "bad_request", "field '%s' %s", key, must);
    return WEFT_EINVAL;
}

int ctl_field_str(ctl_call *call, json_t *body, const char *key, int required, const char **out)
{
    json_t *v = json_object_get(body, key);

    *out = NULL;
    if (v == NULL)
        return required ? bad_field(call, key, "is required") : 0;
    if (!json_is_string(v))
        return bad_field(call, key, "must be a string");
    *out = json_string_value(v);
    return 1;
}

int ctl_field_name(ctl_call *call, json_t *body, const char *key, int required, const char **out)
{
    int rc = ctl_field_str(call, body, key, required, out);

    if (rc == 1 && !ctl_valid_name(*out))
        return bad_field(call, key, "must be 1..128 characters from [A-Za-z0-9._-]");
    return rc;
}

int ctl_field_bool(ctl_call *call, json_t *body, const char *key, int *out)
{
    json_t *v = json_object_get(body, key);

    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return bad_field(call, key, "must be true or false");
    *out = json_is_true(v);
    return 1;
}

int ctl_field_enum(ctl_call *call, json_t *body, const char *key, const char *const *values,
                   const char **out)
{
    char must[160] = "must be one of:";
    int rc = ctl_field_str(call, body, key, 0, out);

    if (rc != 1)
        return rc;
    for (int i = 0; values[i]; i++) {
        if (strcmp(*out, values[i]) == 0)
            return 1;
        if (strlen(must) + strlen(values[i]) + 4 < sizeof(must)) {
            strcat(must, i ? ", \"" : " \"");
            strcat(must, values[i]);
            strcat(must, "\"");
        }
    }
    return bad_field(call, key, must);
}

/* Roles arrive as an array of role names; duplicates are dropped. */
int ctl_field_roles(ctl_call *call, json_t *body, const char *key, json_t **out)
{
    json_t *v = json_object_get(body, key), *item;
    size_t i;

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > CTL_ROLES_MAX)
        return bad_field(call, key, "must be an array of at most 64 role names");
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || !ctl_valid_role(json_string_value(item)))
            return bad_field(call, key,
                             "must hold role names of 1..64 characters from [A-Za-z0-9._-]");
    }
    *out = json_array();
    if (*out == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(v, i, item)
    {
        json_t *seen;
        size_t j;
        int dup = 0;
        json_array_foreach(*out, j, seen) dup |= json_equal(seen, item);
        if (!dup)
            json_array_append(*out, item);
    }
    return 1;
}

/* ---- generic collection handlers ---- */

static int query_int(ctl_call *call, const char *key, long min, long max, int *out)
{
    char buf[32], *end;
    long v;

    if (ctl_http_query(call->req, key, buf, sizeof(buf)) == NULL)
        return 0;
    errno = 0;
    v = strtol(buf, &end, 10);
    if (buf[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        ctl_reply_error(call, 400, "bad_request",
                        "query parameter '%s' must be an integer in %ld..%ld", key, min, max);
        return WEFT_EINVAL;
    }
    *out = (int)v;
    return 1;
}

void ctl_list(ctl_call *call, const char *coll)
{
    char name[CTL_NAME_MAX + 2], role[CTL_ROLE_MAX + 2];
    ctl_list_opts o = {.limit = 100};
    json_t *items = NULL;
    int64_t total = 0;
    int rc;

    if (query_int(call, "limit", 1, 1000, &o.limit) < 0 ||
        query_int(call, "offset", 0, 1000000000, &o.offset) < 0)
        return;
    o.name = ctl_http_query(call->req, "name", name, sizeof(name));
    o.role = ctl_http_query(call->req, "role", role, sizeof(role));
    if (o.role && !ctl_valid_role(o.role)) {
        ctl_reply_error(call, 400, "bad_request", "query parameter 'role' must be a role name");
        return;
    }
    if ((rc = ctl_store_list(call->c->store, coll, &o, &items, &total)) < 0) {
        ctl_reply_store_error(call, rc, coll, "");
        return;
    }
    if (strcmp(coll, "routers") == 0) {
        json_t *r;
        size_t i;
        json_array_foreach(items, i, r) ctl_router_status_attach(call->c, r);
    }
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I, s:i, s:i}}", "data", items, "meta", "total",
                        (json_int_t)total, "limit", o.limit, "offset", o.offset));
}

int ctl_load(ctl_call *call, const char *coll, const char *what, json_t **out)
{
    int rc = ctl_store_get(call->c->store, coll, call->param, out);

    if (rc < 0)
        ctl_reply_store_error(call, rc, what, call->param);
    return rc;
}

void ctl_get(ctl_call *call, const char *coll, const char *what)
{
    json_t *rec;

    if (ctl_load(call, coll, what, &rec) == 0)
        ctl_reply_data(call, 200, rec);
}

/* Answers with the stored version of record id (timestamps filled in). */
static void reply_stored(ctl_call *call, int status, const char *coll, const char *what,
                         const char *id)
{
    json_t *rec;
    int rc = ctl_store_get(call->c->store, coll, id, &rec);

    if (rc < 0)
        ctl_reply_store_error(call, rc, what, id);
    else
        ctl_reply_data(call, status, rec);
}

void ctl_create_reply(ctl_call *call, const char *coll, const char *what, json_t *rec)
{
    char id[PR_ID_MAX + 1];
    int rc;

    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(rec, "id")));
    rc = ctl_store_create(call->c->store, coll, rec);
    if (rc < 0) {
        ctl_reply_store_error(call, rc, what, json_string_value(json_object_get(rec, "name")));
    } else {
        pr_info("created", "kind=%s id=%s name=%s", what, id,
                pr_log_q(json_string_value(json_object_get(rec, "name"))));
        ctl_map_touch(call->c, coll, id);
        reply_stored(call, 201, coll, what, id);
    }
    json_decref(rec);
}

void ctl_update_reply(ctl_call *call, const char *coll, const char *what, json_t *rec,
                      json_t *fields)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    int rc;

    if (json_object_size(fields) == 0) {
        ctl_reply_data(call, 200, json_incref(rec));
        return;
    }
    rc = ctl_store_update(call->c->store, coll, id, fields);
    if (rc < 0) {
        json_t *name = json_object_get(fields, "name");
        ctl_reply_store_error(call, rc, what, name ? json_string_value(name) : call->param);
        return;
    }
    pr_info("updated", "kind=%s id=%s", what, id);
    ctl_map_touch(call->c, coll, id);
    reply_stored(call, 200, coll, what, id);
}

void ctl_create_parsed(ctl_call *call, const char *coll, const char *what,
                       const char *const *allowed, ctl_parse_fn parse)
{
    json_t *body = NULL, *rec = json_object();
    char id[PR_ID_MAX + 1];

    if (ctl_body(call, allowed, &body) < 0 || parse(call, body, 1, rec) < 0) {
        json_decref(rec);
        goto out;
    }
    pr_ident_new_id(id, sizeof(id));
    json_object_set_new(rec, "id", json_string(id));
    ctl_create_reply(call, coll, what, rec);
out:
    json_decref(body);
}

int ctl_patch_parsed(ctl_call *call, const char *coll, const char *what, const char *const *allowed,
                     ctl_parse_fn parse, json_t **before, json_t **fields)
{
    json_t *body = NULL, *rec = NULL, *f = json_object();
    int rc = -1;

    if (ctl_body(call, allowed, &body) < 0 || parse(call, body, 0, f) < 0 ||
        ctl_load(call, coll, what, &rec) < 0)
        goto out;
    ctl_update_reply(call, coll, what, rec, f);
    *before = rec;
    *fields = f;
    rec = f = NULL;
    rc = 0;
out:
    json_decref(rec);
    json_decref(f);
    json_decref(body);
    return rc;
}

void ctl_delete(ctl_call *call, const char *coll, const char *what)
{
    json_t *rec;
    int rc;

    if (ctl_load(call, coll, what, &rec) < 0)
        return;
    rc = ctl_store_delete(call->c->store, coll, json_string_value(json_object_get(rec, "id")));
    if (rc < 0) {
        ctl_reply_store_error(call, rc, what, call->param);
    } else {
        pr_info("deleted", "kind=%s id=%s name=%s", what,
                json_string_value(json_object_get(rec, "id")),
                pr_log_q(json_string_value(json_object_get(rec, "name"))));
        ctl_map_touch(call->c, coll, json_string_value(json_object_get(rec, "id")));
        ctl_reply(call, 204, NULL);
    }
    json_decref(rec);
}

void ctl_rfc3339(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ctl_list_all(ctl_store *s, const char *coll, json_t **items)
{
    ctl_list_opts o = {.limit = 1000};
    json_t *page = NULL;
    int64_t total = 0;
    int rc;

    if ((*items = json_array()) == NULL)
        return WEFT_ENOMEM;
    /* Bounded by the total the store reports: a store growing meanwhile cannot loop us. */
    do {
        if ((rc = ctl_store_list(s, coll, &o, &page, &total)) < 0) {
            json_decref(*items);
            *items = NULL;
            return rc;
        }
        json_array_extend(*items, page);
        o.offset += o.limit;
        rc = json_array_size(page) == (size_t)o.limit;
        json_decref(page);
    } while (rc && o.offset < total);
    return 0;
}

void ctl_router_status_attach(ctl *c, json_t *rec)
{
    if (c->map != NULL)
        json_object_set_new(rec, "online",
                            json_boolean(ctl_netmap_router_is_online(
                                c->map, json_string_value(json_object_get(rec, "id")))));
}

void ctl_map_touch(ctl *c, const char *coll, const char *id)
{
    int rc;

    if (c->map == NULL || id == NULL)
        return;
    if ((rc = ctl_netmap_touch(c->map, coll, id)) < 0)
        pr_error("map_update_failed", "coll=%s id=%s err=%s hint=%s", coll, id, weft_err_name(rc),
                 pr_log_q("routers may hold a stale map; restart the controller"));
}

/* ---- routing ---- */

static void api_version(ctl_call *call)
{
    ctl_reply(call, 200,
              json_pack("{s:s, s:s, s:i, s:s}", "version", CTL_VERSION, "network",
                        call->c->cfg.name, "api", CTL_API_VERSION, "control",
                        call->c->cfg.control));
}

/* Matches path against a template; the {id} segment is copied into param. */
static int match(const char *tmpl, const char *path, char *param, size_t cap)
{
    while (*tmpl && *path) {
        if (strncmp(tmpl, "{id}", 4) == 0) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= cap)
                return 0;
            memcpy(param, path, n);
            param[n] = '\0';
            tmpl += 4;
            path += n;
            continue;
        }
        if (*tmpl++ != *path++)
            return 0;
    }
    return *tmpl == '\0' && *path == '\0';
}

static int authenticate(ctl_call *call)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    const char *uri = call->req->peer_uri;
    json_t *rec = NULL;
    int kind;

    if (uri == NULL) {
        ctl_reply_error(
            call, 401, "unauthenticated",
            "this route needs an admin identity: pass --identity FILE or set "
            "WEFT_IDENTITY to an admin identity file (admin.json from weft-controller init)");
        return WEFT_ENOCERT;
    }
    if (pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0 ||
        kind != PR_IDENT_IDENTITY || strcmp(td, call->c->cfg.name) != 0 ||
        ctl_store_get(call->c->store, "identities", id, &rec) < 0 ||
        strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) != 0 ||
        !json_is_true(json_object_get(rec, "admin")) ||
        json_is_true(json_object_get(rec, "disabled"))) {
        json_decref(rec);
        pr_warn("forbidden", "peer=%s uri=%s path=%s", call->req->peer_addr, pr_log_q(uri),
                pr_log_q(call->req->path));
        ctl_reply_error(call, 403, "forbidden",
                        "certificate %s is not that of an enabled admin of network '%s'; use an "
                        "admin identity file",
                        uri, call->c->cfg.name);
        return WEFT_EDENIED;
    }
    call->admin = rec;
    return 0;
}

static void dispatch(ctl_call *call, const route *r)
{
    if (r->admin && authenticate(call) < 0)
        return;
    if (ctl_admit_route(call, r->method, r->path) != 0) /* over the rate: 429 sent */
        return;
    r->fn(call);
    if (!call->answered) {
        pr_error("no_answer", "method=%s path=%s hint=%s", call->req->method,
                 pr_log_q(call->req->path), pr_log_q("report this as a bug"));
        ctl_reply_error(call, 500, "internal", "the controller did not answer; retry");
    }
}

void ctl_api_handle(ctl_http_req *req)
{
    char param[SEG_MAX], allowed[128] = "";
    ctl_call call = {.c = req->server_data, .req = req};
    int path_known = 0;

    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(routes[i].path, req->path, param, sizeof(param)))
            continue;
        if (strcmp(routes[i].method, req->method) == 0) {
            call.param = strchr(routes[i].path, '{') ? param : NULL;
            dispatch(&call, &routes[i]);
            json_decref(call.admin);
            return;
        }
        if (strlen(allowed) + strlen(routes[i].method) + 3 < sizeof(allowed)) {
            strcat(allowed, path_known ? ", " : "");
            strcat(allowed, routes[i].method);
        }
        path_known = 1;
    }
    if (path_known)
        ctl_reply_error(&call, 405, "method_not_allowed", "%s is not allowed on %s; use %s",
                        req->method, req->path, allowed);
    else
        ctl_reply_error(&call, 404, "not_found", "no such route %s %s; see docs/api/openapi.yaml",
                        req->method, req->path);
}
