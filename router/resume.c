/* Re-homing live circuits (docs/dataplane.md "Re-homing live circuits"): an
 * edge whose router died sends EDGE_RESUME to another router, which sets up a
 * path to the circuit's anchor (the far edge's router) with LINK_RESUME. The
 * anchor asks the far edge, keeping the new path pending; only the far edge's
 * EDGE_RESUME_OK, whose MAC no router can make, switches the circuit to the
 * new path, and the old path is torn down. The edges then send again what the
 * other's ack seq does not cover. */
#include <sodium.h>
#include <string.h>

#include "proto/log.h"
#include "proto/msg.h"
#include "router/router.h"
#include "weft/errors.h"

#define PATH_STR_CAP (RT_PATH_MAX * RT_ID_CAP)
#define NONCE_LEN    16
#define MAC_LEN      32

/* The fields of a resume, as the edge sent them (no router can change them unseen). */
typedef struct {
    uint32_t req;
    uint64_t id, ack;
    const uint8_t *nonce, *mac;
    char anchor[RT_ID_CAP];
} resume_msg;

static int read_proof(const pr_frame *f, resume_msg *m)
{
    size_t n, k;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &m->id) < 0 || m->id == 0 ||
        pr_frame_u64(f, PR_H_ACK_SEQ, &m->ack) < 0 ||
        pr_frame_bytes(f, PR_H_NONCE, &m->nonce, &n) < 0 || n != NONCE_LEN ||
        pr_frame_bytes(f, PR_H_MAC, &m->mac, &k) < 0 || k != MAC_LEN)
        return WEFT_EPROTO;
    return 0;
}

static void enc_proof(pr_enc *e, const resume_msg *m)
{
    pr_enc_u64(e, PR_H_CIRCUIT, m->id);
    pr_enc_u64(e, PR_H_ACK_SEQ, m->ack);
    pr_enc_bytes(e, PR_H_NONCE, m->nonce, NONCE_LEN);
    pr_enc_bytes(e, PR_H_MAC, m->mac, MAC_LEN);
}

static int send_to(rt_router *r, rt_end *e, pr_enc *enc)
{
    size_t n;
    int rc;

    if ((rc = pr_enc_finish(enc, NULL, 0, &n)) < 0)
        return rc;
    return rt_end_write_to(r, e, r->txbuf, n) < 0 ? WEFT_ECLOSED : 0;
}

/* EDGE_RESUME_FAIL; service (may be NULL) names the service whose policy
 * refused the path, so that the new router can try an allowed one. */
static void fail_to(rt_router *r, rt_end *e, uint32_t req, uint64_t id, int err, const char *msg,
                    const char *service)
{
    pr_enc enc;

    pr_warn("resume_failed", "circuit=%016llx err=%s reason=%s", (unsigned long long)id,
            weft_err_name(err), pr_log_q(msg));
    pr_enc_init(&enc, r->txbuf, PR_FRAME_MAX, PR_EDGE_RESUME_FAIL, 0);
    if (req)
        pr_enc_u32(&enc, PR_H_REQ_ID, req);
    pr_enc_u64(&enc, PR_H_CIRCUIT, id);
    pr_enc_u32(&enc, PR_H_ERR, (uint32_t)-err);
    pr_enc_str(&enc, PR_H_ERR_MSG, msg);
    if (service)
        pr_enc_str(&enc, PR_H_SERVICE, service);
    send_to(r, e, &enc);
}

static void fail_sess(rt_sess *s, uint32_t req, uint64_t id, int err, const char *msg)
{
    rt_end e = {.kind = RT_END_EDGE, .peer = s};

    fail_to(s->r, &e, req, id, err, msg, NULL);
}

/* The frame as it came, to end e. */
static void relay_raw(rt_router *r, rt_end *e, const pr_frame *f)
{
    const uint8_t *raw;
    size_t len;

    pr_frame_raw(f, &raw, &len);
    rt_end_write_to(r, e, raw, len);
}

/* EDGE_CLOSE for the old path of a moved circuit, in r->txbuf. */
static int circ_close_frame(rt_router *r, uint64_t id, size_t *n)
{
    pr_enc e;

    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_ECANCELED);
    pr_enc_str(&e, PR_H_ERR_MSG, "the circuit moved to another router (EDGE_RESUME)");
    return pr_enc_finish(&e, NULL, 0, n);
}

