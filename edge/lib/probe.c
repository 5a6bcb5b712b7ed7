/* How far each router is: the time a TCP connect to its edge_listen takes,
 * smoothed as TCP's SRTT, measured for every router of the session data when
 * it lists more than the two the edge holds sessions to, and again every
 * few minutes. The ranking decides which two routers get sessions
 * (session.c); a session moves only to a router clearly nearer in two rounds
 * in a row, and only while it carries no circuit. A connect is all a probe
 * does: it costs the router an accept and nothing else. */
#include <stdlib.h>
#include <string.h>

#include "edge/lib/weft_int.h"
#include "proto/addr.h"
#include "proto/log.h"

struct weft_probe {
    struct weft_probe *next;
    weft_ctx *ctx;
    char addr[256];
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t req;
    uint64_t t0; /* uv_hrtime at the connect */
    int gai_busy, tcp_open, done;
};

/* ---- distances ---- */

static weft_dist *dist_find(const weft_ctx *ctx, const char *addr)
{
    for (size_t i = 0; i < ctx->ndist; i++)
        if (strcmp(ctx->dist[i].addr, addr) == 0)
            return (weft_dist *)&ctx->dist[i];
    return NULL;
}

uint64_t weft__dist_of(const weft_ctx *ctx, const char *addr)
{
    const weft_dist *d = dist_find(ctx, addr);

    if (d == NULL)
        return 0;
    return d->failed ? UINT64_MAX : d->rtt_us;
}

void weft__dist_sample(weft_ctx *ctx, const char *addr, uint64_t rtt_us, int failed)
{
    weft_dist *d = dist_find(ctx, addr);

    if (d == NULL) {
        if (ctx->ndist == WEFT_PROBE_MAX || strlen(addr) >= sizeof(d->addr))
            return;
        d = &ctx->dist[ctx->ndist++];
        memset(d, 0, sizeof(*d));
        memcpy(d->addr, addr, strlen(addr) + 1);
    }
    d->failed = failed;
    if (!failed)
        d->rtt_us = d->rtt_us ? (7 * d->rtt_us + rtt_us) / 8 : rtt_us;
}

/* Sort key: measured first by distance, then unknown, then failed. */
static uint64_t rank_key(const weft_ctx *ctx, size_t i)
{
    uint64_t d = weft__dist_of(ctx, ctx->sd.routers[i].edge_listen);

    return d == 0 ? UINT64_MAX - 1 : d;
}

