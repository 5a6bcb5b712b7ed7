/* The agent's loop: libweft, the services coming and going with each refresh
 * of the session data, the UDP idle sweep, certificate renewal and an orderly
 * stop on SIGINT or SIGTERM (listeners first, then every connection, then
 * libweft). */
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/creds.h"
#include "proto/log.h"
#include "proto/renew.h"

/* ---- services ---- */

/* Only what this identity uses counts: a dialling edge does not restart
 * when the host address changes, nor a hosting edge for a new intercept. */
static int svc_same(const edge_svc *x, const edge_svc *y)
{
    return x->dial == y->dial && x->bind == y->bind &&
           (!x->dial || strcmp(x->intercept, y->intercept) == 0) &&
           (!x->bind || strcmp(x->host, y->host) == 0);
}

/* Starts what this identity may do with s; what fails is retried on the tick. */
static void service_start(edge_service *s)
{
    int r;

    if (s->cfg.dial && !s->lh_open && s->cfg.intercept[0] != '\0') {
        r = s->cfg.icpt_ep.proto == EDGE_UDP ? edge_intercept_udp_start(s)
                                             : edge_intercept_tcp_start(s);
        if (r < 0 && r != s->icpt_err)
            pr_error("edge_intercept_failed", "service=%s intercept=%s err=%s hint=%s", s->cfg.name,
                     pr_log_q(s->cfg.intercept), weft_err_name(r),
                     pr_log_q("the intercept address must be a local address this device can "
                              "listen on and not in use; retried every few seconds"));
        s->icpt_err = r;
    }
    if (s->cfg.bind && !s->hosting && s->cfg.host[0] != '\0') {
        r = edge_host_start(s);
        if (r < 0 && r != s->host_err)
            pr_warn("edge_host_failed", "service=%s host=%s err=%s hint=%s", s->cfg.name,
                    pr_log_q(s->cfg.host), weft_err_name(r),
                    pr_log_q("retried every few seconds; check the service's host address "
                             "and bind policy"));
        if (r < 0)
            s->host_err = r;
    }
}

static void service_remove(edge_service *s)
{
    if (s->removed)
        return;
    pr_info("edge_service_stop", "service=%s", s->cfg.name);
    s->removed = 1;
    edge_host_stop(s);
    edge_flows_stop_service(s);
    edge_intercept_stop(s);
    edge_service_unref(s);
}

void edge_service_unref(edge_service *s)
{
    edge_service **p;

    if (--s->refs > 0)
        return;
    for (p = &s->a->services; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    free(s);
}

const char *edge_dial_hint(int status)
{
    switch (status) {
    case WEFT_ENOPOLICY:
        return "no dial policy for this identity";
    case WEFT_EDENIED:
        return "a policy refused it (msg says which); with no router left the edge waits for "
               "new session data";
    case WEFT_EBINDING:
    case WEFT_EDISABLED:
        return "the controller refused this identity (msg says why); an administrator must act";
    default:
        return "is the service hosted and its router up?";
    }
}

static edge_service *service_find(edge_agent *a, const char *name)
{
    edge_service *s;

    for (s = a->services; s; s = s->next)
        if (!s->removed && strcmp(s->cfg.name, name) == 0)
            return s;
    return NULL;
}

static void service_add(edge_agent *a, const edge_svc *cfg)
{
    edge_service *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return;
    s->a = a;
    s->cfg = *cfg;
    s->refs = 1; /* the agent's own, dropped by service_remove */
    s->next = a->services;
    a->services = s;
    pr_info("edge_service_start", "service=%s dial=%d bind=%d intercept=%s host=%s", cfg->name,
            cfg->dial, cfg->bind, pr_log_q(cfg->intercept), pr_log_q(cfg->host));
    service_start(s);
}

static int svc_listed(const edge_svc *svcs, size_t n, const edge_service *s)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(svcs[i].name, s->cfg.name) == 0 && svc_same(&svcs[i], &s->cfg))
            return 1;
    return 0;
}

void edge_services_update(edge_agent *a, edge_svc *svcs, size_t n)
{
    edge_service *s, *next;
    size_t i;

    pr_debug("edge_services", "count=%zu", n);
    for (s = a->services; s; s = next) {
        next = s->next;
        if (!s->removed && !svc_listed(svcs, n, s))
            service_remove(s);
    }
    for (i = 0; i < n; i++)
        if ((svcs[i].dial || svcs[i].bind) && service_find(a, svcs[i].name) == NULL)
            service_add(a, &svcs[i]);
    free(svcs);
}

/* ---- certificate renewal ----
 * pr_renew_if_due blocks (HTTPS), so it runs on a worker thread; a renewed
 * file is loaded by libweft for new sessions and circuits, and nothing open
 * is cut: the old certificate stays valid until it expires. */

typedef struct {
    edge_agent *a;
    int rc;
    char err[256];
} renew_job;

static void renew_work(uv_work_t *w)
{
    renew_job *j = w->data;

    j->rc = pr_renew_if_due(j->a->identity, 0, EDGE_RENEW_TIMEOUT_MS, j->err, sizeof(j->err));
}

