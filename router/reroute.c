/* Legs of mesh circuits: standby and split legs set up after a circuit opens,
 * moving a circuit when a leg breaks (link down, LINK_LEG_DOWN, the map), the
 * LINK_REROUTE and LINK_LEG_DOWN messages on transit and egress routers, and
 * smart rerouting to a clearly better path. The ingress router decides; the
 * egress router keeps the host's session and follows. Nothing here drops a
 * byte for good: the edges keep every unacknowledged frame and send it again
 * on EDGE_RETRANSMIT. */
#include <string.h>

#include "proto/log.h"
#include "proto/msg.h"
#include "router/router.h"
#include "weft/errors.h"

#define PATH_STR_CAP (RT_PATH_MAX * RT_ID_CAP)

static const char *const mode_names[] = {"failover", "split", "redundant"};

int rt_mp_mode(const char *s)
{
    if (s && strcmp(s, "split") == 0)
        return RT_MP_SPLIT;
    if (s && strcmp(s, "redundant") == 0)
        return RT_MP_REDUNDANT;
    return RT_MP_FAILOVER;
}

const char *rt_mp_name(int mode)
{
    return mode >= 0 && mode <= RT_MP_REDUNDANT ? mode_names[mode] : "failover";
}

static int want_legs(int mode)
{
    return mode == RT_MP_SPLIT ? RT_LEGS_MAX : 2;
}

/* ---- failed links ---- */

void rt_failed_link_add(rt_router *r, const char *a, const char *b)
{
    uint64_t now = uv_now(r->loop);
    struct rt_failed_link *slot = &r->failed[0];

    for (int i = 0; i < RT_FAILED_MAX; i++)
        if (r->failed[i].until_ms < slot->until_ms)
            slot = &r->failed[i];
    snprintf(slot->a, sizeof(slot->a), "%s", a);
    snprintf(slot->b, sizeof(slot->b), "%s", b);
    slot->until_ms = now + RT_FAILED_MS;
}

int rt_failed_link_is(rt_router *r, const char *a, const char *b)
{
    uint64_t now = uv_now(r->loop);

    for (int i = 0; i < RT_FAILED_MAX; i++) {
        const struct rt_failed_link *f = &r->failed[i];
        if (f->until_ms > now && ((strcmp(f->a, a) == 0 && strcmp(f->b, b) == 0) ||
                                  (strcmp(f->a, b) == 0 && strcmp(f->b, a) == 0)))
            return 1;
    }
    return 0;
}

/* ---- messages ---- */

static void send_edge_retransmit(rt_router *r, rt_end *e, uint64_t id)
{
    size_t n;
    pr_enc enc;

    if (e->kind != RT_END_EDGE)
        return; /* a hosted service keeps nothing to send again */
    pr_enc_init(&enc, r->txbuf, PR_FRAME_MAX, PR_EDGE_RETRANSMIT, 0);
    pr_enc_u64(&enc, PR_H_CIRCUIT, id);
    if (pr_enc_finish(&enc, NULL, 0, &n) == 0)
        rt_end_write_to(r, e, r->txbuf, n);
}

static void send_leg_down(rt_router *r, rt_end *e, uint64_t id, const char *fa, const char *fb)
{
    char link[2 * RT_ID_CAP + 1];
    size_t n;
    pr_enc enc;

    if (e->kind != RT_END_LINK)
        return;
    snprintf(link, sizeof(link), "%s,%s", fa, fb);
    pr_enc_init(&enc, r->txbuf, PR_FRAME_MAX, PR_LINK_LEG_DOWN, 0);
    pr_enc_u64(&enc, PR_H_CIRCUIT, id);
    pr_enc_str(&enc, PR_H_FAILED_LINK, link);
    pr_enc_u32(&enc, PR_H_ERR, (uint32_t)-WEFT_ERESET);
    if (pr_enc_finish(&enc, NULL, 0, &n) == 0)
        rt_end_write_to(r, e, r->txbuf, n);
}

