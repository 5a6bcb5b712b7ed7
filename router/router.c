/* The router object: its map, circuit table, edge listener and lifecycle. */
#include "router/router.h"
#include "router/enforce.h"
#include "router/grants.h"

#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/log.h"
#include "proto/e2e.h"
#include "weft/errors.h"

uint64_t rt_now_us(void)
{
    return uv_hrtime() / 1000;
}

int rt_router_init(rt_router *r, uv_loop_t *loop, const pr_idfile *id)
{
    pr_tls_cfg cfg = {.server = 1, .ca_pem = id->ca_pem, .cert_pem = id->cert_pem,
                      .key_pem = id->key_pem, .require_peer_cert = 1};
    pr_tls_cfg lcli = {.ca_pem = id->ca_pem, .cert_pem = id->cert_pem, .key_pem = id->key_pem};
    int ret;

    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->id = id;
    rt_map_init(&r->map);
    if ((ret = rt_circuits_init(&r->circuits)) < 0)
        goto out;
    ret = WEFT_ENOMEM;
    if ((r->txbuf = malloc(PR_FRAME_MAX)) == NULL ||
        (r->cbuf = malloc(PR_E2E_MAX_MSG + PR_E2E_ABYTES)) == NULL)
        goto out;
    if ((ret = pr_tls_ctx_new(&cfg, &r->edge_ctx)) < 0 ||
        (ret = pr_tls_ctx_new(&cfg, &r->link_srv_ctx)) < 0 ||
        (ret = pr_tls_ctx_new(&lcli, &r->link_cli_ctx)) < 0 ||
        (ret = rt_enforce_attach(r)) < 0)
        goto out;
    return 0;
out:
    rt_router_free(r);
    return ret;
}

int rt_router_listen_edge(rt_router *r, const char *addr)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if ((rc = pr_addr_resolve(addr, &ss)) < 0)
        return rc;
    uv_tcp_init(r->loop, &r->edge_tcp);
    r->edge_tcp.data = r;
    r->edge_open = 1;
    if (uv_tcp_bind(&r->edge_tcp, (struct sockaddr *)&ss, 0) < 0 ||
        uv_listen((uv_stream_t *)&r->edge_tcp, 512, rt_edge_on_connection) < 0) {
        pr_error("edge_listen_failed", "addr=%s hint=%s", addr,
                 pr_log_q("the address is in use or not local; change edge_listen in router.json"));
        return WEFT_EADDR;
    }
    uv_tcp_getsockname(&r->edge_tcp, (struct sockaddr *)&ss, &len);
    pr_addr_format((struct sockaddr *)&ss, r->edge_addr, sizeof(r->edge_addr));
    pr_info("edge_listening", "addr=%s", r->edge_addr);
    rt_router_tick_start(r);
    return 0;
}

static void tick_cb(uv_timer_t *t)
{
    rt_router *r = t->data;

    rt_dial_sweep(r);
    rt_links_tick(r);
    rt_reroute_tick(r);
    rt_sess_keep_fresh(r); /* before the shaping tick resumes reads */
    rt_enforce_tick(r);
}

void rt_router_tick_start(rt_router *r)
{
    if (r->tick_on)
        return;
    uv_timer_init(r->loop, &r->tick);
    r->tick.data = r;
    r->tick_on = 1;
    uv_timer_start(&r->tick, tick_cb, RT_TICK_MS, RT_TICK_MS);
    uv_timer_init(r->loop, &r->silence);
    r->silence.data = r;
}

void rt_router_close(rt_router *r)
{
    r->stopping = 1;
    rt_control_stop(r);
    rt_metrics_close(r);
    if (r->edge_open && !uv_is_closing((uv_handle_t *)&r->edge_tcp))
        uv_close((uv_handle_t *)&r->edge_tcp, NULL);
    if (r->tick_on && !uv_is_closing((uv_handle_t *)&r->tick))
        uv_close((uv_handle_t *)&r->tick, NULL);
    if (r->tick_on && !uv_is_closing((uv_handle_t *)&r->silence))
        uv_close((uv_handle_t *)&r->silence, NULL);
    rt_links_close(r);
    for (rt_sess *s = r->sessions; s; s = s->next)
        if (s->state != RT_SESS_CLOSING)
            rt_sess_kill(s, WEFT_ECANCELED, NULL);
}

void rt_router_free(rt_router *r)
{
    rt_term *t, *n;

    for (t = r->terms; t; t = n) {
        n = t->next;
        free(t);
    }
    r->terms = NULL;
    rt_enforce_free(r->enforce);
    r->enforce = NULL;
    rt_circuits_free(&r->circuits);
    rt_map_free(&r->map);
    pr_tls_ctx_free(r->edge_ctx);
    pr_tls_ctx_free(r->link_srv_ctx);
    pr_tls_ctx_free(r->link_cli_ctx);
    r->edge_ctx = r->link_srv_ctx = r->link_cli_ctx = NULL;
    free(r->txbuf);
    free(r->cbuf);
    r->txbuf = r->cbuf = NULL;
}

int rt_router_is_me(const rt_router *r, const char *s)
{
    return s && s[0] && (strcmp(s, r->id->id) == 0 || strcmp(s, r->id->name) == 0);
}

void rt_router_map_changed(rt_router *r)
{
    rt_sess *s, *n;

    rt_links_sync(r);
    rt_legs_check_map(r);
    for (s = r->sessions; s; s = n) {
        n = s->next;
        if (s->state != RT_SESS_CLOSING && rt_map_is_revoked(&r->map, s->identity)) {
            pr_warn("session_revoked", "sess=%llu identity=%s", (unsigned long long)s->num,
                    s->identity);
            rt_sess_kill(s, WEFT_EDISABLED, "identity revoked; ask the administrator");
        }
    }
    rt_grants_enforce(r);
    rt_rpolicy_enforce(r);
    rt_enforce_map_changed(r);
}