static void renew_done(uv_work_t *w, int status)
{
    renew_job *j = w->data;
    edge_agent *a = j->a;

    a->renew_job = NULL;
    if (status == 0 && j->rc < 0)
        pr_warn("edge_renew_failed", "err=%s why=%s hint=%s", weft_err_name(j->rc),
                pr_log_q(j->err), pr_log_q("retried in an hour; weft-edge renew tries at once"));
    if (status == 0 && j->rc == 0)
        pr_debug("edge_renew_not_due", "identity=%s", pr_log_q(a->identity));
    if (status == 0 && j->rc == 1 && !a->stopping) {
        pr_info("edge_renewed", "identity=%s", pr_log_q(a->identity));
        weft_reload_identity(a->ctx);
    }
    free(j);
}

static void on_renew(uv_timer_t *t)
{
    edge_agent *a = t->data;
    renew_job *j;

    if (a->renew_job != NULL || a->stopping || (j = calloc(1, sizeof(*j))) == NULL)
        return;
    j->a = a;
    a->renew_work.data = j;
    if (uv_queue_work(a->loop, &a->renew_work, renew_work, renew_done) < 0) {
        free(j);
        return;
    }
    a->renew_job = j;
}

/* ---- timers and signals ---- */

static void on_tick(uv_timer_t *t)
{
    edge_agent *a = t->data;
    edge_service *s;

    edge_flows_sweep(a, uv_now(a->loop));
    for (s = a->services; s; s = s->next)
        if (!s->removed)
            service_start(s);
}

static void agent_stop(edge_agent *a)
{
    edge_service *s, *next;

    a->stopping = 1;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
    uv_close((uv_handle_t *)&a->renew, NULL);
    uv_close((uv_handle_t *)&a->tick, NULL);
    edge_mem_stop(a);
    if (a->job != NULL)
        uv_cancel((uv_req_t *)&a->work);
    if (a->renew_job != NULL)
        uv_cancel((uv_req_t *)&a->renew_work);
    free(a->pending);
    a->pending = NULL;
    while (a->pipes != NULL)
        edge_pipe_stop(a->pipes);
    while (a->flows != NULL)
        edge_flow_stop(a->flows, "stopped");
    for (s = a->services; s; s = next) {
        next = s->next;
        service_remove(s);
    }
    edge_creds_stop(a->creds);
    a->creds = NULL;
    weft_free(a->ctx);
    a->ctx = NULL;
}

/* SIGHUP: the identity file was renewed by someone else (weft-edge renew). */
static void on_hup(uv_signal_t *h, int sig)
{
    edge_agent *a = h->data;

    (void)sig;
    if (!a->stopping)
        weft_reload_identity(a->ctx);
}

static void on_signal(uv_signal_t *h, int sig)
{
    edge_agent *a = h->data;

    if (a->stopping)
        return;
    pr_info("edge_stopping", "signal=%d", sig);
    agent_stop(a);
}

static void handles_start(edge_agent *a)
{
    uv_signal_init(a->loop, &a->sigint);
    uv_signal_init(a->loop, &a->sigterm);
    uv_signal_init(a->loop, &a->sighup);
    a->sighup.data = a;
    uv_signal_start(&a->sighup, on_hup, SIGHUP);
    uv_timer_init(a->loop, &a->renew);
    uv_timer_init(a->loop, &a->tick);
    a->sigint.data = a->sigterm.data = a->renew.data = a->tick.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_timer_start(&a->tick, on_tick, EDGE_TICK_MS, EDGE_TICK_MS);
    uv_timer_start(&a->renew, on_renew, 0, EDGE_RENEW_MS);
    edge_mem_start(a);
}

static int agent_init(edge_agent *a, uv_loop_t *loop, const edge_agent_cfg *cfg)
{
    weft_options opt = {.imei = cfg->imei,
                        .iccid = cfg->iccid,
                        .refresh_s = cfg->refresh_s,
                        .keepalive_ms = cfg->keepalive_ms,
                        .idle_dead_ms = cfg->idle_dead_ms,
                        .dead_after_ms = cfg->dead_after_ms,
                        .dead_max_ms = cfg->dead_max_ms};
    int r;

    a->loop = loop;
    a->identity = cfg->identity;
    if ((r = weft_init(loop, cfg->identity, &opt, &a->ctx)) < 0)
        return r;
    handles_start(a);
    edge_svcs_watch(a);
    /* Fetched at start and with each refresh period (docs/bootstrap.md). */
    if (cfg->creds_dir != NULL)
        a->creds = edge_creds_start(loop, cfg->identity, cfg->creds_dir, cfg->refresh_s);
    return 0;
}

int edge_agent_run(const edge_agent_cfg *cfg)
{
    uv_loop_t loop;
    edge_agent *a;
    int r;

    signal(SIGPIPE, SIG_IGN);
    edge_mem_setup();
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return WEFT_ENOMEM;
    if ((r = uv_loop_init(&loop)) < 0) {
        free(a);
        return WEFT_EIO;
    }
    if ((r = agent_init(a, &loop, cfg)) == 0) {
        pr_info("edge_running", "identity=%s", pr_log_q(cfg->identity));
        uv_run(&loop, UV_RUN_DEFAULT);
        pr_info("edge_stopped", "identity=%s", pr_log_q(cfg->identity));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        pr_warn("edge_loop_busy", "%s", "handles left open at exit");
    free(a);
    return r;
}