size_t weft__rank(const weft_ctx *ctx, size_t *out, size_t cap)
{
    size_t n = ctx->sd.nrouters < cap ? ctx->sd.nrouters : cap, i, j, v, m = 0;

    /* Unmeasured routers in an order of this edge's own, so that a fleet
     * does not pile onto the first router of the list; those that refused
     * the identity lately are not in it (avoid.c). */
    for (i = 0; i < n; i++) {
        v = (i + ctx->rank_salt) % n;
        if (!weft__avoided(ctx, ctx->sd.routers[v].edge_listen, NULL))
            out[m++] = v;
    }
    n = m;
    for (i = 1; i < n; i++) { /* insertion sort: stable, n is small */
        v = out[i];
        for (j = i; j > 0 && rank_key(ctx, out[j - 1]) > rank_key(ctx, v); j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return n;
}

int weft__clearly_nearer(uint64_t cand_us, uint64_t cur_us)
{
    if (cand_us == 0 || cand_us == UINT64_MAX)
        return 0;
    if (cur_us == UINT64_MAX)
        return 1;
    return cur_us > 1000 + cand_us && cand_us * 10 < cur_us * 7;
}

/* ---- one probe ---- */

static void probe_free(uv_handle_t *h)
{
    struct weft_probe *p = h->data, **pp;
    weft_ctx *ctx = p->ctx;

    for (pp = &ctx->probes; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p);
    if (--ctx->probing == 0 && !ctx->freeing)
        weft__probe_round_done(ctx);
    weft__maybe_finish(ctx);
}

static void probe_end(struct weft_probe *p, uint64_t rtt_us, int failed)
{
    if (!p->done && !p->ctx->freeing) {
        weft__dist_sample(p->ctx, p->addr, rtt_us, failed);
        pr_debug("edge_router_probe", "router=%s rtt_us=%llu failed=%d", p->addr,
                 (unsigned long long)rtt_us, failed);
    }
    p->done = 1;
    if (p->tcp_open) {
        p->tcp_open = 0;
        uv_close((uv_handle_t *)&p->tcp, probe_free);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct weft_probe *p = req->data;

    probe_end(p, (uv_hrtime() - p->t0) / 1000 + 1, status < 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct weft_probe *p = req->data;
    int started = 0;

    p->gai_busy = 0;
    if (status == 0 && !p->ctx->freeing && uv_tcp_init(p->ctx->loop, &p->tcp) == 0) {
        p->tcp_open = 1;
        p->tcp.data = p;
        p->req.data = p;
        p->t0 = uv_hrtime();
        started = 1;
        /* A connect refused at once (no route) ends the probe here, which
         * already closes the handle: it must not be closed a second time. */
        if (uv_tcp_connect(&p->req, &p->tcp, res->ai_addr, on_connect) < 0)
            probe_end(p, 0, 1);
    }
    if (res)
        uv_freeaddrinfo(res);
    if (!started) { /* no handle yet: free the probe the same way */
        if (!p->done && !p->ctx->freeing)
            weft__dist_sample(p->ctx, p->addr, 0, 1);
        uv_tcp_init(p->ctx->loop, &p->tcp);
        p->tcp.data = p;
        uv_close((uv_handle_t *)&p->tcp, probe_free);
    }
}

static int probe_start(weft_ctx *ctx, const char *addr)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct weft_probe *p;
    char host[256], port[16];
    unsigned pt;

    if (pr_addr_split(addr, host, sizeof(host), &pt) < 0 || pt == 0)
        return WEFT_EADDR;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return WEFT_ENOMEM;
    p->ctx = ctx;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    snprintf(port, sizeof(port), "%u", pt);
    p->gai.data = p;
    if (uv_getaddrinfo(ctx->loop, &p->gai, on_resolved, host, port, &hints) < 0) {
        free(p);
        return WEFT_EADDR;
    }
    p->gai_busy = 1;
    p->next = ctx->probes;
    ctx->probes = p;
    ctx->probing++;
    return 0;
}

/* ---- rounds ---- */

static void on_probe_timer(uv_timer_t *t)
{
    weft__probe_round(t->data);
}

void weft__probe_round(weft_ctx *ctx)
{
    size_t i;

    if (ctx->probing || ctx->freeing || !ctx->have_sd)
        return;
    for (i = 0; i < ctx->sd.nrouters && i < WEFT_PROBE_MAX; i++)
        if (probe_start(ctx, ctx->sd.routers[i].edge_listen) < 0)
            weft__dist_sample(ctx, ctx->sd.routers[i].edge_listen, 0, 1);
    if (ctx->probing == 0)
        weft__probe_round_done(ctx);
}

void weft__probe_round_done(weft_ctx *ctx)
{
    size_t rank[WEFT_PROBE_MAX], n = weft__rank(ctx, rank, WEFT_PROBE_MAX);

    pr_info("edge_routers_ranked", "routers=%zu nearest=%s rtt_us=%llu", n,
            n ? ctx->sd.routers[rank[0]].edge_listen : "-",
            n ? (unsigned long long)weft__dist_of(ctx, ctx->sd.routers[rank[0]].edge_listen)
              : 0ull);
    ctx->probed = 1;
    weft__rsess_start(ctx);
    weft__rsess_reevaluate(ctx);
    uv_timer_start(&ctx->probe_timer, on_probe_timer, ctx->probe_every_ms, 0);
}

/* A probe that takes longer than WEFT_PROBE_TIMEOUT_MS counts as failed. */
void weft__probes_tick(weft_ctx *ctx)
{
    uint64_t now = uv_hrtime();

    for (struct weft_probe *p = ctx->probes; p; p = p->next)
        if (p->tcp_open && !p->done && now - p->t0 >= (uint64_t)WEFT_PROBE_TIMEOUT_MS * 1000000)
            probe_end(p, 0, 1);
}

void weft__probes_stop(weft_ctx *ctx)
{
    uv_timer_stop(&ctx->probe_timer);
    for (struct weft_probe *p = ctx->probes; p; p = p->next) {
        if (p->gai_busy)
            uv_cancel((uv_req_t *)&p->gai);
        probe_end(p, 0, 1);
    }
}
