/* weft-controller core: init on a real directory, controller.json, and the REST
 * API's admin authentication and enrolment checks over real HTTPS (the
 * controller's own handlers on the real http server, in a thread). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/controller.h"
#include "proto/httpc.h"
#include "proto/ident.h"
#include "proto/idfile.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/pki.h"
#include "weft/errors.h"

typedef struct {
    char tmp[64];
    char dir[128];
    ctl c;
    pr_tls_ctx *tls;
    uv_loop_t loop;
    uv_async_t stop;
    ctl_http_server *http;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port;
    char url[64];
    pr_idfile admin;
} fixture;

static void rm_rf(const char *dir)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void make_network(fixture *f, const char *listen, const char *advertise)
{
    char err[512] = "";
    ctl_init_opts o = {.dir = f->dir, .listen = listen, .advertise = advertise, .name = "unet"};
    FILE *out = fopen("/dev/null", "w");

    assert_non_null(out);
    assert_int_equal(ctl_init(&o, out, err, sizeof(err)), 0);
    fclose(out);
}

static int setup_dir(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->tmp, "/tmp/weft-test-ctl.XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(f->dir, sizeof(f->dir), "%s/sub/net", f->tmp);
    *state = f;
    return 0;
}

static int teardown_dir(void **state)
{
    fixture *f = *state;

    rm_rf(f->tmp);
    free(f);
    return 0;
}

static mode_t mode_of(const char *dir, const char *file)
{
    char p[256];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", dir, file);
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static void test_init_files_and_modes(void **state)
{
    fixture *f = *state;

    make_network(f, "127.0.0.1:1999", NULL);
    assert_int_equal(mode_of(f->dir, "."), 0700);
    assert_int_equal(mode_of(f->dir, "ca.key"), 0600);
    assert_int_equal(mode_of(f->dir, "server.key"), 0600);
    assert_int_equal(mode_of(f->dir, "signing.key"), 0600);
    assert_int_equal(mode_of(f->dir, "admin.json"), 0600);
    assert_int_equal(mode_of(f->dir, "weft.db"), 0600);
    assert_int_equal(mode_of(f->dir, "controller.json"), 0600);
    assert_int_equal(mode_of(f->dir, "ca.pem"), 0644);
    assert_int_equal(mode_of(f->dir, "server.pem"), 0644);
}

static void test_init_refuses_existing_network(void **state)
{
    fixture *f = *state;
    char err[512] = "", before[65], after[65], p[256], *pem = NULL;
    size_t len;
    ctl_init_opts o = {.dir = f->dir};

    make_network(f, NULL, NULL);
    snprintf(p, sizeof(p), "%s/ca.pem", f->dir);
    assert_int_equal(pr_read_file(p, 65536, &pem, &len), 0);
    assert_int_equal(pr_pki_fingerprint(pem, before), 0);
    free(pem);
    assert_int_equal(ctl_init(&o, stdout, err, sizeof(err)), WEFT_EEXISTS);
    assert_non_null(strstr(err, "refusing"));
    assert_int_equal(pr_read_file(p, 65536, &pem, &len), 0);
    assert_int_equal(pr_pki_fingerprint(pem, after), 0);
    free(pem);
    assert_string_equal(before, after);
}

static void test_init_rejects_bad_name(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    ctl_init_opts o = {.dir = f->dir, .name = "Bad Name"};

    assert_int_equal(ctl_init(&o, stdout, err, sizeof(err)), WEFT_EINVAL);
    assert_int_equal(access(f->dir, F_OK), -1);
}

static void test_config_roundtrip(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    ctl_config cfg;

    make_network(f, "0.0.0.0:2001", NULL);
    assert_int_equal(ctl_config_load(&cfg, f->dir, err, sizeof(err)), 0);
    assert_string_equal(cfg.name, "unet");
    assert_string_equal(cfg.listen, "0.0.0.0:2001");
    /* A wildcard is no address to dial: the URL falls back to loopback. */
    assert_string_equal(cfg.url, "https://127.0.0.1:2001");
    assert_int_equal(cfg.token_ttl, CTL_TOKEN_TTL_DEFAULT);
    assert_non_null(strstr(cfg.db, "/sub/net/weft.db"));
}

