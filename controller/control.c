/* The control channel server (control.h). One state machine per router
 * connection: HANDSHAKE -> HELLO (certificate checked, waiting for
 * CTL_HELLO) -> OPEN (map sent, deltas flow) -> CLOSING. One sweep timer
 * drops connections that stayed silent too long. */
#include "controller/control.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/baseline.h"
#include "controller/circuits.h"
#include "controller/events.h"
#include "controller/netmap.h"
#include "controller/usage.h"
#include "proto/addr.h"
#include "proto/frame.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "weft/errors.h"

#define LISTEN_BACKLOG 128
#define MAX_CONNS 4096

enum cstate { CS_HANDSHAKE = 1, CS_HELLO, CS_OPEN, CS_CLOSING };

typedef struct cconn {
    ctl_control *srv;
    pr_conn *conn;
    pr_reader rd;
    enum cstate state;
    uint64_t last_rx;
    char router_id[PR_ID_MAX + 1];
    /* Bytes waiting for the TLS queue to drain: a map larger than the queue
     * goes out as the router reads it, and later deltas wait behind it. */
    uint8_t *bl;
    size_t bl_len, bl_off, bl_cap;
    struct cconn *prev, *next;
} cconn;

struct ctl_control {
    ctl *c;
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t sweep;
    pr_tls_ctx *tls;
    cconn *conns;
    unsigned nconns, nopen;
    ctl_usage *usage; /* identities' usage across routers (usage.h) */
    int handles; /* open uv handles of the server itself */
    unsigned dead_ms;
    int stopping;
    void (*stop_cb)(void *arg);
    void *stop_arg;
    uint8_t tx[PR_FRAME_MAX];
};

static void on_open(pr_conn *pc, int status);
static void on_read(pr_conn *pc, const uint8_t *data, size_t len);
static void on_drain(pr_conn *pc);
static void on_close(pr_conn *pc, int status);
static const pr_conn_cbs cbs = {on_open, on_read, on_drain, on_close};

static void change_state(cconn *k, enum cstate s)
{
    static const char *const names[] = {"?", "handshake", "hello", "open", "closing"};

    if (k->state != s)
        pr_debug("control_state", "peer=%s router=%s from=%s to=%s",
                 pr_conn_peer_addr(k->conn), k->router_id[0] ? k->router_id : "-",
                 names[k->state], names[s]);
    if (k->state == CS_OPEN && s != CS_OPEN)
        k->srv->nopen--;
    if (s == CS_OPEN && k->state != CS_OPEN)
        k->srv->nopen++;
    k->state = s;
}

static void drop(cconn *k, int status)
{
    if (k->state == CS_CLOSING)
        return;
    change_state(k, CS_CLOSING);
    pr_conn_close(k->conn, status);
}

static void maybe_done(ctl_control *s)
{
    if (!s->stopping || s->handles > 0 || s->conns != NULL)
        return;
    pr_tls_ctx_free(s->tls);
    ctl_usage_free(s->usage);
    if (s->stop_cb)
        s->stop_cb(s->stop_arg);
    free(s);
}

/* ---- sending ---- */

/* Writes what the TLS queue takes now; keeps the rest in the backlog. */
static int flush(cconn *k)
{
    int rc;

    while (k->bl_off < k->bl_len && pr_conn_queued(k->conn) < PR_TLS_HIGH_WATER) {
        size_t n = k->bl_len - k->bl_off;
        if (n > CTL_MAP_PART_MAX)
            n = CTL_MAP_PART_MAX;
        if ((rc = pr_conn_write(k->conn, k->bl + k->bl_off, n)) < 0)
            return rc;
        k->bl_off += n;
    }
    if (k->bl_off == k->bl_len) {
        k->bl_off = k->bl_len = 0;
        if (k->bl_cap > CTL_BACKLOG_KEEP) {
            free(k->bl);
            k->bl = NULL;
            k->bl_cap = 0;
        }
    }
    return 0;
}

