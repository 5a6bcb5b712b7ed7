/* A small blocking HTTPS/1.1 client for the CLI, enrolment and the
 * controller's webhooks (one request per connection, Connection: close).
 * OpenSSL for TLS 1.3 (1.2 on request, for servers outside weft), llhttp to
 * parse the response. The host of the URL must be in the certificate's
 * subjectAltName (DNS or IP; never the CN). Not for use on an event loop. */
#ifndef PR_HTTPC_H
#define PR_HTTPC_H

#include <stddef.h>

#define PR_HTTPC_MAX_BODY (64 * 1024 * 1024)

/* The lowest TLS version a request accepts. Every weft-to-weft hop (the CLI,
 * enrolment, renewal) speaks TLS 1.3 only; TLS 1.2 is for servers outside
 * weft that may not have 1.3 yet (webhook targets: SIEMs, chat, paging). */
#define PR_HTTPC_TLS13 0 /* TLS 1.3 only (the default) */
#define PR_HTTPC_TLS12 1 /* 1.3 preferred, 1.2 allowed with ECDHE and an AEAD cipher only */

/* What the error sentences call the server and tell the user to do. NULL (or
 * a NULL field): the sentences for a weft controller (--controller, the
 * network CA, enrolment). */
typedef struct {
    const char *peer;      /* "the webhook target": whose certificate, who refused */
    const char *untrusted; /* its certificate does not chain to the trust anchors */
    const char *mismatch;  /* its certificate does not name the host of the URL */
    const char *other;     /* unreachable, silent, or not speaking HTTPS as we do */
} pr_httpc_hints;

typedef struct {
    const char *ca_pem;   /* trust anchors (PEM, one or more certificates);
                           * required unless no_verify or system_ca */
    const char *cert_pem; /* client certificate, or NULL */
    const char *key_pem;
    int no_verify;        /* only to fetch the CA before pinning it by fingerprint */
    int timeout_ms;       /* connect + whole exchange; 0 = 15000 */
    int system_ca;        /* no ca_pem: verify with the system trust store (OpenSSL's
                           * default paths; SSL_CERT_FILE / SSL_CERT_DIR override them) */
    int min_tls;          /* PR_HTTPC_TLS13 (0) or PR_HTTPC_TLS12 */
    const pr_httpc_hints *hints; /* NULL: a weft controller's */
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

/* A bundle of trust anchors for ca_pem, as an administrator gives it: every
 * PEM block must be a CERTIFICATE that parses (no key, no CRL, no encrypted
 * header), at least one, in at most PR_HTTPC_CA_MAX bytes of text (comment
 * lines between blocks allowed, control bytes not). 0 and *count set, or
 * WEFT_EINVAL with a sentence in err naming the faulty block. */
#define PR_HTTPC_CA_MAX (256 * 1024)
int pr_httpc_ca_check(const char *pem, size_t len, unsigned *count, char *err, size_t errcap);

/* Appends "?key=value", or "&key=value" when buf (a NUL-terminated path) has a
 * query already, both percent-encoded (RFC 3986: every byte but ALPHA, DIGIT,
 * "-", ".", "_" and "~" becomes %XX). WEFT_ETOOBIG, and buf unchanged, when
 * the result and its NUL would not fit in cap bytes; WEFT_EINVAL for an empty
 * key or a buf not terminated within cap. */
int pr_http_query_add(char *buf, size_t cap, const char *key, const char *value);

/* ---- admission refusals ----
 * A controller over its admission rate answers 429 with Retry-After before it
 * looks at the request (controller/admit.c), so the same request may be sent
 * again: pr_https_request_busy waits the advised seconds (1 when absent; at
 * most wait_max_s) plus up to half as long again and 250 ms of jitter, and
 * asks again, tries times in all. The last answer is returned whatever its
 * status: a 429 after the last try is the caller's to report. */
#define PR_HTTPC_BUSY_TRIES      30
#define PR_HTTPC_BUSY_WAIT_MAX_S 60

typedef struct {
    unsigned tries;      /* attempts in all, the first included; 0 = PR_HTTPC_BUSY_TRIES */
    unsigned wait_max_s; /* the longest single wait; 0 = PR_HTTPC_BUSY_WAIT_MAX_S */
    /* Told before each wait: the attempt refused (from 1), of how many, the
     * server's Retry-After (0: absent) and the wait chosen. NULL: silent. */
    void (*on_busy)(unsigned attempt, unsigned tries, unsigned retry_after_s, unsigned wait_ms,
                    void *data);
    void *data;
} pr_httpc_busy;

typedef struct {
    const char *method;
    const char *path;
    const char *body; /* NULL when body_len is 0 */
    size_t body_len;
    const char *content_type;
} pr_http_req;

/* The wait after a 429 with Retry-After retry_after_s (see above). */
unsigned pr_http_busy_wait_ms(unsigned retry_after_s, unsigned wait_max_s);
/* pr_https_request, asked again after each 429 as described above; busy NULL: the defaults. */
int pr_https_request_busy(const char *base_url, const pr_httpc_cfg *cfg, const pr_httpc_busy *busy,
                          const pr_http_req *req, pr_http_resp *resp, char *err, size_t errcap);

#endif
