/* The control channel: a persistent TLS connection to the controller with the
 * router certificate. CTL_HELLO, then CTL_MAP_FULL and CTL_MAP_DELTA into the
 * router's map; terminators reported with CTL_TERM_ADD / CTL_TERM_REMOVE;
 * CTL_PING every 5 s. It reconnects with jittered exponential backoff and the
 * data plane never waits for it. */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/addr.h"
#include "proto/httpc.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/baseline.h"
#include "router/evqueue.h"
#include "router/grants.h"
#include "router/renew.h"
#include "router/router.h"
#include "router/usage.h"
#include "weft/errors.h"

#define PING_MS 5000
#define DEAD_MS 15000 /* three missed heartbeats */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define CTL_TX_CAP (PR_FRAME_FIXED + PR_FRAME_MAX_HDR_LEN + 16384)
#define JOIN_MAX (64u << 20) /* a map in parts: 100,000 revocations are about 4 MiB */

enum ctl_state { CTL_IDLE = 1, CTL_CONNECTING, CTL_OPEN, CTL_STOPPED };

struct rt_control {
    rt_router *r;
    pr_tls_ctx *ctx;
    pr_conn *conn;
    pr_reader rd;
    uv_timer_t timer;
    int timer_closed;
    int state;
    unsigned backoff_ms;
    uint64_t last_rx;
    char addr[128];
    char edge_listen[128];
    char link_listen[128];
    /* A map arriving in parts (docs/dataplane.md "Maps larger than a frame"). */
    uint8_t *join;
    size_t join_len, join_cap;
    uint16_t join_type; /* 0: no parts pending */
    uint64_t join_version;
    /* Security events until the controller stored them (evqueue.h). */
    rt_evq *evq;
    uint8_t tx[CTL_TX_CAP];
};

static void ctl_on_open(pr_conn *c, int status);
static void ctl_on_read(pr_conn *c, const uint8_t *data, size_t len);
static void ctl_on_close(pr_conn *c, int status);
static const pr_conn_cbs ctl_cbs = {ctl_on_open, ctl_on_read, NULL, ctl_on_close};

static void change_state(rt_control *ctl, int s)
{
    static const char *const names[] = {"?", "idle", "connecting", "open", "stopped"};

    if (ctl->state != s)
        pr_debug("control_state", "from=%s to=%s", names[ctl->state], names[s]);
    ctl->state = s;
}

static void maybe_free(rt_control *ctl)
{
    if (ctl->state == CTL_STOPPED && ctl->conn == NULL && ctl->timer_closed) {
        pr_tls_ctx_free(ctl->ctx);
        pr_reader_free(&ctl->rd);
        free(ctl->join);
        free(ctl);
    }
}

static int send_text(rt_control *ctl, uint16_t type, const char *text)
{
    size_t n;
    pr_enc e;
    int rc;

    if (ctl->conn == NULL || ctl->state != CTL_OPEN)
        return WEFT_ECLOSED;
    pr_enc_init(&e, ctl->tx, sizeof(ctl->tx), type, 0);
    if ((rc = pr_enc_finish(&e, text, strlen(text), &n)) == 0)
        rc = pr_conn_write(ctl->conn, ctl->tx, n);
    return rc;
}

int rt_control_send(rt_router *r, uint16_t type, const char *text)
{
    return r->ctl ? send_text(r->ctl, type, text) : WEFT_ECLOSED;
}

int rt_control_is_open(const rt_router *r)
{
    return r->ctl && r->ctl->state == CTL_OPEN;
}

static int send_json(rt_control *ctl, uint16_t type, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = WEFT_ENOMEM;

    json_decref(body);
    if (text)
        rc = send_text(ctl, type, text);
    free(text);
    return rc;
}

/* Sends the events not yet sent on this channel, oldest first, while it
 * takes them; they stay queued until acknowledged (CTL_EVENT_ACK). */
static size_t evq_flush(rt_control *ctl)
{
    const char *text;
    size_t sent = 0, len, n;
    pr_enc e;
    int rc;

    while (ctl->state == CTL_OPEN && (text = rt_evq_next(ctl->evq, &len)) != NULL) {
        pr_enc_init(&e, ctl->tx, sizeof(ctl->tx), PR_CTL_EVENT, 0);
        if ((rc = pr_enc_finish(&e, text, len, &n)) == 0)
            rc = pr_conn_write(ctl->conn, ctl->tx, n);
        if (rc < 0)
            break;
        rt_evq_sent(ctl->evq);
        sent++;
    }
    return sent;
}

