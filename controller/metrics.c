/* Prometheus metrics (metrics.h): counters fed by the API, gauges read from
 * the map and the circuit view when scraped, and a small plain-HTTP server on
 * libuv whose requests are parsed by the API's own parser (http_parse.h).
 * One request per connection: the answer carries "Connection: close". */
#include "controller/metrics.h"
#include "controller/admit.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/circuits.h"
#include "controller/events.h"
#include "controller/http_parse.h"
#include "controller/netmap.h"
#include "proto/addr.h"
#include "proto/log.h"
#include "weft/errors.h"

#define CODE_MIN 100
#define CODE_MAX 599
#define TEXT_CAP 16384

typedef struct mconn mconn;

struct ctl_metrics {
    uint64_t codes[CODE_MAX - CODE_MIN + 1];
    uint64_t enrolments;
    /* the server, when started */
    ctl *c;
    uv_loop_t *loop;
    uv_tcp_t tcp;
    int listening, stopping, handles;
    unsigned nconns;
    mconn *conns;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

struct mconn {
    ctl_metrics *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    ctl_http_parse hp;
    char *out;
    int handles, closing, answered;
    mconn *prev, *next;
};

int ctl_metrics_new(ctl_metrics **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : WEFT_ENOMEM;
}

void ctl_metrics_free(ctl_metrics *m)
{
    free(m);
}

void ctl_metrics_count(ctl_metrics *m, const char *method, const char *path, int status)
{
    if (m == NULL || status < CODE_MIN || status > CODE_MAX)
        return;
    m->codes[status - CODE_MIN]++;
    if (status / 100 == 2 && method && path && strcmp(method, "POST") == 0 &&
        strncmp(path, "/v1/enroll", 10) == 0)
        m->enrolments++;
}

/* ---- exposition ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int err;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->err)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = WEFT_EINVAL;
            return;
        }
        if ((size_t)n < b->cap - b->len)
            break;
        char *nb = realloc(b->buf, b->cap * 2 + (size_t)n);
        if (nb == NULL) {
            b->err = WEFT_ENOMEM;
            return;
        }
        b->buf = nb;
        b->cap = b->cap * 2 + (size_t)n;
    }
    b->len += (size_t)n;
}

static void gauge(sbuf *b, const char *name, const char *help, unsigned long long v)
{
    put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, v);
}

static void api_counters(sbuf *b, const ctl_metrics *m)
{
    put(b, "# HELP weft_controller_api_requests_total REST API answers by status code.\n"
           "# TYPE weft_controller_api_requests_total counter\n");
    for (int i = 0; m && i <= CODE_MAX - CODE_MIN; i++)
        if (m->codes[i])
            put(b, "weft_controller_api_requests_total{code=\"%d\"} %llu\n", i + CODE_MIN,
                (unsigned long long)m->codes[i]);
    put(b, "# HELP weft_controller_enrolments_total Successful enrolments.\n"
           "# TYPE weft_controller_enrolments_total counter\n"
           "weft_controller_enrolments_total %llu\n",
        (unsigned long long)(m ? m->enrolments : 0));
}

int ctl_metrics_render(const ctl *c, char **text, size_t *len)
{
    sbuf b = {.buf = malloc(TEXT_CAP), .cap = TEXT_CAP};
    size_t open = ctl_circuits_open_count(c->circuits);
    char adm[1024];

    *text = NULL;
    if (b.buf == NULL)
        return WEFT_ENOMEM;
    gauge(&b, "weft_controller_routers_online", "Routers with an open control channel.",
          ctl_netmap_online_count(c->map));
    gauge(&b, "weft_controller_links_up", "Router links both ends report up.",
          ctl_netmap_links_up(c->map));
    put(&b, "# HELP weft_controller_circuits Circuits in the controller's view.\n"
            "# TYPE weft_controller_circuits gauge\n"
            "weft_controller_circuits{state=\"open\"} %zu\n"
            "weft_controller_circuits{state=\"closed\"} %zu\n",
        open, ctl_circuits_count(c->circuits) - open);
    gauge(&b, "weft_controller_map_version", "Version of the network map.",
          c->map ? (unsigned long long)ctl_netmap_version(c->map) : 0);
    api_counters(&b, c->metrics);
    if (ctl_admit_metrics(c, adm, sizeof(adm)) > 0)
        put(&b, "%s", adm);
    if (c->events && b.err == 0) { /* security events and webhooks (docs/policies.md) */
        int n = ctl_events_metrics(c->events, b.buf + b.len, b.cap - b.len);
        if (n < 0)
            b.err = n;
        else
            b.len += (size_t)n;
    }
    if (b.err) {
        free(b.buf);
        return b.err;
    }
    *text = b.buf;
    *len = b.len;
    return 0;
}

/* ---- server ---- */

static void maybe_stopped(ctl_metrics *m)
{
    void (*cb)(void *) = m->stop_cb;

    if (!m->stopping || m->handles > 0 || m->conns != NULL)
        return;
    m->stopping = 0; /* once */
    m->stop_cb = NULL;
    if (cb)
        cb(m->stop_arg);
}

static void conn_handle_closed(uv_handle_t *h)
{
    mconn *k = h->data;
    ctl_metrics *m = k->m;

    if (--k->handles > 0)
        return;
    if (k->prev)
        k->prev->next = k->next;
    else
        m->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    m->nconns--;
    ctl_http_parse_finish(&k->hp);
    free(k->out);
    free(k);
    maybe_stopped(m);
}

