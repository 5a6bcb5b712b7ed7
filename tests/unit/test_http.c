/* controller/http: the parser core on its own, then the real server over TLS on
 * loopback, driven by curl and openssl s_client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "controller/http.h"
#include "controller/http_parse.h"
#include "proto/log.h"
#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

/* ---------------------------------------------------------------- parser */

static int feed_str(ctl_http_parse *hp, const char *s, size_t *used)
{
    return ctl_http_parse_feed(hp, (const uint8_t *)s, strlen(s), used);
}

static void pipelined_requests_come_one_at_a_time(void **state)
{
    const char *first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *both = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                       "DELETE /v1/b%20c?x=1&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ctl_http_parse hp;
    ctl_http_req req = {0};
    size_t used;

    ctl_http_parse_init(&hp);
    assert_int_equal(feed_str(&hp, both, &used), CTL_HTTP_PARSE_REQUEST);
    assert_int_equal(used, strlen(first));
    ctl_http_parse_request(&hp, &req);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/a");
    assert_string_equal(req.query, "");
    assert_int_equal(req.body_len, 0);
    assert_string_equal(req.body, "");
    assert_true(hp.keep_alive);
    /* Paused: nothing more is parsed until the caller says so. */
    ctl_http_parse_next(&hp);
    assert_int_equal(feed_str(&hp, both + used, &used), CTL_HTTP_PARSE_REQUEST);
    assert_int_equal(used, strlen(both) - strlen(first));
    ctl_http_parse_request(&hp, &req);
    assert_string_equal(req.method, "DELETE");
    assert_string_equal(req.path, "/v1/b c");
    assert_string_equal(req.query, "x=1&y=2");
    assert_false(hp.keep_alive);
    ctl_http_parse_finish(&hp);
}

static void byte_by_byte(ctl_http_parse *hp, const char *s, int want_last)
{
    size_t n = strlen(s), used, i;

    for (i = 0; i + 1 < n; i++)
        assert_int_equal(ctl_http_parse_feed(hp, (const uint8_t *)s + i, 1, &used),
                         CTL_HTTP_PARSE_MORE);
    assert_int_equal(ctl_http_parse_feed(hp, (const uint8_t *)s + i, 1, &used), want_last);
}

static void chunked_body_is_reassembled(void **state)
{
    const char *msg = "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      "CONTENT-type: application/json \r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    ctl_http_parse hp;
    ctl_http_req req = {0};

    ctl_http_parse_init(&hp);
    byte_by_byte(&hp, msg, CTL_HTTP_PARSE_REQUEST);
    ctl_http_parse_request(&hp, &req);
    assert_string_equal(req.method, "POST");
    assert_int_equal(req.body_len, 11);
    assert_string_equal(req.body, "hello world");
    assert_string_equal(req.content_type, "application/json");
    ctl_http_parse_finish(&hp);
}

static void expect_error(const char *msg, int err, int status, const char *code)
{
    ctl_http_parse hp;
    size_t used;

    ctl_http_parse_init(&hp);
    if (feed_str(&hp, msg, &used) != err)
        fail_msg("unexpected result for: %.60s", msg);
    assert_int_equal(hp.err_status, status);
    assert_string_equal(hp.err_code, code);
    assert_true(strlen(hp.err_msg) > 0);
    /* A failed parser stays failed. */
    assert_true(feed_str(&hp, "GET / HTTP/1.1\r\n\r\n", &used) < 0);
    ctl_http_parse_finish(&hp);
}

static void oversize_content_length_rejected_before_body(void **state)
{
    ctl_http_parse hp;
    size_t used;

    ctl_http_parse_init(&hp);
    /* No body byte is sent: the headers alone must be refused. */
    assert_int_equal(feed_str(&hp,
                              "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
                              &used),
                     WEFT_ETOOBIG);
    assert_int_equal(hp.err_status, 400);
    assert_string_equal(hp.err_code, "too_large");
    assert_non_null(strstr(hp.err_msg, "1048576"));
    assert_int_equal(hp.body_cap, 0);
    ctl_http_parse_finish(&hp);
    /* The limit itself is fine. */
    ctl_http_parse_init(&hp);
    assert_int_equal(feed_str(&hp, "POST /p HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n", &used),
                     CTL_HTTP_PARSE_MORE);
    ctl_http_parse_finish(&hp);
}