static json_t *term_json(const rt_router *r, const rt_term *t)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "id", t->id, "service", t->service_id, "router",
                     r->id->id, "identity", t->sess->identity);
}

void rt_control_event(rt_router *r, const json_t *ev)
{
    if (r->ctl && rt_evq_add(r->ctl->evq, ev) == 0)
        evq_flush(r->ctl);
}

uint64_t rt_control_events_dropped(const rt_router *r)
{
    return r->ctl ? rt_evq_dropped(r->ctl->evq) : 0;
}

size_t rt_control_events_queued(const rt_router *r)
{
    return r->ctl ? rt_evq_len(r->ctl->evq) : 0;
}

void rt_control_term_add(rt_router *r, const rt_term *t)
{
    if (r->ctl)
        send_json(r->ctl, PR_CTL_TERM_ADD, term_json(r, t));
}

void rt_control_term_remove(rt_router *r, const rt_term *t)
{
    if (r->ctl)
        send_json(r->ctl, PR_CTL_TERM_REMOVE, term_json(r, t));
}

/* {"event","circuit","service","identity","path","bytes_up","bytes_down","rtt_us"}
 * (docs/dataplane.md "Circuit events"): service is the service id; the
 * circuit id is 16 hex digits because a u64 does not survive JSON numbers
 * everywhere. A reroute is an "update" carrying the new path. */
static json_t *event_json(rt_router *r, rt_circuit *c, const char *event)
{
    json_t *path = json_array();
    const rt_map_service *svc = rt_map_service_by_name(&r->map, c->service);
    char id[17];

    snprintf(id, sizeof(id), "%016llx", (unsigned long long)c->id);
    if (c->leg_side >= 0 && c->leg[0].path.n >= 2)
        for (size_t i = 0; path && i < c->leg[0].path.n; i++)
            json_array_append_new(path, json_string(c->leg[0].path.hop[i]));
    else if (path)
        json_array_append_new(path, json_string(r->id->id));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "event", event, "circuit", id,
                     "service", svc ? svc->id : c->service, "identity", c->dialler, "path",
                     path ? path : json_array(), "bytes_up", (json_int_t)c->bytes_up,
                     "bytes_down", (json_int_t)c->bytes_down, "rtt_us",
                     (json_int_t)rt_circuit_rtt(r, c));
}

void rt_control_circuit_event(rt_router *r, rt_circuit *c, const char *event)
{
    json_t *body;
    char *text;

    if (strcmp(event, "open") == 0)
        r->circuits_opened++;
    else if (strcmp(event, "close") == 0)
        r->circuits_closed++;
    if (strcmp(event, "close") != 0)
        c->event_ms = uv_now(r->loop) ? uv_now(r->loop) : 1; /* updates count from here */
    if ((r->on_event == NULL && (r->ctl == NULL || r->ctl->state != CTL_OPEN)) ||
        (body = event_json(r, c, event)) == NULL)
        return;
    if (r->on_event && (text = json_dumps(body, JSON_COMPACT)) != NULL) {
        r->on_event(r->event_arg, text);
        free(text);
    }
    if (r->ctl && r->ctl->state == CTL_OPEN)
        send_json(r->ctl, PR_CTL_CIRCUIT_EVENT, body);
    else
        json_decref(body);
}

/* {"links":[{"peer","rtt_us","up","queue"}]}: one entry per link this router
 * knows, up or not (docs/dataplane.md "Mesh"). */
static json_t *links_json(const rt_router *r)
{
    json_t *arr = json_array();

    for (const rt_link *l = r->links; arr && l; l = l->next) {
        if (l->peer[0] == '\0')
            continue; /* accepted, not yet authenticated */
        json_array_append_new(arr, json_pack("{s:s, s:I, s:b, s:I}", "peer", l->peer, "rtt_us",
                                             (json_int_t)l->srtt_us, "up",
                                             l->state == RT_LINK_UP, "queue",
                                             (json_int_t)(l->conn ? pr_conn_queued(l->conn) : 0)));
    }
    return json_pack("{s:o}", "links", arr ? arr : json_array());
}