static void test_config_advertise(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    ctl_config cfg;

    make_network(f, "0.0.0.0:2002", "ctl.example:443");
    assert_int_equal(ctl_config_load(&cfg, f->dir, err, sizeof(err)), 0);
    assert_string_equal(cfg.url, "https://ctl.example:443");
    assert_int_equal(ctl_config_set_addrs(&cfg, "nonsense", NULL, err, sizeof(err)), WEFT_EADDR);
    assert_int_equal(ctl_config_set_addrs(&cfg, "127.0.0.1:1", "0.0.0.0:1", err, sizeof(err)),
                     WEFT_EADDR);
}

static void test_config_missing_dir(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    ctl_config cfg;

    assert_true(ctl_config_load(&cfg, f->dir, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "weft-controller init"));
}

/* ---- a running API ---- */

static void on_stopped(void *arg)
{
    fixture *f = arg;

    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void on_stop(uv_async_t *h)
{
    fixture *f = h->data;

    ctl_http_server_stop(f->http, on_stopped, f);
}

static void *serve(void *arg)
{
    fixture *f = arg;

    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->stop.data = f;
    uv_async_init(&f->loop, &f->stop, on_stop);
    assert_int_equal(
        ctl_http_server_start(&f->loop, f->tls, "127.0.0.1:0", ctl_api_handle, &f->c, &f->http), 0);
    pthread_mutex_lock(&f->mu);
    f->port = ctl_http_server_port(f->http);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    return NULL;
}

static int setup_server(void **state)
{
    fixture *f;
    char err[512] = "", p[256], *cert = NULL, *key = NULL;
    size_t len;
    ctl_config cfg;

    setup_dir(state);
    f = *state;
    make_network(f, "127.0.0.1:2003", NULL);
    assert_int_equal(ctl_config_load(&cfg, f->dir, err, sizeof(err)), 0);
    assert_int_equal(ctl_open(&f->c, &cfg, err, sizeof(err)), 0);
    assert_int_equal(pr_read_file(cfg.server_cert, 65536, &cert, &len), 0);
    assert_int_equal(pr_read_file(cfg.server_key, 65536, &key, &len), 0);
    pr_tls_cfg tc = {.server = 1, .ca_pem = f->c.ca.cert_pem, .cert_pem = cert, .key_pem = key};
    assert_int_equal(pr_tls_ctx_new(&tc, &f->tls), 0);
    free(cert);
    free(key);
    snprintf(p, sizeof(p), "%s/admin.json", f->dir);
    assert_int_equal(pr_idfile_load(p, &f->admin, err, sizeof(err)), 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->port = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
    pthread_mutex_lock(&f->mu);
    while (f->port == 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    assert_true(f->port > 0);
    snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%d", f->port);
    return 0;
}

static int teardown_server(void **state)
{
    fixture *f = *state;

    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    pr_tls_ctx_free(f->tls);
    ctl_close(&f->c);
    pr_idfile_free(&f->admin);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    return teardown_dir(state);
}

/* One request with client certificate cert/key (NULL: none); the answer's JSON or NULL. */
static json_t *call(fixture *f, const char *cert, const char *key, const char *method,
                    const char *path, const char *body, int *status)
{
    pr_httpc_cfg hc = {.ca_pem = f->c.ca.cert_pem, .cert_pem = cert, .key_pem = key};
    pr_http_resp r = {0};
    char err[256];
    json_t *j = NULL;

    assert_int_equal(pr_https_request(f->url, &hc, method, path, body, body ? strlen(body) : 0,
                                      body ? "application/json" : NULL, &r, err, sizeof(err)),
                     0);
    *status = r.status;
    if (r.body_len > 0)
        j = json_loadb(r.body, r.body_len, 0, NULL);
    pr_http_resp_free(&r);
    return j;
}

static json_t *admin_call(fixture *f, const char *method, const char *path, const char *body,
                          int *status)
{
    return call(f, f->admin.cert_pem, f->admin.key_pem, method, path, body, status);
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

/* Creates an identity and returns its enrolment token (malloc'd). */
static char *create_identity(fixture *f, const char *body)
{
    int st;
    json_t *j = admin_call(f, "POST", "/v1/identities", body, &st);
    char *tok;

    assert_int_equal(st, 201);
    tok = strdup(json_string_value(json_object_get(json_object_get(j, "enrollment"), "token")));
    json_decref(j);
    return tok;
}

/* POST /v1/enroll with a fresh key; *key_out (optional) gets the key. */
static json_t *enroll(fixture *f, const char *tok, const char *extra, int *status, char **key_out)
{
    char *key = NULL, *csr = NULL, *body;
    json_t *b, *j;

    assert_int_equal(pr_pki_keygen(&key), 0);
    assert_int_equal(pr_pki_csr(key, "ignored", &csr), 0);
    b = json_pack("{s:s, s:s}", "token", tok, "csr", csr);
    if (extra) {
        json_t *x = json_loads(extra, 0, NULL);
        assert_non_null(x);
        json_object_update(b, x);
        json_decref(x);
    }
    body = json_dumps(b, JSON_COMPACT);
    j = call(f, NULL, NULL, "POST", "/v1/enroll", body, status);
    free(body);
    json_decref(b);
    free(csr);
    if (key_out)
        *key_out = key;
    else
        free(key);
    return j;
}

static void test_version_and_ca(void **state)
{
    fixture *f = *state;
    int st;
    json_t *j = call(f, NULL, NULL, "GET", "/v1/version", NULL, &st);

    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "network")), "unet");
    assert_int_equal(json_integer_value(json_object_get(j, "api")), 1);
    json_decref(j);
}

static void test_admin_auth(void **state)
{
    fixture *f = *state;
    int st;
    json_t *j = call(f, NULL, NULL, "GET", "/v1/identities", NULL, &st);
    char *key = NULL, *tok;
    const char *cert;

    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "unauthenticated");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
               "WEFT_IDENTITY"));
    json_decref(j);

    /* An enrolled identity that is not an admin is forbidden. */
    tok = create_identity(f, "{\"name\":\"plain\"}");
    j = enroll(f, tok, NULL, &st, &key);
    assert_int_equal(st, 200);
    cert = json_string_value(json_object_get(json_object_get(j, "data"), "cert"));
    json_t *k = call(f, cert, key, "GET", "/v1/identities", NULL, &st);
    assert_int_equal(st, 403);
    assert_string_equal(err_code(k), "forbidden");
    json_decref(k);
    json_decref(j);
    free(key);
    free(tok);

    j = admin_call(f, "GET", "/v1/identities", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "meta"), "total")), 2);
    json_decref(j);
}

