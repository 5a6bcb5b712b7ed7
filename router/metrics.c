/* Prometheus metrics over plain HTTP (opt-in: weft-router run --metrics-listen
 * HOST:PORT). One request per connection: llhttp parses it, GET /metrics is
 * answered with the text exposition format, anything else with 404 or 405,
 * and the connection closes after the answer. Meant for a local port: it
 * shows counts and peer ids, never keys, tokens or payload. */
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/log.h"
#include "router/enforce.h"
#include "router/router.h"
#include "weft/errors.h"

#define REQ_MAX    8192  /* bytes of request a client may send */
#define URL_CAP    64
#define BODY_CAP   65536 /* the metrics text */
#define CONN_MAX   16    /* clients at once; more are closed at once */

typedef struct mconn mconn;

struct rt_metrics {
    rt_router *r;
    uv_tcp_t tcp;
    int nconn;
    int closing, listener_closed; /* freed once both closed and no client is left */
    mconn *conns;
    char addr[64];
};

struct mconn {
    struct rt_metrics *m;
    uv_tcp_t tcp;
    llhttp_t parser;
    llhttp_settings_t settings;
    char url[URL_CAP];
    size_t url_len, got;
    int done, closing;
    uv_write_t wr;
    char *out;
    mconn *next, *prev;
};

static void maybe_free(struct rt_metrics *m)
{
    if (m->closing && m->listener_closed && m->nconn == 0)
        free(m);
}

/* ---- the text ---- */

typedef struct {
    char *buf;
    size_t cap, len;
    int err;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->err)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->err = WEFT_ETOOBIG;
    else
        b->len += (size_t)n;
}

static void links_text(rt_router *r, sbuf *b)
{
    int up = 0;

    for (rt_link *l = r->links; l; l = l->next)
        up += l->state == RT_LINK_UP;
    put(b, "# HELP weft_router_links_up Links to other routers that are up.\n"
           "# TYPE weft_router_links_up gauge\nweft_router_links_up %d\n", up);
    put(b, "# HELP weft_router_link_rtt_seconds Smoothed round-trip time of a link.\n"
           "# TYPE weft_router_link_rtt_seconds gauge\n");
    for (rt_link *l = r->links; l; l = l->next)
        if (l->state == RT_LINK_UP)
            put(b, "weft_router_link_rtt_seconds{peer=\"%s\"} %.6f\n", l->peer,
                (double)l->srtt_us / 1e6);
    put(b, "# HELP weft_router_link_queue_bytes Bytes waiting in a link's write queue.\n"
           "# TYPE weft_router_link_queue_bytes gauge\n");
    for (rt_link *l = r->links; l; l = l->next)
        if (l->state == RT_LINK_UP)
            put(b, "weft_router_link_queue_bytes{peer=\"%s\"} %zu\n", l->peer,
                pr_conn_queued(l->conn));
}

static void sessions_text(rt_router *r, sbuf *b)
{
    size_t n = 0, q = 0;

    for (rt_sess *s = r->sessions; s; s = s->next) {
        n++;
        q += s->conn ? pr_conn_queued(s->conn) : 0;
    }
    put(b, "# HELP weft_router_sessions Edge sessions.\n# TYPE weft_router_sessions gauge\n"
           "weft_router_sessions %zu\n", n);
    put(b, "# HELP weft_router_session_queue_bytes Bytes waiting in edge sessions' write queues.\n"
           "# TYPE weft_router_session_queue_bytes gauge\nweft_router_session_queue_bytes %zu\n", q);
}

