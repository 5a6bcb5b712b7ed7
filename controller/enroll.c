/* Enrolment (tier 1), controller side: issuing one-time tokens, serving the CA
 * and turning a token plus a CSR into a certificate. See docs/enrollment.md.
 *
 * Order of checks in POST /v1/enroll: token signature, audience, network,
 * expiry and CA fingerprint first (cheap, no state); then the subject's state
 * and device binding; then the CSR is signed; last, the token is consumed and
 * the enrolment recorded in ONE store transaction. Signing before consuming
 * means a malformed CSR or a missing hardware id does not burn the token, and
 * the certificate's fingerprint is recorded atomically with the consumption;
 * a certificate signed for a request that then loses the race for the token is
 * simply never sent. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/controller.h"
#include "proto/addr.h"
#include "proto/ident.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "weft/errors.h"

#define IMEI_MAX  32
#define ICCID_MAX 32

int ctl_token_issue(ctl *c, const char *kind, const char *subject_id, int64_t ttl, json_t **out)
{
    unsigned char nonce[16];
    char jti[sizeof(nonce) * 2 + 1], exp_s[32];
    int64_t now = time(NULL), exp;
    json_t *claims;
    char *tok = NULL;
    int rc;

    exp = now + (ttl > 0 ? ttl : c->cfg.token_ttl);
    randombytes_buf(nonce, sizeof(nonce));
    sodium_bin2hex(jti, sizeof(jti), nonce, sizeof(nonce));
    claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", c->cfg.url, "aud",
                       CTL_ENROLL_AUD, "sub", subject_id, "kind", kind, "net", c->cfg.name, "ca",
                       c->ca_fp, "iat", (json_int_t)now, "exp", (json_int_t)exp, "jti", jti);
    if (claims == NULL)
        return WEFT_ENOMEM;
    if ((rc = pr_jwt_sign(claims, c->sk, &tok)) < 0 ||
        (rc = ctl_store_token_add(c->store, jti, kind, subject_id, exp)) < 0)
        goto out;
    ctl_rfc3339(exp, exp_s);
    *out = json_pack("{s:s, s:s}", "token", tok, "expires_at", exp_s);
    rc = *out ? 0 : WEFT_ENOMEM;
out:
    if (tok)
        sodium_memzero(tok, strlen(tok));
    free(tok);
    json_decref(claims);
    return rc;
}

void ctl_create_enrollable(ctl_call *call, const char *coll, const char *kind, json_t *rec,
                           int64_t ttl)
{
    char id[PR_ID_MAX + 1];
    json_t *enr = NULL, *stored = NULL;
    int rc;

    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(rec, "id")));
    if ((rc = ctl_store_create(call->c->store, coll, rec)) < 0) {
        ctl_reply_store_error(call, rc, kind, json_string_value(json_object_get(rec, "name")));
        goto out;
    }
    if ((rc = ctl_token_issue(call->c, kind, id, ttl, &enr)) < 0 ||
        (rc = ctl_store_get(call->c->store, coll, id, &stored)) < 0) {
        /* Without a token the record could never enrol: take it back. */
        ctl_store_delete(call->c->store, coll, id);
        pr_error("token_issue_failed", "kind=%s id=%s err=%s hint=%s", kind, id, weft_err_name(rc),
                 pr_log_q("check signing.key and weft.db"));
        ctl_reply_error(call, 500, "internal", "could not issue an enrolment token (%s); retry",
                        weft_strerror(rc));
        goto out;
    }
    pr_info("created", "kind=%s id=%s name=%s", kind, id,
            pr_log_q(json_string_value(json_object_get(rec, "name"))));
    ctl_reply(call, 201, json_pack("{s:O, s:O}", "data", stored, "enrollment", enr));
out:
    json_decref(stored);
    json_decref(enr);
    json_decref(rec);
}

/* The store's pending token, reshaped for the API. Its expiry may be stored as
 * Unix time or as RFC 3339 text: accept both. */
void ctl_token_pending_attach(ctl *c, json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *tok = NULL, *exp;
    char exp_s[32] = "";

    if (id == NULL || ctl_store_token_pending(c->store, id, &tok) < 0)
        return;
    exp = json_object_get(tok, "expires_at");
    if (json_is_integer(exp))
        ctl_rfc3339(json_integer_value(exp), exp_s);
    else if (json_is_string(exp))
        snprintf(exp_s, sizeof(exp_s), "%s", json_string_value(exp));
    json_object_set_new(rec, "enrollment",
                        json_pack("{s:s, s:b}", "expires_at", exp_s, "used",
                                  json_is_true(json_object_get(tok, "used"))));
    json_decref(tok);
}

void ctl_api_enroll_ca(ctl_call *call)
{
    const char *pem = call->c->ca.cert_pem;

    ctl_reply_raw(call, 200, "application/x-pem-file", pem, strlen(pem));
}

