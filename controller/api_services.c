/* /v1/services: what can be dialled or bound, with the address a dialling edge
 * intercepts and the address a hosting edge forwards to. */
#include <stdio.h>
#include <string.h>

#include "controller/controller.h"
#include "controller/grants.h"
#include "proto/addr.h"
#include "weft/errors.h"

static const char *const allowed[] = {"name",      "roles",     "intercept", "host",
                                      "hosted_by", "multipath", NULL};

/* "tcp:HOST:PORT" or "udp:HOST:PORT", HOST non-empty, PORT 1..65535. */
static int valid_target(const char *s)
{
    char host[256];
    unsigned port = 0;

    if (strncmp(s, "tcp:", 4) != 0 && strncmp(s, "udp:", 4) != 0)
        return 0;
    if (pr_addr_split(s + 4, host, sizeof(host), &port) < 0)
        return 0;
    return host[0] != '\0' && port >= 1 && port <= 65535;
}

static int field_target(ctl_call *call, json_t *body, const char *key, const char **out)
{
    int rc = ctl_field_str(call, body, key, 0, out);

    if (rc == 1 && !valid_target(*out)) {
        ctl_reply_error(call, 400, "bad_request",
                        "field '%s' must look like tcp:HOST:PORT or udp:HOST:PORT (port 1..65535)",
                        key);
        return WEFT_EINVAL;
    }
    return rc;
}

/* hosted_by names the router that reaches the service's host itself (id or
 * name); it is stored as the router's id so that renaming the router changes
 * nothing. null or "" clears it. */
static int field_hosted_by(ctl_call *call, json_t *body, json_t *fields)
{
    json_t *v = json_object_get(body, "hosted_by"), *rec = NULL;

    if (v == NULL)
        return 0;
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        json_object_set_new(fields, "hosted_by", json_null());
        return 0;
    }
    if (!json_is_string(v) || !ctl_valid_name(json_string_value(v))) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'hosted_by' must be a router id or name, or null");
        return WEFT_EINVAL;
    }
    if (ctl_store_get(call->c->store, "routers", json_string_value(v), &rec) < 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'hosted_by': no router with id or name '%s'; list them with "
                        "'weft router list'",
                        json_string_value(v));
        return WEFT_EINVAL;
    }
    json_object_set(fields, "hosted_by", json_object_get(rec, "id"));
    json_decref(rec);
    return 0;
}

/* multipath: how routers spread a circuit over paths (docs/dataplane.md). */
static int field_multipath(ctl_call *call, json_t *body, int creating, json_t *fields)
{
    const char *m = NULL;
    int rc = ctl_field_str(call, body, "multipath", 0, &m);

    if (rc < 0)
        return rc;
    if (rc == 1 && strcmp(m, "failover") != 0 && strcmp(m, "split") != 0 &&
        strcmp(m, "redundant") != 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'multipath' must be failover, split or redundant");
        return WEFT_EINVAL;
    }
    if (rc == 1 || creating)
        json_object_set_new(fields, "multipath", json_string(rc == 1 ? m : "failover"));
    return 0;
}

/* Validates body into fields (only what is present). */
static int parse(ctl_call *call, json_t *body, int creating, json_t *fields)
{
    const char *name, *intercept, *host;
    json_t *roles;

    if (ctl_field_name(call, body, "name", creating, &name) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0)
        return WEFT_EINVAL;
    if (roles)
        json_object_set_new(fields, "roles", roles);
    else if (creating)
        json_object_set_new(fields, "roles", json_array());
    if (field_target(call, body, "intercept", &intercept) < 0 ||
        field_target(call, body, "host", &host) < 0 || field_hosted_by(call, body, fields) < 0 ||
        field_multipath(call, body, creating, fields) < 0)
        return WEFT_EINVAL;
    if (name)
        json_object_set_new(fields, "name", json_string(name));
    if (intercept)
        json_object_set_new(fields, "intercept", json_string(intercept));
    if (host)
        json_object_set_new(fields, "host", json_string(host));
    return 0;
}

void ctl_api_services_list(ctl_call *call)
{
    ctl_list(call, "services");
}

void ctl_api_services_create(ctl_call *call)
{
    ctl_create_parsed(call, "services", "service", allowed, parse);
}

void ctl_api_services_get(ctl_call *call)
{
    ctl_get(call, "services", "service");
}

void ctl_api_services_patch(ctl_call *call)
{
    json_t *rec, *fields;

    if (ctl_patch_parsed(call, "services", "service", allowed, parse, &rec, &fields) < 0)
        return;
    if (json_object_get(fields, "roles")) /* can take rights away (docs/policies.md) */
        ctl_grants_withdraw_record(call->c, "services", rec);
    json_decref(rec);
    json_decref(fields);
}

void ctl_api_services_delete(ctl_call *call)
{
    ctl_delete(call, "services", "service");
}