int rt_metrics_render(rt_router *r, char *buf, size_t cap)
{
    sbuf b = {buf, cap, 0, 0};

    links_text(r, &b);
    sessions_text(r, &b);
    put(&b, "# HELP weft_router_circuits Circuit entries held (any role).\n"
            "# TYPE weft_router_circuits gauge\nweft_router_circuits %zu\n", r->circuits.n);
    put(&b, "# HELP weft_router_circuits_opened_total Circuits opened with this router as "
            "ingress.\n# TYPE weft_router_circuits_opened_total counter\n"
            "weft_router_circuits_opened_total %llu\n", (unsigned long long)r->circuits_opened);
    put(&b, "# HELP weft_router_frames_forwarded_total Payload and ack frames forwarded.\n"
            "# TYPE weft_router_frames_forwarded_total counter\n"
            "weft_router_frames_forwarded_total %llu\n", (unsigned long long)r->frames_fwd);
    put(&b, "# HELP weft_router_bytes_forwarded_total Bytes of payload and ack frames forwarded.\n"
            "# TYPE weft_router_bytes_forwarded_total counter\n"
            "weft_router_bytes_forwarded_total %llu\n", (unsigned long long)r->bytes_fwd);
    put(&b, "# HELP weft_router_sessions_admitted_total New edge sessions admitted "
            "(docs/policies.md \"Admission control\").\n"
            "# TYPE weft_router_sessions_admitted_total counter\n"
            "weft_router_sessions_admitted_total %llu\n", (unsigned long long)r->admit.admitted);
    put(&b, "# HELP weft_router_sessions_refused_total New edge sessions refused over the "
            "admission rate, with a retry hint.\n# TYPE weft_router_sessions_refused_total "
            "counter\nweft_router_sessions_refused_total %llu\n",
        (unsigned long long)r->admit.refused);
    put(&b, "# HELP weft_router_reroutes_total Circuits moved to another path.\n"
            "# TYPE weft_router_reroutes_total counter\nweft_router_reroutes_total %llu\n",
        (unsigned long long)r->reroutes);
    put(&b, "# HELP weft_router_legs_lost_total Circuit legs lost to failed links or routers.\n"
            "# TYPE weft_router_legs_lost_total counter\nweft_router_legs_lost_total %llu\n",
        (unsigned long long)r->legs_lost);
    put(&b, "# HELP weft_router_policy_violations_total Behaviour and binding violations seen "
            "(docs/policies.md).\n# TYPE weft_router_policy_violations_total counter\n"
            "weft_router_policy_violations_total %llu\n",
        (unsigned long long)rt_enforce_violations(r->enforce));
    put(&b, "# HELP weft_router_events_queued Security events waiting for the controller.\n"
            "# TYPE weft_router_events_queued gauge\nweft_router_events_queued %zu\n"
            "# HELP weft_router_events_dropped_total Security events dropped from a full queue "
            "while the controller was away.\n# TYPE weft_router_events_dropped_total counter\n"
            "weft_router_events_dropped_total %llu\n",
        rt_control_events_queued(r), (unsigned long long)rt_control_events_dropped(r));
    put(&b,
        "# HELP weft_router_baseline_batches_waiting Anomaly-baseline reports sent and not "
        "yet acknowledged by the controller.\n# TYPE weft_router_baseline_batches_waiting "
        "gauge\nweft_router_baseline_batches_waiting %zu\n"
        "# HELP weft_router_baseline_batches_acked_total Anomaly-baseline reports the "
        "controller stored.\n# TYPE weft_router_baseline_batches_acked_total counter\n"
        "weft_router_baseline_batches_acked_total %llu\n",
        rt_baseline_waiting(rt_enforce_reports(r->enforce)),
        (unsigned long long)rt_baseline_acked_total(rt_enforce_reports(r->enforce)));
    return b.err ? b.err : (int)b.len;
}

/* ---- HTTP ---- */

static void conn_closed(uv_handle_t *h)
{
    mconn *c = h->data;
    struct rt_metrics *m = c->m;

    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nconn--;
    free(c->out);
    free(c);
    maybe_free(m);
}

static void conn_close(mconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    conn_close(w->data);
}

