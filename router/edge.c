/* Edge sessions: TLS 1.3 with identity certificates, EDGE_HELLO, bind, dial,
 * the relay of dial answers and closes, and byte-for-byte forwarding of
 * payload and acknowledgement frames through the circuit table. Anything
 * malformed from an edge closes that session, never the router. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/e2e.h"
#include "proto/ident.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/admit.h"
#include "router/enforce.h"
#include "router/grants.h"
#include "router/router.h"
#include "router/token.h"
#include "weft/errors.h"

#define STOP WEFT_ECANCELED /* a frame handler closed the session: stop feeding */

static void sess_on_open(pr_conn *c, int status);
static void sess_on_read(pr_conn *c, const uint8_t *data, size_t len);
static void sess_on_drain(pr_conn *c);
static void sess_on_close(pr_conn *c, int status);

static const pr_conn_cbs sess_cbs = {sess_on_open, sess_on_read, sess_on_drain, sess_on_close};

/* ---- sending ---- */

static void enc_start(rt_router *r, pr_enc *e, uint16_t type)
{
    pr_enc_init(e, r->txbuf, PR_FRAME_MAX, type, 0);
}

static int enc_send(rt_sess *s, pr_enc *e)
{
    size_t n;
    int rc;

    if ((rc = pr_enc_finish(e, NULL, 0, &n)) < 0)
        return rc;
    return rt_sess_send(s, s->r->txbuf, n);
}

int rt_sess_send(rt_sess *s, const uint8_t *buf, size_t len)
{
    if (s->state == RT_SESS_CLOSING)
        return WEFT_ECLOSED;
    return s->conn ? pr_conn_write(s->conn, buf, len) : 0;
}

static void send_error(rt_sess *s, uint16_t type, uint32_t req_id, uint64_t circuit, int err,
                       const char *msg)
{
    pr_enc e;

    enc_start(s->r, &e, type);
    if (req_id)
        pr_enc_u32(&e, PR_H_REQ_ID, req_id);
    if (circuit)
        pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    if (msg)
        pr_enc_str(&e, PR_H_ERR_MSG, msg);
    enc_send(s, &e);
}

