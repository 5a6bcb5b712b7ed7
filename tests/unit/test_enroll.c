/* pr_enroll against a small controller stand-in (ctl_http on a libuv loop in a
 * thread, real TLS on loopback): the happy path, and every way a device must
 * refuse: expired or malformed tokens before any traffic, a CA that does not
 * match the pinned fingerprint, a certificate from another CA or for another
 * key, and the controller's own refusals passed on with their codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/http.h"
#include "proto/enroll.h"
#include "proto/jwt.h"
#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

enum mode {
    M_OK,
    M_WRONG_CA,
    M_CA_EXTRA_SIGNS_OTHER,
    M_OTHER_KEY,
    M_USED,
    M_DISABLED,
    M_GARBAGE,
    M_BUSY_TWICE, /* 429 with Retry-After: 1 to the first two POSTs, then as M_OK */
    M_BUSY,       /* 429 without Retry-After to every POST */
};

static struct {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    pr_tls_ctx *tls;
    ctl_http_server *srv;
    int port;
    pthread_mutex_t mu; /* guards everything below */
    enum mode mode;
    int gets, posts;
    json_t *last_body;
} S;

static pr_ca ca_net, ca_other;
static char *srv_cert, *srv_key, *ca_bundle;
static unsigned char jwt_pk[crypto_sign_PUBLICKEYBYTES], jwt_sk[crypto_sign_SECRETKEYBYTES];
static char ca_fp[65];

/* ---- the stand-in controller (loop thread) ---- */

static void reply_json(ctl_http_req *req, int status, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    ctl_http_respond(req, status, "application/json", s, strlen(s));
    free(s);
    json_decref(obj);
}

static void answer_ca(ctl_http_req *req, enum mode m)
{
    const char *pem = m == M_WRONG_CA               ? ca_other.cert_pem
                      : m == M_CA_EXTRA_SIGNS_OTHER ? ca_bundle
                                                    : ca_net.cert_pem;
    ctl_http_respond(req, 200, "application/x-pem-file", pem, strlen(pem));
}

static char *make_cert(enum mode m, const char *csr, const char *sub)
{
    char *cert = NULL, *key = NULL, serial[33], uri[128];
    snprintf(uri, sizeof(uri), "spiffe://net/identity/%s", sub);
    pr_cert_req cr = {
        .cn = sub, .uri = uri, .usage = PR_CERT_CLIENT, .not_after = (int64_t)time(NULL) + 3600};
    if (m == M_OTHER_KEY) {
        assert_int_equal(pr_ca_issue(&ca_net, &cr, &cert, &key), 0);
        free(key);
        return cert;
    }
    assert_int_equal(
        pr_ca_sign_csr(m == M_CA_EXTRA_SIGNS_OTHER ? &ca_other : &ca_net, csr, &cr, &cert, serial),
        0);
    return cert;
}

static void answer_enroll(ctl_http_req *req, enum mode m, json_t *body, int posts)
{
    if (m == M_BUSY || (m == M_BUSY_TWICE && posts <= 2)) {
        req->retry_after_s = m == M_BUSY ? 0 : 1;
        ctl_http_respond_error(req, 429, "busy", "the controller is busy with enrolments");
        return;
    }
    if (m == M_USED) {
        ctl_http_respond_error(req, 401, "token_used",
                               "this token was already used; ask for a new one");
        return;
    }
    if (m == M_DISABLED) {
        ctl_http_respond_error(req, 403, "disabled",
                               "this identity is disabled; ask the administrator");
        return;
    }
    if (m == M_GARBAGE) {
        ctl_http_respond(req, 200, "application/json", "{\"data\":", 8);
        return;
    }
    const char *csr = json_string_value(json_object_get(body, "csr"));
    char *cert = make_cert(m, csr ? csr : "", "dev1id");
    reply_json(req, 200,
               json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "data", "id", "dev1id", "name",
                         "dev1", "kind", "identity", "network", "net", "cert", cert, "ca",
                         ca_net.cert_pem));
    free(cert);
}

static void handler(ctl_http_req *req)
{
    pthread_mutex_lock(&S.mu);
    enum mode m = S.mode;
    int is_ca = strcmp(req->path, "/v1/enroll/ca") == 0;
    json_t *body = NULL;
    int posts = S.posts + 1;
    if (is_ca) {
        S.gets++;
    } else {
        S.posts++;
        body = json_loadb(req->body, req->body_len, 0, NULL);
        json_decref(S.last_body);
        S.last_body = json_incref(body);
    }
    pthread_mutex_unlock(&S.mu);
    if (is_ca)
        answer_ca(req, m);
    else if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/enroll") == 0)
        answer_enroll(req, m, body, posts);
    else
        ctl_http_respond_error(req, 404, "not_found", "no such route");
    json_decref(body);
}