/* {"identities": ["id", ...]}, at most ROLES_ASK_MAX ids a frame. */
#define ROLES_ASK_MAX 128
void rt_control_roles_ask(rt_router *r, const json_t *ids)
{
    json_t *batch = NULL, *v;
    const char *id;
    size_t n = 0, total = json_object_size(ids);

    if (r->ctl == NULL || r->ctl->state != CTL_OPEN)
        return; /* asked again when the channel opens (rt_rpolicy_control_open) */
    json_object_foreach((json_t *)ids, id, v)
    {
        if (batch == NULL && (batch = json_array()) == NULL)
            return;
        json_array_append_new(batch, json_string(id));
        if (++n % ROLES_ASK_MAX == 0 || n == total) {
            send_json(r->ctl, PR_CTL_ROLES_ASK, json_pack("{s:o}", "identities", batch));
            batch = NULL;
        }
    }
    pr_debug("roles_asked", "identities=%zu", total);
}

void rt_control_link_report(rt_router *r)
{
    if (r->ctl && r->ctl->state == CTL_OPEN)
        send_json(r->ctl, PR_CTL_LINK_REPORT, links_json(r));
}

/* ---- maps in parts ---- */

static void join_reset(rt_control *ctl)
{
    free(ctl->join);
    ctl->join = NULL;
    ctl->join_len = ctl->join_cap = 0;
    ctl->join_type = 0;
    ctl->join_version = 0;
}

static int join_append(rt_control *ctl, const pr_frame *f)
{
    size_t want = ctl->join_len + f->body_len, cap = ctl->join_cap ? ctl->join_cap : 1u << 20;
    uint8_t *nb;

    if (want > JOIN_MAX)
        return WEFT_ETOOBIG;
    while (cap < want)
        cap *= 2;
    if (cap > ctl->join_cap) {
        if ((nb = realloc(ctl->join, cap)) == NULL)
            return WEFT_ENOMEM;
        ctl->join = nb;
        ctl->join_cap = cap;
    }
    memcpy(ctl->join + ctl->join_len, f->body, f->body_len);
    ctl->join_len = want;
    return 0;
}

/* One part: the first opens the join, later ones must match its type and
 * version. Returns 1 when the joined text is complete in ctl->join. */
static int join_part(rt_control *ctl, const pr_frame *f)
{
    uint64_t version;
    int rc;

    if (pr_frame_u64(f, PR_H_MAP_VERSION, &version) < 0) {
        pr_error("map_part_malformed", "type=0x%04x hint=%s", f->type,
                 pr_log_q("a map part lacks its version; reconnecting"));
        return WEFT_EPROTO;
    }
    if (ctl->join_type == 0) {
        ctl->join_type = f->type;
        ctl->join_version = version;
    } else if (ctl->join_type != f->type || ctl->join_version != version) {
        pr_error("map_part_mismatch", "type=0x%04x version=%llu want_version=%llu hint=%s",
                 f->type, (unsigned long long)version, (unsigned long long)ctl->join_version,
                 pr_log_q("map parts interleaved; reconnecting for a full map"));
        return WEFT_EPROTO;
    }
    if ((rc = join_append(ctl, f)) < 0) {
        pr_error("map_too_big", "bytes=%zu err=%s hint=%s", ctl->join_len + f->body_len,
                 weft_err_name(rc), pr_log_q("the map passes 64 MiB; reconnecting"));
        return rc;
    }
    return (f->flags & PR_CTL_MAP_F_MORE) ? 0 : 1;
}

/* ---- connection ---- */

static void timer_cb(uv_timer_t *t);

static void schedule_reconnect(rt_control *ctl)
{
    /* Full jitter in the upper half: thousands of routers restarting together spread out. */
    unsigned delay = ctl->backoff_ms / 2 + randombytes_uniform(ctl->backoff_ms / 2 + 1);

    ctl->backoff_ms = ctl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ctl->backoff_ms * 2;
    change_state(ctl, CTL_IDLE);
    uv_timer_start(&ctl->timer, timer_cb, delay, 0);
}

