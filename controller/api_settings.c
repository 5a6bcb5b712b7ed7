/* /v1/settings/anomaly: network-wide anomaly-detection settings, carried to
 * every router by the map (docs/policies.md "Anomaly detection"); and
 * /v1/identities/{id}/baseline, the baseline the controller keeps for an
 * identity from the routers' reports. */
#include <stdlib.h>
#include <string.h>

#include "controller/baseline.h"
#include "controller/control.h"
#include "controller/controller.h"
#include "controller/netmap.h"
#include "proto/anomaly.h"
#include "proto/log.h"
#include "weft/errors.h"

/* The settings saved in the store ({} when none). */
static int anomaly_saved(ctl *c, json_t **out)
{
    int rc = ctl_store_setting_object(c->store, CTL_ANOMALY_SETTING, out);

    /* None, or unreadable: as if none (the map did the same at start). */
    if (rc == WEFT_ENOTFOUND || rc == WEFT_EJSON)
        rc = (*out = json_object()) ? 0 : WEFT_ENOMEM;
    return rc;
}

/* Saves settings and hands them to the map, which tells every router. */
static int anomaly_save(ctl *c, const json_t *settings)
{
    char *text = json_dumps(settings, JSON_COMPACT);
    int rc = text ? ctl_store_setting_set(c->store, CTL_ANOMALY_SETTING, text) : WEFT_ENOMEM;

    free(text);
    if (rc == 0 && c->map && (rc = ctl_netmap_set_anomaly(c->map, settings)) < 0)
        pr_error("map_update_failed", "what=anomaly err=%s hint=%s", weft_err_name(rc),
                 pr_log_q("routers keep the previous settings; restart the controller"));
    return rc;
}

void ctl_api_anomaly_get(ctl_call *call)
{
    json_t *saved;
    int rc = anomaly_saved(call->c, &saved);

    if (rc < 0)
        ctl_reply_store_error(call, rc, "anomaly settings", "");
    else
        ctl_reply_data(call, 200, saved);
}

/* One key of a patch into settings: a number in range, or null (removed). */
static int patch_key(ctl_call *call, const pr_anom_key_desc *d, const json_t *v, json_t *settings)
{
    if (json_is_null(v)) {
        json_object_del(settings, d->name);
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < d->lo || json_number_value(v) > d->hi) {
        ctl_reply_error(call, 400, "bad_request",
                        "field '%s' must be a number from %g to %g (or null: each router's "
                        "own setting)",
                        d->name, d->lo, d->hi);
        return WEFT_EINVAL;
    }
    json_object_set(settings, d->name, (json_t *)v);
    return 0;
}

void ctl_api_anomaly_patch(ctl_call *call)
{
    static const char *allowed[PR_ANOM_NKEYS + 1];
    json_t *body = NULL, *settings = NULL, *v;
    char *text;
    int rc;

    for (int k = 0; k < PR_ANOM_NKEYS; k++)
        allowed[k] = pr_anom_keys[k].name;
    if (ctl_body(call, allowed, &body) < 0)
        return;
    if ((rc = anomaly_saved(call->c, &settings)) < 0) {
        ctl_reply_store_error(call, rc, "anomaly settings", "");
        goto out;
    }
    for (int k = 0; k < PR_ANOM_NKEYS; k++)
        if ((v = json_object_get(body, pr_anom_keys[k].name)) != NULL &&
            patch_key(call, &pr_anom_keys[k], v, settings) < 0)
            goto out;
    if ((rc = anomaly_save(call->c, settings)) < 0) {
        ctl_reply_store_error(call, rc, "anomaly settings", "");
        goto out;
    }
    text = json_dumps(settings, JSON_COMPACT);
    pr_info("anomaly_settings", "settings=%s", pr_log_q(text ? text : "?"));
    free(text);
    ctl_reply_data(call, 200, json_incref(settings));
out:
    json_decref(settings);
    json_decref(body);
}

void ctl_api_anomaly_delete(ctl_call *call)
{
    json_t *none = json_object();
    int rc = none ? anomaly_save(call->c, none) : WEFT_ENOMEM;

    json_decref(none);
    if (rc < 0) {
        ctl_reply_store_error(call, rc, "anomaly settings", "");
        return;
    }
    pr_info("anomaly_settings", "settings=%s", pr_log_q("{}"));
    ctl_reply(call, 204, NULL);
}

/* The identity's baseline; an identity nothing was learnt of yet has zeros
 * (and updated_at null). */
void ctl_api_identities_baseline(ctl_call *call)
{
    const char *id;
    json_t *rec = NULL, *base = NULL;
    ctl_baseline zero;
    int rc;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        return;
    id = json_string_value(json_object_get(rec, "id"));
    rc = ctl_store_baseline_get(call->c->store, id, &base);
    if (rc == WEFT_ENOTFOUND) {
        memset(&zero, 0, sizeof(zero));
        if ((base = ctl_baseline_to_json(&zero)) != NULL)
            json_object_set_new(base, "updated_at", json_null());
        rc = base ? 0 : WEFT_ENOMEM;
    }
    if (rc < 0) {
        ctl_reply_store_error(call, rc, "baseline", call->param);
    } else {
        json_object_set(base, "identity", json_object_get(rec, "id"));
        json_object_set_new(base, "tz",
                            json_string(json_string_value(json_object_get(rec, "tz")) ?: "UTC"));
        ctl_reply_data(call, 200, json_incref(base));
    }
    json_decref(base);
    json_decref(rec);
}

/* Forgets the identity's baseline at the controller and at every router
 * (CTL_BASELINE_RESET), so that it is learnt afresh: 204 whether or not one
 * was kept. */
void ctl_api_identities_baseline_delete(ctl_call *call)
{
    json_t *rec = NULL;
    const char *id;
    int rc;

    if (ctl_load(call, "identities", "identity", &rec) < 0)
        return;
    id = json_string_value(json_object_get(rec, "id"));
    rc = ctl_store_baseline_delete(call->c->store, id);
    if (rc < 0 && rc != WEFT_ENOTFOUND) {
        ctl_reply_store_error(call, rc, "baseline", call->param);
    } else {
        pr_info("baseline_forgotten", "identity=%s stored=%d routers=%u", id, rc == 0,
                ctl_control_baseline_reset(call->c->control, id));
        ctl_reply(call, 204, NULL);
    }
    json_decref(rec);
}
