/* /v1/events (security and audit events), /v1/webhooks (where alerts go, and
 * the CA each https:// target is verified with) and
 * POST /v1/identities/{id}/rebind (forget the hardware ids bound to an
 * identity, so that the next session binds afresh). docs/policies.md. */
#include <stdlib.h>
#include <string.h>

#include "controller/events.h"
#include "proto/httpc.h"
#include "proto/log.h"
#include "weft/errors.h"

static int need_events(ctl_call *call)
{
    if (call->c->events != NULL)
        return 0;
    ctl_reply_error(call, 503, "unavailable",
                    "the event store is not open; check the controller's log at start-up");
    return WEFT_EINVAL;
}

static int query_num(ctl_call *call, const char *key, long long min, long long max,
                     long long *out)
{
    char buf[32], *end;
    long long v;

    if (ctl_http_query(call->req, key, buf, sizeof(buf)) == NULL)
        return 0;
    v = strtoll(buf, &end, 10);
    if (buf[0] == '\0' || *end != '\0' || v < min || v > max) {
        ctl_reply_error(call, 400, "bad_request",
                        "query parameter '%s' must be an integer in %lld..%lld", key, min, max);
        return WEFT_EINVAL;
    }
    *out = v;
    return 1;
}

void ctl_api_events_list(ctl_call *call)
{
    char ident[CTL_NAME_MAX + 1];
    long long after = 0, limit = 100;
    const char *who;
    json_t *items = NULL, *last;
    int rc;

    if (need_events(call) < 0 || query_num(call, "after", 0, INT64_MAX, &after) < 0 ||
        query_num(call, "limit", 1, 1000, &limit) < 0)
        return;
    who = ctl_http_query(call->req, "identity", ident, sizeof(ident));
    if ((rc = ctl_events_list(call->c->events, after, (int)limit, who, &items)) < 0) {
        ctl_reply_error(call, 500, "store", "cannot read events; see the controller's log");
        return;
    }
    last = json_array_size(items) ? json_object_get(json_array_get(items, json_array_size(items) - 1), "id")
                                   : NULL;
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I}}", "data", items, "meta", "last",
                        (json_int_t)(last ? json_integer_value(last) : after)));
}

void ctl_api_webhooks_list(ctl_call *call)
{
    json_t *items = NULL;

    if (need_events(call) < 0)
        return;
    if (ctl_webhook_list(call->c->events, &items) < 0) {
        ctl_reply_error(call, 500, "store", "cannot read webhooks; see the controller's log");
        return;
    }
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I}}", "data", items, "meta", "total",
                        (json_int_t)json_array_size(items)));
}

/* Field 'ca': absent (*out NULL), "" or null (none), or a PEM bundle of
 * certificates; anything else is refused with what is wrong in it. */
static int field_ca(ctl_call *call, json_t *body, const char **out)
{
    char why[256];
    unsigned n;
    int rc;

    if (json_is_null(json_object_get(body, "ca"))) {
        *out = "";
        return 1;
    }
    if ((rc = ctl_field_str(call, body, "ca", 0, out)) != 1 || (*out)[0] == '\0')
        return rc;
    if (pr_httpc_ca_check(*out, strlen(*out), &n, why, sizeof(why)) < 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'ca' must be the PEM certificates of the CA that issued the "
                        "target's certificate: %s",
                        why);
        return WEFT_EINVAL;
    }
    return 1;
}

/* Answers a webhook that could not be stored; 0 when rc is not an error. */
static int target_error(ctl_call *call, int rc, const char *name)
{
    if (rc == WEFT_EINVAL)
        ctl_reply_error(call, 400, "bad_request",
                        "field 'url' must be http://HOST:PORT/PATH or https://HOST:PORT/PATH, "
                        "and https:// for a webhook with a 'ca'");
    else if (rc == WEFT_EEXISTS)
        ctl_reply_error(call, 409, "exists", "a webhook named '%s' exists; pick another name",
                        name);
    else if (rc == WEFT_ENOTFOUND)
        ctl_reply_error(call, 404, "not_found", "no webhook with id or name '%s'", name);
    else if (rc < 0)
        ctl_reply_error(call, 500, "store", "cannot store the webhook; see the controller's log");
    return rc < 0 ? rc : 0;
}

void ctl_api_webhooks_create(ctl_call *call)
{
    static const char *const allowed[] = {"name", "url", "ca", NULL};
    const char *name, *url, *ca = NULL;
    json_t *body = NULL, *rec = NULL;

    if (need_events(call) < 0 || ctl_body(call, allowed, &body) < 0)
        return;
    if (ctl_field_name(call, body, "name", 1, &name) < 0 ||
        ctl_field_str(call, body, "url", 1, &url) < 0 || field_ca(call, body, &ca) < 0 ||
        target_error(call, ctl_webhook_add(call->c->events, name, url, ca, &rec), name) < 0)
        goto out;
    pr_info("webhook_created", "name=%s url=%s trust=%s", pr_log_q(name), pr_log_q(url),
            json_string_value(json_object_get(rec, "trust")));
    ctl_reply_data(call, 201, rec);
out:
    json_decref(body);
}

/* PATCH: a new url, a CA ("ca"), or none ("ca": "" or null). */
void ctl_api_webhooks_patch(ctl_call *call)
{
    static const char *const allowed[] = {"url", "ca", NULL};
    const char *url = NULL, *ca = NULL;
    json_t *body = NULL, *rec = NULL;

    if (need_events(call) < 0 || ctl_body(call, allowed, &body) < 0)
        return;
    if (ctl_field_str(call, body, "url", 0, &url) < 0 || field_ca(call, body, &ca) < 0 ||
        target_error(call, ctl_webhook_update(call->c->events, call->param, url, ca, &rec),
                     call->param) < 0)
        goto out;
    pr_info("webhook_updated", "name=%s url=%s trust=%s",
            pr_log_q(json_string_value(json_object_get(rec, "name"))),
            pr_log_q(json_string_value(json_object_get(rec, "url"))),
            json_string_value(json_object_get(rec, "trust")));
    ctl_reply_data(call, 200, rec);
out:
    json_decref(body);
}

void ctl_api_webhooks_delete(ctl_call *call)
{
    int rc;

    if (need_events(call) < 0)
        return;
    rc = ctl_webhook_del(call->c->events, call->param);
    if (rc == WEFT_ENOTFOUND)
        ctl_reply_error(call, 404, "not_found", "no webhook with id or name '%s'", call->param);
    else if (rc < 0)
        ctl_reply_error(call, 500, "store", "cannot delete the webhook; see the controller's log");
    else
        ctl_reply(call, 204, NULL);
}

void ctl_api_identities_rebind(ctl_call *call)
{
    json_t *rec = NULL, *fields = json_pack("{s:n, s:n}", "imei", "iccid"), *ev;
    const char *id;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        goto out;
    id = json_string_value(json_object_get(rec, "id"));
    if (call->c->events && (ev = json_pack("{s:s, s:s, s:O, s:O, s:[s]}", "kind", "rebind",
                                           "identity", id, "imei", json_object_get(rec, "imei"),
                                           "iccid", json_object_get(rec, "iccid"), "actions",
                                           "log"))) {
        ctl_events_emit(call->c, call->c->events, ev);
        json_decref(ev);
    }
    pr_info("identity_rebind", "id=%s", id);
    ctl_update_reply(call, "identities", "identity", rec, fields);
out:
    json_decref(fields);
    json_decref(rec);
}