/* Swaps the two ends of c (and their lists), so that end 0 is the dialler's side. */
static void ends_swap(rt_circuit *c)
{
    rt_end a = c->end[0], b = c->end[1];

    if (b.kind != RT_END_NONE)
        rt_circuit_attach(c, 0, b.kind, b.peer, b.list);
    if (a.kind != RT_END_NONE)
        rt_circuit_attach(c, 1, a.kind, a.peer, a.list);
}

static void path_reverse(rt_path *p)
{
    char tmp[RT_ID_CAP];

    for (size_t i = 0; i < p->n / 2; i++) {
        memcpy(tmp, p->hop[i], RT_ID_CAP);
        memcpy(p->hop[i], p->hop[p->n - 1 - i], RT_ID_CAP);
        memcpy(p->hop[p->n - 1 - i], tmp, RT_ID_CAP);
    }
}

/* ---- the new router: EDGE_RESUME from an edge ---- */

static int send_link_resume(rt_router *r, rt_circuit *c, const rt_sess *s, const resume_msg *m)
{
    char ps[PATH_STR_CAP];
    pr_enc e;

    if (rt_path_format(&c->leg[0].path, ps, sizeof(ps)) < 0)
        return WEFT_EINVAL;
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_LINK_RESUME, 0);
    enc_proof(&e, m);
    pr_enc_str(&e, PR_H_PATH, ps);
    pr_enc_u32(&e, PR_H_HOP, 1);
    pr_enc_str(&e, PR_H_IDENTITY, s->identity);
    pr_info("resume_start", "circuit=%016llx identity=%s path=%s", (unsigned long long)m->id,
            s->identity, ps);
    return send_to(r, &c->end[1], &e);
}

/* A path from here to the anchor and an entry waiting for the answer:
 * provisionally the edge is the dialler (end 0); the anchor's answer says. */
static int start_resume(rt_sess *s, const resume_msg *m, char *msg, size_t cap)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    rt_router *r = s->r;
    size_t ne = rt_mesh_edges(r, edges, RT_MESH_EDGES_MAX);
    rt_path p;
    rt_link *l;
    rt_circuit *c;

    if (rt_path_compute(edges, ne, r->id->id, m->anchor, &p) < 0 ||
        (l = rt_link_to(r, p.hop[1])) == NULL) {
        snprintf(msg, cap, "router %s cannot reach the circuit's router %s; dial again",
                 r->id->id, m->anchor);
        return WEFT_ENOTFOUND;
    }
    if (rt_circuits_add_leg(&r->circuits, m->id, &c) < 0) {
        snprintf(msg, cap, "router out of memory; retry");
        return WEFT_ENOMEM;
    }
    c->state = RT_CIRC_DIALING;
    c->resuming = 1;
    c->role = RT_ROLE_INGRESS;
    c->req_id = m->req;
    c->leg_side = 1;
    c->leg[0].path = p;
    snprintf(c->dialler, sizeof(c->dialler), "%s", s->identity);
    snprintf(c->ingress, sizeof(c->ingress), "%s", r->id->id);
    snprintf(c->egress, sizeof(c->egress), "%s", m->anchor);
    snprintf(c->host, sizeof(c->host), "router:%s", m->anchor);
    memcpy(c->nonce, m->nonce, NONCE_LEN); /* kept for a second try (retry_resume) */
    memcpy(c->mac, m->mac, MAC_LEN);
    c->resume_ack = m->ack;
    rt_circuit_attach(c, 0, RT_END_EDGE, s, &s->ends);
    rt_circuit_attach(c, 1, RT_END_LINK, l, &l->ends);
    rt_circuits_dial_track(&r->circuits, c, uv_now(r->loop) + RT_DIAL_TIMEOUT_MS);
    if (send_link_resume(r, c, s, m) < 0) {
        rt_circuits_del(&r->circuits, c);
        snprintf(msg, cap, "the link to the next router failed; retry");
        return WEFT_ECLOSED;
    }
    return 0;
}

int rt_resume_on_edge(rt_sess *s, const pr_frame *f)
{
    resume_msg m;
    char msg[256];
    int rc;

    memset(&m, 0, sizeof(m));
    if (pr_frame_u32(f, PR_H_REQ_ID, &m.req) < 0 || m.req == 0)
        return WEFT_EPROTO;
    if (read_proof(f, &m) < 0 || pr_frame_str(f, PR_H_ROUTER_ID, m.anchor, sizeof(m.anchor)) < 0) {
        fail_sess(s, m.req, m.id, WEFT_EINVAL, "resume lacks the circuit, router, ack seq, "
                                               "nonce or MAC");
        return 0;
    }
    if (rt_circuits_find(&s->r->circuits, m.id, s) != NULL) {
        fail_sess(s, m.req, m.id, WEFT_EEXISTS, "the circuit already runs on this session");
        return 0;
    }
    if (rt_router_is_me(s->r, m.anchor)) {
        fail_sess(s, m.req, m.id, WEFT_EUNSUPPORTED,
                  "resume at the circuit's own router is not supported; resume at another "
                  "router or dial again");
        return 0;
    }
    if ((rc = start_resume(s, &m, msg, sizeof(msg))) < 0)
        fail_sess(s, m.req, m.id, rc, msg);
    return 0;
}

