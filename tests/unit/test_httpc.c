/* pr_https_request against a small HTTPS server (pr_tls on a libuv loop in a
 * thread) on loopback: response framing, headers, body cap, certificate and
 * host checks, and the error sentences a user reads. Servers outside weft
 * (TLS 1.2, their own CA, the caller's sentences) against an OpenSSL server
 * whose versions and ciphers each test picks (tls_srv.h); and the CA bundle
 * check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "llhttp.h"
#include "proto/httpc.h"
#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

#include "tls_srv.h"

#define CLIENT_URI "spiffe://net/identity/admin"

struct cred {
    char *cert;
    char *key;
};

static pr_ca ca_net, ca_other;
static struct cred srv_cred, other_name_cred, cli_cred;
static struct cred other_ca_cred; /* from ca_other, for 127.0.0.1 */
static struct cred cn_only_cred;  /* CN=localhost, no subjectAltName */

/* ---- the server ---- */

enum { L_GOOD, L_WRONG_NAME, L_REQUIRE, L_V6, L_COUNT };

struct listener {
    uv_tcp_t tcp;
    pr_tls_ctx *ctx;
    int port;
    int up;
};

struct request {
    llhttp_t parser;
    char path[512];
    char field[32];
    char host[128];
    char ct[128];
    char body[1024];
    size_t body_len;
    char *value; /* header value being collected, or NULL */
    size_t value_cap;
};

static struct {
    uv_loop_t loop;
    uv_async_t stop;
    struct listener l[L_COUNT];
    pthread_t thread;
    int conns_open, conns_closed;
    int busy_calls; /* requests /busy answered, on the server thread */
} S;

static llhttp_settings_t req_settings;

static void append(char *dst, size_t cap, const char *at, size_t len)
{
    size_t have = strlen(dst);

    if (len > cap - 1 - have)
        len = cap - 1 - have;
    memcpy(dst + have, at, len);
    dst[have + len] = '\0';
}

static int rq_url(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = p->data;

    append(r->path, sizeof(r->path), at, len);
    return 0;
}

static int rq_field(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = p->data;

    append(r->field, sizeof(r->field), at, len);
    return 0;
}

static int rq_field_done(llhttp_t *p)
{
    struct request *r = p->data;

    r->value = NULL;
    if (strcasecmp(r->field, "host") == 0)
        r->value = r->host, r->value_cap = sizeof(r->host);
    else if (strcasecmp(r->field, "content-type") == 0)
        r->value = r->ct, r->value_cap = sizeof(r->ct);
    r->field[0] = '\0';
    return 0;
}

static int rq_value(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = p->data;

    if (r->value)
        append(r->value, r->value_cap, at, len);
    return 0;
}