/* LINK_REROUTE along leg k's path, on leg k. */
static int send_reroute(rt_router *r, rt_circuit *c, int k, uint32_t flags)
{
    char ps[PATH_STR_CAP];
    size_t n;
    pr_enc e;
    int rc;

    if ((rc = rt_path_format(&c->leg[k].path, ps, sizeof(ps))) < 0)
        return rc;
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_LINK_REROUTE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_str(&e, PR_H_PATH, ps);
    pr_enc_u32(&e, PR_H_HOP, 1);
    pr_enc_str(&e, PR_H_MULTIPATH, rt_mp_name(c->mode));
    pr_enc_u32(&e, PR_H_REROUTE, flags);
    if ((rc = pr_enc_finish(&e, NULL, 0, &n)) < 0)
        return rc;
    pr_info("leg_setup", "circuit=%016llx leg=%d path=%s active=%d", (unsigned long long)c->id, k,
            ps, (flags & PR_RR_ACTIVE) != 0);
    return rt_end_write_to(r, rt_circuit_leg(c, k), r->txbuf, n) < 0 ? WEFT_ECLOSED : 0;
}

/* ---- ingress: choosing legs ---- */

/* The cheapest path to the egress router sharing no router (else no link)
 * with the legs c keeps (a router holds one entry per leg it carries), over
 * routers that may carry the service (service-router policies). */
static int new_leg_path(rt_router *r, rt_circuit *c, rt_path *out)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    rt_path keep[RT_LEGS_MAX];
    size_t ne = rt_mesh_edges_for(r, rt_circuit_service(r, c), edges, RT_MESH_EDGES_MAX);
    int n = rt_circuit_nlegs(c);

    for (int k = 0; k < n; k++)
        keep[k] = c->leg[k].path;
    if (rt_path_compute_avoid(edges, ne, r->id->id, c->egress, keep, (size_t)n, RT_DISJ_NODE,
                              out) == 0)
        return 0;
    if (n > 0 && rt_path_compute_avoid(edges, ne, r->id->id, c->egress, keep, (size_t)n,
                                       RT_DISJ_EDGE, out) == 0)
        return 0;
    return WEFT_ENOTFOUND;
}

/* Adds a leg on path p; its index or a negative code. */
static int add_leg(rt_router *r, rt_circuit *c, const rt_path *p, uint32_t flags)
{
    rt_link *l = rt_link_to(r, p->hop[1]);
    int k;

    if (l == NULL)
        return WEFT_ENOTFOUND;
    if ((k = rt_circuit_leg_add(c, l, &l->ends, p)) < 0)
        return k;
    if (send_reroute(r, c, k, flags) < 0) {
        rt_circuit_leg_drop(c, k);
        return WEFT_ECLOSED;
    }
    return k;
}

void rt_legs_fill(rt_router *r, rt_circuit *c)
{
    rt_path p;

    if (c->role != RT_ROLE_INGRESS || c->state != RT_CIRC_OPEN)
        return;
    while (rt_circuit_nlegs(c) < want_legs(c->mode)) {
        if (new_leg_path(r, c, &p) < 0 || add_leg(r, c, &p, 0) < 0)
            break;
    }
}

/* Leg 0 is the new active path: the egress and both edges are told. */
static void activate(rt_router *r, rt_circuit *c, const char *why)
{
    char ps[PATH_STR_CAP] = "";

    send_reroute(r, c, 0, PR_RR_ACTIVE);
    send_edge_retransmit(r, &c->end[0], c->id);
    c->reroutes++;
    r->reroutes++;
    rt_path_format(&c->leg[0].path, ps, sizeof(ps));
    pr_info("circuit_reroute", "circuit=%016llx service=%s path=%s mode=%s reason=%s",
            (unsigned long long)c->id, pr_log_q(c->service), ps, rt_mp_name(c->mode),
            pr_log_q(why));
    rt_control_circuit_event(r, c, "update"); /* the new path */
}

/* A service-router policy ends c: both edges get EDENIED and the sentence. */
static void policy_end(rt_router *r, rt_circuit *c, const char *msg)
{
    pr_warn("circuit_policy_end", "circuit=%016llx service=%s egress=%s reason=%s",
            (unsigned long long)c->id, pr_log_q(c->service), c->egress[0] ? c->egress : "-",
            pr_log_q(msg));
    rt_circuit_end_by(r, c, NULL, WEFT_EDENIED, msg);
}

/* With no leg left, the close still has to reach the egress router (and the
 * host): LINK_REROUTE along p, a path the service may not use, then at once
 * EDGE_CLOSE behind it; p carries nothing else of the circuit. */
