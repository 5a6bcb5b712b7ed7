/* End-to-end keys of one circuit: crypto_kx, ECDSA signatures over the kx key
 * with the certificate key (OpenSSL), secretstream per direction (libsodium). */
#include "edge/lib/e2e.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "proto/ident.h"
#include "proto/pki.h"
#include "weft/errors.h"

#define KX_CONTEXT "weft-kx-v1"

void weft__e2e_init(weft_e2e *e, int role)
{
    memset(e, 0, sizeof(*e));
    e->role = role;
    crypto_kx_keypair(e->pk, e->sk);
}

void weft__e2e_wipe(weft_e2e *e)
{
    sodium_memzero(e, sizeof(*e));
}

/* The signed message: context, role byte, kx key, service name. */
static int signed_msg(int role, const uint8_t pk[WEFT_E2E_PK_LEN], const char *service,
                      uint8_t *out, size_t cap, size_t *len)
{
    size_t clen = sizeof(KX_CONTEXT) - 1, slen = strlen(service);

    if (clen + 1 + WEFT_E2E_PK_LEN + slen > cap)
        return WEFT_ETOOBIG;
    memcpy(out, KX_CONTEXT, clen);
    out[clen] = (uint8_t)role;
    memcpy(out + clen + 1, pk, WEFT_E2E_PK_LEN);
    memcpy(out + clen + 1 + WEFT_E2E_PK_LEN, service, slen);
    *len = clen + 1 + WEFT_E2E_PK_LEN + slen;
    return 0;
}

int weft__e2e_sign(const char *key_pem, int role, const uint8_t pk[WEFT_E2E_PK_LEN],
                  const char *service, uint8_t *sig, size_t *sig_len)
{
    uint8_t msg[512];
    size_t mlen, slen = WEFT_E2E_SIG_MAX;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    BIO *b = NULL;
    int ret;

    if ((ret = signed_msg(role, pk, service, msg, sizeof(msg), &mlen)) < 0)
        return ret;
    ret = WEFT_ECRYPTO;
    if ((b = BIO_new_mem_buf(key_pem, -1)) == NULL ||
        (key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL || (md = EVP_MD_CTX_new()) == NULL)
        goto out;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &slen, msg, mlen) != 1)
        goto out;
    *sig_len = slen;
    ret = 0;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    BIO_free(b);
    return ret;
}

static int check_sig(X509 *x, const uint8_t *msg, size_t mlen, const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY *key = X509_get0_pubkey(x);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ret = WEFT_ECRYPTO;

    if (key == NULL || md == NULL)
        goto out;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(md, sig, sig_len, msg, mlen) == 1)
        ret = 0;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    return ret;
}

/* The certificate must name an identity (not a router) of our own network. */
static int check_uri(const char *cert_pem, const char *trust_domain, char *uri, size_t cap)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind;

    if (pr_pki_cert_uri(cert_pem, uri, cap) < 0 ||
        pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0)
        return WEFT_ECERT;
    if (kind != PR_IDENT_IDENTITY || strcmp(td, trust_domain) != 0)
        return WEFT_EUNTRUSTED;
    return 0;
}

int weft__e2e_verify_peer(const char *ca_pem, const char *trust_domain, const char *cert_pem,
                         int peer_role, const uint8_t pk[WEFT_E2E_PK_LEN], const char *service,
                         const uint8_t *sig, size_t sig_len, char *uri, size_t uri_cap)
{
    uint8_t msg[512];
    size_t mlen;
    X509 *x = NULL;
    BIO *b = NULL;
    int ret;

    if ((ret = pr_pki_verify(cert_pem, ca_pem)) < 0)
        return ret;
    if ((ret = check_uri(cert_pem, trust_domain, uri, uri_cap)) < 0)
        return ret;
    if ((ret = signed_msg(peer_role, pk, service, msg, sizeof(msg), &mlen)) < 0)
        return ret;
    ret = WEFT_ECERT;
    if ((b = BIO_new_mem_buf(cert_pem, -1)) == NULL ||
        (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL)
        goto out;
    ret = check_sig(x, msg, mlen, sig, sig_len);
out:
    ERR_clear_error();
    X509_free(x);
    BIO_free(b);
    return ret;
}

int weft__e2e_derive(weft_e2e *e, const uint8_t peer_pk[WEFT_E2E_PK_LEN],
                    uint8_t hdr[WEFT_E2E_HDR_LEN])
{
    int r;

    if (e->role == WEFT_E2E_CLIENT)
        r = crypto_kx_client_session_keys(e->rx_key, e->tx_key, e->pk, e->sk, peer_pk);
    else
        r = crypto_kx_server_session_keys(e->rx_key, e->tx_key, e->pk, e->sk, peer_pk);
    sodium_memzero(e->sk, sizeof(e->sk)); /* the kx secret is needed once */
    if (r != 0)
        return WEFT_ECRYPTO;
    crypto_secretstream_xchacha20poly1305_init_push(&e->tx, hdr, e->tx_key);
    return 0;
}

int weft__e2e_rx_start(weft_e2e *e, const uint8_t *hdr, size_t len)
{
    if (e->rx_ready || len != WEFT_E2E_HDR_LEN)
        return WEFT_EPROTO;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&e->rx, hdr, e->rx_key) != 0)
        return WEFT_ECRYPTO;
    e->rx_ready = 1;
    return 0;
}

int weft__e2e_seal(weft_e2e *e, const uint8_t *in, size_t len, int final, uint8_t *out,
                  size_t *out_len)
{
    unsigned long long olen;
    uint8_t tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                        : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;

    if (crypto_secretstream_xchacha20poly1305_push(&e->tx, out, &olen, in, len, NULL, 0, tag) != 0)
        return WEFT_ECRYPTO;
    *out_len = (size_t)olen;
    return 0;
}

int weft__e2e_open(weft_e2e *e, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
                  int *final)
{
    unsigned long long olen;
    unsigned char tag;

    if (!e->rx_ready || len < WEFT_E2E_ABYTES)
        return WEFT_EPROTO;
    if (crypto_secretstream_xchacha20poly1305_pull(&e->rx, out, &olen, &tag, in, len, NULL, 0) != 0)
        return WEFT_ECRYPTO;
    *out_len = (size_t)olen;
    *final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    return 0;
}
