/* Router policies as the edge meets them (docs/policies.md "Router
 * policies"). A router that refuses the identity, or a dial of a service, is
 * left alone for a while (30 s, doubling while it keeps refusing, at most
 * 10 min): the session or the dial moves at once to another router of the
 * session data, and the session data is asked for again at once, so that a
 * policy made since the last refresh is known. With no router left, dials
 * fail with the router's reason instead of waiting, and the sessions wait
 * for new session data instead of trying the same routers again. */
#include <stdio.h>
#include <string.h>

#include "edge/lib/weft_int.h"
#include "proto/errf.h"
#include "proto/log.h"

/* The router's sentences (router/grants.c rt_rpolicy_check, router/edge.c
 * ingress_may_carry). A long reason may be cut at WEFT_ERRMSG_MAX, so the
 * way it starts counts as well as the policy it names at the end. */
int weft__refusal_kind(const weft_msg *m)
{
    const char *w = m->err_msg;

    if (m->err != WEFT_EDENIED)
        return WEFT_REFUSAL_OTHER;
    if (strstr(w, "(service-router policy)") != NULL ||
        (strncmp(w, "service ", 8) == 0 && strstr(w, " may not be carried by router ") != NULL))
        return WEFT_REFUSAL_SERVICE;
    if (strstr(w, "(router policy)") != NULL ||
        (strncmp(w, "identity ", 9) == 0 && strstr(w, " may not use router ") != NULL))
        return WEFT_REFUSAL_ROUTER;
    return WEFT_REFUSAL_OTHER;
}

/* ---- what is remembered ---- */

static weft_avoid *avoid_find(const weft_ctx *ctx, const char *router, const char *service)
{
    for (size_t i = 0; i < WEFT_AVOID_MAX; i++) {
        const weft_avoid *a = &ctx->avoid[i];
        if (a->avoid_ms != 0 && strcmp(a->router, router) == 0 && strcmp(a->service, service) == 0)
            return (weft_avoid *)a;
    }
    return NULL;
}

/* The loop is read only when something is remembered: a ctx without a
 * refusal answers from its table alone. */
static int in_force(const weft_ctx *ctx, const weft_avoid *a)
{
    return a != NULL && a->until > weft__now(ctx);
}

int weft__avoided(const weft_ctx *ctx, const char *router, const char *service)
{
    return in_force(ctx, avoid_find(ctx, router, "")) ||
           (service != NULL && in_force(ctx, avoid_find(ctx, router, service)));
}

/* A new refusal takes a free slot or the one forgotten first; a repeat soon
 * after the last one is forgotten waits twice as long. */
static unsigned avoid_add(weft_ctx *ctx, const char *router, const char *service, const char *why)
{
    uint64_t now = weft__now(ctx);
    weft_avoid *a = avoid_find(ctx, router, service);

    if (a == NULL) {
        a = &ctx->avoid[0];
        for (size_t i = 1; i < WEFT_AVOID_MAX; i++)
            if (ctx->avoid[i].until < a->until)
                a = &ctx->avoid[i];
        memset(a, 0, sizeof(*a));
        snprintf(a->router, sizeof(a->router), "%s", router);
        snprintf(a->service, sizeof(a->service), "%s", service);
    }
    if (a->until <= now) { /* in force already (both sessions heard it): its time stays */
        if (a->avoid_ms == 0 || now - a->until > WEFT_AVOID_MAX_MS)
            a->avoid_ms = WEFT_AVOID_MS;
        else if ((a->avoid_ms *= 2) > WEFT_AVOID_MAX_MS)
            a->avoid_ms = WEFT_AVOID_MAX_MS;
        a->until = now + a->avoid_ms;
    }
    snprintf(a->why, sizeof(a->why), "%s", why);
    return a->avoid_ms;
}

/* ---- where to go instead ---- */

