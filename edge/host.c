/* Hosting a service: weft_listen, then every incoming circuit goes to the
 * service's host address, as a TCP pipe or a UDP flow. */
#include "edge/agent.h"
#include "proto/log.h"

static void on_accept(weft_conn *conn, void *data)
{
    edge_service *s = data;

    if (s->removed || s->a->stopping)
        return weft_close(conn, NULL); /* refused: the dialler hears so */
    if (s->cfg.host_ep.proto == EDGE_UDP) {
        edge_flow_host(s, conn);
        return;
    }
    /* The dialler hears yes only once the host took the connection, or the
     * host's refusal with its reason (pipe_tcp.c answers). */
    weft_accept_defer(conn);
    edge_pipe_host(s, conn);
}

static void on_listen(weft_ctx *ctx, const char *service, int status, void *data)
{
    edge_service *s = data;

    if (status == 0) {
        pr_info("edge_hosting", "service=%s host=%s", service, s->cfg.host_ep.text);
        s->host_err = 0;
        return;
    }
    /* libweft dropped the listener; the tick tries again, logging only a
     * change of reason. EDENIED: a policy refused or withdrew the bind, which
     * libweft logged with the router's reason (edge_bind_refused,
     * edge_bind_withdrawn); the service comes back with session data that
     * grants it again. */
    if (status == WEFT_EDENIED && status != s->host_err)
        pr_info("edge_host_stopped", "service=%s err=EDENIED hint=%s", service,
                pr_log_q("hosting resumes when a bind policy grants it again (at a session-data "
                         "refresh)"));
    else if (status != s->host_err)
        pr_warn("edge_host_lost", "service=%s err=%s msg=%s hint=%s", service,
                weft_err_name(status), pr_log_q(weft_last_error_msg(ctx)),
                pr_log_q("retried every few seconds; check the router and the identity's bind "
                         "policy"));
    s->host_err = status;
    s->hosting = 0;
}

int edge_host_start(edge_service *s)
{
    int r;

    if (s->cfg.host_ep.proto == 0 || !s->cfg.host_ep.resolved)
        return WEFT_EADDR;
    if ((r = weft_listen(s->a->ctx, s->cfg.name, on_listen, on_accept, s)) < 0)
        return r;
    s->hosting = 1;
    return 0;
}

void edge_host_stop(edge_service *s)
{
    if (!s->hosting)
        return;
    s->hosting = 0;
    if (s->a->ctx != NULL)
        weft_unlisten(s->a->ctx, s->cfg.name);
}
