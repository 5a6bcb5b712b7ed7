/* A local TCP connection spliced to a circuit, on either side: at an intercept
 * (the local client connected to us, we dial the service) or at a host (a
 * circuit came in, we connect to the service's host address).
 *
 * One state machine, pipe_event(); change_state() is the only place the
 * state moves. Bytes flow both ways with backpressure (see agent.h):
 *   local EOF      -> weft_shutdown (the far end reads EOF)
 *   circuit EOF    -> uv_shutdown of the local socket
 *   both, flushed  -> close both
 *   local error    -> weft_close: the far end sees a reset
 *   circuit error  -> RST to the local socket (uv_tcp_close_reset)
 * The pipe is freed once every callback it waits for has run. */
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "proto/addr.h"
#include "proto/log.h"

#define PIPE_STATES(XX)                                                                            \
    XX(CONNECTING)                                                                                 \
    XX(OPEN)                                                                                       \
    XX(CLOSING)

enum pipe_state {
#define XX(s) PS_##s,
    PIPE_STATES(XX)
#undef XX
};

enum pipe_event {
    PE_READY,  /* dialled / connected to the host */
    PE_FAILED, /* could not dial / connect */
    PE_LOCAL_EOF,
    PE_LOCAL_ERR,
    PE_REMOTE_EOF,
    PE_REMOTE_ERR,
    PE_FLUSHED, /* a write completed on either side */
    PE_STOP,
};

static const char *const state_names[] = {
#define XX(s) #s,
    PIPE_STATES(XX)
#undef XX
};

struct edge_pipe {
    edge_pipe *next, **pprev;
    edge_agent *a;
    int state, side;
    char service[EDGE_NAME_MAX];
    char local[EDGE_ADDR_MAX]; /* the client (intercept) or the host address */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    weft_conn *conn;
    int waits; /* tcp close, conn close, dial or connect callback */
    int tcp_open, conn_open;
    unsigned wpending; /* weft_writes not yet called back */
    int local_eof, remote_eof, local_shut, shut_done;
    int local_paused, remote_paused;
    uint64_t up, down, t0; /* up: local -> circuit */
    const char *result;
};

typedef struct {
    uv_write_t req;
    edge_pipe *p;
    size_t len;
    uint8_t data[];
} pipe_wreq;

static void pipe_event(edge_pipe *p, int ev, int err);

static void change_state(edge_pipe *p, int st)
{
    pr_debug("edge_conn_state", "service=%s side=%s from=%s to=%s", p->service,
             p->side == EDGE_SIDE_HOST ? "host" : "intercept", state_names[p->state],
             state_names[st]);
    p->state = st;
}

/* ---- life ---- */

static edge_pipe *pipe_new(edge_agent *a, const char *service, int side)
{
    edge_pipe *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->a = a;
    p->side = side;
    p->t0 = uv_now(a->loop);
    snprintf(p->service, sizeof(p->service), "%s", service);
    p->next = a->pipes;
    if (a->pipes)
        a->pipes->pprev = &p->next;
    p->pprev = &a->pipes;
    a->pipes = p;
    uv_tcp_init(a->loop, &p->tcp);
    p->tcp.data = p;
    p->tcp_open = 1;
    p->waits = 1;
    return p;
}

static void pipe_release(edge_pipe *p)
{
    if (--p->waits > 0)
        return;
    pr_info("edge_conn_close",
            "service=%s side=%s %s=%s bytes_up=%llu bytes_down=%llu "
            "duration_ms=%llu result=%s",
            p->service, p->side == EDGE_SIDE_HOST ? "host" : "intercept",
            p->side == EDGE_SIDE_HOST ? "host" : "client", p->local, (unsigned long long)p->up,
            (unsigned long long)p->down, (unsigned long long)(uv_now(p->a->loop) - p->t0),
            p->result ? p->result : "ok");
    edge_mem_closed(p->a);
    free(p);
}

