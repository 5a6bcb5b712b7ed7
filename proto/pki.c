/* X.509 on OpenSSL 3: P-256 keys, CSRs, the network CA, verification.
 * Every function clears the OpenSSL error queue when it fails so that a stale
 * error never confuses a later SSL_get_error() on the same thread. */
#include "proto/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/errors.h"

#define CA_LIFETIME (10LL * 366 * 24 * 3600)
#define CLOCK_SKEW 300
#define SERIAL_BYTES 16

/* ---- PEM in and out ---- */

static BIO *pem_bio(const char *pem)
{
    size_t len = strlen(pem);

    if (len == 0 || len > INT32_MAX)
        return NULL;
    return BIO_new_mem_buf(pem, (int)len);
}

/* The first certificate of a PEM bundle. */
static X509 *load_cert(const char *pem)
{
    BIO *b;
    X509 *x;

    if (pem == NULL || (b = pem_bio(pem)) == NULL)
        return NULL;
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    return x;
}

static EVP_PKEY *load_key(const char *pem)
{
    BIO *b;
    EVP_PKEY *k;

    if (pem == NULL || (b = pem_bio(pem)) == NULL)
        return NULL;
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

/* Copies a memory BIO into a malloc'd NUL-terminated string (freed with free()). */
static int bio_to_str(BIO *b, char **out)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s;

    if (n <= 0)
        return WEFT_ECRYPTO;
    if ((s = malloc((size_t)n + 1)) == NULL)
        return WEFT_ENOMEM;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *out = s;
    return 0;
}

enum pem_kind { PEM_CERT, PEM_KEY, PEM_REQ };

static int to_pem(enum pem_kind kind, void *obj, char **out)
{
    BIO *b = BIO_new(BIO_s_mem());
    int ok = 0;
    int ret;

    if (b == NULL)
        return WEFT_ENOMEM;
    if (kind == PEM_CERT)
        ok = PEM_write_bio_X509(b, obj);
    else if (kind == PEM_KEY)
        ok = PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL);
    else
        ok = PEM_write_bio_X509_REQ(b, obj);
    ret = ok == 1 ? bio_to_str(b, out) : WEFT_ECRYPTO;
    BIO_free(b);
    return ret;
}

/* ---- keys and requests ---- */

static EVP_PKEY *new_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* Only P-256 keys are part of the fabric; anything else is refused. */
static int key_is_p256(EVP_PKEY *k)
{
    char group[32];
    size_t glen = 0;

    if (!EVP_PKEY_is_a(k, "EC"))
        return 0;
    if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) != 1)
        return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

int pr_pki_keygen(char **key_pem)
{
    EVP_PKEY *k;
    int ret;

    if (key_pem == NULL)
        return WEFT_EINVAL;
    *key_pem = NULL;
    if ((k = new_key()) == NULL) {
        ERR_clear_error();
        return WEFT_ECRYPTO;
    }
    ret = to_pem(PEM_KEY, k, key_pem);
    EVP_PKEY_free(k);
    return ret;
}

static int set_cn(X509_NAME *name, const char *cn)
{
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
        return WEFT_EINVAL;
    return 0;
}

int pr_pki_csr(const char *key_pem, const char *cn, char **csr_pem)
{
    EVP_PKEY *k = NULL;
    X509_REQ *r = NULL;
    int ret = WEFT_ECRYPTO;

    if (key_pem == NULL || cn == NULL || *cn == '\0' || csr_pem == NULL)
        return WEFT_EINVAL;
    *csr_pem = NULL;
    if ((k = load_key(key_pem)) == NULL) {
        ret = WEFT_EINVAL;
        goto out;
    }
    if ((r = X509_REQ_new()) == NULL || X509_REQ_set_version(r, 0) != 1)
        goto out;
    if ((ret = set_cn(X509_REQ_get_subject_name(r), cn)) < 0)
        goto out;
    ret = WEFT_ECRYPTO;
    if (X509_REQ_set_pubkey(r, k) != 1 || X509_REQ_sign(r, k, EVP_sha256()) <= 0)
        goto out;
    ret = to_pem(PEM_REQ, r, csr_pem);
out:
    if (ret < 0)
        ERR_clear_error();
    X509_REQ_free(r);
    EVP_PKEY_free(k);
    return ret;
}

