/* A UDP flow over a circuit. At an intercept, a flow is one source
 * address:port talking to the intercept socket; at a host, one incoming
 * circuit with a connected socket of its own towards the host address.
 * Each datagram is one weft_write of a length-prefixed frame (udp_frame.h),
 * cut back into datagrams at the far end. UDP has no backpressure: a
 * datagram that finds the circuit's queue full is dropped, and so is one
 * the local socket cannot take at once. A flow idle for EDGE_UDP_IDLE_MS in
 * both directions ends. One state machine, one change_state(). */
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/udp_frame.h"
#include "proto/addr.h"
#include "proto/log.h"

#define FLOW_PENDING_MAX (64 * 1024) /* framed datagrams held while dialling */

#define FLOW_STATES(XX)                                                                            \
    XX(DIALING)                                                                                    \
    XX(OPEN)                                                                                       \
    XX(CLOSING)

enum flow_state {
#define XX(s) FS_##s,
    FLOW_STATES(XX)
#undef XX
};

static const char *const state_names[] = {
#define XX(s) #s,
    FLOW_STATES(XX)
#undef XX
};

struct edge_flow {
    edge_flow *next, **pprev;
    edge_agent *a;
    edge_service *svc; /* intercept side: the socket's owner (a reference held) */
    int state, side;
    char service[EDGE_NAME_MAX];
    char local[EDGE_ADDR_MAX];
    struct sockaddr_storage src; /* intercept side: the local client */
    uv_udp_t sock;               /* host side */
    int sock_open;
    weft_conn *conn;
    int conn_open;
    int waits;
    unsigned wpending;
    uint64_t t0, last, up, down, dropped;
    uint8_t *pend;
    size_t pend_len;
    const char *result;
    edge_deframer df;
};

static void change_state(edge_flow *f, int st)
{
    pr_debug("edge_flow_state", "service=%s %s=%s from=%s to=%s", f->service,
             f->side == EDGE_SIDE_HOST ? "host" : "client", f->local, state_names[f->state],
             state_names[st]);
    f->state = st;
}

/* ---- life ---- */

static edge_flow *flow_new(edge_agent *a, const char *service, int side)
{
    edge_flow *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->a = a;
    f->side = side;
    f->t0 = f->last = uv_now(a->loop);
    snprintf(f->service, sizeof(f->service), "%s", service);
    f->next = a->flows;
    if (a->flows)
        a->flows->pprev = &f->next;
    f->pprev = &a->flows;
    a->flows = f;
    f->waits = 1; /* dropped by flow_close itself */
    return f;
}

static void flow_release(edge_flow *f)
{
    if (--f->waits > 0)
        return;
    pr_info("edge_conn_close",
            "service=%s side=%s proto=udp %s=%s bytes_up=%llu "
            "bytes_down=%llu dropped=%llu duration_ms=%llu result=%s",
            f->service, f->side == EDGE_SIDE_HOST ? "host" : "intercept",
            f->side == EDGE_SIDE_HOST ? "host" : "client", f->local, (unsigned long long)f->up,
            (unsigned long long)f->down, (unsigned long long)f->dropped,
            (unsigned long long)(uv_now(f->a->loop) - f->t0), f->result ? f->result : "ok");
    if (f->svc) {
        f->svc->nflows--;
        edge_service_unref(f->svc);
    }
    edge_mem_closed(f->a);
    free(f->pend);
    free(f);
}

static void on_sock_closed(uv_handle_t *h)
{
    flow_release(h->data);
}

static void on_conn_closed(weft_conn *c)
{
    flow_release(weft_conn_data(c));
}

static void flow_close(edge_flow *f, const char *result, int graceful)
{
    if (f->state == FS_CLOSING)
        return;
    if (f->result == NULL)
        f->result = result;
    change_state(f, FS_CLOSING);
    *f->pprev = f->next;
    if (f->next)
        f->next->pprev = f->pprev;
    if (f->conn_open) {
        f->conn_open = 0;
        if (graceful)
            weft_shutdown(f->conn); /* the far end reads EOF, not a reset */
        weft_close(f->conn, on_conn_closed);
    }
    if (f->sock_open) {
        f->sock_open = 0;
        uv_close((uv_handle_t *)&f->sock, on_sock_closed);
    }
    flow_release(f);
}

void edge_flow_stop(edge_flow *f, const char *result)
{
    flow_close(f, result, 1);
}

/* ---- local -> circuit ---- */

