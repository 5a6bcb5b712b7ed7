/* pr_tls over real sockets on 127.0.0.1 with a libuv loop: handshakes and
 * their failures as each side sees them, bulk data, backpressure and the
 * handshake timeout. Every test counts callbacks and ends with a loop that
 * closes with no live handles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/pki.h"
#include "proto/tls.h"
#include "weft/errors.h"

#define SERVER_URI "spiffe://net/router/r1"
#define CLIENT_URI "spiffe://net/identity/dev1"
#define CHUNK (64 * 1024)
#define GUARD_MS 60000

/* ---- certificates, made once for the whole file ---- */

struct cred {
    char *cert;
    char *key;
};

static pr_ca ca_net, ca_other;
static struct cred srv_cred, cli_cred, expired_cred, foreign_srv_cred;

static void issue(const pr_ca *ca, const char *uri, int usage, int64_t nb, int64_t na,
                  struct cred *out)
{
    pr_cert_req req = {.cn = "test", .uri = uri, .usage = usage, .not_before = nb, .not_after = na};

    assert_int_equal(pr_ca_issue(ca, &req, &out->cert, &out->key), 0);
}

static int group_setup(void **state)
{
    int64_t now = (int64_t)time(NULL);

    assert_int_equal(pr_ca_create("net", &ca_net), 0);
    assert_int_equal(pr_ca_create("other", &ca_other), 0);
    issue(&ca_net, SERVER_URI, PR_CERT_SERVER, 0, now + 3600, &srv_cred);
    issue(&ca_net, CLIENT_URI, PR_CERT_CLIENT, 0, now + 3600, &cli_cred);
    issue(&ca_net, CLIENT_URI, PR_CERT_CLIENT, now - 2 * 86400, now - 86400, &expired_cred);
    issue(&ca_other, SERVER_URI, PR_CERT_SERVER, 0, now + 3600, &foreign_srv_cred);
    return 0;
}

static void cred_free(struct cred *c)
{
    free(c->cert);
    free(c->key);
}

static int group_teardown(void **state)
{
    cred_free(&srv_cred);
    cred_free(&cli_cred);
    cred_free(&expired_cred);
    cred_free(&foreign_srv_cred);
    pr_ca_free(&ca_net);
    pr_ca_free(&ca_other);
    return 0;
}

/* ---- the world of one test ---- */

static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i % 251); /* not a power of two: catches reordered chunks */
}

static uint8_t pattern_buf[CHUNK];

static const uint8_t *pattern_chunk(size_t off)
{
    size_t i;

    for (i = 0; i < CHUNK; i++)
        pattern_buf[i] = pattern_at(off + i);
    return pattern_buf;
}

struct side {
    pr_conn *c;
    int opens, open_status, closes, close_status, drains;
    char uri[256];
    int had_uri;
    size_t rx, rx_bad, tx, total; /* total: bytes to send */
    int saw_unwritable;
};

struct world {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t guard, tick;
    int listening, ticking, guard_fired;
    struct sockaddr_in addr;
    pr_tls_ctx *sctx, *cctx;
    struct side srv, cli;
    /* behaviour */
    int echo;           /* server echoes what it reads */
    int srv_paused;     /* backpressure: the server starts with reads stopped */
    int close_on_open;  /* client closes as soon as it is open */
    int free_ctx_early; /* drop the contexts while connections live */
    int expect_cli;     /* a client pr_conn takes part */
    int stalled_ok, nobufs_seen, ticks;
    uv_tcp_t raw;       /* handshake timeout: a client that never speaks */
    uv_connect_t raw_req;
    int raw_used, raw_closed;
    int no_server;    /* connect refused: nothing accepts */
    int small_rcvbuf; /* backpressure: keep kernel buffering small */
    int raw_reset;    /* the raw client resets instead of staying silent */
};

static struct world *W;

static void world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    W = w;
    w->expect_cli = 1;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(uv_timer_init(&w->loop, &w->guard), 0);
    assert_int_equal(uv_timer_init(&w->loop, &w->tick), 0);
}

static void make_ctx(struct world *w, const pr_tls_cfg *scfg, const pr_tls_cfg *ccfg)
{
    if (scfg)
        assert_int_equal(pr_tls_ctx_new(scfg, &w->sctx), 0);
    if (ccfg)
        assert_int_equal(pr_tls_ctx_new(ccfg, &w->cctx), 0);
}

