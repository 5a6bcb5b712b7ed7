/* A small blocking HTTPS/1.1 client for the CLI and for enrolment (one request
 * per connection, Connection: close). OpenSSL for TLS 1.3, llhttp to parse the
 * response. Not for use on an event loop. */
#ifndef PR_HTTPC_H
#define PR_HTTPC_H

#include <stddef.h>

#define PR_HTTPC_MAX_BODY (64 * 1024 * 1024)

typedef struct {
    const char *ca_pem;   /* trust anchor; required unless no_verify */
    const char *cert_pem; /* client certificate, or NULL */
    const char *key_pem;
    int no_verify;        /* only to fetch the CA before pinning it by fingerprint */
    int timeout_ms;       /* connect + whole exchange; 0 = 15000 */
    int system_ca;        /* no ca_pem: verify with the system trust store (OpenSSL's
                           * default paths; SSL_CERT_FILE / SSL_CERT_DIR override them) */
} pr_httpc_cfg;

typedef struct {
    int status;
    char *body; /* NUL-terminated */
    size_t body_len;
    char content_type[128];
    char server_cert_fp[65]; /* SHA-256 of the server's leaf certificate (hex) */
    unsigned retry_after_s;  /* Retry-After in seconds (429, 503); 0 when absent or a date */
} pr_http_resp;

/* base_url: "https://HOST:PORT". Returns 0 when a response (any status) arrived,
 * or a negative error with a sentence in err (e.g. "cannot connect to
 * 127.0.0.1:1280: connection refused; is the controller running?"). */
int pr_https_request(const char *base_url, const pr_httpc_cfg *cfg, const char *method,
                     const char *path, const char *body, size_t body_len,
                     const char *content_type, pr_http_resp *resp, char *err, size_t errcap);
void pr_http_resp_free(pr_http_resp *r);

#endif
