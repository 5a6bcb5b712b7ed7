/* libweft against admission control (docs/dataplane.md "Admission refusals"),
 * with real TLS on 127.0.0.1:
 *   - the real router (router/) admitting one session per second: of two
 *     edges starting at once one is refused with PR_H_RETRY_MS, waits at
 *     least the hint (once, no second refusal), then gets in; the line it
 *     logs is an admission refusal, not an identity refusal;
 *   - two routers, one busy: the session to the other comes up at once and
 *     stays up while the refused one waits;
 *   - a controller answering GET /v1/edge/session with 429 and Retry-After:
 *     the next request comes no sooner than Retry-After; and how
 *     pr_https_request reads that header;
 *   - a controller answering 403 binding_mismatch to the hardware ids the
 *     edge sends: a waiting dial fails with WEFT_EBINDING and the reason, and
 *     the request is not repeated in a tight loop.
 * The log lines are read back from stderr, redirected to a file. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "edge/lib/weft_int.h"
#include "proto/httpc.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/pki.h"
#include "router/admit.h"
#include "router/router.h"

#define NET      "acme"
#define GUARD_MS 20000
#define POLL_MS  2

static char dir[64], log_path[128];
static pr_ca ca;
static pr_idfile router_id, router2_id;
static char host_file[128], dial_file[128];
static uint8_t tok_pk[crypto_sign_PUBLICKEYBYTES], tok_sk[crypto_sign_SECRETKEYBYTES];

static void make_identity(const char *kind, const char *id, const char *path, pr_idfile *out,
                          const char *controller)
{
    char uri[PR_URI_MAX];
    const char *ips[] = {"127.0.0.1", NULL};
    pr_cert_req req = {
        .cn = id, .uri = uri, .ips = ips, .usage = PR_CERT_BOTH, .not_after = time(NULL) + 3600};
    pr_idfile f = {0};

    assert_int_equal(
        pr_ident_format(strcmp(kind, "router") == 0 ? PR_IDENT_ROUTER : PR_IDENT_IDENTITY, NET, id,
                        uri, sizeof(uri)),
        0);
    assert_int_equal(pr_ca_issue(&ca, &req, &f.cert_pem, &f.key_pem), 0);
    f.ca_pem = strdup(ca.cert_pem);
    snprintf(f.kind, sizeof(f.kind), "%s", kind);
    snprintf(f.id, sizeof(f.id), "%s", id);
    snprintf(f.name, sizeof(f.name), "%s", id);
    snprintf(f.network, sizeof(f.network), NET);
    snprintf(f.controller, sizeof(f.controller), "%s", controller);
    if (path)
        assert_int_equal(pr_idfile_save(path, &f), 0);
    if (out)
        *out = f;
    else
        pr_idfile_free(&f);
}

static int group_setup(void **state)
{
    char tmpl[] = "/tmp/weft-admit-XXXXXX";

    (void)state;
    assert_true(sodium_init() >= 0);
    pr_log_init("test", PR_LOG_WARN);
    assert_non_null(mkdtemp(tmpl));
    snprintf(dir, sizeof(dir), "%s", tmpl);
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    assert_int_equal(pr_ca_create(NET, &ca), 0);
    snprintf(host_file, sizeof(host_file), "%s/host.json", dir);
    snprintf(dial_file, sizeof(dial_file), "%s/dial.json", dir);
    make_identity("identity", "host1", host_file, NULL, "https://127.0.0.1:1");
    make_identity("identity", "dev1", dial_file, NULL, "https://127.0.0.1:1");
    make_identity("router", "r1", NULL, &router_id, "https://127.0.0.1:1");
    make_identity("router", "r2", NULL, &router2_id, "https://127.0.0.1:1");
    crypto_sign_keypair(tok_pk, tok_sk);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(host_file);
    unlink(dial_file);
    unlink(log_path);
    rmdir(dir);
    pr_idfile_free(&router_id);
    pr_idfile_free(&router2_id);
    pr_ca_free(&ca);
    return 0;
}

/* ---- stderr to a file, to read the log lines back ---- */

static int saved_fd = -1;