static void stopped(void *arg)
{
    uv_close((uv_handle_t *)&S.stop, NULL);
}

static void stop_cb(uv_async_t *a)
{
    ctl_http_server_stop(S.srv, stopped, NULL);
}

static void *server_main(void *arg)
{
    uv_run(&S.loop, UV_RUN_DEFAULT);
    return NULL;
}

static int group_setup(void **state)
{
    static const char *const dns[] = {"localhost", NULL};
    static const char *const ips[] = {"127.0.0.1", NULL};
    pr_cert_req sr = {.cn = "controller",
                      .uri = "spiffe://net/controller/main",
                      .dns = dns,
                      .ips = ips,
                      .usage = PR_CERT_SERVER,
                      .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_create("net", &ca_net), 0);
    assert_int_equal(pr_ca_create("other", &ca_other), 0);
    assert_int_equal(pr_ca_issue(&ca_net, &sr, &srv_cert, &srv_key), 0);
    assert_int_equal(pr_pki_fingerprint(ca_net.cert_pem, ca_fp), 0);
    ca_bundle = malloc(strlen(ca_net.cert_pem) + strlen(ca_other.cert_pem) + 1);
    assert_non_null(ca_bundle);
    strcpy(ca_bundle, ca_net.cert_pem);
    strcat(ca_bundle, ca_other.cert_pem);
    crypto_sign_keypair(jwt_pk, jwt_sk);

    pr_tls_cfg cfg = {
        .server = 1, .ca_pem = ca_net.cert_pem, .cert_pem = srv_cert, .key_pem = srv_key};
    assert_int_equal(pr_tls_ctx_new(&cfg, &S.tls), 0);
    assert_int_equal(pthread_mutex_init(&S.mu, NULL), 0);
    assert_int_equal(uv_loop_init(&S.loop), 0);
    assert_int_equal(uv_async_init(&S.loop, &S.stop, stop_cb), 0);
    assert_int_equal(ctl_http_server_start(&S.loop, S.tls, "127.0.0.1:0", handler, NULL, &S.srv),
                     0);
    S.port = ctl_http_server_port(S.srv);
    assert_true(S.port > 0);
    assert_int_equal(pthread_create(&S.thread, NULL, server_main, NULL), 0);
    return 0;
}

static int group_teardown(void **state)
{
    uv_async_send(&S.stop);
    pthread_join(S.thread, NULL);
    assert_int_equal(uv_loop_close(&S.loop), 0);
    pr_tls_ctx_free(S.tls);
    json_decref(S.last_body);
    pthread_mutex_destroy(&S.mu);
    free(srv_cert);
    free(srv_key);
    free(ca_bundle);
    pr_ca_free(&ca_net);
    pr_ca_free(&ca_other);
    return 0;
}

static int reset(void **state)
{
    pthread_mutex_lock(&S.mu);
    S.mode = M_OK;
    S.gets = S.posts = 0;
    json_decref(S.last_body);
    S.last_body = NULL;
    pthread_mutex_unlock(&S.mu);
    return 0;
}

static void set_mode(enum mode m)
{
    pthread_mutex_lock(&S.mu);
    S.mode = m;
    pthread_mutex_unlock(&S.mu);
}

static void counts(int *gets, int *posts)
{
    pthread_mutex_lock(&S.mu);
    *gets = S.gets;
    *posts = S.posts;
    pthread_mutex_unlock(&S.mu);
}

/* A signed token for the stand-in; aud and fp NULL mean the right ones. */
static char *token(long long exp_in, const char *aud, const char *fp)
{
    char iss[64], *tok = NULL;
    snprintf(iss, sizeof(iss), "https://127.0.0.1:%d", S.port);
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "iss", iss, "aud",
                  aud ? aud : "weft-enroll", "sub", "dev1id", "kind", "identity", "net", "net",
                  "ca", fp ? fp : ca_fp, "exp", (json_int_t)(time(NULL) + exp_in), "jti", "n1");
    assert_non_null(c);
    assert_int_equal(pr_jwt_sign(c, jwt_sk, &tok), 0);
    json_decref(c);
    return tok;
}