/* ---- reading certificates ---- */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int pr_pki_fingerprint(const char *cert_pem, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    X509 *x;
    int ret = 0;

    if (hex == NULL)
        return WEFT_EINVAL;
    hex[0] = '\0';
    if ((x = load_cert(cert_pem)) == NULL) {
        ERR_clear_error();
        return WEFT_ECERT;
    }
    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        ERR_clear_error();
        ret = WEFT_ECRYPTO;
    } else {
        hex_encode(md, mdlen, hex);
    }
    X509_free(x);
    return ret;
}

/* Copies the first URI entry of names into out; NUL bytes inside are refused. */
static int copy_uri(const GENERAL_NAMES *names, char *out, size_t cap)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const ASN1_IA5STRING *s;
        int len;

        if (gn->type != GEN_URI)
            continue;
        s = gn->d.uniformResourceIdentifier;
        len = ASN1_STRING_length(s);
        if (len < 0 || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len) != NULL)
            return WEFT_ECERT;
        if ((size_t)len >= cap)
            return WEFT_ETOOBIG;
        memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
        out[len] = '\0';
        return 0;
    }
    return WEFT_ENOTFOUND;
}

int pr_pki_cert_uri(const char *cert_pem, char *out, size_t cap)
{
    GENERAL_NAMES *names;
    X509 *x;
    int ret;

    if (out == NULL || cap == 0)
        return WEFT_EINVAL;
    out[0] = '\0';
    if ((x = load_cert(cert_pem)) == NULL) {
        ERR_clear_error();
        return WEFT_ECERT;
    }
    names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    ret = names != NULL ? copy_uri(names, out, cap) : WEFT_ENOTFOUND;
    GENERAL_NAMES_free(names);
    X509_free(x);
    ERR_clear_error();
    return ret;
}

int pr_pki_cert_not_after(const char *cert_pem, int64_t *out)
{
    struct tm tm;
    X509 *x;
    int ret = 0;

    if (out == NULL)
        return WEFT_EINVAL;
    if ((x = load_cert(cert_pem)) == NULL) {
        ERR_clear_error();
        return WEFT_ECERT;
    }
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
        ERR_clear_error();
        ret = WEFT_ECERT;
    } else {
        *out = (int64_t)timegm(&tm);
    }
    X509_free(x);
    return ret;
}

int pr_pki_key_matches(const char *cert_pem, const char *key_pem)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int ret;

    if ((x = load_cert(cert_pem)) == NULL) {
        ret = WEFT_ECERT;
        goto out;
    }
    if ((k = load_key(key_pem)) == NULL) {
        ret = WEFT_EINVAL;
        goto out;
    }
    ret = X509_check_private_key(x, k) == 1 ? 1 : 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(k);
    X509_free(x);
    return ret;
}

/* ---- verification ---- */

/* Reads every certificate of a PEM bundle; the caller frees with sk_X509_pop_free. */
static STACK_OF(X509) *load_all(const char *pem)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *b = pem != NULL ? pem_bio(pem) : NULL;
    X509 *x;

    if (sk == NULL || b == NULL)
        goto fail;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            goto fail;
        }
    }
    ERR_clear_error(); /* the loop always ends on a "no start line" error */
    BIO_free(b);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
fail:
    BIO_free(b);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

static int map_verify_error(int err)
{
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return WEFT_ECERTEXPIRED;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return WEFT_EUNTRUSTED;
    default:
        return WEFT_ECERT;
    }
}