static void log_capture(void)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    fflush(stderr);
    saved_fd = dup(2);
    assert_true(saved_fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Restores stderr and returns what was logged meanwhile (caller frees). */
static char *log_release(void)
{
    FILE *f;
    char *buf = calloc(1, 1 << 20);
    size_t n;

    fflush(stderr);
    assert_int_equal(dup2(saved_fd, 2), 2);
    close(saved_fd);
    assert_non_null(buf);
    assert_non_null(f = fopen(log_path, "r"));
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fputs(buf, stderr); /* still shown with the test's output */
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The line holding event ev, or NULL; *line gets a copy (at most cap). */
static const char *log_line(const char *logs, const char *ev, char *line, size_t cap)
{
    const char *p = strstr(logs, ev), *b, *e;
    size_t n;

    if (p == NULL)
        return NULL;
    for (b = p; b > logs && b[-1] != '\n'; b--)
        ;
    e = strchr(p, '\n');
    n = e ? (size_t)(e - b) : strlen(b);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(line, b, n);
    line[n] = '\0';
    return line;
}

/* ---- session data and the router ---- */

static char *token(const char *sub, const char *svc, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "aud",
                          "weft-service", "iss", "https://127.0.0.1:1", "net", NET, "sub", sub,
                          "svc", svc, "svc_name", svc, "act", act, "iat", (json_int_t)time(NULL),
                          "exp", (json_int_t)time(NULL) + 900, "jti", "j1");
    char *t = NULL;

    assert_int_equal(pr_jwt_sign(c, tok_sk, &t), 0);
    json_decref(c);
    return t;
}

static char *session_json2(const char *sub, const char *addr, const char *addr2)
{
    char *dt = token(sub, "echo", "dial"), *bt = token(sub, "echo", "bind"), *s;
    json_t *root = json_pack(
        "{s:{s:{s:s}, s:[{s:s, s:s, s:s}], s:[{s:s, s:s, s:b, s:b, s:{s:s, s:s}, s:s, s:s, "
        "s:s}], s:s, s:i}}",
        "data", "identity", "id", sub, "routers", "id", "r1", "name", "r1", "edge_listen", addr,
        "services", "id", "echo", "name", "echo", "dial", 1, "bind", 1, "tokens", "dial", dt,
        "bind", bt, "expires_at", "2099-01-01T00:00:00Z", "intercept", "tcp:127.0.0.1:8080",
        "host", "tcp:127.0.0.1:80", "signing_key", "unused", "refresh_s", 60);

    assert_non_null(root);
    if (addr2)
        json_array_append_new(json_object_get(json_object_get(root, "data"), "routers"),
                              json_pack("{s:s, s:s, s:s}", "id", "r2", "name", "r2",
                                        "edge_listen", addr2));
    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    free(dt);
    free(bt);
    return s;
}

static char *session_json(const char *sub, const char *addr)
{
    return session_json2(sub, addr, NULL);
}

static void router_map2(rt_router *rt, const char *addr, const char *addr2)
{
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    char map[1536], r2[256] = "", err[256];

    if (addr2)
        snprintf(r2, sizeof(r2),
                 ",{\"id\":\"r2\",\"name\":\"r2\",\"edge_listen\":\"%s\","
                 "\"link_listen\":\"127.0.0.1:1\",\"online\":true}",
                 addr2);
    sodium_bin2base64(b64, sizeof(b64), tok_pk, sizeof(tok_pk), sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\":1,\"signing_key\":\"%s\",\"routers\":[{\"id\":\"r1\",\"name\":\"r1\","
             "\"edge_listen\":\"%s\",\"link_listen\":\"127.0.0.1:1\",\"online\":true}%s],"
             "\"services\":[{\"id\":\"echo\",\"name\":\"echo\",\"intercept\":\"tcp:127.0.0.1:1\","
             "\"host\":\"tcp:127.0.0.1:1\",\"hosted_by\":\"\"}],\"terminators\":[],"
             "\"revoked\":[]}",
             b64, addr, r2);
    if (rt_map_apply_full(&rt->map, map, strlen(map), err, sizeof(err)) < 0)
        fail_msg("map refused: %s", err);
}

static void router_map(rt_router *rt, const char *addr)
{
    router_map2(rt, addr, NULL);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test did not finish within %d ms", GUARD_MS);
}

/* ---- the router admits one session a second ---- */

typedef struct {
    weft_ctx *ctx;
    int slot; /* the session of ctx watched */
    int unready; /* times seen leaving READY */
    char addr[256]; /* its router when the test ended */
    int last_state;
    int backoffs;        /* times seen entering BACKOFF */
    uint64_t backoff_at; /* loop time the first BACKOFF was seen */
    uint64_t ready_at;   /* loop time READY was seen */
} watch;

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard, poll;
    rt_router rt;
    watch w[2];
    int done;
} admit_fab;

