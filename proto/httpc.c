/* Blocking HTTPS/1.1 client: one request per connection. The socket stays
 * non-blocking and every wait goes through poll() against one deadline, so
 * timeout_ms bounds the whole exchange (resolve excepted). */
#include "proto/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "llhttp.h"
#include "proto/errf.h"
#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

#define DEFAULT_TIMEOUT_MS 15000
#define HOST_MAX           256
#define READ_CHUNK         (16 * 1024)
#define HINT_CONTROLLER    "is the controller running? check --controller / WEFT_CONTROLLER"
#define HINT_API           "check that the address is the controller's API"
/* TLS 1.2 for servers outside weft: forward secrecy and AEAD only. */
#define TLS12_CIPHERS      "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

struct httpc {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char host[HOST_MAX];
    char port[8];
    char where[HOST_MAX + 16]; /* "host:port" or "[v6]:port", for messages and Host */
    int host_is_ip;
    int no_verify;
    int min_tls;
    const pr_httpc_hints *hints;
    int sys_errno; /* why the last connect failed */
    int timeout_ms;
    uint64_t deadline;
    int alert; /* last TLS alert received, -1 if none */
    const char *cert_pem; /* our client certificate, or NULL */
    char *err;
    size_t errcap;
    /* response parsing */
    llhttp_t parser;
    llhttp_settings_t settings;
    pr_http_resp *resp;
    size_t body_cap;
    char field[16];
    size_t field_len;
    int field_long;
    int in_ct;
    size_t ct_len;
    int in_ra; /* Retry-After: its value, digits only, kept until the headers end */
    char ra[12];
    size_t ra_len;
    int ra_bad;
    int complete;
    int toobig;
};