static void on_tcp_closed(uv_handle_t *h)
{
    pipe_release(h->data);
}

static void on_conn_closed(weft_conn *c)
{
    pipe_release(weft_conn_data(c));
}

static void unlink_pipe(edge_pipe *p)
{
    if (p->pprev == NULL)
        return;
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    p->pprev = NULL;
}

/* Closes both ends; reset sends the local peer an RST instead of a FIN. */
static void pipe_close(edge_pipe *p, const char *result, int reset)
{
    if (p->state == PS_CLOSING)
        return;
    if (p->result == NULL)
        p->result = result;
    change_state(p, PS_CLOSING);
    unlink_pipe(p);
    if (p->conn_open) {
        p->conn_open = 0;
        weft_close(p->conn, on_conn_closed);
    }
    if (p->tcp_open) {
        p->tcp_open = 0;
        if (!reset || uv_tcp_close_reset(&p->tcp, on_tcp_closed) != 0)
            uv_close((uv_handle_t *)&p->tcp, on_tcp_closed);
    }
}

/* ---- local -> circuit ---- */

static int local_full(const edge_pipe *p)
{
    return p->wpending >= EDGE_WRITES_MAX || weft_write_queue_size(p->conn) >= EDGE_HIGH_WATER;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    edge_pipe *p = h->data;

    (void)hint;
    *buf = uv_buf_init((char *)p->a->rbuf, sizeof(p->a->rbuf));
}

static void on_weft_written(weft_conn *c, int status, void *data)
{
    edge_pipe *p = data;

    (void)c;
    p->wpending--;
    if (status == 0)
        pipe_event(p, PE_FLUSHED, 0);
}

static void on_local_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    edge_pipe *p = s->data;
    int r;

    (void)buf;
    if (n == 0)
        return;
    if (n < 0)
        return pipe_event(p, n == UV_EOF ? PE_LOCAL_EOF : PE_LOCAL_ERR, (int)n);
    if ((r = weft_write(p->conn, p->a->rbuf, (size_t)n, on_weft_written, p)) < 0)
        return pipe_event(p, PE_REMOTE_ERR, r);
    p->wpending++;
    p->up += (uint64_t)n;
    if (local_full(p)) {
        p->local_paused = 1;
        uv_read_stop(s);
    }
}

/* ---- circuit -> local ---- */

static void remote_check_pause(edge_pipe *p)
{
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp);

    if (!p->remote_paused && q >= EDGE_HIGH_WATER) {
        p->remote_paused = 1;
        weft_read_stop(p->conn);
    }
}

static void on_tcp_written(uv_write_t *req, int status)
{
    pipe_wreq *w = (pipe_wreq *)req;
    edge_pipe *p = w->p;

    free(w);
    if (status == 0)
        pipe_event(p, PE_FLUSHED, 0);
    else if (status != UV_ECANCELED)
        pipe_event(p, PE_LOCAL_ERR, status);
}

static int local_write(edge_pipe *p, const uint8_t *buf, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
    pipe_wreq *w;
    int r = 0;

    /* Most writes go straight into the socket; only the rest is copied. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) == 0 &&
        (r = uv_try_write((uv_stream_t *)&p->tcp, &b, 1)) > 0) {
        buf += r;
        n -= (size_t)r;
    }
    if (n == 0)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return r;
    if ((w = malloc(sizeof(*w) + n)) == NULL)
        return UV_ENOMEM;
    w->p = p;
    w->len = n;
    memcpy(w->data, buf, n);
    b = uv_buf_init((char *)w->data, (unsigned)n);
    if ((r = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_tcp_written)) < 0)
        free(w);
    return r;
}

static void on_remote_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    edge_pipe *p = weft_conn_data(c);
    int r;

    if (p->state != PS_OPEN)
        return;
    if (n < 0)
        return pipe_event(p, n == WEFT_ECLOSED ? PE_REMOTE_EOF : PE_REMOTE_ERR, (int)n);
    if ((r = local_write(p, buf, (size_t)n)) < 0)
        return pipe_event(p, PE_LOCAL_ERR, r);
    p->down += (uint64_t)n;
    remote_check_pause(p);
}

/* ---- the state machine ---- */

static void pipe_open(edge_pipe *p)
{
    change_state(p, PS_OPEN);
    pr_info("edge_conn_open", "service=%s side=%s %s=%s peer=%s", p->service,
            p->side == EDGE_SIDE_HOST ? "host" : "intercept",
            p->side == EDGE_SIDE_HOST ? "host" : "client", p->local,
            weft_conn_peer_identity(p->conn));
    weft_read_start(p->conn, on_remote_read);
    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_local_read);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    edge_pipe *p = req->data;

    p->shut_done = 1;
    if (status < 0 && status != UV_ECANCELED)
        pipe_event(p, PE_LOCAL_ERR, status);
    else
        pipe_event(p, PE_FLUSHED, 0);
}