static void watch_one(uv_loop_t *loop, watch *w)
{
    int st = w->ctx->sess[w->slot].state;

    if (st != w->last_state) {
        if (w->last_state == RS_READY)
            w->unready++;
        if (st == RS_BACKOFF && w->backoffs++ == 0)
            w->backoff_at = uv_now(loop);
        if (st == RS_READY && w->ready_at == 0)
            w->ready_at = uv_now(loop);
        w->last_state = st;
    }
}

static void on_poll(uv_timer_t *t)
{
    admit_fab *fb = t->data;

    uv_update_time(&fb->loop);
    watch_one(&fb->loop, &fb->w[0]);
    watch_one(&fb->loop, &fb->w[1]);
    if (fb->w[0].ready_at && fb->w[1].ready_at && !fb->done) {
        fb->done = 1;
        uv_timer_stop(&fb->poll);
        weft_free(fb->w[0].ctx);
        weft_free(fb->w[1].ctx);
        rt_router_close(&fb->rt);
        uv_close((uv_handle_t *)&fb->guard, NULL);
        uv_close((uv_handle_t *)&fb->poll, NULL);
    }
}

static unsigned retry_of(const char *line)
{
    const char *p = strstr(line, "retry_ms=");

    assert_non_null(p);
    return (unsigned)strtoul(p + 9, NULL, 10);
}

static void test_router_busy_hint(void **state)
{
    weft_options opt = {.imei = "356938035643809"};
    admit_fab fb;
    const char *files[2] = {host_file, dial_file}, *subs[2] = {"host1", "dev1"};
    char *js, *logs, line[1024];
    watch *refused, *first;
    unsigned hint;

    (void)state;
    memset(&fb, 0, sizeof(fb));
    assert_int_equal(uv_loop_init(&fb.loop), 0);
    uv_timer_init(&fb.loop, &fb.guard);
    uv_timer_start(&fb.guard, on_guard, GUARD_MS, 0);
    assert_int_equal(rt_router_init(&fb.rt, &fb.loop, &router_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb.rt, "127.0.0.1:0"), 0);
    router_map(&fb.rt, fb.rt.edge_addr);
    rt_admit_config(&fb.rt, 1.0, 1.0); /* one session, then one a second */
    log_capture();
    for (int i = 0; i < 2; i++) {
        js = session_json(subs[i], fb.rt.edge_addr);
        assert_int_equal(weft__init_offline(&fb.loop, files[i], &opt, js, &fb.w[i].ctx), 0);
        free(js);
        fb.w[i].last_state = fb.w[i].ctx->sess[0].state;
    }
    uv_timer_init(&fb.loop, &fb.poll);
    fb.poll.data = &fb;
    uv_timer_start(&fb.poll, on_poll, POLL_MS, POLL_MS);
    assert_int_equal(uv_run(&fb.loop, UV_RUN_DEFAULT), 0);
    rt_router_free(&fb.rt);
    assert_int_equal(uv_loop_close(&fb.loop), 0);
    logs = log_release();

    /* One edge got in at once, the other was refused exactly once. */
    refused = fb.w[0].backoffs ? &fb.w[0] : &fb.w[1];
    first = refused == &fb.w[0] ? &fb.w[1] : &fb.w[0];
    assert_int_equal(first->backoffs, 0);
    assert_int_equal(refused->backoffs, 1);
    assert_int_equal(count(logs, "event=edge_router_busy"), 1);
    assert_int_equal(count(logs, "edge_hello_refused"), 0);
    assert_non_null(log_line(logs, "event=edge_router_busy", line, sizeof(line)));
    assert_non_null(strstr(line, "level=warn"));
    assert_non_null(strstr(line, "admission refusal"));
    assert_non_null(strstr(line, "err=EBUSY"));
    hint = retry_of(line);
    assert_true(hint >= 500 && hint <= 2100); /* a token a second: the next slot */
    /* The backoff seen up to POLL_MS late, READY likewise: the wait covers
     * the hint less one poll at the most. */
    assert_true(refused->ready_at >= refused->backoff_at + hint - POLL_MS);
    free(logs);
}

