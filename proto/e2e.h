/* End-to-end encryption of a circuit (docs/dataplane.md "End-to-end
 * encryption"), shared by the edge library and routers that host services.
 *
 * Set-up: each side makes an X25519 key pair per circuit (crypto_kx; the
 * dialler is the client, the host the server) and signs
 *     "weft-kx-v1" || role (1 byte) || kx_pk (32 bytes) || service name (UTF-8)
 * with its certificate key (ECDSA P-256, SHA-256, DER signature). The far side
 * checks the certificate against the network CA and the signature, then both
 * derive a receive and a transmit key.
 *
 * Data: each direction is one crypto_secretstream_xchacha20poly1305 stream.
 * The payload frame with seq 0 carries only the 24-byte stream header; every
 * later payload frame carries exactly one message. Half-close is an empty
 * message tagged FINAL, sent in a frame with PR_PF_FIN: a stream that ends
 * without it was truncated. No function here allocates per message. */
#ifndef PR_E2E_H
#define PR_E2E_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define PR_E2E_KX_BYTES crypto_kx_PUBLICKEYBYTES           /* 32 */
#define PR_E2E_KEY_BYTES crypto_kx_SESSIONKEYBYTES         /* 32 */
#define PR_E2E_HEADER_BYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES /* 24 */
#define PR_E2E_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES            /* 17 */
#define PR_E2E_SIG_MAX 80       /* DER ECDSA P-256 signatures are at most 72 bytes */
#define PR_E2E_MAX_MSG 65536    /* plaintext bytes per payload frame */
#define PR_E2E_WINDOW (512 * 1024) /* default flow-control window (plaintext bytes) */
#define PR_E2E_SERVICE_MAX 128  /* longest service name that can be signed */

enum pr_e2e_role { PR_E2E_DIALLER = 1, PR_E2E_HOST = 2 };

typedef struct {
    uint8_t pk[PR_E2E_KX_BYTES];
    uint8_t sk[crypto_kx_SECRETKEYBYTES];
} pr_e2e_kx;

typedef struct {
    uint8_t rx[PR_E2E_KEY_BYTES]; /* decrypts what the peer sends */
    uint8_t tx[PR_E2E_KEY_BYTES]; /* encrypts what we send */
} pr_e2e_keys;

/* One direction of a circuit. */
typedef struct {
    crypto_secretstream_xchacha20poly1305_state st;
    int started;  /* header sent (push) or received (pull) */
    int finished; /* FINAL sent or received */
} pr_e2e_stream;

/* A fresh key pair for one circuit. */
int pr_e2e_kx_new(pr_e2e_kx *kx);
/* Wipes the secret key (call once the session keys are derived). */
void pr_e2e_kx_wipe(pr_e2e_kx *kx);

/* Signs our kx public key with the certificate key (PEM). *sig_len <= PR_E2E_SIG_MAX. */
int pr_e2e_sign(const char *key_pem, int role, const uint8_t kx_pk[PR_E2E_KX_BYTES],
                const char *service, uint8_t sig[PR_E2E_SIG_MAX], size_t *sig_len);
/* Checks the peer: cert_pem must chain to ca_pem (WEFT_EUNTRUSTED,
 * WEFT_ECERTEXPIRED, WEFT_ECERT) and sig must be its signature over
 * (role, kx_pk, service) (WEFT_ECRYPTO). If uri_out is not NULL the
 * certificate's URI SAN is copied there (so the caller can check who it is). */
int pr_e2e_verify_peer(const char *cert_pem, size_t cert_len, const char *ca_pem, int role,
                       const uint8_t kx_pk[PR_E2E_KX_BYTES], const char *service,
                       const uint8_t *sig, size_t sig_len, char *uri_out, size_t uri_cap);

/* Frees the calling thread's cache of the last parsed identity key and CA
 * (pr_e2e_sign and pr_e2e_verify_peer keep them between calls). */
void pr_e2e_cache_clear(void);
/* Derives rx/tx keys; role is our own role (dialler = kx client). WEFT_ECRYPTO
 * for a bad peer key. */
int pr_e2e_keys_derive(int role, const pr_e2e_kx *ours, const uint8_t peer_pk[PR_E2E_KX_BYTES],
                       pr_e2e_keys *keys);

/* Starts the sending stream: header[] goes in the seq 0 payload frame. */
int pr_e2e_push_start(pr_e2e_stream *s, const uint8_t key[PR_E2E_KEY_BYTES],
                      uint8_t header[PR_E2E_HEADER_BYTES]);
/* Encrypts msg (len <= PR_E2E_MAX_MSG; 0 only with final) into out, which
 * needs len + PR_E2E_ABYTES bytes. final tags the message FINAL (half-close);
 * nothing may be pushed after it. */
int pr_e2e_push(pr_e2e_stream *s, const uint8_t *msg, size_t len, int final, uint8_t *out,
                size_t cap, size_t *out_len);
/* Starts the receiving stream from the peer's seq 0 body (WEFT_EPROTO if it is
 * not exactly a header). */
int pr_e2e_pull_start(pr_e2e_stream *s, const uint8_t key[PR_E2E_KEY_BYTES], const uint8_t *hdr,
                      size_t hdr_len);
/* Decrypts one frame body into out (cap >= in_len - PR_E2E_ABYTES). *final is
 * set when the peer half-closed. WEFT_ECRYPTO: forged, altered, reordered or
 * replayed; WEFT_EPROTO: data after FINAL or a body too short to be a message. */
int pr_e2e_pull(pr_e2e_stream *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                size_t *out_len, int *final);

#endif
