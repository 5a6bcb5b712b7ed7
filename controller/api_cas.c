/* /v1/cas: enterprise (manufacturing) CAs registered with the controller,
 * bring-your-own CA in docs/bootstrap.md. A CA is usable for enrolment only
 * once verified by proof of possession of its key: the controller hands out a
 * random challenge, and the admin returns a certificate with CN = challenge
 * signed by the CA (weft ca verify signs one with the CA key; people who keep
 * the key offline make it themselves). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "controller/devcert.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

#define CA_PEM_MAX   (64 * 1024)
#define CRL_PEM_MAX  (512 * 1024)
#define TEMPLATE_MAX 128

/* A fresh challenge: what the CA must sign as a certificate's CN. */
static void new_challenge(char out[48])
{
    unsigned char r[16];
    char hex[33];

    randombytes_buf(r, sizeof(r));
    sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
    snprintf(out, 48, "weft-ca-verify-%s", hex);
}

/* Renders an identity name from a template: {cn}, {serial} and {fingerprint}
 * (the first 16 hex digits of the certificate's SHA-256) are replaced, other
 * text copied. The result must be a valid name. */
int ctl_ca_render_name(const char *tmpl, const char *cn, const char *serial, const char *fp,
                       char *out, size_t cap)
{
    static const char *const keys[] = {"{cn}", "{serial}", "{fingerprint}"};
    const char *vals[] = {cn, serial, fp};
    size_t used = 0;

    while (*tmpl) {
        const char *v = NULL;
        size_t klen = 1, vlen;
        for (int i = 0; i < 3 && v == NULL; i++)
            if (strncmp(tmpl, keys[i], strlen(keys[i])) == 0) {
                v = vals[i];
                klen = strlen(keys[i]);
            }
        vlen = v ? strlen(v) : 1;
        if (v == fp && fp != NULL && vlen > 16)
            vlen = 16;
        if (used + vlen >= cap)
            return WEFT_ETOOBIG;
        memcpy(out + used, v ? v : tmpl, vlen);
        used += vlen;
        tmpl += klen;
    }
    out[used] = '\0';
    return ctl_valid_name(out) ? 0 : WEFT_EINVAL;
}

static int field_template(ctl_call *call, json_t *body, const char **out)
{
    char name[CTL_NAME_MAX + 1];
    int rc = ctl_field_str(call, body, "name_template", 0, out);

    if (rc == 1 && (strlen(*out) > TEMPLATE_MAX ||
                    ctl_ca_render_name(*out, "cn", "0a1b", "0123456789abcdef", name,
                                       sizeof(name)) < 0)) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'name_template' must make a name from [A-Za-z0-9._-] with "
                        "{cn}, {serial} or {fingerprint}, e.g. \"dev-{serial}\"");
        return WEFT_EINVAL;
    }
    return rc;
}

/* A CRL must be a PEM CRL signed by the CA it is attached to. */
static int field_crl(ctl_call *call, json_t *body, const char *ca_pem, const char **out)
{
    int rc = ctl_field_str(call, body, "crl", 0, out);

    if (rc != 1 || (*out)[0] == '\0')
        return rc;
    if (strlen(*out) > CRL_PEM_MAX || ctl_devcert_crl_check(*out, ca_pem) < 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'crl' must be a PEM CRL signed by this CA (openssl ca -gencrl)");
        return WEFT_EINVAL;
    }
    return 1;
}

static int check_ca_cert(ctl_call *call, const char *pem, char fp[65])
{
    if (strlen(pem) > CA_PEM_MAX || pr_pki_fingerprint(pem, fp) < 0 || !ctl_devcert_is_ca(pem)) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'cert' must be a PEM CA certificate (basicConstraints CA:TRUE)");
        return WEFT_EINVAL;
    }
    if (strcmp(fp, call->c->ca_fp) == 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "this is the network's own CA; register the manufacturer's CA instead");
        return WEFT_EINVAL;
    }
    return 0;
}

static json_t *build_ca(ctl_call *call, json_t *body)
{
    const char *name, *cert, *tmpl = NULL, *crl = NULL;
    char fp[65], id[PR_ID_MAX + 1], chal[48];
    json_t *roles = NULL, *rec;
    int auto_enroll = 0;

    if (ctl_field_name(call, body, "name", 1, &name) < 0 ||
        ctl_field_str(call, body, "cert", 1, &cert) < 0 || check_ca_cert(call, cert, fp) < 0 ||
        ctl_field_bool(call, body, "auto_enroll", &auto_enroll) < 0 ||
        field_template(call, body, &tmpl) < 0 || field_crl(call, body, cert, &crl) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0)
        return NULL;
    pr_ident_new_id(id, sizeof(id));
    new_challenge(chal);
    rec = json_pack("{s:s, s:s, s:o, s:s, s:s, s:b, s:s, s:b, s:s, s:b}", "id", id, "name", name,
                    "roles", roles ? roles : json_array(), "cert", cert, "fingerprint", fp,
                    "verified", 0, "challenge", chal, "auto_enroll", auto_enroll,
                    "name_template", tmpl ? tmpl : "{cn}", "disabled", 0);
    if (rec != NULL && crl != NULL && crl[0] != '\0')
        json_object_set_new(rec, "crl", json_string(crl));
    return rec;
}

