/* The identity's services, as libweft reads them from the session data
 * (weft_set_services_cb): copied into edge_svc records whose intercept and
 * host addresses are resolved on a worker thread (getaddrinfo blocks), then
 * handed to agent.c. One resolution runs at a time; a newer list waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "proto/addr.h"
#include "proto/log.h"

typedef struct {
    edge_agent *a;
    edge_svc *svcs;
    size_t n;
} resolve_job;

int edge_ep_parse(const char *s, edge_ep *ep)
{
    char host[256];
    unsigned port;

    memset(ep, 0, sizeof(*ep));
    if (s == NULL || s[0] == '\0')
        return WEFT_EADDR;
    ep->proto = EDGE_TCP;
    if (strncmp(s, "udp:", 4) == 0)
        ep->proto = EDGE_UDP;
    if (strncmp(s, "udp:", 4) == 0 || strncmp(s, "tcp:", 4) == 0)
        s += 4;
    if (strlen(s) >= sizeof(ep->text) || pr_addr_split(s, host, sizeof(host), &port) < 0 ||
        port == 0)
        return WEFT_EADDR;
    memcpy(ep->text, s, strlen(s) + 1);
    return 0;
}

int edge_ep_resolve(edge_ep *ep)
{
    int r = pr_addr_resolve(ep->text, &ep->sa);

    ep->resolved = r == 0;
    return r;
}

static int copy_str(const char *s, char *out, size_t cap)
{
    if (s == NULL)
        s = "";
    if (strlen(s) >= cap)
        return WEFT_ETOOBIG;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int edge_svcs_from(const weft_service *v, size_t n, edge_svc **out, size_t *nout)
{
    edge_svc *r = calloc(n + 1, sizeof(*r));
    size_t i, k = 0;

    if (r == NULL)
        return WEFT_ENOMEM;
    for (i = 0; i < n; i++) {
        edge_svc *s = &r[k];
        if (copy_str(v[i].name, s->name, sizeof(s->name)) < 0 || s->name[0] == '\0' ||
            copy_str(v[i].intercept, s->intercept, sizeof(s->intercept)) < 0 ||
            copy_str(v[i].host, s->host, sizeof(s->host)) < 0) {
            memset(s, 0, sizeof(*s));
            continue; /* a service that cannot be ours: left out */
        }
        s->dial = v[i].dial;
        s->bind = v[i].bind;
        /* A malformed address is reported when the service starts; parse
         * errors leave proto 0, which starts nothing. */
        edge_ep_parse(s->intercept, &s->icpt_ep);
        edge_ep_parse(s->host, &s->host_ep);
        k++;
    }
    *out = r;
    *nout = k;
    return 0;
}

/* ---- resolving (worker thread) ---- */

static void resolve_work(uv_work_t *w)
{
    resolve_job *j = w->data;

    for (size_t i = 0; i < j->n; i++) {
        if (j->svcs[i].dial && j->svcs[i].icpt_ep.proto)
            edge_ep_resolve(&j->svcs[i].icpt_ep);
        if (j->svcs[i].bind && j->svcs[i].host_ep.proto)
            edge_ep_resolve(&j->svcs[i].host_ep);
    }
}

static void resolve_start(edge_agent *a, edge_svc *svcs, size_t n);

static void resolve_done(uv_work_t *w, int status)
{
    resolve_job *j = w->data;
    edge_agent *a = j->a;

    a->job = NULL;
    if (status == 0 && !a->stopping) {
        edge_services_update(a, j->svcs, j->n);
        j->svcs = NULL;
    }
    free(j->svcs);
    free(j);
    if (a->pending != NULL && !a->stopping) {
        edge_svc *p = a->pending;
        a->pending = NULL;
        resolve_start(a, p, a->npending);
    }
}

static void resolve_start(edge_agent *a, edge_svc *svcs, size_t n)
{
    resolve_job *j;

    if (a->job != NULL) { /* the newest list wins */
        free(a->pending);
        a->pending = svcs;
        a->npending = n;
        return;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        free(svcs);
        return;
    }
    *j = (resolve_job){a, svcs, n};
    a->work.data = j;
    if (uv_queue_work(a->loop, &a->work, resolve_work, resolve_done) < 0) {
        free(svcs);
        free(j);
        return;
    }
    a->job = j;
}

static void on_services(weft_ctx *ctx, const weft_service *v, size_t n, void *data)
{
    edge_agent *a = data;
    edge_svc *svcs;
    size_t k;
    int r;

    (void)ctx;
    if (a->stopping)
        return;
    if ((r = edge_svcs_from(v, n, &svcs, &k)) < 0) {
        pr_warn("edge_services_failed", "err=%s hint=%s", weft_err_name(r),
                pr_log_q("kept the services in use; retried at the next refresh"));
        return;
    }
    pr_debug("edge_services_changed", "count=%zu", k);
    resolve_start(a, svcs, k);
}

void edge_svcs_watch(edge_agent *a)
{
    weft_set_services_cb(a->ctx, on_services, a);
}
