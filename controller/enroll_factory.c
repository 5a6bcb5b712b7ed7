/* POST /v1/enroll/factory: enrolment with a factory certificate from a
 * registered, verified, enabled enterprise CA whose auto_enroll is on; no
 * identity needs to exist beforehand (docs/bootstrap.md). The device proves
 * possession of the factory key by signing the CSR (proto/proof.h); the new
 * identity is named by the CA's template and gets the CA's roles. One identity
 * per factory certificate: the settings table maps its fingerprint to the
 * identity, and a second enrolment is refused while that identity exists. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/controller.h"
#include "controller/devcert.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "proto/proof.h"
#include "weft/errors.h"

#define CHAIN_MAX (64 * 1024)
#define CSR_MAX   (16 * 1024)
#define HW_ID_MAX 32

static int deny(ctl_call *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int deny(ctl_call *call, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pr_warn("enroll_denied", "peer=%s code=%s path=factory", call->req->peer_addr, code);
    ctl_reply_error(call, status, code, "%s", msg);
    return WEFT_EDENIED;
}

/* Among the CAs that issued the chain, prefers one that is usable. */
static int find_ca(ctl_call *call, const char *chain, json_t **out, int *expired)
{
    json_t *all = NULL, *ca, *best = NULL;
    size_t i;
    int rc;

    *expired = 0;
    if ((rc = ctl_list_all(call->c->store, "cas", &all)) < 0) {
        ctl_reply_store_error(call, rc, "CA", "");
        return rc;
    }
    json_array_foreach(all, i, ca)
    {
        const char *pem = json_string_value(json_object_get(ca, "cert"));
        int v = pem ? pr_pki_verify(chain, pem) : WEFT_ECERT;
        if (v == WEFT_ECERTEXPIRED)
            *expired = 1;
        if (v != 0)
            continue;
        if (best == NULL || (json_is_true(json_object_get(ca, "verified")) &&
                             !json_is_true(json_object_get(ca, "disabled"))))
            best = ca;
    }
    *out = json_incref(best);
    json_decref(all);
    return 0;
}

static int no_ca(ctl_call *call, const char *chain, int expired)
{
    ctl_devcert_info info = {0};
    char when[32] = "?";

    if (!expired)
        return deny(call, 401, "unknown_ca",
                    "the device certificate is not issued by any CA registered with this "
                    "controller; ask the administrator to register the manufacturer's CA "
                    "(weft ca create) and verify it (weft ca verify)");
    if (ctl_devcert_info_get(chain, &info) == 0)
        ctl_rfc3339(info.not_after, when);
    return deny(call, 401, "cert_expired",
                "the device certificate expired on %s (or is not yet valid); check the device's "
                "clock, or have the manufacturer's CA issue a new one",
                when);
}

static int ca_usable(ctl_call *call, json_t *ca, const char *chain)
{
    const char *name = json_string_value(json_object_get(ca, "name"));
    const char *crl = json_string_value(json_object_get(ca, "crl"));

    if (json_is_true(json_object_get(ca, "disabled")))
        return deny(call, 403, "ca_disabled",
                    "CA '%s' is disabled on this controller; ask the administrator to enable it "
                    "(weft ca enable)",
                    name);
    if (!json_is_true(json_object_get(ca, "verified")))
        return deny(call, 403, "ca_unverified",
                    "CA '%s' is not verified yet; the administrator proves possession of its "
                    "key first (weft ca verify)",
                    name);
    if (crl != NULL && ctl_devcert_revoked(chain, crl) == 1)
        return deny(call, 403, "cert_revoked",
                    "the device certificate is revoked in CA '%s''s CRL; the device needs a new "
                    "certificate from its manufacturer",
                    name);
    return 0;
}

