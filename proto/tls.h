/* TLS 1.3 over libuv: OpenSSL with memory BIOs on a uv_tcp_t.
 *
 * One pr_tls_ctx per role and credential set (wraps an SSL_CTX); one pr_conn per
 * connection. TLS 1.3 only. Peers are verified against the configured CA; the
 * peer's identity is the URI SAN of its certificate
 * (spiffe://<trust-domain>/<kind>/<id>, see proto/ident.h).
 *
 * Lifecycle (libuv style): on_open(status) once the handshake ends; on failure
 * (status < 0: WEFT_ECERT, WEFT_ECERTEXPIRED, WEFT_EUNTRUSTED, WEFT_ENOCERT,
 * WEFT_ETIMEDOUT, WEFT_ETLS ...) on_close follows. on_close is the last callback;
 * the pr_conn is freed when it returns.
 *
 * Backpressure: pr_conn_write copies into the connection's queue. When the queue
 * passes the high watermark pr_conn_writable() turns false; a forwarder then
 * stops reading its source (pr_conn_read_stop) until on_drain. Writes past the
 * hard limit fail with WEFT_ENOBUFS. */
#ifndef PR_TLS_H
#define PR_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PR_TLS_HIGH_WATER (256 * 1024)
#define PR_TLS_LOW_WATER (64 * 1024)
#define PR_TLS_HARD_LIMIT (4 * 1024 * 1024)

typedef struct pr_tls_ctx pr_tls_ctx;
typedef struct pr_conn pr_conn;

typedef struct {
    int server;               /* 1: accepts connections; 0: dials */
    const char *ca_pem;       /* PEM trust anchors (network CA); required when verifying */
    const char *cert_pem;     /* our certificate chain, PEM; NULL: no certificate (client only) */
    const char *key_pem;      /* our private key, PEM */
    int require_peer_cert;    /* server: refuse clients without a certificate */
    int no_verify;            /* client: skip verification (only to fetch a CA pinned afterwards) */
    unsigned handshake_ms;    /* handshake timeout; 0 = 10000 */
    const char *alpn;         /* optional single ALPN protocol id, e.g. "weft/1" or "http/1.1" */
} pr_tls_cfg;

typedef struct {
    void (*on_open)(pr_conn *c, int status);
    void (*on_read)(pr_conn *c, const uint8_t *data, size_t len);
    void (*on_drain)(pr_conn *c); /* optional: queue fell below the low watermark */
    void (*on_close)(pr_conn *c, int status);
} pr_conn_cbs;

int pr_tls_ctx_new(const pr_tls_cfg *cfg, pr_tls_ctx **out);
void pr_tls_ctx_free(pr_tls_ctx *ctx); /* NULL is a no-op; live conns keep a reference */

/* Accepts one pending connection from a listening uv_tcp_t. */
int pr_conn_accept(pr_tls_ctx *ctx, uv_stream_t *server, const pr_conn_cbs *cbs, void *data,
                   pr_conn **out);
/* Dials addr; sni may be NULL. */
int pr_conn_connect(pr_tls_ctx *ctx, uv_loop_t *loop, const struct sockaddr *addr,
                    const char *sni, const pr_conn_cbs *cbs, void *data, pr_conn **out);

int pr_conn_write(pr_conn *c, const void *data, size_t len);
size_t pr_conn_queued(const pr_conn *c);
int pr_conn_writable(const pr_conn *c);
void pr_conn_read_stop(pr_conn *c);
void pr_conn_read_start(pr_conn *c);

/* Flushes what is queued, sends close_notify, then closes; status reaches on_close. */
void pr_conn_close(pr_conn *c, int status);

void *pr_conn_data(const pr_conn *c);
void pr_conn_set_data(pr_conn *c, void *data);
/* URI SAN of the verified peer certificate, or NULL (no certificate). */
const char *pr_conn_peer_uri(const pr_conn *c);
/* The verified peer certificate (X509 *, owned by the connection) or NULL. */
void *pr_conn_peer_cert(const pr_conn *c);
/* "HOST:PORT" of the remote end. */
const char *pr_conn_peer_addr(const pr_conn *c);

/* Loads PEM trust anchors, our certificate chain and its key into an OpenSSL
 * SSL_CTX (passed as void * so that this header needs no OpenSSL headers);
 * NULL arguments are skipped. Shared with the blocking client (proto/httpc.c).
 * WEFT_ECERT: no certificate in a PEM; WEFT_ECRYPTO: key unreadable or not
 * the certificate's. */
int pr_tls_load_pem(void *ssl_ctx, const char *ca_pem, const char *cert_pem, const char *key_pem);

#endif
