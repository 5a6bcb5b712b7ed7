/* The edge sessions to routers: resolve, TLS, EDGE_HELLO, then frames in
 * both directions; reconnects with jittered exponential backoff. One state
 * machine (rsess_event) per session with one place that changes state. With
 * two or more routers in the session data the edge holds two sessions, each
 * to a different router, and measures their round trips (ARCHITECTURE 3a). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/lib/weft_int.h"
#include "proto/addr.h"
#include "proto/log.h"

#define HELLO_TIMEOUT_MS 10000

static const char *const state_names[] = {
#define XX(s) #s,
    RSESS_STATES(XX)
#undef XX
};

static void change_state(weft_rsess *s, int st)
{
    pr_info("edge_session_state", "slot=%d router=%s from=%s to=%s", s->slot,
            s->addr[0] ? s->addr : "-", state_names[s->state], state_names[st]);
    s->state = st;
}

int weft__rsess_ready(const weft_rsess *s)
{
    return s && s->state == RS_READY && s->tls != NULL;
}

int weft__sess_writable(const weft_rsess *s)
{
    return weft__rsess_ready(s) && pr_conn_writable(s->tls);
}

weft_rsess *weft__rsess_best(weft_ctx *ctx)
{
    return weft__rsess_best_for(ctx, NULL);
}

weft_rsess *weft__rsess_best_for(weft_ctx *ctx, const char *service)
{
    weft_rsess *best = NULL, *s;
    int i;

    for (i = 0; i < ctx->nsess; i++) {
        s = &ctx->sess[i];
        if (!weft__rsess_ready(s) || s->refused || weft__avoided(ctx, s->addr, service))
            continue;
        if (best == NULL || (s->srtt_us && (!best->srtt_us || s->srtt_us < best->srtt_us)))
            best = s;
    }
    return best;
}

int weft__rsess_done(const weft_ctx *ctx)
{
    int i;

    for (i = 0; i < WEFT_SESS_MAX; i++)
        if (ctx->sess[i].state != RS_STOPPED || ctx->sess[i].tls || ctx->sess[i].gai_busy)
            return 0;
    return 1;
}

int weft__send(weft_rsess *s, size_t len)
{
    return s ? weft__send_buf(s, s->ctx->fbuf, len) : WEFT_ECLOSED;
}

int weft__send_buf(weft_rsess *s, const uint8_t *p, size_t len)
{
    int r;

    if (s == NULL)
        return WEFT_ECLOSED;

    if (s->tls == NULL || (s->state != RS_READY && s->state != RS_HELLO))
        return WEFT_ECLOSED;
    if ((r = pr_conn_write(s->tls, p, len)) < 0) {
        pr_warn("edge_send_failed", "router=%s err=%s hint=%s", s->addr, weft_err_name(r),
                pr_log_q("the router is not reading; reconnecting"));
        pr_conn_close(s->tls, r);
    }
    return r;
}

/* ---- backoff ---- */

static void on_timer(uv_timer_t *t)
{
    weft__rsess_event(t->data, RE_TIMER, 0);
}

