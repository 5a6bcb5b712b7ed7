/* A service's intercept address for UDP: one local socket; each source
 * address:port sending to it is a flow with a circuit of its own
 * (flow_udp.c), answered from this same socket. */
#include "edge/agent.h"
#include "proto/log.h"

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    edge_service *s = h->data;

    (void)hint;
    *buf = uv_buf_init((char *)s->a->rbuf, sizeof(s->a->rbuf));
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *src,
                    unsigned flags)
{
    edge_service *s = h->data;

    (void)buf;
    if (n < 0) {
        pr_warn("edge_udp_recv_failed", "service=%s err=%s", s->cfg.name, uv_err_name((int)n));
        return;
    }
    if (src == NULL || s->removed)
        return; /* nothing more to read now */
    if (flags & UV_UDP_PARTIAL) {
        pr_warn("edge_udp_truncated", "service=%s bytes=%zd", s->cfg.name, n);
        return;
    }
    edge_flow_intercept_recv(s, src, s->a->rbuf, (size_t)n);
}

int edge_intercept_udp_start(edge_service *s)
{
    int r;

    if (s->cfg.icpt_ep.proto == 0 || !s->cfg.icpt_ep.resolved)
        return WEFT_EADDR;
    uv_udp_init(s->a->loop, &s->lh.udp);
    s->lh.udp.data = s;
    s->lh_open = 1;
    s->refs++;
    if ((r = uv_udp_bind(&s->lh.udp, (struct sockaddr *)&s->cfg.icpt_ep.sa, 0)) < 0 ||
        (r = uv_udp_recv_start(&s->lh.udp, on_alloc, on_recv)) < 0) {
        edge_intercept_stop(s);
        return r == UV_EADDRINUSE ? WEFT_EEXISTS : WEFT_EIO;
    }
    s->listening = 1;
    pr_info("edge_intercepting", "service=%s proto=udp addr=%s", s->cfg.name, s->cfg.icpt_ep.text);
    return 0;
}