/* ---- POST /v1/enroll ---- */

typedef struct {
    ctl_call *call;
    const char *token, *csr, *imei, *iccid, *edge_listen, *link_listen;
    const char *factory_cert, *signature; /* identities bound to a factory CA */
    char ffp[65];                         /* that factory certificate's fingerprint */
    const char *kind, *sub, *jti;
    json_t *claims;
    json_t *subject; /* the identity or router record */
    char *cert;
    char fp[65];
} enrol;

static int deny(enrol *e, int status, const char *code, const char *msg)
{
    pr_warn("enroll_denied", "peer=%s code=%s sub=%s", e->call->req->peer_addr, code,
            e->sub ? pr_log_q(e->sub) : "-");
    ctl_reply_error(e->call, status, code, "%s", msg);
    return WEFT_EDENIED;
}

static int field_listen(enrol *e, json_t *body, const char *key, const char **out)
{
    char host[256];
    unsigned port;
    int rc = ctl_field_str(e->call, body, key, 0, out);

    if (rc == 1 &&
        (pr_addr_split(*out, host, sizeof(host), &port) < 0 || port == 0 || port > 65535)) {
        ctl_reply_error(e->call, 400, "bad_request", "field '%s' must be HOST:PORT", key);
        return WEFT_EINVAL;
    }
    return rc;
}

static int hw_id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            if (!((s[i] >= 'A' && s[i] <= 'F') || (s[i] >= 'a' && s[i] <= 'f')))
                return 0;
    return n > 0 && n <= max;
}

static int parse_body(enrol *e, json_t *body)
{
    ctl_call *call = e->call;

    if (ctl_field_str(call, body, "token", 1, &e->token) < 0 ||
        ctl_field_str(call, body, "csr", 1, &e->csr) < 0 ||
        ctl_field_str(call, body, "imei", 0, &e->imei) < 0 ||
        ctl_field_str(call, body, "iccid", 0, &e->iccid) < 0 ||
        field_listen(e, body, "edge_listen", &e->edge_listen) < 0 ||
        field_listen(e, body, "link_listen", &e->link_listen) < 0 ||
        ctl_field_str(call, body, "factory_cert", 0, &e->factory_cert) < 0 ||
        ctl_field_str(call, body, "signature", 0, &e->signature) < 0)
        return WEFT_EINVAL;
    if ((e->factory_cert == NULL) != (e->signature == NULL)) {
        ctl_reply_error(call, 400, "bad_request",
                        "factory_cert and signature go together: send both or neither");
        return WEFT_EINVAL;
    }
    /* Hardware ids are digits (ICCIDs may end in a hex check character). */
    if ((e->imei && !hw_id_ok(e->imei, IMEI_MAX)) || (e->iccid && !hw_id_ok(e->iccid, ICCID_MAX))) {
        ctl_reply_error(call, 400, "bad_request",
                        "imei and iccid must be 1..32 digits (hex allowed) as read from the modem");
        return WEFT_EINVAL;
    }
    return 0;
}

static const char *claim(enrol *e, const char *key)
{
    return json_string_value(json_object_get(e->claims, key));
}

static int check_token(enrol *e)
{
    ctl *c = e->call->c;
    const char *ca;
    int rc;

    if (pr_jwt_verify(e->token, c->pk, &e->claims) < 0)
        return deny(e, 401, "invalid_token",
                    "the enrolment token is malformed or not signed by this controller; ask the "
                    "administrator for a new token");
    e->kind = claim(e, "kind");
    e->sub = claim(e, "sub");
    e->jti = claim(e, "jti");
    if (!claim(e, "aud") || strcmp(claim(e, "aud"), CTL_ENROLL_AUD) != 0 || !e->kind ||
        (strcmp(e->kind, "identity") != 0 && strcmp(e->kind, "router") != 0) || !e->sub ||
        !pr_ident_valid_id(e->sub) || !e->jti || !claim(e, "net") ||
        strcmp(claim(e, "net"), c->cfg.name) != 0)
        return deny(e, 401, "invalid_token",
                    "the token is not an enrolment token for this network; ask the administrator "
                    "for a new token");
    rc = pr_jwt_check_exp(e->claims, (long long)time(NULL));
    if (rc == WEFT_ETOKENEXPIRED)
        return deny(e, 401, "token_expired",
                    "the enrolment token has expired; ask the administrator to create a new one");
    if (rc < 0)
        return deny(e, 401, "invalid_token", "the token has no expiry; ask for a new token");
    ca = claim(e, "ca");
    if (ca == NULL || strcmp(ca, c->ca_fp) != 0)
        return deny(e, 401, "ca_mismatch",
                    "the token was issued for another network CA; check the controller URL or ask "
                    "for a token from this controller");
    return 0;
}

