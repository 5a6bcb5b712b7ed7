/* /v1/policies: which identities may dial or bind which services, by role
 * selectors ("#role", "@name", "#all"). */
#include <stdio.h>
#include <string.h>

#include "controller/behaviour.h"
#include "controller/controller.h"
#include "controller/grants.h"
#include "weft/errors.h"

static const char *const allowed[] = {
    "name",         "type",    "semantic",  "identity_roles", "service_roles",
    "router_roles", "time",    "conn_rate", "bandwidth",      "quota",
    "max_circuits", "actions", NULL};
static const char *const types[] = {"dial", "bind", "behaviour", "router", "service-router", NULL};
static const char *const semantics[] = {"AnyOf", "AllOf", NULL};

static int valid_selector(const char *s)
{
    if (strcmp(s, "#all") == 0)
        return 1;
    if (s[0] == '#')
        return ctl_valid_role(s + 1);
    if (s[0] == '@')
        return ctl_valid_name(s + 1);
    return ctl_valid_role(s);
}

/* A bare role name is accepted for convenience and stored as "#role", so that
 * readers of the store see one form only. */
static json_t *normalize_selector(const char *s)
{
    char buf[CTL_ROLE_MAX + 2];

    if (s[0] == '#' || s[0] == '@')
        return json_string(s);
    snprintf(buf, sizeof(buf), "#%s", s);
    return json_string(buf);
}

/* A selector list: at most 64 entries, each #role, @name or #all. */
static int field_selectors(ctl_call *call, json_t *body, const char *key, json_t **out)
{
    json_t *v = json_object_get(body, key), *item;
    size_t i;

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > CTL_ROLES_MAX)
        goto bad;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || !valid_selector(json_string_value(item)))
            goto bad;
    }
    *out = json_array();
    json_array_foreach(v, i, item)
        json_array_append_new(*out, normalize_selector(json_string_value(item)));
    return 1;
bad:
    ctl_reply_error(call, 400, "bad_request",
                    "field '%s' must be an array of at most 64 entries, each \"#role\" (or a bare "
                    "role), \"@name\" or \"#all\"",
                    key);
    return WEFT_EINVAL;
}

/* Limits and actions belong to behaviour policies only (docs/policies.md). On
 * a patch the stored type is not known here; the limits are checked anyway and
 * only a behaviour policy ever reads them. */
static int behaviour_part(ctl_call *call, json_t *body, int creating, const char *type,
                          json_t *fields)
{
    static const char *const keys[] = {"time",  "conn_rate",    "bandwidth",
                                       "quota", "max_circuits", "actions"};
    int is_beh = type && strcmp(type, "behaviour") == 0;
    char err[256];

    for (size_t i = 0; !is_beh && type && i < sizeof(keys) / sizeof(keys[0]); i++)
        if (json_object_get(body, keys[i]) != NULL) {
            ctl_reply_error(call, 400, "bad_request",
                            "field '%s' belongs to behaviour policies only", keys[i]);
            return WEFT_EINVAL;
        }
    if (ctl_behaviour_fields(body, creating && is_beh, fields, err, sizeof(err)) < 0) {
        ctl_reply_error(call, 400, "bad_request", "%s", err);
        return WEFT_EINVAL;
    }
    return 0;
}

/* router_roles select routers, for router and service-router policies only;
 * it is required when creating one. */
static int routers_part(ctl_call *call, json_t *body, int creating, const char *type,
                        json_t *fields)
{
    int is_rt = type && (strcmp(type, "router") == 0 || strcmp(type, "service-router") == 0);
    json_t *rts;

    if (type && !is_rt && json_object_get(body, "router_roles") != NULL) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'router_roles' belongs to router and service-router policies only");
        return WEFT_EINVAL;
    }
    if (field_selectors(call, body, "router_roles", &rts) < 0)
        return WEFT_EINVAL;
    if (creating && is_rt && rts == NULL) {
        ctl_reply_error(call, 400, "bad_request",
                        "a %s policy needs 'router_roles' (--routers): the routers it allows",
                        type);
        return WEFT_EINVAL;
    }
    if (rts)
        json_object_set_new(fields, "router_roles", rts);
    return 0;
}

static int parse(ctl_call *call, json_t *body, int creating, json_t *fields)
{
    const char *name, *type, *semantic;
    json_t *ids, *svcs;

    if (ctl_field_name(call, body, "name", creating, &name) < 0 ||
        ctl_field_enum(call, body, "type", types, &type) < 0 ||
        ctl_field_enum(call, body, "semantic", semantics, &semantic) < 0)
        return WEFT_EINVAL;
    if (creating && type == NULL) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'type' is required: \"dial\", \"bind\", \"behaviour\", "
                        "\"router\" or \"service-router\"");
        return WEFT_EINVAL;
    }
    if (routers_part(call, body, creating, type, fields) < 0)
        return WEFT_EINVAL;
    if (behaviour_part(call, body, creating, type, fields) < 0)
        return WEFT_EINVAL;
    if (field_selectors(call, body, "identity_roles", &ids) < 0)
        return WEFT_EINVAL;
    if (field_selectors(call, body, "service_roles", &svcs) < 0) {
        json_decref(ids);
        return WEFT_EINVAL;
    }
    if (name)
        json_object_set_new(fields, "name", json_string(name));
    if (type)
        json_object_set_new(fields, "type", json_string(type));
    if (semantic || creating)
        json_object_set_new(fields, "semantic", json_string(semantic ? semantic : "AnyOf"));
    if (ids || creating)
        json_object_set_new(fields, "identity_roles", ids ? ids : json_array());
    if (svcs || creating)
        json_object_set_new(fields, "service_roles", svcs ? svcs : json_array());
    return 0;
}

void ctl_api_policies_list(ctl_call *call)
{
    ctl_list(call, "policies");
}

void ctl_api_policies_create(ctl_call *call)
{
    ctl_create_parsed(call, "policies", "policy", allowed, parse);
}

void ctl_api_policies_get(ctl_call *call)
{
    ctl_get(call, "policies", "policy");
}

void ctl_api_policies_patch(ctl_call *call)
{
    json_t *rec, *fields;

    if (ctl_patch_parsed(call, "policies", "policy", allowed, parse, &rec, &fields) < 0)
        return;
    /* A policy narrowed takes its rights away from live circuits too. */
    ctl_grants_withdraw(call->c, rec);
    json_decref(rec);
    json_decref(fields);
}

void ctl_api_policies_delete(ctl_call *call)
{
    json_t *old = NULL;

    if (call->param && ctl_store_get(call->c->store, "policies", call->param, &old) < 0)
        old = NULL;
    ctl_delete(call, "policies", "policy");
    /* Nothing is withdrawn when the delete failed: the policy still grants. */
    if (old)
        ctl_grants_withdraw(call->c, old);
    json_decref(old);
}