static void close_over(rt_router *r, rt_circuit *c, const rt_path *p, const char *msg)
{
    rt_link *l = rt_link_to(r, p->hop[1]);
    char ps[PATH_STR_CAP];
    size_t n;
    pr_enc e;

    if (l == NULL || rt_path_format(p, ps, sizeof(ps)) < 0)
        return;
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_LINK_REROUTE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_str(&e, PR_H_PATH, ps);
    pr_enc_u32(&e, PR_H_HOP, 1);
    pr_enc_str(&e, PR_H_MULTIPATH, rt_mp_name(c->mode));
    pr_enc_u32(&e, PR_H_REROUTE, 0);
    if (pr_enc_finish(&e, NULL, 0, &n) < 0 || rt_link_send(l, r->txbuf, n) < 0)
        return;
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_EDENIED);
    pr_enc_str(&e, PR_H_ERR_MSG, msg);
    if (pr_enc_finish(&e, NULL, 0, &n) == 0 && rt_link_send(l, r->txbuf, n) == 0)
        pr_info("circuit_policy_close_sent", "circuit=%016llx path=%s", (unsigned long long)c->id,
                ps);
}

#define RT_SVC_NO_PATH "no allowed path to the far router is left; circuit closed, dial again"

/* When the paths left to router far all cross a router the service may not
 * use, c ends with EDENIED naming the policy (1), at both edges. */
static int policy_no_path(rt_router *r, rt_circuit *c, const char *far)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    const rt_map_service *svc = rt_circuit_service(r, c);
    size_t ne = rt_mesh_edges(r, edges, RT_MESH_EDGES_MAX);
    const char *bad;
    char msg[384];
    rt_path p, q;

    if (svc == NULL || !svc->routers_set ||
        rt_path_compute(edges, ne, r->id->id, far, &p) < 0 ||
        (bad = rt_mesh_path_refused(r, svc, &p)) == NULL)
        return 0;
    ne = rt_mesh_svc_edges(r, svc, edges, ne);
    if (rt_path_compute(edges, ne, r->id->id, far, &q) == 0)
        return 0;
    rt_mesh_refusal(r, svc, bad, RT_SVC_NO_PATH, msg, sizeof(msg));
    if (rt_circuit_nlegs(c) == 0)
        close_over(r, c, &p, msg);
    policy_end(r, c, msg);
    return 1;
}

/* No path is left for c: EDENIED when a service-router policy rules out
 * those there are, else ERESET. */
static void no_path_end(rt_router *r, rt_circuit *c, const char *why)
{
    char msg[256];

    if (policy_no_path(r, c, c->egress))
        return;
    snprintf(msg, sizeof(msg), "no surviving path to router %s (%s); circuit closed, dial again",
             c->egress, why);
    rt_circuit_end_by(r, c, NULL, WEFT_ERESET, msg);
}

static void ingress_leg_lost(rt_router *r, rt_circuit *c, int k, const char *why)
{
    rt_path p;
    int was_active = k == 0;

    rt_circuit_leg_drop(c, k);
    if (c->state != RT_CIRC_OPEN) {
        rt_circuit_end_by(r, c, NULL, WEFT_ERESET, "a link between routers failed while dialling; "
                                                   "dial again");
        return;
    }
    if (rt_circuit_nlegs(c) == 0) {
        if (new_leg_path(r, c, &p) < 0 || add_leg(r, c, &p, 0) < 0) {
            no_path_end(r, c, why);
            return;
        }
    } else if (!was_active && c->mode == RT_MP_FAILOVER) {
        rt_legs_fill(r, c); /* a standby leg carried nothing */
        return;
    }
    activate(r, c, why);
    rt_legs_fill(r, c);
}

static void egress_leg_lost(rt_router *r, rt_circuit *c, int k)
{
    rt_circuit_leg_drop(c, k);
    if (c->state != RT_CIRC_OPEN) {
        rt_circuit_end_by(r, c, NULL, WEFT_ERESET, "a link between routers failed while dialling");
        return;
    }
    if (rt_circuit_nlegs(c) == 0 && c->orphan_at == 0)
        c->orphan_at = uv_now(r->loop) ? uv_now(r->loop) : 1;
}

/* A closing circuit only waits for its close on the legs left. */
static void closing_leg_lost(rt_router *r, rt_circuit *c, int k)
{
    rt_circuit_leg_drop(c, k);
    if (rt_circuit_nlegs(c) == 0)
        rt_circuit_end_by(r, c, NULL, c->close_err, c->close_msg[0] ? c->close_msg : NULL);
}

