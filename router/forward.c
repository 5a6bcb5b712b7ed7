/* Circuits whatever their ends are: edge sessions, router-hosted services or
 * links to other routers. Writing to an end, relaying dial answers towards
 * the dialler, forwarding payload byte for byte, ending circuits, and the
 * pending-dial timeout. */
#include <string.h>

#include "proto/e2e.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/enforce.h"
#include "router/router.h"
#include "weft/errors.h"

int rt_end_write(rt_router *r, rt_circuit *c, int side, const uint8_t *raw, size_t len)
{
    return rt_end_write_to(r, &c->end[side], raw, len);
}

int rt_end_write_to(rt_router *r, rt_end *e, const uint8_t *raw, size_t len)
{
    pr_conn *conn;
    int rc;

    if (e->kind == RT_END_EDGE) {
        rt_sess *s = e->peer;
        if (s->state == RT_SESS_CLOSING)
            return WEFT_ECLOSED;
        if ((conn = s->conn) == NULL)
            return 0; /* detached */
    } else if (e->kind == RT_END_LINK) {
        rt_link *l = e->peer;
        if (l->state != RT_LINK_UP)
            return WEFT_ECLOSED;
        if ((conn = l->conn) == NULL)
            return 0; /* detached */
    } else {
        return WEFT_ECLOSED;
    }
    if ((rc = pr_conn_write(conn, raw, len)) < 0)
        return rc;
    return pr_conn_writable(conn) ? 0 : 1;
}

int rt_end_writable(const rt_router *r, const rt_circuit *c, int side)
{
    const rt_end *e = &c->end[side];

    if (e->kind == RT_END_EDGE) {
        const rt_sess *s = e->peer;
        return s->state != RT_SESS_CLOSING && (s->conn == NULL || pr_conn_writable(s->conn));
    }
    if (e->kind == RT_END_LINK) {
        const rt_link *l = e->peer;
        return l->state == RT_LINK_UP && (l->conn == NULL || pr_conn_writable(l->conn));
    }
    return e->kind == RT_END_HOSTED;
}

/* A frame the router makes itself about circuit c, in r->txbuf. */
static int circ_frame(rt_router *r, uint16_t type, uint32_t req, uint64_t id, int err,
                      const char *msg, size_t *n)
{
    pr_enc e;

    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, type, 0);
    if (req)
        pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    if (msg && msg[0])
        pr_enc_str(&e, PR_H_ERR_MSG, msg);
    return pr_enc_finish(&e, NULL, 0, n);
}

/* Tells end side that the circuit is gone: EDGE_DIAL_FAIL towards a dialler
 * still waiting (with its request id if it is an edge), EDGE_CLOSE otherwise. */
static void notify_end(rt_router *r, rt_circuit *c, rt_end *e, int err, const char *msg)
{
    int dialing = e->side == 0 && c->state == RT_CIRC_DIALING;
    size_t n;

    if (e->kind == RT_END_HOSTED) {
        rt_hosted_abort(e->peer);
        return;
    }
    if (e->kind == RT_END_EDGE)
        rt_sess_closed_circuit(e->peer, c->id);
    else if (e->kind != RT_END_LINK)
        return;
    /* A stopping router tells nobody that its circuits end: its sessions and
     * links close under them, which is what makes edges resume and ingress
     * routers reroute (as after a crash) instead of giving the circuits up. */
    if (r->stopping)
        return;
    if (dialing && err == 0)
        err = WEFT_ECLOSED;
    /* A resume still waiting for its answer fails as a resume (resume.c). */
    if (circ_frame(
            r, dialing ? (c->resuming ? PR_EDGE_RESUME_FAIL : PR_EDGE_DIAL_FAIL) : PR_EDGE_CLOSE,
            dialing && e->kind == RT_END_EDGE ? c->req_id : 0, c->id, err, msg, &n) == 0)
        rt_end_write_to(r, e, r->txbuf, n);
}

void rt_circuit_end(rt_router *r, rt_circuit *c, int closer_side, int err, const char *msg)
{
    rt_circuit_end_by(r, c, closer_side >= 0 ? &c->end[closer_side] : NULL, err, msg);
}

void rt_circuit_end_by(rt_router *r, rt_circuit *c, rt_end *closer, int err, const char *msg)
{
    int side = closer ? closer->side : -1;

    if (c->state == RT_CIRC_OPEN && (c->role == RT_ROLE_INGRESS || c->role == RT_ROLE_LOCAL)) {
        rt_control_circuit_event(r, c, "close");
        rt_enforce_on_circuit_end(r, c); /* the bytes-per-circuit baseline */
    }
    for (int i = 0; i < 2 + RT_LEGS_MAX - 1; i++) {
        rt_end *e = i < 2 ? &c->end[i] : &c->spare[i - 2];
        if (e->kind == RT_END_NONE)
            continue;
        if (e == closer) {
            if (e->kind == RT_END_EDGE)
                rt_sess_closed_circuit(e->peer, c->id);
            continue;
        }
        notify_end(r, c, e, err, msg);
    }
    pr_info("circuit_close", "circuit=%016llx service=%s dialler=%s host=%s by=%s err=%s",
            (unsigned long long)c->id, pr_log_q(c->service), c->dialler, c->host,
            side == 0   ? "dialler"
            : side == 1 ? "host"
                        : "router",
            err ? weft_err_name(err) : "none");
    rt_circuits_del(&r->circuits, c);
}