static int backlog_add(cconn *k, const uint8_t *data, size_t len)
{
    size_t need = k->bl_len + len, cap = k->bl_cap ? k->bl_cap : 65536;
    uint8_t *nb;

    if (need > CTL_BACKLOG_MAX)
        return WEFT_ENOBUFS;
    while (cap < need)
        cap *= 2;
    if (cap != k->bl_cap) {
        if ((nb = realloc(k->bl, cap)) == NULL)
            return WEFT_ENOMEM;
        k->bl = nb;
        k->bl_cap = cap;
    }
    memcpy(k->bl + k->bl_len, data, len);
    k->bl_len = need;
    return 0;
}

static int out_bytes(void *arg, const uint8_t *frame, size_t len)
{
    cconn *k = arg;

    if (k->bl_off == k->bl_len && pr_conn_queued(k->conn) < PR_TLS_HIGH_WATER)
        return pr_conn_write(k->conn, frame, len);
    return backlog_add(k, frame, len);
}

static void write_failed(cconn *k, uint16_t type, size_t len, int rc)
{
    /* A router that does not read its map falls behind for good: let it reconnect. */
    pr_warn("control_write_failed", "router=%s type=0x%04x bytes=%zu err=%s hint=%s",
            k->router_id, type, len, weft_err_name(rc),
            pr_log_q("the router will reconnect for a full map"));
    drop(k, rc);
}

static int send_frame(cconn *k, uint16_t type, const char *body, size_t len)
{
    ctl_control *s = k->srv;
    size_t n;
    pr_enc e;
    int rc;

    pr_enc_init(&e, s->tx, sizeof(s->tx), type, 0);
    if ((rc = pr_enc_finish(&e, body, len, &n)) < 0 || (rc = out_bytes(k, s->tx, n)) < 0)
        write_failed(k, type, len, rc);
    return rc;
}

/* A map or delta, in parts when it does not fit in one frame. */
static int send_map(cconn *k, uint16_t type, const char *json, size_t len)
{
    int rc = ctl_map_frames(type, ctl_netmap_version(k->srv->c->map), json, len, k->srv->tx,
                            sizeof(k->srv->tx), out_bytes, k);

    if (rc < 0)
        write_failed(k, type, len, rc);
    return rc;
}

int ctl_map_frames(uint16_t type, uint64_t version, const char *json, size_t len, uint8_t *buf,
                   size_t cap, ctl_frame_out out, void *arg)
{
    size_t off = 0, part, n;
    pr_enc e;
    int rc;

    if (len <= CTL_MAP_PART_MAX) {
        /* The one-frame form every router reads: no part header. */
        pr_enc_init(&e, buf, cap, type, 0);
        if ((rc = pr_enc_finish(&e, json, len, &n)) < 0)
            return rc;
        return out(arg, buf, n);
    }
    while (off < len) {
        part = len - off > CTL_MAP_PART_MAX ? CTL_MAP_PART_MAX : len - off;
        pr_enc_init(&e, buf, cap, type, off + part < len ? CTL_MAP_F_MORE : 0);
        pr_enc_u64(&e, PR_H_MAP_VERSION, version);
        if ((rc = pr_enc_finish(&e, json + off, part, &n)) < 0 || (rc = out(arg, buf, n)) < 0)
            return rc;
        off += part;
    }
    return 0;
}

static void on_delta(void *arg, const char *json, size_t len)
{
    ctl_control *s = arg;

    for (cconn *k = s->conns; k; k = k->next)
        if (k->state == CS_OPEN)
            send_map(k, PR_CTL_MAP_DELTA, json, len);
}

static void on_drain(pr_conn *pc)
{
    cconn *k = pr_conn_data(pc);
    int rc;

    if (k->state == CS_OPEN && (rc = flush(k)) < 0)
        write_failed(k, PR_CTL_MAP_FULL, k->bl_len - k->bl_off, rc);
}

/* ---- admission ---- */

/* Only enrolled routers of this network; says why not in *why. */
static int admit(cconn *k, const char **why)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    const char *uri = pr_conn_peer_uri(k->conn);
    ctl *c = k->srv->c;
    json_t *rec = NULL;
    int kind, ok = 0;

    if (uri == NULL)
        *why = "no certificate URI";
    else if (pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0)
        *why = "certificate URI is not a weft identity";
    else if (strcmp(td, c->cfg.name) != 0)
        *why = "certificate is of another network";
    else if (kind != PR_IDENT_ROUTER)
        *why = "certificate is not a router's";
    else if (ctl_store_get(c->store, "routers", id, &rec) < 0 ||
             strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) != 0)
        *why = "no such router (deleted?)";
    else if (!json_is_true(json_object_get(rec, "enrolled")))
        *why = "router is not enrolled";
    else
        ok = 1;
    if (ok)
        snprintf(k->router_id, sizeof(k->router_id), "%s", id);
    json_decref(rec);
    return ok;
}