/* Resumes whichever side was paused once its backlog drained; closes the
 * pipe once both directions ended and flushed. */
static void pipe_flushed(edge_pipe *p)
{
    if (p->local_paused && !p->local_eof && !local_full(p)) {
        p->local_paused = 0;
        uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_local_read);
    }
    if (p->remote_paused && !p->remote_eof &&
        uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) < EDGE_LOW_WATER) {
        p->remote_paused = 0;
        weft_read_start(p->conn, on_remote_read);
    }
    if (p->local_eof && p->wpending == 0 && p->remote_eof && p->shut_done)
        pipe_close(p, "ok", 0);
}

static void pipe_on_open_event(edge_pipe *p, int ev, int err)
{
    switch (ev) {
    case PE_LOCAL_EOF:
        p->local_eof = 1;
        uv_read_stop((uv_stream_t *)&p->tcp);
        if ((err = weft_shutdown(p->conn)) < 0)
            return pipe_event(p, PE_REMOTE_ERR, err);
        return pipe_flushed(p);
    case PE_REMOTE_EOF:
        p->remote_eof = 1;
        p->sreq.data = p;
        if (uv_shutdown(&p->sreq, (uv_stream_t *)&p->tcp, on_shutdown) < 0)
            return pipe_close(p, "local_error", 1);
        return;
    case PE_LOCAL_ERR:
        /* weft_close before our FIN: the far end reads a reset. */
        pr_debug("edge_conn_local_error", "service=%s err=%s", p->service, uv_err_name(err));
        return pipe_close(p, err == UV_ECONNRESET ? "local_reset" : "local_error", 0);
    case PE_REMOTE_ERR:
        return pipe_close(p, err == WEFT_ERESET ? "circuit_reset" : weft_err_name(err), 1);
    case PE_FLUSHED:
        return pipe_flushed(p);
    case PE_STOP:
        return pipe_close(p, "stopped", 1);
    }
}

static void pipe_event(edge_pipe *p, int ev, int err)
{
    switch (p->state) {
    case PS_CONNECTING:
        if (ev == PE_READY)
            pipe_open(p);
        else if (ev == PE_FAILED || ev == PE_STOP)
            pipe_close(p, ev == PE_STOP ? "stopped" : "failed", 1);
        break;
    case PS_OPEN:
        pipe_on_open_event(p, ev, err);
        break;
    case PS_CLOSING:
        break; /* late callbacks of a closing pipe */
    }
}

void edge_pipe_stop(edge_pipe *p)
{
    pipe_event(p, PE_STOP, 0);
    unlink_pipe(p);
}

/* ---- intercept side ---- */

