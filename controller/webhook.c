/* One webhook POST, blocking (a thread of libuv's pool runs it): plain HTTP
 * to http://HOST:PORT/PATH, one request per connection, the answer's status
 * read with llhttp; https://HOST[:PORT]/PATH through proto/httpc, verified
 * with the webhook's own CA or else the system trust store, TLS 1.3 or 1.2
 * (docs/policies.md "Events"). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#include "controller/events.h"
#include "proto/httpc.h"
#include "weft/errors.h"

typedef struct {
    char host[256], port[8], path[768];
} url_parts;

static int split_url(const char *url, url_parts *u)
{
    const char *hp = url + 7, *slash, *colon;
    size_t hlen;

    if (strncmp(url, "http://", 7) != 0)
        return WEFT_EINVAL;
    slash = strchr(hp, '/');
    hlen = slash ? (size_t)(slash - hp) : strlen(hp);
    snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
    if (hlen == 0 || hlen >= sizeof(u->host))
        return WEFT_EINVAL;
    if (hp[0] == '[') { /* [v6]:port */
        const char *end = memchr(hp, ']', hlen);
        if (end == NULL)
            return WEFT_EINVAL;
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(end - hp - 1), hp + 1);
        colon = end + 1 < hp + hlen && end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = memchr(hp, ':', hlen);
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(colon ? (size_t)(colon - hp) : hlen), hp);
    }
    if (colon)
        snprintf(u->port, sizeof(u->port), "%.*s", (int)(hp + hlen - colon - 1), colon + 1);
    else
        snprintf(u->port, sizeof(u->port), "80");
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for ev until the deadline; 0 ready, negative timeout. */
static int wait_fd(int fd, short ev, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = ev};
    long long left = deadline - now_ms();

    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
        return WEFT_ETIMEDOUT;
    return 0;
}

static int dial(const url_parts *u, long long deadline, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *a;
    int fd = -1;

    if (getaddrinfo(u->host, u->port, &hints, &res) != 0) {
        snprintf(err, errcap, "cannot resolve %s", u->host);
        return WEFT_EREFUSED;
    }
    for (a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 &&
            (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) < 0)) {
            close(fd);
            fd = -1;
            continue;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errcap, "cannot connect to %s:%s", u->host, u->port);
    return fd < 0 ? WEFT_EREFUSED : fd;
}

static int send_all(int fd, const char *p, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return WEFT_ETIMEDOUT;
            continue;
        }
        if (n <= 0)
            return WEFT_ECLOSED;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int on_headers_done(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED; /* the status is all we need */
}

static int read_status(int fd, long long deadline, int *status)
{
    char buf[4096];
    llhttp_settings_t s;
    llhttp_t p;

    llhttp_settings_init(&s);
    s.on_headers_complete = on_headers_done;
    llhttp_init(&p, HTTP_RESPONSE, &s);
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline) < 0)
            return WEFT_ETIMEDOUT;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return WEFT_ECLOSED;
        llhttp_errno_t e = llhttp_execute(&p, buf, (size_t)n);
        if (e == HPE_PAUSED) {
            *status = p.status_code;
            return 0;
        }
        if (e != HPE_OK)
            return WEFT_EPROTO;
    }
}

/* What httpc's error sentences say of a webhook target: what to do when its
 * certificate is not trusted depends on whether the webhook has a CA. */
static void target_hints(const ctl_webhook_target *t, char *untrusted, size_t cap,
                         pr_httpc_hints *h)
{
    const char *name = t->name ? t->name : "NAME";

    if (t->ca)
        snprintf(untrusted, cap,
                 "it does not chain to the webhook's own CA; give the root CA that issued it "
                 "(and any intermediate the target does not send): weft webhook update %s "
                 "--ca FILE",
                 name);
    else
        snprintf(untrusted, cap,
                 "give the webhook its CA: weft webhook update %s --ca FILE (or "
                 "have the target use a certificate from a CA in the controller's system trust "
                 "store)",
                 name);
    *h = (pr_httpc_hints){
        .peer = "the webhook target",
        .untrusted = untrusted,
        .mismatch = "give the webhook a URL whose host is one of the DNS names or IP addresses "
                    "(subjectAltName) in the target's certificate",
        .other = "check that the webhook target is up and serves HTTPS at that URL (TLS 1.3, "
                 "or 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305)",
    };
}

/* https://HOST[:PORT]/PATH: the host must be named by the certificate, which
 * must chain to the webhook's CA when it has one, else to one the system
 * trusts. TLS 1.2 is allowed here only: a SIEM or a chat service is not a
 * weft process, and every weft-to-weft hop stays TLS 1.3. */
static int post_https(const ctl_webhook_target *t, const char *body, size_t len, int timeout_ms,
                      char *err, size_t errcap)
{
    char untrusted[CTL_NAME_MAX + 192];
    pr_httpc_hints hints;
    pr_httpc_cfg cfg = {.ca_pem = t->ca,
                        .system_ca = t->ca == NULL,
                        .min_tls = PR_HTTPC_TLS12,
                        .hints = &hints,
                        .timeout_ms = timeout_ms > 0 ? timeout_ms : CTL_WEBHOOK_TIMEOUT_MS};
    const char *url = t->url;
    size_t blen = 8; /* after "https://" (the caller checked it) */
    char base[300];
    pr_http_resp resp;
    int rc;

    while (url[blen] != '\0' && url[blen] != '/')
        blen++;
    const char *path = url[blen] == '/' ? url + blen : "/";
    if (blen <= 8 || blen >= sizeof(base)) {
        snprintf(err, errcap, "not an https://HOST[:PORT]/PATH URL");
        return WEFT_EINVAL;
    }
    memcpy(base, url, blen);
    base[blen] = '\0';
    target_hints(t, untrusted, sizeof(untrusted), &hints);
    rc = pr_https_request(base, &cfg, "POST", path, body, len, "application/json",
                          &resp, err, errcap);
    if (rc < 0)
        return rc;
    if (resp.status < 200 || resp.status > 299) {
        snprintf(err, errcap, "answered HTTP %d", resp.status);
        rc = WEFT_EPROTO;
    }
    pr_http_resp_free(&resp);
    return rc;
}

int ctl_webhook_post(const ctl_webhook_target *t, const char *body, size_t len, int timeout_ms,
                     char *err, size_t errcap)
{
    const char *url = t->url;
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : CTL_WEBHOOK_TIMEOUT_MS);
    char head[1200];
    url_parts u;
    int fd, rc, status = 0;

    if (strncmp(url, "https://", 8) == 0)
        return post_https(t, body, len, timeout_ms, err, errcap);
    if (split_url(url, &u) < 0) {
        snprintf(err, errcap, "not an http:// or https:// URL");
        return WEFT_EINVAL;
    }
    if ((fd = dial(&u, deadline, err, errcap)) < 0)
        return fd;
    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: weft-controller\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             u.path, u.host, u.port, len);
    if ((rc = send_all(fd, head, strlen(head), deadline)) < 0 ||
        (rc = send_all(fd, body, len, deadline)) < 0 ||
        (rc = read_status(fd, deadline, &status)) < 0) {
        snprintf(err, errcap, "%s", rc == WEFT_ETIMEDOUT ? "timed out" : "connection failed");
        goto out;
    }
    if (status < 200 || status > 299) {
        snprintf(err, errcap, "answered HTTP %d", status);
        rc = WEFT_EPROTO;
    }
out:
    close(fd);
    return rc;
}