static void test_enroll_issues_certificate(void **state)
{
    fixture *f = *state;
    char *tok = create_identity(f, "{\"name\":\"dev1\",\"roles\":[\"s\"]}"), uri[PR_URI_MAX];
    char fp[65];
    int st;
    json_t *j = enroll(f, tok, NULL, &st, NULL), *d = json_object_get(j, "data"), *rec;
    const char *cert = json_string_value(json_object_get(d, "cert"));

    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "identity");
    assert_int_equal(pr_pki_verify(cert, f->c.ca.cert_pem), 0);
    assert_int_equal(pr_pki_cert_uri(cert, uri, sizeof(uri)), 0);
    assert_non_null(strstr(uri, "spiffe://unet/identity/"));
    assert_string_equal(uri + strlen("spiffe://unet/identity/"),
                        json_string_value(json_object_get(d, "id")));
    assert_int_equal(pr_pki_fingerprint(cert, fp), 0);
    rec = admin_call(f, "GET", "/v1/identities/dev1", NULL, &st);
    assert_true(json_is_true(json_object_get(json_object_get(rec, "data"), "enrolled")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rec, "data"), "cert_fingerprint")), fp);
    json_decref(rec);
    json_decref(j);

    /* Single use. */
    j = enroll(f, tok, NULL, &st, NULL);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "token_used");
    json_decref(j);
    free(tok);
}

/* Signs claims like the controller's, with one claim replaced. */
static char *forge(fixture *f, const char *tok, const char *key, json_t *value)
{
    json_t *claims = NULL;
    char *out = NULL;

    assert_int_equal(pr_jwt_decode_unverified(tok, &claims), 0);
    json_object_set_new(claims, key, value);
    assert_int_equal(pr_jwt_sign(claims, f->c.sk, &out), 0);
    json_decref(claims);
    return out;
}

