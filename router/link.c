/* Links to other routers: TLS 1.3 with router certificates on both sides,
 * full mesh (of each pair the router with the smaller id dials), heartbeats
 * that double as latency probes, and reconnects with jittered backoff. Circuit
 * frames go to mesh.c; a link that dies ends its circuits (forward.c). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/router.h"
#include "weft/errors.h"

#define PING_MS        1000
#define DEAD_MS        (3 * PING_MS) /* three heartbeats of silence */
/* A link carrying circuits pings four times as often and is declared down
 * after 750 ms of silence, so that a blackholed path stalls its circuits for
 * under a second before they move. */
#define BUSY_PING_MS 250
#define BUSY_DEAD_MS (3 * BUSY_PING_MS)
#define REPORT_MS      5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static void link_on_open(pr_conn *c, int status);
static void link_on_read(pr_conn *c, const uint8_t *data, size_t len);
static void link_on_drain(pr_conn *c);
static void link_on_close(pr_conn *c, int status);
static const pr_conn_cbs link_cbs = {link_on_open, link_on_read, link_on_drain, link_on_close};

static const char *state_name(int s)
{
    static const char *const names[] = {"?", "idle", "connecting", "up", "closing"};
    return s >= 0 && s <= RT_LINK_CLOSING ? names[s] : "?";
}

static void change_state(rt_link *l, int s)
{
    if (l->state != s)
        pr_debug("link_state", "peer=%s from=%s to=%s", l->peer[0] ? l->peer : "-",
                 state_name(l->state), state_name(s));
    if ((l->state == RT_LINK_UP) != (s == RT_LINK_UP))
        l->r->links_changed = 1;
    l->state = s;
}

static rt_link *link_new(rt_router *r, const char *peer, int dialler)
{
    rt_link *l = calloc(1, sizeof(*l));

    if (l == NULL || pr_reader_init(&l->rd) < 0) {
        free(l);
        return NULL;
    }
    l->r = r;
    l->dialler = dialler;
    l->state = RT_LINK_IDLE;
    l->backoff_ms = BACKOFF_MIN_MS;
    snprintf(l->peer, sizeof(l->peer), "%s", peer);
    l->next = r->links;
    if (r->links)
        r->links->prev = l;
    r->links = l;
    return l;
}

static void link_free(rt_link *l)
{
    rt_router *r = l->r;

    if (l->prev)
        l->prev->next = l->next;
    else
        r->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pr_reader_free(&l->rd);
    free(l);
}

int rt_link_send(rt_link *l, const uint8_t *buf, size_t len)
{
    if (l->state != RT_LINK_UP)
        return WEFT_ECLOSED;
    return l->conn ? pr_conn_write(l->conn, buf, len) : 0; /* detached: gone */
}

rt_link *rt_link_to(rt_router *r, const char *id)
{
    for (rt_link *l = r->links; l; l = l->next)
        if (l->state == RT_LINK_UP && strcmp(l->peer, id) == 0)
            return l;
    return NULL;
}

/* Circuits first: their ingress routers move them at once. */
static void drop_circuits(rt_link *l, const char *why)
{
    rt_link_lost(l, why);
}

void rt_link_kill(rt_link *l, int err, const char *why)
{
    if (l->state == RT_LINK_CLOSING || l->conn == NULL)
        return;
    if (l->state == RT_LINK_UP && err == WEFT_ECANCELED)
        pr_info("link_close", "peer=%s reason=%s", l->peer, pr_log_q(why));
    else if (l->state == RT_LINK_UP)
        pr_warn("link_down", "peer=%s err=%s reason=%s", l->peer, weft_err_name(err),
                pr_log_q(why));
    change_state(l, RT_LINK_CLOSING);
    drop_circuits(l, why);
    pr_conn_close(l->conn, err);
    rt_resume_paused(l->r);
}

/* ---- dialling ---- */

static void schedule_retry(rt_link *l)
{
    /* Jitter in the upper half, as on the control channel. */
    unsigned delay = l->backoff_ms / 2 + randombytes_uniform(l->backoff_ms / 2 + 1);

    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    change_state(l, RT_LINK_IDLE);
    l->retry_at_ms = uv_now(l->r->loop) + delay;
}

static void link_connect(rt_link *l)
{
    struct sockaddr_storage ss;
    const char *addr = strncmp(l->addr, "tcp:", 4) == 0 ? l->addr + 4 : l->addr;

    change_state(l, RT_LINK_CONNECTING);
    pr_reader_free(&l->rd);
    if (pr_reader_init(&l->rd) < 0 || pr_addr_resolve(addr, &ss) < 0 ||
        pr_conn_connect(l->r->link_cli_ctx, l->r->loop, (struct sockaddr *)&ss, NULL, &link_cbs, l,
                        &l->conn) < 0) {
        l->conn = NULL;
        pr_warn("link_connect_failed", "peer=%s addr=%s hint=%s", l->peer, l->addr,
                pr_log_q("check that router's link_listen address"));
        schedule_retry(l);
    }
}