/* ---- routers on the new path: LINK_RESUME ---- */

typedef struct {
    resume_msg m;
    uint32_t hop;
    rt_path path;
    char identity[RT_ID_CAP];
} link_resume;

static int read_link_resume(rt_link *l, const pr_frame *f, link_resume *d)
{
    char ps[PATH_STR_CAP];

    memset(d, 0, sizeof(*d));
    if (read_proof(f, &d->m) < 0 || pr_frame_str(f, PR_H_PATH, ps, sizeof(ps)) < 0 ||
        rt_path_parse(ps, &d->path) < 0 || pr_frame_u32(f, PR_H_HOP, &d->hop) < 0 ||
        pr_frame_str(f, PR_H_IDENTITY, d->identity, sizeof(d->identity)) < 0)
        return WEFT_EPROTO;
    if (d->hop == 0 || d->hop >= d->path.n || !rt_router_is_me(l->r, d->path.hop[d->hop]) ||
        strcmp(d->path.hop[d->hop - 1], l->peer) != 0)
        return WEFT_EPROTO;
    snprintf(d->m.anchor, sizeof(d->m.anchor), "%s", d->path.hop[d->path.n - 1]);
    return 0;
}

static void link_fail(rt_link *l, uint64_t id, int err, const char *msg)
{
    rt_end e = {.kind = RT_END_LINK, .peer = l};

    fail_to(l->r, &e, 0, id, err, msg, NULL);
}

static void resume_transit(rt_link *l, const link_resume *d, const pr_frame *f)
{
    rt_router *r = l->r;
    rt_link *nl = rt_link_to(r, d->path.hop[d->hop + 1]);
    rt_circuit *c;

    if (nl == NULL) {
        link_fail(l, d->m.id, WEFT_ENOTFOUND, "a router on the new path has no link to the next");
        return;
    }
    if (rt_circuits_add_leg(&r->circuits, d->m.id, &c) < 0) {
        link_fail(l, d->m.id, WEFT_ENOMEM, "router out of memory; retry");
        return;
    }
    c->state = RT_CIRC_DIALING;
    c->resuming = 1;
    c->role = RT_ROLE_TRANSIT;
    snprintf(c->host, sizeof(c->host), "router:%s", d->m.anchor);
    rt_circuit_attach(c, 0, RT_END_LINK, l, &l->ends);
    rt_circuit_attach(c, 1, RT_END_LINK, nl, &nl->ends);
    rt_circuits_dial_track(&r->circuits, c, uv_now(r->loop) + RT_DIAL_TIMEOUT_MS);
    if (rt_mesh_pass_on(r, c, f, d->hop + 1) < 0)
        rt_circuit_end(r, c, 1, WEFT_ECLOSED, "the link to the next router failed; retry");
}

/* The live circuit the anchor holds and the side that is resuming. */
static rt_circuit *anchored(rt_router *r, uint64_t id, int *side)
{
    rt_circuit *c = rt_circuits_find_role(&r->circuits, id, RT_ROLE_EGRESS);

    *side = 0;
    if (c == NULL && (c = rt_circuits_find_role(&r->circuits, id, RT_ROLE_INGRESS)) != NULL)
        *side = 1;
    return c && c->state == RT_CIRC_OPEN && !c->resuming ? c : NULL;
}

static const char *anchor_refusal(rt_router *r, rt_circuit *c, int side, const link_resume *d)
{
    if (c == NULL)
        return "the circuit is no longer held by its router; dial again";
    if (c->end[!side].kind != RT_END_EDGE)
        return "the far end of the circuit cannot resume (a router-hosted service)";
    if (side == 0 && strcmp(c->dialler, d->identity) != 0)
        return "the resuming edge is not the circuit's dialler";
    if (sodium_memcmp(c->nonce, d->m.nonce, NONCE_LEN) == 0)
        return "the resume repeats one already taken (a replay)";
    if (rt_circuits_find_role(&r->circuits, d->m.id, RT_ROLE_RESUME) != NULL)
        return "another resume of the circuit is under way";
    return NULL;
}