static int enroll(const char *tok, json_t *extra, pr_idfile *id, char *err, size_t cap)
{
    pr_enroll_req req = {.token = tok,
                         .imei = "490154203237518",
                         .iccid = "8944500102198304826",
                         .extra = extra,
                         .timeout_ms = 5000};
    err[0] = '\0';
    return pr_enroll(&req, id, err, cap);
}

static void test_ok(void **state)
{
    pr_idfile id;
    char err[512], padded[PR_JWT_MAX + 16];
    char *tok = token(600, NULL, NULL);
    json_t *extra = json_pack("{s:s, s:s}", "edge_listen", "127.0.0.1:3022", "token", "evil");
    /* white space around the token, as pasted from a file */
    snprintf(padded, sizeof(padded), "  %s\n", tok);
    assert_int_equal(enroll(padded, extra, &id, err, sizeof(err)), 0);
    assert_string_equal(id.kind, "identity");
    assert_string_equal(id.id, "dev1id");
    assert_string_equal(id.name, "dev1");
    assert_string_equal(id.network, "net");
    assert_int_equal(strncmp(id.controller, "https://127.0.0.1:", 18), 0);
    assert_int_equal(pr_pki_verify(id.cert_pem, ca_net.cert_pem), 0);
    assert_int_equal(pr_pki_key_matches(id.cert_pem, id.key_pem), 1);
    assert_string_equal(id.ca_pem, ca_net.cert_pem);
    /* what the controller received: our token (extra cannot replace it), the CSR, the ids */
    pthread_mutex_lock(&S.mu);
    assert_string_equal(json_string_value(json_object_get(S.last_body, "token")), tok);
    assert_non_null(
        strstr(json_string_value(json_object_get(S.last_body, "csr")), "CERTIFICATE REQUEST"));
    assert_string_equal(json_string_value(json_object_get(S.last_body, "imei")), "490154203237518");
    assert_string_equal(json_string_value(json_object_get(S.last_body, "iccid")),
                        "8944500102198304826");
    assert_string_equal(json_string_value(json_object_get(S.last_body, "edge_listen")),
                        "127.0.0.1:3022");
    assert_null(json_object_get(S.last_body, "key"));
    pthread_mutex_unlock(&S.mu);
    pr_idfile_free(&id);
    json_decref(extra);
    free(tok);
}

static void test_uppercase_fingerprint(void **state)
{
    pr_idfile id;
    char err[512], fp[65];
    for (int i = 0; i < 65; i++)
        fp[i] = (char)(ca_fp[i] >= 'a' && ca_fp[i] <= 'f' ? ca_fp[i] - 32 : ca_fp[i]);
    char *tok = token(600, NULL, fp);
    assert_int_equal(enroll(tok, NULL, &id, err, sizeof(err)), 0);
    pr_idfile_free(&id);
    free(tok);
}

/* Refused locally: nothing reaches the controller. */
static void expect_local(const char *tok, int code, const char *words)
{
    pr_idfile id;
    char err[512];
    int gets, posts;
    assert_int_equal(enroll(tok, NULL, &id, err, sizeof(err)), code);
    assert_non_null(strstr(err, words));
    assert_null(id.cert_pem);
    counts(&gets, &posts);
    assert_int_equal(gets + posts, 0);
}

static void test_local_refusals(void **state)
{
    char *expired = token(-10, NULL, NULL), *aud = token(600, "weft-service", NULL);
    char *badfp = token(600, NULL, "abcd");
    char tampered[PR_JWT_MAX];
    expect_local(expired, WEFT_ETOKENEXPIRED, "expired at ");
    expect_local(aud, WEFT_ETOKEN, "not an enrolment token");
    expect_local(badfp, WEFT_ETOKEN, "CA fingerprint");
    expect_local("", WEFT_ETOKEN, "empty");
    expect_local("not.a.token", WEFT_ETOKEN, "malformed");
    snprintf(tampered, sizeof(tampered), "%s.extra", aud);
    expect_local(tampered, WEFT_ETOKEN, "malformed");
    free(expired);
    free(aud);
    free(badfp);
}

/* Expects code and the words in the message; posts: how many POSTs may have happened. */
static void expect_refused(enum mode m, int code, const char *words, int posts_want)
{
    pr_idfile id;
    char err[512];
    int gets, posts;
    char *tok = token(600, NULL, NULL);
    set_mode(m);
    assert_int_equal(enroll(tok, NULL, &id, err, sizeof(err)), code);
    if (strstr(err, words) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, words);
    assert_null(id.cert_pem);
    assert_null(id.key_pem);
    counts(&gets, &posts);
    assert_int_equal(gets, 1);
    assert_int_equal(posts, posts_want);
    free(tok);
}