static void close_if_active(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void maybe_finish(struct world *w)
{
    int srv_done = w->no_server || w->srv.closes > 0;
    int cli_done = w->expect_cli ? w->cli.closes > 0 : (!w->raw_used || w->raw_closed);

    if (!srv_done || !cli_done)
        return;
    if (w->listening)
        close_if_active((uv_handle_t *)&w->listener);
    close_if_active((uv_handle_t *)&w->guard);
    close_if_active((uv_handle_t *)&w->tick);
}

static void raw_close_cb(uv_handle_t *h);

static void guard_cb(uv_timer_t *t)
{
    struct world *w = t->data;

    w->guard_fired = 1;
    print_message("guard: stalled=%d ticks=%d cli tx=%zu total=%zu q=%zu drains=%d srv rx=%zu\n",
                  w->stalled_ok, w->ticks, w->cli.tx, w->cli.total,
                  w->cli.c ? pr_conn_queued(w->cli.c) : 0, w->cli.drains, w->srv.rx);
    if (w->srv.c && w->srv.closes == 0)
        pr_conn_close(w->srv.c, WEFT_ETIMEDOUT);
    if (w->cli.c && w->cli.closes == 0)
        pr_conn_close(w->cli.c, WEFT_ETIMEDOUT);
    if (w->raw_used && !uv_is_closing((uv_handle_t *)&w->raw))
        uv_close((uv_handle_t *)&w->raw, raw_close_cb);
    if (w->listening)
        close_if_active((uv_handle_t *)&w->listener);
    close_if_active((uv_handle_t *)&w->guard);
    close_if_active((uv_handle_t *)&w->tick);
}

static void run(struct world *w)
{
    w->guard.data = w;
    uv_timer_start(&w->guard, guard_cb, GUARD_MS, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_false(w->guard_fired);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    pr_tls_ctx_free(w->sctx);
    pr_tls_ctx_free(w->cctx);
}

/* ---- data movement ---- */

static void check_rx(struct side *s, const uint8_t *data, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (data[i] != pattern_at(s->rx + i))
            s->rx_bad++;
    s->rx += len;
}

/* Writes the pattern while the connection takes it; on_drain calls again. */
static void pump(struct side *s)
{
    while (s->tx < s->total) {
        size_t n = s->total - s->tx < CHUNK ? s->total - s->tx : CHUNK;

        if (!pr_conn_writable(s->c)) {
            s->saw_unwritable = 1;
            return;
        }
        assert_int_equal(pr_conn_write(s->c, pattern_chunk(s->tx), n), 0);
        s->tx += n;
    }
}

/* ---- server callbacks ---- */

static void srv_open(pr_conn *c, int status)
{
    struct world *w = pr_conn_data(c);
    const char *uri = pr_conn_peer_uri(c);

    w->srv.opens++;
    w->srv.open_status = status;
    if (status < 0)
        return;
    if (uri) {
        w->srv.had_uri = 1;
        snprintf(w->srv.uri, sizeof(w->srv.uri), "%s", uri);
    }
    assert_non_null(strstr(pr_conn_peer_addr(c), "127.0.0.1:"));
    if (w->srv_paused)
        pr_conn_read_stop(c);
    if (w->free_ctx_early) {
        pr_tls_ctx_free(w->sctx);
        w->sctx = NULL;
    }
}

static void srv_read(pr_conn *c, const uint8_t *data, size_t len)
{
    struct world *w = pr_conn_data(c);

    if (!w->echo) {
        check_rx(&w->srv, data, len);
        if (w->srv.total && w->srv.rx == w->srv.total)
            pr_conn_close(c, 0);
        return;
    }
    w->srv.rx += len;
    assert_int_equal(pr_conn_write(c, data, len), 0);
    /* A forwarder stops its source while its sink is full. */
    if (!pr_conn_writable(c)) {
        w->srv.saw_unwritable = 1;
        pr_conn_read_stop(c);
    }
}

static void srv_drain(pr_conn *c)
{
    struct world *w = pr_conn_data(c);

    w->srv.drains++;
    if (w->echo)
        pr_conn_read_start(c);
}

static void srv_close(pr_conn *c, int status)
{
    struct world *w = pr_conn_data(c);

    w->srv.closes++;
    w->srv.close_status = status;
    maybe_finish(w);
}

static const pr_conn_cbs srv_cbs = {srv_open, srv_read, srv_drain, srv_close};

static void on_connection(uv_stream_t *l, int status)
{
    struct world *w = l->data;

    assert_int_equal(status, 0);
    assert_null(w->srv.c); /* one connection per test */
    assert_int_equal(pr_conn_accept(w->sctx, l, &srv_cbs, w, &w->srv.c), 0);
}

static void listen_on(struct world *w)
{
    int len = sizeof(w->addr);

    assert_int_equal(uv_tcp_init(&w->loop, &w->listener), 0);
    w->listener.data = w;
    uv_ip4_addr("127.0.0.1", 0, &w->addr);
    assert_int_equal(uv_tcp_bind(&w->listener, (struct sockaddr *)&w->addr, 0), 0);
    if (w->small_rcvbuf) {
        /* Accepted sockets inherit it: the stall comes after kilobytes, not
         * after the megabytes that loopback autotuning allows. */
        int size = 32 * 1024;
        assert_int_equal(uv_recv_buffer_size((uv_handle_t *)&w->listener, &size), 0);
    }
    assert_int_equal(uv_listen((uv_stream_t *)&w->listener, 16, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&w->listener, (struct sockaddr *)&w->addr, &len), 0);
    w->listening = 1;
}

/* ---- client callbacks ---- */

static void cli_open(pr_conn *c, int status)
{
    struct world *w = pr_conn_data(c);
    const char *uri = pr_conn_peer_uri(c);

    w->cli.opens++;
    w->cli.open_status = status;
    if (status < 0)
        return;
    if (uri) {
        w->cli.had_uri = 1;
        snprintf(w->cli.uri, sizeof(w->cli.uri), "%s", uri);
    }
    assert_non_null(pr_conn_peer_cert(c));
    if (w->close_on_open) {
        pr_conn_close(c, 0);
        return;
    }
    pump(&w->cli);
}

static void cli_read(pr_conn *c, const uint8_t *data, size_t len)
{
    struct world *w = pr_conn_data(c);

    check_rx(&w->cli, data, len);
    if (w->echo && w->cli.rx == w->cli.total)
        pr_conn_close(c, 0);
}

static void cli_drain(pr_conn *c)
{
    struct world *w = pr_conn_data(c);

    w->cli.drains++;
    pump(&w->cli);
}

static void cli_close(pr_conn *c, int status)
{
    struct world *w = pr_conn_data(c);

    w->cli.closes++;
    w->cli.close_status = status;
    maybe_finish(w);
}

static const pr_conn_cbs cli_cbs = {cli_open, cli_read, cli_drain, cli_close};

static void dial(struct world *w)
{
    assert_int_equal(pr_conn_connect(w->cctx, &w->loop, (struct sockaddr *)&w->addr, "router",
                                     &cli_cbs, w, &w->cli.c),
                     0);
    if (w->free_ctx_early) {
        pr_tls_ctx_free(w->cctx);
        w->cctx = NULL;
    }
}

/* ---- configurations ---- */

static pr_tls_cfg server_cfg(int require)
{
    pr_tls_cfg c = {.server = 1, .ca_pem = ca_net.cert_pem, .cert_pem = srv_cred.cert,
                    .key_pem = srv_cred.key, .require_peer_cert = require};
    return c;
}

static pr_tls_cfg client_cfg(const struct cred *cr)
{
    pr_tls_cfg c = {.ca_pem = ca_net.cert_pem, .cert_pem = cr ? cr->cert : NULL,
                    .key_pem = cr ? cr->key : NULL};
    return c;
}

/* ---- tests ---- */

static void test_handshake_peer_uris(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&cli_cred);

    world_init(&w);
    make_ctx(&w, &s, &c);
    w.close_on_open = 1;
    w.free_ctx_early = 1; /* connections hold their own reference */
    listen_on(&w);
    dial(&w);
    run(&w);
    assert_int_equal(w.srv.opens, 1);
    assert_int_equal(w.cli.opens, 1);
    assert_int_equal(w.srv.open_status, 0);
    assert_int_equal(w.cli.open_status, 0);
    assert_string_equal(w.srv.uri, CLIENT_URI);
    assert_string_equal(w.cli.uri, SERVER_URI);
    assert_int_equal(w.cli.closes, 1);
    assert_int_equal(w.cli.close_status, 0);
    assert_int_equal(w.srv.closes, 1);
    assert_int_equal(w.srv.close_status, WEFT_ECLOSED); /* close_notify from the client */
}

static void test_echo_several_mib(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&cli_cred);

    world_init(&w);
    make_ctx(&w, &s, &c);
    w.echo = 1;
    w.cli.total = 8u * 1024 * 1024;
    listen_on(&w);
    dial(&w);
    /* queued before the handshake: what on_open writes must follow it */
    assert_int_equal(pr_conn_write(w.cli.c, pattern_chunk(0), CHUNK), 0);
    w.cli.tx = CHUNK;
    assert_int_equal(pr_conn_queued(w.cli.c), CHUNK);
    run(&w);
    assert_int_equal(w.cli.open_status, 0);
    assert_int_equal(w.cli.tx, w.cli.total);
    assert_int_equal(w.srv.rx, w.cli.total);
    assert_int_equal(w.cli.rx, w.cli.total);
    assert_int_equal(w.cli.rx_bad, 0);
    assert_int_equal(w.cli.close_status, 0);
    assert_int_equal(w.srv.close_status, WEFT_ECLOSED);
    assert_int_equal(w.srv.closes, 1);
    assert_int_equal(w.cli.closes, 1);
}