static int rq_body(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = p->data;

    if (len > sizeof(r->body) - r->body_len)
        return -1;
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

/* Pausing hands the complete request to srv_read, which answers it. */
static int rq_complete(llhttp_t *p)
{
    return HPE_PAUSED;
}

static void send_str(pr_conn *c, const char *s)
{
    assert_int_equal(pr_conn_write(c, s, strlen(s)), 0);
}

static void send_fmt(pr_conn *c, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    send_str(c, buf);
}

static void answer_echo(pr_conn *c, struct request *r)
{
    send_fmt(c, "HTTP/1.1 201 Created\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%s|",
             r->ct, strlen(r->host) + 1 + r->body_len, r->host);
    assert_int_equal(pr_conn_write(c, r->body, r->body_len), 0);
}

static void answer_big(pr_conn *c)
{
    static char junk[64 * 1024];

    send_fmt(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", PR_HTTPC_MAX_BODY + 1);
    assert_int_equal(pr_conn_write(c, junk, sizeof(junk)), 0);
}

static void answer(pr_conn *c, struct request *r)
{
    const char *uri = pr_conn_peer_uri(c);

    if (strcmp(r->path, "/cl") == 0)
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                    "Connection: close\r\n\r\n{\"ok\":true}");
    else if (strcmp(r->path, "/chunked") == 0)
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n7\r\nhello, \r\n5\r\nworld\r\n0\r\n\r\n");
    else if (strcmp(r->path, "/echo") == 0)
        answer_echo(c, r);
    else if (strcmp(r->path, "/whoami") == 0)
        send_fmt(c, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(uri ? uri : "-"),
                 uri ? uri : "-");
    else if (strcmp(r->path, "/big") == 0)
        answer_big(c);
    else if (strcmp(r->path, "/eof") == 0)
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    else if (strcmp(r->path, "/garbage") == 0)
        send_str(c, "220 smtp.example ESMTP ready\r\n");
    else if (strncmp(r->path, "/q?", 3) == 0) /* the raw target, as it arrived */
        send_fmt(c, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(r->path), r->path);
    else if (strcmp(r->path, "/busy") == 0 && ++S.busy_calls < 3)
        send_str(c,
                 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
    else if (strcmp(r->path, "/busy") == 0)
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    else if (strcmp(r->path, "/always-busy") == 0)
        send_str(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n");
    else if (strcmp(r->path, "/truncated") == 0)
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
    else
        send_str(c, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 13\r\n\r\nno such thing");
    pr_conn_close(c, 0);
}

static void srv_open(pr_conn *c, int status)
{
}

static void srv_read(pr_conn *c, const uint8_t *data, size_t len)
{
    struct request *r = pr_conn_data(c);
    llhttp_errno_t e = llhttp_execute(&r->parser, (const char *)data, len);

    if (e == HPE_PAUSED)
        answer(c, r);
    else if (e != HPE_OK)
        pr_conn_close(c, WEFT_EHTTP);
}

static void srv_close(pr_conn *c, int status)
{
    free(pr_conn_data(c));
    S.conns_closed++;
}

static const pr_conn_cbs srv_cbs = {srv_open, srv_read, NULL, srv_close};

static void on_connection(uv_stream_t *l, int status)
{
    struct listener *li = l->data;
    struct request *r = calloc(1, sizeof(*r));
    pr_conn *c;

    assert_non_null(r);
    llhttp_init(&r->parser, HTTP_REQUEST, &req_settings);
    r->parser.data = r;
    assert_int_equal(pr_conn_accept(li->ctx, l, &srv_cbs, r, &c), 0);
    S.conns_open++;
}

static int listen_one(struct listener *li, const char *ip, const struct cred *cr, int require)
{
    pr_tls_cfg cfg = {.server = 1, .ca_pem = ca_net.cert_pem, .cert_pem = cr->cert,
                      .key_pem = cr->key, .require_peer_cert = require};
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    assert_int_equal(pr_tls_ctx_new(&cfg, &li->ctx), 0);
    assert_int_equal(uv_tcp_init(&S.loop, &li->tcp), 0);
    li->tcp.data = li;
    li->up = 1;
    if (strchr(ip, ':'))
        uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss);
    if (uv_tcp_bind(&li->tcp, (struct sockaddr *)&ss, 0) < 0 ||
        uv_listen((uv_stream_t *)&li->tcp, 16, on_connection) < 0)
        return -1; /* no IPv6 here: those tests skip */
    assert_int_equal(uv_tcp_getsockname(&li->tcp, (struct sockaddr *)&ss, &len), 0);
    li->port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sockaddr_in6 */
    return 0;
}

static void stop_cb(uv_async_t *a)
{
    int i;

    for (i = 0; i < L_COUNT; i++)
        if (S.l[i].up)
            uv_close((uv_handle_t *)&S.l[i].tcp, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg)
{
    uv_run(&S.loop, UV_RUN_DEFAULT);
    return NULL;
}

static void issue(const pr_ca *ca, const char *uri, int usage, const char *const *dns,
                  const char *const *ips, struct cred *out)
{
    pr_cert_req req = {.cn = "test", .uri = uri, .dns = dns, .ips = ips, .usage = usage,
                       .not_after = (int64_t)time(NULL) + 3600};

    assert_int_equal(pr_ca_issue(ca, &req, &out->cert, &out->key), 0);
}

static int group_setup(void **state)
{
    static const char *const dns[] = {"localhost", NULL};
    static const char *const ips[] = {"127.0.0.1", "::1", NULL};
    static const char *const other_dns[] = {"controller.example", NULL};

    assert_int_equal(pr_ca_create("net", &ca_net), 0);
    assert_int_equal(pr_ca_create("other", &ca_other), 0);
    issue(&ca_net, "spiffe://net/controller/main", PR_CERT_SERVER, dns, ips, &srv_cred);
    issue(&ca_net, "spiffe://net/controller/main", PR_CERT_SERVER, other_dns, NULL,
          &other_name_cred);
    issue(&ca_net, CLIENT_URI, PR_CERT_CLIENT, NULL, NULL, &cli_cred);
    issue(&ca_other, NULL, PR_CERT_SERVER, NULL, ips, &other_ca_cred);
    {
        pr_cert_req req = {
            .cn = "localhost", .usage = PR_CERT_SERVER, .not_after = (int64_t)time(NULL) + 3600};
        assert_int_equal(pr_ca_issue(&ca_net, &req, &cn_only_cred.cert, &cn_only_cred.key), 0);
    }

    llhttp_settings_init(&req_settings);
    req_settings.on_url = rq_url;
    req_settings.on_header_field = rq_field;
    req_settings.on_header_field_complete = rq_field_done;
    req_settings.on_header_value = rq_value;
    req_settings.on_body = rq_body;
    req_settings.on_message_complete = rq_complete;

    assert_int_equal(uv_loop_init(&S.loop), 0);
    assert_int_equal(uv_async_init(&S.loop, &S.stop, stop_cb), 0);
    assert_int_equal(listen_one(&S.l[L_GOOD], "127.0.0.1", &srv_cred, 0), 0);
    assert_int_equal(listen_one(&S.l[L_WRONG_NAME], "127.0.0.1", &other_name_cred, 0), 0);
    assert_int_equal(listen_one(&S.l[L_REQUIRE], "127.0.0.1", &srv_cred, 1), 0);
    listen_one(&S.l[L_V6], "::1", &srv_cred, 0);
    assert_int_equal(pthread_create(&S.thread, NULL, server_main, NULL), 0);
    return 0;
}

static void cred_free(struct cred *c)
{
    free(c->cert);
    free(c->key);
}

static int group_teardown(void **state)
{
    int i;

    uv_async_send(&S.stop);
    pthread_join(S.thread, NULL);
    assert_int_equal(uv_loop_close(&S.loop), 0);
    assert_int_equal(S.conns_open, S.conns_closed);
    for (i = 0; i < L_COUNT; i++)
        pr_tls_ctx_free(S.l[i].ctx);
    cred_free(&srv_cred);
    cred_free(&other_name_cred);
    cred_free(&cli_cred);
    cred_free(&other_ca_cred);
    cred_free(&cn_only_cred);
    pr_ca_free(&ca_net);
    pr_ca_free(&ca_other);
    return 0;
}

/* ---- the client side ---- */

static char url_buf[128];

static const char *url(int which)
{
    snprintf(url_buf, sizeof(url_buf), "https://%s:%d",
             which == L_V6 ? "[::1]" : "127.0.0.1", S.l[which].port);
    return url_buf;
}

static pr_httpc_cfg verified(void)
{
    pr_httpc_cfg c = {.ca_pem = ca_net.cert_pem, .timeout_ms = 5000};
    return c;
}

static int get(int which, const pr_httpc_cfg *cfg, const char *path, pr_http_resp *r,
               char *err, size_t cap)
{
    return pr_https_request(url(which), cfg, "GET", path, NULL, 0, NULL, r, err, cap);
}

static void test_content_length(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256], fp[65];

    assert_int_equal(get(L_GOOD, &cfg, "/cl", &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, 11);
    assert_string_equal(r.body, "{\"ok\":true}");
    assert_int_equal(pr_pki_fingerprint(srv_cred.cert, fp), 0);
    assert_string_equal(r.server_cert_fp, fp);
    pr_http_resp_free(&r);
    assert_null(r.body);
}

static void test_chunked(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_GOOD, &cfg, "/chunked", &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    assert_string_equal(r.body, "hello, world");
    assert_int_equal(r.body_len, 12);
    pr_http_resp_free(&r);
}

static void test_post_echo_and_host(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256], want[256];
    const char body[] = "{\"name\":\"dev1\"}";

    assert_int_equal(pr_https_request(url(L_GOOD), &cfg, "POST", "/echo", body, strlen(body),
                                      "application/json", &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "application/json");
    snprintf(want, sizeof(want), "127.0.0.1:%d|%s", S.l[L_GOOD].port, body);
    assert_string_equal(r.body, want);
    pr_http_resp_free(&r);
}

static void test_status_and_read_to_eof(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_GOOD, &cfg, "/nothing-here", &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "no such thing");
    pr_http_resp_free(&r);
    assert_int_equal(get(L_GOOD, &cfg, "/eof", &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "until the end");
    assert_string_equal(r.content_type, "text/plain");
    pr_http_resp_free(&r);
}

static void test_malformed_and_truncated(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_GOOD, &cfg, "/garbage", &r, err, sizeof(err)), WEFT_EHTTP);
    assert_non_null(strstr(err, "malformed HTTP response"));
    assert_null(r.body);
    assert_int_equal(get(L_GOOD, &cfg, "/truncated", &r, err, sizeof(err)), WEFT_EHTTP);
    assert_null(r.body);
}

static void test_body_cap(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_GOOD, &cfg, "/big", &r, err, sizeof(err)), WEFT_ETOOBIG);
    assert_non_null(strstr(err, "exceeds"));
    assert_null(r.body);
}