void weft__rsess_arm(weft_rsess *s, uint64_t ms)
{
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

unsigned weft__hint_delay(uint32_t hint_ms, unsigned backoff_ms)
{
    uint32_t h = hint_ms > WEFT_HINT_MAX_MS ? WEFT_HINT_MAX_MS : hint_ms;
    unsigned d = h + randombytes_uniform(h / 10 + 21);

    return d > backoff_ms ? d : backoff_ms;
}

/* A refusal with an admission hint waits the hint, jittered, and keeps
 * backoff_ms: the router is healthy, only busy, so nothing doubles. */
static void start_backoff(weft_rsess *s)
{
    unsigned d = s->backoff_ms, jittered = d / 2 + randombytes_uniform(d / 2 + 1);

    if (s->retry_ms) {
        jittered = weft__hint_delay(s->retry_ms, jittered);
        s->retry_ms = 0;
    } else {
        s->backoff_ms = d * 2 > WEFT_BACKOFF_MAX_MS ? WEFT_BACKOFF_MAX_MS : d * 2;
    }
    s->skip++; /* the next attempt tries the next router of the ranking */
    change_state(s, RS_BACKOFF);
    uv_timer_start(&s->timer, on_timer, jittered, 0);
}

/* ---- connect ---- */

static void on_open(pr_conn *c, int status);
static void on_read(pr_conn *c, const uint8_t *data, size_t len);
static void on_drain(pr_conn *c);
static void on_close(pr_conn *c, int status);
static const pr_conn_cbs conn_cbs = {on_open, on_read, on_drain, on_close};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    weft_rsess *s = req->data;
    int r;

    s->gai_busy = 0;
    if (s->state != RS_RESOLVING) { /* stopped meanwhile */
        uv_freeaddrinfo(res);
        weft__maybe_finish(s->ctx);
        return;
    }
    if (status < 0) {
        pr_warn("edge_resolve_failed", "router=%s err=%s hint=%s", s->addr, uv_err_name(status),
                pr_log_q("check the router's edge_listen address"));
        weft__rsess_event(s, RE_FAILED, WEFT_EADDR);
    } else if ((r = pr_conn_connect(s->ctx->tls, s->ctx->loop, res->ai_addr, NULL, &conn_cbs, s,
                                    &s->tls)) < 0) {
        weft__rsess_event(s, RE_FAILED, r);
    } else {
        weft__rsess_event(s, RE_RESOLVED, 0);
    }
    uv_freeaddrinfo(res);
}

/* The router the other session holds or tries, or (size_t)-1. */
static size_t other_router(const weft_rsess *s)
{
    for (int i = 0; i < s->ctx->nsess; i++) {
        const weft_rsess *o = &s->ctx->sess[i];
        if (o != s && o->state != RS_IDLE && o->state != RS_STOPPED && o->state != RS_BACKOFF)
            return o->cur;
    }
    return (size_t)-1;
}

/* The router for this attempt: a move decided by the ranking, else the
 * nearest the other session does not hold, the next one down after each
 * failed attempt; (size_t)-1 when every router refused the identity. */
static size_t pick_router(weft_rsess *s)
{
    const weft_sessdata *sd = &s->ctx->sd;
    size_t rank[WEFT_PROBE_MAX], n, held = other_router(s), m = 0, idx;

    if (s->move_to != 0 && s->move_to - 1 < sd->nrouters && s->move_to - 1 != held) {
        idx = s->move_to - 1;
        s->move_to = 0;
        return idx;
    }
    s->move_to = 0;
    if ((n = weft__rank(s->ctx, rank, WEFT_PROBE_MAX)) == 0)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        if (rank[i] != held || n == 1)
            rank[m++] = rank[i];
    return rank[s->skip % m];
}

static int start_resolve(weft_rsess *s)
{
    const weft_sessdata *sd = &s->ctx->sd;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    char host[256], port[16];
    unsigned p;

    if ((s->cur = pick_router(s)) == (size_t)-1)
        return WEFT_ENOTFOUND;
    s->srtt_us = 0;
    s->ping_req = 0;
    snprintf(s->addr, sizeof(s->addr), "%s", sd->routers[s->cur].edge_listen);
    if (pr_addr_split(s->addr, host, sizeof(host), &p) < 0 || p == 0)
        return WEFT_EADDR;
    snprintf(port, sizeof(port), "%u", p);
    s->gai.data = s;
    if (uv_getaddrinfo(s->ctx->loop, &s->gai, on_resolved, host, port, &hints) < 0)
        return WEFT_EADDR;
    s->gai_busy = 1;
    change_state(s, RS_RESOLVING);
    return 0;
}

/* No router of the session data may be used (none listed, or all refused
 * the identity): the session waits, idle, for session data or for a refusal
 * to be forgotten, rather than trying the same routers again. */
static void no_router(weft_rsess *s)
{
    pr_info("edge_session_wait", "slot=%d routers=%zu wait=%s", s->slot, s->ctx->sd.nrouters,
            s->ctx->urgent ? "session_data" : "refresh");
    s->addr[0] = '\0';
    change_state(s, RS_IDLE);
    weft__no_router(s->ctx);
}