static rt_link *dialled_link(rt_router *r, const char *peer)
{
    for (rt_link *l = r->links; l; l = l->next)
        if (l->dialler && strcmp(l->peer, peer) == 0)
            return l;
    return NULL;
}

/* Links we dial: one per map router with a larger id and a link address. */
static void sync_dialled(rt_router *r)
{
    for (size_t i = 0; i < rt_map_count(&r->map.routers); i++) {
        const rt_map_router *mr = rt_map_at(&r->map.routers, i);
        rt_link *l;
        if (strcmp(mr->id, r->id->id) <= 0 || mr->link_listen[0] == '\0')
            continue;
        if ((l = dialled_link(r, mr->id)) == NULL) {
            if ((l = link_new(r, mr->id, 1)) == NULL)
                continue;
            pr_info("link_added", "peer=%s addr=%s", mr->id, mr->link_listen);
        }
        snprintf(l->addr, sizeof(l->addr), "%s", mr->link_listen);
    }
}

void rt_links_sync(rt_router *r)
{
    rt_link *l, *n;

    if (!r->link_open || r->stopping)
        return;
    sync_dialled(r);
    for (l = r->links; l; l = n) {
        n = l->next;
        if (l->peer[0] == '\0' || rt_map_router_get(&r->map, l->peer) != NULL)
            continue;
        pr_info("link_removed", "peer=%s reason=%s", l->peer, pr_log_q("router left the map"));
        l->doomed = 1;
        if (l->conn)
            rt_link_kill(l, WEFT_ECANCELED, "router left the map");
        else
            link_free(l);
    }
}

/* ---- heartbeats ---- */

static void send_probe(rt_link *l, uint16_t type, uint64_t ts)
{
    uint8_t buf[64];
    size_t n;
    pr_enc e;

    pr_enc_init(&e, buf, sizeof(buf), type, 0);
    pr_enc_u64(&e, PR_H_TIMESTAMP, ts);
    if (pr_enc_finish(&e, NULL, 0, &n) == 0)
        rt_link_send(l, buf, n);
}

static void on_pong(rt_link *l, const pr_frame *f)
{
    uint64_t ts, now = rt_now_us(), sample;

    if (pr_frame_u64(f, PR_H_TIMESTAMP, &ts) < 0 || ts > now)
        return; /* not one of ours */
    sample = now - ts ? now - ts : 1;
    /* TCP's smoothed RTT (RFC 6298): one eighth of each new sample. */
    l->srtt_us = l->srtt_us ? (7 * l->srtt_us + sample) / 8 : sample;
    if (l->srtt_us == 0)
        l->srtt_us = 1;
}

/* Loop ms when l's silence declares it down: 3 s, or 750 ms once it has
 * carried circuits long enough for the fast pings to be answered. */
static uint64_t silence_deadline(const rt_link *l)
{
    uint64_t slow = l->last_rx_ms + DEAD_MS, fast;

    if (l->busy_since_ms == 0)
        return slow;
    fast = (l->last_rx_ms > l->busy_since_ms ? l->last_rx_ms : l->busy_since_ms) + BUSY_DEAD_MS;
    return fast < slow ? fast : slow;
}

/* 1 if l was silent too long and is now down. */
static int check_silence(rt_link *l, uint64_t now)
{
    uint64_t d = silence_deadline(l);

    if (now < d)
        return 0;
    rt_link_kill(l, WEFT_ETIMEDOUT,
                 d - l->last_rx_ms < DEAD_MS ? "no heartbeat for 750 ms" : "no heartbeat for 3 s");
    return 1;
}

static void silence_cb(uv_timer_t *t);

/* The silence timer runs to the earliest deadline of the links that are up,
 * so a silent link is declared down on time rather than at the next tick.
 * A deadline only moves later, so an early firing just re-arms. */
static void arm_silence(rt_router *r, uint64_t now)
{
    uint64_t next = UINT64_MAX;

    if (!r->tick_on || r->stopping || uv_is_closing((uv_handle_t *)&r->silence))
        return;
    for (rt_link *l = r->links; l; l = l->next)
        if (l->state == RT_LINK_UP && l->conn) {
            uint64_t d = silence_deadline(l);
            next = d < next ? d : next;
        }
    if (next == UINT64_MAX)
        uv_timer_stop(&r->silence);
    else
        uv_timer_start(&r->silence, silence_cb, next > now ? next - now : 0, 0);
}

static void silence_cb(uv_timer_t *t)
{
    rt_router *r = t->data;
    uint64_t now = uv_now(r->loop);
    rt_link *l, *n;

    for (l = r->links; l; l = n) {
        n = l->next;
        if (l->state == RT_LINK_UP && l->conn)
            check_silence(l, now);
    }
    arm_silence(r, now);
}