static int held(const weft_ctx *ctx, size_t idx)
{
    for (int i = 0; i < ctx->nsess; i++)
        if (ctx->sess[i].state != RS_IDLE && ctx->sess[i].state != RS_STOPPED &&
            ctx->sess[i].cur == idx)
            return 1;
    return 0;
}

/* The nearest router of the session data that the identity (and service,
 * when given) may still use; free: one no session holds. -1 when none. */
static size_t usable_router(const weft_ctx *ctx, const char *service, int free)
{
    size_t rank[WEFT_PROBE_MAX], n = weft__rank(ctx, rank, WEFT_PROBE_MAX);

    for (size_t k = 0; k < n; k++)
        if ((service == NULL ||
             !weft__avoided(ctx, ctx->sd.routers[rank[k]].edge_listen, service)) &&
            (!free || !held(ctx, rank[k])))
            return rank[k];
    return (size_t)-1;
}

/* For the log: the router the move goes to, or what it waits for. */
static const char *next_of(const weft_ctx *ctx, const char *service)
{
    const weft_rsess *s = service ? weft__rsess_best_for((weft_ctx *)ctx, service) : NULL;
    size_t idx = usable_router(ctx, service, 1);

    if (s != NULL)
        return s->addr;
    if (idx == (size_t)-1)
        idx = usable_router(ctx, service, 0);
    if (idx != (size_t)-1)
        return ctx->sd.routers[idx].edge_listen;
    return ctx->urgent ? "session_data" : "none";
}

static void log_refusal(const weft_rsess *s, const char *service, unsigned avoid_ms,
                        const char *why)
{
    pr_warn("edge_router_refused",
            "router=%s router_id=%s policy=%s service=%s next=%s avoid_s=%u reason=%s hint=%s",
            s->addr, s->router_id[0] ? s->router_id : "-", service ? "service-router" : "router",
            service ? service : "-", next_of(s->ctx, service), avoid_ms / 1000, pr_log_q(why),
            pr_log_q(service ? "a service-router policy keeps the service off this router; the "
                               "dial goes through another router of the session data"
                             : "a router policy keeps this identity off this router; the "
                               "session moves to another router of the session data"));
}

void weft__rsess_refused(weft_rsess *s, const weft_msg *m)
{
    weft_ctx *ctx = s->ctx;
    unsigned ms;

    if (s->refused)
        return;
    s->refused = 1;
    ms = avoid_add(ctx, s->addr, "", m->err_msg);
    weft__refresh_soon(ctx);
    log_refusal(s, NULL, ms, m->err_msg);
    if (s->tls)
        pr_conn_close(s->tls, WEFT_EDENIED);
}

int weft__dial_refused(weft_conn *c, const weft_msg *m)
{
    weft_ctx *ctx = c->ctx;
    int kind = weft__refusal_kind(m);
    unsigned ms;

    if (kind == WEFT_REFUSAL_OTHER || c->sess == NULL)
        return 0;
    c->refused = 1;
    if (kind == WEFT_REFUSAL_ROUTER) {
        weft__rsess_refused(c->sess, m);
        return 1;
    }
    ms = avoid_add(ctx, c->sess->addr, c->service, m->err_msg);
    weft__refresh_soon(ctx);
    log_refusal(c->sess, c->service, ms, m->err_msg);
    return 1;
}

/* Every session is ready and none may carry service, but a router no
 * session holds may: one session without circuits moves there (an idle
 * slot starts there). A session on its way somewhere is waited for. */