static void oversize_chunked_body_rejected(void **state)
{
    static char chunk[64 * 1024 + 16];
    ctl_http_parse hp;
    size_t used;
    int r = 0, i;

    snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + 7, 'a', 0x10000);
    memcpy(chunk + 7 + 0x10000, "\r\n", 2);
    ctl_http_parse_init(&hp);
    assert_int_equal(feed_str(&hp, "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &used),
                     CTL_HTTP_PARSE_MORE);
    for (i = 0; i < 40 && r == 0; i++)
        r = ctl_http_parse_feed(&hp, (const uint8_t *)chunk, 7 + 0x10000 + 2, &used);
    assert_int_equal(r, WEFT_ETOOBIG);
    assert_int_equal(i, 17); /* 16 chunks make exactly 1 MiB; the 17th is refused */
    assert_string_equal(hp.err_code, "too_large");
    assert_true(hp.body_cap <= CTL_HTTP_MAX_BODY + 1);
    ctl_http_parse_finish(&hp);
}

static void header_block_limit(void **state)
{
    static char msg[CTL_HTTP_MAX_HEADERS_BYTES + 256];
    static const char start[] = "GET / HTTP/1.1\r\nX-Big: ";
    size_t off = sizeof(start) - 1;

    memcpy(msg, start, off);
    memset(msg + off, 'v', CTL_HTTP_MAX_HEADERS_BYTES);
    memcpy(msg + off + CTL_HTTP_MAX_HEADERS_BYTES, "\r\n\r\n", 5);
    expect_error(msg, WEFT_ETOOBIG, 400, "too_large");
    /* Many small headers add up as well. */
    off = (size_t)snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\n");
    while (off < CTL_HTTP_MAX_HEADERS_BYTES + 100)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "A: b\r\n");
    snprintf(msg + off, sizeof(msg) - off, "\r\n");
    expect_error(msg, WEFT_ETOOBIG, 400, "too_large");
}

static void long_url_rejected(void **state)
{
    char msg[CTL_HTTP_MAX_URL + 64];
    size_t off = (size_t)sprintf(msg, "GET /");

    memset(msg + off, 'u', CTL_HTTP_MAX_URL);
    strcpy(msg + off + CTL_HTTP_MAX_URL, " HTTP/1.1\r\n\r\n");
    expect_error(msg, WEFT_ETOOBIG, 400, "too_large");
}