void rt_leg_lost(rt_router *r, rt_circuit *c, int k, const char *why)
{
    r->legs_lost++;
    pr_warn("leg_lost", "circuit=%016llx leg=%d role=%s reason=%s", (unsigned long long)c->id, k,
            c->role == RT_ROLE_INGRESS ? "ingress" : "egress", pr_log_q(why));
    if (c->closing_at) {
        closing_leg_lost(r, c, k);
        return;
    }
    if (c->role == RT_ROLE_INGRESS)
        ingress_leg_lost(r, c, k, why);
    else
        egress_leg_lost(r, c, k);
}

int rt_leg_closed(rt_router *r, rt_circuit *c, rt_end *e, int err, const char *msg)
{
    int k;

    if (c->state != RT_CIRC_OPEN || e == NULL || e->side != c->leg_side ||
        rt_circuit_nlegs(c) < 2 || (k = rt_circuit_leg_of(c, e->peer)) < 0)
        return 0;
    if (c->closing_at == 0) {
        c->closing_at = uv_now(r->loop) ? uv_now(r->loop) : 1;
        c->close_err = err;
        snprintf(c->close_msg, sizeof(c->close_msg), "%s", msg ? msg : "");
    }
    pr_debug("leg_closed", "circuit=%016llx leg=%d legs_left=%d", (unsigned long long)c->id, k,
             rt_circuit_nlegs(c) - 1);
    rt_circuit_leg_drop(c, k);
    return 1;
}

/* ---- link down ---- */

void rt_link_lost(rt_link *l, const char *why)
{
    rt_router *r = l->r;

    while (l->ends.head) {
        rt_end *e = l->ends.head;
        rt_circuit *c = e->circ;
        int k = e->side == c->leg_side ? rt_circuit_leg_of(c, l) : -1;

        if (k >= 0 && !r->stopping) {
            rt_failed_link_add(r, r->id->id, l->peer);
            rt_leg_lost(r, c, k, why);
        } else if (c->role == RT_ROLE_TRANSIT) {
            send_leg_down(r, &c->end[!e->side], c->id, r->id->id, l->peer);
            rt_circuits_del(&r->circuits, c);
        } else {
            rt_circuit_end_by(r, c, e, WEFT_ERESET, why);
        }
    }
}

/* ---- LINK_LEG_DOWN ---- */

int rt_mesh_on_leg_down(rt_link *l, const pr_frame *f)
{
    rt_router *r = l->r;
    char failed[2 * RT_ID_CAP + 1] = "", *comma;
    const uint8_t *raw;
    size_t len;
    uint64_t id;
    rt_circuit *c;
    rt_end *e;
    int k;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &id) < 0)
        return WEFT_EPROTO;
    if ((c = rt_circuits_find(&r->circuits, id, l)) == NULL || (e = rt_circuit_end_of(c, l)) == NULL)
        return 0; /* crossed a close */
    if (pr_frame_str(f, PR_H_FAILED_LINK, failed, sizeof(failed)) == 0 &&
        (comma = strchr(failed, ',')) != NULL) {
        *comma = '\0';
        rt_failed_link_add(r, failed, comma + 1);
    }
    if (c->role == RT_ROLE_TRANSIT) {
        pr_frame_raw(f, &raw, &len);
        rt_end_write_to(r, &c->end[!e->side], raw, len);
        rt_circuits_del(&r->circuits, c);
        return 0;
    }
    if ((k = rt_circuit_leg_of(c, l)) >= 0 && e->side == c->leg_side)
        rt_leg_lost(r, c, k, "a router on the path reported the leg broken");
    return 0;
}

/* ---- LINK_REROUTE on transit and egress routers ---- */

typedef struct {
    uint64_t id;
    uint32_t hop, flags;
    rt_path path;
    int mode;
} reroute_msg;

static int read_reroute(rt_link *l, const pr_frame *f, reroute_msg *m)
{
    char ps[PATH_STR_CAP], mode[16] = "";

    if (pr_frame_u64(f, PR_H_CIRCUIT, &m->id) < 0 || pr_frame_str(f, PR_H_PATH, ps, sizeof(ps)) < 0 ||
        rt_path_parse(ps, &m->path) < 0 || pr_frame_u32(f, PR_H_HOP, &m->hop) < 0 ||
        pr_frame_u32(f, PR_H_REROUTE, &m->flags) < 0 ||
        pr_frame_str(f, PR_H_MULTIPATH, mode, sizeof(mode)) == WEFT_EPROTO)
        return WEFT_EPROTO;
    m->mode = rt_mp_mode(mode);
    if (m->hop == 0 || m->hop >= m->path.n || !rt_router_is_me(l->r, m->path.hop[m->hop]) ||
        strcmp(m->path.hop[m->hop - 1], l->peer) != 0)
        return WEFT_EPROTO;
    return 0;
}