/* ---- multi-homed: one router busy, the other not ---- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard, poll;
    rt_router busy, idle;
    weft_ctx *ctx;
    watch w[2];
    int done;
} multi_fab;

static void on_multi_poll(uv_timer_t *t)
{
    multi_fab *fb = t->data;

    uv_update_time(&fb->loop);
    watch_one(&fb->loop, &fb->w[0]);
    watch_one(&fb->loop, &fb->w[1]);
    if (fb->done || !fb->w[0].ready_at || !fb->w[1].ready_at)
        return;
    fb->done = 1;
    for (int i = 0; i < 2; i++)
        snprintf(fb->w[i].addr, sizeof(fb->w[i].addr), "%s", fb->ctx->sess[i].addr);
    uv_timer_stop(&fb->poll);
    weft_free(fb->ctx);
    rt_router_close(&fb->busy);
    rt_router_close(&fb->idle);
    uv_close((uv_handle_t *)&fb->guard, NULL);
    uv_close((uv_handle_t *)&fb->poll, NULL);
}

/* The refusal is per router: the session to the other router comes up at
 * once and stays up while the refused one waits out its hint. */
static void test_multihomed_keeps_other(void **state)
{
    weft_options opt = {.imei = "356938035643809"};
    multi_fab fb;
    char *js, *logs, line[1024];
    watch *refused, *other;
    uint32_t wait;
    unsigned hint;

    (void)state;
    memset(&fb, 0, sizeof(fb));
    assert_int_equal(uv_loop_init(&fb.loop), 0);
    uv_timer_init(&fb.loop, &fb.guard);
    uv_timer_start(&fb.guard, on_guard, GUARD_MS, 0);
    assert_int_equal(rt_router_init(&fb.busy, &fb.loop, &router_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb.busy, "127.0.0.1:0"), 0);
    assert_int_equal(rt_router_init(&fb.idle, &fb.loop, &router2_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb.idle, "127.0.0.1:0"), 0);
    router_map2(&fb.busy, fb.busy.edge_addr, fb.idle.edge_addr);
    router_map2(&fb.idle, fb.busy.edge_addr, fb.idle.edge_addr);
    rt_admit_config(&fb.busy, 1.0, 1.0);
    assert_int_equal(pr_bucket_take(&fb.busy.admit, uv_now(&fb.loop), &wait), 0); /* spent */
    rt_admit_config(&fb.idle, 0, 0);
    log_capture();
    js = session_json2("dev1", fb.busy.edge_addr, fb.idle.edge_addr);
    assert_int_equal(weft__init_offline(&fb.loop, dial_file, &opt, js, &fb.ctx), 0);
    free(js);
    for (int i = 0; i < 2; i++) {
        fb.w[i].ctx = fb.ctx;
        fb.w[i].slot = i;
        fb.w[i].last_state = fb.ctx->sess[i].state;
    }
    uv_timer_init(&fb.loop, &fb.poll);
    fb.poll.data = &fb;
    uv_timer_start(&fb.poll, on_multi_poll, POLL_MS, POLL_MS);
    assert_int_equal(uv_run(&fb.loop, UV_RUN_DEFAULT), 0);
    rt_router_free(&fb.busy);
    rt_router_free(&fb.idle);
    assert_int_equal(uv_loop_close(&fb.loop), 0);
    logs = log_release();

    refused = strcmp(fb.w[0].addr, fb.busy.edge_addr) == 0 ? &fb.w[0] : &fb.w[1];
    other = refused == &fb.w[0] ? &fb.w[1] : &fb.w[0];
    assert_string_equal(refused->addr, fb.busy.edge_addr);
    assert_string_equal(other->addr, fb.idle.edge_addr);
    assert_int_equal(refused->backoffs, 1);
    assert_int_equal(other->backoffs, 0);
    assert_int_equal(other->unready, 0); /* never dropped meanwhile */
    assert_true(other->ready_at < refused->ready_at);
    assert_non_null(log_line(logs, "event=edge_router_busy", line, sizeof(line)));
    assert_non_null(strstr(line, fb.busy.edge_addr));
    hint = retry_of(line);
    assert_true(refused->ready_at >= refused->backoff_at + hint - POLL_MS);
    free(logs);
}