/* Runs one handshake that must fail; returns through the world. */
static void failing_handshake(struct world *w, const pr_tls_cfg *s, const pr_tls_cfg *c)
{
    world_init(w);
    make_ctx(w, s, c);
    listen_on(w);
    dial(w);
    run(w);
    assert_int_equal(w->srv.opens, 1);
    assert_int_equal(w->cli.opens, 1);
    assert_int_equal(w->srv.closes, 1);
    assert_int_equal(w->cli.closes, 1);
    /* on_close carries the same reason as the failed on_open */
    assert_int_equal(w->srv.close_status, w->srv.open_status);
    assert_int_equal(w->cli.close_status, w->cli.open_status);
}

static void test_server_from_other_ca(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&cli_cred);

    s.cert_pem = foreign_srv_cred.cert;
    s.key_pem = foreign_srv_cred.key;
    failing_handshake(&w, &s, &c);
    assert_int_equal(w.cli.open_status, WEFT_EUNTRUSTED);
    assert_int_equal(w.srv.open_status, WEFT_EUNTRUSTED); /* from the client's alert */
}

static void test_expired_client_cert(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&expired_cred);

    failing_handshake(&w, &s, &c);
    assert_int_equal(w.srv.open_status, WEFT_ECERTEXPIRED);
    assert_int_equal(w.cli.open_status, WEFT_ECERTEXPIRED); /* from the server's alert */
}

