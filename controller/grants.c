/* Withdrawn grants (grants.h). Only pairs the old policy granted can have
 * lost access, so the work is bounded by what that policy selected. */
#include "controller/grants.h"

#include <string.h>
#include <time.h>

#include "controller/netmap.h"
#include "controller/policy.h"
#include "controller/store.h"
#include "proto/log.h"
#include "weft/errors.h"

static json_t *lost_pairs(const json_t *old, int flag, const json_t *idents, const json_t *svcs,
                          const json_t *pols)
{
    json_t *pairs = json_array(), *id, *svc;
    size_t i, j;

    json_array_foreach(idents, i, id)
    {
        json_array_foreach(svcs, j, svc)
        {
            if (!ctl_policy_grants(old, id, svc) || (ctl_policy_access(pols, id, svc) & flag))
                continue;
            json_array_append_new(pairs, json_pack("{s:O, s:O}", "identity",
                                                   json_object_get(id, "id"), "service",
                                                   json_object_get(svc, "id")));
        }
    }
    return pairs;
}

int ctl_grants_withdraw(ctl *c, const json_t *old)
{
    const char *type = json_string_value(json_object_get(old, "type"));
    int64_t ttl = c->cfg.service_token_ttl > 0 ? c->cfg.service_token_ttl
                                                : CTL_SVC_TOKEN_TTL_DEFAULT;
    int64_t now = time(NULL);
    json_t *idents = NULL, *svcs = NULL, *pols = NULL, *pairs = NULL;
    char cause[CTL_GRANT_CAUSE_MAX + 1];
    int flag, rc;

    if (type == NULL || c->map == NULL)
        return 0;
    if (strcmp(type, "dial") == 0)
        flag = CTL_POLICY_DIAL;
    else if (strcmp(type, "bind") == 0)
        flag = CTL_POLICY_BIND;
    else
        return 0;
    if ((rc = ctl_list_all(c->store, "identities", &idents)) < 0 ||
        (rc = ctl_list_all(c->store, "services", &svcs)) < 0 ||
        (rc = ctl_list_all(c->store, "policies", &pols)) < 0)
        goto out;
    if ((pairs = lost_pairs(old, flag, idents, svcs, pols)) == NULL) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    rc = (int)json_array_size(pairs);
    snprintf(cause, sizeof(cause), "%s policy \"%s\" deleted or changed", type,
             json_string_value(json_object_get(old, "name")) ?: "?");
    if (rc > 0 && (rc = ctl_netmap_grants_revoke(c->map, pairs, type, now, now + ttl, cause)) == 0)
        rc = (int)json_array_size(pairs);
    pr_info("grants_withdrawn", "policy=%s act=%s pairs=%d",
            pr_log_q(json_string_value(json_object_get(old, "name"))), type, rc);
out:
    json_decref(pairs);
    json_decref(idents);
    json_decref(svcs);
    json_decref(pols);
    return rc;
}

/* Pairs (rec as it was, as it is) x others that lost flag's access. */
static json_t *lost_by_record(const json_t *was, const json_t *now, int is_identity,
                              const json_t *others, const json_t *pols, int flag)
{
    json_t *pairs = json_array(), *o;
    size_t i;

    json_array_foreach(others, i, o)
    {
        const json_t *id_was = is_identity ? was : o, *svc_was = is_identity ? o : was;
        const json_t *id_now = is_identity ? now : o, *svc_now = is_identity ? o : now;

        if (!(ctl_policy_access(pols, id_was, svc_was) & flag) ||
            (ctl_policy_access(pols, id_now, svc_now) & flag))
            continue;
        json_array_append_new(pairs, json_pack("{s:O, s:O}", "identity",
                                               json_object_get(id_was, "id"), "service",
                                               json_object_get(svc_was, "id")));
    }
    return pairs;
}

int ctl_grants_withdraw_record(ctl *c, const char *coll, const json_t *old)
{
    static const char *const acts[] = {"dial", "bind"};
    const int flags[] = {CTL_POLICY_DIAL, CTL_POLICY_BIND};
    const char *id = json_string_value(json_object_get(old, "id"));
    int is_identity = strcmp(coll, "identities") == 0;
    int64_t ttl = c->cfg.service_token_ttl > 0 ? c->cfg.service_token_ttl
                                                : CTL_SVC_TOKEN_TTL_DEFAULT;
    int64_t now = time(NULL);
    json_t *cur = NULL, *others = NULL, *pols = NULL, *pairs = NULL;
    char cause[CTL_GRANT_CAUSE_MAX + 1];
    int rc, total = 0;

    if (id == NULL || c->map == NULL || (!is_identity && strcmp(coll, "services") != 0))
        return 0;
    if ((rc = ctl_store_get(c->store, coll, id, &cur)) < 0)
        return rc == WEFT_ENOTFOUND ? 0 : rc;
    if (json_equal(json_object_get(old, "roles"), json_object_get(cur, "roles")))
        goto out; /* the roles did not change: nothing can be lost */
    if ((rc = ctl_list_all(c->store, is_identity ? "services" : "identities", &others)) < 0 ||
        (rc = ctl_list_all(c->store, "policies", &pols)) < 0)
        goto out;
    snprintf(cause, sizeof(cause), "the %s's roles changed", is_identity ? "identity" : "service");
    for (size_t k = 0; k < 2; k++) {
        json_decref(pairs);
        if ((pairs = lost_by_record(old, cur, is_identity, others, pols, flags[k])) == NULL) {
            rc = WEFT_ENOMEM;
            goto out;
        }
        if (json_array_size(pairs) == 0)
            continue;
        if ((rc = ctl_netmap_grants_revoke(c->map, pairs, acts[k], now, now + ttl, cause)) < 0)
            goto out;
        total += (int)json_array_size(pairs);
    }
    rc = total;
    pr_info("grants_withdrawn", "%s=%s cause=roles pairs=%d", is_identity ? "identity" : "service",
            id, total);
out:
    json_decref(pairs);
    json_decref(cur);
    json_decref(others);
    json_decref(pols);
    return rc;
}