static void test_client_cert(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_GOOD, &cfg, "/whoami", &r, err, sizeof(err)), 0);
    assert_string_equal(r.body, "-");
    pr_http_resp_free(&r);
    cfg.cert_pem = cli_cred.cert;
    cfg.key_pem = cli_cred.key;
    assert_int_equal(get(L_REQUIRE, &cfg, "/whoami", &r, err, sizeof(err)), 0);
    assert_string_equal(r.body, CLIENT_URI);
    pr_http_resp_free(&r);
}

static void test_client_cert_missing(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    assert_int_equal(get(L_REQUIRE, &cfg, "/whoami", &r, err, sizeof(err)), WEFT_ENOCERT);
    assert_non_null(strstr(err, "refused"));
}

static void test_wrong_ca(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];

    cfg.ca_pem = ca_other.cert_pem;
    assert_int_equal(get(L_GOOD, &cfg, "/cl", &r, err, sizeof(err)), WEFT_EUNTRUSTED);
    assert_non_null(strstr(err, "not from this identity's network CA"));
    assert_null(r.body);
}

static void test_no_verify_pins_fingerprint(void **state)
{
    pr_httpc_cfg cfg = {.no_verify = 1, .timeout_ms = 5000};
    pr_http_resp r;
    char err[256], fp[65];

    assert_int_equal(get(L_WRONG_NAME, &cfg, "/cl", &r, err, sizeof(err)), 0);
    assert_int_equal(pr_pki_fingerprint(other_name_cred.cert, fp), 0);
    assert_string_equal(r.server_cert_fp, fp);
    pr_http_resp_free(&r);
}