/* The same bytes with the hop index advanced, on end 1 of c. */
int rt_mesh_pass_on(rt_router *r, rt_circuit *c, const pr_frame *f, uint32_t next_hop)
{
    const pr_header *h = pr_frame_header(f, PR_H_HOP);
    const uint8_t *raw;
    size_t len, off;

    pr_frame_raw(f, &raw, &len);
    if (h == NULL || h->len != 4 || len > PR_FRAME_MAX)
        return WEFT_EPROTO;
    off = (size_t)(h->val - raw);
    memcpy(r->txbuf, raw, len);
    r->txbuf[off + 0] = (uint8_t)(next_hop >> 24);
    r->txbuf[off + 1] = (uint8_t)(next_hop >> 16);
    r->txbuf[off + 2] = (uint8_t)(next_hop >> 8);
    r->txbuf[off + 3] = (uint8_t)next_hop;
    return rt_end_write(r, c, 1, r->txbuf, len) < 0 ? WEFT_ECLOSED : 0;
}

static void reroute_transit(rt_link *l, const reroute_msg *m, const pr_frame *f)
{
    rt_router *r = l->r;
    const char *next = m->path.hop[m->hop + 1];
    rt_link *nl = rt_link_to(r, next);
    rt_circuit *c = rt_circuits_find(&r->circuits, m->id, l);

    if (c != NULL && c->role != RT_ROLE_TRANSIT)
        return; /* a path through one of the circuit's own ends: not ours to follow */
    if (c == NULL) {
        if (rt_circuits_add_leg(&r->circuits, m->id, &c) < 0)
            return;
        c->role = RT_ROLE_TRANSIT;
        c->state = RT_CIRC_OPEN;
        c->mode = m->mode;
        snprintf(c->host, sizeof(c->host), "router:%s", m->path.hop[m->path.n - 1]);
        rt_circuit_attach(c, 0, RT_END_LINK, l, &l->ends);
    }
    if (nl == NULL) {
        send_leg_down(r, &c->end[0], m->id, r->id->id, next);
        rt_circuits_del(&r->circuits, c);
        return;
    }
    if (c->end[1].kind == RT_END_LINK && c->end[1].peer != nl)
        send_leg_down(r, &c->end[1], m->id, r->id->id, next); /* the old way on is left */
    rt_circuit_attach(c, 1, RT_END_LINK, nl, &nl->ends);
    if (rt_mesh_pass_on(r, c, f, m->hop + 1) < 0) {
        send_leg_down(r, &c->end[0], m->id, r->id->id, next);
        rt_circuits_del(&r->circuits, c);
    }
}

/* The egress no longer has the circuit: the ingress must end it. */
static void refuse_reroute(rt_link *l, uint64_t id)
{
    size_t n;
    pr_enc e;

    pr_enc_init(&e, l->r->txbuf, PR_FRAME_MAX, PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_ENOTFOUND);
    pr_enc_str(&e, PR_H_ERR_MSG, "the circuit is no longer held by the egress router; dial again");
    if (pr_enc_finish(&e, NULL, 0, &n) == 0)
        rt_link_send(l, l->r->txbuf, n);
}

static void reroute_egress(rt_link *l, const reroute_msg *m)
{
    rt_router *r = l->r;
    rt_circuit *c = rt_circuits_find_role(&r->circuits, m->id, RT_ROLE_EGRESS);
    int k;

    if (c == NULL || c->state != RT_CIRC_OPEN || c->closing_at ||
        strcmp(c->ingress, m->path.hop[0]) != 0) {
        refuse_reroute(l, m->id);
        return;
    }
    if ((k = rt_circuit_leg_of(c, l)) < 0) {
        if (rt_circuit_nlegs(c) == RT_LEGS_MAX) { /* the oldest standby makes room */
            send_leg_down(r, rt_circuit_leg(c, RT_LEGS_MAX - 1), c->id, r->id->id, "-");
            rt_circuit_leg_drop(c, RT_LEGS_MAX - 1);
        }
        k = rt_circuit_leg_add(c, l, &l->ends, &m->path);
    }
    c->leg[k].path = m->path;
    c->mode = m->mode;
    c->orphan_at = 0;
    if (m->flags & PR_RR_ACTIVE) {
        rt_circuit_leg_promote(c, k);
        send_edge_retransmit(r, &c->end[1], c->id);
        pr_info("circuit_rerouted", "circuit=%016llx from=%s legs=%d", (unsigned long long)c->id,
                l->peer, rt_circuit_nlegs(c));
    }
}

