/* Factory-certificate enrolment, device side: see proto/enroll_factory.h. */
#include "proto/enroll_factory.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/httpc.h"
#include "proto/pki.h"
#include "proto/proof.h"
#include "proto/errf.h"
#include "weft/errors.h"

/* Lower-case hex without separators; 64 digits or an error. */
static int norm_fp(const char *in, char out[65])
{
    size_t n = 0;

    for (; *in; in++) {
        if (*in == ':')
            continue;
        if (!isxdigit((unsigned char)*in) || n >= 64)
            return WEFT_EINVAL;
        out[n++] = (char)tolower((unsigned char)*in);
    }
    out[n] = '\0';
    return n == 64 ? 0 : WEFT_EINVAL;
}

/* Fetches the CA without verification, then keeps it only if it is pinned. */
static int fetch_ca(const pr_factory_req *req, const char *fp, char **ca, char *err, size_t cap)
{
    pr_httpc_cfg cfg = {.no_verify = 1, .timeout_ms = req->timeout_ms};
    pr_http_resp r = {0};
    char got[65];
    int rc = pr_https_request(req->controller, &cfg, "GET", "/v1/enroll/ca", NULL, 0, NULL, &r, err,
                              cap);

    if (rc < 0)
        return rc;
    if (r.status != 200 || pr_pki_fingerprint(r.body, got) < 0)
        rc = pr_errf(err, cap, WEFT_EPROTO,
                     "%s did not answer with a CA certificate (HTTP %d); "
                     "check --controller",
                     req->controller, r.status);
    else if (strcmp(got, fp) != 0)
        rc = pr_errf(err, cap, WEFT_EFINGERPRINT,
                     "the controller's CA (sha256 %s) is not the one given (%s); check "
                     "--ca-fingerprint and --controller: someone may be in the middle",
                     got, fp);
    else if ((*ca = strdup(r.body)) == NULL)
        rc = WEFT_ENOMEM;
    pr_http_resp_free(&r);
    return rc;
}

static int build_body(const pr_factory_req *req, const char *csr, const char *sig, char **out)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "cert", req->cert_pem, "csr", csr, "signature", sig);

    if (o && req->imei)
        json_object_set_new(o, "imei", json_string(req->imei));
    if (o && req->iccid)
        json_object_set_new(o, "iccid", json_string(req->iccid));
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *out ? 0 : WEFT_ENOMEM;
}

static int refused(const pr_http_resp *r, char *err, size_t cap)
{
    json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *e = json_object_get(b, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int rc = r->status == 409 ? WEFT_ECONFLICT : WEFT_EDENIED;

    pr_errf(err, cap, rc, "enrolment refused (%s): %s", code ? code : "HTTP error",
            msg ? msg : "no reason given");
    json_decref(b);
    return rc;
}

static int copy(char *dst, size_t cap, const json_t *d, const char *key)
{
    const char *v = json_string_value(json_object_get(d, key));

    if (v == NULL || strlen(v) >= cap)
        return WEFT_EPROTO;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int fill(const pr_http_resp *r, const char *ca, char **key, pr_idfile *out)
{
    json_t *b = json_loadb(r->body, r->body_len, 0, NULL), *d = json_object_get(b, "data");
    const char *cert = json_string_value(json_object_get(d, "cert"));
    int rc = WEFT_EPROTO;

    memset(out, 0, sizeof(*out));
    if (copy(out->kind, sizeof(out->kind), d, "kind") < 0 ||
        copy(out->id, sizeof(out->id), d, "id") < 0 ||
        copy(out->name, sizeof(out->name), d, "name") < 0 ||
        copy(out->network, sizeof(out->network), d, "network") < 0 ||
        copy(out->controller, sizeof(out->controller), d, "controller") < 0 || cert == NULL ||
        pr_pki_key_matches(cert, *key) != 1 || pr_pki_verify(cert, ca) != 0)
        goto out;
    rc = WEFT_ENOMEM;
    if ((out->cert_pem = strdup(cert)) == NULL || (out->ca_pem = strdup(ca)) == NULL)
        goto out;
    out->key_pem = *key;
    *key = NULL;
    rc = 0;
out:
    if (rc < 0)
        pr_idfile_free(out);
    json_decref(b);
    return rc;
}

static int post(const pr_factory_req *req, const char *ca, const char *fp, pr_idfile *out,
                char *err, size_t cap)
{
    pr_httpc_cfg cfg = {.ca_pem = ca, .timeout_ms = req->timeout_ms};
    pr_http_req hr;
    pr_http_resp r = {0};
    char *key = NULL, *csr = NULL, *sig = NULL, *body = NULL;
    int rc;

    if ((rc = pr_pki_keygen(&key)) < 0 || (rc = pr_pki_csr(key, "device", &csr)) < 0)
        goto out;
    if ((rc = pr_proof_sign(req->key_pem, fp, csr, &sig)) < 0) {
        pr_errf(err, cap, rc, "cannot sign with the factory key: check --key is the key of --cert");
        goto out;
    }
    if ((rc = build_body(req, csr, sig, &body)) < 0)
        goto out;
    hr = (pr_http_req){"POST", "/v1/enroll/factory", body, strlen(body), "application/json"};
    if ((rc = pr_https_request_busy(req->controller, &cfg, &req->busy, &hr, &r, err, cap)) < 0)
        goto out;
    if (r.status == 429)
        rc = pr_errf(err, cap, WEFT_EBUSY,
                     "%s is still busy admitting enrolments (HTTP 429); nothing was spent: "
                     "run the enrolment again later",
                     req->controller);
    else if (r.status != 200)
        rc = refused(&r, err, cap);
    else if ((rc = fill(&r, ca, &key, out)) < 0)
        pr_errf(err, cap, rc, "the controller's answer is not a certificate for our key; retry");
out:
    pr_http_resp_free(&r);
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    free(csr);
    free(sig);
    free(body);
    return rc;
}

int pr_enroll_factory(const pr_factory_req *req, pr_idfile *out, char *err, size_t errcap)
{
    char fp[65], *ca = NULL;
    int rc;

    if (req == NULL || out == NULL || req->controller == NULL || req->cert_pem == NULL ||
        req->key_pem == NULL || req->ca_fp == NULL)
        return pr_errf(err, errcap, WEFT_EINVAL,
                       "controller, CA fingerprint, certificate and key "
                       "are all needed");
    if (norm_fp(req->ca_fp, fp) < 0)
        return pr_errf(err, errcap, WEFT_EINVAL,
                       "the CA fingerprint must be 64 hex digits (SHA-256), ':' allowed");
    if (pr_pki_key_matches(req->cert_pem, req->key_pem) != 1)
        return pr_errf(err, errcap, WEFT_EINVAL, "the factory key is not the certificate's key");
    if ((rc = fetch_ca(req, fp, &ca, err, errcap)) == 0)
        rc = post(req, ca, fp, out, err, errcap);
    free(ca);
    return rc;
}
