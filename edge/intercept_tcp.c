/* A service's intercept address for TCP: a local listener whose every
 * accepted connection becomes a pipe dialling the service. Also stops either
 * kind of intercept listener. */
#include "edge/agent.h"
#include "proto/log.h"

static void on_connection(uv_stream_t *server, int status)
{
    edge_service *s = server->data;

    if (status < 0 || s->removed) {
        pr_warn("edge_accept_failed", "service=%s err=%s", s->cfg.name, uv_err_name(status));
        return;
    }
    edge_pipe_intercept(s, server);
}

static void on_listener_closed(uv_handle_t *h)
{
    edge_service_unref(h->data);
}

/* Closes the half-made listener of a failed start. */
static int start_failed(edge_service *s, int uverr)
{
    pr_debug("edge_intercept_error", "service=%s err=%s", s->cfg.name, uv_err_name(uverr));
    edge_intercept_stop(s);
    return uverr == UV_EADDRINUSE ? WEFT_EEXISTS : uverr == UV_EACCES ? WEFT_EDENIED : WEFT_EIO;
}

/* Resolution happened on the worker; an unresolved intercept cannot listen. */
static int check_ep(const edge_service *s)
{
    if (s->cfg.icpt_ep.proto == 0 || !s->cfg.icpt_ep.resolved)
        return WEFT_EADDR;
    return 0;
}

int edge_intercept_tcp_start(edge_service *s)
{
    int r;

    if ((r = check_ep(s)) < 0)
        return r;
    uv_tcp_init(s->a->loop, &s->lh.tcp);
    s->lh.tcp.data = s;
    s->lh_open = 1;
    s->refs++;
    if ((r = uv_tcp_bind(&s->lh.tcp, (struct sockaddr *)&s->cfg.icpt_ep.sa, 0)) < 0 ||
        (r = uv_listen((uv_stream_t *)&s->lh.tcp, 128, on_connection)) < 0)
        return start_failed(s, r);
    s->listening = 1;
    pr_info("edge_intercepting", "service=%s proto=tcp addr=%s", s->cfg.name, s->cfg.icpt_ep.text);
    return 0;
}

void edge_intercept_stop(edge_service *s)
{
    if (!s->lh_open)
        return;
    s->lh_open = 0;
    s->listening = 0;
    uv_close((uv_handle_t *)&s->lh, on_listener_closed);
}
