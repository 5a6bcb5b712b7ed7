/* The router's control channel (router/control.c) against a small controller
 * written here: real TLS with a controller certificate, CTL_HELLO in, a full
 * map then a delta out, link reports in; the controller drops the connection
 * and the router comes back with its map version. Security events are kept
 * until acknowledged (CTL_EVENT_ACK): one not acknowledged goes out again on
 * the next connection with the same id, and the router's file empties. */
#include "test_rt_world.h"

#include <sys/stat.h>

#include "router/evqueue.h"

static struct {
    uv_tcp_t tcp;
    pr_tls_ctx *ctx;
    pr_conn *conn;
    pr_reader rd;
    char addr[64];
    int hellos, reports, dialled, open_conns;
    long long hello_ver[2];
    char hello_id[2][RT_ID_CAP];
    char link_listen[96];
    int parts_mode; /* test_map_parts */
    int events_mode;                /* test_events_acked */
    char eid[2][4][RT_EVQ_EID_CAP]; /* the ids of the events each connection brought */
    int nev[2];
} srv;

static struct cred ccred;

static void srv_send(uint16_t type, const char *json)
{
    static uint8_t buf[8192];
    size_t n;
    pr_enc e;

    pr_enc_init(&e, buf, sizeof(buf), type, 0);
    assert_int_equal(pr_enc_finish(&e, json, strlen(json), &n), 0);
    assert_int_equal(pr_conn_write(srv.conn, buf, n), 0);
}

static void send_maps(void)
{
    char b64[64], map[1024];
    const char *delta = "{\"version\": 6, \"base\": 5, \"ops\": ["
                        "{\"op\": \"put\", \"kind\": \"service\", \"obj\": {\"id\": \"s2\", \"name\": \"db\"}},"
                        "{\"op\": \"put\", \"kind\": \"link\", \"obj\": {\"a\": \"rz\", \"b\": \"ra\","
                        " \"rtt_us\": 42, \"up\": true}}]}";

    sodium_bin2base64(b64, sizeof(b64), sign_pk, sizeof(sign_pk), sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\": 5, \"signing_key\": \"%s\", \"routers\": [{\"id\": \"ra\"}],"
             " \"services\": [{\"id\": \"s1\", \"name\": \"web\"}]}", b64);
    srv_send(PR_CTL_MAP_FULL, map);
    srv_send(PR_CTL_MAP_DELTA, delta);
}

static void parts_on_hello(int k);

