/* End-to-end circuit encryption: crypto_kx key agreement, ECDSA-signed kx
 * keys (OpenSSL EVP_DigestSign/Verify), secretstream push/pull into caller
 * buffers. See proto/e2e.h for the wire rules. */
#include "proto/e2e.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proto/pki.h"
#include "weft/errors.h"

#define SIG_CONTEXT "weft-kx-v1"
#define CERT_MAX 16384 /* a PEM certificate chain longer than this is refused */
#define TBS_MAX (sizeof(SIG_CONTEXT) - 1 + 1 + PR_E2E_KX_BYTES + PR_E2E_SERVICE_MAX)

typedef crypto_secretstream_xchacha20poly1305_state ss_state;

int pr_e2e_kx_new(pr_e2e_kx *kx)
{
    if (kx == NULL || sodium_init() < 0)
        return WEFT_EINVAL;
    return crypto_kx_keypair(kx->pk, kx->sk) == 0 ? 0 : WEFT_ECRYPTO;
}

void pr_e2e_kx_wipe(pr_e2e_kx *kx)
{
    if (kx)
        sodium_memzero(kx->sk, sizeof(kx->sk));
}

/* The signed bytes: context, role, key, service name. */
static int tbs_build(int role, const uint8_t *pk, const char *service, uint8_t *out, size_t *len)
{
    size_t ctx_len = sizeof(SIG_CONTEXT) - 1, svc_len;

    if (service == NULL || (role != PR_E2E_DIALLER && role != PR_E2E_HOST))
        return WEFT_EINVAL;
    svc_len = strlen(service);
    if (svc_len == 0 || svc_len > PR_E2E_SERVICE_MAX)
        return WEFT_EINVAL;
    memcpy(out, SIG_CONTEXT, ctx_len);
    out[ctx_len] = (uint8_t)role;
    memcpy(out + ctx_len + 1, pk, PR_E2E_KX_BYTES);
    memcpy(out + ctx_len + 1 + PR_E2E_KX_BYTES, service, svc_len);
    *len = ctx_len + 1 + PR_E2E_KX_BYTES + svc_len;
    return 0;
}

/* Circuit set-up signs with the same key and checks against the same CA again
 * and again; parsing PEM with OpenSSL 3's decoders costs far more than the
 * signature (about 550 us against 30). Each thread keeps the last key and the
 * last CA it parsed, keyed by their text, so a renewed identity simply misses
 * the cache once. */
static __thread struct {
    char *pem;
    EVP_PKEY *key;
} key_cache;

static __thread struct {
    char *pem;
    pr_pki_verifier *v;
} ca_cache;

/* A thread that cached something frees it when it exits (no leak per
 * worker thread); the key's value only marks that the thread has a cache. */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_thread_exit(void *unused)
{
    (void)unused;
    pr_e2e_cache_clear();
}

static void cache_key_make(void)
{
    (void)pthread_key_create(&cache_key, cache_thread_exit);
}

static void cache_mark_thread(void)
{
    (void)pthread_once(&cache_once, cache_key_make);
    (void)pthread_setspecific(cache_key, &cache_key);
}

static void key_cache_clear(void)
{
    if (key_cache.pem != NULL) {
        sodium_memzero(key_cache.pem, strlen(key_cache.pem));
        free(key_cache.pem);
    }
    EVP_PKEY_free(key_cache.key);
    key_cache.pem = NULL;
    key_cache.key = NULL;
}

/* The parsed key for key_pem, owned by the cache (do not free). */
static EVP_PKEY *key_from_pem(const char *key_pem)
{
    BIO *b;

    if (key_cache.pem != NULL && strcmp(key_cache.pem, key_pem) == 0)
        return key_cache.key;
    key_cache_clear();
    cache_mark_thread();
    if ((b = BIO_new_mem_buf(key_pem, -1)) == NULL)
        return NULL;
    key_cache.key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (key_cache.key != NULL && (key_cache.pem = strdup(key_pem)) == NULL)
        key_cache_clear();
    return key_cache.key;
}

/* The verifier for ca_pem, owned by the cache (do not free). */
static pr_pki_verifier *verifier_for(const char *ca_pem)
{
    if (ca_cache.pem != NULL && strcmp(ca_cache.pem, ca_pem) == 0)
        return ca_cache.v;
    pr_pki_verifier_free(ca_cache.v);
    free(ca_cache.pem);
    ca_cache.v = NULL;
    ca_cache.pem = NULL;
    cache_mark_thread();
    if (pr_pki_verifier_new(ca_pem, &ca_cache.v) < 0)
        return NULL;
    if ((ca_cache.pem = strdup(ca_pem)) == NULL) {
        pr_pki_verifier_free(ca_cache.v);
        ca_cache.v = NULL;
    }
    return ca_cache.v;
}

void pr_e2e_cache_clear(void)
{
    key_cache_clear();
    pr_pki_verifier_free(ca_cache.v);
    free(ca_cache.pem);
    ca_cache.v = NULL;
    ca_cache.pem = NULL;
}

int pr_e2e_sign(const char *key_pem, int role, const uint8_t kx_pk[PR_E2E_KX_BYTES],
                const char *service, uint8_t sig[PR_E2E_SIG_MAX], size_t *sig_len)
{
    uint8_t tbs[TBS_MAX];
    size_t tbs_len, n = PR_E2E_SIG_MAX;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY *key = NULL;
    int ret;

    if (key_pem == NULL || kx_pk == NULL || sig == NULL || sig_len == NULL)
        return WEFT_EINVAL;
    if ((ret = tbs_build(role, kx_pk, service, tbs, &tbs_len)) < 0)
        return ret;
    ret = WEFT_ECRYPTO;
    if ((key = key_from_pem(key_pem)) == NULL || (md = EVP_MD_CTX_new()) == NULL)
        goto out;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &n, tbs, tbs_len) != 1)
        goto out;
    *sig_len = n;
    ret = 0;