/* A service-router policy may keep the circuit's service off a router of the
 * new path (only the anchor knows the service). When another path from the
 * new router is allowed, the refusal names the service so that the new
 * router tries it (nothing was asked of the far edge: the proof stays good);
 * otherwise the circuit ends here too, with EDENIED to both ends. */
static int anchor_policy(rt_link *l, rt_circuit *c, const link_resume *d)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    rt_router *r = l->r;
    const rt_map_service *svc = rt_circuit_service(r, c);
    const char *bad = rt_mesh_path_refused(r, svc, &d->path);
    rt_end e = {.kind = RT_END_LINK, .peer = l};
    char msg[384];
    rt_path p;
    size_t ne;

    if (bad == NULL)
        return 0;
    ne = rt_mesh_edges_for(r, svc, edges, RT_MESH_EDGES_MAX);
    if (rt_path_compute(edges, ne, d->path.hop[0], r->id->id, &p) == 0) {
        rt_mesh_refusal(r, svc, bad, "resume along another path", msg, sizeof(msg));
        fail_to(r, &e, 0, d->m.id, WEFT_EDENIED, msg, svc->name);
        return 1;
    }
    rt_mesh_refusal(r, svc, bad,
                    "no allowed path to the circuit's router is left; circuit closed, dial again",
                    msg, sizeof(msg));
    fail_to(r, &e, 0, d->m.id, WEFT_EDENIED, msg, NULL);
    pr_warn("circuit_policy_end", "circuit=%016llx service=%s from=%s reason=%s",
            (unsigned long long)c->id, pr_log_q(c->service), d->path.hop[0], pr_log_q(msg));
    rt_circuit_end(r, c, -1, WEFT_EDENIED, msg);
    return 1;
}

/* Keeps the new path pending (a RESUME entry) and asks the far edge. */
static void resume_anchor(rt_link *l, const link_resume *d)
{
    rt_router *r = l->r;
    int side;
    rt_circuit *c = anchored(r, d->m.id, &side), *p;
    const char *why = anchor_refusal(r, c, side, d);
    pr_enc e;

    if (why != NULL) {
        link_fail(l, d->m.id, c ? WEFT_EDENIED : WEFT_ENOTFOUND, why);
        return;
    }
    if (anchor_policy(l, c, d))
        return;
    if (rt_circuits_add_leg(&r->circuits, d->m.id, &p) < 0) {
        link_fail(l, d->m.id, WEFT_ENOMEM, "router out of memory; retry");
        return;
    }
    p->state = RT_CIRC_DIALING;
    p->resuming = 1;
    p->role = RT_ROLE_RESUME;
    p->leg[0].path = d->path;
    p->mode = side; /* the resuming side of the live circuit */
    rt_circuit_attach(p, 0, RT_END_LINK, l, &l->ends);
    rt_circuits_dial_track(&r->circuits, p, uv_now(r->loop) + RT_DIAL_TIMEOUT_MS);
    pr_info("resume_asked", "circuit=%016llx side=%s from=%s", (unsigned long long)d->m.id,
            side ? "host" : "dialler", d->path.hop[0]);
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_RESUME, 0);
    enc_proof(&e, &d->m);
    if (send_to(r, &c->end[!side], &e) < 0)
        rt_circuit_end(r, p, -1, WEFT_ECLOSED, "the far edge's session is closing");
}

int rt_resume_on_link(rt_link *l, const pr_frame *f)
{
    link_resume d;

    if (read_link_resume(l, f, &d) < 0) {
        pr_warn("resume_malformed", "peer=%s", l->peer);
        if (d.m.id)
            link_fail(l, d.m.id, WEFT_EPROTO, "malformed LINK_RESUME");
        return 0;
    }
    if (d.hop + 1 < d.path.n)
        resume_transit(l, &d, f);
    else
        resume_anchor(l, &d);
    return 0;
}

/* ---- the anchor: the far edge answers ---- */