static X509_STORE *store_from(STACK_OF(X509) *cas)
{
    X509_STORE *st = X509_STORE_new();

    if (st == NULL)
        return NULL;
    for (int i = 0; i < sk_X509_num(cas); i++) {
        if (X509_STORE_add_cert(st, sk_X509_value(cas, i)) != 1) {
            X509_STORE_free(st);
            return NULL;
        }
    }
    return st;
}

struct pr_pki_verifier {
    X509_STORE *store;
};

int pr_pki_verifier_new(const char *ca_pem, pr_pki_verifier **out)
{
    STACK_OF(X509) *cas = load_all(ca_pem);
    pr_pki_verifier *v = NULL;
    int ret = WEFT_EINVAL;

    if (cas == NULL || out == NULL)
        goto out;
    ret = WEFT_ENOMEM;
    if ((v = calloc(1, sizeof(*v))) == NULL || (v->store = store_from(cas)) == NULL)
        goto out;
    *out = v;
    v = NULL;
    ret = 0;
out:
    ERR_clear_error();
    pr_pki_verifier_free(v);
    sk_X509_pop_free(cas, X509_free);
    return ret;
}

void pr_pki_verifier_free(pr_pki_verifier *v)
{
    if (v == NULL)
        return;
    X509_STORE_free(v->store);
    free(v);
}

int pr_pki_verifier_check(pr_pki_verifier *v, const char *cert_pem, char *uri, size_t uri_cap,
                          void **leaf_out)
{
    STACK_OF(X509) *chain = NULL;
    X509_STORE_CTX *ctx = NULL;
    GENERAL_NAMES *names = NULL;
    X509 *leaf;
    int ret = WEFT_ECERT;

    if (v == NULL || (chain = load_all(cert_pem)) == NULL)
        goto out;
    leaf = sk_X509_value(chain, 0);
    ret = WEFT_ENOMEM;
    /* The first certificate is the leaf; any others are untrusted intermediates. */
    if ((ctx = X509_STORE_CTX_new()) == NULL ||
        X509_STORE_CTX_init(ctx, v->store, leaf, chain) != 1)
        goto out;
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
    if (X509_verify_cert(ctx) != 1) {
        ret = map_verify_error(X509_STORE_CTX_get_error(ctx));
        goto out;
    }
    if (uri != NULL && uri_cap > 0) {
        uri[0] = '\0';
        names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
        if ((ret = names != NULL ? copy_uri(names, uri, uri_cap) : WEFT_ENOTFOUND) < 0)
            goto out;
    }
    if (leaf_out != NULL && X509_up_ref(leaf) == 1)
        *leaf_out = leaf;
    ret = 0;
out:
    ERR_clear_error();
    GENERAL_NAMES_free(names);
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(chain, X509_free);
    return ret;
}

int pr_pki_verify(const char *cert_pem, const char *ca_pem)
{
    STACK_OF(X509) *chain = load_all(cert_pem);
    pr_pki_verifier *v = NULL;
    int ret;

    /* A certificate that does not parse is the caller's first problem. */
    if (chain == NULL) {
        ERR_clear_error();
        return WEFT_ECERT;
    }
    sk_X509_pop_free(chain, X509_free);
    if ((ret = pr_pki_verifier_new(ca_pem, &v)) < 0)
        return ret;
    ret = pr_pki_verifier_check(v, cert_pem, NULL, 0, NULL);
    pr_pki_verifier_free(v);
    return ret;
}

/* ---- CA side ---- */

void pr_ca_free(pr_ca *ca)
{
    if (ca == NULL)
        return;
    free(ca->cert_pem);
    free(ca->key_pem);
    ca->cert_pem = NULL;
    ca->key_pem = NULL;
}