static void on_weft_written(weft_conn *c, int status, void *data)
{
    edge_flow *f = data;

    (void)c;
    (void)status;
    f->wpending--;
}

static void hold(edge_flow *f, const uint8_t *frame, size_t len)
{
    if (f->pend == NULL && (f->pend = malloc(FLOW_PENDING_MAX)) == NULL)
        len = FLOW_PENDING_MAX + 1; /* dropped below */
    if (len > FLOW_PENDING_MAX - f->pend_len) {
        f->dropped++;
        return;
    }
    memcpy(f->pend + f->pend_len, frame, len);
    f->pend_len += len;
}

/* One datagram from the local side; dropped when the circuit is backed up. */
static void flow_send(edge_flow *f, const uint8_t *p, size_t n)
{
    uint8_t frame[EDGE_DGRAM_HDR + EDGE_DGRAM_MAX];
    size_t len = edge_dgram_frame(frame, sizeof(frame), p, n);

    f->last = uv_now(f->a->loop);
    if (len == 0 || f->state == FS_CLOSING) {
        f->dropped++;
        return;
    }
    if (f->state == FS_DIALING)
        return hold(f, frame, len);
    if (f->wpending >= EDGE_WRITES_MAX || weft_write_queue_size(f->conn) >= EDGE_HIGH_WATER ||
        weft_write(f->conn, frame, len, on_weft_written, f) < 0) {
        f->dropped++;
        return;
    }
    f->wpending++;
    f->up += n;
}

/* ---- circuit -> local ---- */

static void deliver(void *arg, const uint8_t *p, size_t n)
{
    edge_flow *f = arg;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r;

    if (f->state != FS_OPEN)
        return;
    if (f->side == EDGE_SIDE_HOST)
        r = uv_udp_try_send(&f->sock, &b, 1, NULL);
    else
        r = uv_udp_try_send(&f->svc->lh.udp, &b, 1, (struct sockaddr *)&f->src);
    if (r < 0)
        f->dropped++;
    else
        f->down += n;
}

static void on_remote_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    edge_flow *f = weft_conn_data(c);

    if (f->state != FS_OPEN)
        return;
    if (n < 0)
        return flow_close(f, n == WEFT_ECLOSED ? "ok" : weft_err_name((int)n), n == WEFT_ECLOSED);
    f->last = uv_now(f->a->loop);
    edge_deframe(&f->df, buf, (size_t)n, deliver, f);
}

/* ---- opening ---- */

static void flow_open(edge_flow *f)
{
    size_t off = 0, len;

    change_state(f, FS_OPEN);
    pr_info("edge_conn_open", "service=%s side=%s proto=udp %s=%s peer=%s", f->service,
            f->side == EDGE_SIDE_HOST ? "host" : "intercept",
            f->side == EDGE_SIDE_HOST ? "host" : "client", f->local,
            weft_conn_peer_identity(f->conn));
    weft_read_start(f->conn, on_remote_read);
    /* What arrived while dialling, frame by frame, as one write each. */
    while (off + EDGE_DGRAM_HDR <= f->pend_len) {
        len = EDGE_DGRAM_HDR + ((size_t)f->pend[off] << 8 | f->pend[off + 1]);
        if (weft_write(f->conn, f->pend + off, len, on_weft_written, f) == 0) {
            f->wpending++;
            f->up += len - EDGE_DGRAM_HDR;
        }
        off += len;
    }
    free(f->pend);
    f->pend = NULL;
    f->pend_len = 0;
}

static void on_dialled(weft_conn *conn, int status, void *data)
{
    edge_flow *f = data;

    if (status < 0 && status != WEFT_ECANCELED)
        pr_warn("edge_dial_failed", "service=%s client=%s proto=udp err=%s msg=%s hint=%s",
                f->service, f->local, weft_err_name(status),
                pr_log_q(weft_last_error_msg(f->a->ctx)), pr_log_q(edge_dial_hint(status)));
    if (status == 0 && f->state == FS_DIALING) {
        f->conn = conn;
        f->conn_open = 1;
        f->waits++;
        weft_conn_set_data(conn, f);
        flow_open(f);
    } else if (status == 0) {
        weft_close(conn, NULL); /* the flow ended while dialling */
    } else {
        flow_close(f, "dial_failed", 0);
    }
    flow_release(f); /* the dial callback's hold */
}

static edge_flow *flow_find(edge_agent *a, const edge_service *s, const struct sockaddr *src)
{
    size_t len =
        src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    edge_flow *f;

    for (f = a->flows; f; f = f->next)
        if (f->svc == s && memcmp(&f->src, src, len) == 0)
            return f;
    return NULL;
}