int rt_mesh_on_reroute(rt_link *l, const pr_frame *f)
{
    reroute_msg m;

    if (read_reroute(l, f, &m) < 0) {
        pr_warn("reroute_malformed", "peer=%s", l->peer);
        return 0;
    }
    if (m.hop + 1 < m.path.n)
        reroute_transit(l, &m, f);
    else
        reroute_egress(l, &m);
    return 0;
}

/* ---- upkeep ---- */

uint64_t rt_circuit_rtt(rt_router *r, rt_circuit *c)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    size_t ne;
    uint64_t cost;

    if (c->leg_side < 0 || c->leg[0].path.n < 2)
        return 0;
    ne = rt_mesh_edges(r, edges, RT_MESH_EDGES_MAX);
    cost = rt_path_cost(edges, ne, &c->leg[0].path);
    return cost == UINT64_MAX ? 0 : cost;
}

static int same_path(const rt_path *a, const rt_path *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->hop[i], b->hop[i]) != 0)
            return 0;
    return 1;
}

static void retire(rt_router *r, rt_circuit *c, int k)
{
    send_leg_down(r, rt_circuit_leg(c, k), c->id, r->id->id, "-");
    rt_circuit_leg_drop(c, k);
}

/* Retires the legs crossing a router that svc may no longer use. */
static void retire_refused(rt_router *r, rt_circuit *c, const rt_map_service *svc)
{
    const char *bad;

    for (int k = rt_circuit_nlegs(c) - 1; k >= 0; k--)
        if ((bad = rt_mesh_path_refused(r, svc, &c->leg[k].path)) != NULL) {
            pr_info("leg_policy_retired", "circuit=%016llx leg=%d router=%s service=%s",
                    (unsigned long long)c->id, k, bad, pr_log_q(c->service));
            retire(r, c, k);
        }
}

/* Moves c to path best, make-before-break: legs sharing a router or link with
 * it are retired first (their LINK_LEG_DOWN follows the frames already sent
 * on them, so none is lost), best becomes the active leg, and only then do
 * the legs the service may no longer cross go. */
static void move_to(rt_router *r, rt_circuit *c, const rt_path *best, const char *why)
{
    int k;

    for (k = 0; k < rt_circuit_nlegs(c); k++)
        if (same_path(&c->leg[k].path, best))
            break;
    if (k == rt_circuit_nlegs(c)) {
        for (k = rt_circuit_nlegs(c) - 1; k >= 0; k--)
            if (rt_path_shares_node(&c->leg[k].path, best) ||
                rt_path_shares_edge(&c->leg[k].path, best) || rt_circuit_nlegs(c) == RT_LEGS_MAX)
                retire(r, c, k);
        if ((k = add_leg(r, c, best, 0)) < 0) {
            if (rt_circuit_nlegs(c) == 0)
                rt_circuit_end_by(r, c, NULL, WEFT_ERESET, "rerouting failed; dial again");
            return;
        }
    }
    rt_circuit_leg_promote(c, k);
    activate(r, c, why);
    retire_refused(r, c, rt_circuit_service(r, c));
    rt_legs_fill(r, c);
}

typedef struct {
    rt_router *r;
    rt_path_edge *edges;
    size_t ne;
    uint64_t now;
    int upkeep;
    unsigned cached, evict; /* svc_cache entries filled this upkeep, the next to replace */
} tick_ctx;

/* The upkeep's edges filtered for a few services: a fleet's circuits share
 * few services, so a restricted one costs one filter an upkeep, not one per
 * circuit. Valid for one upkeep (the map does not change within it). */
#define SVC_CACHE 4
static struct {
    const rt_map_service *svc;
    size_t ne;
    rt_path_edge e[RT_MESH_EDGES_MAX];
} svc_cache[SVC_CACHE];