/* A random positive 128-bit serial; hex (33 bytes) if wanted. */
static int set_serial(X509 *x, char *hex)
{
    unsigned char buf[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    int ret = WEFT_ECRYPTO;

    if (RAND_bytes(buf, sizeof(buf)) != 1)
        return WEFT_ECRYPTO;
    buf[0] &= 0x7f; /* DER INTEGER: keep it positive */
    buf[0] |= 0x40; /* and keep it a full 127 bits, never zero */
    if ((bn = BN_bin2bn(buf, sizeof(buf), NULL)) == NULL)
        goto out;
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    if (hex != NULL)
        hex_encode(buf, sizeof(buf), hex);
    ret = 0;
out:
    BN_free(bn);
    return ret;
}

static int set_validity(X509 *x, int64_t not_before, int64_t not_after)
{
    if (not_after <= not_before)
        return WEFT_EINVAL;
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL)
        return WEFT_EINVAL;
    if (ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL)
        return WEFT_EINVAL;
    return 0;
}

/* Adds one extension written in OpenSSL's configuration syntax (fixed strings only:
 * values that come from requests go through add_san, never through this parser). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
        return WEFT_ECRYPTO;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : WEFT_ECRYPTO;
}

static int push_name(GENERAL_NAMES *names, int type, const char *value)
{
    GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, type, value, 0);

    if (gn == NULL)
        return WEFT_EINVAL;
    if (sk_GENERAL_NAME_push(names, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return WEFT_ENOMEM;
    }
    return 0;
}

static int push_list(GENERAL_NAMES *names, int type, const char *const *list)
{
    int ret = 0;

    for (size_t i = 0; list != NULL && list[i] != NULL && ret == 0; i++)
        ret = push_name(names, type, list[i]);
    return ret;
}

static int add_san(X509 *x, const pr_cert_req *req)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    int ret;

    if (names == NULL)
        return WEFT_ENOMEM;
    ret = req->uri != NULL ? push_name(names, GEN_URI, req->uri) : 0;
    if (ret == 0)
        ret = push_list(names, GEN_DNS, req->dns);
    if (ret == 0)
        ret = push_list(names, GEN_IPADD, req->ips);
    if (ret == 0 && sk_GENERAL_NAME_num(names) > 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) != 1)
        ret = WEFT_ECRYPTO;
    GENERAL_NAMES_free(names);
    return ret;
}

static const char *eku_for(int usage)
{
    switch (usage) {
    case PR_CERT_CLIENT:
        return "clientAuth";
    case PR_CERT_SERVER:
        return "serverAuth";
    case PR_CERT_BOTH:
        return "serverAuth,clientAuth";
    default:
        return NULL;
    }
}

static int add_leaf_exts(X509 *x, X509 *issuer, const pr_cert_req *req)
{
    int ret;

    if ((ret = add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (ret = add_ext(x, issuer, NID_key_usage, "critical,digitalSignature")) < 0 ||
        (ret = add_ext(x, issuer, NID_ext_key_usage, eku_for(req->usage))) < 0 ||
        (ret = add_ext(x, issuer, NID_subject_key_identifier, "hash")) < 0 ||
        (ret = add_ext(x, issuer, NID_authority_key_identifier, "keyid:always")) < 0)
        return ret;
    return add_san(x, req);
}

static int check_req(const pr_cert_req *req)
{
    if (req == NULL || req->cn == NULL || *req->cn == '\0' || eku_for(req->usage) == NULL)
        return WEFT_EINVAL;
    if (req->not_after <= 0)
        return WEFT_EINVAL;
    return 0;
}

/* Builds and signs a leaf for pub, with everything taken from req. */
static int make_leaf(const pr_ca *ca, EVP_PKEY *pub, const pr_cert_req *req, char **cert_pem,
                     char *serial_hex)
{
    X509 *cacert = NULL, *x = NULL;
    EVP_PKEY *cakey = NULL;
    int64_t nb = req->not_before != 0 ? req->not_before : (int64_t)time(NULL) - CLOCK_SKEW;
    int ret = WEFT_EINVAL;

    if ((cacert = load_cert(ca->cert_pem)) == NULL || (cakey = load_key(ca->key_pem)) == NULL)
        goto out;
    ret = WEFT_ENOMEM;
    if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1)
        goto out;
    if ((ret = set_serial(x, serial_hex)) < 0 || (ret = set_validity(x, nb, req->not_after)) < 0 ||
        (ret = set_cn(X509_get_subject_name(x), req->cn)) < 0)
        goto out;
    ret = WEFT_ECRYPTO;
    if (X509_set_issuer_name(x, X509_get_subject_name(cacert)) != 1 || X509_set_pubkey(x, pub) != 1)
        goto out;
    if ((ret = add_leaf_exts(x, cacert, req)) < 0)
        goto out;
    ret = X509_sign(x, cakey, EVP_sha256()) > 0 ? to_pem(PEM_CERT, x, cert_pem) : WEFT_ECRYPTO;