int ctl_factory_check(ctl_call *call, const char *chain, const char *csr, const char *sig,
                      json_t **ca, char fp[65])
{
    int expired = 0, rc;

    *ca = NULL;
    if (strlen(chain) > CHAIN_MAX || pr_pki_fingerprint(chain, fp) < 0)
        return deny(call, 400, "bad_request", "field 'cert' must be the device's PEM certificate "
                                              "(leaf first, then any intermediates)");
    if ((rc = find_ca(call, chain, ca, &expired)) < 0)
        return rc;
    if (*ca == NULL)
        return no_ca(call, chain, expired);
    if ((rc = ca_usable(call, *ca, chain)) < 0)
        goto fail;
    if ((rc = pr_proof_check(chain, call->c->ca_fp, csr, sig)) < 0) {
        rc = deny(call, 401, "pop_failed",
                  "the signature does not prove possession of the device certificate's key: sign "
                  "the CSR with the factory key (weft-edge enroll --cert C --key K)");
        goto fail;
    }
    return 0;
fail:
    json_decref(*ca);
    *ca = NULL;
    return rc;
}

/* ---- the auto-enrolment ---- */

typedef struct {
    ctl_call *call;
    const char *chain, *csr, *sig, *imei, *iccid;
    json_t *ca;
    char ffp[65]; /* factory certificate fingerprint */
    char id[PR_ID_MAX + 1];
    char name[CTL_NAME_MAX + 1];
    char fp[65]; /* issued certificate fingerprint */
    char *cert;
} factory;

static int hw_ok(const char *s)
{
    size_t n = strspn(s, "0123456789abcdefABCDEF");
    return s[n] == '\0' && n > 0 && n <= HW_ID_MAX;
}

static int parse(factory *f, json_t *body)
{
    ctl_call *call = f->call;

    if (ctl_field_str(call, body, "cert", 1, &f->chain) < 0 ||
        ctl_field_str(call, body, "csr", 1, &f->csr) < 0 ||
        ctl_field_str(call, body, "signature", 1, &f->sig) < 0 ||
        ctl_field_str(call, body, "imei", 0, &f->imei) < 0 ||
        ctl_field_str(call, body, "iccid", 0, &f->iccid) < 0)
        return WEFT_EINVAL;
    if ((f->imei && !hw_ok(f->imei)) || (f->iccid && !hw_ok(f->iccid)) ||
        strlen(f->csr) > CSR_MAX) {
        ctl_reply_error(call, 400, "bad_request",
                        "imei and iccid must be 1..32 digits; the CSR at most 16 KiB");
        return WEFT_EINVAL;
    }
    return 0;
}

static void setting_key(const factory *f, char *out, size_t cap)
{
    snprintf(out, cap, "factory:%s", f->ffp);
}

/* One identity per factory certificate, while that identity exists. */
static int check_once(factory *f)
{
    char key[80], *id = NULL;
    json_t *rec = NULL;
    int rc;

    setting_key(f, key, sizeof(key));
    if (ctl_store_setting_get(f->call->c->store, key, &id) < 0)
        return 0;
    rc = ctl_store_get(f->call->c->store, "identities", id, &rec);
    if (rc == 0 && strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) == 0)
        rc = deny(f->call, 409, "already_enrolled",
                  "this device certificate already enrolled as identity %s; if the device lost "
                  "its identity, the administrator deletes that identity first",
                  id);
    else
        rc = 0;
    json_decref(rec);
    free(id);
    return rc;
}

static int make_name(factory *f)
{
    const char *tmpl = json_string_value(json_object_get(f->ca, "name_template"));
    ctl_devcert_info info = {0};

    if (ctl_devcert_info_get(f->chain, &info) < 0 ||
        ctl_ca_render_name(tmpl ? tmpl : "{cn}", info.cn, info.serial, f->ffp, f->name,
                           sizeof(f->name)) < 0)
        return deny(f->call, 400, "bad_name",
                    "CA '%s''s name template does not make a valid identity name from this "
                    "certificate; the administrator changes it (weft ca update --identity-name-"
                    "template)",
                    json_string_value(json_object_get(f->ca, "name")));
    return 0;
}