static void test_client_cert_required(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(NULL);

    failing_handshake(&w, &s, &c);
    assert_int_equal(w.srv.open_status, WEFT_ENOCERT);
    assert_int_equal(w.cli.open_status, WEFT_ENOCERT);
}

static void test_client_cert_optional(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(0), c = client_cfg(NULL);

    world_init(&w);
    make_ctx(&w, &s, &c);
    w.close_on_open = 1;
    listen_on(&w);
    dial(&w);
    run(&w);
    assert_int_equal(w.srv.open_status, 0);
    assert_int_equal(w.cli.open_status, 0);
    assert_false(w.srv.had_uri);
    assert_string_equal(w.cli.uri, SERVER_URI);
    assert_int_equal(w.srv.close_status, WEFT_ECLOSED);
    assert_int_equal(w.cli.close_status, 0);
}

static void test_optional_still_rejects_bad_cert(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(0), c = client_cfg(&expired_cred);

    failing_handshake(&w, &s, &c);
    assert_int_equal(w.srv.open_status, WEFT_ECERTEXPIRED);
}

static void raw_close_cb(uv_handle_t *h)
{
    struct world *w = h->data;

    w->raw_closed = 1;
    maybe_finish(w);
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[256];

    *b = uv_buf_init(buf, sizeof(buf));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, raw_close_cb); /* the server hung up */
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct world *w = req->handle->data;

    assert_int_equal(status, 0);
    if (w->raw_reset) {
        assert_int_equal(uv_tcp_close_reset(&w->raw, raw_close_cb), 0);
        return;
    }
    assert_int_equal(uv_read_start(req->handle, raw_alloc, raw_read), 0);
}