out:
    EVP_MD_CTX_free(md);
    return ret;
}

static int check_sig(X509 *cert, const uint8_t *tbs, size_t tbs_len, const uint8_t *sig,
                     size_t sig_len)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    if (pub == NULL || md == NULL) {
        EVP_MD_CTX_free(md);
        return WEFT_ECRYPTO;
    }
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
         EVP_DigestVerify(md, sig, sig_len, tbs, tbs_len) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 0 : WEFT_ECRYPTO;
}

int pr_e2e_verify_peer(const char *cert_pem, size_t cert_len, const char *ca_pem, int role,
                       const uint8_t kx_pk[PR_E2E_KX_BYTES], const char *service,
                       const uint8_t *sig, size_t sig_len, char *uri_out, size_t uri_cap)
{
    uint8_t tbs[TBS_MAX];
    size_t tbs_len;
    char *pem = NULL;
    pr_pki_verifier *v;
    void *leaf = NULL;
    int ret;

    if (!cert_pem || !ca_pem || !kx_pk || !sig || sig_len == 0 || sig_len > PR_E2E_SIG_MAX)
        return WEFT_EINVAL;
    if (cert_len == 0 || cert_len > CERT_MAX)
        return WEFT_ECERT;
    if ((ret = tbs_build(role, kx_pk, service, tbs, &tbs_len)) < 0)
        return ret;
    if ((v = verifier_for(ca_pem)) == NULL)
        return WEFT_EINVAL;
    /* The certificate arrives as a length-delimited header: make it a string. */
    if ((pem = malloc(cert_len + 1)) == NULL)
        return WEFT_ENOMEM;
    memcpy(pem, cert_pem, cert_len);
    pem[cert_len] = '\0';
    ret = pr_pki_verifier_check(v, pem, uri_out, uri_cap, &leaf);
    if (ret == 0)
        ret = check_sig(leaf, tbs, tbs_len, sig, sig_len);
    X509_free(leaf);
    free(pem);
    return ret;
}

int pr_e2e_keys_derive(int role, const pr_e2e_kx *ours, const uint8_t peer_pk[PR_E2E_KX_BYTES],
                       pr_e2e_keys *keys)
{
    int rc;

    if (ours == NULL || peer_pk == NULL || keys == NULL)
        return WEFT_EINVAL;
    if (role == PR_E2E_DIALLER)
        rc = crypto_kx_client_session_keys(keys->rx, keys->tx, ours->pk, ours->sk, peer_pk);
    else if (role == PR_E2E_HOST)
        rc = crypto_kx_server_session_keys(keys->rx, keys->tx, ours->pk, ours->sk, peer_pk);
    else
        return WEFT_EINVAL;
    return rc == 0 ? 0 : WEFT_ECRYPTO;
}

int pr_e2e_push_start(pr_e2e_stream *s, const uint8_t key[PR_E2E_KEY_BYTES],
                      uint8_t header[PR_E2E_HEADER_BYTES])
{
    if (s == NULL || key == NULL || header == NULL)
        return WEFT_EINVAL;
    memset(s, 0, sizeof(*s));
    if (crypto_secretstream_xchacha20poly1305_init_push(&s->st, header, key) != 0)
        return WEFT_ECRYPTO;
    s->started = 1;
    return 0;
}

int pr_e2e_push(pr_e2e_stream *s, const uint8_t *msg, size_t len, int final, uint8_t *out,
                size_t cap, size_t *out_len)
{
    unsigned char tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0;
    unsigned long long n;

    if (s == NULL || out == NULL || out_len == NULL || (len > 0 && msg == NULL))
        return WEFT_EINVAL;
    if (!s->started || s->finished || (len == 0 && !final))
        return WEFT_EINVAL;
    if (len > PR_E2E_MAX_MSG || cap < len + PR_E2E_ABYTES)
        return WEFT_ETOOBIG;
    if (crypto_secretstream_xchacha20poly1305_push(&s->st, out, &n, msg, len, NULL, 0, tag) != 0)
        return WEFT_ECRYPTO;
    s->finished = final != 0;
    *out_len = (size_t)n;
    return 0;
}

int pr_e2e_pull_start(pr_e2e_stream *s, const uint8_t key[PR_E2E_KEY_BYTES], const uint8_t *hdr,
                      size_t hdr_len)
{
    if (s == NULL || key == NULL || hdr == NULL)
        return WEFT_EINVAL;
    if (hdr_len != PR_E2E_HEADER_BYTES)
        return WEFT_EPROTO;
    memset(s, 0, sizeof(*s));
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->st, hdr, key) != 0)
        return WEFT_ECRYPTO;
    s->started = 1;
    return 0;
}

int pr_e2e_pull(pr_e2e_stream *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                size_t *out_len, int *final)
{
    unsigned long long n;
    unsigned char tag = 0;

    if (s == NULL || in == NULL || out == NULL || out_len == NULL || final == NULL)
        return WEFT_EINVAL;
    if (!s->started || s->finished)
        return WEFT_EPROTO;
    if (in_len < PR_E2E_ABYTES || in_len - PR_E2E_ABYTES > PR_E2E_MAX_MSG)
        return WEFT_EPROTO;
    if (cap < in_len - PR_E2E_ABYTES)
        return WEFT_ETOOBIG;
    if (crypto_secretstream_xchacha20poly1305_pull(&s->st, out, &n, &tag, in, in_len, NULL, 0) != 0)
        return WEFT_ECRYPTO;
    *final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    s->finished = *final;
    *out_len = (size_t)n;
    return 0;
}