out:
    X509_free(x);
    EVP_PKEY_free(cakey);
    X509_free(cacert);
    return ret;
}

static X509_REQ *load_req(const char *pem)
{
    BIO *b;
    X509_REQ *r;

    if (pem == NULL || (b = pem_bio(pem)) == NULL)
        return NULL;
    r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    return r;
}

int pr_ca_sign_csr(const pr_ca *ca, const char *csr_pem, const pr_cert_req *req, char **cert_pem,
                   char serial_hex[33])
{
    X509_REQ *r = NULL;
    EVP_PKEY *pub;
    int ret = WEFT_ECERT;

    if (ca == NULL || cert_pem == NULL || check_req(req) < 0)
        return WEFT_EINVAL;
    *cert_pem = NULL;
    if ((r = load_req(csr_pem)) == NULL)
        goto out;
    /* Proof of possession: the CSR must be signed by the key it carries. */
    if ((pub = X509_REQ_get0_pubkey(r)) == NULL || !key_is_p256(pub) || X509_REQ_verify(r, pub) != 1)
        goto out;
    ret = make_leaf(ca, pub, req, cert_pem, serial_hex);
out:
    if (ret < 0)
        ERR_clear_error();
    X509_REQ_free(r);
    return ret;
}

int pr_ca_issue(const pr_ca *ca, const pr_cert_req *req, char **cert_pem, char **key_pem)
{
    EVP_PKEY *k = NULL;
    int ret = WEFT_ECRYPTO;

    if (ca == NULL || cert_pem == NULL || key_pem == NULL || check_req(req) < 0)
        return WEFT_EINVAL;
    *cert_pem = NULL;
    *key_pem = NULL;
    if ((k = new_key()) == NULL)
        goto out;
    if ((ret = make_leaf(ca, k, req, cert_pem, NULL)) < 0)
        goto out;
    if ((ret = to_pem(PEM_KEY, k, key_pem)) < 0) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
out:
    if (ret < 0)
        ERR_clear_error();
    EVP_PKEY_free(k);
    return ret;
}

static int add_ca_exts(X509 *x)
{
    int ret;

    if ((ret = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:1")) < 0 ||
        (ret = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (ret = add_ext(x, x, NID_subject_key_identifier, "hash")) < 0)
        return ret;
    return 0;
}

static int make_root(EVP_PKEY *k, const char *name, X509 **out)
{
    char cn[256];
    int64_t now = (int64_t)time(NULL);
    X509 *x;
    int ret;
    int n = snprintf(cn, sizeof(cn), "%s Root CA", name);

    if (n < 0 || (size_t)n >= sizeof(cn))
        return WEFT_EINVAL;
    if ((x = X509_new()) == NULL)
        return WEFT_ENOMEM;
    ret = WEFT_ECRYPTO;
    if (X509_set_version(x, 2) != 1 || (ret = set_serial(x, NULL)) < 0 ||
        (ret = set_validity(x, now - CLOCK_SKEW, now + CA_LIFETIME)) < 0 ||
        (ret = set_cn(X509_get_subject_name(x), cn)) < 0)
        goto out;
    ret = WEFT_ECRYPTO;
    if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, k) != 1)
        goto out;
    if ((ret = add_ca_exts(x)) < 0)
        goto out;
    ret = X509_sign(x, k, EVP_sha256()) > 0 ? 0 : WEFT_ECRYPTO;
out:
    if (ret < 0)
        X509_free(x);
    else
        *out = x;
    return ret;
}