static void attempt(weft_rsess *s)
{
    int r = start_resolve(s);

    if (r == WEFT_ENOTFOUND)
        no_router(s);
    else if (r < 0)
        start_backoff(s);
}

/* The far end must be a router of our network: TLS checked the CA, this
 * checks the kind and trust domain of its URI. */
static int check_router(weft_rsess *s)
{
    const char *uri = pr_conn_peer_uri(s->tls);
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind;

    if (uri == NULL || pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0 ||
        kind != PR_IDENT_ROUTER || strcmp(td, s->ctx->id.network) != 0) {
        pr_error("edge_not_router", "router=%s uri=%s hint=%s", s->addr, uri ? uri : "-",
                 pr_log_q("the address in the session data is not a router of this network"));
        return WEFT_EUNTRUSTED;
    }
    snprintf(s->router_id, sizeof(s->router_id), "%s", id);
    return 0;
}

static int send_hello(weft_rsess *s)
{
    weft_ctx *ctx = s->ctx;
    size_t len;
    int r;

    if ((r = weft__msg_hello(ctx->fbuf, PR_FRAME_MAX, ctx->imei, ctx->iccid, &len)) < 0)
        return r;
    change_state(s, RS_HELLO);
    uv_timer_start(&s->timer, on_timer, HELLO_TIMEOUT_MS, 0);
    return weft__send(s, len);
}

/* ---- the state machine ---- */

static void stop(weft_rsess *s)
{
    uv_timer_stop(&s->timer);
    if (s->gai_busy)
        uv_cancel((uv_req_t *)&s->gai);
    if (s->tls)
        pr_conn_close(s->tls, WEFT_ECANCELED);
    if (s->state == RS_READY)
        weft__session_down(s->ctx, s);
    change_state(s, RS_STOPPED);
}

/* A ping: keepalive, round-trip sample and, when the router fell silent, a
 * probe (liveness.c). Pings are answered by the router at once. */
void weft__rsess_ping(weft_rsess *s)
{
    size_t len;
    pr_enc e;

    s->ping_req = weft__req_id(s->ctx);
    s->ping_at = uv_hrtime();
    s->ping_ms = weft__now(s->ctx);
    pr_enc_init(&e, s->ctx->fbuf, PR_FRAME_MAX, PR_EDGE_PING, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, s->ping_req);
    if (pr_enc_finish(&e, NULL, 0, &len) == 0)
        weft__send(s, len);
}

/* The answer to our ping: srtt = 7/8 srtt + 1/8 sample, as TCP's (the first
 * sample sets it). Pongs the router sends unasked, or late, are ignored. */
static void on_pong(weft_rsess *s, const weft_msg *m)
{
    uint64_t sample;

    if (!m->has_req || m->req_id != s->ping_req || s->ping_req == 0)
        return;
    sample = (uv_hrtime() - s->ping_at) / 1000 + 1;
    s->ping_req = 0;
    s->srtt_us = s->srtt_us ? (7 * s->srtt_us + sample) / 8 : sample;
    pr_debug("edge_session_rtt", "router=%s sample_us=%llu srtt_us=%llu", s->addr,
             (unsigned long long)sample, (unsigned long long)s->srtt_us);
}

static void on_ready(weft_rsess *s)
{
    uv_timer_stop(&s->timer);
    s->backoff_ms = WEFT_BACKOFF_MIN_MS;
    s->skip = 0;
    s->better_rounds = 0;
    change_state(s, RS_READY);
    weft__live_start(s);
    weft__session_up(s->ctx, s);
}

