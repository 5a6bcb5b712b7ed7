/* Reading enterprise CA certificates, factory certificates and CRLs. */
#include "controller/devcert.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

#include "weft/errors.h"

static X509 *read_cert(const char *pem)
{
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    ERR_clear_error();
    return x;
}

static X509_CRL *read_crl(const char *pem)
{
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509_CRL *c = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    ERR_clear_error();
    return c;
}

int ctl_devcert_is_ca(const char *pem)
{
    X509 *x = read_cert(pem);
    int ca = x != NULL && X509_check_ca(x) > 0;

    X509_free(x);
    return ca;
}

static void copy_cn(X509 *x, char *out, size_t cap)
{
    X509_NAME *n = X509_get_subject_name(x);
    int len = X509_NAME_get_text_by_NID(n, NID_commonName, NULL, 0);

    out[0] = '\0';
    if (len <= 0 || (size_t)len >= cap)
        return;
    X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)cap);
}

static int copy_serial(X509 *x, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    int rc = WEFT_ECERT;

    if (hex != NULL && strlen(hex) < cap) {
        for (size_t i = 0; hex[i]; i++)
            out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        out[strlen(hex)] = '\0';
        rc = 0;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return rc;
}

int ctl_devcert_info_get(const char *cert_pem, ctl_devcert_info *out)
{
    struct tm tm = {0};
    X509 *x = read_cert(cert_pem);
    int rc = WEFT_ECERT;

    if (x == NULL || out == NULL)
        goto out;
    copy_cn(x, out->cn, sizeof(out->cn));
    if ((rc = copy_serial(x, out->serial, sizeof(out->serial))) < 0)
        goto out;
    rc = WEFT_ECERT;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
        out->not_after = (int64_t)timegm(&tm);
        rc = 0;
    }
out:
    ERR_clear_error();
    X509_free(x);
    return rc;
}

int ctl_devcert_crl_check(const char *crl_pem, const char *ca_pem)
{
    X509_CRL *crl = read_crl(crl_pem);
    X509 *ca = read_cert(ca_pem);
    int rc = WEFT_EINVAL;

    if (crl == NULL || ca == NULL)
        goto out;
    rc = X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1 ? 0 : WEFT_EDENIED;
out:
    ERR_clear_error();
    X509_CRL_free(crl);
    X509_free(ca);
    return rc;
}

int ctl_devcert_revoked(const char *cert_pem, const char *crl_pem)
{
    X509_CRL *crl = read_crl(crl_pem);
    X509 *x = read_cert(cert_pem);
    X509_REVOKED *rev = NULL;
    int rc = WEFT_EINVAL;

    if (crl != NULL && x != NULL)
        rc = X509_CRL_get0_by_cert(crl, &rev, x) == 1 ? 1 : 0;
    ERR_clear_error();
    X509_CRL_free(crl);
    X509_free(x);
    return rc;
}
