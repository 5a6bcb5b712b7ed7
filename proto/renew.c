/* Renewal client: see proto/renew.h. */
#include "proto/renew.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "proto/httpc.h"
#include "proto/pki.h"
#include "proto/errf.h"
#include "weft/errors.h"

static int validity(const char *pem, int64_t *nb, int64_t *na)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    struct tm t1 = {0}, t2 = {0};
    int rc = WEFT_ECERT;

    if (x != NULL && ASN1_TIME_to_tm(X509_get0_notBefore(x), &t1) == 1 &&
        ASN1_TIME_to_tm(X509_get0_notAfter(x), &t2) == 1) {
        *nb = (int64_t)timegm(&t1);
        *na = (int64_t)timegm(&t2);
        rc = 0;
    }
    ERR_clear_error();
    X509_free(x);
    BIO_free(b);
    return rc;
}

int pr_renew_due(const char *cert_pem, int64_t now)
{
    int64_t nb = 0, na = 0;
    int rc;

    if (cert_pem == NULL)
        return WEFT_EINVAL;
    if ((rc = validity(cert_pem, &nb, &na)) < 0)
        return rc;
    return (na - now) * 3 < (na - nb);
}

static int body_for(const char *csr, char **out)
{
    json_t *o = json_pack("{s:s}", "csr", csr);

    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *out ? 0 : WEFT_ENOMEM;
}

static int refused(const pr_http_resp *r, char *err, size_t cap)
{
    json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(b, "error"), "message"));
    int rc = r->status == 403 ? WEFT_EDENIED : WEFT_EHTTP;

    pr_errf(err, cap, rc, "the controller refused the renewal (HTTP %d): %s", r->status,
            msg ? msg : "no reason given");
    json_decref(b);
    return rc;
}

/* Swaps the new certificate and key (and CA, if sent) into id. */
static int adopt(pr_idfile *id, const pr_http_resp *r, char **key, char *err, size_t cap)
{
    json_t *b = json_loadb(r->body, r->body_len, 0, NULL), *d = json_object_get(b, "data");
    const char *cert = json_string_value(json_object_get(d, "cert"));
    const char *ca = json_string_value(json_object_get(d, "ca"));
    char *c2 = cert ? strdup(cert) : NULL, *ca2 = ca ? strdup(ca) : NULL;
    int rc = 0;

    if (c2 == NULL || pr_pki_key_matches(c2, *key) != 1 || (ca && ca2 == NULL)) {
        rc = pr_errf(err, cap, WEFT_EPROTO,
                     "the controller's answer holds no certificate for the "
                     "new key; retry, and report it if it persists");
        free(c2);
        free(ca2);
    } else {
        free(id->cert_pem);
        id->cert_pem = c2;
        sodium_memzero(id->key_pem, strlen(id->key_pem));
        free(id->key_pem);
        id->key_pem = *key;
        *key = NULL;
        if (ca2) {
            free(id->ca_pem);
            id->ca_pem = ca2;
        }
    }
    json_decref(b);
    return rc;
}

int pr_renew(pr_idfile *id, int timeout_ms, char *err, size_t errcap)
{
    pr_httpc_cfg cfg = {.ca_pem = id->ca_pem,
                        .cert_pem = id->cert_pem,
                        .key_pem = id->key_pem,
                        .timeout_ms = timeout_ms};
    pr_http_resp r = {0};
    char *key = NULL, *csr = NULL, *body = NULL;
    int rc;

    if ((rc = pr_pki_keygen(&key)) < 0 || (rc = pr_pki_csr(key, id->name, &csr)) < 0 ||
        (rc = body_for(csr, &body)) < 0) {
        pr_errf(err, errcap, rc, "cannot make a new key and CSR: %s", weft_strerror(rc));
        goto out;
    }
    rc = pr_https_request(id->controller, &cfg, "POST", "/v1/renew", body, strlen(body),
                          "application/json", &r, err, errcap);
    if (rc < 0)
        goto out;
    rc = r.status == 200 ? adopt(id, &r, &key, err, errcap) : refused(&r, err, errcap);
out:
    pr_http_resp_free(&r);
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    free(csr);
    free(body);
    return rc;
}

int pr_renew_if_due(const char *idfile_path, int force, int timeout_ms, char *err, size_t errcap)
{
    pr_idfile id = {0};
    int rc = pr_idfile_load(idfile_path, &id, err, errcap);

    if (rc < 0)
        return rc;
    rc = force ? 1 : pr_renew_due(id.cert_pem, (int64_t)time(NULL));
    if (rc < 0)
        pr_errf(err, errcap, rc, "%s: the certificate cannot be read", idfile_path);
    if (rc == 1 && (rc = pr_renew(&id, timeout_ms, err, errcap)) == 0) {
        if ((rc = pr_idfile_save(idfile_path, &id)) < 0)
            pr_errf(err, errcap, rc,
                    "renewed, but cannot rewrite %s (%s); check its directory is "
                    "writable",
                    idfile_path, weft_strerror(rc));
        else
            rc = 1;
    }
    pr_idfile_free(&id);
    return rc;
}
