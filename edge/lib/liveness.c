/* Router liveness: how a router that died silently (power cut, dropped
 * network: no FIN, no RST) is noticed (docs/libweft.md "Keepalive and dead
 * routers").
 *
 * Every ready session pings its router every keepalive_ms (round-trip samples
 * and NAT keepalive) and, while it carries nothing, is dropped only after
 * idle_dead_ms without a byte from it: an idle device pays nothing more.
 * A session that carries traffic (bytes sent and not yet acknowledged end to
 * end, a dial, bind or resume awaiting its answer, payload received lately)
 * expects to hear from its router. After the probe deadline of silence it
 * pings it and the other session's router; after the dead deadline, if the
 * other router answered and this one did not, it is dropped and its circuits
 * resume on the other session (resume.c). Both deadlines follow the smoothed
 * RTT. When the other router is silent too the device's own network is the
 * likelier culprit, and moving would gain nothing: the session waits.
 *
 * As router/link.c's silence timer, the session's timer runs to its earliest
 * deadline; the ctx tick looks again, for sessions that began to carry
 * traffic and for answers from the other router. */
#include "edge/lib/weft_int.h"
#include "proto/errf.h"
#include "proto/log.h"

/* Added to 4 smoothed RTTs for the probe: the router's own turnaround and the
 * spread of the samples. */
#define PROBE_MARGIN_MS 100
/* Payload received keeps a session busy until this long after its dead
 * deadline: a stream that pauses costs one probe, not one per deadline. */
#define RECV_HOLD_MS    500

/* ---- settings ---- */