static void seterr(struct httpc *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void seterr(struct httpc *h, const char *fmt, ...)
{
    va_list ap;

    if (!h->err || h->errcap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(h->err, h->errcap, fmt, ap);
    va_end(ap);
}

/* Who the server is in a sentence, and what to do: the caller's words, or a
 * weft controller's. */
static const char *peer(const struct httpc *h)
{
    return h->hints && h->hints->peer ? h->hints->peer : "the server";
}

static const char *other_hint(const struct httpc *h, const char *controller)
{
    return h->hints && h->hints->other ? h->hints->other : controller;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int remaining_ms(const struct httpc *h)
{
    uint64_t now = now_ms();

    return now >= h->deadline ? 0 : (int)(h->deadline - now);
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(struct httpc *h, short events)
{
    struct pollfd p = {.fd = h->fd, .events = events};
    int r;

    do {
        int left = remaining_ms(h);
        if (left == 0)
            return WEFT_ETIMEDOUT;
        r = poll(&p, 1, left);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return WEFT_EIO;
    return r == 0 ? WEFT_ETIMEDOUT : 0;
}

/* ---- URL ---- */

static int copy_host(struct httpc *h, const char *s, size_t n)
{
    if (n == 0 || n >= sizeof(h->host))
        return WEFT_EINVAL;
    memcpy(h->host, s, n);
    h->host[n] = '\0';
    return 0;
}

static int parse_port(struct httpc *h, const char *s)
{
    char *end;
    unsigned long p;

    if (*s == '\0' || (s[0] == '/' && s[1] == '\0')) {
        snprintf(h->port, sizeof(h->port), "443");
        return 0;
    }
    if (*s != ':')
        return WEFT_EINVAL;
    p = strtoul(s + 1, &end, 10);
    if (end == s + 1 || p == 0 || p > 65535 || (*end != '\0' && strcmp(end, "/") != 0))
        return WEFT_EINVAL;
    snprintf(h->port, sizeof(h->port), "%lu", p);
    return 0;
}

/* "https://HOST[:PORT][/]" with HOST a name, an IPv4 address or "[IPv6]". */
static int parse_url(struct httpc *h, const char *url)
{
    const char *p, *end;
    unsigned char tmp[sizeof(struct in6_addr)];
    int ret;

    if (strncasecmp(url, "https://", 8) != 0)
        return WEFT_EINVAL;
    p = url + 8;
    if (*p == '[') {
        if (!(end = strchr(p, ']')) || (ret = copy_host(h, p + 1, (size_t)(end - p - 1))) < 0)
            return WEFT_EINVAL;
        if (inet_pton(AF_INET6, h->host, tmp) != 1)
            return WEFT_EINVAL;
        end++;
    } else {
        end = p + strcspn(p, ":/");
        if ((ret = copy_host(h, p, (size_t)(end - p))) < 0)
            return ret;
    }
    if ((ret = parse_port(h, end)) < 0)
        return ret;
    h->host_is_ip = inet_pton(AF_INET, h->host, tmp) == 1 || inet_pton(AF_INET6, h->host, tmp) == 1;
    snprintf(h->where, sizeof(h->where), strchr(h->host, ':') ? "[%s]:%s" : "%s:%s", h->host,
             h->port);
    return 0;
}

/* ---- TCP ---- */

static int connect_one(struct httpc *h, const struct addrinfo *ai)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    int ret;

    h->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (h->fd < 0)
        return WEFT_EIO;
    /* Head and body leave as separate TLS records: without this, Nagle holds
     * the body back until the server's delayed ACK (about 40 ms a request). */
    (void)setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    if (connect(h->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        soerr = errno;
    else if ((ret = wait_fd(h, POLLOUT)) < 0)
        return ret;
    else if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0)
        return 0;
    h->sys_errno = soerr;
    return soerr == ECONNREFUSED ? WEFT_EREFUSED : soerr == ETIMEDOUT ? WEFT_ETIMEDOUT : WEFT_EIO;
}

static int dial(struct httpc *h)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL, *ai;
    int ret = WEFT_EIO;
    int gai = getaddrinfo(h->host, h->port, &hints, &res);

    if (gai != 0) {
        seterr(h, "cannot resolve %s: %s; %s", h->host, gai_strerror(gai),
               other_hint(h, "check --controller / WEFT_CONTROLLER"));
        return WEFT_EADDR;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if ((ret = connect_one(h, ai)) == 0)
            break;
        close(h->fd);
        h->fd = -1;
    }
    freeaddrinfo(res);
    if (ret == WEFT_EREFUSED)
        seterr(h, "cannot connect to %s: connection refused; %s", h->where,
               other_hint(h, HINT_CONTROLLER));
    else if (ret == WEFT_ETIMEDOUT)
        seterr(h, "cannot connect to %s: no answer within %d ms; %s", h->where, h->timeout_ms,
               other_hint(h, "check the address and that the controller is reachable"));
    else if (ret < 0)
        seterr(h, "cannot connect to %s: %s; %s", h->where,
               strerror(h->sys_errno ? h->sys_errno : EIO), other_hint(h, HINT_CONTROLLER));
    return ret;
}

/* ---- TLS ---- */

static void info_cb(const SSL *ssl, int where, int ret)
{
    struct httpc *h = SSL_get_app_data(ssl);

    if (h && (where & SSL_CB_READ_ALERT))
        h->alert = ret & 0xff;
}

/* TLS 1.3 only, unless the caller allows 1.2 for a server outside weft: then
 * ECDHE key exchange and AEAD ciphers only, no renegotiation; 1.3 is still
 * what we offer first. */
static int set_versions(SSL_CTX *ctx, int min_tls)
{
    if (min_tls != PR_HTTPC_TLS12)
        return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 ? 0 : WEFT_ETLS;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1)
        return WEFT_ETLS;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    return 0;
}

static int setup_ctx(struct httpc *h, const pr_httpc_cfg *cfg)
{
    int ret;

    h->ctx = SSL_CTX_new(TLS_client_method());
    if (!h->ctx)
        return WEFT_ENOMEM;
    if (set_versions(h->ctx, cfg->min_tls) < 0)
        return WEFT_ETLS;
    /* A truncated body is caught by the HTTP framing, not by close_notify. */
    SSL_CTX_set_options(h->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(h->ctx, cfg->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    ret = pr_tls_load_pem(h->ctx, cfg->no_verify ? NULL : cfg->ca_pem, cfg->cert_pem,
                          cfg->key_pem);
    if (ret == 0 && !cfg->no_verify && cfg->ca_pem == NULL && cfg->system_ca &&
        SSL_CTX_set_default_verify_paths(h->ctx) != 1) {
        seterr(h, "cannot load the system trust store; check SSL_CERT_FILE or the CA bundle");
        return WEFT_ETLS;
    }
    if (ret < 0)
        seterr(h, "cannot load %s: %s; check the identity file",
               ret == WEFT_ECRYPTO ? "the private key" : "the certificates", weft_strerror(ret));
    return ret;
}

/* The host we dialled must be named by the certificate's subjectAltName (a
 * DNS name or an IP address); its CN is never taken for a name, and a
 * wildcard covers one whole label only ("*.example.com", not "w*.example.com"). */
static int setup_ssl(struct httpc *h)
{
    X509_VERIFY_PARAM *vp;

    h->ssl = SSL_new(h->ctx);
    if (!h->ssl || SSL_set_fd(h->ssl, h->fd) != 1)
        return WEFT_ENOMEM;
    SSL_set_app_data(h->ssl, h);
    SSL_set_info_callback(h->ssl, info_cb);
    vp = SSL_get0_param(h->ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                            X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (h->host_is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(vp, h->host) == 1 ? 0 : WEFT_EINVAL;
    if (SSL_set_tlsext_host_name(h->ssl, h->host) != 1 || SSL_set1_host(h->ssl, h->host) != 1)
        return WEFT_EINVAL;
    return 0;
}

/* Runs an SSL call to completion, polling for what it needs. */
static int ssl_io(struct httpc *h, int r)
{
    int e = SSL_get_error(h->ssl, r);

    if (e == SSL_ERROR_WANT_READ)
        return wait_fd(h, POLLIN);
    if (e == SSL_ERROR_WANT_WRITE)
        return wait_fd(h, POLLOUT);
    if (e == SSL_ERROR_ZERO_RETURN)
        return WEFT_ECLOSED;
    return e == SSL_ERROR_SYSCALL && errno == ECONNRESET ? WEFT_ERESET : WEFT_ETLS;
}

static int verify_error(struct httpc *h)
{
    long v = SSL_get_verify_result(h->ssl);

    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        seterr(h,
               "TLS with %s failed: %s's certificate has expired or is not yet valid; check "
               "the clocks of both machines",
               h->where, peer(h));
        return WEFT_ECERTEXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        seterr(h, "TLS with %s failed: %s's certificate is not valid for %s; %s", h->where, peer(h),
               h->host,
               h->hints && h->hints->mismatch ? h->hints->mismatch
                                              : "use the address the controller's certificate "
                                                "was issued for");
        return WEFT_ECERT;
    default:
        if (h->hints && h->hints->untrusted)
            seterr(h, "TLS with %s failed: %s's certificate is not trusted (%s): %s", h->where,
                   peer(h), X509_verify_cert_error_string(v), h->hints->untrusted);
        else
            seterr(h,
                   "TLS with %s failed: the server's certificate is not from this "
                   "identity's network CA (%s)",
                   h->where, X509_verify_cert_error_string(v));
        return v == X509_V_ERR_CERT_REJECTED ? WEFT_ECERT : WEFT_EUNTRUSTED;
    }
}

/* The server refused our certificate as expired (or not yet valid): say when
 * it expired and what to do, since renewal needs a still-valid one. */
static int expired_cert(struct httpc *h)
{
    int64_t na = 0;
    char when[32] = "an unknown date";
    time_t t;
    struct tm tm;

    if (pr_pki_cert_not_after(h->cert_pem, &na) == 0 && (t = (time_t)na, gmtime_r(&t, &tm)))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (na > 0 && na > (int64_t)time(NULL))
        seterr(h, "TLS with %s failed: the server says this identity's certificate is not valid "
                  "yet or has expired (it expires on %s): check this machine's clock",
               h->where, when);
    else
        seterr(h, "TLS with %s failed: your certificate expired on %s; renew it before it "
                  "expires, or re-enrol: ask the administrator for a new enrolment token",
               h->where, when);
    return WEFT_ECERTEXPIRED;
}

/* No TLS version (or, for TLS 1.2, no cipher suite) both sides speak: the
 * server said so with an alert, or we found it in its answer. */
static int no_common_tls(const struct httpc *h, unsigned long e)
{
    int r = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;

    return h->alert == SSL_AD_PROTOCOL_VERSION || r == SSL_R_UNSUPPORTED_PROTOCOL ||
           r == SSL_R_WRONG_CIPHER_RETURNED || r == SSL_R_NO_PROTOCOLS_AVAILABLE;
}

/* The reason the server gave (an alert) or the one we found. */
static int tls_failure(struct httpc *h, int ret)
{
    if (ret == WEFT_ETIMEDOUT) {
        seterr(h, "no answer from %s within %d ms; %s", h->where, h->timeout_ms,
               other_hint(h, "check that it is a weft controller and that it is not overloaded"));
        return ret;
    }
    if (!h->no_verify && SSL_get_verify_result(h->ssl) != X509_V_OK)
        return verify_error(h);
    if (h->alert == SSL_AD_CERTIFICATE_EXPIRED && h->cert_pem != NULL)
        return expired_cert(h);
    if (no_common_tls(h, ERR_peek_last_error())) {
        seterr(h, "TLS with %s failed: %s does not speak %s (%s); %s", h->where, peer(h),
               h->min_tls == PR_HTTPC_TLS12
                   ? "TLS 1.3, nor TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305"
                   : "TLS 1.3, the only version weft speaks",
               h->alert >= 0 ? SSL_alert_desc_string_long(h->alert) : "no common version",
               other_hint(h, HINT_API));
        return WEFT_ETLS;
    }
    if (h->alert >= 0 && h->alert != SSL_AD_CLOSE_NOTIFY) {
        seterr(h, "TLS with %s failed: %s refused us (%s); %s", h->where, peer(h),
               SSL_alert_desc_string_long(h->alert),
               other_hint(h, "check that this identity is enrolled in the server's network"));
        return h->alert == SSL_AD_CERTIFICATE_EXPIRED ? WEFT_ECERTEXPIRED
               : h->alert == SSL_AD_CERTIFICATE_REQUIRED ? WEFT_ENOCERT
                                                          : WEFT_ECERT;
    }
    seterr(h, "TLS with %s failed: %s; %s", h->where, weft_strerror(ret), other_hint(h, HINT_API));
    return ret;
}

static int tls_connect(struct httpc *h)
{
    int ret = 0, r;

    while ((r = SSL_connect(h->ssl)) != 1)
        if ((ret = ssl_io(h, r)) < 0)
            return tls_failure(h, ret);
    return 0;
}

static void fingerprint(struct httpc *h)
{
    X509 *x = SSL_get0_peer_certificate(h->ssl);
    unsigned char md[32];
    unsigned int n = 0;
    unsigned i;

    if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1 || n != sizeof(md))
        return;
    for (i = 0; i < n; i++)
        snprintf(h->resp->server_cert_fp + 2 * i, 3, "%02x", md[i]);
}

/* ---- request ---- */

/* A server that refuses our certificate sends an alert and closes, which a
 * write in progress sees as a broken pipe: read once more so that the alert,
 * if it arrived, names the reason. */
static void catch_alert(struct httpc *h)
{
    char buf[256];

    if (h->alert < 0)
        (void)SSL_read(h->ssl, buf, sizeof(buf));
}

static int write_all(struct httpc *h, const void *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write(h->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        int ret;

        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        } else if ((ret = ssl_io(h, n)) < 0) {
            catch_alert(h);
            return tls_failure(h, ret);
        }
    }
    return 0;
}

/* Header values come from our callers; CR or LF would split the request. */
static int header_safe(const char *s)
{
    return s && s[strcspn(s, "\r\n")] == '\0';
}

static int send_request(struct httpc *h, const char *method, const char *path, const char *body,
                        size_t body_len, const char *content_type)
{
    char head[1024];
    int n;

    if (!header_safe(method) || !header_safe(path) || path[0] != '/' ||
        (content_type && !header_safe(content_type))) {
        seterr(h, "invalid request: method, path and content type must be single lines");
        return WEFT_EINVAL;
    }
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft\r\nAccept: */*\r\n"
                 "Connection: close\r\nContent-Length: %zu\r\n%s%s%s\r\n",
                 method, path, h->where, body_len, content_type ? "Content-Type: " : "",
                 content_type ? content_type : "", content_type ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head)) {
        seterr(h, "request line too long for %s", path);
        return WEFT_EINVAL;
    }
    if ((n = write_all(h, head, (size_t)n)) < 0)
        return n;
    return body_len ? write_all(h, body, body_len) : 0;
}

/* ---- response ---- */

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    struct httpc *h = p->data;

    if (h->field_len + len >= sizeof(h->field)) {
        h->field_long = 1; /* longer than any header we care about */
        return 0;
    }
    memcpy(h->field + h->field_len, at, len);
    h->field_len += len;
    return 0;
}

static int on_field_done(llhttp_t *p)
{
    struct httpc *h = p->data;

    h->field[h->field_len] = '\0';
    h->in_ct = !h->field_long && strcasecmp(h->field, "content-type") == 0;
    h->in_ra = !h->field_long && strcasecmp(h->field, "retry-after") == 0;
    if (h->in_ra)
        h->ra_len = 0, h->ra_bad = 0;
    h->field_len = 0;
    h->field_long = 0;
    if (h->in_ct)
        h->ct_len = 0;
    return 0;
}

/* Delta-seconds only (RFC 9110 10.2.3); an HTTP-date or anything longer
 * than ten digits is left as "absent" and the caller uses its own backoff. */
static void on_retry_after(struct httpc *h, const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (at[i] == ' ' || at[i] == '\t')
            continue;
        if (at[i] < '0' || at[i] > '9' || h->ra_len >= sizeof(h->ra) - 1) {
            h->ra_bad = 1;
            return;
        }
        h->ra[h->ra_len++] = at[i];
    }
}

static void retry_after_done(struct httpc *h)
{
    unsigned long v;

    if (h->ra_bad || h->ra_len == 0)
        return;
    h->ra[h->ra_len] = '\0';
    v = strtoul(h->ra, NULL, 10);
    h->resp->retry_after_s = v > 86400 ? 86400 : (unsigned)v; /* a day at most */
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    struct httpc *h = p->data;
    size_t room = sizeof(h->resp->content_type) - 1 - h->ct_len;

    if (h->in_ra)
        on_retry_after(h, at, len);
    if (!h->in_ct)
        return 0;
    if (len > room)
        len = room; /* a longer media type is truncated, never overflowed */
    memcpy(h->resp->content_type + h->ct_len, at, len);
    h->ct_len += len;
    h->resp->content_type[h->ct_len] = '\0';
    return 0;
}

static int on_headers_done(llhttp_t *p)
{
    struct httpc *h = p->data;

    h->resp->status = p->status_code;
    retry_after_done(h);
    /* Refuse a declared length over the cap before reading any of it. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > PR_HTTPC_MAX_BODY) {
        h->toobig = 1;
        return -1;
    }
    return 0;
}

static int grow_body(struct httpc *h, size_t need)
{
    size_t cap = h->body_cap ? h->body_cap : 4096;
    char *b;

    while (cap < need)
        cap *= 2;
    if (cap > PR_HTTPC_MAX_BODY + 1)
        cap = PR_HTTPC_MAX_BODY + 1;
    b = realloc(h->resp->body, cap);
    if (!b)
        return -1;
    h->resp->body = b;
    h->body_cap = cap;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct httpc *h = p->data;
    pr_http_resp *r = h->resp;

    if (len > PR_HTTPC_MAX_BODY - r->body_len) {
        h->toobig = 1;
        return -1;
    }
    if (r->body_len + len + 1 > h->body_cap && grow_body(h, r->body_len + len + 1) < 0)
        return -1;
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_complete(llhttp_t *p)
{
    struct httpc *h = p->data;

    h->complete = 1;
    return HPE_PAUSED; /* Connection: close; anything after is not ours */
}

static void init_parser(struct httpc *h)
{
    llhttp_settings_init(&h->settings);
    h->settings.on_header_field = on_field;
    h->settings.on_header_field_complete = on_field_done;
    h->settings.on_header_value = on_value;
    h->settings.on_headers_complete = on_headers_done;
    h->settings.on_body = on_body;
    h->settings.on_message_complete = on_complete;
    llhttp_init(&h->parser, HTTP_RESPONSE, &h->settings);
    h->parser.data = h;
}

static int parse_error(struct httpc *h, llhttp_errno_t e)
{
    if (h->toobig) {
        seterr(h, "response from %s exceeds %d bytes", h->where, PR_HTTPC_MAX_BODY);
        return WEFT_ETOOBIG;
    }
    if (e == HPE_USER) {
        seterr(h, "out of memory reading the response from %s", h->where);
        return WEFT_ENOMEM;
    }
    seterr(h, "malformed HTTP response from %s (%s); %s", h->where, llhttp_errno_name(e),
           other_hint(h, HINT_API));
    return WEFT_EHTTP;
}

static int feed(struct httpc *h, const char *buf, size_t len)
{
    llhttp_errno_t e = len ? llhttp_execute(&h->parser, buf, len) : llhttp_finish(&h->parser);

    if (e == HPE_OK || (e == HPE_PAUSED && h->complete))
        return 0;
    return parse_error(h, e);
}

/* The server closed: complete only if the framing says the body is whole. */
static int end_of_stream(struct httpc *h)
{
    int ret = feed(h, NULL, 0);

    if (ret < 0)
        return ret;
    return h->complete ? 0 : parse_error(h, HPE_INVALID_EOF_STATE);
}

static int read_response(struct httpc *h)
{
    char buf[READ_CHUNK];
    int ret;

    init_parser(h);
    while (!h->complete) {
        int n = SSL_read(h->ssl, buf, sizeof(buf));

        if (n > 0) {
            if ((ret = feed(h, buf, (size_t)n)) < 0)
                return ret;
            continue;
        }
        ret = ssl_io(h, n);
        if (ret == WEFT_ECLOSED)
            return end_of_stream(h);
        if (ret < 0)
            return tls_failure(h, ret);
    }
    return 0;
}

/* ---- entry point ---- */

static void finish(struct httpc *h)
{
    if (h->ssl) {
        SSL_shutdown(h->ssl); /* best effort: the socket is non-blocking */
        SSL_free(h->ssl);
    }
    SSL_CTX_free(h->ctx);
    if (h->fd >= 0)
        close(h->fd);
    ERR_clear_error();
}

static int check_args(struct httpc *h, const char *base_url, const pr_httpc_cfg *cfg,
                      const char *method, const char *path, const char *body, size_t body_len,
                      pr_http_resp *resp)
{
    if (!base_url || !cfg || !method || !path || !resp || (body_len && !body)) {
        seterr(h, "invalid request arguments");
        return WEFT_EINVAL;
    }
    if (!cfg->no_verify && !cfg->ca_pem && !cfg->system_ca) {
        seterr(h, "no CA to verify %s with; the identity file is incomplete", base_url);
        return WEFT_EINVAL;
    }
    if (parse_url(h, base_url) < 0) {
        seterr(h, "invalid controller URL \"%s\": expected https://HOST:PORT", base_url);
        return WEFT_EINVAL;
    }
    return 0;
}

/* A peer that resets the connection while we write must cost us an EPIPE,
 * not the process: SIGPIPE is ignored unless the program installed a handler. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int pr_https_request(const char *base_url, const pr_httpc_cfg *cfg, const char *method,
                     const char *path, const char *body, size_t body_len,
                     const char *content_type, pr_http_resp *resp, char *err, size_t errcap)
{
    struct httpc h = {.fd = -1, .alert = -1, .err = err, .errcap = errcap};
    int ret;

    if (err && errcap)
        err[0] = '\0';
    if (resp)
        memset(resp, 0, sizeof(*resp));
    if ((ret = check_args(&h, base_url, cfg, method, path, body, body_len, resp)) < 0)
        return ret;
    ignore_sigpipe();
    ERR_clear_error(); /* what tls_failure finds there is this request's */
    h.resp = resp;
    h.cert_pem = cfg->cert_pem;
    h.no_verify = cfg->no_verify;
    h.min_tls = cfg->min_tls;
    h.hints = cfg->hints;
    h.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    h.deadline = now_ms() + (uint64_t)h.timeout_ms;
    if ((ret = dial(&h)) < 0 || (ret = setup_ctx(&h, cfg)) < 0)
        goto out;
    if ((ret = setup_ssl(&h)) < 0) {
        seterr(&h, "cannot set up TLS for %s: %s", h.where, weft_strerror(ret));
        goto out;
    }
    if ((ret = tls_connect(&h)) < 0)
        goto out;
    fingerprint(&h);
    if ((ret = send_request(&h, method, path, body, body_len, content_type)) < 0)
        goto out;
    ret = read_response(&h);
out:
    finish(&h);
    if (ret < 0)
        pr_http_resp_free(resp);
    else if (!resp->body && (resp->body = calloc(1, 1)) == NULL)
        ret = WEFT_ENOMEM;
    return ret;
}

void pr_http_resp_free(pr_http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- trust anchors ---- */

/* PEM is text: control bytes mean a DER or binary file. */
static int pem_text(const char *pem, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)pem[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* Block n (from 1): a CERTIFICATE, without headers, whose DER is one
 * certificate and nothing after it. */
static int pem_block(unsigned n, const char *name, const char *header, const unsigned char *der,
                     long len, char *err, size_t errcap)
{
    const unsigned char *p = der;
    X509 *x;

    if (strstr(name, "PRIVATE KEY") != NULL)
        return pr_errf(err, errcap, WEFT_EINVAL,
                       "PEM block %u is a private key: give the CA's "
                       "certificate, and keep keys out of the controller",
                       n);
    if (strcmp(name, PEM_STRING_X509) != 0)
        return pr_errf(err, errcap, WEFT_EINVAL, "PEM block %u is a %.40s, not a CERTIFICATE", n,
                       name);
    if (header[0] != '\0')
        return pr_errf(err, errcap, WEFT_EINVAL,
                       "PEM block %u has headers; a certificate has "
                       "none",
                       n);
    x = d2i_X509(NULL, &p, len);
    X509_free(x);
    if (x == NULL || p != der + len)
        return pr_errf(err, errcap, WEFT_EINVAL, "PEM block %u is not an X.509 certificate", n);
    return 0;
}

/* Why PEM_read_bio stopped: at the end (no more BEGIN lines), or in block n. */
static int pem_end(unsigned n, char *err, size_t errcap)
{
    unsigned long e = ERR_peek_last_error();

    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
        return n > 0 ? 0
                     : pr_errf(err, errcap, WEFT_EINVAL,
                               "no certificate in it (a PEM "
                               "bundle has -----BEGIN CERTIFICATE----- blocks)");
    return pr_errf(err, errcap, WEFT_EINVAL,
                   "PEM block %u is broken (%s): each runs from "
                   "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE----- with base64 "
                   "between",
                   n + 1, ERR_reason_error_string(e) ?: "unreadable");
}

int pr_httpc_ca_check(const char *pem, size_t len, unsigned *count, char *err, size_t errcap)
{
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long dlen = 0;
    unsigned n = 0;
    int ret = 0;
    BIO *b;

    *count = 0;
    if (pem == NULL || len == 0 || len > PR_HTTPC_CA_MAX)
        return pr_errf(err, errcap, WEFT_EINVAL, "a CA bundle is 1 to %d bytes of PEM",
                       PR_HTTPC_CA_MAX);
    if (!pem_text(pem, len))
        return pr_errf(err, errcap, WEFT_EINVAL,
                       "it is not PEM text (DER? convert it with "
                       "openssl x509 -inform der -in FILE)");
    if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL)
        return pr_errf(err, errcap, WEFT_ENOMEM, "out of memory");
    ERR_clear_error();
    while (ret == 0 && PEM_read_bio(b, &name, &header, &der, &dlen) == 1) {
        ret = pem_block(++n, name, header, der, dlen, err, errcap);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
    }
    if (ret == 0)
        ret = pem_end(n, err, errcap);
    BIO_free(b);
    ERR_clear_error();
    if (ret == 0)
        *count = n;
    return ret;
}

/* ---- query strings ---- */

/* RFC 3986 unreserved characters travel as they are; every other byte is %XX. */
static int unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Appends one byte at out[*n], leaving room for the NUL; WEFT_ETOOBIG when full. */
static int put_char(char *out, size_t cap, size_t *n, char ch)
{
    if (*n + 1 >= cap)
        return WEFT_ETOOBIG;
    out[(*n)++] = ch;
    return 0;
}

/* Appends s percent-encoded at out[*n]. */
static int pct_put(const char *s, char *out, size_t cap, size_t *n)
{
    static const char hex[] = "0123456789ABCDEF";
    int r = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p && r == 0; p++) {
        if (unreserved(*p)) {
            r = put_char(out, cap, n, (char)*p);
        } else if (*n + 3 >= cap) {
            r = WEFT_ETOOBIG;
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[*p >> 4];
            out[(*n)++] = hex[*p & 15];
        }
    }
    return r;
}

int pr_http_query_add(char *buf, size_t cap, const char *key, const char *value)
{
    size_t len, n;
    int r;

    if (buf == NULL || key == NULL || value == NULL || key[0] == '\0' ||
        (len = strnlen(buf, cap)) >= cap)
        return WEFT_EINVAL;
    n = len;
    r = put_char(buf, cap, &n, strchr(buf, '?') ? '&' : '?');
    if (r == 0)
        r = pct_put(key, buf, cap, &n);
    if (r == 0)
        r = put_char(buf, cap, &n, '=');
    if (r == 0)
        r = pct_put(value, buf, cap, &n);
    buf[r == 0 ? n : len] = '\0'; /* a query that does not fit leaves buf as it was */
    return r;
}

/* ---- admission refusals (429) ---- */

unsigned pr_http_busy_wait_ms(unsigned retry_after_s, unsigned wait_max_s)
{
    unsigned cap = wait_max_s ? wait_max_s : PR_HTTPC_BUSY_WAIT_MAX_S;
    unsigned s = retry_after_s == 0 ? 1 : (retry_after_s > cap ? cap : retry_after_s);

    /* Spread over half the advised wait again, so that the devices a storm
     * refused together do not come back together. */
    return s * 1000 + randombytes_uniform(s * 500 + 250);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int pr_https_request_busy(const char *base_url, const pr_httpc_cfg *cfg, const pr_httpc_busy *busy,
                          const pr_http_req *req, pr_http_resp *resp, char *err, size_t errcap)
{
    unsigned tries = busy && busy->tries ? busy->tries : PR_HTTPC_BUSY_TRIES, wait;
    int rc;

    for (unsigned attempt = 1;; attempt++) {
        rc = pr_https_request(base_url, cfg, req->method, req->path, req->body, req->body_len,
                              req->content_type, resp, err, errcap);
        if (rc < 0 || resp->status != 429 || attempt >= tries)
            return rc;
        wait = pr_http_busy_wait_ms(resp->retry_after_s, busy ? busy->wait_max_s : 0);
        if (busy && busy->on_busy)
            busy->on_busy(attempt, tries, resp->retry_after_s, wait, busy->data);
        pr_http_resp_free(resp);
        sleep_ms(wait);
    }
}