void ctl_api_cas_create(ctl_call *call)
{
    static const char *const allowed[] = {"name", "cert", "auto_enroll", "roles",
                                          "name_template", "crl", NULL};
    json_t *body = NULL, *rec;

    if (ctl_body(call, allowed, &body) < 0)
        return;
    if ((rec = build_ca(call, body)) != NULL)
        ctl_create_reply(call, "cas", "CA", rec);
    else if (!call->answered)
        ctl_reply_error(call, 500, "internal", "out of memory; retry");
    json_decref(body);
}

void ctl_api_cas_list(ctl_call *call)
{
    ctl_list(call, "cas");
}

void ctl_api_cas_get(ctl_call *call)
{
    ctl_get(call, "cas", "CA");
}

void ctl_api_cas_delete(ctl_call *call)
{
    ctl_delete(call, "cas", "CA");
}

void ctl_api_cas_patch(ctl_call *call)
{
    static const char *const allowed[] = {"auto_enroll", "roles", "name_template", "crl", NULL};
    json_t *body = NULL, *rec = NULL, *fields = json_object(), *roles = NULL;
    const char *tmpl = NULL, *crl = NULL;
    int ae = 0, rc;

    if (fields == NULL || ctl_body(call, allowed, &body) < 0 ||
        ctl_load(call, "cas", "CA", &rec) < 0)
        goto out;
    if ((rc = ctl_field_bool(call, body, "auto_enroll", &ae)) < 0 ||
        (rc == 1 && json_object_set_new(fields, "auto_enroll", json_boolean(ae)) < 0) ||
        field_template(call, body, &tmpl) < 0 ||
        field_crl(call, body, json_string_value(json_object_get(rec, "cert")), &crl) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0)
        goto out;
    if (tmpl)
        json_object_set_new(fields, "name_template", json_string(tmpl));
    if (crl)
        json_object_set_new(fields, "crl", crl[0] ? json_string(crl) : json_null());
    if (roles)
        json_object_set_new(fields, "roles", json_incref(roles));
    ctl_update_reply(call, "cas", "CA", rec, fields);
out:
    if (!call->answered)
        ctl_reply_error(call, 500, "internal", "out of memory; retry");
    json_decref(roles);
    json_decref(fields);
    json_decref(rec);
    json_decref(body);
}

static void set_disabled(ctl_call *call, int disabled)
{
    json_t *rec = NULL, *fields;

    if (ctl_load(call, "cas", "CA", &rec) < 0)
        return;
    fields = json_pack("{s:b}", "disabled", disabled);
    ctl_update_reply(call, "cas", "CA", rec, fields);
    pr_info(disabled ? "ca_disabled" : "ca_enabled", "ca=%s",
            pr_log_q(json_string_value(json_object_get(rec, "name"))));
    json_decref(fields);
    json_decref(rec);
}

void ctl_api_cas_disable(ctl_call *call)
{
    set_disabled(call, 1);
}

void ctl_api_cas_enable(ctl_call *call)
{
    set_disabled(call, 0);
}

/* The verification certificate proves possession of the CA key: its CN is
 * the challenge and the CA signed it. */
static int pop_ok(json_t *rec, const char *vcert, const char **why)
{
    const char *chal = json_string_value(json_object_get(rec, "challenge"));
    ctl_devcert_info info;

    *why = "it is not a PEM certificate";
    if (ctl_devcert_info_get(vcert, &info) < 0)
        return 0;
    *why = "its CN is not the CA's current challenge (weft ca show NAME)";
    if (chal == NULL || strcmp(info.cn, chal) != 0)
        return 0;
    *why = "it is not signed by this CA's key (or it has expired)";
    return pr_pki_verify(vcert, json_string_value(json_object_get(rec, "cert"))) == 0;
}

void ctl_api_cas_verify(ctl_call *call)
{
    static const char *const allowed[] = {"cert", NULL};
    json_t *body = NULL, *rec = NULL, *fields = NULL;
    const char *vcert, *why = "";
    const char *name;

    if (ctl_body(call, allowed, &body) < 0 || ctl_field_str(call, body, "cert", 1, &vcert) < 0 ||
        ctl_load(call, "cas", "CA", &rec) < 0)
        goto out;
    name = json_string_value(json_object_get(rec, "name"));
    if (strlen(vcert) > CA_PEM_MAX || !pop_ok(rec, vcert, &why)) {
        pr_warn("ca_verify_failed", "ca=%s peer=%s reason=%s", pr_log_q(name),
                call->req->peer_addr, pr_log_q(why));
        ctl_reply_error(call, 400, "pop_failed",
                        "the verification certificate does not prove possession of CA '%s': %s; "
                        "sign a certificate with CN = the challenge using the CA's own key",
                        name, why);
        goto out;
    }
    fields = json_pack("{s:b, s:n}", "verified", 1, "challenge");
    pr_info("ca_verified", "ca=%s fingerprint=%s", pr_log_q(name),
            json_string_value(json_object_get(rec, "fingerprint")));
    ctl_update_reply(call, "cas", "CA", rec, fields);
out:
    json_decref(fields);
    json_decref(rec);
    json_decref(body);
}