static void test_host_checked(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256], u[64];

    /* signed by the right CA, but for another name */
    assert_int_equal(get(L_WRONG_NAME, &cfg, "/cl", &r, err, sizeof(err)), WEFT_ECERT);
    assert_non_null(strstr(err, "not valid for 127.0.0.1"));
    /* a DNS name in the certificate works */
    snprintf(u, sizeof(u), "https://localhost:%d/", S.l[L_GOOD].port);
    assert_int_equal(pr_https_request(u, &cfg, "GET", "/cl", NULL, 0, NULL, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.status, 200);
    pr_http_resp_free(&r);
}

static void test_ipv6_literal(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256], want[256];

    if (!S.l[L_V6].port)
        skip();
    assert_int_equal(pr_https_request(url(L_V6), &cfg, "POST", "/echo", "x", 1, "text/plain", &r,
                                      err, sizeof(err)),
                     0);
    snprintf(want, sizeof(want), "[::1]:%d|x", S.l[L_V6].port);
    assert_string_equal(r.body, want);
    pr_http_resp_free(&r);
}

static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void test_connection_refused(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256], u[64];

    snprintf(u, sizeof(u), "https://127.0.0.1:%d", closed_port());
    assert_int_equal(pr_https_request(u, &cfg, "GET", "/", NULL, 0, NULL, &r, err, sizeof(err)),
                     WEFT_EREFUSED);
    assert_non_null(strstr(err, "connection refused"));
    assert_non_null(strstr(err, "is the controller running?"));
}

static void test_timeout(void **state)
{
    pr_httpc_cfg cfg = verified();
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    pr_http_resp r;
    char err[256], u[64];
    struct timespec t0, t1;
    long ms;

    /* listens, so the kernel accepts the TCP connection, but never speaks TLS */
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(u, sizeof(u), "https://127.0.0.1:%d", ntohs(a.sin_port));
    cfg.timeout_ms = 300;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pr_https_request(u, &cfg, "GET", "/", NULL, 0, NULL, &r, err, sizeof(err)),
                     WEFT_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 250 && ms < 3000);
    assert_non_null(strstr(err, "within 300 ms"));
}

static void test_bad_urls_and_requests(void **state)
{
    static const char *const bad[] = {"http://127.0.0.1:1280", "ftp://x", "127.0.0.1:1280",
                                      "https://", "https://[::1", "https://[nothost]:1",
                                      "https://h:0", "https://h:65536", "https://h:12x",
                                      "https://h:1/path"};
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char err[256];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            pr_https_request(bad[i], &cfg, "GET", "/", NULL, 0, NULL, &r, err, sizeof(err)),
            WEFT_EINVAL);
        assert_non_null(strstr(err, "https://HOST:PORT"));
    }
    assert_int_equal(pr_https_request(url(L_GOOD), &cfg, "GET", "/x\r\nEvil: 1", NULL, 0, NULL,
                                      &r, err, sizeof(err)),
                     WEFT_EINVAL);
    cfg.ca_pem = NULL;
    assert_int_equal(get(L_GOOD, &cfg, "/cl", &r, err, sizeof(err)), WEFT_EINVAL);
}

/* system_ca: no ca_pem, the system trust store, here the test CA through
 * SSL_CERT_FILE (OpenSSL reads it at every context); another CA fails. */