static void test_wrong_ca(void **state)
{
    /* The token never leaves the device when the CA is not the pinned one. */
    expect_refused(M_WRONG_CA, WEFT_EFINGERPRINT, "possible interception", 0);
}

static void test_extra_ca_not_trusted(void **state)
{
    /* The first certificate matches the pin; one appended after it must not be trusted. */
    expect_refused(M_CA_EXTRA_SIGNS_OTHER, WEFT_EUNTRUSTED, "pinned CA", 1);
}

static void test_cert_for_other_key(void **state)
{
    expect_refused(M_OTHER_KEY, WEFT_ECERT, "not for the key", 1);
}

static void test_server_refusals(void **state)
{
    expect_refused(M_USED, WEFT_ETOKENUSED,
                   "already used; ask for a new one (token_used, HTTP 401)", 1);
    reset(state);
    expect_refused(M_DISABLED, WEFT_EDISABLED, "ask the administrator (disabled, HTTP 403)", 1);
    reset(state);
    expect_refused(M_GARBAGE, WEFT_EJSON, "malformed JSON", 1);
}

static int busy_waits;

static void on_busy(unsigned attempt, unsigned tries, unsigned ra, unsigned wait_ms, void *data)
{
    assert_ptr_equal(data, &busy_waits);
    assert_int_equal(attempt, ++busy_waits);
    assert_int_equal(ra, 1);
    assert_true(wait_ms >= 1000 && wait_ms < 2000);
}

/* A controller over its enrolment rate answers 429 before it looks at the
 * token: the same request (token and CSR) goes again after Retry-After, and
 * the third is served. */
static void test_busy_then_served(void **state)
{
    pr_idfile id;
    char err[512], *tok = token(600, NULL, NULL);
    pr_enroll_req req = {
        .token = tok, .timeout_ms = 5000, .busy = {.on_busy = on_busy, .data = &busy_waits}};
    int gets, posts;

    set_mode(M_BUSY_TWICE);
    assert_int_equal(pr_enroll(&req, &id, err, sizeof(err)), 0);
    assert_int_equal(busy_waits, 2);
    counts(&gets, &posts);
    assert_int_equal(gets, 1);
    assert_int_equal(posts, 3);
    pthread_mutex_lock(&S.mu);
    assert_string_equal(json_string_value(json_object_get(S.last_body, "token")), tok);
    pthread_mutex_unlock(&S.mu);
    assert_int_equal(pr_pki_key_matches(id.cert_pem, id.key_pem), 1);
    pr_idfile_free(&id);
    free(tok);
}

/* Still busy after every try: WEFT_EBUSY, and the sentence says the token is unspent. */
static void test_busy_gives_up(void **state)
{
    pr_idfile id;
    char err[512], *tok = token(600, NULL, NULL);
    pr_enroll_req req = {.token = tok, .timeout_ms = 5000, .busy = {.tries = 2}};
    int gets, posts;

    set_mode(M_BUSY);
    assert_int_equal(pr_enroll(&req, &id, err, sizeof(err)), WEFT_EBUSY);
    assert_non_null(strstr(err, "busy admitting enrolments after 2 attempts (HTTP 429)"));
    assert_non_null(strstr(err, "token was not used"));
    assert_null(id.cert_pem);
    counts(&gets, &posts);
    assert_int_equal(posts, 2);
    free(tok);
}

static void test_no_controller(void **state)
{
    pr_idfile id;
    char err[512];
    /* A live token whose controller is not listening: port 1 on loopback. */
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:s, s:I}", "iss", "https://127.0.0.1:1", "aud", "weft-enroll",
                  "sub", "x", "ca", ca_fp, "exp", (json_int_t)time(NULL) + 600);
    char *tok = NULL;
    assert_int_equal(pr_jwt_sign(c, jwt_sk, &tok), 0);
    assert_true(enroll(tok, NULL, &id, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    json_decref(c);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ok, reset),
        cmocka_unit_test_setup(test_uppercase_fingerprint, reset),
        cmocka_unit_test_setup(test_local_refusals, reset),
        cmocka_unit_test_setup(test_wrong_ca, reset),
        cmocka_unit_test_setup(test_extra_ca_not_trusted, reset),
        cmocka_unit_test_setup(test_cert_for_other_key, reset),
        cmocka_unit_test_setup(test_server_refusals, reset),
        cmocka_unit_test_setup(test_no_controller, reset),
        cmocka_unit_test_setup(test_busy_then_served, reset),
        cmocka_unit_test_setup(test_busy_gives_up, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