static void test_handshake_timeout(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1);
    uint64_t t0;

    s.handshake_ms = 150;
    world_init(&w);
    make_ctx(&w, &s, NULL);
    w.expect_cli = 0;
    listen_on(&w);
    assert_int_equal(uv_tcp_init(&w.loop, &w.raw), 0);
    w.raw.data = &w;
    w.raw_used = 1;
    assert_int_equal(uv_tcp_connect(&w.raw_req, &w.raw, (struct sockaddr *)&w.addr, raw_connected),
                     0);
    t0 = uv_hrtime();
    run(&w);
    assert_true(w.raw_closed);
    assert_int_equal(w.srv.opens, 1);
    assert_int_equal(w.srv.open_status, WEFT_ETIMEDOUT);
    assert_int_equal(w.srv.closes, 1);
    assert_int_equal(w.srv.close_status, WEFT_ETIMEDOUT);
    assert_true(uv_hrtime() - t0 >= 140u * 1000000u);
}

static void test_reset_during_handshake(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1);

    world_init(&w);
    make_ctx(&w, &s, NULL);
    w.expect_cli = 0;
    w.raw_reset = 1;
    listen_on(&w);
    assert_int_equal(uv_tcp_init(&w.loop, &w.raw), 0);
    w.raw.data = &w;
    w.raw_used = 1;
    assert_int_equal(uv_tcp_connect(&w.raw_req, &w.raw, (struct sockaddr *)&w.addr, raw_connected),
                     0);
    run(&w);
    assert_int_equal(w.srv.opens, 1);
    assert_int_equal(w.srv.open_status, WEFT_ERESET);
    assert_int_equal(w.srv.closes, 1);
    assert_int_equal(w.srv.close_status, WEFT_ERESET);
}

static void test_close_before_open(void **state)
{
    struct world w;
    pr_tls_cfg c = client_cfg(&cli_cred);

    world_init(&w);
    make_ctx(&w, NULL, &c);
    w.no_server = 1;
    uv_ip4_addr("127.0.0.1", 9, &w.addr);
    dial(&w);
    assert_int_equal(pr_conn_write(w.cli.c, "x", 1), 0);
    pr_conn_close(w.cli.c, 0);
    assert_int_equal(pr_conn_write(w.cli.c, "x", 1), WEFT_ECLOSED);
    run(&w);
    assert_int_equal(w.cli.opens, 1);
    assert_int_equal(w.cli.open_status, WEFT_ECANCELED);
    assert_int_equal(w.cli.closes, 1);
    assert_int_equal(w.cli.close_status, 0);
}

/* The writer fills its queue while the server reads nothing: once the kernel
 * buffers are full the queue stays above the high watermark and writes past
 * the hard limit are refused; when the server resumes, on_drain fires and
 * every byte arrives in order. */
static void bp_tick(uv_timer_t *t)
{
    struct world *w = t->data;
    static size_t last_queued;
    int i;

    if (++w->ticks > 400 || w->stalled_ok)
        return;
    /* Stalled: the writer waits for on_drain and the queue no longer moves. */
    if (!w->cli.saw_unwritable || pr_conn_queued(w->cli.c) != last_queued) {
        last_queued = pr_conn_queued(w->cli.c);
        return;
    }
    assert_true(pr_conn_queued(w->cli.c) >= PR_TLS_LOW_WATER);
    for (i = 0; i < 200 && !w->nobufs_seen; i++) {
        int r = pr_conn_write(w->cli.c, pattern_chunk(w->cli.tx), CHUNK);
        if (r == WEFT_ENOBUFS)
            w->nobufs_seen = 1;
        else
            w->cli.tx += CHUNK;
    }
    assert_true(pr_conn_queued(w->cli.c) <= PR_TLS_HARD_LIMIT);
    assert_false(pr_conn_writable(w->cli.c));
    w->stalled_ok = 1;
    w->srv.total = w->cli.total = w->cli.tx + 2u * 1024 * 1024; /* and a little more */
    pr_conn_read_start(w->srv.c);
    uv_timer_stop(t);
}

static void test_backpressure(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&cli_cred);

    world_init(&w);
    make_ctx(&w, &s, &c);
    w.srv_paused = 1;
    w.small_rcvbuf = 1;
    w.cli.total = 256u * 1024 * 1024; /* far more than loopback buffers hold */
    listen_on(&w);
    dial(&w);
    w.tick.data = &w;
    uv_timer_start(&w.tick, bp_tick, 100, 100);
    run(&w);
    assert_true(w.stalled_ok);
    assert_true(w.nobufs_seen);
    assert_true(w.cli.saw_unwritable);
    assert_true(w.cli.drains >= 1);
    assert_int_equal(w.srv.rx, w.cli.total);
    assert_int_equal(w.cli.tx, w.cli.total);
    assert_int_equal(w.srv.rx_bad, 0);
    assert_int_equal(w.srv.close_status, 0);
    assert_int_equal(w.cli.close_status, WEFT_ECLOSED);
}