static void test_system_trust_store(void **state)
{
    pr_httpc_cfg cfg = {.system_ca = 1, .timeout_ms = 5000};
    pr_http_resp r;
    char err[256], path[] = "/tmp/weft-test-httpc-ca-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

    assert_non_null(f);
    fputs(ca_net.cert_pem, f);
    fclose(f);
    assert_int_equal(setenv("SSL_CERT_FILE", path, 1), 0);
    assert_int_equal(get(L_GOOD, &cfg, "/cl", &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    pr_http_resp_free(&r);
    /* The name is still checked against the certificate. */
    assert_int_equal(get(L_WRONG_NAME, &cfg, "/cl", &r, err, sizeof(err)), WEFT_ECERT);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(ca_other.cert_pem, f);
    fclose(f);
    assert_int_equal(get(L_GOOD, &cfg, "/cl", &r, err, sizeof(err)), WEFT_EUNTRUSTED);
    assert_null(r.body);
    unsetenv("SSL_CERT_FILE");
    unlink(path);
}

/* ---- servers outside weft: TLS 1.2, their own CA, the caller's sentences ---- */

static const pr_httpc_hints target_hints = {.peer = "the target",
                                            .untrusted = "give it its CA",
                                            .mismatch = "fix the URL",
                                            .other = "check the target"};

#define HOOK_BODY "{\"kind\":\"rate\"}"

/* One POST to host at a fresh server (credentials cr, TLS versions
 * min..max, TLS 1.2 ciphers or NULL): the client's result, and the version
 * of the handshake the server completed (0: none). */
static int post_once(const struct cred *cr, int min, int max, const char *ciphers, const char *host,
                     const pr_httpc_cfg *cfg, char *err, size_t cap, int *version)
{
    pr_http_resp r;
    char u[96];
    int hs, rc;
    tls_srv s;

    assert_int_equal(tls_srv_start(&s, cr->cert, cr->key, min, max, ciphers), 0);
    snprintf(u, sizeof(u), "https://%s:%d", host, s.port);
    rc = pr_https_request(u, cfg, "POST", "/hook", HOOK_BODY, strlen(HOOK_BODY), "application/json",
                          &r, err, cap);
    tls_srv_seen(&s, &hs, version);
    tls_srv_stop(&s);
    if (hs == 0)
        *version = 0;
    if (rc < 0) {
        assert_null(r.body);
        return rc;
    }
    assert_int_equal(r.status, 204);
    assert_string_equal(s.body, HOOK_BODY);
    pr_http_resp_free(&r);
    return rc;
}

#define ONLY_12 TLS1_2_VERSION, TLS1_2_VERSION
#define BOTH    TLS1_2_VERSION, TLS1_3_VERSION

/* The default (every weft-to-weft hop) offers TLS 1.3 only: a TLS 1.2
 * server is refused before any handshake completes, and says why. */
static void test_tls13_only_by_default(void **state)
{
    pr_httpc_cfg cfg = verified();
    char err[512];
    int ver;

    assert_int_equal(post_once(&srv_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
                     WEFT_ETLS);
    assert_int_equal(ver, 0);
    assert_non_null(strstr(err, "the server does not speak TLS 1.3, the only version weft speaks"));
    assert_non_null(strstr(err, "check that the address is the controller's API"));
    cfg.hints = &target_hints; /* the caller's words, same refusal */
    assert_int_equal(post_once(&srv_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
                     WEFT_ETLS);
    assert_non_null(strstr(err, "the target does not speak TLS 1.3"));
    assert_non_null(strstr(err, "; check the target"));
    /* A server that has both: 1.3. */
    assert_int_equal(post_once(&srv_cred, BOTH, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
                     0);
    assert_int_equal(ver, TLS1_3_VERSION);
}

/* PR_HTTPC_TLS12: a TLS 1.2-only server is spoken to (the body arrives);
 * one with 1.3 still gets 1.3. */
static void test_tls12_allowed_on_request(void **state)
{
    pr_httpc_cfg cfg = verified();
    char err[512];
    int ver;

    cfg.min_tls = PR_HTTPC_TLS12;
    assert_int_equal(post_once(&srv_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
                     0);
    assert_int_equal(ver, TLS1_2_VERSION);
    assert_int_equal(post_once(&srv_cred, BOTH, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
                     0);
    assert_int_equal(ver, TLS1_3_VERSION);
}

/* TLS 1.2 with ECDHE and an AEAD cipher only: a server offering CBC
 * suites (with SHA-1 or SHA-256 MACs) gets no handshake. */
static void test_tls12_aead_only(void **state)
{
    static const char cbc[] = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA";
    pr_httpc_cfg cfg = verified();
    char err[512];
    int ver;

    cfg.min_tls = PR_HTTPC_TLS12;
    cfg.hints = &target_hints;
    assert_true(post_once(&srv_cred, ONLY_12, cbc, "127.0.0.1", &cfg, err, sizeof(err), &ver) < 0);
    assert_int_equal(ver, 0);
    assert_non_null(strstr(err, "the target refused us (handshake failure); check the target"));
}

static char *write_tmp(const char *text)
{
    static char path[64];
    int fd;
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/weft-test-httpc-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    fputs(text, f);
    fclose(f);
    return path;
}

/* ca_pem is the caller's trust anchors, and only those: a bundle with the
 * server's CA verifies, one without it does not even when the system trust
 * store (SSL_CERT_FILE here) has it; the sentence is the caller's. */
static void test_ca_per_call(void **state)
{
    pr_httpc_cfg cfg = {.min_tls = PR_HTTPC_TLS12, .timeout_ms = 5000};
    size_t n = strlen(ca_net.cert_pem) + strlen(ca_other.cert_pem) + 32;
    char *bundle = malloc(n), err[512], *path;
    int ver;

    assert_non_null(bundle);
    snprintf(bundle, n, "%s# the target's CA\n%s", ca_net.cert_pem, ca_other.cert_pem);
    cfg.ca_pem = bundle;
    assert_int_equal(
        post_once(&other_ca_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver), 0);
    path = write_tmp(ca_other.cert_pem);
    assert_int_equal(setenv("SSL_CERT_FILE", path, 1), 0);
    cfg.ca_pem = ca_net.cert_pem;
    cfg.system_ca = 1; /* ignored: ca_pem is given */
    cfg.hints = &target_hints;
    assert_int_equal(
        post_once(&other_ca_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
        WEFT_EUNTRUSTED);
    assert_non_null(strstr(err, "TLS with 127.0.0.1:"));
    assert_non_null(strstr(err, "failed: the target's certificate is not trusted (unable to get "
                                "local issuer certificate): give it its CA"));
    assert_null(strstr(err, "network CA"));
    /* Without ca_pem the system store decides. */
    cfg.ca_pem = NULL;
    assert_int_equal(
        post_once(&other_ca_cred, ONLY_12, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver), 0);
    unsetenv("SSL_CERT_FILE");
    unlink(path);
    free(bundle);
}

/* The URL's host must be a DNS or IP subjectAltName of the certificate: a
 * certificate for another name is refused with the caller's sentence, and
 * a CN is never taken for a name. */
static void test_target_name_checked(void **state)
{
    pr_httpc_cfg cfg = verified();
    char err[512];
    int ver;

    cfg.min_tls = PR_HTTPC_TLS12;
    cfg.hints = &target_hints;
    assert_int_equal(
        post_once(&other_name_cred, BOTH, NULL, "127.0.0.1", &cfg, err, sizeof(err), &ver),
        WEFT_ECERT);
    assert_non_null(
        strstr(err, "the target's certificate is not valid for 127.0.0.1; fix the URL"));
    assert_int_equal(
        post_once(&other_name_cred, BOTH, NULL, "localhost", &cfg, err, sizeof(err), &ver),
        WEFT_ECERT);
    assert_non_null(strstr(err, "not valid for localhost"));
    assert_int_equal(
        post_once(&cn_only_cred, ONLY_12, NULL, "localhost", &cfg, err, sizeof(err), &ver),
        WEFT_ECERT);
    assert_non_null(strstr(err, "not valid for localhost"));
    assert_int_equal(ver, 0);
}

/* ---- CA bundles ---- */

/* cert's DER again, as PEM block name with header and extra bytes after it. */
static char *reencode(const char *cert_pem, const char *name, const char *header, int extra)
{
    BIO *in = BIO_new_mem_buf(cert_pem, -1), *out = BIO_new(BIO_s_mem());
    X509 *x = PEM_read_bio_X509(in, NULL, NULL, NULL);
    unsigned char *der = NULL, *buf;
    int len = i2d_X509(x, &der);
    char *pem, *text;
    long n;

    assert_true(len > 0);
    assert_non_null(buf = calloc(1, (size_t)len + (size_t)extra));
    memcpy(buf, der, (size_t)len);
    assert_true(PEM_write_bio(out, name, header, buf, len + extra) > 0);
    n = BIO_get_mem_data(out, &text);
    assert_non_null(pem = calloc(1, (size_t)n + 1));
    memcpy(pem, text, (size_t)n);
    OPENSSL_free(der);
    free(buf);
    X509_free(x);
    BIO_free(in);
    BIO_free(out);
    return pem;
}

static int ca_check(const char *pem, size_t len, unsigned *n, char *err, size_t cap)
{
    err[0] = '\0';
    return pr_httpc_ca_check(pem, len, n, err, cap);
}

#define CHECK_BAD(pem, len, why)                                                                   \
    do {                                                                                           \
        assert_int_equal(ca_check((pem), (len), &n, err, sizeof(err)), WEFT_EINVAL);               \
        assert_int_equal(n, 0);                                                                    \
        if (strstr(err, (why)) == NULL)                                                            \
            fail_msg("\"%s\" lacks \"%s\"", err, (why));                                           \
    } while (0)

static void test_ca_bundle_check(void **state)
{
    const char *cert = ca_net.cert_pem;
    size_t n2 = strlen(cert) * 3 + 64;
    char *two = malloc(n2), *big, err[256];
    const char *bad;
    char *re;
    unsigned n;

    assert_non_null(two);
    /* Comment lines (UTF-8 too) between blocks are fine, as in system bundles. */
    snprintf(two, n2, "Network CA\n==========\n%s\n# Autorit\xc3\xa9 tierce\n%s", cert,
             ca_other.cert_pem);
    assert_int_equal(ca_check(two, strlen(two), &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ca_check(cert, strlen(cert), &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);

    CHECK_BAD("", 0, "1 to");
    CHECK_BAD(NULL, 10, "1 to");
    CHECK_BAD("hello, world\n", 13, "no certificate in it");
    CHECK_BAD(ca_net.key_pem, strlen(ca_net.key_pem), "PEM block 1 is a private key");
    snprintf(two, n2, "%s%s", cert, ca_net.key_pem);
    CHECK_BAD(two, strlen(two), "PEM block 2 is a private key");
    bad = "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n";
    CHECK_BAD(bad, strlen(bad), "PEM block 1 is a X509 CRL, not a CERTIFICATE");
    bad = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    CHECK_BAD(bad, strlen(bad), "PEM block 1 is not an X.509 certificate");
    /* A block cut short, base64 gone bad, DER with bytes after it, headers. */
    snprintf(two, n2, "%s%.*s", cert, (int)(strlen(cert) - 30), cert);
    CHECK_BAD(two, strlen(two), "PEM block 2 is broken");
    snprintf(two, n2, "%s", cert);
    two[40] = '*';
    CHECK_BAD(two, strlen(two), "PEM block 1 is broken");
    re = reencode(cert, "CERTIFICATE", "", 3);
    CHECK_BAD(re, strlen(re), "PEM block 1 is not an X.509 certificate");
    free(re);
    re = reencode(cert, "CERTIFICATE",
                  "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
                  "00112233445566778899AABBCCDDEEFF\n",
                  0);
    CHECK_BAD(re, strlen(re), "PEM block 1 has headers");
    free(re);
    re = reencode(cert, "TRUSTED CERTIFICATE", "", 0);
    CHECK_BAD(re, strlen(re), "not a CERTIFICATE");
    free(re);
    /* Binary: DER, or a NUL inside the given length. */
    CHECK_BAD("\x30\x82\x01\x0a", 4, "not PEM text");
    snprintf(two, n2, "%s", cert);
    CHECK_BAD(two, strlen(two) + 1, "not PEM text");
    /* Too big, even if every byte is a good bundle. */
    assert_non_null(big = malloc(PR_HTTPC_CA_MAX + 2));
    memset(big, '#', PR_HTTPC_CA_MAX + 1);
    memcpy(big, cert, strlen(cert));
    big[PR_HTTPC_CA_MAX + 1] = '\0';
    CHECK_BAD(big, PR_HTTPC_CA_MAX + 1, "1 to");
    free(big);
    free(two);
}

/* ---- query strings ---- */

static void test_query_add(void **state)
{
    char buf[96] = "/v1/edge/session", small[16];

    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "imei", "35-12.34_5~6"), 0);
    assert_string_equal(buf, "/v1/edge/session?imei=35-12.34_5~6"); /* unreserved: as is */
    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "iccid", "a b+c&d=e%/?#"), 0);
    assert_string_equal(buf,
                        "/v1/edge/session?imei=35-12.34_5~6&iccid=a%20b%2Bc%26d%3De%25%2F%3F%23");
    /* Empty value, bytes over 0x7f (UTF-8), an encoded key. */
    snprintf(buf, sizeof(buf), "/p");
    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "k", ""), 0);
    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "k y", "\xc3\xa9\x7f\x01"), 0);
    assert_string_equal(buf, "/p?k=&k%20y=%C3%A9%7F%01");
    /* Exactly full: the NUL is the last byte; one byte less does not fit and
     * leaves the buffer as it was, also when the cut falls inside a %XX. */
    snprintf(small, sizeof(small), "/p");
    assert_int_equal(pr_http_query_add(small, sizeof(small), "a", "1234567890"), 0);
    assert_string_equal(small, "/p?a=1234567890");
    snprintf(small, sizeof(small), "/p");
    assert_int_equal(pr_http_query_add(small, sizeof(small), "a", "12345678901"), WEFT_ETOOBIG);
    assert_string_equal(small, "/p");
    assert_int_equal(pr_http_query_add(small, sizeof(small), "a", "123456789 "), WEFT_ETOOBIG);
    assert_string_equal(small, "/p");
    assert_int_equal(pr_http_query_add(small, sizeof(small), "a", "1234567 "), 0);
    assert_string_equal(small, "/p?a=1234567%20");
    snprintf(small, sizeof(small), "/p");
    assert_int_equal(pr_http_query_add(small, 4, "a", ""), WEFT_ETOOBIG);
    assert_string_equal(small, "/p");
    /* Misuse. */
    assert_int_equal(pr_http_query_add(NULL, 8, "a", "b"), WEFT_EINVAL);
    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "", "b"), WEFT_EINVAL);
    assert_int_equal(pr_http_query_add(buf, sizeof(buf), "a", NULL), WEFT_EINVAL);
    memset(small, 'x', sizeof(small)); /* not terminated within cap */
    assert_int_equal(pr_http_query_add(small, sizeof(small), "a", "b"), WEFT_EINVAL);
}