/* First enrolment records the hardware ids; the binding mode says which are required. */
static int check_binding(enrol *e)
{
    const char *mode = json_string_value(json_object_get(e->subject, "binding"));
    const char *need = NULL;

    if (mode == NULL || strcmp(mode, "none") == 0)
        return 0;
    if (strcmp(mode, "exact") == 0 && (!e->imei || !e->iccid))
        need = "this identity is bound to its device (exact): send both imei and iccid";
    else if (strcmp(mode, "iccid") == 0 && !e->iccid)
        need = "this identity is bound to its SIM: send the iccid";
    else if (strcmp(mode, "imei") == 0 && !e->imei)
        need = "this identity is bound to its modem: send the imei";
    if (need == NULL)
        return 0;
    return deny(e, 400, "bad_request", need);
}

static int load_subject(enrol *e)
{
    const char *coll = strcmp(e->kind, "router") == 0 ? "routers" : "identities";
    const char *id;
    int rc = ctl_store_get(e->call->c->store, coll, e->sub, &e->subject);

    id = json_string_value(json_object_get(e->subject, "id"));
    if (rc == WEFT_ENOTFOUND || (rc == 0 && (!id || strcmp(id, e->sub) != 0)))
        return deny(
            e, 401, "invalid_token",
            "the token's subject no longer exists; ask the administrator to create it again");
    if (rc < 0) {
        ctl_reply_store_error(e->call, rc, e->kind, e->sub);
        return rc;
    }
    if (json_is_true(json_object_get(e->subject, "disabled")))
        return deny(e, 403, "disabled",
                    "this identity is disabled; ask the administrator to enable it");
    if (strcmp(e->kind, "identity") == 0 && (e->edge_listen || e->link_listen)) {
        ctl_reply_error(e->call, 400, "bad_request",
                        "edge_listen and link_listen are only for routers; remove them");
        return WEFT_EINVAL;
    }
    return check_binding(e);
}

/* Router certificates also serve TLS: name the hosts they listen on. */
static void listen_sans(const char *addr, char *host, size_t cap, const char **dns, int *nd,
                        const char **ips, int *ni)
{
    unsigned char buf[16];
    unsigned port;

    if (addr == NULL || pr_addr_split(addr, host, cap, &port) < 0 || host[0] == '\0' ||
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        return;
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        ips[(*ni)++] = host;
    else
        dns[(*nd)++] = host;
}

static int sign_csr(enrol *e)
{
    ctl *c = e->call->c;
    int router = strcmp(e->kind, "router") == 0;
    char uri[PR_URI_MAX], serial[33], h1[256], h2[256];
    const char *dns[3] = {0}, *ips[3] = {0};
    int nd = 0, ni = 0, rc;
    pr_cert_req req = {0};

    if (pr_ident_format(router ? PR_IDENT_ROUTER : PR_IDENT_IDENTITY, c->cfg.name, e->sub, uri,
                        sizeof(uri)) < 0)
        return deny(e, 401, "invalid_token",
                    "the token's subject id is invalid; ask for a new token");
    if (router) {
        listen_sans(e->edge_listen, h1, sizeof(h1), dns, &nd, ips, &ni);
        listen_sans(e->link_listen, h2, sizeof(h2), dns, &nd, ips, &ni);
    }
    req = (pr_cert_req){.cn = json_string_value(json_object_get(e->subject, "name")),
                        .uri = uri,
                        .dns = nd ? dns : NULL,
                        .ips = ni ? ips : NULL,
                        .usage = router ? PR_CERT_BOTH : PR_CERT_CLIENT,
                        .not_after = time(NULL) + c->cfg.cert_validity};
    rc = ctl_ca_sign(c, e->csr, &req, &e->cert, serial);
    if (rc == WEFT_ENOMEM) {
        ctl_reply_error(e->call, 500, "internal", "out of memory; retry");
        return rc;
    }
    if (rc < 0)
        return deny(e, 400, "bad_csr",
                    "the certificate signing request is not a valid PEM CSR with a correct "
                    "signature; generate a new key and CSR");
    if ((rc = pr_pki_fingerprint(e->cert, e->fp)) < 0) {
        ctl_reply_error(e->call, 500, "internal", "cannot fingerprint the new certificate; retry");
        return rc;
    }
    return 0;
}

/* An identity the administrator created with a factory CA ("factory_ca")
 * enrols with its token AND a factory certificate from that CA, proved by a
 * signature over the CSR (the same checks as POST /v1/enroll/factory). */
static int check_factory(enrol *e)
{
    const char *want = json_string_value(json_object_get(e->subject, "factory_ca"));
    json_t *ca = NULL;
    int rc;

    if (want == NULL && e->factory_cert == NULL)
        return 0;
    if (want != NULL && e->factory_cert == NULL)
        return deny(e, 403, "factory_cert_required",
                    "this identity must enrol with its factory certificate as well as the "
                    "token: weft-edge enroll TOKEN --cert FACTORY.pem --key FACTORY.key");
    if (ctl_factory_check(e->call, e->factory_cert, e->csr, e->signature, &ca, e->ffp) < 0)
        return WEFT_EDENIED; /* answered */
    rc = 0;
    if (want != NULL && strcmp(json_string_value(json_object_get(ca, "id")) ?: "", want) != 0)
        rc = deny(e, 403, "wrong_ca",
                  "the factory certificate is not from the CA this identity was created with; "
                  "use the device's own factory certificate, or ask the administrator");
    json_decref(ca);
    return rc;
}

int ctl_identity_factory_ca(ctl_call *call, json_t *body, json_t *rec)
{
    const char *ref;
    json_t *ca = NULL;
    int rc = ctl_field_str(call, body, "ca", 0, &ref);

    if (rc <= 0)
        return rc;
    if (ctl_store_get(call->c->store, "cas", ref, &ca) < 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "no registered CA '%s'; register it first (weft ca create)", ref);
        return WEFT_ENOTFOUND;
    }
    json_object_set(rec, "factory_ca", json_object_get(ca, "id"));
    json_decref(ca);
    return 1;
}