int pr_ca_create(const char *name, pr_ca *out)
{
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    int ret = WEFT_ECRYPTO;

    if (name == NULL || *name == '\0' || out == NULL)
        return WEFT_EINVAL;
    out->cert_pem = NULL;
    out->key_pem = NULL;
    if ((k = new_key()) == NULL)
        goto out;
    if ((ret = make_root(k, name, &x)) < 0)
        goto out;
    if ((ret = to_pem(PEM_CERT, x, &out->cert_pem)) < 0 || (ret = to_pem(PEM_KEY, k, &out->key_pem)) < 0)
        pr_ca_free(out);
out:
    if (ret < 0)
        ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    return ret;
}

/* ---- intermediates ---- */

static int add_intermediate_exts(X509 *x, X509 *root)
{
    int ret;

    if ((ret = add_ext(x, root, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
        (ret = add_ext(x, root, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (ret = add_ext(x, root, NID_subject_key_identifier, "hash")) < 0 ||
        (ret = add_ext(x, root, NID_authority_key_identifier, "keyid:always")) < 0)
        return ret;
    return 0;
}

/* The intermediate may not outlive its root: a chain is only as valid as its
 * shortest-lived link. */
static int64_t cap_not_after(X509 *root, int64_t not_after)
{
    struct tm tm;
    int64_t root_end;

    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(root), &tm) != 1)
        return not_after;
    root_end = (int64_t)timegm(&tm);
    return not_after > root_end ? root_end : not_after;
}

static int make_intermediate(X509 *root, EVP_PKEY *rootkey, EVP_PKEY *k, const char *cn,
                             int64_t not_after, X509 **out)
{
    int64_t now = (int64_t)time(NULL);
    X509 *x;
    int ret;

    if ((x = X509_new()) == NULL)
        return WEFT_ENOMEM;
    ret = WEFT_ECRYPTO;
    if (X509_set_version(x, 2) != 1 || (ret = set_serial(x, NULL)) < 0 ||
        (ret = set_validity(x, now - CLOCK_SKEW, cap_not_after(root, not_after))) < 0 ||
        (ret = set_cn(X509_get_subject_name(x), cn)) < 0)
        goto out;
    ret = WEFT_ECRYPTO;
    if (X509_set_issuer_name(x, X509_get_subject_name(root)) != 1 || X509_set_pubkey(x, k) != 1)
        goto out;
    if ((ret = add_intermediate_exts(x, root)) < 0)
        goto out;
    ret = X509_sign(x, rootkey, EVP_sha256()) > 0 ? 0 : WEFT_ECRYPTO;
out:
    if (ret < 0)
        X509_free(x);
    else
        *out = x;
    return ret;
}

int pr_ca_create_intermediate(const pr_ca *root, const char *cn, int64_t not_after, pr_ca *out)
{
    X509 *rootcert = NULL, *x = NULL;
    EVP_PKEY *rootkey = NULL, *k = NULL;
    int ret = WEFT_EINVAL;

    if (root == NULL || cn == NULL || *cn == '\0' || out == NULL)
        return WEFT_EINVAL;
    out->cert_pem = NULL;
    out->key_pem = NULL;
    if ((rootcert = load_cert(root->cert_pem)) == NULL ||
        (rootkey = load_key(root->key_pem)) == NULL)
        goto out;
    ret = WEFT_ECRYPTO;
    if ((k = new_key()) == NULL)
        goto out;
    if ((ret = make_intermediate(rootcert, rootkey, k, cn, not_after, &x)) < 0)
        goto out;
    if ((ret = to_pem(PEM_CERT, x, &out->cert_pem)) < 0 ||
        (ret = to_pem(PEM_KEY, k, &out->key_pem)) < 0)
        pr_ca_free(out);
out:
    if (ret < 0)
        ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(rootkey);
    X509_free(rootcert);
    return ret;
}
