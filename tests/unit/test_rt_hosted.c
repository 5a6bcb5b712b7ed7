/* Router-hosted services (router/hosted.c) on a real loop: the test is the
 * dialling edge over real TLS, the service a real TCP echo server on the same
 * loop. Bytes go through the router's end-to-end layer to the echo server and
 * back, half-close ends the circuit; the same over a link to the hosting
 * router; a service that is not listening fails the dial. */
#include "test_rt_world.h"

/* ---- a TCP echo server: echoes, and closes after the client's EOF ---- */

typedef struct {
    uv_tcp_t tcp;
    uv_shutdown_t sreq;
    char buf[4096];
} echo_conn;

static uv_tcp_t echo_srv;
static int echo_accepted, echo_bytes;

static void echo_closed(uv_handle_t *h)
{
    free(h->data);
}

static void echo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    echo_conn *e = h->data;
    *b = uv_buf_init(e->buf, sizeof(e->buf));
}

static void echo_written(uv_write_t *req, int status)
{
    free(req);
}

static void echo_shut(uv_shutdown_t *req, int status)
{
    uv_close((uv_handle_t *)req->handle, echo_closed);
}

static void echo_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    echo_conn *e = st->data;

    if (n > 0) {
        struct {
            uv_write_t req;
            char data[4096];
        } *wr = malloc(sizeof(*wr));
        assert_non_null(wr);
        memcpy(wr->data, b->base, (size_t)n);
        uv_buf_t out = uv_buf_init(wr->data, (unsigned)n);
        echo_bytes += (int)n;
        assert_int_equal(uv_write(&wr->req, st, &out, 1, echo_written), 0);
    } else if (n < 0) {
        uv_read_stop(st);
        if (n != UV_EOF || uv_shutdown(&e->sreq, st, echo_shut) < 0)
            uv_close((uv_handle_t *)st, echo_closed);
    }
}

static void echo_conn_cb(uv_stream_t *srv, int status)
{
    echo_conn *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    uv_tcp_init(srv->loop, &e->tcp);
    e->tcp.data = e;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&e->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&e->tcp, echo_alloc, echo_read), 0);
    echo_accepted++;
}

static void echo_start(void)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char addr[64];

    echo_accepted = echo_bytes = 0;
    assert_int_equal(pr_addr_resolve("127.0.0.1:0", &ss), 0);
    uv_tcp_init(&w.loop, &echo_srv);
    assert_int_equal(uv_tcp_bind(&echo_srv, (struct sockaddr *)&ss, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&echo_srv, 8, echo_conn_cb), 0);
    uv_tcp_getsockname(&echo_srv, (struct sockaddr *)&ss, &len);
    pr_addr_format((struct sockaddr *)&ss, addr, sizeof(addr));
    snprintf(svc_host, sizeof(svc_host), "tcp:%s", addr);
}

/* ---- the dialling edge ---- */

static const char *want_uri;
static const char *const msg = "round trip through a router-hosted service";

static void hosted_dialler(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_dial(c, "dev1", 5);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        c_peer_keys(c, f, PR_E2E_DIALLER, want_uri);
        c_stream(c, msg, 1);
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        break;
    case PR_EDGE_CLOSE:
    case PR_EDGE_DIAL_FAIL:
    case PR_EDGE_ERROR:
        if (!uv_is_closing((uv_handle_t *)&echo_srv))
            uv_close((uv_handle_t *)&echo_srv, NULL);
        world_stop();
        break;
    default:
        break;
    }
}

static void check_echoed(void)
{
    assert_int_equal(w.dialler.errors, 0);
    assert_int_equal(echo_accepted, 1);
    assert_int_equal(echo_bytes, (int)strlen(msg));
    assert_int_equal(w.dialler.got_len, strlen(msg));
    assert_memory_equal(w.dialler.got, msg, w.dialler.got_len);
    assert_true(w.dialler.got_final);
    assert_int_equal(w.dialler.closes, 1);
    assert_int_equal(w.dialler.close_err, 0);
}

static void test_hosted_local(void **state)
{
    world_init(1, 0);
    echo_start();
    world_map(0, 0, "ra", NULL);
    want_uri = "spiffe://net/router/ra";
    c_connect(&w.dialler, &w.r[0], &dcred, hosted_dialler);
    world_run(10000);
    check_echoed();
}

static void remote_poll(void)
{
    if (w.dialler.conn == NULL && rt_link_to(&w.r[0], "rb"))
        c_connect(&w.dialler, &w.r[0], &dcred, hosted_dialler);
}

static void test_hosted_over_link(void **state)
{
    world_init(2, 1);
    echo_start();
    world_map(0, 0x3, "name-rb", NULL); /* hosted_by may name the router */
    world_map(1, 0x3, "name-rb", NULL);
    want_uri = "spiffe://net/router/rb";
    w.poll_cb = remote_poll;
    world_run(10000);
    check_echoed();
}

static void test_hosted_refused(void **state)
{
    world_init(1, 0);
    echo_start();
    snprintf(svc_host, sizeof(svc_host), "tcp:127.0.0.1:1"); /* nothing listens there */
    world_map(0, 0, "ra", NULL);
    want_uri = "spiffe://net/router/ra";
    c_connect(&w.dialler, &w.r[0], &dcred, hosted_dialler);
    world_run(10000);
    assert_int_equal(w.dialler.errors, 1);
    assert_int_equal(w.dialler.last_err, (uint32_t)-WEFT_EREFUSED);
    assert_int_equal(echo_accepted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosted_local),
        cmocka_unit_test(test_hosted_over_link),
        cmocka_unit_test(test_hosted_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