static const rt_path_edge *edges_for(tick_ctx *t, const rt_map_service *svc, size_t *ne)
{
    unsigned i;

    *ne = t->ne;
    if (svc == NULL || !svc->routers_set)
        return t->edges;
    for (i = 0; i < t->cached && svc_cache[i].svc != svc; i++)
        ;
    if (i == t->cached) {
        i = t->cached < SVC_CACHE ? t->cached++ : t->evict++ % SVC_CACHE;
        svc_cache[i].svc = svc;
        memcpy(svc_cache[i].e, t->edges, t->ne * sizeof(*t->edges));
        svc_cache[i].ne = rt_mesh_svc_edges(t->r, svc, svc_cache[i].e, t->ne);
    }
    *ne = svc_cache[i].ne;
    return svc_cache[i].e;
}

static void leg_costs(tick_ctx *t, rt_circuit *c)
{
    for (int k = 0; k < rt_circuit_nlegs(c); k++) {
        uint64_t cost = rt_path_cost(t->edges, t->ne, &c->leg[k].path);
        c->leg[k].cost = cost == UINT64_MAX ? 0 : cost;
    }
}

/* The better path is looked for among the routers that may carry the service. */
static void smart_move(tick_ctx *t, rt_circuit *c)
{
    size_t ne;
    const rt_path_edge *e = edges_for(t, rt_circuit_service(t->r, c), &ne);
    rt_path best;
    uint64_t cur = rt_path_cost(t->edges, t->ne, &c->leg[0].path);

    if (rt_path_compute(e, ne, t->r->id->id, c->egress, &best) < 0 ||
        same_path(&best, &c->leg[0].path)) {
        rt_hyst_update(&c->hyst, cur, cur, t->now);
        return;
    }
    if (rt_hyst_update(&c->hyst, cur, best.cost, t->now))
        move_to(t->r, c, &best, "a clearly better path (smart rerouting)");
}

/* Long-lived circuits: running byte counts and RTT every RT_UPDATE_MS. */
static void maybe_update(tick_ctx *t, rt_circuit *c)
{
    uint64_t every = t->r->update_ms ? t->r->update_ms : RT_UPDATE_MS;

    if (c->state == RT_CIRC_OPEN && !c->resuming &&
        (c->role == RT_ROLE_INGRESS || c->role == RT_ROLE_LOCAL) && c->event_ms &&
        t->now - c->event_ms >= every)
        rt_control_circuit_event(t->r, c, "update");
}

static void tick_circuit(void *arg, rt_circuit *c)
{
    tick_ctx *t = arg;

    maybe_update(t, c);
    if (c->closing_at) {
        /* A leg that never brings its close (a silent path) ends it anyway. */
        if (t->now - c->closing_at >= RT_ORPHAN_MS)
            rt_circuit_end_by(t->r, c, NULL, c->close_err, c->close_msg[0] ? c->close_msg : NULL);
        return;
    }
    if (c->role == RT_ROLE_EGRESS && c->orphan_at && t->now - c->orphan_at >= RT_ORPHAN_MS) {
        rt_circuit_end_by(t->r, c, NULL, WEFT_ERESET,
                          "every path to the dialling side's router failed; dial again");
        return;
    }
    if (!t->upkeep || c->state != RT_CIRC_OPEN || c->leg_side < 0)
        return;
    leg_costs(t, c);
    if (c->role == RT_ROLE_INGRESS && c->mode == RT_MP_FAILOVER && rt_circuit_nlegs(c) > 0)
        smart_move(t, c);
    else if (c->role == RT_ROLE_INGRESS)
        rt_legs_fill(t->r, c);
}

void rt_reroute_tick(rt_router *r)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    tick_ctx t = {.r = r, .edges = edges, .now = uv_now(r->loop)};

    if (r->circuits.n == 0)
        return;
    t.upkeep = t.now - r->last_upkeep_ms >= RT_UPKEEP_MS;
    if (t.upkeep) {
        r->last_upkeep_ms = t.now;
        t.ne = rt_mesh_edges(r, edges, RT_MESH_EDGES_MAX);
    }
    rt_circuits_each(&r->circuits, tick_circuit, &t);
}

/* ---- the map says a router or link is down ---- */

static int path_down(rt_router *r, const rt_path *p)
{
    for (size_t i = 1; i < p->n; i++) {
        const rt_map_router *mr = rt_map_router_get(&r->map, p->hop[i]);
        if (mr == NULL || (mr->online_known && !mr->online))
            return 1;
    }
    for (size_t i = 1; i + 1 < p->n; i++) {
        char id[RT_LINK_ID_CAP];
        const rt_map_link *ml;
        int lt = strcmp(p->hop[i], p->hop[i + 1]) < 0;
        snprintf(id, sizeof(id), "%s|%s", lt ? p->hop[i] : p->hop[i + 1],
                 lt ? p->hop[i + 1] : p->hop[i]);
        for (size_t j = 0; j < rt_map_count(&r->map.links); j++) {
            ml = rt_map_at(&r->map.links, j);
            if (strcmp(ml->id, id) == 0 && !ml->up)
                return 1;
        }
    }
    return 0;
}