static int sign(factory *f)
{
    ctl *c = f->call->c;
    char uri[PR_URI_MAX], serial[33];
    pr_cert_req req = {0};
    int rc;

    pr_ident_new_id(f->id, sizeof(f->id));
    if ((rc = pr_ident_format(PR_IDENT_IDENTITY, c->cfg.name, f->id, uri, sizeof(uri))) < 0)
        return rc;
    req = (pr_cert_req){.cn = f->name,
                        .uri = uri,
                        .usage = PR_CERT_CLIENT,
                        .not_after = time(NULL) + c->cfg.cert_validity};
    if ((rc = ctl_ca_sign(c, f->csr, &req, &f->cert, serial)) < 0)
        return deny(f->call, 400, "bad_csr",
                    "the certificate signing request is not a valid PEM CSR for a P-256 key; "
                    "generate a new key and CSR");
    if ((rc = pr_pki_fingerprint(f->cert, f->fp)) < 0)
        ctl_reply_error(f->call, 500, "internal", "cannot fingerprint the certificate; retry");
    return rc;
}

static json_t *record(factory *f)
{
    json_t *roles = json_object_get(f->ca, "roles");
    json_t *rec = json_pack(
        "{s:s, s:s, s:O, s:s, s:b, s:b, s:b, s:s, s:s, s:s}", "id", f->id, "name", f->name,
        "roles", roles ? roles : json_array(), "binding", "none", "admin", 0, "disabled", 0,
        "enrolled", 1, "cert_fingerprint", f->fp, "ca",
        json_string_value(json_object_get(f->ca, "name")), "factory_fingerprint", f->ffp);

    if (rec && f->imei)
        json_object_set_new(rec, "imei", json_string(f->imei));
    if (rec && f->iccid)
        json_object_set_new(rec, "iccid", json_string(f->iccid));
    return rec;
}

static int store(factory *f)
{
    ctl *c = f->call->c;
    json_t *rec = record(f);
    char key[80];
    int rc;

    if (rec == NULL) {
        ctl_reply_error(f->call, 500, "internal", "out of memory; retry");
        return WEFT_ENOMEM;
    }
    rc = ctl_store_create(c->store, "identities", rec);
    json_decref(rec);
    if (rc == WEFT_EEXISTS)
        return deny(f->call, 409, "conflict",
                    "an identity named '%s' already exists; the administrator renames or "
                    "deletes it, or changes the CA's name template",
                    f->name);
    if (rc < 0) {
        ctl_reply_store_error(f->call, rc, "identity", f->name);
        return rc;
    }
    setting_key(f, key, sizeof(key));
    if ((rc = ctl_store_setting_set(c->store, key, f->id)) < 0) {
        ctl_store_delete(c->store, "identities", f->id);
        ctl_reply_store_error(f->call, rc, "identity", f->name);
    }
    return rc;
}

static void reply(factory *f)
{
    ctl *c = f->call->c;

    pr_info("enrolled", "kind=identity id=%s name=%s fingerprint=%s ca=%s factory=%s peer=%s",
            f->id, pr_log_q(f->name), f->fp,
            pr_log_q(json_string_value(json_object_get(f->ca, "name"))), f->ffp,
            f->call->req->peer_addr);
    ctl_map_touch(c, "identities", f->id);
    ctl_reply_data(f->call, 200,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", f->id, "name", f->name,
                             "kind", "identity", "network", c->cfg.name, "controller", c->cfg.url,
                             "cert", f->cert, "ca", c->ca.cert_pem));
}

void ctl_api_enroll_factory(ctl_call *call)
{
    static const char *const allowed[] = {"cert", "csr", "signature", "imei", "iccid", NULL};
    factory f = {.call = call};
    json_t *body = NULL;

    if (ctl_body(call, allowed, &body) < 0 || parse(&f, body) < 0 ||
        ctl_factory_check(call, f.chain, f.csr, f.sig, &f.ca, f.ffp) < 0)
        goto out;
    if (!json_is_true(json_object_get(f.ca, "auto_enroll"))) {
        deny(call, 403, "not_auto_enroll",
             "CA '%s' does not auto-enrol devices: the administrator creates the identity and "
             "gives the device a token to use with its certificate",
             json_string_value(json_object_get(f.ca, "name")));
        goto out;
    }
    if (check_once(&f) < 0 || make_name(&f) < 0 || sign(&f) < 0 || store(&f) < 0)
        goto out;
    reply(&f);
out:
    if (!call->answered)
        ctl_reply_error(call, 500, "internal", "enrolment failed; retry");
    free(f.cert);
    json_decref(f.ca);
    json_decref(body);
}