static int consume(enrol *e)
{
    json_t *fields = json_pack("{s:b, s:s}", "enrolled", 1, "cert_fingerprint", e->fp);
    int rc;

    if (fields == NULL) {
        ctl_reply_error(e->call, 500, "internal", "out of memory; retry");
        return WEFT_ENOMEM;
    }
    if (e->imei)
        json_object_set_new(fields, "imei", json_string(e->imei));
    if (e->iccid)
        json_object_set_new(fields, "iccid", json_string(e->iccid));
    if (e->edge_listen)
        json_object_set_new(fields, "edge_listen", json_string(e->edge_listen));
    if (e->link_listen)
        json_object_set_new(fields, "link_listen", json_string(e->link_listen));
    if (e->ffp[0])
        json_object_set_new(fields, "factory_fingerprint", json_string(e->ffp));
    rc = ctl_store_token_consume(e->call->c->store, e->jti, e->kind, e->sub, time(NULL), fields);
    json_decref(fields);
    switch (rc) {
    case 0:
        return 0;
    case WEFT_ETOKENUSED:
    case WEFT_ECONFLICT:
        return deny(e, 401, "token_used",
                    "this enrolment token was already used; ask the administrator for a new "
                    "identity or token");
    case WEFT_ETOKENEXPIRED:
        return deny(e, 401, "token_expired", "the enrolment token has expired; ask for a new one");
    case WEFT_EDISABLED:
        return deny(e, 403, "disabled", "this identity is disabled; ask the administrator");
    case WEFT_ETOKEN:
    case WEFT_ENOTFOUND:
        return deny(e, 401, "invalid_token",
                    "the enrolment token is unknown to this controller; ask for a new token");
    default:
        ctl_reply_store_error(e->call, rc, e->kind, e->sub);
        return rc;
    }
}

static void reply_enrolled(enrol *e)
{
    ctl *c = e->call->c;
    const char *name = json_string_value(json_object_get(e->subject, "name"));

    pr_info("enrolled", "kind=%s id=%s name=%s fingerprint=%s peer=%s", e->kind, e->sub,
            pr_log_q(name), e->fp, e->call->req->peer_addr);
    /* An enrolled router joins the network map. */
    if (strcmp(e->kind, "router") == 0)
        ctl_map_touch(c, "routers", e->sub);
    ctl_reply_data(e->call, 200,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", e->sub, "name", name,
                             "kind", e->kind, "network", c->cfg.name, "controller", c->cfg.url,
                             "cert", e->cert, "ca", c->ca.cert_pem));
}

void ctl_api_enroll(ctl_call *call)
{
    static const char *const allowed[] = {"token",       "csr",         "imei",
                                          "iccid",       "edge_listen", "link_listen",
                                          "factory_cert", "signature",  NULL};
    enrol e = {.call = call};
    json_t *body = NULL;

    if (ctl_body(call, allowed, &body) < 0 || parse_body(&e, body) < 0)
        goto out;
    if (strlen(e.token) > PR_JWT_MAX) {
        deny(&e, 401, "invalid_token", "the token is too long; copy it again without extra text");
        goto out;
    }
    if (check_token(&e) < 0 || load_subject(&e) < 0 || check_factory(&e) < 0 ||
        sign_csr(&e) < 0 || consume(&e) < 0)
        goto out;
    reply_enrolled(&e);
out:
    free(e.cert);
    json_decref(e.subject);
    json_decref(e.claims);
    json_decref(body);
}