static void tick_link(rt_link *l, uint64_t now)
{
    if (l->state == RT_LINK_IDLE && l->dialler && now >= l->retry_at_ms) {
        link_connect(l);
        return;
    }
    if (l->state != RT_LINK_UP)
        return;
    /* A zero-length write fails only on a closing connection: the peer closed
     * it (EOF) and our close callback comes later; its circuits move now. */
    if (l->conn && pr_conn_write(l->conn, NULL, 0) == WEFT_ECLOSED) {
        rt_link_kill(l, WEFT_ECLOSED, "the peer router closed the link");
        return;
    }
    if (l->ends.head == NULL)
        l->busy_since_ms = 0;
    else if (l->busy_since_ms == 0)
        l->busy_since_ms = now;
    if (check_silence(l, now))
        return;
    if (now - l->last_ping_ms >= (l->busy_since_ms ? BUSY_PING_MS : PING_MS)) {
        l->last_ping_ms = now;
        send_probe(l, PR_LINK_PING, rt_now_us());
    }
}

void rt_links_tick(rt_router *r)
{
    uint64_t now = uv_now(r->loop);
    rt_link *l, *n;

    if (r->stopping)
        return;
    for (l = r->links; l; l = n) {
        n = l->next;
        tick_link(l, now);
    }
    arm_silence(r, now);
    if (r->link_open && (r->links_changed || now - r->last_report_ms >= REPORT_MS)) {
        r->links_changed = 0;
        r->last_report_ms = now;
        rt_control_link_report(r);
    }
}

/* ---- connection callbacks ---- */

/* The peer must be a router of this network in the map; the smaller id dials. */
static int check_peer(rt_link *l, char *id, size_t cap, const char **why)
{
    const char *uri = pr_conn_peer_uri(l->conn);
    char td[PR_TRUST_DOMAIN_MAX + 1];
    int kind;

    *why = "certificate is not a router of this network";
    if (uri == NULL || pr_ident_parse(uri, &kind, td, sizeof(td), id, cap) < 0 ||
        kind != PR_IDENT_ROUTER || strcmp(td, l->r->id->network) != 0)
        return WEFT_EDENIED;
    *why = "router is not in the network map (yet)";
    if (rt_map_router_get(&l->r->map, id) == NULL)
        return WEFT_EDENIED;
    *why = "router is not the one dialled";
    if (l->dialler && strcmp(id, l->peer) != 0)
        return WEFT_EDENIED;
    *why = "router with the larger id dialled; the smaller id dials";
    if (!l->dialler && strcmp(id, l->r->id->id) >= 0)
        return WEFT_EDENIED;
    return 0;
}

/* A peer that reconnects replaces its old link (it restarted). */
static void replace_old(rt_link *l)
{
    for (rt_link *o = l->r->links; o; o = o->next)
        if (o != l && !o->dialler && o->conn && strcmp(o->peer, l->peer) == 0)
            rt_link_kill(o, WEFT_ECANCELED, "the peer reconnected");
}

static void link_on_open(pr_conn *c, int status)
{
    rt_link *l = pr_conn_data(c);
    char id[RT_ID_CAP] = "";
    const char *why;
    int rc;

    if (status < 0) {
        pr_debug("link_handshake_failed", "peer=%s addr=%s err=%s", l->peer[0] ? l->peer : "-",
                 pr_conn_peer_addr(c), weft_err_name(status));
        return;
    }
    if ((rc = check_peer(l, id, sizeof(id), &why)) < 0) {
        pr_warn("link_refused", "peer=%s addr=%s reason=%s", id[0] ? id : "-", pr_conn_peer_addr(c),
                pr_log_q(why));
        change_state(l, RT_LINK_CLOSING);
        pr_conn_close(c, rc);
        return;
    }
    snprintf(l->peer, sizeof(l->peer), "%s", id);
    replace_old(l);
    change_state(l, RT_LINK_UP);
    l->backoff_ms = BACKOFF_MIN_MS;
    l->srtt_us = 0;
    l->up_since_ms = l->last_rx_ms = l->last_ping_ms = uv_now(l->r->loop);
    pr_info("link_up", "peer=%s addr=%s role=%s", l->peer, pr_conn_peer_addr(c),
            l->dialler ? "dialler" : "listener");
    send_probe(l, PR_LINK_PING, rt_now_us());
}