static void on_hello(const pr_frame *f)
{
    json_t *j = json_loadb((const char *)f->body, f->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    int k = srv.hellos++;

    assert_non_null(j);
    assert_true(k < 2);
    assert_non_null(id);
    snprintf(srv.hello_id[k], sizeof(srv.hello_id[k]), "%s", id);
    srv.hello_ver[k] = json_integer_value(json_object_get(j, "map_version"));
    snprintf(srv.link_listen, sizeof(srv.link_listen), "%s",
             json_string_value(json_object_get(j, "link_listen")));
    json_decref(j);
    if (srv.parts_mode)
        parts_on_hello(k);
    else if (srv.events_mode)
        return;
    else if (k == 0)
        send_maps();
    else
        world_stop();
}

static void on_report(const pr_frame *f)
{
    json_t *j = json_loadb((const char *)f->body, f->body_len, 0, NULL);

    assert_non_null(j);
    assert_true(json_is_array(json_object_get(j, "links")));
    srv.reports++;
    json_decref(j);
}

/* Events: the first connection acknowledges only the first event and
 * closes; the second acknowledges all it gets. */
static void on_event(const pr_frame *f)
{
    json_t *j = json_loadb((const char *)f->body, f->body_len, 0, NULL);
    const char *eid = json_string_value(json_object_get(j, "eid"));
    int k = srv.hellos - 1, n;
    char ack[128];

    assert_non_null(eid);
    assert_true(k >= 0 && k < 2 && srv.nev[k] < 4);
    n = srv.nev[k]++;
    snprintf(srv.eid[k][n], sizeof(srv.eid[k][n]), "%s", eid);
    snprintf(ack, sizeof(ack), "{\"eid\":\"%s\"}", eid);
    json_decref(j);
    if (k == 1 || n == 0)
        srv_send(PR_CTL_EVENT_ACK, ack);
    if (k == 0 && n == 1)
        pr_conn_close(srv.conn, 0);
}

static int srv_frame(void *arg, const pr_frame *f)
{
    if (f->type == PR_CTL_HELLO)
        on_hello(f);
    else if (f->type == PR_CTL_LINK_REPORT)
        on_report(f);
    else if (f->type == PR_CTL_EVENT)
        on_event(f);
    return 0;
}

static void srv_open(pr_conn *c, int status)
{
    const char *uri = pr_conn_peer_uri(c);

    assert_int_equal(status, 0);
    assert_non_null(uri);
    assert_string_equal(uri, "spiffe://net/router/ra");
}

static void srv_read(pr_conn *c, const uint8_t *d, size_t n)
{
    assert_int_equal(pr_reader_feed(&srv.rd, d, n, srv_frame, NULL), 0);
}

static void srv_close(pr_conn *c, int status)
{
    if (srv.conn == c)
        srv.conn = NULL;
    srv.open_conns--;
    pr_reader_free(&srv.rd);
}

static void parts_drain(pr_conn *c);
static const pr_conn_cbs scbs = {srv_open, srv_read, parts_drain, srv_close};

static void srv_accept(uv_stream_t *s, int status)
{
    assert_int_equal(status, 0);
    assert_null(srv.conn); /* one control connection at a time */
    assert_int_equal(pr_reader_init(&srv.rd), 0);
    assert_int_equal(pr_conn_accept(srv.ctx, s, &scbs, NULL, &srv.conn), 0);
    srv.open_conns++;
}

static void srv_start(void)
{
    pr_tls_cfg cfg = {.server = 1, .ca_pem = ca.cert_pem, .cert_pem = ccred.cert,
                      .key_pem = ccred.key, .require_peer_cert = 1};
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    assert_int_equal(pr_tls_ctx_new(&cfg, &srv.ctx), 0);
    assert_int_equal(pr_addr_resolve("127.0.0.1:0", &ss), 0);
    uv_tcp_init(&w.loop, &srv.tcp);
    assert_int_equal(uv_tcp_bind(&srv.tcp, (struct sockaddr *)&ss, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv.tcp, 8, srv_accept), 0);
    uv_tcp_getsockname(&srv.tcp, (struct sockaddr *)&ss, &len);
    pr_addr_format((struct sockaddr *)&ss, srv.addr, sizeof(srv.addr));
}

/* After the delta applied and a link report came: drop the router. */
static void ctl_poll(void)
{
    rt_router *r = &w.r[0];

    if (srv.dialled || srv.hellos != 1 || r->map.version != 6 || srv.reports == 0)
        return;
    assert_non_null(rt_map_service_by_name(&r->map, "db"));
    assert_non_null(rt_map_service_by_name(&r->map, "web"));
    assert_int_equal(rt_map_count(&r->map.links), 1);
    assert_string_equal(((const rt_map_link *)rt_map_at(&r->map.links, 0))->a, "ra");
    srv.dialled = 1;
    pr_conn_close(srv.conn, 0);
}

static void stop_all(void)
{
    uv_close((uv_handle_t *)&srv.tcp, NULL);
    if (srv.conn)
        pr_conn_close(srv.conn, 0);
}

static void test_control_channel(void **state)
{
    rt_control_cfg cc = {.control_addr = srv.addr, .edge_listen = "127.0.0.1:3022"};

    memset(&srv, 0, sizeof(srv));
    world_init(1, 1);
    srv_start();
    cc.link_listen = w.r[0].link_addr;
    w.poll_cb = ctl_poll;
    w.on_stop = stop_all;
    assert_int_equal(rt_control_start(&w.r[0], &cc), 0);
    world_run(10000);
    assert_int_equal(srv.hellos, 2);
    assert_string_equal(srv.hello_id[0], "ra");
    assert_int_equal(srv.hello_ver[0], 0);
    assert_int_equal(srv.hello_ver[1], 6); /* it came back knowing its map */
    assert_string_equal(srv.link_listen, w.r[0].link_addr);
    assert_true(srv.reports >= 1);
    assert_int_equal(srv.open_conns, 0);
    pr_tls_ctx_free(srv.ctx);
}

/* ---- a map in parts: 100,000 revoked identities ---- */

#define NREVOKED 100000
#define PART     65536

static struct {
    char *text;          /* the full map's JSON */
    size_t len, off;     /* sent up to off */
    uint64_t t0, t_sent; /* uv_hrtime at the first and last part */
    int phase;           /* 1: full map going, 2: delta parts sent, 3: interrupted parts sent */
} pm;

static void srv_send_part(uint16_t type, uint16_t flags, uint64_t version, const void *body,
                          size_t len)
{
    static uint8_t buf[PR_FRAME_MAX];
    size_t n;
    pr_enc e;

    pr_enc_init(&e, buf, sizeof(buf), type, flags);
    pr_enc_u64(&e, PR_H_MAP_VERSION, version);
    assert_int_equal(pr_enc_finish(&e, body, len, &n), 0);
    assert_int_equal(pr_conn_write(srv.conn, buf, n), 0);
}

static char *big_map(size_t *len)
{
    char b64[64], *t;
    size_t cap = (size_t)NREVOKED * 48 + 1024, off;

    sodium_bin2base64(b64, sizeof(b64), sign_pk, sizeof(sign_pk), sodium_base64_VARIANT_ORIGINAL);
    assert_non_null(t = malloc(cap));
    off = (size_t)snprintf(t, cap, "{\"version\": 10, \"signing_key\": \"%s\", \"routers\": "
                           "[{\"id\": \"ra\"}], \"revoked\": [", b64);
    for (int i = 0; i < NREVOKED; i++)
        off += (size_t)snprintf(t + off, cap - off, "%s\"id-%08d-0000-4000-8000-%012d\"",
                                i ? "," : "", i, i);
    off += (size_t)snprintf(t + off, cap - off, "]}");
    *len = off;
    return t;
}

/* Parts of the full map while the connection takes them. */
static void parts_pump(void)
{
    while (pm.phase == 1 && srv.conn && pr_conn_writable(srv.conn) && pm.off < pm.len) {
        size_t n = pm.len - pm.off > PART ? PART : pm.len - pm.off;
        int more = pm.off + n < pm.len;
        srv_send_part(PR_CTL_MAP_FULL, more ? PR_CTL_MAP_F_MORE : 0, 10, pm.text + pm.off, n);
        pm.off += n;
        if (!more)
            pm.t_sent = uv_hrtime();
    }
}

static void parts_drain(pr_conn *c)
{
    if (srv.parts_mode)
        parts_pump();
}

static void parts_on_hello(int k)
{
    if (k == 0) {
        pm.text = big_map(&pm.len);
        pm.t0 = uv_hrtime();
        pm.phase = 1;
        parts_pump();
        return;
    }
    world_stop(); /* it came back after the interrupted parts */
}

/* A delta in two parts, cut inside a string. */
static void send_delta_parts(void)
{
    const char *d = "{\"version\": 11, \"base\": 10, \"ops\": [{\"op\": \"put\", \"kind\": "
                    "\"revoked\", \"obj\": {\"id\": \"late-revoked\"}}, {\"op\": \"del\", "
                    "\"kind\": \"revoked\", \"obj\": {\"id\": \"id-00000007-0000-4000-8000-"
                    "000000000007\"}}]}";
    size_t cut = 70;

    srv_send_part(PR_CTL_MAP_DELTA, PR_CTL_MAP_F_MORE, 11, d, cut);
    srv_send_part(PR_CTL_MAP_DELTA, 0, 11, d + cut, strlen(d) - cut);
}

static void parts_poll(void)
{
    rt_router *r = &w.r[0];

    if (pm.phase == 1 && r->map.version == 10) {
        printf("# map of %d revocations in %zu parts (%zu bytes): applied %.1f ms after the "
               "first part\n", NREVOKED, (pm.len + PART - 1) / PART, pm.len,
               (double)(uv_hrtime() - pm.t0) / 1e6);
        assert_int_equal(rt_map_count(&r->map.revoked), NREVOKED);
        assert_true(rt_map_is_revoked(&r->map, "id-00099999-0000-4000-8000-000000099999"));
        assert_false(rt_map_is_revoked(&r->map, "id-00100000-0000-4000-8000-000000100000"));
        send_delta_parts();
        pm.phase = 2;
    } else if (pm.phase == 2 && r->map.version == 11) {
        assert_int_equal(rt_map_count(&r->map.revoked), NREVOKED);
        assert_true(rt_map_is_revoked(&r->map, "late-revoked"));
        assert_false(rt_map_is_revoked(&r->map, "id-00000007-0000-4000-8000-000000000007"));
        assert_true(rt_map_is_revoked(&r->map, "id-00000008-0000-4000-8000-000000000008"));
        /* A part, then a ping before the last part: a protocol error, so the router reconnects. */
        srv_send_part(PR_CTL_MAP_DELTA, PR_CTL_MAP_F_MORE, 12, "{\"version\": 12,", 15);
        srv_send(PR_CTL_PING, "{}");
        pm.phase = 3;
    }
}

static void test_map_parts(void **state)
{
    rt_control_cfg cc = {.control_addr = srv.addr, .edge_listen = "127.0.0.1:3022"};

    memset(&srv, 0, sizeof(srv));
    memset(&pm, 0, sizeof(pm));
    srv.parts_mode = 1;
    world_init(1, 1);
    srv_start();
    cc.link_listen = w.r[0].link_addr;
    w.poll_cb = parts_poll;
    w.on_stop = stop_all;
    assert_int_equal(rt_control_start(&w.r[0], &cc), 0);
    world_run(20000);
    assert_int_equal(pm.phase, 3);
    assert_int_equal(srv.hellos, 2);
    assert_int_equal(srv.hello_ver[1], 11); /* the half map was thrown away */
    assert_int_equal(srv.open_conns, 0);
    free(pm.text);
    pr_tls_ctx_free(srv.ctx);
}

/* ---- security events until acknowledged ---- */

static char evdir[64], evfile[128];

static void events_poll(void)
{
    struct stat st;

    if (srv.nev[1] == 1 && rt_control_events_queued(&w.r[0]) == 0 && stat(evfile, &st) == 0 &&
        st.st_size == 0)
        world_stop();
}

static void test_events_acked(void **state)
{
    rt_control_cfg cc = {.control_addr = srv.addr, .edge_listen = "127.0.0.1:3022"};
    json_t *ev = json_pack("{s:s, s:s}", "kind", "rate", "identity", "dev1");
    char cmd[160];

    memset(&srv, 0, sizeof(srv));
    srv.events_mode = 1;
    strcpy(evdir, "/tmp/weft-test-rtevq.XXXXXX");
    assert_non_null(mkdtemp(evdir));
    snprintf(evfile, sizeof(evfile), "%s/%s", evdir, RT_EVQ_FILE);
    world_init(1, 1);
    srv_start();
    cc.link_listen = w.r[0].link_addr;
    cc.data_dir = evdir;
    w.poll_cb = events_poll;
    w.on_stop = stop_all;
    assert_int_equal(rt_control_start(&w.r[0], &cc), 0);
    /* Two events before the channel is open: queued, written ahead. */
    rt_control_event(&w.r[0], ev);
    rt_control_event(&w.r[0], ev);
    json_decref(ev);
    assert_int_equal(rt_control_events_queued(&w.r[0]), 2);
    world_run(10000);
    assert_int_equal(srv.hellos, 2);
    assert_int_equal(srv.nev[0], 2);
    assert_int_equal(srv.nev[1], 1); /* only the one not acknowledged came again */
    assert_string_not_equal(srv.eid[0][0], srv.eid[0][1]);
    assert_string_equal(srv.eid[1][0], srv.eid[0][1]);
    pr_tls_ctx_free(srv.ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", evdir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    group_setup(state);
    issue("spiffe://net/controller/ctl", PR_CERT_BOTH, &ccred);
    return 0;
}

static int teardown(void **state)
{
    free(ccred.cert), free(ccred.key);
    return group_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_channel),
        cmocka_unit_test(test_map_parts),
        cmocka_unit_test(test_events_acked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