static void live_event(weft_rsess *s, int ev, int status)
{
    switch (ev) {
    case RE_OPEN:
        if (s->state == RS_CONNECTING && (status = check_router(s)) == 0 && send_hello(s) == 0)
            break;
        /* A failed open is a failure like any other. */
        __attribute__((fallthrough));
    case RE_TIMER:
        if (s->state == RS_READY && s->tls) {
            weft__live_check(s);
            break;
        }
        __attribute__((fallthrough));
    case RE_FAILED:
        if (s->tls)
            pr_conn_close(s->tls, status < 0 ? status : WEFT_ETIMEDOUT);
        break;
    case RE_HELLO_OK:
        if (s->state == RS_HELLO)
            on_ready(s);
        break;
    case RE_CLOSED:
        uv_timer_stop(&s->timer);
        if (s->state == RS_READY)
            weft__session_down(s->ctx, s);
        if ((s->move_to != 0 || s->refused) && !s->ctx->freeing) {
            s->refused = 0;
            attempt(s); /* a move to a nearer or an allowed router: no backoff */
            break;
        }
        start_backoff(s);
        break;
    }
}

void weft__rsess_event(weft_rsess *s, int ev, int status)
{
    if (ev == RE_STOP) {
        if (s->state != RS_STOPPED)
            stop(s);
        return;
    }
    switch (s->state) {
    case RS_IDLE:
        if (ev == RE_START)
            attempt(s);
        break;
    case RS_RESOLVING:
        if (ev == RE_RESOLVED)
            change_state(s, RS_CONNECTING);
        else if (ev == RE_FAILED)
            start_backoff(s);
        break;
    case RS_CONNECTING:
    case RS_HELLO:
    case RS_READY:
        live_event(s, ev, status);
        break;
    case RS_BACKOFF:
        if (ev == RE_TIMER)
            attempt(s);
        break;
    case RS_STOPPED:
        break; /* late events of a stopped session do nothing */
    }
}

/* ---- frames from the router ---- */

/* An admission refusal: the router is over its new-session rate and says
 * when to come back. Not the identity's fault, so a warning, not an error. */
static int hello_busy(weft_rsess *s, const weft_msg *m)
{
    s->retry_ms = m->retry_ms ? m->retry_ms : WEFT_BACKOFF_MIN_MS;
    pr_warn("edge_router_busy", "router=%s retry_ms=%u err=%s msg=%s hint=%s", s->addr,
            (unsigned)s->retry_ms, weft_err_name(m->err ? m->err : WEFT_EBUSY),
            pr_log_q(m->err_msg),
            pr_log_q("admission refusal: the router is busy admitting sessions; reconnecting "
                     "after the hinted delay"));
    return WEFT_EBUSY;
}

static int hello_refused(weft_rsess *s, const weft_msg *m)
{
    if (m->retry_ms != 0 || m->err == WEFT_EBUSY)
        return hello_busy(s, m);
    if (weft__refusal_kind(m) == WEFT_REFUSAL_ROUTER) {
        weft__rsess_refused(s, m);
        return WEFT_EDENIED;
    }
    pr_error("edge_hello_refused", "router=%s err=%s msg=%s hint=%s", s->addr,
             weft_err_name(m->err ? m->err : WEFT_EDENIED), pr_log_q(m->err_msg),
             pr_log_q("the router refused this identity; check it is enabled and its device ids"));
    return m->err ? m->err : WEFT_EDENIED;
}

static int reply_frame(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_listener *l;
    weft_conn *c;

    if (m->has_req && (c = weft__conn_by_req(ctx, m->req_id)) != NULL)
        weft__dial_answer(c, m);
    else if (m->has_req && (l = weft__listener_by_req(ctx, m->req_id)) != NULL)
        weft__bind_answer(ctx, l, m);
    else if (m->type == PR_EDGE_DIAL_OK)
        weft__late_dial_ok(ctx, s, m);
    else
        pr_debug("edge_stale_reply", "type=0x%04x req=%u", m->type, m->req_id);
    return 0;
}

static int circuit_frame(weft_ctx *ctx, const weft_msg *m)
{
    weft_conn *c = weft__conn_by_circuit(ctx, m->circuit);

    if (c == NULL) {
        pr_debug("edge_unknown_circuit", "type=0x%04x circuit=%016llx", m->type,
                 (unsigned long long)m->circuit);
        return 0;
    }
    /* A close on a session the circuit left (resumed elsewhere) is the old
     * path's teardown, not the circuit's end. */
    if (m->type == PR_EDGE_CLOSE && c->sess != ctx->rx_sess) {
        pr_debug("edge_old_path_closed", "circuit=%016llx", (unsigned long long)m->circuit);
        return 0;
    }
    weft__conn_frame(c, m);
    return 0;
}

