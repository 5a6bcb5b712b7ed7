/* router/renew.c: a reloaded identity gives the edge and link listeners new
 * TLS contexts; a connection opened before keeps going on the old one, a new
 * one is shown the new certificate (real TLS on 127.0.0.1); another router's
 * file is refused and nothing changes; SIGHUP's reload reads the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/addr.h"
#include "proto/log.h"
#include "proto/pki.h"
#include "router/renew.h"
#include "weft/errors.h"

#define GUARD_MS 5000

struct cred {
    char *cert, *key;
};

static pr_ca ca;
static struct cred old_c, new_c, other_c, dev_c;

typedef struct {
    pr_conn *conn;
    char fp[65];
    int opened, closed;
} client;

static struct {
    uv_loop_t loop;
    uv_timer_t guard;
    rt_router r;
    pr_idfile id_old, id_new, id_other;
    pr_tls_ctx *cctx;
    client a, b;
    int step, timed_out;
} w;

static void issue(const char *uri, int usage, struct cred *c)
{
    pr_cert_req req = {.cn = "t", .uri = uri, .usage = usage,
                       .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_issue(&ca, &req, &c->cert, &c->key), 0);
}

static int group_setup(void **state)
{
    (void)state;
    pr_log_init("router", PR_LOG_WARN);
    assert_int_equal(pr_ca_create("net", &ca), 0);
    issue("spiffe://net/router/r1", PR_CERT_BOTH, &old_c);
    issue("spiffe://net/router/r1", PR_CERT_BOTH, &new_c);
    issue("spiffe://net/router/r2", PR_CERT_BOTH, &other_c);
    issue("spiffe://net/identity/dev1", PR_CERT_CLIENT, &dev_c);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(old_c.cert), free(old_c.key), free(new_c.cert), free(new_c.key);
    free(other_c.cert), free(other_c.key), free(dev_c.cert), free(dev_c.key);
    pr_ca_free(&ca);
    return 0;
}

static void set_id(pr_idfile *id, const char *rid, const struct cred *c)
{
    snprintf(id->kind, sizeof(id->kind), "router");
    snprintf(id->id, sizeof(id->id), "%s", rid);
    snprintf(id->name, sizeof(id->name), "%s", rid);
    snprintf(id->network, sizeof(id->network), "net");
    id->cert_pem = c->cert;
    id->key_pem = c->key;
    id->ca_pem = ca.cert_pem;
}

/* The leaf fingerprint the server showed this connection. */
static void peer_fp(pr_conn *c, char fp[65])
{
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;

    assert_non_null(b);
    assert_int_equal(PEM_write_bio_X509(b, pr_conn_peer_cert(c)), 1);
    n = BIO_get_mem_data(b, &pem);
    assert_true(n > 0);
    char *copy = strndup(pem, (size_t)n);
    assert_int_equal(pr_pki_fingerprint(copy, fp), 0);
    free(copy);
    BIO_free(b);
}

static void connect_client(client *c);

static void c_open(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);

    assert_int_equal(status, 0);
    c->opened = 1;
    peer_fp(conn, c->fp);
    if (c == &w.a) {
        /* Reload while a is open: b must see the new certificate. */
        assert_int_equal(rt_router_reload(&w.r, &w.id_new), 0);
        connect_client(&w.b);
        return;
    }
    assert_false(w.a.closed); /* the reload cut nothing */
    pr_conn_close(w.a.conn, 0);
    pr_conn_close(w.b.conn, 0);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void c_read(pr_conn *conn, const uint8_t *d, size_t n)
{
    (void)conn, (void)d, (void)n;
}

static void c_close(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);

    (void)status;
    c->closed = 1;
    c->conn = NULL;
}

static const pr_conn_cbs cbs = {c_open, c_read, NULL, c_close};

static void connect_client(client *c)
{
    struct sockaddr_storage ss;

    assert_int_equal(pr_addr_resolve(w.r.edge_addr, &ss), 0);
    assert_int_equal(pr_conn_connect(w.cctx, &w.loop, (struct sockaddr *)&ss, NULL, &cbs, c,
                                     &c->conn),
                     0);
}