int rt_circuit_answer(rt_router *r, rt_circuit *c, const pr_frame *f, const char *refused_msg)
{
    static char cert[PR_FRAME_MAX_HDR_LEN + 1];
    uint32_t err = (uint32_t)-WEFT_EREFUSED;
    const uint8_t *kx, *sig;
    size_t kx_len, sig_len;
    uint64_t rwnd = 0;
    char msg[256];

    if (f->type == PR_EDGE_DIAL_FAIL) {
        snprintf(msg, sizeof(msg), "%s", refused_msg);
        pr_frame_u32(f, PR_H_ERR, &err);
        pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
        pr_warn("dial_failed", "circuit=%016llx service=%s host=%s reason=%s",
                (unsigned long long)c->id, pr_log_q(c->service), c->host, pr_log_q(msg));
        rt_circuit_end(r, c, 1, -(int)(err & 0x7fffffff), msg);
        return 0;
    }
    if (rt_dial_fields(f, cert, sizeof(cert)) < 0)
        return WEFT_EPROTO;
    pr_frame_bytes(f, PR_H_KX_PK, &kx, &kx_len);
    pr_frame_bytes(f, PR_H_KX_SIG, &sig, &sig_len);
    pr_frame_u64(f, PR_H_RWND, &rwnd);
    rt_circuit_dial_ok(r, c, kx, kx_len, sig, sig_len, cert, rwnd);
    return 0;
}

void rt_circuit_dial_ok(rt_router *r, rt_circuit *c, const uint8_t *kx, size_t kx_len,
                        const uint8_t *sig, size_t sig_len, const char *cert, uint64_t rwnd)
{
    size_t n;
    pr_enc e;

    c->state = RT_CIRC_OPEN;
    rt_circuits_dial_untrack(&r->circuits, c);
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_DIAL_OK, 0);
    if (c->end[0].kind == RT_END_EDGE)
        pr_enc_u32(&e, PR_H_REQ_ID, c->req_id);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_bytes(&e, PR_H_KX_PK, kx, kx_len);
    pr_enc_bytes(&e, PR_H_KX_SIG, sig, sig_len);
    pr_enc_str(&e, PR_H_PEER_CERT, cert);
    if (rwnd)
        pr_enc_u64(&e, PR_H_RWND, rwnd);
    /* The far end's router, for re-homing (docs/dataplane.md "EDGE_RESUME"). */
    if (c->end[0].kind == RT_END_EDGE)
        pr_enc_str(&e, PR_H_ROUTER_ID, c->egress[0] ? c->egress : r->id->id);
    pr_info("circuit_open", "circuit=%016llx service=%s dialler=%s host=%s",
            (unsigned long long)c->id, pr_log_q(c->service), c->dialler, c->host);
    if (pr_enc_finish(&e, NULL, 0, &n) < 0 || rt_end_write(r, c, 0, r->txbuf, n) < 0) {
        rt_circuit_end(r, c, 0, WEFT_ECLOSED, "the dialling side is gone");
        return;
    }
    if (c->role == RT_ROLE_INGRESS || c->role == RT_ROLE_LOCAL)
        rt_control_circuit_event(r, c, "open");
    if (c->role == RT_ROLE_INGRESS)
        rt_legs_open(r, c); /* a policy may have changed while it was being dialled */
}

void rt_edge_dial_ok(rt_router *r, rt_circuit *c, const uint8_t *kx_pk, const uint8_t *sig,
                     size_t sig_len)
{
    rt_circuit_dial_ok(r, c, kx_pk, PR_E2E_KX_BYTES, sig, sig_len, r->id->cert_pem, 0);
}

/* The legs a frame towards the multi-leg side goes on, as the mode says. */
static int pick_legs(rt_circuit *c, const pr_frame *f, int n, int *pick)
{
    uint64_t w[RT_LEGS_MAX];
    int64_t credit[RT_LEGS_MAX];
    size_t k;

    if (c->mode == RT_MP_REDUNDANT) {
        pick[0] = 0;
        pick[1] = 1;
        return n < 2 ? n : 2;
    }
    if (c->mode != RT_MP_SPLIT || f->type != PR_PAYLOAD_DATA || n == 1) {
        pick[0] = 0;
        return 1;
    }
    /* Weight = 1/cost: a path twice as fast carries twice the frames. */
    for (int i = 0; i < n; i++) {
        w[i] = c->leg[i].cost ? 1000000000ULL / c->leg[i].cost : 1000;
        credit[i] = c->leg[i].credit;
    }
    k = rt_stripe_pick(w, credit, (size_t)n);
    for (int i = 0; i < n; i++)
        c->leg[i].credit = credit[i];
    pick[0] = (int)k;
    return 1;
}

