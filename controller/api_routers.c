/* /v1/routers: the routers of the network. Creating one issues its enrolment
 * token; the router reports its listen addresses when it enrols. */
#include <string.h>

#include "controller/controller.h"
#include "proto/ident.h"
#include "weft/errors.h"

void ctl_api_routers_list(ctl_call *call)
{
    ctl_list(call, "routers");
}

void ctl_api_routers_create(ctl_call *call)
{
    static const char *const allowed[] = {"name", "roles", "token_ttl", NULL};
    json_t *body = NULL, *roles = NULL, *rec, *ttlv;
    const char *name;
    char id[PR_ID_MAX + 1];
    int64_t ttl = 0;

    if (ctl_body(call, allowed, &body) < 0)
        return;
    if (ctl_field_name(call, body, "name", 1, &name) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0)
        goto out;
    ttlv = json_object_get(body, "token_ttl");
    if (ttlv && (!json_is_integer(ttlv) || json_integer_value(ttlv) < 1 ||
                 json_integer_value(ttlv) > CTL_TOKEN_TTL_MAX)) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'token_ttl' must be an integer number of seconds in 1..%d",
                        CTL_TOKEN_TTL_MAX);
        goto out;
    }
    if (ttlv)
        ttl = json_integer_value(ttlv);
    pr_ident_new_id(id, sizeof(id));
    rec = json_pack("{s:s, s:s, s:o, s:b}", "id", id, "name", name, "roles",
                    roles ? json_incref(roles) : json_array(), "enrolled", 0);
    if (rec == NULL) {
        ctl_reply_error(call, 500, "internal", "out of memory");
        goto out;
    }
    ctl_create_enrollable(call, "routers", "router", rec, ttl);
out:
    json_decref(roles);
    json_decref(body);
}

void ctl_api_routers_get(ctl_call *call)
{
    json_t *rec;

    if (ctl_load(call, "routers", "router", &rec) < 0)
        return;
    ctl_token_pending_attach(call->c, rec);
    ctl_router_status_attach(call->c, rec);
    ctl_reply_data(call, 200, rec);
}

/* Roles only: router and service-router policies select routers by them. */
void ctl_api_routers_patch(ctl_call *call)
{
    static const char *const allowed[] = {"roles", NULL};
    json_t *body = NULL, *roles = NULL, *rec = NULL, *fields = json_object();

    if (ctl_body(call, allowed, &body) < 0)
        goto out;
    if (ctl_field_roles(call, body, "roles", &roles) < 0 ||
        ctl_load(call, "routers", "router", &rec) < 0)
        goto out;
    if (roles)
        json_object_set(fields, "roles", roles);
    ctl_update_reply(call, "routers", "router", rec, fields);
out:
    json_decref(fields);
    json_decref(rec);
    json_decref(roles);
    json_decref(body);
}

void ctl_api_routers_delete(ctl_call *call)
{
    ctl_delete(call, "routers", "router");
}