static void on_open(pr_conn *pc, int status)
{
    cconn *k = pr_conn_data(pc);
    const char *why = "";

    if (status < 0)
        return; /* proto/tls logged the handshake failure; on_close follows */
    if (!admit(k, &why)) {
        pr_warn("control_refused", "peer=%s uri=%s reason=%s hint=%s", pr_conn_peer_addr(pc),
                pr_log_q(pr_conn_peer_uri(pc) ?: "-"), pr_log_q(why),
                pr_log_q("only enrolled routers may use the control channel"));
        drop(k, WEFT_EDENIED);
        return;
    }
    k->last_rx = uv_now(k->srv->loop);
    change_state(k, CS_HELLO);
}

/* ---- messages ---- */

static json_t *body_json(const pr_frame *f)
{
    json_t *j = json_loadb((const char *)f->body, f->body_len, JSON_REJECT_DUPLICATES, NULL);

    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* The router reports where it listens; the store keeps what it last said. */
static void record_listen(cconn *k, json_t *hello)
{
    ctl *c = k->srv->c;
    json_t *rec = NULL, *fields = json_object();
    static const char *const keys[] = {"edge_listen", "link_listen"};

    if (fields == NULL || ctl_store_get(c->store, "routers", k->router_id, &rec) < 0)
        goto out;
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(hello, keys[i]);
        if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 256 &&
            !json_equal(v, json_object_get(rec, keys[i])))
            json_object_set(fields, keys[i], v);
    }
    if (json_object_size(fields) > 0 &&
        ctl_store_update(c->store, "routers", k->router_id, fields) < 0)
        pr_warn("router_listen_not_saved", "router=%s hint=%s", k->router_id,
                pr_log_q("check disk space; the map keeps the enrolled addresses"));
out:
    json_decref(rec);
    json_decref(fields);
}

/* A router connecting again replaces its older connection. */
static void replace_older(cconn *k)
{
    for (cconn *o = k->srv->conns; o; o = o->next)
        if (o != k && o->state == CS_OPEN && strcmp(o->router_id, k->router_id) == 0) {
            pr_info("control_replaced", "router=%s old_peer=%s", k->router_id,
                    pr_conn_peer_addr(o->conn));
            drop(o, WEFT_ECONFLICT);
        }
}

static int handle_hello(cconn *k, const pr_frame *f)
{
    ctl_control *s = k->srv;
    json_t *h = body_json(f);
    const char *id = json_string_value(json_object_get(h, "id"));
    char *full = NULL;
    size_t len;
    int rc = WEFT_EPROTO;

    if (h == NULL || id == NULL || strcmp(id, k->router_id) != 0) {
        pr_warn("control_refused", "router=%s reason=%s hint=%s", k->router_id,
                pr_log_q(h ? "hello names another router" : "hello is not a JSON object"),
                pr_log_q("upgrade the router"));
        goto out;
    }
    record_listen(k, h);
    /* Others learn that it is online from a delta; it learns from its full map. */
    replace_older(k);
    ctl_netmap_router_online(s->c->map, k->router_id, 1);
    ctl_usage_router_open(s->usage, k->router_id);
    change_state(k, CS_OPEN);
    if ((rc = ctl_netmap_full(s->c->map, &full, &len)) < 0 ||
        (rc = send_map(k, PR_CTL_MAP_FULL, full, len)) < 0)
        goto out;
    pr_info("router_online", "router=%s peer=%s version=%s map_version=%llu", k->router_id,
            pr_conn_peer_addr(k->conn), pr_log_q(json_string_value(json_object_get(h, "version")) ?: "-"),
            (unsigned long long)ctl_netmap_version(s->c->map));
out:
    free(full);
    json_decref(h);
    return rc;
}