/* ---- a controller that is busy once ---- */

typedef struct {
    uv_tcp_t tcp;
    pr_tls_ctx *tls;
    const char *router_addr;
    int port, requests;
    uint64_t at[4];
    const char *retry_after; /* non-NULL: every answer is 429 with this header line */
    const char *deny;        /* non-NULL: every answer is 403 with this body */
    uv_loop_t *loop;
} ctl_stub;

static void ctl_read(pr_conn *c, const uint8_t *data, size_t len)
{
    ctl_stub *cs = pr_conn_data(c);
    static const char busy[] = "{\"error\":{\"code\":\"busy\",\"message\":\"retry after 1 s\"}}";
    char head[256], *body;
    int n;

    static const char want[] = "GET /v1/edge/session?imei=356938035643809 "; /* the hello's id */

    if (len < sizeof(want) - 1 || memcmp(data, want, sizeof(want) - 1) != 0)
        return pr_conn_close(c, WEFT_EPROTO);
    if (cs->requests < 4)
        cs->at[cs->requests] = uv_now(cs->loop);
    if (cs->deny) {
        cs->requests++;
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     strlen(cs->deny));
        assert_int_equal(pr_conn_write(c, head, (size_t)n), 0);
        assert_int_equal(pr_conn_write(c, cs->deny, strlen(cs->deny)), 0);
        return pr_conn_close(c, 0);
    }
    if (cs->requests++ == 0 || cs->retry_after) {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     cs->retry_after ? cs->retry_after : "Retry-After: 1\r\n", strlen(busy));
        assert_int_equal(pr_conn_write(c, head, (size_t)n), 0);
        assert_int_equal(pr_conn_write(c, busy, strlen(busy)), 0);
        return pr_conn_close(c, 0);
    }
    body = session_json("dev1", cs->router_addr);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 strlen(body));
    assert_int_equal(pr_conn_write(c, head, (size_t)n), 0);
    assert_int_equal(pr_conn_write(c, body, strlen(body)), 0);
    free(body);
    pr_conn_close(c, 0);
}

static void ctl_accept(uv_stream_t *server, int status)
{
    static const pr_conn_cbs cbs = {NULL, ctl_read, NULL, NULL};
    ctl_stub *cs = server->data;
    pr_conn *c;

    assert_int_equal(status, 0);
    assert_int_equal(pr_conn_accept(cs->tls, server, &cbs, cs, &c), 0);
}

static void ctl_start(ctl_stub *cs, uv_loop_t *loop, const char *router_addr)
{
    pr_tls_cfg cfg = {.server = 1,
                      .ca_pem = router_id.ca_pem,
                      .cert_pem = router_id.cert_pem,
                      .key_pem = router_id.key_pem,
                      .require_peer_cert = 1};
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(cs, 0, sizeof(*cs));
    cs->router_addr = router_addr;
    cs->loop = loop;
    assert_int_equal(pr_tls_ctx_new(&cfg, &cs->tls), 0);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_init(loop, &cs->tcp), 0);
    cs->tcp.data = cs;
    assert_int_equal(uv_tcp_bind(&cs->tcp, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&cs->tcp, 16, ctl_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&cs->tcp, (struct sockaddr *)&ss, &len), 0);
    cs->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard, poll;
    rt_router rt;
    ctl_stub ctl;
    weft_ctx *ctx;
    int done;
} ctl_fab;