void rt_sess_unbound(rt_sess *s, const rt_term *t, int err, const char *msg)
{
    pr_enc e;

    enc_start(s->r, &e, PR_EDGE_UNBIND);
    pr_enc_str(&e, PR_H_SERVICE, t->service);
    pr_enc_str(&e, PR_H_TERMINATOR, t->id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    pr_enc_str(&e, PR_H_ERR_MSG, msg);
    enc_send(s, &e);
}

void rt_sess_closed_circuit(rt_sess *s, uint64_t id)
{
    s->recent[s->recent_pos++ % RT_RECENT_CLOSED] = id;
}

static int recently_closed(const rt_sess *s, uint64_t id)
{
    for (unsigned i = 0; i < RT_RECENT_CLOSED; i++)
        if (s->recent[i] == id)
            return 1;
    return 0;
}

/* ---- session lifecycle ---- */

static void drop_terms(rt_sess *s)
{
    rt_term **p = &s->r->terms;

    while (*p) {
        rt_term *t = *p;
        if (t->sess != s) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        pr_info("unbind", "terminator=%s service=%s identity=%s", t->id, pr_log_q(t->service),
                s->identity);
        rt_control_term_remove(s->r, t);
        free(t);
    }
}

/* Circuits go first, so the far ends hear of it at once, not after the close handshake. */
static void sess_drop(rt_sess *s)
{
    s->state = RT_SESS_CLOSING;
    while (s->ends.head) {
        rt_end *e = s->ends.head;
        rt_circuit_end(s->r, e->circ, e == &e->circ->end[0] ? 0 : 1, WEFT_ECLOSED,
                       "the far edge's session closed");
    }
    drop_terms(s);
}

void rt_sess_kill(rt_sess *s, int err, const char *msg)
{
    if (s->state == RT_SESS_CLOSING)
        return;
    if (msg)
        send_error(s, PR_EDGE_ERROR, 0, 0, err, msg);
    sess_drop(s);
    if (s->conn)
        pr_conn_close(s->conn, err);
    rt_resume_paused(s->r);
}

static void sess_link(rt_router *r, rt_sess *s)
{
    s->next = r->sessions;
    if (r->sessions)
        r->sessions->prev = s;
    r->sessions = s;
}

static void sess_unlink(rt_sess *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->r->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

void rt_edge_on_connection(uv_stream_t *server, int status)
{
    rt_router *r = server->data;
    rt_sess *s;

    if (status < 0 || (s = calloc(1, sizeof(*s))) == NULL)
        return;
    s->r = r;
    s->state = RT_SESS_HELLO;
    s->num = ++r->next_sess;
    if (pr_reader_init(&s->rd) < 0 ||
        pr_conn_accept(r->edge_ctx, server, &sess_cbs, s, &s->conn) < 0) {
        pr_reader_free(&s->rd);
        free(s);
        return;
    }
    sess_link(r, s);
}

static int peer_identity(rt_sess *s, char *why, size_t cap)
{
    const char *uri = pr_conn_peer_uri(s->conn);
    char td[PR_TRUST_DOMAIN_MAX + 1];
    int kind;

    if (uri == NULL ||
        pr_ident_parse(uri, &kind, td, sizeof(td), s->identity, sizeof(s->identity)) < 0) {
        snprintf(why, cap, "certificate has no weft identity URI; enrol with weft-edge enroll");
        return WEFT_ECERT;
    }
    if (kind != PR_IDENT_IDENTITY || strcmp(td, s->r->id->network) != 0) {
        snprintf(why, cap, "certificate is not an identity of network %s", s->r->id->network);
        return WEFT_EDENIED;
    }
    if (rt_map_is_revoked(&s->r->map, s->identity)) {
        snprintf(why, cap, "identity revoked; ask the administrator");
        return WEFT_EDISABLED;
    }
    return rt_rpolicy_check(s, why, cap); /* by id; roles come from the controller or a token */
}

static void sess_on_open(pr_conn *c, int status)
{
    rt_sess *s = pr_conn_data(c);
    char why[320];
    int rc;

    if (status < 0) {
        pr_debug("handshake_failed", "peer=%s err=%s", pr_conn_peer_addr(c), weft_err_name(status));
        return;
    }
    if ((rc = peer_identity(s, why, sizeof(why))) < 0) {
        pr_warn("session_refused", "peer=%s identity=%s err=%s reason=%s", pr_conn_peer_addr(c),
                s->identity[0] ? s->identity : "-", weft_err_name(rc), pr_log_q(why));
        rt_sess_kill(s, rc, why);
        return;
    }
    pr_info("session_open", "sess=%llu identity=%s peer=%s", (unsigned long long)s->num,
            s->identity, pr_conn_peer_addr(c));
    rt_rpolicy_ask(s->r, s); /* the roles now, not those of its next token */
}

static void sess_on_drain(pr_conn *c)
{
    rt_sess *s = pr_conn_data(c);
    rt_resume_paused(s->r);
}

static void sess_on_close(pr_conn *c, int status)
{
    rt_sess *s = pr_conn_data(c);
    rt_router *r = s->r;

    if (s->state != RT_SESS_CLOSING)
        sess_drop(s);
    if (s->identity[0])
        pr_info("session_close", "sess=%llu identity=%s status=%s", (unsigned long long)s->num,
                s->identity, status ? weft_err_name(status) : "ok");
    sess_unlink(s);
    pr_reader_free(&s->rd);
    free(s);
    rt_resume_paused(r);
}

int rt_sess_detached(rt_router *r, const char *identity, rt_sess **out)
{
    rt_sess *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return WEFT_ENOMEM;
    if (pr_reader_init(&s->rd) < 0) {
        free(s);
        return WEFT_ENOMEM;
    }
    s->r = r;
    s->state = RT_SESS_HELLO;
    s->num = ++r->next_sess;
    snprintf(s->identity, sizeof(s->identity), "%s", identity);
    sess_link(r, s);
    *out = s;
    return 0;
}

void rt_sess_detached_free(rt_sess *s)
{
    if (s->state != RT_SESS_CLOSING)
        sess_drop(s);
    sess_unlink(s);
    pr_reader_free(&s->rd);
    free(s);
}

/* ---- frame handlers ---- */

static int handle_hello(rt_sess *s, const pr_frame *f)
{
    char imei[65] = "", iccid[65] = "";
    pr_enc e;

    if (s->state != RT_SESS_HELLO)
        return WEFT_EPROTO;
    if (rt_admit_hello(s) != 0) /* over the new-session rate: refused with a retry hint */
        return 0;
    if (pr_frame_str(f, PR_H_HW_IMEI, imei, sizeof(imei)) == WEFT_EPROTO ||
        pr_frame_str(f, PR_H_HW_ICCID, iccid, sizeof(iccid)) == WEFT_EPROTO)
        return WEFT_EPROTO;
    snprintf(s->imei, sizeof(s->imei), "%s", imei); /* the device binding (enforce.c) */
    snprintf(s->iccid, sizeof(s->iccid), "%s", iccid);
    s->state = RT_SESS_OPEN;
    enc_start(s->r, &e, PR_EDGE_HELLO_OK);
    pr_enc_str(&e, PR_H_VERSION, RT_VERSION);
    pr_enc_u32(&e, PR_H_EDGE_CAPS, PR_CAP_RESUME); /* resume.c */
    pr_debug("hello", "sess=%llu identity=%s", (unsigned long long)s->num, s->identity);
    enc_send(s, &e); /* a failed write closes the connection; on_close cleans up */
    return 0;
}

/* Request fields shared by bind and dial; a missing one is refused, not fatal. */
typedef struct {
    uint32_t req;
    char token[PR_JWT_MAX + 1];
    char service[RT_NAME_CAP];
} req_common;

/* The token tells the identity's roles: router policies are checked with
 * them, and a session the map does not allow here ends (grants.h). */
static int router_policy(rt_sess *s, uint32_t req, const rt_token_info *info)
{
    char why[320];

    if (info->roles_known && (!s->roles_known || info->iat > s->roles_at)) {
        memcpy(s->roles, info->roles, sizeof(s->roles));
        s->roles_known = 1;
        s->roles_at = info->iat; /* a controller's push of the same second wins */
    }
    if (rt_rpolicy_check(s, why, sizeof(why)) == 0)
        return 0;
    pr_warn("session_router_policy", "sess=%llu identity=%s reason=%s", (unsigned long long)s->num,
            s->identity, pr_log_q(why));
    send_error(s, PR_EDGE_ERROR, req, 0, WEFT_EDENIED, why);
    rt_sess_kill(s, WEFT_EDENIED, why);
    return WEFT_EDENIED;
}

static int read_common(rt_sess *s, const pr_frame *f, const char *act, req_common *q,
                       rt_token_info *info)
{
    char err[256];
    int rc;

    if (pr_frame_u32(f, PR_H_REQ_ID, &q->req) < 0 || q->req == 0)
        return WEFT_EPROTO;
    if (pr_frame_str(f, PR_H_SERVICE, q->service, sizeof(q->service)) < 0 ||
        pr_frame_str(f, PR_H_TOKEN, q->token, sizeof(q->token)) < 0) {
        send_error(s, PR_EDGE_ERROR, q->req, 0, WEFT_EINVAL,
                   "request lacks a service name or token");
        return 1;
    }
    rc = rt_token_check(&s->r->map, s->r->id->network, q->token, s->identity, act, q->service,
                        (long long)time(NULL), info, err, sizeof(err));
    sodium_memzero(q->token, sizeof(q->token));
    if (rc < 0) {
        pr_warn("token_refused", "sess=%llu identity=%s service=%s act=%s err=%s reason=%s",
                (unsigned long long)s->num, s->identity, pr_log_q(q->service), act,
                weft_err_name(rc), pr_log_q(err));
        send_error(s, PR_EDGE_ERROR, q->req, 0, rc, err);
        rt_enforce_on_refused(s, act, q->service, rc);
        return 1;
    }
    if (router_policy(s, q->req, info) < 0)
        return 1;
    if (rt_enforce_on_admit(s, act, info->service_name, &info->lim, &info->hw, err, sizeof(err)) <
        0) {
        send_error(s, PR_EDGE_ERROR, q->req, 0, WEFT_EDENIED, err);
        return 1;
    }
    return 0;
}

static int handle_bind(rt_sess *s, const pr_frame *f)
{
    req_common q;
    rt_token_info info;
    rt_term *t;
    pr_enc e;
    int rc = read_common(s, f, "bind", &q, &info);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        send_error(s, PR_EDGE_ERROR, q.req, 0, WEFT_ENOMEM, "router out of memory; retry");
        return 0;
    }
    pr_ident_new_id(t->id, sizeof(t->id));
    snprintf(t->service_id, sizeof(t->service_id), "%s", info.service_id);
    snprintf(t->service, sizeof(t->service), "%s", info.service_name);
    t->token_iat = info.iat;
    t->sess = s;
    t->next = s->r->terms;
    s->r->terms = t;
    rt_control_term_add(s->r, t);
    pr_info("bind", "sess=%llu identity=%s service=%s terminator=%s", (unsigned long long)s->num,
            s->identity, pr_log_q(t->service), t->id);
    enc_start(s->r, &e, PR_EDGE_BIND_OK);
    pr_enc_u32(&e, PR_H_REQ_ID, q.req);
    pr_enc_str(&e, PR_H_TERMINATOR, t->id);
    enc_send(s, &e);
    return 0;
}

static int handle_unbind(rt_sess *s, const pr_frame *f)
{
    char service[RT_NAME_CAP];
    rt_term **p = &s->r->terms;

    if (pr_frame_str(f, PR_H_SERVICE, service, sizeof(service)) < 0)
        return WEFT_EPROTO;
    while (*p) {
        rt_term *t = *p;
        if (t->sess != s || strcmp(t->service, service) != 0) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        pr_info("unbind", "terminator=%s service=%s identity=%s", t->id, pr_log_q(service),
                s->identity);
        rt_control_term_remove(s->r, t);
        free(t);
    }
    return 0;
}

/* A local terminator for the service, chosen at random among equals. */
rt_term *rt_term_by_id(rt_router *r, const char *id)
{
    for (rt_term *t = r->terms; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

rt_term *rt_pick_term(rt_router *r, const char *service_id)
{
    uint32_t n = 0, k;
    rt_term *t;

    for (t = r->terms; t; t = t->next)
        if (strcmp(t->service_id, service_id) == 0 && t->sess->state == RT_SESS_OPEN)
            n++;
    if (n == 0)
        return NULL;
    k = randombytes_uniform(n);
    for (t = r->terms; t; t = t->next)
        if (strcmp(t->service_id, service_id) == 0 && t->sess->state == RT_SESS_OPEN && k-- == 0)
            return t;
    return NULL;
}

int rt_sess_relay_dial(rt_sess *host, rt_circuit *c, const pr_frame *f)
{
    static char cert[PR_FRAME_MAX_HDR_LEN + 1];
    const uint8_t *kx, *sig;
    size_t kx_len, sig_len;
    uint64_t rwnd;
    pr_enc e;

    if (rt_dial_fields(f, cert, sizeof(cert)) < 0)
        return WEFT_EINVAL;
    pr_frame_bytes(f, PR_H_KX_PK, &kx, &kx_len);
    pr_frame_bytes(f, PR_H_KX_SIG, &sig, &sig_len);
    enc_start(host->r, &e, PR_EDGE_DIAL);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_str(&e, PR_H_SERVICE, c->service);
    pr_enc_bytes(&e, PR_H_KX_PK, kx, kx_len);
    pr_enc_bytes(&e, PR_H_KX_SIG, sig, sig_len);
    pr_enc_str(&e, PR_H_PEER_CERT, cert);
    if (pr_frame_u64(f, PR_H_RWND, &rwnd) == 0)
        pr_enc_u64(&e, PR_H_RWND, rwnd);
    /* The dialler's router, for re-homing (docs/dataplane.md "EDGE_RESUME"). */
    pr_enc_str(&e, PR_H_ROUTER_ID, c->ingress[0] ? c->ingress : host->r->id->id);
    return enc_send(host, &e);
}

int rt_dial_fields(const pr_frame *f, char *cert, size_t cap)
{
    const uint8_t *v;
    size_t n;

    if (pr_frame_bytes(f, PR_H_KX_PK, &v, &n) < 0 || n != PR_E2E_KX_BYTES)
        return WEFT_EINVAL;
    if (pr_frame_bytes(f, PR_H_KX_SIG, &v, &n) < 0 || n == 0 || n > PR_E2E_SIG_MAX)
        return WEFT_EINVAL;
    return pr_frame_str(f, PR_H_PEER_CERT, cert, cap) < 0 ? WEFT_EINVAL : 0;
}

static void dial_hosted(rt_sess *s, rt_circuit *c, const rt_map_service *svc, const pr_frame *f)
{
    char err[384];

    snprintf(c->host, sizeof(c->host), "router:%s", s->r->id->id);
    if (rt_hosted_dial(s->r, c, svc, s->identity, f, err, sizeof(err)) < 0) {
        pr_warn("dial_failed", "circuit=%016llx service=%s identity=%s reason=%s",
                (unsigned long long)c->id, pr_log_q(svc->name), s->identity, pr_log_q(err));
        rt_circuit_end(s->r, c, 1, WEFT_EREFUSED, err);
    }
}

/* Where a dial goes: hosted here, a local terminator, or over links. */
typedef struct {
    rt_term *t;
    int hosted, mesh;
    rt_path path;
    char term[RT_ID_CAP];
} dial_route;

static int route_dial(rt_sess *s, uint32_t req, const rt_map_service *svc, dial_route *d)
{
    char msg[384];
    int rc;

    memset(d, 0, sizeof(*d));
    if (rt_router_is_me(s->r, svc->hosted_by))
        return d->hosted = 1;
    if ((d->t = rt_pick_term(s->r, svc->id)) != NULL)
        return 0;
    rc = rt_mesh_route(s->r, svc, &d->path, d->term, sizeof(d->term), msg, sizeof(msg));
    if (rc < 0) {
        pr_warn("dial_refused", "sess=%llu identity=%s service=%s reason=%s",
                (unsigned long long)s->num, s->identity, pr_log_q(svc->name), pr_log_q(msg));
        send_error(s, PR_EDGE_ERROR, req, 0, rc, msg);
        return rc;
    }
    return d->mesh = 1;
}

static void dial_mesh(rt_sess *s, rt_circuit *c, const dial_route *d, const pr_frame *f)
{
    const rt_path *p = &d->path;

    int n;

    /* A label for logs and events; ids are short, a cut label is still useful. */
    if (d->term[0])
        n = snprintf(c->host, sizeof(c->host), "%s@%s", d->term, p->hop[p->n - 1]);
    else
        n = snprintf(c->host, sizeof(c->host), "router:%s", p->hop[p->n - 1]);
    if (n < 0)
        c->host[0] = '\0';
    if (rt_mesh_send_dial(s->r, c, p, d->term, f) < 0)
        rt_circuit_end(s->r, c, 1, WEFT_ECLOSED, "the link to the next router failed; retry");
}

/* A service-router policy may keep the service off this router. */
static int ingress_may_carry(rt_sess *s, uint32_t req, const rt_map_service *svc)
{
    char msg[384];

    if (rt_map_service_router_ok(&s->r->map, svc, s->r->id->id))
        return 1;
    rt_mesh_refusal(s->r, svc, s->r->id->id, RT_SVC_DIAL_ELSEWHERE, msg, sizeof(msg));
    pr_warn("dial_refused", "sess=%llu identity=%s service=%s reason=%s",
            (unsigned long long)s->num, s->identity, pr_log_q(svc->name), pr_log_q(msg));
    send_error(s, PR_EDGE_ERROR, req, 0, WEFT_EDENIED, msg);
    return 0;
}

static int handle_dial(rt_sess *s, const pr_frame *f)
{
    static char cert[PR_FRAME_MAX_HDR_LEN + 1];
    req_common q;
    rt_token_info info;
    const rt_map_service *svc;
    dial_route d;
    rt_circuit *c;
    int rc = read_common(s, f, "dial", &q, &info);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (rt_dial_fields(f, cert, sizeof(cert)) < 0) {
        send_error(s, PR_EDGE_ERROR, q.req, 0, WEFT_EINVAL,
                   "dial lacks the kx key, its signature or the certificate");
        return 0;
    }
    if ((svc = rt_map_service_by_name(&s->r->map, info.service_name)) == NULL)
        return 0; /* checked with the token; the map cannot change in between */
    if (!ingress_may_carry(s, q.req, svc) || route_dial(s, q.req, svc, &d) < 0)
        return 0;
    if (rt_circuits_new(&s->r->circuits, &c) < 0) {
        send_error(s, PR_EDGE_ERROR, q.req, 0, WEFT_ENOMEM, "router out of memory; retry");
        return 0;
    }
    c->state = RT_CIRC_DIALING;
    c->mode = rt_mp_mode(svc->multipath);
    c->req_id = q.req;
    snprintf(c->service, sizeof(c->service), "%s", svc->name);
    snprintf(c->dialler, sizeof(c->dialler), "%s", s->identity);
    snprintf(c->service_id, sizeof(c->service_id), "%s", info.service_id);
    c->token_iat = info.iat;
    rt_circuit_attach(c, 0, RT_END_EDGE, s, &s->ends);
    rt_circuits_dial_track(&s->r->circuits, c, uv_now(s->r->loop) + RT_DIAL_TIMEOUT_MS);
    pr_info("dial", "circuit=%016llx service=%s dialler=%s terminator=%s",
            (unsigned long long)c->id, pr_log_q(svc->name), s->identity,
            d.t      ? d.t->id
            : d.mesh ? (d.term[0] ? d.term : "remote-hosted")
                     : "hosted");
    if (d.hosted) {
        dial_hosted(s, c, svc, f);
        return 0;
    }
    if (d.mesh) {
        dial_mesh(s, c, &d, f);
        return 0;
    }
    snprintf(c->host, sizeof(c->host), "%s", d.t->sess->identity);
    rt_circuit_attach(c, 1, RT_END_EDGE, d.t->sess, &d.t->sess->ends);
    if (rt_sess_relay_dial(d.t->sess, c, f) < 0)
        rt_circuit_end(s->r, c, 1, WEFT_ECLOSED, "the hosting edge's session is closing; retry");
    return 0;
}

/* The circuit a frame names, from this session's point of view. 1: drop the
 * frame quietly (a circuit that just closed); negative: protocol violation. */
static int frame_circuit(rt_sess *s, const pr_frame *f, rt_circuit **c, int *side)
{
    uint64_t id;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &id) < 0)
        return WEFT_EPROTO;
    *c = rt_circuits_find(&s->r->circuits, id, s);
    if (*c == NULL || (*side = rt_circuit_side(*c, s)) < 0) {
        if (recently_closed(s, id))
            return 1;
        pr_warn("unknown_circuit", "sess=%llu identity=%s circuit=%016llx",
                (unsigned long long)s->num, s->identity, (unsigned long long)id);
        return WEFT_ENOTFOUND;
    }
    return 0;
}

static int late_dial_ok(rt_sess *s, const pr_frame *f)
{
    uint64_t id = 0;

    pr_frame_u64(f, PR_H_CIRCUIT, &id);
    pr_info("late_dial_answer", "sess=%llu identity=%s circuit=%016llx", (unsigned long long)s->num,
            s->identity, (unsigned long long)id);
    send_error(s, PR_EDGE_CLOSE, 0, id, WEFT_ETIMEDOUT,
               "the dial was abandoned before this answer arrived");
    return 0;
}

static int handle_dial_answer(rt_sess *s, const pr_frame *f)
{
    rt_circuit *c;
    int side, rc = frame_circuit(s, f, &c, &side);

    if (rc == 1 && f->type == PR_EDGE_DIAL_OK)
        return late_dial_ok(s, f); /* the dial was abandoned: the host must let go */
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (side != 1 || c->state != RT_CIRC_DIALING)
        return WEFT_EPROTO;
    return rt_circuit_answer(s->r, c, f, "the hosting edge refused the dial");
}

static int handle_close(rt_sess *s, const pr_frame *f)
{
    char msg[256] = "";
    uint32_t err = 0;
    rt_circuit *c;
    int side, rc = frame_circuit(s, f, &c, &side);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    pr_frame_u32(f, PR_H_ERR, &err);
    pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
    rt_circuit_end(s->r, c, side, -(int)(err & 0x7fffffff), msg[0] ? msg : NULL);
    return 0;
}

static int handle_data(rt_sess *s, const pr_frame *f)
{
    rt_circuit *c;
    int side, rc = frame_circuit(s, f, &c, &side);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (c->resuming)
        return 0; /* sent again once the resume is answered */
    if (c->state != RT_CIRC_OPEN)
        return WEFT_EPROTO; /* no keys can exist before the host answered */
    if (side == 0 && f->type == PR_PAYLOAD_DATA &&
        rt_enforce_on_data(s, c, f->body_len) == WEFT_EDENIED)
        return 0; /* the day's quota is spent: the circuit is gone */
    if (rt_forward(s->r, c, side, f) == 1 && s->conn) {
        pr_conn_read_stop(s->conn);
        s->paused = 1;
    }
    return 0;
}

static int handle_ping(rt_sess *s, const pr_frame *f)
{
    uint32_t req = 0;
    pr_enc e;

    enc_start(s->r, &e, PR_EDGE_PONG);
    if (pr_frame_u32(f, PR_H_REQ_ID, &req) == 0)
        pr_enc_u32(&e, PR_H_REQ_ID, req);
    enc_send(s, &e);
    return 0;
}

/* A session whose reads are paused (an outgoing connection full, bandwidth
 * shaping) cannot read its edge's pings, and an edge carrying traffic takes
 * a router it does not hear from for a second or two for dead and moves its
 * circuits (edge/lib/liveness.c). An unasked EDGE_PONG (no req id: edges
 * take it as a sign of life, not a round-trip sample) every FRESH_MS while
 * the pause lasts says the router lives. */
#define FRESH_MS 500

void rt_sess_keep_fresh(rt_router *r)
{
    uint64_t now = uv_now(r->loop);
    pr_enc e;

    for (rt_sess *s = r->sessions; s; s = s->next) {
        if (!s->paused || s->state != RT_SESS_OPEN) {
            s->fresh_ms = 0;
        } else if (s->fresh_ms == 0) {
            s->fresh_ms = now; /* paused since about now */
        } else if (now - s->fresh_ms >= FRESH_MS) {
            s->fresh_ms = now;
            enc_start(r, &e, PR_EDGE_PONG);
            enc_send(s, &e);
        }
    }
}

static int dispatch(rt_sess *s, const pr_frame *f)
{
    if (s->state == RT_SESS_HELLO && f->type != PR_EDGE_HELLO)
        return WEFT_EPROTO;
    switch (f->type) {
    case PR_EDGE_HELLO:
        return handle_hello(s, f);
    case PR_EDGE_BIND:
        return handle_bind(s, f);
    case PR_EDGE_UNBIND:
        return handle_unbind(s, f);
    case PR_EDGE_DIAL:
        return handle_dial(s, f);
    case PR_EDGE_DIAL_OK:
    case PR_EDGE_DIAL_FAIL:
        return handle_dial_answer(s, f);
    case PR_EDGE_CLOSE:
        return handle_close(s, f);
    case PR_EDGE_PING:
        return handle_ping(s, f);
    case PR_EDGE_PONG:
        return 0;
    case PR_EDGE_RESUME:
        return rt_resume_on_edge(s, f);
    case PR_EDGE_RESUME_OK:
    case PR_EDGE_RESUME_FAIL:
        return rt_resume_on_answer(s, f);
    case PR_PAYLOAD_DATA:
    case PR_ACK_WINDOW:
        return handle_data(s, f);
    default:
        return WEFT_EPROTO;
    }
}

static int on_frame(void *arg, const pr_frame *f)
{
    rt_sess *s = arg;
    char msg[128];
    int rc;

    if (s->state == RT_SESS_CLOSING)
        return STOP;
    if ((rc = dispatch(s, f)) < 0) {
        snprintf(msg, sizeof(msg), "protocol error on frame type 0x%04x (%s); session closed",
                 f->type, weft_err_name(rc));
        pr_warn("session_protocol_error", "sess=%llu identity=%s type=0x%04x err=%s",
                (unsigned long long)s->num, s->identity, f->type, weft_err_name(rc));
        rt_sess_kill(s, rc, msg);
        return STOP;
    }
    return s->state == RT_SESS_CLOSING ? STOP : 0;
}

static void sess_on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    rt_sess_feed(pr_conn_data(c), data, len);
}

void rt_sess_feed(rt_sess *s, const uint8_t *data, size_t len)
{
    int rc;

    if (s->state == RT_SESS_CLOSING)
        return;
    rc = pr_reader_feed(&s->rd, data, len, on_frame, s);
    if (rc < 0 && rc != STOP && s->state != RT_SESS_CLOSING) {
        pr_warn("session_malformed", "sess=%llu identity=%s err=%s", (unsigned long long)s->num,
                s->identity, weft_err_name(rc));
        rt_sess_kill(s, rc, "malformed frame; session closed");
    }
}