static void handle_term(cconn *k, const pr_frame *f)
{
    int add = f->type == PR_CTL_TERM_ADD, rc;
    json_t *t = body_json(f);

    if (t == NULL) {
        rc = WEFT_EJSON;
    } else if (add) {
        /* A router speaks for its own terminators only. */
        json_object_set_new(t, "router", json_string(k->router_id));
        rc = ctl_netmap_term_put(k->srv->c->map, k, t);
    } else {
        rc = ctl_netmap_term_del(k->srv->c->map, k,
                                 json_string_value(json_object_get(t, "id")));
    }
    if (rc < 0)
        pr_warn("terminator_rejected", "router=%s op=%s err=%s hint=%s", k->router_id,
                add ? "add" : "remove", weft_err_name(rc),
                pr_log_q("the router reported a terminator for an unknown service or id"));
    else
        pr_debug("terminator", "router=%s op=%s id=%s", k->router_id, add ? "add" : "remove",
                 pr_log_q(json_string_value(json_object_get(t, "id")) ?: "-"));
    json_decref(t);
}

static void handle_links(cconn *k, const pr_frame *f)
{
    json_t *r = body_json(f);
    int rc = r ? ctl_netmap_link_report(k->srv->c->map, k->router_id, r) : WEFT_EJSON;

    if (rc < 0)
        pr_warn("link_report_rejected", "router=%s err=%s hint=%s", k->router_id,
                weft_err_name(rc),
                pr_log_q("the report must be {\"links\":[{\"peer\",\"rtt_us\",\"up\",\"queue\"}]}"));
    json_decref(r);
}

static void handle_circuit(cconn *k, const pr_frame *f)
{
    json_t *ev = body_json(f);
    ctl_circuits *v = k->srv->c->circuits;
    int rc = ev ? ctl_circuits_event(v, k->router_id, ev, (int64_t)time(NULL)) : WEFT_EJSON;

    if (rc < 0 && v != NULL)
        pr_warn("circuit_event_rejected", "router=%s err=%s hint=%s", k->router_id,
                weft_err_name(rc), pr_log_q("see docs/dataplane.md \"Circuit events\""));
    else if (rc == 0)
        pr_debug("circuit_event", "router=%s event=%s circuit=%s", k->router_id,
                 pr_log_q(json_string_value(json_object_get(ev, "event"))),
                 pr_log_q(json_string_value(json_object_get(ev, "circuit"))));
    json_decref(ev);
}

/* ---- identities' roles (CTL_ROLES, docs/policies.md "Router policies") ---- */

#define ROLES_ASK_MAX 1024      /* ids one CTL_ROLES_ASK may name */
#define ROLES_FRAME_BYTES 49152 /* a CTL_ROLES body goes out before it passes this */

static json_t *roles_body(void)
{
    return json_pack("{s:I, s:o}", "at", (json_int_t)time(NULL), "roles", json_object());
}

/* Puts id's roles from the store into body; about the bytes they add (0:
 * no such identity, a deleted one is in the map's revocations). */
static size_t roles_add(ctl *c, json_t *body, const char *id)
{
    json_t *rec = NULL, *roles, *v;
    size_t i, n = 0;

    if (ctl_store_get(c->store, "identities", id, &rec) < 0)
        return 0;
    roles = json_object_get(rec, "roles");
    if (json_is_array(roles) && json_object_set(json_object_get(body, "roles"), id, roles) == 0) {
        n = strlen(id) + 8;
        json_array_foreach(roles, i, v)
            n += json_string_length(v) + 3;
    }
    json_decref(rec);
    return n;
}

/* Sends body (CTL_ROLES) to k, or to every open router when k is NULL. */
static unsigned send_roles(ctl_control *s, cconn *k, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    unsigned n = 0;

    for (cconn *o = k ? k : s->conns; text && o; o = k ? NULL : o->next)
        if (o->state == CS_OPEN && send_frame(o, PR_CTL_ROLES, text, strlen(text)) == 0)
            n++;
    free(text);
    return n;
}