static void test_enroll_token_checks(void **state)
{
    fixture *f = *state;
    char *tok = create_identity(f, "{\"name\":\"dev2\"}"), *bad;
    int st;
    json_t *j;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    json_t *claims = NULL;

    bad = forge(f, tok, "ca", json_string("00"));
    j = enroll(f, bad, NULL, &st, NULL);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "ca_mismatch");
    json_decref(j);
    free(bad);

    bad = forge(f, tok, "exp", json_integer(time(NULL) - 10));
    j = enroll(f, bad, NULL, &st, NULL);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "token_expired");
    json_decref(j);
    free(bad);

    bad = forge(f, tok, "aud", json_string("something-else"));
    j = enroll(f, bad, NULL, &st, NULL);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "invalid_token");
    json_decref(j);
    free(bad);

    /* Right claims, another key. */
    crypto_sign_keypair(pk, sk);
    assert_int_equal(pr_jwt_decode_unverified(tok, &claims), 0);
    assert_int_equal(pr_jwt_sign(claims, sk, &bad), 0);
    json_decref(claims);
    j = enroll(f, bad, NULL, &st, NULL);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "invalid_token");
    json_decref(j);
    free(bad);

    /* A bad CSR does not burn the token. */
    j = call(f, NULL, NULL, "POST", "/v1/enroll", "{\"token\":\"x\",\"csr\":\"y\"}", &st);
    assert_int_equal(st, 401);
    json_decref(j);
    json_t *b = json_pack("{s:s, s:s}", "token", tok, "csr",
                          "-----BEGIN CERTIFICATE REQUEST-----\n"
                          "AAAA\n-----END CERTIFICATE REQUEST-----\n");
    char *body = json_dumps(b, 0);
    j = call(f, NULL, NULL, "POST", "/v1/enroll", body, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "bad_csr");
    json_decref(j);
    free(body);
    json_decref(b);

    j = enroll(f, tok, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(j);
    free(tok);
}

static void test_enroll_disabled_and_binding(void **state)
{
    fixture *f = *state;
    char *tok = create_identity(f, "{\"name\":\"dev3\",\"binding\":\"exact\"}");
    int st;
    json_t *j;

    j = admin_call(f, "POST", "/v1/identities/dev3/disable", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    j = enroll(f, tok, "{\"imei\":\"1\",\"iccid\":\"2\"}", &st, NULL);
    assert_int_equal(st, 403);
    assert_string_equal(err_code(j), "disabled");
    json_decref(j);
    j = admin_call(f, "POST", "/v1/identities/dev3/enable", NULL, &st);
    json_decref(j);

    j = enroll(f, tok, "{\"imei\":\"1\"}", &st, NULL);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "bad_request");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(j, "error"), "message")), "iccid"));
    json_decref(j);

    j = enroll(f, tok, "{\"imei\":\"356938035643809\",\"iccid\":\"8944500102198304826\"}", &st,
               NULL);
    assert_int_equal(st, 200);
    json_decref(j);
    j = admin_call(f, "GET", "/v1/identities/dev3", NULL, &st);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "iccid")),
                        "8944500102198304826");
    json_decref(j);
    free(tok);
}

static void test_admin_cannot_lock_itself_out(void **state)
{
    fixture *f = *state;
    int st;
    json_t *j = admin_call(f, "POST", "/v1/identities/admin/disable", NULL, &st);

    assert_int_equal(st, 409);
    json_decref(j);
    j = admin_call(f, "DELETE", "/v1/identities/admin", NULL, &st);
    assert_int_equal(st, 409);
    json_decref(j);
    j = admin_call(f, "GET", "/v1/identities/admin", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_files_and_modes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_init_refuses_existing_network, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_init_rejects_bad_name, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_roundtrip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_advertise, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_config_missing_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_version_and_ca, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_admin_auth, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_enroll_issues_certificate, setup_server,
                                        teardown_server),
        cmocka_unit_test_setup_teardown(test_enroll_token_checks, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_enroll_disabled_and_binding, setup_server,
                                        teardown_server),
        cmocka_unit_test_setup_teardown(test_admin_cannot_lock_itself_out, setup_server,
                                        teardown_server),
    };

    if (sodium_init() < 0)
        return 1;
    pr_log_init("test", PR_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