static void bad_percent_escapes(void **state)
{
    ctl_http_parse hp;
    ctl_http_req req = {0};
    size_t used;

    expect_error("GET /a%zz HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET /a%00b HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET /a%4 HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET /a% HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET http://x/a HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    ctl_http_parse_init(&hp);
    assert_int_equal(feed_str(&hp, "GET /a%2Fb%7e+?q=%zz HTTP/1.1\r\n\r\n", &used),
                     CTL_HTTP_PARSE_REQUEST);
    ctl_http_parse_request(&hp, &req);
    /* '+' is literal in a path; the query is decoded only on demand. */
    assert_string_equal(req.path, "/a/b~+");
    assert_string_equal(req.query, "q=%zz");
    ctl_http_parse_finish(&hp);
}

static void malformed_requests(void **state)
{
    expect_error("GARBAGE\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                 WEFT_EPROTO, 400, "bad_request");
    expect_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("CONNECT x:443 HTTP/1.1\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", WEFT_EPROTO, 400, "bad_request");
    expect_error("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", WEFT_EPROTO,
                 400, "bad_request");
    expect_error("POST / HTTP/1.1\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n", WEFT_EPROTO, 417,
                 "expectation_failed");
}

static void expect_100_continue(void **state)
{
    const char *head = "POST /up HTTP/1.1\r\nHost: x\r\nexpect: 100-Continue\r\n"
                       "Content-Length: 5\r\n\r\n";
    ctl_http_parse hp;
    ctl_http_req req = {0};
    size_t used;

    ctl_http_parse_init(&hp);
    assert_int_equal(feed_str(&hp, head, &used), CTL_HTTP_PARSE_CONTINUE);
    assert_int_equal(used, strlen(head));
    ctl_http_parse_resume(&hp);
    assert_int_equal(feed_str(&hp, "hello", &used), CTL_HTTP_PARSE_REQUEST);
    assert_int_equal(used, 5);
    ctl_http_parse_request(&hp, &req);
    assert_string_equal(req.body, "hello");
    ctl_http_parse_next(&hp);
    /* HTTP/1.0 clients get no interim response. */
    assert_int_equal(feed_str(&hp, "POST /up HTTP/1.0\r\nExpect: 100-continue\r\n"
                                   "Content-Length: 2\r\n\r\nhi", &used),
                     CTL_HTTP_PARSE_REQUEST);
    assert_false(hp.keep_alive);
    ctl_http_parse_finish(&hp);
}

static void query_decoding(void **state)
{
    ctl_http_req req = {.query = "a=1&name=hello%20world+x&empty=&flag&bad=%zz&nul=%00&k%65y=v"};
    char out[32], tiny[4];

    assert_string_equal(ctl_http_query(&req, "a", out, sizeof(out)), "1");
    assert_string_equal(ctl_http_query(&req, "name", out, sizeof(out)), "hello world x");
    assert_string_equal(ctl_http_query(&req, "empty", out, sizeof(out)), "");
    assert_string_equal(ctl_http_query(&req, "flag", out, sizeof(out)), "");
    assert_string_equal(ctl_http_query(&req, "key", out, sizeof(out)), "v");
    assert_null(ctl_http_query(&req, "bad", out, sizeof(out)));
    assert_null(ctl_http_query(&req, "nul", out, sizeof(out)));
    assert_null(ctl_http_query(&req, "missing", out, sizeof(out)));
    assert_null(ctl_http_query(&req, "nam", out, sizeof(out)));
    assert_null(ctl_http_query(&req, "name", tiny, sizeof(tiny)));
    assert_null(ctl_http_query(&req, "a", out, 0));
    req.query = "";
    assert_null(ctl_http_query(&req, "a", out, sizeof(out)));
}

/* ---------------------------------------------------------------- server */

struct seen {
    pthread_mutex_t mu;
    int count;
    char path[256];
    char peer_uri[256];
    int had_uri;
    char addrs[8][64]; /* peer_addr of each request, in order */
    size_t body_len;
    char content_type[128];
};

/* Small limits so that the idle timeout and the connection cap can be seen. */
#define TEST_IDLE_MS 1500
#define TEST_MAX_CONNS 4

struct fixture {
    char dir[64];
    char ca[128], cert[128], key[128]; /* client credentials (PEM files) */
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port;        /* > 0 once listening, < 0 on failure */
    int stopped;     /* the server's stop callback ran */
    int loop_closed; /* uv_loop_close result */
    pr_tls_ctx *tls;
    ctl_http_server *srv;
    struct seen seen;
    pr_ca ca_pair;
    char *srv_cert, *srv_key;
};

static void handler(ctl_http_req *req)
{
    struct seen *s = req->server_data;
    json_t *j;
    char *out, name[64];

    pthread_mutex_lock(&s->mu);
    snprintf(s->path, sizeof(s->path), "%s", req->path);
    s->had_uri = req->peer_uri != NULL;
    snprintf(s->peer_uri, sizeof(s->peer_uri), "%s", req->peer_uri ? req->peer_uri : "");
    if (s->count < 8)
        snprintf(s->addrs[s->count], sizeof(s->addrs[0]), "%s", req->peer_addr);
    s->body_len = req->body_len;
    snprintf(s->content_type, sizeof(s->content_type), "%s", req->content_type);
    s->count++;
    pthread_mutex_unlock(&s->mu);
    if (strcmp(req->path, "/noanswer") == 0)
        return;
    if (strcmp(req->path, "/empty") == 0) {
        ctl_http_respond(req, 204, NULL, NULL, 0);
        return;
    }
    if (strcmp(req->path, "/missing") == 0) {
        ctl_http_respond_error(req, 404, "not_found", "no such \"thing\"");
        return;
    }
    j = json_pack("{s:s,s:s?,s:I,s:s?}", "path", req->path, "peer", req->peer_uri, "body_len",
                  (json_int_t)req->body_len, "name",
                  ctl_http_query(req, "name", name, sizeof(name)));
    out = json_dumps(j, JSON_COMPACT);
    ctl_http_respond(req, 200, "application/json", out, strlen(out));
    free(out);
    json_decref(j);
}

static void on_stopped(void *arg)
{
    struct fixture *f = arg;

    f->stopped = 1;
}

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;

    ctl_http_server_stop(f->srv, on_stopped, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg)
{
    struct fixture *f = arg;
    pr_tls_cfg cfg = {.server = 1, .ca_pem = f->ca_pair.cert_pem, .cert_pem = f->srv_cert,
                      .key_pem = f->srv_key, .alpn = "http/1.1"};
    int port = -1;

    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    if (pr_tls_ctx_new(&cfg, &f->tls) == 0 &&
        ctl_http_server_start(&f->loop, f->tls, "127.0.0.1:0", handler, &f->seen, &f->srv) == 0)
        port = ctl_http_server_port(f->srv);
    if (port > 0)
        ctl_http_server_set_limits(f->srv, TEST_IDLE_MS, TEST_MAX_CONNS);
    pthread_mutex_lock(&f->mu);
    f->port = port;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (port < 0)
        uv_close((uv_handle_t *)&f->stop, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->loop_closed = uv_loop_close(&f->loop);
    pr_tls_ctx_free(f->tls);
    return NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void issue(struct fixture *f, const char *uri, int usage, char **cert, char **key)
{
    static const char *const ips[] = {"127.0.0.1", NULL};
    pr_cert_req r = {.cn = "test", .uri = uri, .ips = ips, .usage = usage,
                     .not_after = (int64_t)time(NULL) + 3600};

    assert_int_equal(pr_ca_issue(&f->ca_pair, &r, cert, key), 0);
}

static int setup_server(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char *ccert, *ckey;

    assert_non_null(f);
    pr_log_init("controller", PR_LOG_INFO);
    snprintf(f->dir, sizeof(f->dir), "/tmp/weft-test-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(pr_ca_create("test", &f->ca_pair), 0);
    issue(f, "spiffe://test/controller/c1", PR_CERT_SERVER, &f->srv_cert, &f->srv_key);
    issue(f, "spiffe://test/identity/admin", PR_CERT_CLIENT, &ccert, &ckey);
    snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
    snprintf(f->cert, sizeof(f->cert), "%s/client.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/client.key", f->dir);
    write_file(f->ca, f->ca_pair.cert_pem);
    write_file(f->cert, ccert);
    write_file(f->key, ckey);
    free(ccert);
    free(ckey);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_mutex_init(&f->seen.mu, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, server_main, f), 0);
    pthread_mutex_lock(&f->mu);
    while (f->port == 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown_server(void **state)
{
    struct fixture *f = *state;
    char cmd[256];

    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    pr_ca_free(&f->ca_pair);
    free(f->srv_cert);
    free(f->srv_key);
    free(f);
    return 0;
}

/* Runs cmd, returns its exit status and (up to cap-1 bytes of) its stdout. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0, r;

    assert_non_null(p);
    while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += r;
    out[n] = '\0';
    return pclose(p);
}

static void curl(struct fixture *f, int with_cert, const char *args, char *out, size_t cap)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd),
             "timeout 20 curl -sS --max-time 15 --cacert %s %s%s%s%s %s", f->ca,
             with_cert ? "--cert " : "", with_cert ? f->cert : "", with_cert ? " --key " : "",
             with_cert ? f->key : "", args);
    assert_int_equal(run(cmd, out, cap), 0);
}

static void get_with_client_cert_sees_peer_uri(void **state)
{
    struct fixture *f = *state;
    char args[256], out[4096];

    snprintf(args, sizeof(args), "'https://127.0.0.1:%d/v1/who%%20am?name=a%%2Bb+c'", f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_string_equal(out, "{\"path\":\"/v1/who am\",\"peer\":\"spiffe://test/identity/admin\","
                             "\"body_len\":0,\"name\":\"a+b c\"}");
    pthread_mutex_lock(&f->seen.mu);
    assert_true(f->seen.had_uri);
    assert_string_equal(f->seen.peer_uri, "spiffe://test/identity/admin");
    assert_string_equal(f->seen.path, "/v1/who am");
    pthread_mutex_unlock(&f->seen.mu);
}

static void get_without_client_cert_has_no_peer_uri(void **state)
{
    struct fixture *f = *state;
    char args[256], out[4096];

    snprintf(args, sizeof(args), "-D - https://127.0.0.1:%d/v1/anon", f->port);
    curl(f, 0, args, out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "Cache-Control: no-store\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "{\"path\":\"/v1/anon\",\"peer\":null,"));
    pthread_mutex_lock(&f->seen.mu);
    assert_false(f->seen.had_uri);
    pthread_mutex_unlock(&f->seen.mu);
}

static void keep_alive_reuses_the_connection(void **state)
{
    struct fixture *f = *state;
    char args[512], out[4096];
    int base;

    pthread_mutex_lock(&f->seen.mu);
    f->seen.count = 0;
    pthread_mutex_unlock(&f->seen.mu);
    snprintf(args, sizeof(args), "https://127.0.0.1:%d/one https://127.0.0.1:%d/two", f->port,
             f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_non_null(strstr(out, "\"/one\""));
    assert_non_null(strstr(out, "\"/two\""));
    /* Connection: close is honoured: the second URL needs a new connection. */
    snprintf(args, sizeof(args), "-H 'Connection: close' https://127.0.0.1:%d/three "
             "https://127.0.0.1:%d/four", f->port, f->port);
    curl(f, 1, args, out, sizeof(out));
    pthread_mutex_lock(&f->seen.mu);
    base = f->seen.count;
    assert_int_equal(base, 4);
    assert_string_equal(f->seen.addrs[0], f->seen.addrs[1]);
    assert_string_not_equal(f->seen.addrs[2], f->seen.addrs[3]);
    pthread_mutex_unlock(&f->seen.mu);
}

static void oversize_post_is_too_large(void **state)
{
    struct fixture *f = *state;
    char path[192], args[512], out[4096];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/big", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i <= CTL_HTTP_MAX_BODY; i++)
        fputc('x', fp);
    fclose(fp);
    pthread_mutex_lock(&f->seen.mu);
    f->seen.count = 0;
    pthread_mutex_unlock(&f->seen.mu);
    /* Expect: 100-continue lets the server refuse before the body is sent. */
    snprintf(args, sizeof(args), "-H 'Expect: 100-continue' -H 'Content-Type: application/json' "
             "--data-binary @%s -w ' %%{http_code}' https://127.0.0.1:%d/v1/up", path, f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_non_null(strstr(out, "\"code\":\"too_large\""));
    assert_non_null(strstr(out, "1048576"));
    assert_non_null(strstr(out, " 400"));
    pthread_mutex_lock(&f->seen.mu);
    assert_int_equal(f->seen.count, 0);
    pthread_mutex_unlock(&f->seen.mu);
}

static void post_with_continue_reaches_handler(void **state)
{
    struct fixture *f = *state;
    char args[512], out[4096];

    snprintf(args, sizeof(args), "-H 'Expect: 100-continue' -H 'Content-Type: text/plain' "
             "--data-binary 'hello there' https://127.0.0.1:%d/v1/small", f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_non_null(strstr(out, "\"body_len\":11"));
    pthread_mutex_lock(&f->seen.mu);
    assert_int_equal(f->seen.body_len, 11);
    assert_string_equal(f->seen.content_type, "text/plain");
    pthread_mutex_unlock(&f->seen.mu);
}

static void unanswered_request_gets_500(void **state)
{
    struct fixture *f = *state;
    char args[256], out[4096];

    snprintf(args, sizeof(args), "-w ' %%{http_code}' https://127.0.0.1:%d/noanswer", f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_non_null(strstr(out, "\"code\":\"internal\""));
    assert_non_null(strstr(out, " 500"));
}

static void error_helper_answers_json(void **state)
{
    struct fixture *f = *state;
    char args[256], out[4096];

    snprintf(args, sizeof(args), "-w ' %%{http_code}' https://127.0.0.1:%d/missing", f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_string_equal(out, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such \\\"thing\\\"\"}} 404");
}

static void no_content_has_no_length(void **state)
{
    struct fixture *f = *state;
    char args[256], out[4096];

    snprintf(args, sizeof(args), "-D - https://127.0.0.1:%d/empty", f->port);
    curl(f, 1, args, out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 204 No Content\r\n"));
    assert_null(strstr(out, "Content-Length"));
    assert_non_null(strstr(out, "Cache-Control: no-store\r\n"));
}

/* Two requests in one TLS record: answered in order on the same connection. */
static void pipelined_requests_over_tls(void **state)
{
    struct fixture *f = *state;
    char cmd[1024], out[8192];
    char *one, *two;

    snprintf(cmd, sizeof(cmd),
             "printf 'GET /p1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /p2 HTTP/1.1\\r\\nHost: x\\r\\n"
             "Connection: close\\r\\n\\r\\n' | timeout 20 openssl s_client -quiet "
             "-connect 127.0.0.1:%d -CAfile %s 2>/dev/null",
             f->port, f->ca);
    run(cmd, out, sizeof(out));
    one = strstr(out, "\"path\":\"/p1\"");
    two = strstr(out, "\"path\":\"/p2\"");
    assert_non_null(one);
    assert_non_null(two);
    assert_true(one < two);
    assert_non_null(strstr(one, "Connection: close\r\n"));
}

static void malformed_request_over_tls_is_bad_request(void **state)
{
    struct fixture *f = *state;
    char cmd[1024], out[4096];

    snprintf(cmd, sizeof(cmd),
             "printf 'GARBAGE / NONSENSE\\r\\n\\r\\n' | timeout 20 openssl s_client -quiet "
             "-connect 127.0.0.1:%d -CAfile %s -cert %s -key %s 2>/dev/null",
             f->port, f->ca, f->cert, f->key);
    run(cmd, out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_non_null(strstr(out, "\"code\":\"bad_request\""));
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void idle_connection_is_closed(void **state)
{
    struct fixture *f = *state;
    char cmd[1024], out[4096];
    long ms;

    /* stdin stays open for 10 s; the server must hang up long before. */
    snprintf(cmd, sizeof(cmd),
             "bash -c 's=$(date +%%s%%N); timeout 20 openssl s_client -quiet -connect 127.0.0.1:%d "
             "-CAfile %s < <(sleep 10) >/dev/null 2>&1; echo $(( ($(date +%%s%%N) - s) / 1000000 ))'",
             f->port, f->ca);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    ms = strtol(out, NULL, 10);
    assert_true(ms >= TEST_IDLE_MS - 100);
    assert_true(ms < TEST_IDLE_MS + 3000);
}

static void connection_cap_refuses_extra_clients(void **state)
{
    struct fixture *f = *state;
    char cmd[1024], out[4096];
    int fds[TEST_MAX_CONNS], i;

    usleep(300 * 1000); /* earlier tests' connections finish closing */
    for (i = 0; i < TEST_MAX_CONNS; i++)
        fds[i] = tcp_connect(f->port);
    usleep(200 * 1000);
    snprintf(cmd, sizeof(cmd), "timeout 20 curl -sS --max-time 10 --cacert %s "
             "https://127.0.0.1:%d/over 2>&1", f->ca, f->port);
    assert_true(run(cmd, out, sizeof(out)) != 0);
    for (i = 0; i < TEST_MAX_CONNS; i++)
        close(fds[i]);
    usleep(300 * 1000);
    /* Slots free again once those connections closed. */
    snprintf(cmd, sizeof(cmd), "https://127.0.0.1:%d/after", f->port);
    curl(f, 1, cmd, out, sizeof(out));
    assert_non_null(strstr(out, "\"/after\""));
}

/* Stopping closes live connections (here one still in its handshake) and the
 * loop ends with no handle left. */
static void stop_closes_everything(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    char buf[16];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    usleep(100 * 1000);
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    assert_true(f->stopped);
    assert_int_equal(f->loop_closed, 0);
    assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
    close(fd);
    /* teardown must not stop twice: restart a fresh thread to be joined. */
    f->port = 0;
    f->stopped = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, server_main, f), 0);
    pthread_mutex_lock(&f->mu);
    while (f->port == 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

int main(void)
{
    const struct CMUnitTest parser[] = {
        cmocka_unit_test(pipelined_requests_come_one_at_a_time),
        cmocka_unit_test(chunked_body_is_reassembled),
        cmocka_unit_test(oversize_content_length_rejected_before_body),
        cmocka_unit_test(oversize_chunked_body_rejected),
        cmocka_unit_test(header_block_limit),
        cmocka_unit_test(long_url_rejected),
        cmocka_unit_test(bad_percent_escapes),
        cmocka_unit_test(malformed_requests),
        cmocka_unit_test(expect_100_continue),
        cmocka_unit_test(query_decoding),
    };
    const struct CMUnitTest server[] = {
        cmocka_unit_test(get_with_client_cert_sees_peer_uri),
        cmocka_unit_test(get_without_client_cert_has_no_peer_uri),
        cmocka_unit_test(keep_alive_reuses_the_connection),
        cmocka_unit_test(oversize_post_is_too_large),
        cmocka_unit_test(post_with_continue_reaches_handler),
        cmocka_unit_test(unanswered_request_gets_500),
        cmocka_unit_test(error_helper_answers_json),
        cmocka_unit_test(no_content_has_no_length),
        cmocka_unit_test(pipelined_requests_over_tls),
        cmocka_unit_test(malformed_request_over_tls_is_bad_request),
        cmocka_unit_test(idle_connection_is_closed),
        cmocka_unit_test(connection_cap_refuses_extra_clients),
        cmocka_unit_test(stop_closes_everything),
    };
    int failed = cmocka_run_group_tests_name("parser", parser, NULL, NULL);

    failed += cmocka_run_group_tests_name("server", server, setup_server, teardown_server);
    return failed;
}