/* The old path of the resuming side goes; the pending one takes its place. */
static void switch_legs(rt_router *r, rt_circuit *c, rt_circuit *p, int side)
{
    rt_link *nl = p->end[0].peer;
    rt_path path = p->leg[0].path;
    size_t n;

    if (circ_close_frame(r, c->id, &n) == 0)
        for (int k = rt_circuit_nlegs(c) - 1; k >= 0; k--) {
            rt_end_write_to(r, rt_circuit_leg(c, k), r->txbuf, n);
            rt_circuit_leg_drop(c, k);
        }
    rt_circuits_del(&r->circuits, p);
    if (side == 1)
        path_reverse(&path); /* legs run from the ingress router */
    rt_circuit_leg_add(c, nl, &nl->ends, &path);
    snprintf(side ? c->egress : c->ingress, RT_ID_CAP, "%s", side ? path.hop[path.n - 1] : path.hop[0]);
    c->orphan_at = 0;
    c->reroutes++;
    r->reroutes++;
}

static void relay_ok(rt_router *r, rt_circuit *c, int side, const resume_msg *m)
{
    pr_enc e;

    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_RESUME_OK, 0);
    enc_proof(&e, m);
    pr_enc_u32(&e, PR_H_RESUME_ROLE, (uint32_t)side + 1);
    pr_enc_str(&e, PR_H_SERVICE, c->service);
    pr_enc_str(&e, PR_H_IDENTITY, c->dialler);
    pr_enc_str(&e, PR_H_MULTIPATH, rt_mp_name(c->mode));
    if (send_to(r, rt_circuit_leg(c, 0), &e) < 0)
        pr_warn("resume_relay_failed", "circuit=%016llx", (unsigned long long)c->id);
}

static void anchor_ok(rt_router *r, rt_circuit *c, rt_circuit *p, const pr_frame *f)
{
    int side = p->mode;
    resume_msg m;

    memset(&m, 0, sizeof(m));
    if (read_proof(f, &m) < 0) {
        fail_to(r, &p->end[0], 0, c->id, WEFT_EPROTO, "the far edge's answer was malformed", NULL);
        rt_circuits_del(&r->circuits, p);
        return;
    }
    memcpy(c->nonce, m.nonce, NONCE_LEN);
    switch_legs(r, c, p, side);
    pr_info("circuit_resumed", "circuit=%016llx service=%s side=%s via=%s",
            (unsigned long long)c->id, pr_log_q(c->service), side ? "host" : "dialler",
            side ? c->egress : c->ingress);
    relay_ok(r, c, side, &m);
    if (c->role == RT_ROLE_INGRESS) {
        rt_control_circuit_event(r, c, "update");
        rt_legs_open(r, c);
    }
}

int rt_resume_on_answer(rt_sess *s, const pr_frame *f)
{
    rt_router *r = s->r;
    rt_circuit *c, *p;
    uint64_t id;
    int side;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &id) < 0)
        return WEFT_EPROTO;
    c = rt_circuits_find(&r->circuits, id, s);
    p = rt_circuits_find_role(&r->circuits, id, RT_ROLE_RESUME);
    if (c == NULL || p == NULL || (side = rt_circuit_side(c, s)) < 0 || side == p->mode)
        return 0; /* the resume timed out, or this session is not the far end */
    if (f->type == PR_EDGE_RESUME_OK) {
        anchor_ok(r, c, p, f);
        return 0;
    }
    relay_raw(r, &p->end[0], f);
    rt_circuits_del(&r->circuits, p);
    return 0;
}

/* ---- the answer on its way back: transit and the new router ---- */

static void new_router_ok(rt_router *r, rt_circuit *c, const pr_frame *f, uint32_t role)
{
    char mode[16] = "";
    resume_msg m;
    pr_enc e;

    memset(&m, 0, sizeof(m));
    read_proof(f, &m); /* checked by the anchor */
    pr_frame_str(f, PR_H_SERVICE, c->service, sizeof(c->service));
    pr_frame_str(f, PR_H_MULTIPATH, mode, sizeof(mode));
    c->mode = rt_mp_mode(mode);
    if (role == 2) { /* the host resumed: this router is the circuit's egress now */
        pr_frame_str(f, PR_H_IDENTITY, c->dialler, sizeof(c->dialler));
        snprintf(c->host, sizeof(c->host), "%s", ((rt_sess *)c->end[0].peer)->identity);
        ends_swap(c);
        c->role = RT_ROLE_EGRESS;
        c->leg_side = 0;
        path_reverse(&c->leg[0].path);
        snprintf(c->ingress, sizeof(c->ingress), "%s", c->leg[0].path.hop[0]);
        snprintf(c->egress, sizeof(c->egress), "%s", r->id->id);
    }
    c->state = RT_CIRC_OPEN;
    c->resuming = 0;
    rt_circuits_dial_untrack(&r->circuits, c);
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_RESUME_OK, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, c->req_id);
    enc_proof(&e, &m);
    send_to(r, &c->end[role == 2 ? 1 : 0], &e);
    pr_info("circuit_resumed", "circuit=%016llx service=%s role=%s", (unsigned long long)c->id,
            pr_log_q(c->service), role == 2 ? "egress" : "ingress");
    if (c->role == RT_ROLE_INGRESS) {
        rt_control_circuit_event(r, c, "update");
        rt_legs_open(r, c);
    }
}

