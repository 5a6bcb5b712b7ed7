/* Service policy evaluation (policy.h): pure functions over the records as the
 * store returns them, so that the rules are tested without a controller. */
#include "controller/policy.h"

#include <string.h>

static int has_role(const json_t *rec, const char *role)
{
    const json_t *roles = json_object_get(rec, "roles"), *r;
    size_t i;

    json_array_foreach(roles, i, r)
    {
        if (json_is_string(r) && strcmp(json_string_value(r), role) == 0)
            return 1;
    }
    return 0;
}

static int str_eq(const json_t *rec, const char *key, const char *want)
{
    const char *s = json_string_value(json_object_get(rec, key));

    return s != NULL && strcmp(s, want) == 0;
}

int ctl_policy_selector_match(const char *selector, const json_t *rec)
{
    if (selector == NULL || rec == NULL)
        return 0;
    if (strcmp(selector, "#all") == 0)
        return 1;
    if (selector[0] == '#')
        return has_role(rec, selector + 1);
    if (selector[0] == '@')
        return str_eq(rec, "name", selector + 1) || str_eq(rec, "id", selector + 1);
    return 0; /* the API stores only the forms above */
}

int ctl_policy_selects(const json_t *sels, const char *semantic, const json_t *rec)
{
    int all = semantic != NULL && strcmp(semantic, "AllOf") == 0;
    const json_t *s;
    size_t i;

    if (!json_is_array(sels) || json_array_size(sels) == 0)
        return 0;
    json_array_foreach(sels, i, s)
    {
        int m = ctl_policy_selector_match(json_string_value(s), rec);
        if (all && !m)
            return 0;
        if (!all && m)
            return 1;
    }
    return all;
}

int ctl_policy_grants(const json_t *policy, const json_t *identity, const json_t *service)
{
    const char *sem = json_string_value(json_object_get(policy, "semantic"));

    return ctl_policy_selects(json_object_get(policy, "identity_roles"), sem, identity) &&
           ctl_policy_selects(json_object_get(policy, "service_roles"), sem, service);
}

int ctl_policy_access(const json_t *policies, const json_t *identity, const json_t *service)
{
    const json_t *p;
    size_t i;
    int acc = 0;

    json_array_foreach(policies, i, p)
    {
        const char *type = json_string_value(json_object_get(p, "type"));
        if (type == NULL || !ctl_policy_grants(p, identity, service))
            continue;
        if (strcmp(type, "dial") == 0)
            acc |= CTL_POLICY_DIAL;
        else if (strcmp(type, "bind") == 0)
            acc |= CTL_POLICY_BIND;
    }
    return acc;
}

static int type_is(const json_t *p, const char *type)
{
    const char *t = json_string_value(json_object_get(p, "type"));

    return t != NULL && strcmp(t, type) == 0;
}

/* Restrictive pairing: an x selected by no policy of type is free; else the
 * router must be selected by one of the policies selecting x. */
static int restricted_allowed(const json_t *policies, const char *type, const char *xkey,
                              const json_t *x, const json_t *router)
{
    const json_t *p;
    size_t i;
    int selected = 0;

    json_array_foreach(policies, i, p)
    {
        const char *sem = json_string_value(json_object_get(p, "semantic"));
        if (!type_is(p, type) || !ctl_policy_selects(json_object_get(p, xkey), sem, x))
            continue;
        if (ctl_policy_selects(json_object_get(p, "router_roles"), sem, router))
            return 1;
        selected = 1;
    }
    return !selected;
}

int ctl_policy_router_allowed(const json_t *policies, const json_t *identity,
                              const json_t *router)
{
    return restricted_allowed(policies, "router", "identity_roles", identity, router);
}

int ctl_policy_service_router_allowed(const json_t *policies, const json_t *service,
                                      const json_t *router)
{
    return restricted_allowed(policies, "service-router", "service_roles", service, router);
}
