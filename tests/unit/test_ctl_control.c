/* The control channel server (controller/control.c) over real TLS on
 * loopback, client and server on one loop: hello -> full map, a delta for a
 * change, a silent router dropped and marked offline, non-routers refused, a
 * map of 100,000 revoked identities sent in parts and joined as a router
 * joins them, link reports and circuit events, identities' roles asked for
 * (CTL_ROLES_ASK) and pushed (CTL_ROLES), security events stored once per
 * event id and acknowledged (CTL_EVENT_ACK). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "controller/circuits.h"
#include "controller/control.h"
#include "controller/events.h"
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
    int mode; /* 0: one change after the map; BIG: parts; MESH: links and circuits */
    char *join;
    size_t join_len;
    int parts, max_parts;
    uint64_t part_version;
    size_t links_seen, circuits_seen;
    json_t *roles[2]; /* ROLES: the CTL_ROLES bodies received */
    int nroles;
    json_t *acks; /* EVENTS: the CTL_EVENT_ACK bodies received */
    uint8_t tx[4096];
} fx;

enum { BIG = 1, MESH = 2, ROLES = 3, EVENTS = 4 };
#define NREVOKED 100000

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

/* 100,000 disabled identities, written in one batch as a bulk import does. */
static void many_revoked(ctl *c)
{
    char id[32];

    assert_int_equal(ctl_store_batch_begin(c->store), 0);
    for (int i = 0; i < NREVOKED; i++) {
        snprintf(id, sizeof(id), "x%07d", i);
        json_t *o = json_pack("{s:s, s:s, s:b}", "id", id, "name", id, "disabled", 1);
        assert_int_equal(ctl_store_create(c->store, "identities", o), 0);
        json_decref(o);
    }
    assert_int_equal(ctl_store_batch_end(c->store, 1), 0);
}

static int setup_n(void **state, int big)
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
    if (big)
        many_revoked(&f->c);
    assert_int_equal(ctl_netmap_new(f->c.store, f->c.pk, &f->c.map), 0);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, guard_cb, 30000, 0);
    assert_int_equal(ctl_control_start(&f->loop, &f->c, "127.0.0.1:0", &f->srv), 0);
    assert_true(ctl_control_port(f->srv) > 0);
    assert_int_equal(pr_reader_init(&f->rd), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_n(state, 0);
}