/* What the server receives is the encoded target, a single request line. */
static void test_query_on_the_wire(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_http_resp r;
    char path[256] = "/q", err[256];

    assert_int_equal(pr_http_query_add(path, sizeof(path), "imei", "490154203237518"), 0);
    assert_int_equal(pr_http_query_add(path, sizeof(path), "iccid", "89 01\r\nEvil: 1"), 0);
    assert_int_equal(get(L_GOOD, &cfg, path, &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/q?imei=490154203237518&iccid=89%2001%0D%0AEvil%3A%201");
    pr_http_resp_free(&r);
}

/* ---- 429 and Retry-After ---- */

static void test_busy_wait_bounds(void **state)
{
    for (int i = 0; i < 200; i++) {
        unsigned w0 = pr_http_busy_wait_ms(0, 0), w2 = pr_http_busy_wait_ms(2, 0);
        unsigned wbig = pr_http_busy_wait_ms(86400, 0), wcap = pr_http_busy_wait_ms(30, 5);

        assert_true(w0 >= 1000 && w0 < 1000 + 750);             /* absent: a second */
        assert_true(w2 >= 2000 && w2 < 2000 + 1000 + 250);      /* the advice, jittered */
        assert_true(wbig >= PR_HTTPC_BUSY_WAIT_MAX_S * 1000u && /* capped */
                    wbig < PR_HTTPC_BUSY_WAIT_MAX_S * 1500u + 250);
        assert_true(wcap >= 5000 && wcap < 7500 + 250);
    }
}

static unsigned busy_seen, busy_ra, busy_wait;

static void on_busy(unsigned attempt, unsigned tries, unsigned ra, unsigned wait_ms, void *data)
{
    assert_ptr_equal(data, &busy_seen);
    assert_int_equal(attempt, ++busy_seen);
    assert_true(attempt < tries);
    busy_ra = ra;
    busy_wait += wait_ms;
}

static uint64_t mono_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Two 429s with Retry-After: 1, then 200: three requests, two waits of at
 * least a second each, told to on_busy; a server that stays busy gets
 * exactly `tries` requests and its 429 is the answer. */
static void test_busy_retry(void **state)
{
    pr_httpc_cfg cfg = verified();
    pr_httpc_busy busy = {.on_busy = on_busy, .data = &busy_seen};
    pr_http_req req = {"GET", "/busy", NULL, 0, NULL};
    pr_http_resp r;
    char err[256], u[64];
    uint64_t t0 = mono_ms();

    assert_int_equal(pr_https_request_busy(url(L_GOOD), &cfg, &busy, &req, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    pr_http_resp_free(&r);
    assert_int_equal(busy_seen, 2);
    assert_int_equal(busy_ra, 1);
    assert_true(mono_ms() - t0 >= 2000 && busy_wait >= 2000 && busy_wait < 3500);

    busy_seen = 0;
    busy.tries = 2;
    req.path = "/always-busy";
    assert_int_equal(pr_https_request_busy(url(L_GOOD), &cfg, &busy, &req, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.retry_after_s, 0);
    assert_int_equal(busy_seen, 1);
    pr_http_resp_free(&r);
    /* A transport error is not retried. */
    snprintf(u, sizeof(u), "https://127.0.0.1:%d", closed_port());
    assert_int_equal(pr_https_request_busy(u, &cfg, NULL, &req, &r, err, sizeof(err)),
                     WEFT_EREFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_post_echo_and_host),
        cmocka_unit_test(test_status_and_read_to_eof),
        cmocka_unit_test(test_malformed_and_truncated),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_client_cert),
        cmocka_unit_test(test_client_cert_missing),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_no_verify_pins_fingerprint),
        cmocka_unit_test(test_host_checked),
        cmocka_unit_test(test_ipv6_literal),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_bad_urls_and_requests),
        cmocka_unit_test(test_system_trust_store),
        cmocka_unit_test(test_tls13_only_by_default),
        cmocka_unit_test(test_tls12_allowed_on_request),
        cmocka_unit_test(test_tls12_aead_only),
        cmocka_unit_test(test_ca_per_call),
        cmocka_unit_test(test_target_name_checked),
        cmocka_unit_test(test_ca_bundle_check),
        cmocka_unit_test(test_query_add),
        cmocka_unit_test(test_query_on_the_wire),
        cmocka_unit_test(test_busy_wait_bounds),
        cmocka_unit_test(test_busy_retry),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
