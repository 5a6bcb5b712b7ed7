/* Service tokens: EdDSA JWTs from the controller, checked with pr_jwt_verify
 * against the map's signing key, then claim by claim. */
#include "router/token.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "proto/jwt.h"
#include "proto/errf.h"
#include "weft/errors.h"

static const char *claim(const json_t *c, const char *key)
{
    const char *s = json_string_value(json_object_get(c, key));
    return s ? s : "";
}

static int check_claims(const json_t *c, const char *network, const char *identity_id,
                        const char *act, const char *service, char *err, size_t errcap)
{
    if (strcmp(claim(c, "aud"), "weft-service") != 0)
        return pr_errf(err, errcap, WEFT_ETOKEN,
                       "not a service token (aud is not weft-service); use the token from GET "
                       "/v1/edge/session");
    if (strcmp(claim(c, "net"), network) != 0)
        return pr_errf(err, errcap, WEFT_ETOKEN, "token is for network \"%.64s\", not \"%.64s\"",
                       claim(c, "net"), network);
    if (strcmp(claim(c, "sub"), identity_id) != 0)
        return pr_errf(err, errcap, WEFT_EDENIED,
                       "token belongs to another identity; each edge must use its own tokens");
    if (strcmp(claim(c, "act"), act) != 0)
        return pr_errf(err, errcap, WEFT_EDENIED, "token is for %.8s, not %s; use the %s token",
                       claim(c, "act")[0] ? claim(c, "act") : "nothing", act, act);
    if (strcmp(claim(c, "svc_name"), service) != 0)
        return pr_errf(err, errcap, WEFT_EDENIED, "token is for service %.128s, not %.128s",
                       claim(c, "svc_name"), service);
    return 0;
}

static int check_service(const rt_map *m, const json_t *c, const char *service, rt_token_info *info,
                         char *err, size_t errcap)
{
    const rt_map_service *s = rt_map_service_by_name(m, service);

    if (s == NULL)
        return pr_errf(err, errcap, WEFT_ENOTFOUND,
                       "service %.128s is not in this router's network map; check the name, or "
                       "wait for the map to catch up",
                       service);
    if (strcmp(claim(c, "svc"), s->id) != 0)
        return pr_errf(err, errcap, WEFT_EDENIED,
                       "token is for another service with the name %.128s (it was re-created); "
                       "fetch a new token",
                       service);
    snprintf(info->service_id, sizeof(info->service_id), "%s", s->id);
    snprintf(info->service_name, sizeof(info->service_name), "%s", s->name);
    return 0;
}

/* The identity's roles, for router policies' "#role" selectors; roles that
 * do not fit are dropped (an older controller sends no claim at all). */
static void token_roles(const json_t *c, rt_token_info *info)
{
    const json_t *a = json_object_get(c, "roles"), *v;
    size_t i, off = 0;

    info->roles[0] = '\0';
    info->roles_known = json_is_array(a);
    json_array_foreach(a, i, v)
    {
        const char *r = json_string_value(v);
        int n;
        if (r == NULL || strchr(r, ',') != NULL)
            continue;
        n = snprintf(info->roles + off, sizeof(info->roles) - off, "%s#%s", off ? "," : "", r);
        if (n < 0 || (size_t)n >= sizeof(info->roles) - off) {
            info->roles[off] = '\0';
            break;
        }
        off += (size_t)n;
    }
}

int rt_token_check(const rt_map *m, const char *network, const char *token, const char *identity_id,
                   const char *act, const char *service, long long now, rt_token_info *info,
                   char *err, size_t errcap)
{
    json_t *c = NULL;
    int ret;

    if (!m || !network || !token || !identity_id || !act || !service || !info)
        return WEFT_EINVAL;
    if (rt_map_is_revoked(m, identity_id))
        return pr_errf(err, errcap, WEFT_EDISABLED, "identity revoked; ask the administrator");
    if (!m->have_key)
        return pr_errf(err, errcap, WEFT_ETOKEN,
                       "router has no token key yet (no network map from the controller); retry "
                       "shortly");
    if (pr_jwt_verify(token, m->signing_key, &c) < 0)
        return pr_errf(err, errcap, WEFT_ETOKEN,
                       "token signature does not verify with the controller key; fetch a new "
                       "token from the controller");
    if ((ret = pr_jwt_check_exp(c, now)) == WEFT_ETOKENEXPIRED) {
        ret = pr_errf(err, errcap, ret,
                      "token expired; the edge refreshes tokens from the controller — is it "
                      "reachable?");
        goto out;
    }
    if (ret < 0) {
        ret = pr_errf(err, errcap, ret, "token has no expiry; fetch a new token");
        goto out;
    }
    if ((ret = check_claims(c, network, identity_id, act, service, err, errcap)) < 0 ||
        (ret = check_service(m, c, service, info, err, errcap)) < 0)
        goto out;
    info->exp = (long long)json_integer_value(json_object_get(c, "exp"));
    info->iat = (long long)json_integer_value(json_object_get(c, "iat"));
    if (rt_map_grant_withdrawn(m, identity_id, info->service_id, act, info->iat, now)) {
        ret = pr_errf(err, errcap, WEFT_EDENIED,
                      "a policy change withdrew this identity's right to %s service %.128s; ask "
                      "the administrator",
                      act, service);
        goto out;
    }
    rt_limits_from_claims(c, &info->lim, &info->hw);
    token_roles(c, info);
out:
    json_decref(c);
    return ret;
}