/* An error that answers no request: the router ends the session and says
 * why (a router policy, a revoked identity). */
static int session_error(weft_rsess *s, const weft_msg *m)
{
    if (weft__refusal_kind(m) == WEFT_REFUSAL_ROUTER) {
        weft__rsess_refused(s, m);
        return 0;
    }
    pr_warn("edge_session_error", "router=%s err=%s msg=%s", s->addr,
            weft_err_name(m->err ? m->err : WEFT_EPROTO), pr_log_q(m->err_msg));
    return 0;
}

static int ready_frame(weft_rsess *s, const weft_msg *m)
{
    weft_ctx *ctx = s->ctx;
    size_t len;

    switch (m->type) {
    case PR_EDGE_ERROR:
        return m->has_req ? reply_frame(ctx, s, m) : session_error(s, m);
    case PR_EDGE_BIND_OK:
    case PR_EDGE_DIAL_OK:
        return reply_frame(ctx, s, m);
    case PR_EDGE_DIAL_FAIL:
        return m->has_req ? reply_frame(ctx, s, m) : circuit_frame(ctx, m);
    case PR_EDGE_DIAL:
        weft__incoming_dial(ctx, s, m);
        return 0;
    case PR_PAYLOAD_DATA:
        s->payload_at = weft__now(ctx); /* a session receiving expects more (liveness.c) */
        return circuit_frame(ctx, m);
    case PR_EDGE_CLOSE:
    case PR_ACK_WINDOW:
        return circuit_frame(ctx, m);
    case PR_EDGE_PING:
        if (weft__msg_pong(ctx->fbuf, PR_FRAME_MAX, m, &len) == 0)
            weft__send(s, len);
        return 0;
    case PR_EDGE_PONG:
        on_pong(s, m);
        return 0;
    case PR_EDGE_RETRANSMIT:
        weft__conn_retransmit_notice(ctx, s, m);
        return 0;
    case PR_EDGE_UNBIND:
        weft__bind_withdrawn(ctx, s, m);
        return 0;
    case PR_EDGE_RESUME:
        weft__resume_request(ctx, s, m);
        return 0;
    case PR_EDGE_RESUME_OK:
    case PR_EDGE_RESUME_FAIL:
        weft__resume_answer(ctx, s, m);
        return 0;
    default:
        pr_debug("edge_ignored_frame", "type=0x%04x", m->type);
        return 0;
    }
}

static int on_frame(void *arg, const pr_frame *f)
{
    weft_rsess *s = arg;
    weft_msg *m = &s->ctx->msg;
    int r;

    if (s->ctx->freeing || s->state == RS_STOPPED)
        return WEFT_ECANCELED;
    if ((r = weft__msg_decode(f, m)) < 0) {
        pr_warn("edge_bad_frame", "router=%s type=0x%04x err=%s", s->addr, f->type,
                weft_err_name(r));
        return r;
    }
    s->ctx->rx_sess = s;
    if (s->state == RS_HELLO) {
        if (m->type == PR_EDGE_HELLO_OK) {
            s->caps = m->caps;
            weft__rsess_event(s, RE_HELLO_OK, 0);
            return 0;
        }
        return m->type == PR_EDGE_ERROR ? hello_refused(s, m) : WEFT_EPROTO;
    }
    return s->state == RS_READY ? ready_frame(s, m) : WEFT_EPROTO;
}

/* ---- pr_conn callbacks ---- */

static void on_open(pr_conn *c, int status)
{
    weft_rsess *s = pr_conn_data(c);

    if (status < 0) {
        pr_warn("edge_connect_failed", "router=%s err=%s hint=%s", s->addr, weft_err_name(status),
                pr_log_q("is the router running and does it trust this network's CA?"));
        return; /* on_close follows */
    }
    weft__rsess_event(s, RE_OPEN, 0);
}

