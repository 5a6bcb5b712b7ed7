/* End-to-end keys of one circuit (docs/dataplane.md, "End-to-end encryption"),
 * on top of proto/e2e.h: the circuit's key pair, keys and both streams in one
 * struct, and the edge's extra check that the peer is an identity of our own
 * network. Every e2e call of libweft goes through here. */
#ifndef WEFT_LIB_E2E_H
#define WEFT_LIB_E2E_H

#include <stddef.h>
#include <stdint.h>

#include "proto/e2e.h"

#define WEFT_E2E_PK_LEN  PR_E2E_KX_BYTES
#define WEFT_E2E_HDR_LEN PR_E2E_HEADER_BYTES
#define WEFT_E2E_ABYTES  PR_E2E_ABYTES
#define WEFT_E2E_SIG_MAX PR_E2E_SIG_MAX

/* The dialler is the kx client, the host the kx server. */
enum weft__e2e_role { WEFT_E2E_CLIENT = PR_E2E_DIALLER, WEFT_E2E_SERVER = PR_E2E_HOST };

typedef struct {
    int role;
    pr_e2e_kx kx;
    pr_e2e_keys keys;
    pr_e2e_stream tx, rx;
} weft_e2e;

/* A fresh key pair for role. */
int weft__e2e_init(weft_e2e *e, int role);
/* Wipes every key. */
void weft__e2e_wipe(weft_e2e *e);
static inline const uint8_t *weft__e2e_pk(const weft_e2e *e)
{
    return e->kx.pk;
}

/* Signs our kx key with key_pem; sig holds WEFT_E2E_SIG_MAX bytes. */
int weft__e2e_sign(const weft_e2e *e, const char *key_pem, const char *service, uint8_t *sig,
                   size_t *sig_len);
/* Checks cert_pem against ca_pem, that it names an identity of the network
 * trust_domain, and its signature over the peer's kx key (peer_role is the
 * far end's role); the identity URI goes to uri. */
int weft__e2e_verify_peer(const char *ca_pem, const char *trust_domain, const char *cert_pem,
                          int peer_role, const uint8_t pk[WEFT_E2E_PK_LEN], const char *service,
                          const uint8_t *sig, size_t sig_len, char *uri, size_t uri_cap);

/* Derives the keys from the peer's kx key and starts our sending stream,
 * writing its header into hdr. */
int weft__e2e_derive(weft_e2e *e, const uint8_t peer_pk[WEFT_E2E_PK_LEN],
                     uint8_t hdr[WEFT_E2E_HDR_LEN]);
/* Starts the receiving stream from the peer's header. */
int weft__e2e_rx_start(weft_e2e *e, const uint8_t *hdr, size_t len);
static inline int weft__e2e_rx_ready(const weft_e2e *e)
{
    return e->rx.started;
}

/* The proof of a resume (docs/dataplane.md, "Re-homing live circuits"):
 * BLAKE2b-256 keyed with rk = KDF(BLAKE2b-256(client_tx || server_tx)) over
 * "weft-resume-v1" || role || circuit || ack_seq (big-endian u64) || nonce.
 * Only the two ends hold the keys it comes from. */
int weft__e2e_resume_mac(const weft_e2e *e, int role, uint64_t circuit, uint64_t ack_seq,
                         const uint8_t nonce[16], uint8_t mac[32]);

/* out needs len + WEFT_E2E_ABYTES bytes; final tags the message FINAL. */
int weft__e2e_seal(weft_e2e *e, const uint8_t *in, size_t len, int final, uint8_t *out, size_t cap,
                   size_t *out_len);
/* WEFT_ECRYPTO for anything forged, reordered or replayed. */
int weft__e2e_open(weft_e2e *e, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                   size_t *out_len, int *final);

#endif