static void check_circuit(void *arg, rt_circuit *c)
{
    rt_router *r = arg;

    if (c->role == RT_ROLE_LOCAL) {
        rt_legs_policy(r, c);
        return;
    }
    if (c->role != RT_ROLE_INGRESS || c->state != RT_CIRC_OPEN || c->closing_at)
        return;
    for (int k = rt_circuit_nlegs(c) - 1; k >= 0; k--) {
        if (!path_down(r, &c->leg[k].path))
            continue;
        send_leg_down(r, rt_circuit_leg(c, k), c->id, r->id->id, "-");
        rt_leg_lost(r, c, k, "the network map says a router or link on the path is down");
        return; /* c may be gone; the next map change looks again */
    }
    rt_legs_policy(r, c);
}

void rt_legs_check_map(rt_router *r)
{
    rt_circuits_each(&r->circuits, check_circuit, r);
}

/* ---- the map says the service may no longer cross a router ---- */

#define POLICY_WHY "a service-router policy no longer lets the service cross a router of the path"

/* Legs crossing a router the service may no longer use go; the circuit keeps
 * an allowed leg, moves to an allowed path (make-before-break, as smart
 * rerouting does) or, with none left, ends with EDENIED. */
static int policy_ingress(rt_router *r, rt_circuit *c, const rt_map_service *svc)
{
    static rt_path_edge edges[RT_MESH_EDGES_MAX];
    const char *bad = rt_mesh_path_refused(r, svc, &c->leg[0].path);
    int k, n = rt_circuit_nlegs(c), good = -1;
    char msg[384], ps[PATH_STR_CAP] = "";
    rt_path best;
    size_t ne;

    for (k = 0; k < n && good < 0; k++)
        if (rt_mesh_path_refused(r, svc, &c->leg[k].path) == NULL)
            good = k;
    if (n == 0)
        return 0;
    if (good == 0) { /* leg 0 stays: only standby or split legs may cross such a router */
        retire_refused(r, c, svc);
        if (rt_circuit_nlegs(c) < n)
            rt_legs_fill(r, c);
        return 0;
    }
    if (good > 0) {
        best = c->leg[good].path;
    } else {
        ne = rt_mesh_edges_for(r, svc, edges, RT_MESH_EDGES_MAX);
        if (rt_path_compute(edges, ne, r->id->id, c->egress, &best) < 0) {
            rt_mesh_refusal(r, svc, bad ? bad : r->id->id, RT_SVC_NO_PATH, msg, sizeof(msg));
            policy_end(r, c, msg);
            return 1;
        }
    }
    rt_path_format(&best, ps, sizeof(ps));
    pr_info("circuit_policy_move", "circuit=%016llx service=%s router=%s path=%s",
            (unsigned long long)c->id, pr_log_q(c->service), bad, ps);
    move_to(r, c, &best, POLICY_WHY);
    return 1;
}

static int policy_local(rt_router *r, rt_circuit *c, const rt_map_service *svc)
{
    char msg[384];

    if (rt_map_service_router_ok(&r->map, svc, r->id->id))
        return 0;
    rt_mesh_refusal(r, svc, r->id->id, "circuit closed, " RT_SVC_DIAL_ELSEWHERE, msg, sizeof(msg));
    policy_end(r, c, msg);
    return 1;
}

int rt_legs_policy(rt_router *r, rt_circuit *c)
{
    const rt_map_service *svc;

    if (c->state != RT_CIRC_OPEN || c->closing_at || c->resuming ||
        (c->role != RT_ROLE_INGRESS && c->role != RT_ROLE_LOCAL))
        return 0;
    if ((svc = rt_circuit_service(r, c)) == NULL || !svc->routers_set)
        return 0;
    return c->role == RT_ROLE_LOCAL ? policy_local(r, c, svc) : policy_ingress(r, c, svc);
}

void rt_legs_open(rt_router *r, rt_circuit *c)
{
    if (rt_legs_policy(r, c) == 0)
        rt_legs_fill(r, c);
}