/* A client limited to TLS 1.2, written with OpenSSL directly, in a thread. */
struct tls12 {
    struct sockaddr_in addr;
    int handshake_result;
};

static void *tls12_client(void *arg)
{
    struct tls12 *t = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    t->handshake_result = 99;
    if (!ctx || fd < 0 || connect(fd, (struct sockaddr *)&t->addr, sizeof(t->addr)) < 0)
        goto out;
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    t->handshake_result = SSL_connect(ssl);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    ERR_clear_error();
    return NULL;
}

static void test_tls12_refused(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(0);
    struct tls12 t;
    pthread_t th;

    world_init(&w);
    make_ctx(&w, &s, NULL);
    w.expect_cli = 0;
    listen_on(&w);
    t.addr = w.addr;
    assert_int_equal(pthread_create(&th, NULL, tls12_client, &t), 0);
    run(&w);
    pthread_join(th, NULL);
    assert_true(t.handshake_result <= 0);
    assert_int_equal(w.srv.opens, 1);
    assert_int_equal(w.srv.open_status, WEFT_ETLS);
    assert_int_equal(w.srv.closes, 1);
}

static void test_connect_refused(void **state)
{
    struct world w;
    pr_tls_cfg c = client_cfg(&cli_cred);
    uv_tcp_t probe;
    int len = sizeof(w.addr);

    world_init(&w);
    make_ctx(&w, NULL, &c);
    w.no_server = 1;
    /* a port that was free a moment ago, now closed: nothing listens there */
    assert_int_equal(uv_tcp_init(&w.loop, &probe), 0);
    uv_ip4_addr("127.0.0.1", 0, &w.addr);
    assert_int_equal(uv_tcp_bind(&probe, (struct sockaddr *)&w.addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&w.addr, &len), 0);
    uv_close((uv_handle_t *)&probe, NULL);
    dial(&w);
    run(&w);
    assert_int_equal(w.cli.opens, 1);
    assert_int_equal(w.cli.open_status, WEFT_EREFUSED);
    assert_int_equal(w.cli.closes, 1);
    assert_int_equal(w.cli.close_status, WEFT_EREFUSED);
    assert_int_equal(w.srv.opens, 0);
}

static void test_alpn(void **state)
{
    struct world w;
    pr_tls_cfg s = server_cfg(1), c = client_cfg(&cli_cred);

    s.alpn = "weft/1";
    c.alpn = "weft/1";
    world_init(&w);
    make_ctx(&w, &s, &c);
    w.close_on_open = 1;
    listen_on(&w);
    dial(&w);
    run(&w);
    assert_int_equal(w.srv.open_status, 0);
    assert_int_equal(w.cli.open_status, 0);

    c.alpn = "http/1.1"; /* another protocol on our port is refused */
    failing_handshake(&w, &s, &c);
    assert_int_equal(w.srv.open_status, WEFT_ETLS);
    assert_int_equal(w.cli.open_status, WEFT_ETLS);
}

static void test_bad_config(void **state)
{
    pr_tls_ctx *ctx = NULL;
    pr_tls_cfg s = server_cfg(1);
    pr_tls_cfg c = client_cfg(&cli_cred);

    s.key_pem = cli_cred.key; /* not the certificate's key */
    assert_true(pr_tls_ctx_new(&s, &ctx) < 0);
    assert_null(ctx);
    c.ca_pem = NULL; /* a verifying client needs a CA */
    assert_int_equal(pr_tls_ctx_new(&c, &ctx), WEFT_EINVAL);
    c.ca_pem = "not a certificate";
    assert_int_equal(pr_tls_ctx_new(&c, &ctx), WEFT_ECERT);
    pr_tls_ctx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_peer_uris),
        cmocka_unit_test(test_echo_several_mib),
        cmocka_unit_test(test_server_from_other_ca),
        cmocka_unit_test(test_expired_client_cert),
        cmocka_unit_test(test_client_cert_required),
        cmocka_unit_test(test_client_cert_optional),
        cmocka_unit_test(test_optional_still_rejects_bad_cert),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_reset_during_handshake),
        cmocka_unit_test(test_close_before_open),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_tls12_refused),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_bad_config),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