static void respond(mconn *c, const char *status, const char *type, const char *body, size_t len)
{
    size_t cap = len + 256;
    uv_buf_t buf;
    int n;

    if ((c->out = malloc(cap)) == NULL) {
        conn_close(c);
        return;
    }
    n = snprintf(c->out, cap,
                 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, type, len);
    memcpy(c->out + n, body, len);
    buf = uv_buf_init(c->out, (unsigned)(n + (int)len));
    c->wr.data = c;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
        conn_close(c);
}

static void answer(mconn *c)
{
    static char text[BODY_CAP];
    int n;

    if (llhttp_get_method(&c->parser) != HTTP_GET) {
        respond(c, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
        return;
    }
    if (strcmp(c->url, "/metrics") != 0) {
        respond(c, "404 Not Found", "text/plain", "try /metrics\n", 13);
        return;
    }
    if ((n = rt_metrics_render(c->m->r, text, sizeof(text))) < 0) {
        respond(c, "500 Internal Server Error", "text/plain", "metrics too large\n", 18);
        return;
    }
    respond(c, "200 OK", "text/plain; version=0.0.4", text, (size_t)n);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    mconn *c = p->data;

    if (len >= URL_CAP - c->url_len)
        return -1; /* no URL of ours is that long */
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_complete(llhttp_t *p)
{
    mconn *c = p->data;

    c->done = 1;
    return HPE_PAUSED; /* one request per connection */
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char rbuf[4096];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    mconn *c = s->data;
    llhttp_errno_t e;

    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->done)
        return;
    c->got += (size_t)n;
    e = llhttp_execute(&c->parser, buf->base, (size_t)n);
    if (c->done) {
        answer(c);
    } else if (e != HPE_OK || c->got > REQ_MAX) {
        respond(c, "400 Bad Request", "text/plain", "bad request\n", 12);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct rt_metrics *m = server->data;
    mconn *c;

    if (status < 0 || m->closing || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->m = m;
    m->nconn++;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || m->nconn > CONN_MAX) {
        conn_close(c);
        return;
    }
    llhttp_settings_init(&c->settings);
    c->settings.on_url = on_url;
    c->settings.on_message_complete = on_complete;
    llhttp_init(&c->parser, HTTP_REQUEST, &c->settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

int rt_metrics_listen(rt_router *r, const char *addr)
{
    struct sockaddr_storage ss;
    struct rt_metrics *m;
    int len = sizeof(ss), rc;

    if ((rc = pr_addr_resolve(addr, &ss)) < 0)
        return rc;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return WEFT_ENOMEM;
    m->r = r;
    uv_tcp_init(r->loop, &m->tcp);
    m->tcp.data = m;
    r->metrics = m;
    if (uv_tcp_bind(&m->tcp, (struct sockaddr *)&ss, 0) < 0 ||
        uv_listen((uv_stream_t *)&m->tcp, 16, on_connection) < 0) {
        pr_error("metrics_listen_failed", "addr=%s hint=%s", addr,
                 pr_log_q("the address is in use or not local; change --metrics-listen"));
        rt_metrics_close(r);
        return WEFT_EADDR;
    }
    uv_tcp_getsockname(&m->tcp, (struct sockaddr *)&ss, &len);
    pr_addr_format((struct sockaddr *)&ss, m->addr, sizeof(m->addr));
    pr_info("metrics_listening", "addr=%s path=/metrics", m->addr);
    return 0;
}

const char *rt_metrics_addr(const rt_router *r)
{
    return r->metrics ? r->metrics->addr : NULL;
}

static void listener_closed(uv_handle_t *h)
{
    struct rt_metrics *m = h->data;

    m->listener_closed = 1;
    maybe_free(m);
}

void rt_metrics_close(rt_router *r)
{
    struct rt_metrics *m = r->metrics;

    if (m == NULL)
        return;
    r->metrics = NULL;
    m->closing = 1;
    for (mconn *c = m->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&m->tcp, listener_closed);
}
