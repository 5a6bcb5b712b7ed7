/* End-to-end keys of one circuit (docs/dataplane.md, "End-to-end encryption"):
 * an X25519 key pair per circuit, the public key signed with the identity's
 * certificate key, and one secretstream per direction.
 *
 * This is libweft's seam to the shared e2e code: every call the edge makes
 * goes through these functions, so that switching to proto/e2e.h touches this
 * file and e2e.c only. */
#ifndef WEFT_LIB_E2E_H
#define WEFT_LIB_E2E_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_E2E_PK_LEN crypto_kx_PUBLICKEYBYTES
#define WEFT_E2E_HDR_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define WEFT_E2E_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define WEFT_E2E_SIG_MAX 80 /* DER ECDSA P-256 signatures are at most 72 bytes */

/* The dialler is the kx client, the host the kx server. */
enum weft__e2e_role { WEFT_E2E_CLIENT = 1, WEFT_E2E_SERVER = 2 };

typedef struct {
    int role;
    uint8_t pk[WEFT_E2E_PK_LEN];
    uint8_t sk[crypto_kx_SECRETKEYBYTES];
    uint8_t rx_key[crypto_kx_SESSIONKEYBYTES];
    uint8_t tx_key[crypto_kx_SESSIONKEYBYTES];
    crypto_secretstream_xchacha20poly1305_state tx;
    crypto_secretstream_xchacha20poly1305_state rx;
    int rx_ready; /* the peer's stream header arrived */
} weft_e2e;

/* A fresh key pair for role. */
void weft__e2e_init(weft_e2e *e, int role);
/* Wipes every key. */
void weft__e2e_wipe(weft_e2e *e);

/* Signs "weft-kx-v1" || role || pk || service with key_pem (ECDSA P-256).
 * sig must hold WEFT_E2E_SIG_MAX bytes. */
int weft__e2e_sign(const char *key_pem, int role, const uint8_t pk[WEFT_E2E_PK_LEN],
                  const char *service, uint8_t *sig, size_t *sig_len);
/* Checks cert_pem against ca_pem, that it names an identity of the network
 * trust_domain, and the signature over the peer's kx key; the identity URI goes
 * to uri. WEFT_EUNTRUSTED/WEFT_ECERT... for the certificate, WEFT_ECRYPTO for
 * the signature. */
int weft__e2e_verify_peer(const char *ca_pem, const char *trust_domain, const char *cert_pem,
                         int peer_role, const uint8_t pk[WEFT_E2E_PK_LEN], const char *service,
                         const uint8_t *sig, size_t sig_len, char *uri, size_t uri_cap);

/* Derives the session keys from the peer's kx key and starts our sending
 * stream, writing its header into hdr. */
int weft__e2e_derive(weft_e2e *e, const uint8_t peer_pk[WEFT_E2E_PK_LEN],
                    uint8_t hdr[WEFT_E2E_HDR_LEN]);
/* Starts the receiving stream from the peer's header. */
int weft__e2e_rx_start(weft_e2e *e, const uint8_t *hdr, size_t len);

/* out needs len + WEFT_E2E_ABYTES bytes; final tags the message FINAL. */
int weft__e2e_seal(weft_e2e *e, const uint8_t *in, size_t len, int final, uint8_t *out,
                  size_t *out_len);
/* out needs len - WEFT_E2E_ABYTES bytes; *final is set for a FINAL message.
 * WEFT_ECRYPTO for anything forged, reordered or truncated. */
int weft__e2e_open(weft_e2e *e, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
                  int *final);

#endif