static void on_dialled(weft_conn *conn, int status, void *data)
{
    edge_pipe *p = data;

    if (status < 0 && status != WEFT_ECANCELED) {
        pr_warn("edge_dial_failed", "service=%s client=%s err=%s msg=%s hint=%s", p->service,
                p->local, weft_err_name(status), pr_log_q(weft_last_error_msg(p->a->ctx)),
                pr_log_q(edge_dial_hint(status)));
    }
    if (status < 0) {
        p->result = "dial_failed";
    } else if (p->state != PS_CONNECTING) {
        weft_close(conn, NULL); /* the pipe stopped while dialling */
    } else {
        p->conn = conn;
        p->conn_open = 1;
        p->waits++;
        weft_conn_set_data(conn, p);
    }
    pipe_event(p, status < 0 ? PE_FAILED : PE_READY, status);
    pipe_release(p); /* the dial callback's hold */
}

int edge_pipe_intercept(edge_service *svc, uv_stream_t *server)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), r;
    edge_pipe *p;

    if ((p = pipe_new(svc->a, svc->cfg.name, EDGE_SIDE_INTERCEPT)) == NULL)
        return WEFT_ENOMEM;
    if ((r = uv_accept(server, (uv_stream_t *)&p->tcp)) < 0) {
        pipe_close(p, "accept_failed", 0);
        return WEFT_EIO;
    }
    if (uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&ss, &len) == 0)
        pr_addr_format((struct sockaddr *)&ss, p->local, sizeof(p->local));
    uv_tcp_nodelay(&p->tcp, 1);
    p->waits++;
    if ((r = weft_dial(svc->a->ctx, svc->cfg.name, on_dialled, p)) < 0) {
        p->waits--;
        pr_warn("edge_dial_failed", "service=%s client=%s err=%s", p->service, p->local,
                weft_err_name(r));
        pipe_close(p, "dial_failed", 1);
        return r;
    }
    return 0;
}

/* ---- host side ---- */

static void on_host_connected(uv_connect_t *req, int status)
{
    edge_pipe *p = req->data;
    char msg[EDGE_ADDR_MAX + EDGE_NAME_MAX + 80];

    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        /* The circuit was never accepted: the dialler's dial fails with the
         * reason, and its client is reset rather than left waiting. */
        snprintf(msg, sizeof(msg), "service %s: host %s %s", p->service, p->local,
                 status == UV_ECONNREFUSED ? "refused the connection; is the service running?"
                                           : "cannot be reached");
        pr_error("edge_host_connect_failed", "service=%s host=%s err=%s msg=%s hint=%s", p->service,
                 p->local, uv_err_name(status), pr_log_q(msg),
                 pr_log_q("start the service or correct its host address"));
        p->result = status == UV_ECONNREFUSED ? "host_refused" : "host_unreachable";
        weft_reject(p->conn, status == UV_ECONNREFUSED ? WEFT_EREFUSED : WEFT_EIO, msg);
        return pipe_event(p, PE_FAILED, status);
    }
    uv_tcp_nodelay(&p->tcp, 1);
    if ((status = weft_accept(p->conn)) < 0) { /* the dialler went meanwhile */
        p->result = "circuit_reset";
        return pipe_event(p, PE_FAILED, status);
    }
    pipe_event(p, PE_READY, 0);
}

void edge_pipe_host(edge_service *svc, weft_conn *conn)
{
    edge_pipe *p = pipe_new(svc->a, svc->cfg.name, EDGE_SIDE_HOST);
    int r;

    if (p == NULL)
        return weft_close(conn, NULL); /* refused: the dialler hears EREFUSED */
    p->conn = conn;
    p->conn_open = 1;
    p->waits++;
    weft_conn_set_data(conn, p);
    snprintf(p->local, sizeof(p->local), "%s", svc->cfg.host_ep.text);
    p->creq.data = p;
    if ((r = uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&svc->cfg.host_ep.sa,
                            on_host_connected)) < 0) {
        pr_error("edge_host_connect_failed", "service=%s host=%s err=%s", p->service, p->local,
                 uv_err_name(r));
        weft_reject(conn, WEFT_EIO, "the hosting edge cannot connect to the service's host");
        pipe_close(p, "host_unreachable", 0);
    }
}