static void connect_now(rt_control *ctl)
{
    struct sockaddr_storage ss;

    change_state(ctl, CTL_CONNECTING);
    pr_reader_free(&ctl->rd);
    if (pr_reader_init(&ctl->rd) < 0 || pr_addr_resolve(ctl->addr, &ss) < 0 ||
        pr_conn_connect(ctl->ctx, ctl->r->loop, (struct sockaddr *)&ss, NULL, &ctl_cbs, ctl,
                        &ctl->conn) < 0) {
        ctl->conn = NULL;
        pr_warn("control_connect_failed", "addr=%s hint=%s", ctl->addr,
                pr_log_q("check the controller's control_listen address"));
        schedule_reconnect(ctl);
    }
}

static void timer_cb(uv_timer_t *t)
{
    rt_control *ctl = t->data;

    if (ctl->state == CTL_IDLE) {
        connect_now(ctl);
        return;
    }
    if (ctl->state != CTL_OPEN)
        return;
    if (uv_now(ctl->r->loop) - ctl->last_rx > DEAD_MS) {
        pr_warn("control_dead", "addr=%s hint=%s", ctl->addr,
                pr_log_q("no answer from the controller for 15 s; reconnecting"));
        pr_conn_close(ctl->conn, WEFT_ETIMEDOUT);
        return;
    }
    send_json(ctl, PR_CTL_PING, json_object());
}

static json_t *hello_json(rt_control *ctl)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", ctl->r->id->id, "version", RT_VERSION,
                     "edge_listen", ctl->edge_listen, "link_listen", ctl->link_listen,
                     "map_version", (json_int_t)ctl->r->map.version);
}

static int peer_is_controller(pr_conn *c)
{
    const char *uri = pr_conn_peer_uri(c);
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind;

    return uri && pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) == 0 &&
           kind == PR_IDENT_CONTROLLER;
}

static void ctl_on_open(pr_conn *c, int status)
{
    rt_control *ctl = pr_conn_data(c);
    size_t sent;

    if (status < 0) {
        pr_warn("control_connect_failed", "addr=%s err=%s hint=%s", ctl->addr,
                weft_err_name(status), pr_log_q("is the controller running? retrying"));
        return;
    }
    if (!peer_is_controller(c)) {
        pr_error("control_refused", "addr=%s hint=%s", ctl->addr,
                 pr_log_q("the peer is not a controller of this network; check the address"));
        pr_conn_close(c, WEFT_EDENIED);
        return;
    }
    change_state(ctl, CTL_OPEN);
    ctl->last_rx = uv_now(ctl->r->loop);
    pr_info("control_open", "addr=%s map_version=%llu", ctl->addr,
            (unsigned long long)ctl->r->map.version);
    send_json(ctl, PR_CTL_HELLO, hello_json(ctl));
    for (rt_term *t = ctl->r->terms; t; t = t->next)
        rt_control_term_add(ctl->r, t);
    rt_control_link_report(ctl->r);
    rt_rpolicy_control_open(ctl->r);
    if ((sent = evq_flush(ctl)) > 0)
        pr_info("events_sent_late", "events=%zu left=%zu dropped=%llu", sent,
                rt_evq_unsent(ctl->evq), (unsigned long long)rt_evq_dropped(ctl->evq));
    rt_baseline_resend(ctl->r);
    rt_usage_control_open(ctl->r);
    uv_timer_start(&ctl->timer, timer_cb, PING_MS, PING_MS);
}

static void ctl_on_close(pr_conn *c, int status)
{
    rt_control *ctl = pr_conn_data(c);

    ctl->conn = NULL;
    uv_timer_stop(&ctl->timer);
    join_reset(ctl);
    rt_evq_rewind(ctl->evq); /* what was not acknowledged goes out again */
    if (ctl->state == CTL_STOPPED) {
        maybe_free(ctl);
        return;
    }
    if (ctl->state == CTL_OPEN) {
        pr_warn("control_closed", "addr=%s status=%s hint=%s", ctl->addr, weft_err_name(status),
                pr_log_q("forwarding continues; reconnecting to the controller"));
        rt_usage_control_closed(ctl->r);
    }
    schedule_reconnect(ctl);
}

/* ---- map updates ---- */

