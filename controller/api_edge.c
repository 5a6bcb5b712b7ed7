/* GET /v1/edge/session: what an edge identity may reach (docs/dataplane.md
 * "Edge session data"): the routers it can connect to, and the services its
 * policies let it dial or bind, each with short-lived service tokens. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/baseline.h"
#include "controller/behaviour.h"
#include "controller/controller.h"
#include "controller/events.h"
#include "controller/policy.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

/* The caller must present the certificate of an existing, enabled identity. */
static int edge_identity(ctl_call *call, json_t **out)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    const char *uri = call->req->peer_uri;
    json_t *rec = NULL;
    int kind;

    *out = NULL;
    if (uri == NULL) {
        ctl_reply_error(call, 401, "unauthenticated",
                        "this route needs an identity certificate: enrol the device with "
                        "'weft-edge enroll' and use its identity file");
        return WEFT_ENOCERT;
    }
    if (pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0 ||
        kind != PR_IDENT_IDENTITY || strcmp(td, call->c->cfg.name) != 0 ||
        ctl_store_get(call->c->store, "identities", id, &rec) < 0 ||
        strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) != 0) {
        json_decref(rec);
        pr_warn("edge_session_denied", "peer=%s uri=%s reason=%s", call->req->peer_addr,
                pr_log_q(uri), pr_log_q("not an identity of this network"));
        ctl_reply_error(call, 403, "forbidden",
                        "certificate %s is not that of an identity of network '%s'; enrol again",
                        uri, call->c->cfg.name);
        return WEFT_EDENIED;
    }
    if (json_is_true(json_object_get(rec, "disabled"))) {
        json_decref(rec);
        pr_info("edge_session_denied", "peer=%s id=%s reason=disabled", call->req->peer_addr, id);
        ctl_reply_error(call, 403, "disabled",
                        "identity %s is disabled; ask the administrator to enable it", id);
        return WEFT_EDISABLED;
    }
    *out = rec;
    return 0;
}

static void binding_event(ctl_call *call, const json_t *ident, const char *imei,
                          const char *iccid, const char *why, int denied)
{
    json_t *ev;

    if (call->c->events == NULL)
        return;
    ev = json_pack("{s:s, s:O, s:s, s:s, s:s, s:s, s:[s,s]}", "kind", "binding", "identity",
                   json_object_get(ident, "id"), "imei", imei, "iccid", iccid, "msg", why,
                   "source", "controller", "actions", "log", denied ? "alert" : "log");
    if (ev)
        ctl_events_emit(call->c, call->c->events, ev);
    json_decref(ev);
}

/* The device binding, when the edge reports its hardware ids (query
 * parameters imei and iccid): a mismatch is refused and alerted, a first use
 * is recorded, a flagged change logged. Edges that report nothing here are
 * checked by the router against EDGE_HELLO (the "hw" claim). */
static int edge_binding(ctl_call *call, json_t **ident)
{
    char imei[65] = "", iccid[65] = "", why[320] = "";
    json_t *update = NULL, *rec = NULL;
    const char *id = json_string_value(json_object_get(*ident, "id"));
    int flag, rc;

    ctl_http_query(call->req, "imei", imei, sizeof(imei));
    ctl_http_query(call->req, "iccid", iccid, sizeof(iccid));
    if (imei[0] == '\0' && iccid[0] == '\0')
        return 0;
    rc = ctl_binding_check(*ident, imei, iccid, &update, why, sizeof(why), &flag);
    if (rc < 0) {
        pr_warn("edge_session_denied", "peer=%s id=%s reason=binding", call->req->peer_addr, id);
        binding_event(call, *ident, imei, iccid, why, 1);
        ctl_reply_error(call, 403, "binding_mismatch", "%s", why);
        return rc;
    }
    if (flag)
        binding_event(call, *ident, imei, iccid, why, 0);
    if (update && ctl_store_update(call->c->store, "identities", id, update) == 0 &&
        ctl_store_get(call->c->store, "identities", id, &rec) == 0) {
        json_decref(*ident);
        *ident = rec;
    }
    json_decref(update);
    return 0;
}

/* Every enrolled router with an edge listener the identity's router
 * policies let it use (docs/policies.md). */
static json_t *edge_routers(json_t *routers, const json_t *ident, const json_t *policies)
{
    json_t *out = json_array(), *r;
    size_t i;

    json_array_foreach(routers, i, r)
    {
        json_t *el = json_object_get(r, "edge_listen");
        if (!json_is_true(json_object_get(r, "enrolled")) || !json_is_string(el) ||
            json_string_length(el) == 0 || !ctl_policy_router_allowed(policies, ident, r))
            continue;
        json_array_append_new(out, json_pack("{s:O, s:O, s:O}", "id", json_object_get(r, "id"),
                                             "name", json_object_get(r, "name"), "edge_listen",
                                             el));
    }
    return out;
}