static void transit_ok(rt_router *r, rt_circuit *c, const pr_frame *f, uint32_t role)
{
    relay_raw(r, &c->end[0], f);
    if (role == 2)
        ends_swap(c); /* end 0 is the dialler's side, as on every other entry */
    c->state = RT_CIRC_OPEN;
    c->resuming = 0;
    rt_circuits_dial_untrack(&r->circuits, c);
}

/* The anchor refused the path for the circuit's service (a service-router
 * policy) and named the service: one more try, along a path over routers
 * that may carry it. 0 when the resume went out again. */
static int retry_resume(rt_router *r, rt_circuit *c, const pr_frame *f)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    char name[RT_NAME_CAP], ps[PATH_STR_CAP] = "";
    const rt_map_service *svc;
    uint32_t err = 0;
    resume_msg m;
    rt_link *l;
    rt_path p;
    size_t ne;

    if (c->resume_tries > 0 || pr_frame_u32(f, PR_H_ERR, &err) < 0 ||
        (int)err != -WEFT_EDENIED || pr_frame_str(f, PR_H_SERVICE, name, sizeof(name)) < 0 ||
        (svc = rt_map_service_by_name(&r->map, name)) == NULL)
        return WEFT_ENOTFOUND;
    ne = rt_mesh_edges_for(r, svc, edges, RT_MESH_EDGES_MAX);
    if (rt_path_compute(edges, ne, r->id->id, c->egress, &p) < 0 ||
        (l = rt_link_to(r, p.hop[1])) == NULL)
        return WEFT_ENOTFOUND;
    c->resume_tries++;
    c->leg[0].path = p;
    rt_circuit_attach(c, 1, RT_END_LINK, l, &l->ends);
    memset(&m, 0, sizeof(m));
    m = (resume_msg){.req = c->req_id, .id = c->id, .ack = c->resume_ack, .nonce = c->nonce,
                     .mac = c->mac};
    snprintf(m.anchor, sizeof(m.anchor), "%s", c->egress);
    rt_path_format(&p, ps, sizeof(ps));
    pr_info("resume_policy_retry", "circuit=%016llx service=%s path=%s", (unsigned long long)c->id,
            pr_log_q(name), ps);
    return send_link_resume(r, c, c->end[0].peer, &m);
}

/* The far edge (or a router on the way) refused: the failure goes back as it came. */
static void resume_failed(rt_router *r, rt_circuit *c, const pr_frame *f)
{
    char msg[256] = "the far edge refused the resume";
    uint32_t err = (uint32_t)-WEFT_EREFUSED;

    if (c->end[0].kind == RT_END_EDGE) {
        if (retry_resume(r, c, f) == 0)
            return;
        pr_frame_u32(f, PR_H_ERR, &err);
        pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
        fail_to(r, &c->end[0], c->req_id, c->id, -(int)(err & 0x7fffffff), msg, NULL);
        rt_sess_closed_circuit(c->end[0].peer, c->id);
    } else {
        relay_raw(r, &c->end[0], f);
    }
    rt_circuits_del(&r->circuits, c);
}

int rt_resume_on_link_answer(rt_link *l, const pr_frame *f)
{
    rt_router *r = l->r;
    uint32_t role = 0;
    uint64_t id;
    rt_circuit *c;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &id) < 0)
        return WEFT_EPROTO;
    c = rt_circuits_find(&r->circuits, id, l);
    if (c == NULL || !c->resuming || rt_circuit_side(c, l) != 1)
        return 0; /* crossed a timeout or a close */
    if (f->type == PR_EDGE_RESUME_FAIL) {
        resume_failed(r, c, f);
        return 0;
    }
    if (pr_frame_u32(f, PR_H_RESUME_ROLE, &role) < 0 || (role != 1 && role != 2))
        return WEFT_EPROTO;
    if (c->role == RT_ROLE_TRANSIT)
        transit_ok(r, c, f, role);
    else
        new_router_ok(r, c, f, role);
    return 0;
}
