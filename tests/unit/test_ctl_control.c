/* The control channel server (controller/control.c) over real TLS on
 * loopback, client and server on one loop: hello -> full map, a delta for a
 * change, a silent router dropped and marked offline, non-routers refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "controller/control.h"
#include "controller/netmap.h"
#include "proto/addr.h"
#include "proto/ident.h"
#include "proto/msg.h"
#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

typedef struct {
    char tmp[64], dir[128];
    ctl c;
    uv_loop_t loop;
    uv_timer_t guard;
    ctl_control *srv;
    pr_conn *conn;
    pr_reader rd;
    int fulls, deltas, closed, close_status;
    uint64_t opened_at, closed_at;
    json_t *full, *delta;
    uint8_t tx[4096];
} fx;

static void on_stopped(void *arg)
{
    fx *f = arg;

    uv_close((uv_handle_t *)&f->guard, NULL);
}

static void stop_all(fx *f)
{
    ctl_control_stop(f->srv, on_stopped, f);
}

static void guard_cb(uv_timer_t *t)
{
    fx *f = t->data;

    if (f->conn)
        pr_conn_close(f->conn, WEFT_ETIMEDOUT);
    stop_all(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    char err[512] = "";
    ctl_config cfg;
    FILE *out = fopen("/dev/null", "w");

    strcpy(f->tmp, "/tmp/weft-test-ctlctl.XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(f->dir, sizeof(f->dir), "%s/net", f->tmp);
    ctl_init_opts o = {.dir = f->dir, .listen = "127.0.0.1:2004", .name = "unet"};
    assert_int_equal(ctl_init(&o, out, err, sizeof(err)), 0);
    fclose(out);
    assert_int_equal(ctl_config_load(&cfg, f->dir, err, sizeof(err)), 0);
    assert_int_equal(ctl_open(&f->c, &cfg, err, sizeof(err)), 0);
    json_t *r = json_pack("{s:s, s:s, s:b}", "id", "r1", "name", "r1", "enrolled", 1);
    json_t *i = json_pack("{s:s, s:s}", "id", "i1", "name", "alice");
    assert_int_equal(ctl_store_create(f->c.store, "routers", r), 0);
    assert_int_equal(ctl_store_create(f->c.store, "identities", i), 0);
    json_decref(r);
    json_decref(i);
    assert_int_equal(ctl_netmap_new(f->c.store, f->c.pk, &f->c.map), 0);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, guard_cb, 10000, 0);
    assert_int_equal(ctl_control_start(&f->loop, &f->c, "127.0.0.1:0", &f->srv), 0);
    assert_true(ctl_control_port(f->srv) > 0);
    assert_int_equal(pr_reader_init(&f->rd), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[160];

    assert_int_equal(uv_loop_close(&f->loop), 0);
    pr_reader_free(&f->rd);
    json_decref(f->full);
    json_decref(f->delta);
    ctl_netmap_free(f->c.map);
    f->c.map = NULL;
    ctl_close(&f->c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmp);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void send_json(fx *f, uint16_t type, const char *json)
{
    pr_enc e;
    size_t n;

    pr_enc_init(&e, f->tx, sizeof(f->tx), type, 0);
    assert_int_equal(pr_enc_finish(&e, json, strlen(json), &n), 0);
    assert_int_equal(pr_conn_write(f->conn, f->tx, n), 0);
}

static int on_frame(void *arg, const pr_frame *fr)
{
    fx *f = arg;
    json_t *j = json_loadb((const char *)fr->body, fr->body_len, 0, NULL);

    assert_non_null(j);
    if (fr->type == PR_CTL_MAP_FULL) {
        f->fulls++;
        f->full = j;
        /* A change made now reaches this router as a delta. */
        json_t *fields = json_pack("{s:b}", "disabled", 1);
        assert_int_equal(ctl_store_update(f->c.store, "identities", "i1", fields), 0);
        json_decref(fields);
        ctl_map_touch(&f->c, "identities", "i1");
    } else if (fr->type == PR_CTL_MAP_DELTA) {
        f->deltas++;
        json_decref(f->delta);
        f->delta = j;
    } else {
        json_decref(j);
    }
    return 0;
}