static void handle_roles_ask(cconn *k, const pr_frame *f)
{
    json_t *ask = body_json(f), *ids = json_object_get(ask, "identities"), *v, *body = NULL;
    size_t i, bytes = 0;

    if (!json_is_array(ids) || json_array_size(ids) > ROLES_ASK_MAX) {
        pr_warn("roles_ask_rejected", "router=%s hint=%s", k->router_id,
                pr_log_q("CTL_ROLES_ASK must be {\"identities\": [...]}, at most 1024 ids"));
        goto out;
    }
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        if (id == NULL || strlen(id) > PR_ID_MAX || (body == NULL && (body = roles_body()) == NULL))
            continue;
        if ((bytes += roles_add(k->srv->c, body, id)) > ROLES_FRAME_BYTES) {
            send_roles(k->srv, k, body);
            json_decref(body);
            body = NULL;
            bytes = 0;
        }
    }
    if (bytes > 0)
        send_roles(k->srv, k, body);
    pr_debug("roles_answered", "router=%s identities=%zu", k->router_id, json_array_size(ids));
out:
    json_decref(body);
    json_decref(ask);
}

void ctl_control_roles_changed(ctl_control *s, const char *identity_id)
{
    json_t *body;

    if (s == NULL || identity_id == NULL || (body = roles_body()) == NULL)
        return;
    if (roles_add(s->c, body, identity_id) > 0)
        pr_info("roles_pushed", "identity=%s routers=%u", identity_id, send_roles(s, NULL, body));
    json_decref(body);
}

/* ---- limits across routers (CTL_USAGE, docs/policies.md) ---- */

static cconn *open_conn(ctl_control *s, const char *router_id)
{
    for (cconn *o = s->conns; o; o = o->next)
        if (o->state == CS_OPEN && strcmp(o->router_id, router_id) == 0)
            return o;
    return NULL;
}

static int usage_out(void *arg, const char *router_id, const char *text)
{
    cconn *k = open_conn(arg, router_id);

    return k ? send_frame(k, PR_CTL_USAGE_NET, text, strlen(text)) : WEFT_ECLOSED;
}

/* The sums changed: every router concerned is told at once. */
static void usage_flush(ctl_control *s)
{
    size_t n = ctl_usage_flush(s->usage, usage_out, s);

    if (n)
        pr_debug("usage_pushed", "entries=%zu", n);
}

static void handle_usage(cconn *k, const pr_frame *f)
{
    if (ctl_usage_ingest(k->srv->usage, k->router_id, f->body, f->body_len) == 0)
        usage_flush(k->srv);
}

/* Security events (docs/policies.md "Events"): acknowledged once stored, or
 * stored before, or never storable (malformed), so that the router keeps an
 * event only while the store could not take it. */
static void handle_event(cconn *k, const pr_frame *f)
{
    char eid[CTL_EVENT_ID_CAP], ack[CTL_EVENT_ID_CAP + 16];
    int rc =
        ctl_events_from_router(k->srv->c, k->router_id, f->body, f->body_len, eid, sizeof(eid));

    if (rc < 0)
        pr_warn("event_rejected", "router=%s eid=%s err=%s", k->router_id, eid[0] ? eid : "-",
                weft_err_name(rc));
    if (eid[0] == '\0' || rc == WEFT_ESTORE || rc == WEFT_ENOMEM)
        return;
    snprintf(ack, sizeof(ack), "{\"eid\":\"%s\"}", eid);
    send_frame(k, PR_CTL_EVENT_ACK, ack, strlen(ack));
}

unsigned ctl_control_baseline_reset(ctl_control *s, const char *identity_id)
{
    json_t *body = identity_id ? json_pack("{s:[s]}", "identities", identity_id) : NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    unsigned n = 0;

    for (cconn *k = s && text ? s->conns : NULL; k; k = k->next)
        if (k->state == CS_OPEN && send_frame(k, PR_CTL_BASELINE_RESET, text, strlen(text)) == 0)
            n++;
    free(text);
    json_decref(body);
    return n;
}

/* Anomaly baselines (docs/policies.md): acknowledged once stored, so that the
 * router keeps a batch until then and sends it again after a reconnect. */
static void handle_baseline(cconn *k, const pr_frame *f)
{
    char *ack = NULL;

    ctl_baseline_ingest(k->srv->c, k->router_id, f->body, f->body_len, &ack);
    if (ack)
        send_frame(k, PR_CTL_BASELINE_ACK, ack, strlen(ack));
    free(ack);
}

