/* Service tokens (docs/dataplane.md "Service tokens"): short-lived JWTs a
 * router checks offline with the controller's public key before it lets an
 * identity dial or bind a service. */
#include <string.h>

#include "controller/behaviour.h"
#include "controller/controller.h"
#include "proto/ident.h"
#include "proto/jwt.h"
#include "weft/errors.h"

int ctl_svctoken_issue(const ctl *c, const char *identity_id, const json_t *service,
                       const char *act, int64_t now, char **tok, int64_t *exp)
{
    return ctl_svctoken_issue_ext(c, identity_id, service, act, now, NULL, tok, exp);
}

/* Extra claims (behaviour limits, the device binding) never replace the
 * standard ones a router checks. */
int ctl_svctoken_issue_ext(const ctl *c, const char *identity_id, const json_t *service,
                           const char *act, int64_t now, const json_t *extra, char **tok,
                           int64_t *exp)
{
    const char *svc_id = json_string_value(json_object_get(service, "id"));
    const char *svc_name = json_string_value(json_object_get(service, "name"));
    int64_t ttl = c->cfg.service_token_ttl > 0 ? c->cfg.service_token_ttl : CTL_SVC_TOKEN_TTL_DEFAULT;
    char jti[PR_ID_MAX + 1];
    json_t *claims;
    int rc;

    *tok = NULL;
    if (identity_id == NULL || svc_id == NULL || svc_name == NULL || act == NULL ||
        (strcmp(act, "dial") != 0 && strcmp(act, "bind") != 0))
        return WEFT_EINVAL;
    pr_ident_new_id(jti, sizeof(jti));
    claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "aud",
                       CTL_SVC_TOKEN_AUD, "iss", c->cfg.url, "net", c->cfg.name, "sub",
                       identity_id, "svc", svc_id, "svc_name", svc_name, "act", act, "iat",
                       (json_int_t)now, "exp", (json_int_t)(now + ttl), "jti", jti);
    if (claims == NULL)
        return WEFT_ENOMEM;
    if (extra != NULL)
        json_object_update_missing(claims, (json_t *)extra);
    rc = pr_jwt_sign(claims, c->sk, tok);
    json_decref(claims);
    if (rc == 0 && exp)
        *exp = now + ttl;
    return rc;
}