static unsigned max_u(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static int check_dead(const weft_live *lv, char *err, size_t cap)
{
    if (lv->dead_after_ms < WEFT_DEAD_AFTER_MIN_MS || lv->dead_after_ms > WEFT_DEAD_AFTER_MAX_MS)
        return pr_errf(err, cap, WEFT_EINVAL, "dead_after_ms must be %u to %u (got %u)",
                       WEFT_DEAD_AFTER_MIN_MS, WEFT_DEAD_AFTER_MAX_MS, lv->dead_after_ms);
    if (lv->dead_after_ms > lv->idle_dead_ms)
        return pr_errf(err, cap, WEFT_EINVAL,
                       "dead_after_ms (%u) must not exceed idle_dead_ms (%u): a session carrying "
                       "traffic would wait longer than an idle one",
                       lv->dead_after_ms, lv->idle_dead_ms);
    if (lv->dead_max_ms < lv->dead_after_ms || lv->dead_max_ms > lv->idle_dead_ms)
        return pr_errf(err, cap, WEFT_EINVAL,
                       "dead_max_ms must be dead_after_ms (%u) to idle_dead_ms (%u) (got %u)",
                       lv->dead_after_ms, lv->idle_dead_ms, lv->dead_max_ms);
    return 0;
}

int weft__live_settings(const weft_options *opt, weft_live *out, char *err, size_t cap)
{
    weft_live lv = {0};
    int r;

    if (opt != NULL)
        lv =
            (weft_live){opt->keepalive_ms, opt->idle_dead_ms, opt->dead_after_ms, opt->dead_max_ms};
    lv.keepalive_ms = lv.keepalive_ms ? lv.keepalive_ms : WEFT_KEEPALIVE_MS;
    if (lv.keepalive_ms < WEFT_KEEPALIVE_MIN_MS || lv.keepalive_ms > WEFT_KEEPALIVE_MAX_MS)
        return pr_errf(err, cap, WEFT_EINVAL, "keepalive_ms must be %u to %u (got %u)",
                       WEFT_KEEPALIVE_MIN_MS, WEFT_KEEPALIVE_MAX_MS, lv.keepalive_ms);
    if (lv.idle_dead_ms == 0)
        lv.idle_dead_ms = max_u(WEFT_IDLE_DEAD_MS, 3 * lv.keepalive_ms);
    if (lv.idle_dead_ms < 2 * lv.keepalive_ms || lv.idle_dead_ms > WEFT_IDLE_DEAD_MAX_MS)
        return pr_errf(err, cap, WEFT_EINVAL,
                       "idle_dead_ms must be two keepalives (%u) to %u (got %u): one lost ping "
                       "must not drop a session",
                       2 * lv.keepalive_ms, WEFT_IDLE_DEAD_MAX_MS, lv.idle_dead_ms);
    lv.dead_after_ms = lv.dead_after_ms ? lv.dead_after_ms : WEFT_DEAD_AFTER_MS;
    if (lv.dead_max_ms == 0)
        lv.dead_max_ms = min_u(max_u(WEFT_DEAD_MAX_MS, lv.dead_after_ms), lv.idle_dead_ms);
    if ((r = check_dead(&lv, err, cap)) < 0)
        return r;
    *out = lv;
    return 0;
}

int weft_options_check(const weft_options *opt, char *err, size_t errcap)
{
    weft_live lv;

    if (err != NULL && errcap > 0)
        err[0] = '\0';
    return weft__live_settings(opt, &lv, err, errcap);
}

/* ---- deadlines ---- */

/* dead = 8 srtt within [dead_after, dead_max]; probe = 4 srtt + margin within
 * [2/3 dead_after, 2/3 dead], so that a third of the dead deadline (and at
 * least 2.6 srtt) is left for the probe's answer. */
void weft__live_deadlines(const weft_live *lv, uint64_t srtt_us, unsigned *probe_ms,
                          unsigned *dead_ms)
{
    uint64_t rtt = srtt_us / 1000 + (srtt_us % 1000 != 0), d, p;

    d = rtt > lv->dead_max_ms / 8 ? lv->dead_max_ms : 8 * rtt;
    d = d < lv->dead_after_ms ? lv->dead_after_ms : d;
    p = rtt > d ? d : 4 * rtt + PROBE_MARGIN_MS;
    p = p < lv->dead_after_ms * 2 / 3 ? lv->dead_after_ms * 2 / 3 : p;
    p = p > d * 2 / 3 ? d * 2 / 3 : p;
    *probe_ms = (unsigned)p;
    *dead_ms = (unsigned)d;
}

/* ---- traffic ---- */

static const char *conns_busy(const weft_rsess *s)
{
    for (const weft_conn *c = s->ctx->conns; c; c = c->next) {
        if (c->sess != s)
            continue;
        if (c->state == CS_DIALING || c->resume_req != 0)
            return "request";
        if (c->state == CS_OPEN && c->rtxq.n > 0)
            return "unacked";
    }
    for (const weft_listener *l = s->ctx->listeners; l; l = l->next)
        if (l->req_id[s->slot] != 0)
            return "request";
    return NULL;
}

const char *weft__live_busy(const weft_rsess *s, uint64_t now)
{
    const char *why = conns_busy(s);
    unsigned probe, dead;

    if (why != NULL || s->payload_at == 0)
        return why;
    weft__live_deadlines(&s->ctx->live, s->srtt_us, &probe, &dead);
    return now - s->payload_at < max_u(2 * probe, dead + RECV_HOLD_MS) ? "receiving" : NULL;
}

/* ---- checks ---- */

static weft_rsess *other_ready(weft_rsess *s)
{
    for (int i = 0; i < s->ctx->nsess; i++)
        if (&s->ctx->sess[i] != s && weft__rsess_ready(&s->ctx->sess[i]))
            return &s->ctx->sess[i];
    return NULL;
}

/* A dead router reads no close_notify: a graceful close would hold the
 * session, and the circuits waiting to move, for the 5 s close timeout.
 * moving: dropped by the busy deadline, with o ready to take the circuits. */
static void dead(weft_rsess *s, const char *why, unsigned deadline, const weft_rsess *o, int moving)
{
    pr_warn("edge_session_dead",
            "router=%s quiet_ms=%llu srtt_us=%llu reason=%s deadline_ms=%u other=%s hint=%s",
            s->addr, (unsigned long long)(weft__now(s->ctx) - s->last_rx),
            (unsigned long long)s->srtt_us, why, deadline, o ? o->addr : "-",
            pr_log_q(moving ? "the router stopped answering while the other one answers; "
                              "circuits move there"
                            : "no byte from the router for the idle deadline; reconnecting"));
    pr_conn_close(s->tls, WEFT_EIO);
}

static void probe(weft_rsess *s, weft_rsess *o, uint64_t now)
{
    pr_debug("edge_session_probe", "router=%s quiet_ms=%llu other=%s", s->addr,
             (unsigned long long)(now - s->last_rx), o->addr);
    s->probe_at = now;
    s->probe_self = s->rx_n;
    s->probe_other = o->rx_n;
    s->probe_late = 0;
    weft__rsess_ping(s);
    weft__rsess_ping(o);
}

/* Where the silence of a busy session is counted from. */
static uint64_t quiet_since(const weft_rsess *s)
{
    return s->last_rx > s->busy_since ? s->last_rx : s->busy_since;
}

/* The loop time by which s must have answered its probe: its dead deadline
 * after the silence began, and at least the longer answer window of the two
 * routers after the probe. */
static uint64_t dead_at(const weft_rsess *s, const weft_rsess *o, unsigned *dead_ms)
{
    uint64_t from = quiet_since(s);
    unsigned ps, ds, po, dw;

    weft__live_deadlines(&s->ctx->live, s->srtt_us, &ps, &ds);
    weft__live_deadlines(&s->ctx->live, o->srtt_us, &po, &dw);
    *dead_ms = ds;
    dw = max_u(ds - ps, dw - po);
    return from + ds > s->probe_at + dw ? from + ds : s->probe_at + dw;
}

static void lower(uint64_t *next, uint64_t at)
{
    *next = at < *next ? at : *next;
}

/* s carries traffic: probe, then drop once the other router answered the
 * probe and s did not. 1 when s was dropped; *next is lowered to the next
 * deadline. */
static int busy_check(weft_rsess *s, const char *why, uint64_t now, uint64_t *next)
{
    weft_rsess *o = other_ready(s);
    unsigned pr, dl;
    uint64_t at;

    if (o == NULL)
        return 0; /* nowhere to move: only the idle deadline applies */
    if (s->probe_at != 0 && s->rx_n != s->probe_self)
        s->probe_at = 0; /* it answered */
    weft__live_deadlines(&s->ctx->live, s->srtt_us, &pr, &dl);
    if (s->probe_at == 0 && now < quiet_since(s) + pr) {
        lower(next, quiet_since(s) + pr);
        return 0;
    }
    if (s->probe_at == 0)
        probe(s, o, now);
    if (now < (at = dead_at(s, o, &dl))) {
        lower(next, at);
        return 0;
    }
    if (o->rx_n == s->probe_other) { /* both silent: the tick looks again */
        s->probe_late = 1;
        return 0;
    }
    if (s->probe_late) { /* the other answered only late: s gets the same chance */
        probe(s, o, now);
        lower(next, dead_at(s, o, &dl));
        return 0;
    }
    dead(s, why, dl, o, 1);
    return 1;
}

static void arm(weft_rsess *s, uint64_t now, uint64_t next)
{
    weft__rsess_arm(s, next > now ? next - now : WEFT_TICK_MS);
}

void weft__live_check(weft_rsess *s)
{
    const weft_live *lv = &s->ctx->live;
    uint64_t now = weft__now(s->ctx), next;
    const char *why;

    if (!weft__rsess_ready(s) || pr_conn_write(s->tls, NULL, 0) == WEFT_ECLOSED)
        return; /* closing already */
    /* Traffic began after the last check, which saw none: counted from
     * then, the earliest it can have begun (the checks run every tick). */
    if ((why = weft__live_busy(s, now)) == NULL)
        s->busy_since = s->probe_at = 0;
    else if (s->busy_since == 0)
        s->busy_since = s->checked_at ? s->checked_at : now;
    s->checked_at = now;
    if (now - s->last_rx >= lv->idle_dead_ms)
        return dead(s, why ? why : "idle", lv->idle_dead_ms, other_ready(s), 0);
    if (now - s->ping_ms >= lv->keepalive_ms)
        weft__rsess_ping(s);
    next = s->ping_ms + lv->keepalive_ms;
    next = s->last_rx + lv->idle_dead_ms < next ? s->last_rx + lv->idle_dead_ms : next;
    if (why != NULL && busy_check(s, why, now, &next))
        return;
    arm(s, now, next);
}

void weft__live_start(weft_rsess *s)
{
    s->busy_since = s->probe_at = s->payload_at = s->checked_at = 0;
    s->last_rx = weft__now(s->ctx);
    weft__rsess_ping(s);
    weft__live_check(s);
}

void weft__live_tick(weft_ctx *ctx)
{
    for (int i = 0; i < ctx->nsess; i++)
        if (ctx->sess[i].state == RS_READY)
            weft__live_check(&ctx->sess[i]);
}