static int add_token(ctl_call *call, const char *ident_id, json_t *svc, const char *act,
                     json_t *tokens, int64_t now, int64_t *exp, const json_t *extra)
{
    char *tok = NULL;
    int rc = ctl_svctoken_issue_ext(call->c, ident_id, svc, act, now, extra, &tok, exp);

    if (rc == 0)
        json_object_set_new(tokens, act, json_string(tok));
    free(tok);
    return rc;
}

/* Claims the ingress router enforces offline (docs/policies.md): behaviour
 * limits ("lim"), the identity's anomaly baseline where limits apply
 * ("base") and the device binding ("hw"). */
static json_t *token_extra(ctl *c, const json_t *ident, const json_t *svc, const json_t *policies,
                           int64_t now)
{
    json_t *extra = json_object(), *lim = ctl_behaviour_limits(policies, ident, svc, now);
    json_t *hw = ctl_binding_claim(ident), *base = lim ? ctl_baseline_claim(c, ident, now) : NULL;

    if (lim)
        json_object_set_new(extra, "lim", lim);
    if (base)
        json_object_set_new(extra, "base", base);
    if (hw)
        json_object_set_new(extra, "hw", hw);
    /* Routers match router policies' "#role" selectors against these. */
    if (json_is_array(json_object_get(ident, "roles")))
        json_object_set(extra, "roles", json_object_get(ident, "roles"));
    return extra;
}

static json_t *service_entry(ctl_call *call, const json_t *ident, json_t *svc, int acc,
                             int64_t now, const json_t *policies)
{
    const char *ident_id = json_string_value(json_object_get(ident, "id"));
    char when[32];
    int64_t exp = now;
    json_t *tokens = json_object(), *e, *extra = token_extra(call->c, ident, svc, policies, now);
    int bad = ((acc & CTL_POLICY_DIAL) &&
               add_token(call, ident_id, svc, "dial", tokens, now, &exp, extra) < 0) ||
              ((acc & CTL_POLICY_BIND) &&
               add_token(call, ident_id, svc, "bind", tokens, now, &exp, extra) < 0);

    json_decref(extra);
    if (bad) {
        json_decref(tokens);
        return NULL;
    }
    ctl_rfc3339(exp, when);
    e = json_pack("{s:O, s:O, s:b, s:b, s:o, s:s}", "id", json_object_get(svc, "id"), "name",
                  json_object_get(svc, "name"), "dial", (acc & CTL_POLICY_DIAL) != 0, "bind",
                  (acc & CTL_POLICY_BIND) != 0, "tokens", tokens, "expires_at", when);
    if (e == NULL)
        return NULL;
    if (json_is_string(json_object_get(svc, "intercept")))
        json_object_set(e, "intercept", json_object_get(svc, "intercept"));
    if (json_is_string(json_object_get(svc, "host")))
        json_object_set(e, "host", json_object_get(svc, "host"));
    return e;
}

static json_t *edge_services(ctl_call *call, json_t *ident, json_t *svcs, json_t *policies)
{
    int64_t now = (int64_t)time(NULL);
    json_t *out = json_array(), *s, *e;
    size_t i;

    json_array_foreach(svcs, i, s)
    {
        int acc = ctl_policy_access(policies, ident, s);
        if (acc == 0)
            continue;
        if ((e = service_entry(call, ident, s, acc, now, policies)) == NULL) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, e);
    }
    return out;
}

void ctl_api_edge_session(ctl_call *call)
{
    char key[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    json_t *ident = NULL, *routers = NULL, *svcs = NULL, *policies = NULL, *out_svcs;
    ctl *c = call->c;
    int rc;

    if (edge_identity(call, &ident) < 0 || edge_binding(call, &ident) < 0)
        goto out;
    if ((rc = ctl_list_all(c->store, "routers", &routers)) < 0 ||
        (rc = ctl_list_all(c->store, "services", &svcs)) < 0 ||
        (rc = ctl_list_all(c->store, "policies", &policies)) < 0) {
        ctl_reply_store_error(call, rc, "session data", "");
        goto out;
    }
    if ((out_svcs = edge_services(call, ident, svcs, policies)) == NULL) {
        ctl_reply_error(call, 500, "internal", "cannot sign service tokens; retry");
        goto out;
    }
    sodium_bin2base64(key, sizeof(key), c->pk, sizeof(c->pk), sodium_base64_VARIANT_ORIGINAL);
    ctl_reply_data(call, 200,
                   json_pack("{s:{s:O, s:O, s:O}, s:o, s:o, s:s, s:i}", "identity", "id",
                             json_object_get(ident, "id"), "name", json_object_get(ident, "name"),
                             "roles", json_object_get(ident, "roles"), "routers",
                             edge_routers(routers, ident, policies), "services", out_svcs, "signing_key", key,
                             "refresh_s", CTL_EDGE_REFRESH_S));
out:
    json_decref(policies);
    json_decref(svcs);
    json_decref(routers);
    json_decref(ident);
}
