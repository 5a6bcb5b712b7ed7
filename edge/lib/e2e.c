/* The edge's use of proto/e2e: one struct per circuit, and the check that
 * the far end is an identity (not a router) of our own network. */
#include "edge/lib/e2e.h"

#include <string.h>

#include "proto/ident.h"
#include "weft/errors.h"

int weft__e2e_init(weft_e2e *e, int role)
{
    memset(e, 0, sizeof(*e));
    e->role = role;
    return pr_e2e_kx_new(&e->kx);
}

void weft__e2e_wipe(weft_e2e *e)
{
    sodium_memzero(e, sizeof(*e));
}

int weft__e2e_sign(const weft_e2e *e, const char *key_pem, const char *service, uint8_t *sig,
                   size_t *sig_len)
{
    return pr_e2e_sign(key_pem, e->role, e->kx.pk, service, sig, sig_len);
}

static int check_uri(const char *uri, const char *trust_domain)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind;

    if (pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0)
        return WEFT_ECERT;
    if (kind != PR_IDENT_IDENTITY || strcmp(td, trust_domain) != 0)
        return WEFT_EUNTRUSTED;
    return 0;
}

int weft__e2e_verify_peer(const char *ca_pem, const char *trust_domain, const char *cert_pem,
                          int peer_role, const uint8_t pk[WEFT_E2E_PK_LEN], const char *service,
                          const uint8_t *sig, size_t sig_len, char *uri, size_t uri_cap)
{
    int r;

    uri[0] = '\0';
    if ((r = pr_e2e_verify_peer(cert_pem, strlen(cert_pem), ca_pem, peer_role, pk, service, sig,
                                sig_len, uri, uri_cap)) < 0)
        return r;
    return check_uri(uri, trust_domain);
}

int weft__e2e_derive(weft_e2e *e, const uint8_t peer_pk[WEFT_E2E_PK_LEN],
                     uint8_t hdr[WEFT_E2E_HDR_LEN])
{
    int r = pr_e2e_keys_derive(e->role, &e->kx, peer_pk, &e->keys);

    pr_e2e_kx_wipe(&e->kx); /* the kx secret is needed once */
    if (r < 0)
        return r;
    return pr_e2e_push_start(&e->tx, e->keys.tx, hdr);
}

int weft__e2e_rx_start(weft_e2e *e, const uint8_t *hdr, size_t len)
{
    return pr_e2e_pull_start(&e->rx, e->keys.rx, hdr, len);
}

int weft__e2e_seal(weft_e2e *e, const uint8_t *in, size_t len, int final, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    return pr_e2e_push(&e->tx, in, len, final, out, cap, out_len);
}

int weft__e2e_open(weft_e2e *e, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                   size_t *out_len, int *final)
{
    return pr_e2e_pull(&e->rx, in, len, out, cap, out_len, final);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

int weft__e2e_resume_mac(const weft_e2e *e, int role, uint64_t circuit, uint64_t ack_seq,
                         const uint8_t nonce[16], uint8_t mac[32])
{
    static const char tag[] = "weft-resume-v1";
    const uint8_t *ctx_tx = e->role == WEFT_E2E_CLIENT ? e->keys.tx : e->keys.rx;
    const uint8_t *srv_tx = e->role == WEFT_E2E_CLIENT ? e->keys.rx : e->keys.tx;
    uint8_t k[32], rk[32], msg[sizeof(tag) - 1 + 24 + 16];
    crypto_generichash_state st;
    int r = WEFT_ECRYPTO;

    if (crypto_generichash_init(&st, NULL, 0, sizeof(k)) != 0 ||
        crypto_generichash_update(&st, ctx_tx, PR_E2E_KEY_BYTES) != 0 ||
        crypto_generichash_update(&st, srv_tx, PR_E2E_KEY_BYTES) != 0 ||
        crypto_generichash_final(&st, k, sizeof(k)) != 0 ||
        crypto_kdf_derive_from_key(rk, sizeof(rk), 1, "weftrsm1", k) != 0)
        goto out;
    memcpy(msg, tag, sizeof(tag) - 1);
    put_be64(msg + sizeof(tag) - 1, (uint64_t)role);
    put_be64(msg + sizeof(tag) - 1 + 8, circuit);
    put_be64(msg + sizeof(tag) - 1 + 16, ack_seq);
    memcpy(msg + sizeof(tag) - 1 + 24, nonce, 16);
    if (crypto_generichash(mac, 32, msg, sizeof(msg), rk, sizeof(rk)) == 0)
        r = 0;
out:
    sodium_memzero(k, sizeof(k));
    sodium_memzero(rk, sizeof(rk));
    return r;
}