static int on_frame(void *arg, const pr_frame *f)
{
    cconn *k = arg;

    if (k->state == CS_CLOSING)
        return WEFT_ECLOSED;
    k->last_rx = uv_now(k->srv->loop);
    if (k->state == CS_HELLO)
        return f->type == PR_CTL_HELLO ? handle_hello(k, f) : WEFT_EPROTO;
    switch (f->type) {
    case PR_CTL_TERM_ADD:
    case PR_CTL_TERM_REMOVE:
        handle_term(k, f);
        return 0;
    case PR_CTL_LINK_REPORT:
        handle_links(k, f);
        return 0;
    case PR_CTL_CIRCUIT_EVENT:
        handle_circuit(k, f);
        return 0;
    case PR_CTL_EVENT:
        handle_event(k, f);
        return 0;
    case PR_CTL_BASELINE:
        handle_baseline(k, f);
        return 0;
    case PR_CTL_USAGE:
        handle_usage(k, f);
        return 0;
    case PR_CTL_PING:
        send_frame(k, PR_CTL_PONG, "{}", 2);
        return 0;
    case PR_CTL_ROLES_ASK:
        handle_roles_ask(k, f);
        return 0;
    default:
        return 0; /* PONG, and messages of newer routers */
    }
}

static void on_read(pr_conn *pc, const uint8_t *data, size_t len)
{
    cconn *k = pr_conn_data(pc);
    int rc;

    if (k->state != CS_HELLO && k->state != CS_OPEN)
        return;
    if ((rc = pr_reader_feed(&k->rd, data, len, on_frame, k)) < 0 && k->state != CS_CLOSING) {
        pr_warn("control_protocol_error", "router=%s err=%s hint=%s",
                k->router_id[0] ? k->router_id : "-", weft_err_name(rc),
                pr_log_q("the router sent something out of order; it will reconnect"));
        drop(k, rc);
    }
}

static int router_still_open(ctl_control *s, const char *id)
{
    return open_conn(s, id) != NULL;
}

static void on_close(pr_conn *pc, int status)
{
    cconn *k = pr_conn_data(pc);
    ctl_control *s = k->srv;
    int was_open = k->state == CS_OPEN || (k->state == CS_CLOSING && k->router_id[0]);

    change_state(k, CS_CLOSING);
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    s->nconns--;
    if (was_open && s->c->map) {
        ctl_netmap_terms_drop(s->c->map, k);
        if (!router_still_open(s, k->router_id)) {
            ctl_netmap_router_online(s->c->map, k->router_id, 0);
            pr_info("router_offline", "router=%s status=%s", k->router_id, weft_err_name(status));
            ctl_usage_router_gone(s->usage, k->router_id);
            if (!s->stopping)
                usage_flush(s);
        }
    }
    pr_reader_free(&k->rd);
    free(k->bl);
    free(k);
    maybe_done(s);
}

/* ---- listener and sweep ---- */

static void on_connection(uv_stream_t *server, int status)
{
    ctl_control *s = server->data;
    cconn *k;
    int rc;

    if (status < 0 || s->stopping)
        return;
    if (s->nconns >= MAX_CONNS || (k = calloc(1, sizeof(*k))) == NULL) {
        pr_warn("control_accept_refused", "conns=%u hint=%s", s->nconns,
                pr_log_q("too many control connections or out of memory"));
        return;
    }
    k->srv = s;
    k->state = CS_HANDSHAKE;
    if (pr_reader_init(&k->rd) < 0 ||
        (rc = pr_conn_accept(s->tls, server, &cbs, k, &k->conn)) < 0) {
        pr_reader_free(&k->rd);
        free(k);
        return;
    }
    k->last_rx = uv_now(s->loop);
    k->next = s->conns;
    if (s->conns)
        s->conns->prev = k;
    s->conns = k;
    s->nconns++;
}

static void sweep_cb(uv_timer_t *t)
{
    ctl_control *s = t->data;
    uint64_t now = uv_now(s->loop);

    for (cconn *k = s->conns; k; k = k->next) {
        if ((k->state == CS_HELLO || k->state == CS_OPEN) &&
            now - k->last_rx > s->dead_ms) {
            pr_warn("router_silent", "router=%s peer=%s hint=%s",
                    k->router_id[0] ? k->router_id : "-", pr_conn_peer_addr(k->conn),
                    pr_log_q("nothing heard within the heartbeat limit; dropped, the router "
                             "will reconnect"));
            drop(k, WEFT_ETIMEDOUT);
        }
    }
    ctl_usage_sweep(s->usage, now, (int64_t)time(NULL) / 86400);
}