static void conn_close(mconn *k)
{
    if (k->closing)
        return;
    k->closing = 1;
    uv_close((uv_handle_t *)&k->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&k->timer, conn_handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static void respond(mconn *k, int status, const char *reason, const char *ctype,
                    const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, reason, ctype, len);
    uv_buf_t buf;

    k->answered = 1;
    uv_read_stop((uv_stream_t *)&k->tcp);
    if (n < 0 || (k->out = malloc((size_t)n + len)) == NULL) {
        conn_close(k);
        return;
    }
    memcpy(k->out, head, (size_t)n);
    if (len)
        memcpy(k->out + n, body, len);
    buf = uv_buf_init(k->out, (unsigned)((size_t)n + len));
    k->wr.data = k;
    if (uv_write(&k->wr, (uv_stream_t *)&k->tcp, &buf, 1, on_written) != 0)
        conn_close(k);
}

static void answer(mconn *k)
{
    static const char text_type[] = "text/plain; version=0.0.4; charset=utf-8";
    ctl_http_req req = {0};
    char *text = NULL;
    size_t len = 0;

    ctl_http_parse_request(&k->hp, &req);
    if (strcmp(req.path, "/metrics") != 0) {
        respond(k, 404, "Not Found", text_type, "not found: GET /metrics\n", 24);
    } else if (strcmp(req.method, "GET") != 0 && strcmp(req.method, "HEAD") != 0) {
        respond(k, 405, "Method Not Allowed", text_type, "use GET /metrics\n", 17);
    } else if (ctl_metrics_render(k->m->c, &text, &len) < 0) {
        respond(k, 500, "Internal Server Error", text_type, "out of memory\n", 14);
    } else {
        respond(k, 200, "OK", text_type, text, strcmp(req.method, "HEAD") == 0 ? 0 : len);
    }
    free(text);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    mconn *k = st->data;
    size_t used = 0;
    int rc = CTL_HTTP_PARSE_MORE;

    if (nread < 0)
        conn_close(k);
    else if (nread > 0 && !k->answered)
        rc = ctl_http_parse_feed(&k->hp, (const uint8_t *)buf->base, (size_t)nread, &used);
    free(buf->base);
    if (k->closing || k->answered)
        return;
    if (rc == CTL_HTTP_PARSE_REQUEST || rc == CTL_HTTP_PARSE_CONTINUE)
        answer(k); /* a GET has no body worth waiting for */
    else if (rc < 0)
        respond(k, k->hp.err_status ? k->hp.err_status : 400, "Bad Request",
                "text/plain; charset=utf-8", "bad request\n", 12);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    ctl_metrics *m = server->data;
    mconn *k;

    if (status < 0 || m->stopping)
        return;
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return;
    k->m = m;
    uv_tcp_init(m->loop, &k->tcp);
    uv_timer_init(m->loop, &k->timer);
    k->tcp.data = k->timer.data = k;
    k->handles = 2;
    ctl_http_parse_init(&k->hp);
    k->next = m->conns;
    if (m->conns)
        m->conns->prev = k;
    m->conns = k;
    m->nconns++;
    if (uv_accept(server, (uv_stream_t *)&k->tcp) != 0 || m->nconns > CTL_METRICS_MAX_CONNS) {
        conn_close(k);
        return;
    }
    uv_timer_start(&k->timer, on_idle, CTL_METRICS_IDLE_MS, 0);
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *h)
{
    ctl_metrics *m = h->data;

    m->handles--;
    maybe_stopped(m);
}

int ctl_metrics_start(uv_loop_t *loop, ctl *c, const char *addr)
{
    ctl_metrics *m = c->metrics;
    struct sockaddr_storage ss;
    int rc;

    if (m == NULL || m->listening)
        return WEFT_EINVAL;
    if ((rc = pr_addr_resolve(addr, &ss)) < 0)
        return rc;
    m->c = c;
    m->loop = loop;
    uv_tcp_init(loop, &m->tcp);
    m->tcp.data = m;
    m->handles = 1;
    m->listening = 1;
    if ((rc = uv_tcp_bind(&m->tcp, (const struct sockaddr *)&ss, 0)) == 0)
        rc = uv_listen((uv_stream_t *)&m->tcp, 64, on_connection);
    if (rc < 0) {
        pr_error("metrics_listen_failed", "addr=%s err=%s hint=%s", pr_log_q(addr),
                 uv_err_name(rc), pr_log_q("choose a free port for --metrics-listen"));
        return WEFT_EIO;
    }
    pr_info("metrics_listening", "addr=%s port=%d", pr_log_q(addr), ctl_metrics_port(m));
    return 0;
}

int ctl_metrics_port(const ctl_metrics *m)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (m == NULL || !m->listening ||
        uv_tcp_getsockname(&m->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

void ctl_metrics_stop(ctl_metrics *m, void (*cb)(void *arg), void *arg)
{
    if (m == NULL || !m->listening) {
        if (cb)
            cb(arg);
        return;
    }
    m->listening = 0;
    m->stopping = 1;
    m->stop_cb = cb;
    m->stop_arg = arg;
    uv_close((uv_handle_t *)&m->tcp, on_listener_closed);
    for (mconn *k = m->conns; k; k = k->next)
        conn_close(k);
}