static void move_for(weft_ctx *ctx, const char *service)
{
    size_t to = usable_router(ctx, service, 1);
    weft_rsess *s = NULL, *o;

    if (to == (size_t)-1)
        return;
    for (int i = 0; i < ctx->nsess; i++) {
        o = &ctx->sess[i];
        if (o->state == RS_IDLE) {
            o->move_to = to + 1;
            weft__rsess_event(o, RE_START, 0);
            return;
        }
        if (!weft__rsess_ready(o) || o->move_to != 0 || o->refused)
            return;
        if (weft__conns_open_on(ctx, o) == 0)
            s = o;
    }
    if (s == NULL)
        return; /* moving would cut circuits: the dial waits for its deadline */
    pr_info("edge_session_move", "slot=%d from=%s to=%s service=%s reason=service-router", s->slot,
            s->addr, ctx->sd.routers[to].edge_listen, service);
    s->move_to = to + 1;
    pr_conn_close(s->tls, WEFT_ECANCELED);
}

int weft__dial_route(weft_ctx *ctx, weft_conn *c, weft_rsess **out)
{
    *out = NULL;
    if (!ctx->have_sd) {
        if (ctx->sd_err == 0)
            return 0; /* the first session data is on its way */
        snprintf(ctx->last_err, sizeof(ctx->last_err), "%s", ctx->sd_err_msg);
        return ctx->sd_err;
    }
    if ((*out = weft__rsess_best_for(ctx, c->service)) != NULL)
        return 0;
    if (usable_router(ctx, c->service, 0) != (size_t)-1) {
        move_for(ctx, c->service);
        return 0;
    }
    if (ctx->urgent)
        return 0; /* fresh session data may list another router */
    weft__no_router_msg(ctx, c->service);
    return WEFT_EDENIED;
}

/* The refusal most recently made, for the identity or (when given) service;
 * of two made at once, the service's says more. */
static const weft_avoid *last_refusal(const weft_ctx *ctx, const char *service)
{
    const weft_avoid *best = NULL;
    uint64_t made, best_made = 0;

    for (size_t i = 0; i < WEFT_AVOID_MAX; i++) {
        const weft_avoid *a = &ctx->avoid[i];
        if (a->avoid_ms == 0 ||
            (a->service[0] != '\0' && (service == NULL || strcmp(a->service, service) != 0)))
            continue;
        made = a->until - a->avoid_ms;
        if (best == NULL || made > best_made || (made == best_made && a->service[0] != '\0')) {
            best = a;
            best_made = made;
        }
    }
    return best;
}

void weft__no_router_msg(weft_ctx *ctx, const char *service)
{
    const weft_avoid *a = last_refusal(ctx, service);
    char what[WEFT_NAME_MAX + 64] = "no router of the session data takes this identity";

    if (service != NULL)
        snprintf(what, sizeof(what), "no router this identity may use carries service %s", service);
    if (a != NULL) /* a long reason is cut: the sentence starts with what matters */
        pr_errf(ctx->last_err, sizeof(ctx->last_err), WEFT_EDENIED, "%s; router %s refused: %s",
                what, a->router, a->why);
    else
        snprintf(ctx->last_err, sizeof(ctx->last_err),
                 "the session data lists no router for this identity (router policies, or no "
                 "router with an edge listener)");
}

void weft__no_router(weft_ctx *ctx)
{
    if (ctx->urgent || ctx->told_no_router)
        return; /* told when the session data asked for arrives */
    ctx->told_no_router = 1;
    weft__no_router_msg(ctx, NULL);
    pr_error("edge_no_router_allowed", "identity=%s routers=%zu msg=%s hint=%s", ctx->id.id,
             ctx->sd.nrouters, pr_log_q(ctx->last_err),
             pr_log_q("dials fail at once with this reason; sessions start again with the next "
                      "session data or when a refusal is forgotten"));
    ctx->last_err[0] = '\0';
    weft__dials_send(ctx);
}

void weft__avoid_tick(weft_ctx *ctx)
{
    size_t rank[WEFT_PROBE_MAX];

    if (!ctx->have_sd || ctx->freeing)
        return;
    for (int i = 0; i < ctx->nsess; i++)
        if (ctx->sess[i].state == RS_IDLE && weft__rank(ctx, rank, WEFT_PROBE_MAX) > 0) {
            weft__rsess_start(ctx);
            return;
        }
}