static void ctl_fab_stop(ctl_fab *fb)
{
    weft_free(fb->ctx);
    rt_router_close(&fb->rt);
    uv_close((uv_handle_t *)&fb->ctl.tcp, NULL);
    uv_close((uv_handle_t *)&fb->guard, NULL);
    uv_close((uv_handle_t *)&fb->poll, NULL);
}

static void on_ctl_poll(uv_timer_t *t)
{
    ctl_fab *fb = t->data;

    if (fb->done || !fb->ctx->have_sd || !weft__rsess_ready(&fb->ctx->sess[0]))
        return;
    fb->done = 1;
    ctl_fab_stop(fb);
}

/* A router, the stand-in controller (deny: its 403 body, or NULL) and a ctx
 * of identity dev1 with the IMEI below, started on fb's loop; logs captured. */
static void ctl_fab_start(ctl_fab *fb, const char *deny)
{
    weft_options opt = {.imei = "356938035643809"};
    char url[64], idf[160];

    memset(fb, 0, sizeof(*fb));
    assert_int_equal(uv_loop_init(&fb->loop), 0);
    uv_timer_init(&fb->loop, &fb->guard);
    uv_timer_start(&fb->guard, on_guard, GUARD_MS, 0);
    assert_int_equal(rt_router_init(&fb->rt, &fb->loop, &router_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb->rt, "127.0.0.1:0"), 0);
    router_map(&fb->rt, fb->rt.edge_addr);
    ctl_start(&fb->ctl, &fb->loop, fb->rt.edge_addr);
    fb->ctl.deny = deny;
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", fb->ctl.port);
    snprintf(idf, sizeof(idf), "%s/dev-online.json", dir);
    make_identity("identity", "dev1", idf, NULL, url);
    log_capture();
    assert_int_equal(weft_init(&fb->loop, idf, &opt, &fb->ctx), 0);
    unlink(idf);
    uv_timer_init(&fb->loop, &fb->poll);
    fb->poll.data = fb;
}

/* Runs fb's loop to its end; returns the captured log. */
static char *ctl_fab_run(ctl_fab *fb)
{
    assert_int_equal(uv_run(&fb->loop, UV_RUN_DEFAULT), 0);
    rt_router_free(&fb->rt);
    pr_tls_ctx_free(fb->ctl.tls);
    assert_int_equal(uv_loop_close(&fb->loop), 0);
    return log_release();
}

static void test_controller_retry_after(void **state)
{
    char *logs, line[1024];
    ctl_fab fb;

    (void)state;
    ctl_fab_start(&fb, NULL);
    uv_timer_start(&fb.poll, on_ctl_poll, POLL_MS, POLL_MS);
    logs = ctl_fab_run(&fb);

    assert_int_equal(fb.ctl.requests, 2); /* busy once, then served */
    assert_true(fb.ctl.at[1] - fb.ctl.at[0] >= 1000); /* Retry-After: 1 */
    assert_non_null(log_line(logs, "event=edge_controller_busy", line, sizeof(line)));
    assert_non_null(strstr(line, "level=warn"));
    assert_non_null(strstr(line, "retry_ms=1000"));
    assert_non_null(strstr(line, "admission refusal"));
    assert_int_equal(count(logs, "edge_session_refused"), 0);
    free(logs);
}

/* ---- a controller refusing the device binding ---- */

static int denied_status;
static char denied_msg[WEFT_ERRMSG_MAX];

static void on_denied_stop(uv_timer_t *t)
{
    ctl_fab_stop(t->data);
}

static void on_denied_dial(weft_conn *conn, int status, void *data)
{
    ctl_fab *fb = data;

    assert_null(conn);
    denied_status = status;
    snprintf(denied_msg, sizeof(denied_msg), "%s", weft_last_error_msg(fb->ctx));
    /* Long enough for a tight retry loop to show itself. */
    uv_timer_start(&fb->poll, on_denied_stop, 1500, 0);
}

/* GET /v1/edge/session?imei=... answered 403 binding_mismatch: a dial waiting
 * for session data fails at once with WEFT_EBINDING and the controller's
 * words, the log says what to do, and the request is not repeated soon. */