static int setup_big(void **state)
{
    return setup_n(state, 1);
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[160];

    assert_int_equal(uv_loop_close(&f->loop), 0);
    pr_reader_free(&f->rd);
    json_decref(f->full);
    json_decref(f->delta);
    json_decref(f->roles[0]);
    json_decref(f->roles[1]);
    free(f->join);
    ctl_circuits_free(f->c.circuits);
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

static void disable_i1(fx *f)
{
    json_t *fields = json_pack("{s:b}", "disabled", 1);

    assert_int_equal(ctl_store_update(f->c.store, "identities", "i1", fields), 0);
    json_decref(fields);
    ctl_map_touch(&f->c, "identities", "i1");
}

/* Joins map parts as docs/dataplane.md tells routers to; returns the whole
 * body once the last part arrived, else NULL. */
static json_t *join_part(fx *f, const pr_frame *fr)
{
    uint64_t v = 0;
    json_t *j;

    if (!(fr->flags & CTL_MAP_F_MORE) && f->parts == 0)
        return json_loadb((const char *)fr->body, fr->body_len, 0, NULL);
    assert_int_equal(pr_frame_u64(fr, PR_H_MAP_VERSION, &v), 0);
    if (f->parts > 0)
        assert_int_equal(v, f->part_version);
    assert_true(fr->body_len <= CTL_MAP_PART_MAX);
    f->part_version = v;
    f->join = realloc(f->join, f->join_len + fr->body_len);
    assert_non_null(f->join);
    memcpy(f->join + f->join_len, fr->body, fr->body_len);
    f->join_len += fr->body_len;
    f->parts++;
    if (f->parts == 1 && f->mode == BIG)
        disable_i1(f); /* its delta must wait behind the map's last part */
    if (fr->flags & CTL_MAP_F_MORE)
        return NULL;
    j = json_loadb(f->join, f->join_len, 0, NULL);
    assert_non_null(j);
    f->max_parts = f->parts > f->max_parts ? f->parts : f->max_parts;
    f->parts = 0;
    f->join_len = 0;
    return j;
}

static void set_roles(fx *f, const char *role)
{
    json_t *fields = json_pack("{s:[s]}", "roles", role);

    assert_int_equal(ctl_store_update(f->c.store, "identities", "i1", fields), 0);
    json_decref(fields);
}

/* ROLES: asks for i1, an unknown id and a number, then sends two bad asks
 * (no answer, the channel stays); the answer says i1's roles. Then i1's
 * roles change and are pushed; the push is answered with a ping. */
static void roles_frame(fx *f, const pr_frame *fr)
{
    if (fr->type == PR_CTL_MAP_FULL) {
        set_roles(f, "fleet");
        send_json(f, PR_CTL_ROLES_ASK, "{\"identities\": [\"i1\", \"nobody\", 5]}");
        send_json(f, PR_CTL_ROLES_ASK, "{\"identities\": \"i1\"}");
        send_json(f, PR_CTL_ROLES_ASK, "[1]");
    } else if (fr->type == PR_CTL_ROLES && f->nroles < 2) {
        f->roles[f->nroles++] = json_loadb((const char *)fr->body, fr->body_len, 0, NULL);
        if (f->nroles == 1) {
            set_roles(f, "west");
            ctl_control_roles_changed(NULL, "i1");           /* no server: nothing */
            ctl_control_roles_changed(f->srv, "nobody");     /* no such identity: nothing */
            ctl_control_roles_changed(f->srv, "i1");
        } else {
            send_json(f, PR_CTL_PING, "{}");
        }
    } else if (fr->type == PR_CTL_PONG) {
        pr_conn_close(f->conn, 0);
    }
}

static void mesh_after_full(fx *f)
{
    send_json(f, PR_CTL_LINK_REPORT,
              "{\"links\":[{\"peer\":\"r2\",\"rtt_us\":300,\"up\":true,\"queue\":0}]}");
    send_json(f, PR_CTL_CIRCUIT_EVENT,
              "{\"event\":\"open\",\"circuit\":\"00000000000000aa\",\"service\":\"s\","
              "\"path\":[\"r1\",\"r2\"]}");
    send_json(f, PR_CTL_CIRCUIT_EVENT, "{\"event\":\"bogus\"}");
    send_json(f, PR_CTL_PING, "{}");
}

/* BIG and MESH: one full map (maybe in parts), then deltas; MESH closes
 * after the pong that follows its reports. */
static int mode_frame(fx *f, const pr_frame *fr)
{
    json_t *j, *links;

    if (fr->type == PR_CTL_PONG && f->mode == MESH) {
        links = ctl_netmap_links(f->c.map);
        f->links_seen = json_array_size(links);
        json_decref(links);
        f->circuits_seen = ctl_circuits_count(f->c.circuits);
        pr_conn_close(f->conn, 0);
        return 0;
    }
    if ((fr->type != PR_CTL_MAP_FULL && fr->type != PR_CTL_MAP_DELTA) ||
        (j = join_part(f, fr)) == NULL)
        return 0;
    if (fr->type == PR_CTL_MAP_FULL) {
        f->fulls++;
        f->full = j;
        if (f->mode == MESH)
            mesh_after_full(f);
        return 0;
    }
    f->deltas++;
    json_decref(f->delta);
    f->delta = j;
    if (f->mode == BIG)
        pr_conn_close(f->conn, 0);
    return 0;
}

/* EVENTS: after the map, an event with an id twice (a router sending it
 * again after a restart), one without (an older router), one with a bad id
 * and one that is not JSON; then a ping, and the pong closes. */
static void events_frame(fx *f, const pr_frame *fr)
{
    static const char ev[] = "{\"kind\":\"rate\",\"identity\":\"i1\",\"eid\":\"b00t-1\","
                             "\"at\":1,\"blocked\":true}";

    if (fr->type == PR_CTL_MAP_FULL) {
        send_json(f, PR_CTL_EVENT, ev);
        send_json(f, PR_CTL_EVENT, ev);
        send_json(f, PR_CTL_EVENT, "{\"kind\":\"rate\",\"identity\":\"i1\"}");
        send_json(f, PR_CTL_EVENT, "{\"kind\":\"rate\",\"identity\":\"i1\",\"eid\":\"a b\"}");
        send_json(f, PR_CTL_EVENT, "{\"kind\":");
        send_json(f, PR_CTL_PING, "{}");
    } else if (fr->type == PR_CTL_EVENT_ACK) {
        json_array_append_new(f->acks, json_loadb((const char *)fr->body, fr->body_len, 0, NULL));
    } else if (fr->type == PR_CTL_PONG) {
        pr_conn_close(f->conn, 0);
    }
}

static int on_frame(void *arg, const pr_frame *fr)
{
    fx *f = arg;

    if (f->mode == EVENTS) {
        events_frame(f, fr);
        return 0;
    }
    if (f->mode == ROLES) {
        roles_frame(f, fr);
        return 0;
    }
    if (f->mode)
        return mode_frame(f, fr);
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
    /* Leaves come from the active issuer and carry its certificate after them. */
    assert_int_equal(pr_ca_issue(&f->c.issuer, &req, &cert, &key), 0);
    if (f->c.issuer_is_intermediate) {
        size_t n = strlen(cert), m = strlen(f->c.issuer.cert_pem);
        char *chain = realloc(cert, n + m + 1);
        assert_non_null(chain);
        memcpy(chain + n, f->c.issuer.cert_pem, m + 1);
        cert = chain;
    }
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

static void test_big_map(void **state)
{
    fx *f = *state;

    f->mode = BIG;
    dial_as(f, PR_IDENT_ROUTER, "r1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->fulls, 1);
    assert_true(f->max_parts > 1);
    assert_int_equal(json_array_size(json_object_get(f->full, "revoked")), NREVOKED);
    /* The change made while the map was on its way follows it, in order. */
    assert_int_equal(f->deltas, 1);
    assert_int_equal(json_integer_value(json_object_get(f->delta, "base")),
                     json_integer_value(json_object_get(f->full, "version")));
}

static void test_links_and_circuits(void **state)
{
    fx *f = *state;
    json_t *r = json_pack("{s:s, s:s, s:b}", "id", "r2", "name", "r2", "enrolled", 1), *op;

    assert_int_equal(ctl_store_create(f->c.store, "routers", r), 0);
    json_decref(r);
    ctl_map_touch(&f->c, "routers", "r2");
    assert_int_equal(ctl_circuits_new(0, &f->c.circuits), 0);
    f->mode = MESH;
    dial_as(f, PR_IDENT_ROUTER, "r1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->fulls, 1);
    assert_int_equal(f->links_seen, 1);
    assert_int_equal(f->circuits_seen, 1); /* the bogus event was refused */
    /* The link reached the router in a delta: down, as r2 is offline. */
    assert_int_equal(f->deltas, 1);
    op = json_array_get(json_object_get(f->delta, "ops"), 0);
    assert_string_equal(json_string_value(json_object_get(op, "kind")), "link");
    assert_string_equal(json_string_value(json_object_get(json_object_get(op, "obj"), "id")),
                        "r1|r2");
    assert_false(json_is_true(json_object_get(json_object_get(op, "obj"), "up")));
    /* r1 gone: nobody reports the link any more. */
    r = ctl_netmap_links(f->c.map);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
}

static void test_roles(void **state)
{
    fx *f = *state;
    json_t *r0, *r1;
    int64_t now = (int64_t)time(NULL);

    f->mode = ROLES;
    dial_as(f, PR_IDENT_ROUTER, "r1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->nroles, 2);
    /* The answer: i1's roles from the store, the unknown id left out. */
    r0 = json_object_get(f->roles[0], "roles");
    assert_int_equal(json_object_size(r0), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r0, "i1"), 0)), "fleet");
    assert_true(json_integer_value(json_object_get(f->roles[0], "at")) >= now - 5);
    /* The push after the change: the new roles. */
    r1 = json_object_get(f->roles[1], "roles");
    assert_int_equal(json_object_size(r1), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r1, "i1"), 0)), "west");
    assert_true(json_integer_value(json_object_get(f->roles[1], "at")) >=
                json_integer_value(json_object_get(f->roles[0], "at")));
    /* The bad asks did not cost the router its channel: it closed it itself. */
    assert_int_equal(f->close_status, 0);
}