static int leg_writable(rt_circuit *c, int k)
{
    const rt_end *e = rt_circuit_leg(c, k);
    const rt_link *l = e->peer;

    return e->kind == RT_END_LINK && l->state == RT_LINK_UP &&
           (l->conn == NULL || pr_conn_writable(l->conn));
}

/* Split: a frame whose leg is over its high watermark (a cut or slow path)
 * takes another leg that is not, rather than pausing the session. */
static void split_writable(rt_circuit *c, int n, int *pick)
{
    if (leg_writable(c, pick[0]))
        return;
    for (int k = 0; k < n; k++)
        if (leg_writable(c, k)) {
            pick[0] = k;
            return;
        }
}

/* A write that fails means the link is closing; its close moves the leg.
 * 1: the session should stop reading. With one leg, when that leg's link is
 * over its high watermark. With several (split, redundant), only when none
 * of them can take more: a cut leg's queue must not pause the session and so
 * stall the others. Redundant copies still go on a full leg (up to the
 * connection's hard limit, past which they are dropped): the full leg may be
 * the healthy one, briefly behind, and the frame must reach it too. */
static int forward_legs(rt_router *r, rt_circuit *c, const pr_frame *f, const uint8_t *raw,
                        size_t len)
{
    int n = rt_circuit_nlegs(c), pick[RT_LEGS_MAX], np, full = 0;

    if (n == 0)
        return 0; /* between legs (egress): the edges retransmit once a leg is back */
    np = pick_legs(c, f, n, pick);
    if (c->mode == RT_MP_SPLIT && n > 1)
        split_writable(c, n, pick);
    for (int i = 0; i < np; i++) {
        int rc = rt_end_write_to(r, rt_circuit_leg(c, pick[i]), raw, len);
        if (rc >= 0 && f->type == PR_PAYLOAD_DATA)
            c->leg[pick[i]].frames++;
        if (rc == 1)
            full = 1;
    }
    if (!full || c->mode == RT_MP_FAILOVER || n < 2)
        return full;
    for (int k = 0; k < n; k++)
        if (leg_writable(c, k))
            return 0;
    return 1;
}

int rt_forward(rt_router *r, rt_circuit *c, int from_side, const pr_frame *f)
{
    const uint8_t *raw;
    size_t len;
    int rc;

    pr_frame_raw(f, &raw, &len);
    r->frames_fwd++;
    r->bytes_fwd += len;
    if (from_side == 0)
        c->bytes_up += len;
    else
        c->bytes_down += len;
    if (r->on_forward)
        r->on_forward(r->forward_arg, c, f, raw, len);
    if (c->leg_side == !from_side)
        return forward_legs(r, c, f, raw, len);
    if (c->end[!from_side].kind == RT_END_HOSTED) {
        rt_hosted_on_frame(c->end[!from_side].peer, f);
        return 0;
    }
    rc = rt_end_write(r, c, !from_side, raw, len);
    if (rc < 0 && c->end[!from_side].kind == RT_END_LINK) {
        /* The peer router closed the link (EOF) and its close callback has
         * not run yet: the link is down for every circuit on it, which a
         * transit reports with LINK_LEG_DOWN so that the ingress reroutes. */
        rt_link_kill(c->end[!from_side].peer, rc, "the peer router closed the link");
        return 0;
    }
    if (rc < 0) {
        rt_circuit_end(r, c, -1, rc, "the far end is not reading; circuit closed");
        return 0;
    }
    return rc;
}

void rt_dial_sweep(rt_router *r)
{
    uint64_t now = uv_now(r->loop);
    rt_circuit *c;
    char msg[256];

    while ((c = r->circuits.dial_head) != NULL && c->dial_deadline <= now) {
        snprintf(msg, sizeof(msg), "service %s: the hosting edge did not answer in %d s",
                 c->service, RT_DIAL_TIMEOUT_MS / 1000);
        pr_warn("dial_timeout", "circuit=%016llx service=%s dialler=%s host=%s",
                (unsigned long long)c->id, pr_log_q(c->service), c->dialler, c->host);
        rt_circuit_end(r, c, -1, WEFT_ETIMEDOUT, msg);
    }
}

void rt_resume_paused(rt_router *r)
{
    for (rt_sess *s = r->sessions; s; s = s->next) {
        if (s->paused && s->state != RT_SESS_CLOSING && s->conn) {
            s->paused = 0;
            pr_conn_read_start(s->conn);
        }
    }
    for (rt_link *l = r->links; l; l = l->next) {
        if (l->paused && l->state == RT_LINK_UP) {
            l->paused = 0;
            pr_conn_read_start(l->conn);
        }
    }
    rt_hosted_resume_all(r);
}