static void guard_cb(uv_timer_t *t)
{
    (void)t;
    w.timed_out = 1;
    if (w.a.conn)
        pr_conn_close(w.a.conn, 0);
    if (w.b.conn)
        pr_conn_close(w.b.conn, 0);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void world_init(void)
{
    pr_tls_cfg cc = {.ca_pem = ca.cert_pem, .cert_pem = dev_c.cert, .key_pem = dev_c.key};

    memset(&w, 0, sizeof(w));
    assert_int_equal(uv_loop_init(&w.loop), 0);
    set_id(&w.id_old, "r1", &old_c);
    set_id(&w.id_new, "r1", &new_c);
    set_id(&w.id_other, "r2", &other_c);
    assert_int_equal(rt_router_init(&w.r, &w.loop, &w.id_old), 0);
    assert_int_equal(pr_tls_ctx_new(&cc, &w.cctx), 0);
}

static void world_run(void)
{
    uv_timer_init(&w.loop, &w.guard);
    uv_timer_start(&w.guard, guard_cb, GUARD_MS, 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_false(w.timed_out);
    assert_int_equal(uv_loop_close(&w.loop), 0); /* no live handles */
    rt_router_free(&w.r);
    pr_tls_ctx_free(w.cctx);
}

static void test_new_connections_get_new_cert(void **state)
{
    char fp_old[65], fp_new[65];

    (void)state;
    world_init();
    assert_int_equal(rt_router_listen_edge(&w.r, "127.0.0.1:0"), 0);
    connect_client(&w.a);
    world_run();
    assert_int_equal(pr_pki_fingerprint(old_c.cert, fp_old), 0);
    assert_int_equal(pr_pki_fingerprint(new_c.cert, fp_new), 0);
    assert_true(w.a.opened && w.b.opened);
    assert_string_equal(w.a.fp, fp_old);
    assert_string_equal(w.b.fp, fp_new);
    assert_ptr_equal(w.r.id, &w.id_new);
}

static void test_other_router_refused(void **state)
{
    pr_tls_ctx *e, *ls, *lc;

    (void)state;
    world_init();
    e = w.r.edge_ctx, ls = w.r.link_srv_ctx, lc = w.r.link_cli_ctx;
    assert_int_equal(rt_router_reload(&w.r, &w.id_other), WEFT_EINVAL);
    snprintf(w.id_new.network, sizeof(w.id_new.network), "elsewhere");
    assert_int_equal(rt_router_reload(&w.r, &w.id_new), WEFT_EINVAL);
    assert_ptr_equal(w.r.edge_ctx, e);
    assert_ptr_equal(w.r.link_srv_ctx, ls);
    assert_ptr_equal(w.r.link_cli_ctx, lc);
    assert_ptr_equal(w.r.id, &w.id_old);
    rt_router_close(&w.r);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    rt_router_free(&w.r);
    pr_tls_ctx_free(w.cctx);
}

/* SIGHUP's path: rt_renew_reload reads the file; a broken file leaves the
 * running identity in place. */
static void test_reload_from_file(void **state)
{
    char dir[] = "/tmp/rt_renew_XXXXXX";
    rt_renew rn;
    pr_tls_ctx *e;

    (void)state;
    assert_non_null(mkdtemp(dir));
    world_init();
    memset(&rn, 0, sizeof(rn));
    rn.r = &w.r;
    snprintf(rn.path, sizeof(rn.path), "%s/identity.json", dir);
    assert_true(rt_renew_reload(&rn) < 0); /* no file yet */
    assert_ptr_equal(w.r.id, &w.id_old);
    snprintf(w.id_new.controller, sizeof(w.id_new.controller), "https://127.0.0.1:1");
    assert_int_equal(pr_idfile_save(rn.path, &w.id_new), 0);
    e = w.r.edge_ctx;
    assert_int_equal(rt_renew_reload(&rn), 0);
    assert_ptr_equal(w.r.id, rn.owned);
    assert_ptr_not_equal(w.r.edge_ctx, e);
    assert_string_equal(w.r.id->cert_pem, new_c.cert);
    assert_int_equal(rn.reloads, 1);
    rt_router_close(&w.r);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    rt_router_free(&w.r);
    rt_renew_free(&rn);
    pr_tls_ctx_free(w.cctx);
    unlink(rn.path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_connections_get_new_cert),
        cmocka_unit_test(test_other_router_refused),
        cmocka_unit_test(test_reload_from_file),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