static int link_frame(void *arg, const pr_frame *f)
{
    rt_link *l = arg;
    uint64_t ts;

    if (l->state != RT_LINK_UP)
        return WEFT_ECANCELED;
    l->last_rx_ms = uv_now(l->r->loop);
    switch (f->type) {
    case PR_LINK_PING:
        if (pr_frame_u64(f, PR_H_TIMESTAMP, &ts) == 0)
            send_probe(l, PR_LINK_PONG, ts);
        return 0;
    case PR_LINK_PONG:
        on_pong(l, f);
        return 0;
    default:
        return rt_mesh_on_frame(l, f);
    }
}

static void link_on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    rt_link *l = pr_conn_data(c);
    int rc;

    if (l->state != RT_LINK_UP)
        return;
    rc = pr_reader_feed(&l->rd, data, len, link_frame, l);
    if (rc < 0 && rc != WEFT_ECANCELED && l->state == RT_LINK_UP) {
        pr_warn("link_protocol_error", "peer=%s err=%s", l->peer, weft_err_name(rc));
        rt_link_kill(l, rc, "protocol error from the peer router");
    }
}

static void link_on_drain(pr_conn *c)
{
    rt_link *l = pr_conn_data(c);
    rt_resume_paused(l->r);
}

static void link_on_close(pr_conn *c, int status)
{
    rt_link *l = pr_conn_data(c);
    rt_router *r = l->r;

    if (l->state == RT_LINK_UP) {
        pr_warn("link_down", "peer=%s status=%s", l->peer, weft_err_name(status));
        change_state(l, RT_LINK_CLOSING); /* no new path may take it (rt_link_to) */
    }
    drop_circuits(l, "the link to the next router closed");
    l->conn = NULL;
    l->paused = 0;
    if (l->dialler && !l->doomed && !r->stopping)
        schedule_retry(l);
    else
        link_free(l);
    rt_resume_paused(r);
}

/* ---- detached links (fuzzing) ---- */

int rt_link_detached(rt_router *r, const char *peer, rt_link **out)
{
    rt_link *l = link_new(r, peer, 0);

    if (l == NULL)
        return WEFT_ENOMEM;
    l->state = RT_LINK_UP;
    l->up_since_ms = l->last_rx_ms = uv_now(r->loop);
    *out = l;
    return 0;
}

void rt_link_feed(rt_link *l, const uint8_t *data, size_t len)
{
    int rc;

    if (l->state != RT_LINK_UP)
        return;
    rc = pr_reader_feed(&l->rd, data, len, link_frame, l);
    if (rc < 0 && rc != WEFT_ECANCELED && l->state == RT_LINK_UP) {
        l->state = RT_LINK_CLOSING; /* what rt_link_kill does, without a connection */
        drop_circuits(l, "protocol error from the peer router");
    }
}

void rt_link_detached_free(rt_link *l)
{
    l->state = RT_LINK_CLOSING;
    drop_circuits(l, "gone");
    link_free(l);
}

/* ---- listener ---- */

static void link_on_connection(uv_stream_t *server, int status)
{
    rt_router *r = server->data;
    rt_link *l;

    if (status < 0 || r->stopping || (l = link_new(r, "", 0)) == NULL)
        return;
    change_state(l, RT_LINK_CONNECTING);
    if (pr_conn_accept(r->link_srv_ctx, server, &link_cbs, l, &l->conn) < 0) {
        l->conn = NULL;
        link_free(l);
    }
}

int rt_router_listen_link(rt_router *r, const char *addr)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    if ((rc = pr_addr_resolve(strncmp(addr, "tcp:", 4) == 0 ? addr + 4 : addr, &ss)) < 0)
        return rc;
    uv_tcp_init(r->loop, &r->link_tcp);
    r->link_tcp.data = r;
    r->link_open = 1;
    if (uv_tcp_bind(&r->link_tcp, (struct sockaddr *)&ss, 0) < 0 ||
        uv_listen((uv_stream_t *)&r->link_tcp, 128, link_on_connection) < 0) {
        pr_error("link_listen_failed", "addr=%s hint=%s", addr,
                 pr_log_q("the address is in use or not local; change link_listen in router.json"));
        return WEFT_EADDR;
    }
    uv_tcp_getsockname(&r->link_tcp, (struct sockaddr *)&ss, &len);
    pr_addr_format((struct sockaddr *)&ss, r->link_addr, sizeof(r->link_addr));
    pr_info("link_listening", "addr=%s", r->link_addr);
    rt_router_tick_start(r);
    rt_links_sync(r);
    return 0;
}

void rt_links_close(rt_router *r)
{
    rt_link *l, *n;

    r->stopping = 1;
    if (r->link_open && !uv_is_closing((uv_handle_t *)&r->link_tcp))
        uv_close((uv_handle_t *)&r->link_tcp, NULL);
    for (l = r->links; l; l = n) {
        n = l->next;
        l->doomed = 1;
        if (l->conn == NULL)
            link_free(l);
        else if (l->state != RT_LINK_CLOSING)
            rt_link_kill(l, WEFT_ECANCELED, "router stopping");
    }
}
