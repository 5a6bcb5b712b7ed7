/* /v1/identities: edge and admin identities, their roles, device binding and
 * enable/disable state. Creating one also issues its enrolment token. */
#include <string.h>

#include "controller/control.h"
#include "controller/behaviour.h"
#include "controller/controller.h"
#include "controller/grants.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

static const char *const bindings[] = {"none", "exact", "iccid", "imei", NULL};

/* tz: the identity's IANA zone, for the hours of activity of anomaly
 * detection (docs/policies.md); null (patch) forgets it: UTC. 0 absent, 1
 * present (in fields), < 0 answered. */
static int field_tz(ctl_call *call, json_t *body, int creating, json_t *fields)
{
    json_t *v = json_object_get(body, "tz");

    if (v == NULL || (json_is_null(v) && creating))
        return 0;
    if (!json_is_null(v) && !ctl_behaviour_zone_valid(json_string_value(v))) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'tz' must be a zone of the system's zone database, e.g. "
                        "\"Europe/Paris\" (or null for UTC)");
        return WEFT_EINVAL;
    }
    json_object_set(fields, "tz", v);
    return 1;
}

void ctl_api_identities_list(ctl_call *call)
{
    ctl_list(call, "identities");
}

/* token_ttl: how long the enrolment token stays valid, in seconds. */
static int field_ttl(ctl_call *call, json_t *body, int64_t *ttl)
{
    json_t *v = json_object_get(body, "token_ttl");

    *ttl = 0;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > CTL_TOKEN_TTL_MAX) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'token_ttl' must be an integer number of seconds in 1..%d",
                        CTL_TOKEN_TTL_MAX);
        return WEFT_EINVAL;
    }
    *ttl = json_integer_value(v);
    return 1;
}

void ctl_api_identities_create(ctl_call *call)
{
    static const char *const allowed[] = {"name",      "roles", "binding", "admin",
                                          "token_ttl", "ca",    "tz",      NULL};
    const char *name, *binding = "none";
    json_t *body = NULL, *roles = NULL, *rec;
    char id[PR_ID_MAX + 1];
    int admin = 0;
    int64_t ttl;

    if (ctl_body(call, allowed, &body) < 0)
        return;
    if (ctl_field_name(call, body, "name", 1, &name) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0 ||
        ctl_field_enum(call, body, "binding", bindings, &binding) < 0 ||
        ctl_field_bool(call, body, "admin", &admin) < 0 || field_ttl(call, body, &ttl) < 0)
        goto out;
    pr_ident_new_id(id, sizeof(id));
    rec = json_pack("{s:s, s:s, s:o, s:s, s:b, s:b, s:b}", "id", id, "name", name, "roles",
                    roles ? json_incref(roles) : json_array(), "binding",
                    binding ? binding : "none", "admin", admin, "disabled", 0, "enrolled", 0);
    if (rec == NULL) {
        ctl_reply_error(call, 500, "internal", "out of memory");
        goto out;
    }
    if (field_tz(call, body, 1, rec) < 0 || ctl_identity_factory_ca(call, body, rec) < 0) {
        json_decref(rec);
        goto out;
    }
    ctl_create_enrollable(call, "identities", "identity", rec, ttl);
out:
    json_decref(roles);
    json_decref(body);
}

void ctl_api_identities_get(ctl_call *call)
{
    json_t *rec;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        return;
    ctl_token_pending_attach(call->c, rec);
    ctl_reply_data(call, 200, rec);
}

void ctl_api_identities_patch(ctl_call *call)
{
    static const char *const allowed[] = {"roles", "binding", "tz", NULL};
    json_t *body = NULL, *roles = NULL, *rec = NULL, *fields = json_object();
    const char *binding;

    if (ctl_body(call, allowed, &body) < 0)
        goto out;
    if (ctl_field_roles(call, body, "roles", &roles) < 0 ||
        ctl_field_enum(call, body, "binding", bindings, &binding) < 0 ||
        field_tz(call, body, 0, fields) < 0 || ctl_load(call, "identities", "identity", &rec) < 0)
        goto out;
    if (roles)
        json_object_set(fields, "roles", roles);
    if (binding)
        json_object_set_new(fields, "binding", json_string(binding));
    ctl_update_reply(call, "identities", "identity", rec, fields);
    if (roles) { /* roles taken away can take rights away (docs/policies.md) */
        ctl_grants_withdraw_record(call->c, "identities", rec);
        ctl_control_roles_changed(call->c->control, json_string_value(json_object_get(rec, "id")));
    }
out:
    json_decref(fields);
    json_decref(rec);
    json_decref(roles);
    json_decref(body);
}

/* An admin locking itself out is almost always a mistake. */
static int is_self(ctl_call *call, json_t *rec, const char *action)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *me = json_string_value(json_object_get(call->admin, "id"));

    if (id == NULL || me == NULL || strcmp(id, me) != 0)
        return 0;
    ctl_reply_error(
        call, 409, "conflict",
        "refusing to %s the identity you are authenticated as; use another admin identity", action);
    return 1;
}

static void set_disabled(ctl_call *call, int disabled)
{
    json_t *rec = NULL, *fields = NULL;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        return;
    if (disabled && is_self(call, rec, "disable"))
        goto out;
    fields = json_pack("{s:b}", "disabled", disabled);
    pr_info(disabled ? "identity_disabled" : "identity_enabled", "id=%s name=%s",
            json_string_value(json_object_get(rec, "id")),
            pr_log_q(json_string_value(json_object_get(rec, "name"))));
    ctl_update_reply(call, "identities", "identity", rec, fields);
out:
    json_decref(fields);
    json_decref(rec);
}

void ctl_api_identities_disable(ctl_call *call)
{
    set_disabled(call, 1);
}

void ctl_api_identities_enable(ctl_call *call)
{
    set_disabled(call, 0);
}

void ctl_api_identities_delete(ctl_call *call)
{
    json_t *rec;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        return;
    if (!is_self(call, rec, "delete"))
        ctl_delete(call, "identities", "identity");
    json_decref(rec);
}