static void c_open(pr_conn *c, int status)
{
    fx *f = pr_conn_data(c);

    if (status < 0)
        return;
    f->opened_at = uv_now(&f->loop);
    send_json(f, PR_CTL_HELLO, "{\"id\":\"r1\",\"version\":\"t\",\"edge_listen\":\"127.0.0.1:3999\","
                               "\"link_listen\":\"\",\"map_version\":0}");
}

static void c_read(pr_conn *c, const uint8_t *data, size_t len)
{
    fx *f = pr_conn_data(c);

    assert_int_equal(pr_reader_feed(&f->rd, data, len, on_frame, f), 0);
}

static void c_close(pr_conn *c, int status)
{
    fx *f = pr_conn_data(c);

    f->closed++;
    f->close_status = status;
    f->closed_at = uv_now(&f->loop);
    f->conn = NULL;
    stop_all(f);
}

static void dial_as(fx *f, int kind, const char *id)
{
    static const pr_conn_cbs cbs = {c_open, c_read, NULL, c_close};
    char uri[256], *cert = NULL, *key = NULL, addr[64];
    struct sockaddr_storage ss;
    pr_tls_ctx *ctx = NULL;

    assert_int_equal(pr_ident_format(kind, "unet", id, uri, sizeof(uri)), 0);
    pr_cert_req req = {.cn = id, .uri = uri, .usage = PR_CERT_CLIENT,
                       .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_issue(&f->c.ca, &req, &cert, &key), 0);
    pr_tls_cfg tc = {.ca_pem = f->c.ca.cert_pem, .cert_pem = cert, .key_pem = key};
    assert_int_equal(pr_tls_ctx_new(&tc, &ctx), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ctl_control_port(f->srv));
    assert_int_equal(pr_addr_resolve(addr, &ss), 0);
    assert_int_equal(pr_conn_connect(ctx, &f->loop, (struct sockaddr *)&ss, NULL, &cbs, f, &f->conn),
                     0);
    pr_tls_ctx_free(ctx);
    free(cert);
    free(key);
}

static void test_router_session(void **state)
{
    fx *f = *state;
    json_t *r, *op;

    ctl_control_set_dead_ms(f->srv, 400);
    dial_as(f, PR_IDENT_ROUTER, "r1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->fulls, 1);
    /* The router is online in its own full map, at the address of its hello. */
    r = json_array_get(json_object_get(f->full, "routers"), 0);
    assert_true(json_is_true(json_object_get(r, "online")));
    assert_string_equal(json_string_value(json_object_get(r, "edge_listen")), "127.0.0.1:3999");
    assert_int_equal(f->deltas, 1);
    assert_int_equal(json_integer_value(json_object_get(f->delta, "base")),
                     json_integer_value(json_object_get(f->full, "version")));
    op = json_array_get(json_object_get(f->delta, "ops"), 0);
    assert_string_equal(json_string_value(json_object_get(op, "kind")), "revoked");
    assert_string_equal(json_string_value(json_object_get(json_object_get(op, "obj"), "id")), "i1");
    /* Silent after its hello: dropped after the limit, not long after. */
    assert_int_equal(f->closed, 1);
    assert_true(f->closed_at - f->opened_at >= 400);
    assert_true(f->closed_at - f->opened_at < 3000);
    assert_false(ctl_netmap_router_is_online(f->c.map, "r1"));
    /* The hello's address was stored. */
    assert_int_equal(ctl_store_get(f->c.store, "routers", "r1", &r), 0);
    assert_string_equal(json_string_value(json_object_get(r, "edge_listen")), "127.0.0.1:3999");
    json_decref(r);
}

static void test_refused(void **state)
{
    fx *f = *state;

    dial_as(f, PR_IDENT_IDENTITY, "i1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->fulls, 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(ctl_control_count(NULL), 0);
}

static void test_unknown_router(void **state)
{
    fx *f = *state;

    dial_as(f, PR_IDENT_ROUTER, "r404");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->fulls, 0);
    assert_int_equal(f->closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_router, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