static void on_handle_closed(uv_handle_t *h)
{
    ctl_control *s = h->data;

    s->handles--;
    maybe_done(s);
}

static int make_tls(ctl *c, pr_tls_ctx **out)
{
    char *cert = NULL, *key = NULL, err[512];
    int rc;

    if ((rc = ctl_read_pem(c->cfg.server_cert, &cert, err, sizeof(err))) < 0 ||
        (rc = ctl_read_pem(c->cfg.server_key, &key, err, sizeof(err))) < 0) {
        pr_error("control_tls_failed", "reason=%s", pr_log_q(err));
        goto out;
    }
    pr_tls_cfg tc = {.server = 1, .ca_pem = c->ca.cert_pem, .cert_pem = cert, .key_pem = key,
                     .require_peer_cert = 1};
    rc = pr_tls_ctx_new(&tc, out);
out:
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    free(cert);
    return rc;
}

static int listen_on(ctl_control *s, const char *addr)
{
    struct sockaddr_storage ss;
    int rc;

    if ((rc = pr_addr_resolve(addr, &ss)) < 0)
        return rc;
    if ((rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&ss, 0)) == 0)
        rc = uv_listen((uv_stream_t *)&s->tcp, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        pr_error("control_listen_failed", "addr=%s err=%s hint=%s", pr_log_q(addr),
                 uv_err_name(rc), pr_log_q("is another controller using the port?"));
        return WEFT_EIO;
    }
    pr_info("control_listening", "addr=%s port=%d", pr_log_q(addr), ctl_control_port(s));
    return 0;
}

int ctl_control_start(uv_loop_t *loop, ctl *c, const char *addr, ctl_control **out)
{
    ctl_control *s;
    int rc;

    *out = NULL;
    if (c->map == NULL)
        return WEFT_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return WEFT_ENOMEM;
    if (ctl_usage_new(&s->usage) < 0) {
        free(s);
        return WEFT_ENOMEM;
    }
    s->c = c;
    s->loop = loop;
    s->dead_ms = CTL_CONTROL_DEAD_MS;
    if ((rc = make_tls(c, &s->tls)) < 0) {
        ctl_usage_free(s->usage);
        free(s);
        return rc;
    }
    uv_tcp_init(loop, &s->tcp);
    uv_timer_init(loop, &s->sweep);
    s->tcp.data = s->sweep.data = s;
    s->handles = 2;
    if ((rc = listen_on(s, addr)) < 0) {
        ctl_control_stop(s, NULL, NULL); /* freed once the loop runs the close callbacks */
        return rc;
    }
    uv_timer_start(&s->sweep, sweep_cb, CTL_CONTROL_SWEEP_MS, CTL_CONTROL_SWEEP_MS);
    ctl_netmap_set_delta_cb(c->map, on_delta, s);
    c->control = s; /* the API pushes identities' roles through it */
    *out = s;
    return 0;
}

int ctl_control_port(const ctl_control *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (!s || uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

void ctl_control_set_dead_ms(ctl_control *s, unsigned dead_ms)
{
    unsigned sweep = dead_ms / 4 < CTL_CONTROL_SWEEP_MS ? dead_ms / 4 : CTL_CONTROL_SWEEP_MS;

    s->dead_ms = dead_ms;
    uv_timer_start(&s->sweep, sweep_cb, sweep ? sweep : 1, sweep ? sweep : 1);
}

unsigned ctl_control_count(const ctl_control *s)
{
    return s ? s->nopen : 0;
}

void ctl_control_stop(ctl_control *s, void (*cb)(void *arg), void *arg)
{
    if (s == NULL || s->stopping)
        return;
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_arg = arg;
    if (s->c->control == s)
        s->c->control = NULL;
    if (s->c->map)
        ctl_netmap_set_delta_cb(s->c->map, NULL, NULL);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
    for (cconn *k = s->conns; k; k = k->next)
        drop(k, WEFT_ECANCELED);
}