/* An events.db made before events had ids, with one event in it. */
static void old_events_db(const char *dir)
{
    char path[256];
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/%s", dir, CTL_EVENTS_DB);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                  " ts INTEGER NOT NULL, kind TEXT NOT NULL, identity TEXT,"
                                  " doc TEXT NOT NULL);"
                                  "INSERT INTO events(ts, kind, identity, doc)"
                                  " VALUES(1, 'rate', 'i1', '{\"kind\":\"rate\"}');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

static void test_events(void **state)
{
    fx *f = *state;
    json_t *list = NULL, *ev;

    old_events_db(f->dir);
    assert_int_equal(ctl_events_open(NULL, f->dir, &f->c.events), 0);
    f->acks = json_array();
    f->mode = EVENTS;
    dial_as(f, PR_IDENT_ROUTER, "r1");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->close_status, 0);
    /* Both copies acknowledged, nothing for events without a good id. */
    assert_int_equal(json_array_size(f->acks), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(f->acks, i), "eid")),
                            "b00t-1");
    /* Stored once, with its id and the router's; the old router's event too,
     * after the one the store had before it knew ids. */
    assert_int_equal(ctl_events_list(f->c.events, 0, 100, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 3);
    json_array_remove(list, 0);
    ev = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "eid")), "b00t-1");
    assert_string_equal(json_string_value(json_object_get(ev, "router")), "r1");
    assert_int_equal(json_integer_value(json_object_get(ev, "at")), 1);
    assert_null(json_object_get(json_array_get(list, 1), "eid"));
    json_decref(list);
    /* The same id from another router is another event. */
    static const char other[] = "{\"kind\":\"rate\",\"identity\":\"i1\",\"eid\":\"b00t-1\"}";
    char eid[CTL_EVENT_ID_CAP];
    assert_int_equal(ctl_events_from_router(&f->c, "r2", (const uint8_t *)other, strlen(other), eid,
                                            sizeof(eid)),
                     0);
    assert_int_equal(ctl_events_from_router(&f->c, "r2", (const uint8_t *)other, strlen(other), eid,
                                            sizeof(eid)),
                     1);
    assert_string_equal(eid, "b00t-1");
    assert_int_equal(ctl_events_list(f->c.events, 0, 100, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 4);
    json_decref(list);
    json_decref(f->acks);
    ctl_events_close(f->c.events);
    f->c.events = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_map, setup_big, teardown),
        cmocka_unit_test_setup_teardown(test_links_and_circuits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