static void test_controller_binding_mismatch(void **state)
{
    char *logs, line[1024];
    ctl_fab fb;

    (void)state;
    ctl_fab_start(&fb, "{\"error\":{\"code\":\"binding_mismatch\",\"message\":\"hardware ids (IMEI "
                       "356938035643809, ICCID none) do not match the pair bound to this "
                       "identity\"}}");
    assert_int_equal(weft_dial(fb.ctx, "echo", on_denied_dial, &fb), 0);
    logs = ctl_fab_run(&fb);

    assert_int_equal(denied_status, WEFT_EBINDING);
    assert_non_null(strstr(denied_msg, "do not match the pair bound to this identity"));
    assert_non_null(strstr(denied_msg, "(binding_mismatch, HTTP 403)"));
    assert_int_equal(fb.ctl.requests, 1); /* not asked again within 1.5 s */
    assert_non_null(log_line(logs, "event=edge_binding_mismatch", line, sizeof(line)));
    assert_non_null(strstr(line, "level=error"));
    assert_non_null(strstr(line, "imei=356938035643809 iccid=- "));
    assert_non_null(strstr(line, "retry_within_s=60 "));
    assert_non_null(strstr(line, "weft identity rebind"));
    free(logs);
}

/* ---- pr_http_resp.retry_after_s, as the blocking client reads it ---- */

typedef struct {
    uv_work_t work;
    const char *url;
    pr_httpc_cfg cfg;
    pr_http_resp resp;
    int rc;
    ctl_stub *cs;
} ra_job;

static void ra_work(uv_work_t *w)
{
    ra_job *j = w->data;
    char err[256];

    j->rc = pr_https_request(j->url, &j->cfg, "GET", "/v1/edge/session?imei=356938035643809", NULL,
                             0, NULL, &j->resp, err, sizeof(err));
}

static void ra_done(uv_work_t *w, int status)
{
    ra_job *j = w->data;

    assert_int_equal(status, 0);
    uv_close((uv_handle_t *)&j->cs->tcp, NULL);
}

static void test_httpc_retry_after(void **state)
{
    static const struct {
        const char *line;
        unsigned want;
    } cases[] = {
        {"Retry-After: 7\r\n", 7},
        {"retry-after:   42  \r\n", 42},
        {"Retry-After: 100000\r\n", 86400},                       /* a day at most */
        {"Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n", 0},    /* a date: absent */
        {"Retry-After: 123456789012\r\n", 0},                     /* too long: absent */
        {"Retry-After: -1\r\n", 0},
        {"", 0},
    };
    pr_idfile dev;
    char url[64];

    (void)state;
    make_identity("identity", "dev1", NULL, &dev, "https://127.0.0.1:1");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uv_loop_t loop;
        ctl_stub cs;
        ra_job j = {.cfg = {.ca_pem = dev.ca_pem, .cert_pem = dev.cert_pem,
                            .key_pem = dev.key_pem, .timeout_ms = 5000}};

        assert_int_equal(uv_loop_init(&loop), 0);
        ctl_start(&cs, &loop, "127.0.0.1:1");
        cs.retry_after = cases[i].line;
        snprintf(url, sizeof(url), "https://127.0.0.1:%d", cs.port);
        j.url = url;
        j.cs = &cs;
        j.work.data = &j;
        assert_int_equal(uv_queue_work(&loop, &j.work, ra_work, ra_done), 0);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        pr_tls_ctx_free(cs.tls);
        assert_int_equal(j.rc, 0);
        assert_int_equal(j.resp.status, 429);
        if (j.resp.retry_after_s != cases[i].want)
            fail_msg("case %zu: retry_after_s %u, want %u", i, j.resp.retry_after_s,
                     cases[i].want);
        pr_http_resp_free(&j.resp);
    }
    pr_idfile_free(&dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_busy_hint),
        cmocka_unit_test(test_multihomed_keeps_other),
        cmocka_unit_test(test_controller_retry_after),
        cmocka_unit_test(test_controller_binding_mismatch),
        cmocka_unit_test(test_httpc_retry_after),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