static int apply_map(rt_control *ctl, uint16_t type, const uint8_t *body, size_t len)
{
    rt_router *r = ctl->r;
    char err[256] = "";
    int full = type == PR_CTL_MAP_FULL, rc;

    if (full)
        rc = rt_map_apply_full(&r->map, (const char *)body, len, err, sizeof(err));
    else
        rc = rt_map_apply_delta(&r->map, (const char *)body, len, err, sizeof(err));
    if (rc == WEFT_ECONFLICT) {
        pr_warn("map_gap", "reason=%s hint=%s", pr_log_q(err),
                pr_log_q("asking the controller for a full map"));
        return rc;
    }
    if (rc < 0) {
        pr_error("map_rejected", "kind=%s err=%s reason=%s hint=%s", full ? "full" : "delta",
                 weft_err_name(rc), pr_log_q(err),
                 pr_log_q("the controller sent a map this router cannot read; upgrade both"));
        return rc;
    }
    if (full)
        ctl->backoff_ms = BACKOFF_MIN_MS;
    pr_info("map_applied", "kind=%s version=%llu services=%zu revoked=%zu links=%zu",
            full ? "full" : "delta", (unsigned long long)r->map.version,
            rt_map_count(&r->map.services), rt_map_count(&r->map.revoked),
            rt_map_count(&r->map.links));
    rt_router_map_changed(r);
    return 0;
}

/* A map frame: whole (flags 0, no parts pending) or one of its parts. */
static int on_map(rt_control *ctl, const pr_frame *f)
{
    int rc;

    if (!(f->flags & PR_CTL_MAP_F_MORE) && ctl->join_type == 0)
        return apply_map(ctl, f->type, f->body, f->body_len);
    if ((rc = join_part(ctl, f)) <= 0)
        return rc;
    rc = apply_map(ctl, ctl->join_type, ctl->join, ctl->join_len);
    join_reset(ctl);
    return rc;
}

/* Identities' roles (CTL_ROLES, docs/policies.md "Router policies"). A bad
 * body is logged and skipped: the map and the channel are still good. */
static void on_roles(rt_control *ctl, const pr_frame *f)
{
    json_t *body = json_loadb((const char *)f->body, f->body_len, JSON_REJECT_DUPLICATES, NULL);

    if (body == NULL || rt_rpolicy_roles(ctl->r, body) < 0)
        pr_warn("roles_rejected", "bytes=%zu hint=%s", (size_t)f->body_len,
                pr_log_q("CTL_ROLES must be {\"at\": N, \"roles\": {\"id\": [...]}}; "
                         "sessions keep the roles of their tokens"));
    json_decref(body);
}

static int ctl_frame(void *arg, const pr_frame *f)
{
    rt_control *ctl = arg;

    ctl->last_rx = uv_now(ctl->r->loop);
    if (ctl->join_type != 0 && f->type != PR_CTL_MAP_FULL && f->type != PR_CTL_MAP_DELTA) {
        pr_error("map_parts_interrupted", "type=0x%04x hint=%s", f->type,
                 pr_log_q("a frame came between the parts of a map; reconnecting"));
        return WEFT_EPROTO;
    }
    switch (f->type) {
    case PR_CTL_MAP_FULL:
    case PR_CTL_MAP_DELTA:
        return on_map(ctl, f);
    case PR_CTL_PING:
        send_json(ctl, PR_CTL_PONG, json_object());
        return 0;
    case PR_CTL_ROLES:
        on_roles(ctl, f);
        return 0;
    case PR_CTL_EVENT_ACK:
        if (rt_evq_ack(ctl->evq, f->body, f->body_len) == WEFT_EPROTO)
            pr_warn("event_ack_malformed", "bytes=%zu", (size_t)f->body_len);
        return 0;
    case PR_CTL_BASELINE_ACK:
        rt_baseline_acked(ctl->r, f->body, f->body_len);
        return 0;
    case PR_CTL_BASELINE_RESET:
        rt_baseline_reset_frame(ctl->r, f->body, f->body_len);
        return 0;
    case PR_CTL_USAGE_NET:
        rt_usage_net_frame(ctl->r, f->body, f->body_len);
        return 0;
    default:
        return 0; /* PONG, and types from newer controllers */
    }
}

static void ctl_on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    rt_control *ctl = pr_conn_data(c);
    int rc;

    if (ctl->state != CTL_OPEN)
        return;
    if ((rc = pr_reader_feed(&ctl->rd, data, len, ctl_frame, ctl)) < 0)
        pr_conn_close(c, rc);
}

/* ---- start and stop ---- */

