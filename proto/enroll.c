/* Enrolment, device side (tier 1). The token is read without checking its
 * signature (we have no key to check it with yet): what makes this safe is
 * that nothing in it is trusted except the CA fingerprint, and that is only
 * used to refuse. The controller checks the signature, expiry and single use.
 *
 * Order matters: the CA is fetched without verification, then pinned by the
 * token's fingerprint, and only then is the token sent, over a session that
 * verifies the controller against the pinned CA. A man in the middle sees
 * neither the token nor the private key (made here and never sent). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "proto/enroll.h"
#include "proto/proof.h"
#include "proto/httpc.h"
#include "proto/jwt.h"
#include "proto/pki.h"
#include "proto/errf.h"
#include "weft/errors.h"

#define ENROLL_AUD "weft-enroll"
#define PEM_BEGIN  "-----BEGIN CERTIFICATE-----"
#define PEM_END    "-----END CERTIFICATE-----"

/* What the token says, borrowed from its claims object. */
typedef struct {
    json_t *claims;
    const char *iss, *sub, *kind, *net, *ca_fp;
    char base_url[256]; /* iss without a trailing '/' */
} tok_info;

static int malformed(char *err, size_t cap, const char *what)
{
    return pr_errf(err, cap, WEFT_ETOKEN,
                   "the enrolment token is malformed (%s); copy it again in full or ask the "
                   "administrator for a new one",
                   what);
}

/* A copy of the token without surrounding white space. */
static int token_trim(const char *in, char **out, char *err, size_t cap)
{
    size_t len;
    if (in == NULL)
        return malformed(err, cap, "no token given");
    while (isspace((unsigned char)*in))
        in++;
    len = strlen(in);
    while (len > 0 && isspace((unsigned char)in[len - 1]))
        len--;
    if (len == 0)
        return malformed(err, cap, "it is empty");
    if (len > PR_JWT_MAX)
        return malformed(err, cap, "it is too long");
    if ((*out = strndup(in, len)) == NULL)
        return pr_errf(err, cap, WEFT_ENOMEM, "out of memory");
    return 0;
}

static const char *claim_str(const json_t *claims, const char *key)
{
    const char *s = json_string_value(json_object_get(claims, key));
    return (s != NULL && s[0] != '\0') ? s : NULL;
}

static int aud_ok(const json_t *aud)
{
    size_t i;
    json_t *v;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), ENROLL_AUD) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), ENROLL_AUD) == 0)
            return 1;
    }
    return 0;
}

static int fp_valid(const char *fp)
{
    size_t n = 0;
    for (; fp[n] != '\0'; n++)
        if (!isxdigit((unsigned char)fp[n]))
            return 0;
    return n == 64;
}