static edge_flow *flow_intercept_new(edge_service *s, const struct sockaddr *src)
{
    size_t len =
        src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    edge_flow *f;
    int r;

    if (s->nflows >= EDGE_UDP_FLOWS_MAX ||
        (f = flow_new(s->a, s->cfg.name, EDGE_SIDE_INTERCEPT)) == NULL)
        return NULL;
    f->svc = s;
    s->refs++;
    s->nflows++;
    memcpy(&f->src, src, len);
    pr_addr_format(src, f->local, sizeof(f->local));
    /* The dial's hold, and ours: libweft may fail the dial from inside weft_dial. */
    f->waits += 2;
    if ((r = weft_dial(s->a->ctx, s->cfg.name, on_dialled, f)) < 0) {
        f->waits--;
        pr_warn("edge_dial_failed", "service=%s client=%s proto=udp err=%s", f->service, f->local,
                weft_err_name(r));
        flow_close(f, "dial_failed", 0);
    }
    if (f->state == FS_CLOSING) {
        flow_release(f);
        return NULL;
    }
    flow_release(f);
    return f;
}

void edge_flow_intercept_recv(edge_service *s, const struct sockaddr *src, const uint8_t *p,
                              size_t n)
{
    edge_flow *f = flow_find(s->a, s, src);

    if (f == NULL && (f = flow_intercept_new(s, src)) == NULL) {
        pr_warn("edge_udp_dropped", "service=%s why=%s", s->cfg.name,
                pr_log_q("too many flows or out of memory"));
        return;
    }
    flow_send(f, p, n);
}

/* ---- host side ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    edge_flow *f = h->data;

    (void)hint;
    *buf = uv_buf_init((char *)f->a->rbuf, sizeof(f->a->rbuf));
}

static void on_host_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *src,
                         unsigned flags)
{
    edge_flow *f = h->data;
    char msg[EDGE_ADDR_MAX + EDGE_NAME_MAX + 80];

    (void)buf;
    if (n < 0 && f->state != FS_CLOSING) {
        snprintf(msg, sizeof(msg), "service %s: host %s %s", f->service, f->local,
                 n == UV_ECONNREFUSED ? "refused the datagram; is the service running?"
                                      : "cannot be reached");
        pr_error("edge_host_udp_failed", "service=%s host=%s err=%s msg=%s hint=%s", f->service,
                 f->local, uv_err_name((int)n), pr_log_q(msg),
                 pr_log_q("start the service or correct its host address"));
        return flow_close(f, n == UV_ECONNREFUSED ? "host_refused" : "host_error", 0);
    }
    if (src == NULL || (flags & UV_UDP_PARTIAL) || f->state == FS_CLOSING)
        return;
    flow_send(f, f->a->rbuf, (size_t)n);
}

void edge_flow_host(edge_service *s, weft_conn *conn)
{
    edge_flow *f = flow_new(s->a, s->cfg.name, EDGE_SIDE_HOST);

    if (f == NULL)
        return weft_close(conn, NULL);
    snprintf(f->local, sizeof(f->local), "%s", s->cfg.host_ep.text);
    f->conn = conn;
    f->conn_open = 1;
    f->waits++;
    weft_conn_set_data(conn, f);
    uv_udp_init(s->a->loop, &f->sock);
    f->sock.data = f;
    f->sock_open = 1;
    f->waits++;
    if (uv_udp_connect(&f->sock, (struct sockaddr *)&s->cfg.host_ep.sa) < 0 ||
        uv_udp_recv_start(&f->sock, on_alloc, on_host_recv) < 0) {
        pr_error("edge_host_udp_failed", "service=%s host=%s hint=%s", f->service, f->local,
                 pr_log_q("cannot open a UDP socket towards the host address"));
        return flow_close(f, "host_error", 0);
    }
    flow_open(f);
}

/* ---- sweeping ---- */

void edge_flows_sweep(edge_agent *a, uint64_t now)
{
    edge_flow *f, *next;

    for (f = a->flows; f; f = next) {
        next = f->next;
        if (now - f->last >= EDGE_UDP_IDLE_MS)
            flow_close(f, "idle", 1);
    }
}

void edge_flows_stop_service(edge_service *s)
{
    edge_flow *f, *next;

    for (f = s->a->flows; f; f = next) {
        next = f->next;
        if (f->svc == s)
            flow_close(f, "service_removed", 1);
    }
}