static void on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    weft_rsess *s = pr_conn_data(c);
    int r;

    s->last_rx = uv_now(s->ctx->loop);
    s->rx_n++; /* any byte from the router is a sign of life */
    r = pr_reader_feed(&s->rd, data, len, on_frame, s);

    if (r < 0 && s->tls == c && !s->ctx->freeing)
        weft__rsess_event(s, RE_FAILED, r);
}

static void on_drain(pr_conn *c)
{
    weft_rsess *s = pr_conn_data(c);

    if (s->state == RS_READY)
        weft__conns_pump(s->ctx, s);
}

static void on_close(pr_conn *c, int status)
{
    weft_rsess *s = pr_conn_data(c);

    if (s->tls == c)
        s->tls = NULL;
    s->rd.len = 0;
    s->rd.err = 0;
    pr_info("edge_session_closed", "router=%s status=%s", s->addr,
            status ? weft_err_name(status) : "ok");
    weft__rsess_event(s, RE_CLOSED, status);
    weft__maybe_finish(s->ctx);
}

void weft__rsess_init(weft_ctx *ctx)
{
    weft_rsess *s;
    int i;

    ctx->rank_salt = randombytes_uniform(WEFT_PROBE_MAX * 16);
    for (i = 0; i < WEFT_SESS_MAX; i++) {
        s = &ctx->sess[i];
        s->ctx = ctx;
        s->slot = i;
        s->state = RS_IDLE;
        s->backoff_ms = WEFT_BACKOFF_MIN_MS;
        s->cur = (size_t)-1;
        uv_timer_init(ctx->loop, &s->timer);
        s->timer.data = s;
    }
    ctx->nsess = 1;
}

void weft__rsess_start(weft_ctx *ctx)
{
    int i;

    if (ctx->sd.nrouters > WEFT_SESS_MAX && !ctx->probed) {
        weft__probe_round(ctx); /* sessions start once the routers are ranked */
        return;
    }
    if (ctx->sd.nrouters >= 2) /* never fewer again: a running session stays counted */
        ctx->nsess = WEFT_SESS_MAX;
    for (i = 0; i < ctx->nsess; i++)
        if (ctx->sess[i].state == RS_IDLE)
            weft__rsess_event(&ctx->sess[i], RE_START, 0);
}

void weft__rsess_stop(weft_ctx *ctx)
{
    int i;

    for (i = 0; i < WEFT_SESS_MAX; i++)
        weft__rsess_event(&ctx->sess[i], RE_STOP, 0);
}

/* After a probe round: a ready session whose router is clearly farther than
 * the nearest router no session holds, in two rounds in a row, moves there
 * once it carries no circuit (moving would cut them). */
void weft__rsess_reevaluate(weft_ctx *ctx)
{
    size_t rank[WEFT_PROBE_MAX], n = weft__rank(ctx, rank, WEFT_PROBE_MAX), cand = (size_t)-1;
    weft_rsess *s;
    int i, j;

    for (size_t k = 0; k < n && cand == (size_t)-1; k++) {
        cand = rank[k];
        for (j = 0; j < ctx->nsess; j++)
            if (ctx->sess[j].state != RS_IDLE && ctx->sess[j].state != RS_STOPPED &&
                ctx->sess[j].cur == rank[k])
                cand = (size_t)-1;
    }
    for (i = 0; i < ctx->nsess; i++) {
        s = &ctx->sess[i];
        if (!weft__rsess_ready(s) || cand == (size_t)-1 || s->cur >= ctx->sd.nrouters ||
            !weft__clearly_nearer(weft__dist_of(ctx, ctx->sd.routers[cand].edge_listen),
                                  weft__dist_of(ctx, ctx->sd.routers[s->cur].edge_listen))) {
            s->better_rounds = 0;
            continue;
        }
        if (++s->better_rounds < 2 || weft__conns_open_on(ctx, s) > 0)
            continue;
        pr_info("edge_session_move", "slot=%d from=%s to=%s", s->slot, s->addr,
                ctx->sd.routers[cand].edge_listen);
        s->move_to = cand + 1;
        pr_conn_close(s->tls, WEFT_ECANCELED);
        return; /* one move per round */
    }
}