static int check_expiry(const tok_info *t, char *err, size_t cap)
{
    json_int_t exp = json_integer_value(json_object_get(t->claims, "exp"));
    int rc = pr_jwt_check_exp(t->claims, (long long)time(NULL));
    if (rc == WEFT_ETOKENEXPIRED) {
        char when[32] = "?";
        time_t tt = (time_t)exp;
        struct tm tm;
        if (gmtime_r(&tt, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return pr_errf(err, cap, rc,
                       "the enrolment token expired at %s; ask the administrator for "
                       "a new one",
                       when);
    }
    return rc < 0 ? malformed(err, cap, "no valid expiry") : 0;
}

static int read_token(const char *token, tok_info *t, char *err, size_t cap)
{
    char *tok = NULL;
    int rc = token_trim(token, &tok, err, cap);
    if (rc < 0)
        return rc;
    rc = pr_jwt_decode_unverified(tok, &t->claims);
    free(tok);
    if (rc < 0)
        return malformed(err, cap, "not a signed JWT");
    t->iss = claim_str(t->claims, "iss");
    t->sub = claim_str(t->claims, "sub");
    t->kind = claim_str(t->claims, "kind");
    t->net = claim_str(t->claims, "net");
    t->ca_fp = claim_str(t->claims, "ca");
    if (!aud_ok(json_object_get(t->claims, "aud")))
        return malformed(err, cap, "it is not an enrolment token");
    if (t->iss == NULL || strncmp(t->iss, "https://", 8) != 0)
        return malformed(err, cap, "no https controller URL");
    if (t->sub == NULL || strlen(t->sub) > 64)
        return malformed(err, cap, "no valid subject");
    if (t->ca_fp == NULL || !fp_valid(t->ca_fp))
        return malformed(err, cap, "no valid CA fingerprint");
    size_t len = strlen(t->iss);
    while (len > 8 && t->iss[len - 1] == '/')
        len--;
    if (len >= sizeof(t->base_url))
        return malformed(err, cap, "controller URL too long");
    memcpy(t->base_url, t->iss, len);
    t->base_url[len] = '\0';
    return check_expiry(t, err, cap);
}

/* The first certificate of a PEM text, alone: only what was pinned is trusted,
 * never extra certificates a server might append. */
static int first_cert(const char *pem, char **out)
{
    const char *b = strstr(pem, PEM_BEGIN);
    const char *e = b ? strstr(b, PEM_END) : NULL;
    if (e == NULL)
        return WEFT_ECERT;
    size_t len = (size_t)(e - b) + strlen(PEM_END);
    if ((*out = malloc(len + 2)) == NULL)
        return WEFT_ENOMEM;
    memcpy(*out, b, len);
    memcpy(*out + len, "\n", 2);
    return 0;
}

/* The CA as the server sent it: PEM, or JSON {"ca":PEM} / {"data":{"ca":PEM}}. */
static int ca_from_body(const pr_http_resp *r, char **out)
{
    if (r->body_len > 0 && r->body[0] != '{')
        return first_cert(r->body, out);
    json_t *root = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *data = json_object_get(root, "data");
    const char *pem = json_string_value(json_object_get(json_is_object(data) ? data : root, "ca"));
    int rc = pem ? first_cert(pem, out) : WEFT_ECERT;
    json_decref(root);
    return rc;
}

static int fetch_ca(const tok_info *t, int timeout_ms, char **ca_pem, char *err, size_t cap)
{
    pr_httpc_cfg cfg = {.no_verify = 1, .timeout_ms = timeout_ms};
    pr_http_resp r;
    char herr[384] = "";
    memset(&r, 0, sizeof(r));
    int rc = pr_https_request(t->base_url, &cfg, "GET", "/v1/enroll/ca", NULL, 0, NULL, &r, herr,
                              sizeof(herr));
    if (rc < 0) {
        pr_errf(err, cap, rc, "cannot fetch the network CA from %s: %s", t->base_url,
                herr[0] ? herr : weft_strerror(rc));
        goto out;
    }
    if (r.status != 200) {
        rc = pr_errf(err, cap, WEFT_EHTTP,
                     "%s answered HTTP %d for the network CA; check that the "
                     "token's controller URL points to a weft controller",
                     t->base_url, r.status);
        goto out;
    }
    rc = ca_from_body(&r, ca_pem);
    if (rc < 0)
        pr_errf(err, cap, rc,
                "%s sent no CA certificate; check that the token's controller URL "
                "points to a weft controller",
                t->base_url);
out:
    pr_http_resp_free(&r);
    return rc;
}

/* Refuses a CA whose SHA-256 differs from the token's, in constant time. */
static int pin_ca(const tok_info *t, const char *ca_pem, char *err, size_t cap)
{
    char got[65], want[65];
    if (pr_pki_fingerprint(ca_pem, got) < 0)
        return pr_errf(err, cap, WEFT_ECERT,
                       "%s sent an unreadable CA certificate; refusing to "
                       "enrol",
                       t->base_url);
    for (size_t i = 0; i < 64; i++)
        want[i] = (char)tolower((unsigned char)t->ca_fp[i]);
    want[64] = '\0';
    if (sodium_memcmp(got, want, 64) != 0)
        return pr_errf(err, cap, WEFT_EFINGERPRINT,
                       "the CA fingerprint of %s (%.16s...) does not match the pinned fingerprint "
                       "in the enrolment token (%.16s...): possible interception, or the wrong "
                       "controller at that address; refusing to enrol",
                       t->base_url, got, want);
    return 0;
}

/* Proof of possession of the factory key: a signature over the CSR and the
 * pinned CA fingerprint, sent with the factory certificate. */
static int add_factory(const pr_enroll_req *req, const char *ca_fp, const char *csr, json_t *body)
{
    char *sig = NULL;
    int rc;

    if (req->factory_cert_pem == NULL || req->factory_key_pem == NULL)
        return 0;
    if ((rc = pr_proof_sign(req->factory_key_pem, ca_fp, csr, &sig)) < 0)
        return rc;
    rc = json_object_set_new(body, "factory_cert", json_string(req->factory_cert_pem)) < 0 ||
                 json_object_set_new(body, "signature", json_string(sig)) < 0
             ? WEFT_ENOMEM
             : 0;
    free(sig);
    return rc;
}

static int build_request(const pr_enroll_req *req, const char *ca_fp, const char *token,
                         const char *csr, char **out)
{
    json_t *body = json_pack("{s:s, s:s}", "token", token, "csr", csr);
    int rc = WEFT_ENOMEM;
    if (body == NULL)
        return WEFT_ENOMEM;
    if ((rc = add_factory(req, ca_fp, csr, body)) < 0)
        goto out;
    rc = WEFT_ENOMEM;
    if (req->imei != NULL && req->imei[0] != '\0' &&
        json_object_set_new(body, "imei", json_string(req->imei)) < 0)
        goto out;
    if (req->iccid != NULL && req->iccid[0] != '\0' &&
        json_object_set_new(body, "iccid", json_string(req->iccid)) < 0)
        goto out;
    /* Extra fields never replace the token or the CSR. */
    if (json_is_object(req->extra) && json_object_update_missing(body, req->extra) < 0)
        goto out;
    if ((*out = json_dumps(body, JSON_COMPACT)) != NULL)
        rc = 0;
out:
    json_decref(body);
    return rc;
}

typedef struct {
    const char *code;
    int err;
    const char *hint;
} code_map;

static const code_map codes[] = {
    {"invalid_token", WEFT_ETOKEN, "the token is invalid: ask the administrator for a new one"},
    {"token_expired", WEFT_ETOKENEXPIRED, "the token expired: ask the administrator for a new one"},
    {"token_used", WEFT_ETOKENUSED, "each token works once: ask the administrator for a new one"},
    {"ca_mismatch", WEFT_EFINGERPRINT, "the token belongs to another network: check the token"},
    {"disabled", WEFT_EDISABLED, "ask the administrator to enable the identity"},
    {"binding_mismatch", WEFT_EBINDING, "check --imei and --iccid with the administrator"},
    {"binding", WEFT_EBINDING, "check --imei and --iccid with the administrator"},
    {"not_found", WEFT_ENOTFOUND, "the identity was deleted: ask the administrator"},
    {"already_enrolled", WEFT_ECONFLICT, "the identity is already enrolled"},
    {"conflict", WEFT_ECONFLICT, "the identity is already enrolled"},
    {"bad_request", WEFT_EINVAL, "check the token and the hardware ids"},
    {"bad_csr", WEFT_EINVAL, "report this to the administrator"},
    {"invalid", WEFT_EINVAL, "check the token and the hardware ids"},
};

static int map_error(const pr_http_resp *r, char *err, size_t cap)
{
    json_t *root = json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const code_map *m = NULL;
    for (size_t i = 0; code != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(codes[i].code, code) == 0)
            m = &codes[i];
    /* The controller's messages already say what to do; ours stand in when it sent none. */
    int rc = pr_errf(err, cap, m ? m->err : WEFT_EHTTP,
                     "the controller refused the enrolment: %s (%s, "
                     "HTTP %d)",
                     msg ? msg : (m ? m->hint : "no reason given; see the controller's log"),
                     code ? code : "error", r->status);
    json_decref(root);
    return rc;
}

/* A controller still over its admission rate after every try: nothing was
 * spent (admission answers before the token is looked at). */
static int still_busy(const tok_info *t, const pr_enroll_req *req, char *err, size_t cap)
{
    return pr_errf(err, cap, WEFT_EBUSY,
                   "%s is still busy admitting enrolments after %u attempts (HTTP 429); the "
                   "token was not used: run the enrolment again later",
                   t->base_url, req->busy.tries ? req->busy.tries : PR_HTTPC_BUSY_TRIES);
}

static int post_csr(const tok_info *t, const pr_enroll_req *req, const char *ca_pem,
                    const char *body, json_t **out, char *err, size_t cap)
{
    pr_httpc_cfg cfg = {.ca_pem = ca_pem, .timeout_ms = req->timeout_ms};
    pr_http_req hr = {"POST", "/v1/enroll", body, strlen(body), "application/json"};
    pr_http_resp r;
    char herr[384] = "";
    memset(&r, 0, sizeof(r));
    int rc = pr_https_request_busy(t->base_url, &cfg, &req->busy, &hr, &r, herr, sizeof(herr));
    if (rc < 0) {
        pr_errf(err, cap, rc, "cannot enrol with %s: %s", t->base_url,
                herr[0] ? herr : weft_strerror(rc));
        goto out;
    }
    if (r.status == 429) {
        rc = still_busy(t, req, err, cap);
        goto out;
    }
    if (r.status != 200 && r.status != 201) {
        rc = map_error(&r, err, cap);
        goto out;
    }
    *out = json_loadb(r.body, r.body_len, 0, NULL);
    if (*out == NULL)
        rc = pr_errf(err, cap, WEFT_EJSON,
                     "%s answered the enrolment with malformed JSON; see the "
                     "controller's log",
                     t->base_url);
out:
    pr_http_resp_free(&r);
    return rc;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *name, char *err,
                      size_t errcap)
{
    size_t len = src ? strlen(src) : 0;
    if (len == 0 || len >= cap)
        return pr_errf(err, errcap, WEFT_EPROTO,
                       "the controller's enrolment answer has %s %s; see "
                       "the controller's log",
                       len ? "an overlong" : "no", name);
    memcpy(dst, src, len + 1);
    return 0;
}

/* The answer's fields, falling back to the token's claims for those the
 * controller may leave out. */
static int fill_names(const tok_info *t, const json_t *d, pr_idfile *out, char *err, size_t cap)
{
    const char *kind = claim_str(d, "kind") ? claim_str(d, "kind") : t->kind;
    const char *id = claim_str(d, "id") ? claim_str(d, "id") : t->sub;
    const char *name = claim_str(d, "name") ? claim_str(d, "name") : claim_str(t->claims, "name");
    const char *net = claim_str(d, "network") ? claim_str(d, "network") : t->net;
    int rc;
    if ((rc = copy_field(out->kind, sizeof(out->kind), kind ? kind : "identity", "kind", err,
                         cap)) < 0 ||
        (rc = copy_field(out->id, sizeof(out->id), id, "id", err, cap)) < 0 ||
        (rc = copy_field(out->name, sizeof(out->name), name ? name : id, "name", err, cap)) < 0 ||
        (rc = copy_field(out->network, sizeof(out->network), net, "network", err, cap)) < 0)
        return rc;
    return copy_field(out->controller, sizeof(out->controller), t->base_url, "controller", err,
                      cap);
}

/* Takes the certificate from the answer and checks it before keeping it:
 * issued by the pinned CA, for our key. */
static int fill_cert(const tok_info *t, const json_t *d, const char *ca_pem, const char *key_pem,
                     pr_idfile *out, char *err, size_t cap)
{
    const char *cert = claim_str(d, "cert") ? claim_str(d, "cert") : claim_str(d, "certificate");
    if (cert == NULL)
        return pr_errf(err, cap, WEFT_EPROTO,
                       "the controller's enrolment answer has no "
                       "certificate; see the controller's log");
    int rc = pr_pki_verify(cert, ca_pem);
    if (rc < 0)
        return pr_errf(err, cap, rc,
                       "the certificate from %s does not verify against the pinned "
                       "CA (%s); refusing it",
                       t->base_url, weft_strerror(rc));
    if (pr_pki_key_matches(cert, key_pem) != 1)
        return pr_errf(err, cap, WEFT_ECERT,
                       "the certificate from %s is not for the key made "
                       "here; refusing it",
                       t->base_url);
    out->cert_pem = strdup(cert);
    out->key_pem = strdup(key_pem);
    out->ca_pem = strdup(ca_pem);
    if (out->cert_pem == NULL || out->key_pem == NULL || out->ca_pem == NULL)
        return pr_errf(err, cap, WEFT_ENOMEM, "out of memory");
    return 0;
}

static int fill_idfile(const tok_info *t, const json_t *resp, const char *ca_pem,
                       const char *key_pem, pr_idfile *out, char *err, size_t cap)
{
    const json_t *data = json_object_get(resp, "data");
    const json_t *d = json_is_object(data) ? data : resp;
    int rc = fill_names(t, d, out, err, cap);
    return rc < 0 ? rc : fill_cert(t, d, ca_pem, key_pem, out, err, cap);
}

int pr_enroll(const pr_enroll_req *req, pr_idfile *out, char *err, size_t errcap)
{
    tok_info t;
    char *tok = NULL, *ca_pem = NULL, *key_pem = NULL, *csr_pem = NULL, *body = NULL;
    json_t *resp = NULL;
    int rc;
    memset(&t, 0, sizeof(t));
    if (req == NULL || out == NULL)
        return pr_errf(err, errcap, WEFT_EINVAL, "no enrolment request");
    memset(out, 0, sizeof(*out));
    if ((rc = read_token(req->token, &t, err, errcap)) < 0 ||
        (rc = token_trim(req->token, &tok, err, errcap)) < 0)
        goto out;
    if ((rc = fetch_ca(&t, req->timeout_ms, &ca_pem, err, errcap)) < 0 ||
        (rc = pin_ca(&t, ca_pem, err, errcap)) < 0)
        goto out;
    if ((rc = pr_pki_keygen(&key_pem)) < 0 || (rc = pr_pki_csr(key_pem, t.sub, &csr_pem)) < 0) {
        pr_errf(err, errcap, rc, "cannot make a key pair and CSR: %s", weft_strerror(rc));
        goto out;
    }
    if ((rc = build_request(req, t.ca_fp, tok, csr_pem, &body)) < 0) {
        pr_errf(err, errcap, rc,
                rc == WEFT_EINVAL
                    ? "cannot sign with the factory key (%s): is --key the key of --cert?"
                    : "cannot build the enrolment request: %s",
                weft_strerror(rc));
        goto out;
    }
    if ((rc = post_csr(&t, req, ca_pem, body, &resp, err, errcap)) < 0)
        goto out;
    rc = fill_idfile(&t, resp, ca_pem, key_pem, out, err, errcap);
out:
    if (rc < 0)
        pr_idfile_free(out);
    if (key_pem != NULL)
        sodium_memzero(key_pem, strlen(key_pem));
    if (tok != NULL)
        sodium_memzero(tok, strlen(tok)); /* the token is a one-time secret until used */
    if (body != NULL)
        sodium_memzero(body, strlen(body));
    free(key_pem);
    free(tok);
    free(ca_pem);
    free(csr_pem);
    free(body);
    json_decref(resp);
    json_decref(t.claims);
    return rc;
}
