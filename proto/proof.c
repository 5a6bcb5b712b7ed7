/* Proof of possession of a factory key: see proto/proof.h. */
#include "proto/proof.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/errors.h"

#define PROOF_TAG "weft-enroll-factory\n"
#define SIG_MAX   512

static int message(const char *ca_fp, const char *csr, unsigned char **out, size_t *len)
{
    size_t tl = strlen(PROOF_TAG), fl = strlen(ca_fp), cl = strlen(csr);
    unsigned char *m;

    if (fl != 64 || cl == 0 || cl > 64 * 1024)
        return WEFT_EINVAL;
    if ((m = malloc(tl + fl + 1 + cl)) == NULL)
        return WEFT_ENOMEM;
    memcpy(m, PROOF_TAG, tl);
    memcpy(m + tl, ca_fp, fl);
    m[tl + fl] = '\n';
    memcpy(m + tl + fl + 1, csr, cl);
    *out = m;
    *len = tl + fl + 1 + cl;
    return 0;
}

/* Ed25519 signs the message itself; everything else signs its SHA-256. */
static const EVP_MD *md_for(EVP_PKEY *k)
{
    return EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448") ? NULL : EVP_sha256();
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    return k;
}

static int sign_raw(EVP_PKEY *k, const unsigned char *m, size_t mlen, unsigned char *sig,
                    size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, md_for(k), NULL, k) == 1 &&
             EVP_DigestSign(ctx, NULL, siglen, m, mlen) == 1 && *siglen <= SIG_MAX &&
             EVP_DigestSign(ctx, sig, siglen, m, mlen) == 1;

    EVP_MD_CTX_free(ctx);
    return ok ? 0 : WEFT_ECRYPTO;
}

int pr_proof_sign(const char *key_pem, const char *ca_fp, const char *csr_pem, char **sig_b64)
{
    unsigned char *m = NULL, sig[SIG_MAX];
    size_t mlen = 0, siglen = sizeof(sig);
    EVP_PKEY *k = NULL;
    int rc;

    if (key_pem == NULL || ca_fp == NULL || csr_pem == NULL || sig_b64 == NULL)
        return WEFT_EINVAL;
    *sig_b64 = NULL;
    if ((rc = message(ca_fp, csr_pem, &m, &mlen)) < 0)
        goto out;
    rc = WEFT_EINVAL;
    if ((k = read_key(key_pem)) == NULL || (rc = sign_raw(k, m, mlen, sig, &siglen)) < 0)
        goto out;
    rc = WEFT_ENOMEM;
    if ((*sig_b64 = malloc(sodium_base64_ENCODED_LEN(siglen, sodium_base64_VARIANT_ORIGINAL))) ==
        NULL)
        goto out;
    sodium_bin2base64(*sig_b64, sodium_base64_ENCODED_LEN(siglen, sodium_base64_VARIANT_ORIGINAL),
                      sig, siglen, sodium_base64_VARIANT_ORIGINAL);
    rc = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(k);
    free(m);
    return rc;
}

static X509 *read_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    return x;
}

static int verify_raw(EVP_PKEY *k, const unsigned char *m, size_t mlen, const unsigned char *sig,
                      size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md_for(k), NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, m, mlen) == 1;

    EVP_MD_CTX_free(ctx);
    return ok ? 0 : WEFT_EDENIED;
}

int pr_proof_check(const char *cert_pem, const char *ca_fp, const char *csr_pem,
                   const char *sig_b64)
{
    unsigned char *m = NULL, sig[SIG_MAX];
    size_t mlen = 0, siglen = 0;
    X509 *x = NULL;
    int rc;

    if (cert_pem == NULL || ca_fp == NULL || csr_pem == NULL || sig_b64 == NULL ||
        strlen(sig_b64) > PR_PROOF_MAX)
        return WEFT_EINVAL;
    if (sodium_base642bin(sig, sizeof(sig), sig_b64, strlen(sig_b64), " \r\n", &siglen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || siglen == 0)
        return WEFT_EINVAL;
    if ((rc = message(ca_fp, csr_pem, &m, &mlen)) < 0)
        goto out;
    rc = WEFT_EINVAL;
    if ((x = read_cert(cert_pem)) == NULL || X509_get0_pubkey(x) == NULL)
        goto out;
    rc = verify_raw(X509_get0_pubkey(x), m, mlen, sig, siglen);
out:
    ERR_clear_error();
    X509_free(x);
    free(m);
    return rc;
}