int rt_control_start(rt_router *r, const rt_control_cfg *cfg)
{
    pr_tls_cfg tc = {.ca_pem = r->id->ca_pem, .cert_pem = r->id->cert_pem,
                     .key_pem = r->id->key_pem};
    rt_control *ctl = calloc(1, sizeof(*ctl));
    int rc;

    if (ctl == NULL)
        return WEFT_ENOMEM;
    if ((rc = pr_tls_ctx_new(&tc, &ctl->ctx)) < 0) {
        free(ctl);
        return rc;
    }
    if ((rc = rt_evq_new(r->loop, cfg->data_dir, RT_EVENT_QUEUE_CAP, &ctl->evq)) < 0) {
        pr_tls_ctx_free(ctl->ctx);
        free(ctl);
        return rc;
    }
    ctl->r = r;
    ctl->state = CTL_IDLE;
    ctl->backoff_ms = BACKOFF_MIN_MS;
    snprintf(ctl->addr, sizeof(ctl->addr), "%s", cfg->control_addr);
    snprintf(ctl->edge_listen, sizeof(ctl->edge_listen), "%s", cfg->edge_listen ? cfg->edge_listen : "");
    snprintf(ctl->link_listen, sizeof(ctl->link_listen), "%s", cfg->link_listen ? cfg->link_listen : "");
    uv_timer_init(r->loop, &ctl->timer);
    ctl->timer.data = ctl;
    r->ctl = ctl;
    connect_now(ctl);
    return 0;
}

/* A renewed certificate: the next connection presents it; the open one keeps
 * its reference to the old context and is not cut. */
int rt_control_reload(rt_router *r, const pr_idfile *id)
{
    pr_tls_cfg tc = {.ca_pem = id->ca_pem, .cert_pem = id->cert_pem, .key_pem = id->key_pem};
    pr_tls_ctx *ctx;
    int rc;

    if (r->ctl == NULL)
        return 0;
    if ((rc = pr_tls_ctx_new(&tc, &ctx)) < 0)
        return rc;
    pr_tls_ctx_free(r->ctl->ctx);
    r->ctl->ctx = ctx;
    return 0;
}

static void timer_close_cb(uv_handle_t *h)
{
    rt_control *ctl = h->data;

    ctl->timer_closed = 1;
    maybe_free(ctl);
}

void rt_control_stop(rt_router *r)
{
    rt_control *ctl = r->ctl;

    if (ctl == NULL)
        return;
    /* What was learnt and used since the last reports goes out first:
     * pr_conn_close sends what is queued before close_notify. */
    rt_baseline_stop(r);
    rt_usage_stop(r);
    r->ctl = NULL;
    rt_evq_close(ctl->evq); /* synced: sent again after the next start if not acknowledged */
    ctl->evq = NULL;
    change_state(ctl, CTL_STOPPED);
    uv_close((uv_handle_t *)&ctl->timer, timer_close_cb);
    if (ctl->conn)
        pr_conn_close(ctl->conn, WEFT_ECANCELED);
}

static int read_control(const char *body, char *out, size_t cap)
{
    json_t *root = json_loads(body, 0, NULL), *data;
    const char *s;
    int rc = WEFT_ENOTFOUND;

    data = json_object_get(root, "data");
    s = json_string_value(json_object_get(json_is_object(data) ? data : root, "control"));
    if (s && strlen(s) < cap) {
        snprintf(out, cap, "%s", s);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int rt_control_discover(const pr_idfile *id, char *out, size_t cap, char *err, size_t errcap)
{
    pr_httpc_cfg cfg = {.ca_pem = id->ca_pem, .cert_pem = id->cert_pem, .key_pem = id->key_pem,
                        .timeout_ms = 3000};
    pr_http_resp resp;
    int rc;

    memset(&resp, 0, sizeof(resp));
    rc = pr_https_request(id->controller, &cfg, "GET", "/v1/version", NULL, 0, NULL, &resp, err,
                          errcap);
    if (rc < 0)
        return rc;
    if (resp.status != 200 || read_control(resp.body, out, cap) < 0) {
        snprintf(err, errcap, "GET /v1/version at %s gave no control address (status %d); "
                 "upgrade the controller", id->controller, resp.status);
        rc = WEFT_ENOTFOUND;
    }
    pr_http_resp_free(&resp);
    return rc;
}
