/* Circuits across router links, source routed. The ingress router picks the
 * egress router and the least-cost path to it, and sends LINK_DIAL along the
 * path; each router on it installs circuit -> (previous hop, next hop) and
 * passes the set-up on; the egress router dials the terminator's session (or
 * a service it hosts). Answers, closes and payload then travel hop by hop
 * through the ordinary forwarding table. The egress router trusts the ingress
 * router's token check: links carry only authenticated routers of the map. */
#include <string.h>

#include "proto/log.h"
#include "proto/msg.h"
#include "router/router.h"
#include "weft/errors.h"

#define MAX_EDGES    RT_MESH_EDGES_MAX
#define PATH_STR_CAP (RT_PATH_MAX * RT_ID_CAP)

/* ---- path choice (ingress) ---- */

/* Our own measured links, and the map's links between other routers. */
size_t rt_mesh_edges(rt_router *r, rt_path_edge *out, size_t cap)
{
    const char *me = r->id->id;
    size_t n = 0;

    for (rt_link *l = r->links; l && n < cap; l = l->next)
        if (l->state == RT_LINK_UP && rt_link_to(r, l->peer) == l)
            out[n++] =
                (rt_path_edge){me, l->peer, rt_link_cost(l->srtt_us, pr_conn_queued(l->conn))};
    for (size_t i = 0; i < rt_map_count(&r->map.links) && n < cap; i++) {
        const rt_map_link *ml = rt_map_at(&r->map.links, i);
        if (ml->up && strcmp(ml->a, me) != 0 && strcmp(ml->b, me) != 0 &&
            !rt_failed_link_is(r, ml->a, ml->b))
            out[n++] = (rt_path_edge){ml->a, ml->b, rt_link_cost(ml->rtt_us, 0)};
    }
    return n;
}

static const rt_map_router *router_named(const rt_map *m, const char *s)
{
    const rt_map_router *mr = rt_map_router_get(m, s);

    for (size_t i = 0; mr == NULL && i < rt_map_count(&m->routers); i++) {
        const rt_map_router *x = rt_map_at(&m->routers, i);
        if (strcmp(x->name, s) == 0)
            mr = x;
    }
    return mr;
}

static int route_hosted(rt_router *r, const rt_map_service *svc, const rt_path_edge *e, size_t n,
                        rt_path *path, char *msg, size_t cap)
{
    const rt_map_router *mr = router_named(&r->map, svc->hosted_by);

    if (mr == NULL) {
        snprintf(msg, cap, "service %s is hosted by router %s, which is not in the network map",
                 svc->name, svc->hosted_by);
        return WEFT_ENOTFOUND;
    }
    if (rt_path_compute(e, n, r->id->id, mr->id, path) < 0) {
        snprintf(msg, cap,
                 "service %s is hosted by router %s, which this router cannot reach "
                 "over its links; retry shortly",
                 svc->name, mr->id);
        return WEFT_ENOTFOUND;
    }
    return 0;
}

/* The terminator at the nearest router other than this one. */
static int route_term(rt_router *r, const rt_map_service *svc, const rt_path_edge *e, size_t n,
                      rt_path *path, char *term, size_t termcap, char *msg, size_t cap)
{
    const rt_map_term *t;
    rt_path p;
    int seen = 0, found = 0;

    for (size_t i = 0; (t = rt_map_term_of(&r->map, svc->id, i)) != NULL; i++) {
        if (rt_router_is_me(r, t->router))
            continue; /* stale: our own live terminators were tried first */
        seen++;
        if (rt_path_compute(e, n, r->id->id, t->router, &p) < 0 || (found && p.cost >= path->cost))
            continue;
        *path = p;
        snprintf(term, termcap, "%s", t->id);
        found = 1;
    }
    if (found)
        return 0;
    if (seen)
        snprintf(msg, cap,
                 "service %s is bound only at routers this router cannot reach over "
                 "its links; retry shortly",
                 svc->name);
    else
        snprintf(msg, cap,
                 "service %s has no terminator: no edge is bound to it; is the hosting "
                 "edge running?",
                 svc->name);
    return WEFT_ENOTFOUND;
}

/* ---- service-router policies: which routers may carry a service ---- */

size_t rt_mesh_svc_edges(rt_router *r, const rt_map_service *svc, rt_path_edge *e, size_t n)
{
    size_t k = 0;

    if (svc == NULL || !svc->routers_set)
        return n;
    for (size_t i = 0; i < n; i++)
        if (rt_map_service_router_ok(&r->map, svc, e[i].a) &&
            rt_map_service_router_ok(&r->map, svc, e[i].b))
            e[k++] = e[i];
    return k;
}

size_t rt_mesh_edges_for(rt_router *r, const rt_map_service *svc, rt_path_edge *out, size_t cap)
{
    return rt_mesh_svc_edges(r, svc, out, rt_mesh_edges(r, out, cap));
}

const rt_map_service *rt_circuit_service(rt_router *r, const rt_circuit *c)
{
    const rt_map_service *svc = c->service_id[0] ? rt_map_service_get(&r->map, c->service_id) : NULL;

    return svc ? svc : rt_map_service_by_name(&r->map, c->service);
}

const char *rt_mesh_path_refused(rt_router *r, const rt_map_service *svc, const rt_path *p)
{
    for (size_t i = 0; svc && svc->routers_set && i < p->n; i++)
        if (!rt_map_service_router_ok(&r->map, svc, p->hop[i]))
            return p->hop[i];
    return NULL;
}

void rt_mesh_refusal(rt_router *r, const rt_map_service *svc, const char *router,
                     const char *then, char *msg, size_t cap)
{
    const rt_map_router *mr = rt_map_router_get(&r->map, router);

    snprintf(msg, cap, "service %s may not be carried by router %s (service-router policy); %s",
             svc->name, mr && mr->name[0] ? mr->name : router, then);
}

int rt_mesh_route(rt_router *r, const rt_map_service *svc, rt_path *path, char *term,
                  size_t termcap, char *msg, size_t msgcap)
{
    static rt_path_edge edges[MAX_EDGES];
    size_t n = rt_mesh_edges_for(r, svc, edges, MAX_EDGES);

    term[0] = '\0';
    if (svc->hosted_by[0])
        return route_hosted(r, svc, edges, n, path, msg, msgcap);
    return route_term(r, svc, edges, n, path, term, termcap, msg, msgcap);
}

int rt_mesh_send_dial(rt_router *r, rt_circuit *c, const rt_path *path, const char *term,
                      const pr_frame *f)
{
    static char cert[PR_FRAME_MAX_HDR_LEN + 1];
    char ps[PATH_STR_CAP];
    const uint8_t *kx, *sig;
    size_t kx_len, sig_len, n;
    uint64_t rwnd;
    rt_link *l = rt_link_to(r, path->hop[1]);
    pr_enc e;
    int rc;

    if (l == NULL || rt_path_format(path, ps, sizeof(ps)) < 0 ||
        rt_dial_fields(f, cert, sizeof(cert)) < 0)
        return WEFT_ECLOSED;
    pr_frame_bytes(f, PR_H_KX_PK, &kx, &kx_len);
    pr_frame_bytes(f, PR_H_KX_SIG, &sig, &sig_len);
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_LINK_DIAL, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->id);
    pr_enc_str(&e, PR_H_PATH, ps);
    pr_enc_u32(&e, PR_H_HOP, 1);
    pr_enc_str(&e, PR_H_IDENTITY, c->dialler);
    if (term[0])
        pr_enc_str(&e, PR_H_TERMINATOR, term);
    pr_enc_str(&e, PR_H_SERVICE, c->service);
    pr_enc_bytes(&e, PR_H_KX_PK, kx, kx_len);
    pr_enc_bytes(&e, PR_H_KX_SIG, sig, sig_len);
    pr_enc_str(&e, PR_H_PEER_CERT, cert);
    pr_enc_str(&e, PR_H_MULTIPATH, rt_mp_name(c->mode));
    if (pr_frame_u64(f, PR_H_RWND, &rwnd) == 0)
        pr_enc_u64(&e, PR_H_RWND, rwnd);
    if ((rc = pr_enc_finish(&e, NULL, 0, &n)) < 0)
        return rc;
    c->role = RT_ROLE_INGRESS;
    c->leg_side = 1;
    c->leg[0].path = *path;
    snprintf(c->ingress, sizeof(c->ingress), "%s", r->id->id);
    snprintf(c->egress, sizeof(c->egress), "%s", path->hop[path->n - 1]);
    rt_circuit_attach(c, 1, RT_END_LINK, l, &l->ends);
    pr_info("mesh_dial", "circuit=%016llx service=%s path=%s", (unsigned long long)c->id,
            pr_log_q(c->service), ps);
    return rt_end_write(r, c, 1, r->txbuf, n) < 0 ? WEFT_ECLOSED : 0;
}

/* ---- set-up on transit and egress routers ---- */

typedef struct {
    uint64_t id;
    uint32_t hop;
    rt_path path;
    char service[RT_NAME_CAP];
    char identity[RT_ID_CAP];
    char term[RT_ID_CAP];
    int mode;
} link_dial;

static void dial_fail(rt_link *l, uint64_t id, int err, const char *msg)
{
    size_t n;
    pr_enc e;

    pr_warn("mesh_dial_failed", "circuit=%016llx from=%s reason=%s", (unsigned long long)id,
            l->peer, pr_log_q(msg));
    pr_enc_init(&e, l->r->txbuf, PR_FRAME_MAX, PR_EDGE_DIAL_FAIL, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    pr_enc_str(&e, PR_H_ERR_MSG, msg);
    if (pr_enc_finish(&e, NULL, 0, &n) == 0)
        rt_link_send(l, l->r->txbuf, n);
}

static int read_link_dial(rt_link *l, const pr_frame *f, link_dial *d, const char **why)
{
    static char cert[PR_FRAME_MAX_HDR_LEN + 1];
    char ps[PATH_STR_CAP], mode[16] = "";

    *why = "malformed LINK_DIAL";
    d->term[0] = '\0';
    if (pr_frame_str(f, PR_H_MULTIPATH, mode, sizeof(mode)) == WEFT_EPROTO)
        return WEFT_EPROTO;
    d->mode = rt_mp_mode(mode);
    if (pr_frame_str(f, PR_H_PATH, ps, sizeof(ps)) < 0 || rt_path_parse(ps, &d->path) < 0 ||
        pr_frame_u32(f, PR_H_HOP, &d->hop) < 0 ||
        pr_frame_str(f, PR_H_SERVICE, d->service, sizeof(d->service)) < 0 ||
        pr_frame_str(f, PR_H_IDENTITY, d->identity, sizeof(d->identity)) < 0 ||
        pr_frame_str(f, PR_H_TERMINATOR, d->term, sizeof(d->term)) == WEFT_EPROTO ||
        rt_dial_fields(f, cert, sizeof(cert)) < 0)
        return WEFT_EPROTO;
    *why = "LINK_DIAL path does not run through this router from the sending one";
    if (d->hop == 0 || d->hop >= d->path.n || !rt_router_is_me(l->r, d->path.hop[d->hop]) ||
        strcmp(d->path.hop[d->hop - 1], l->peer) != 0)
        return WEFT_EPROTO;
    return 0;
}

/* Passes the set-up on: the same bytes with the hop index advanced. */
static int pass_on(rt_router *r, rt_circuit *c, const pr_frame *f, uint32_t next_hop)
{
    const pr_header *h = pr_frame_header(f, PR_H_HOP);
    const uint8_t *raw;
    size_t len;

    pr_frame_raw(f, &raw, &len);
    if (h == NULL || len > PR_FRAME_MAX)
        return WEFT_EPROTO;
    memcpy(r->txbuf, raw, len);
    r->txbuf[h->val - raw + 0] = (uint8_t)(next_hop >> 24);
    r->txbuf[h->val - raw + 1] = (uint8_t)(next_hop >> 16);
    r->txbuf[h->val - raw + 2] = (uint8_t)(next_hop >> 8);
    r->txbuf[h->val - raw + 3] = (uint8_t)next_hop;
    return rt_end_write(r, c, 1, r->txbuf, len) < 0 ? WEFT_ECLOSED : 0;
}

static void transit(rt_link *l, rt_circuit *c, const link_dial *d, const pr_frame *f)
{
    const char *next = d->path.hop[d->hop + 1];
    rt_link *nl = rt_link_to(l->r, next);
    char msg[256];

    snprintf(c->host, sizeof(c->host), "router:%s", d->path.hop[d->path.n - 1]);
    c->role = RT_ROLE_TRANSIT;
    if (nl == NULL) {
        snprintf(msg, sizeof(msg), "router %s has no link to router %s; retry", l->r->id->id, next);
        rt_circuit_end(l->r, c, 1, WEFT_ENOTFOUND, msg);
        return;
    }
    rt_circuit_attach(c, 1, RT_END_LINK, nl, &nl->ends);
    pr_info("mesh_transit", "circuit=%016llx from=%s to=%s", (unsigned long long)c->id, l->peer,
            next);
    if (pass_on(l->r, c, f, d->hop + 1) < 0)
        rt_circuit_end(l->r, c, 1, WEFT_ECLOSED, "the link to the next router failed; retry");
}

static void egress_hosted(rt_router *r, rt_circuit *c, const link_dial *d, const pr_frame *f)
{
    const rt_map_service *svc = rt_map_service_by_name(&r->map, d->service);
    char msg[384];

    snprintf(c->host, sizeof(c->host), "router:%s", r->id->id);
    if (svc == NULL || !rt_router_is_me(r, svc->hosted_by)) {
        snprintf(msg, sizeof(msg), "service %s is not hosted by router %s", d->service, r->id->id);
        rt_circuit_end(r, c, 1, WEFT_ENOTFOUND, msg);
    } else if (rt_hosted_dial(r, c, svc, d->identity, f, msg, sizeof(msg)) < 0) {
        rt_circuit_end(r, c, 1, WEFT_EREFUSED, msg);
    }
}

static void egress(rt_link *l, rt_circuit *c, const link_dial *d, const pr_frame *f)
{
    rt_router *r = l->r;
    rt_term *t;
    char msg[384]; /* three ids and a service name (each at most 64) fit whole */

    if (d->term[0] == '\0') {
        egress_hosted(r, c, d, f);
        return;
    }
    t = rt_term_by_id(r, d->term);
    if (t == NULL || t->sess->state != RT_SESS_OPEN || strcmp(t->service, d->service) != 0) {
        snprintf(msg, sizeof(msg),
                 "terminator %s of service %s is no longer bound at router %s; "
                 "retry",
                 d->term, d->service, r->id->id);
        rt_circuit_end(r, c, 1, WEFT_ENOTFOUND, msg);
        return;
    }
    snprintf(c->host, sizeof(c->host), "%s", t->sess->identity);
    rt_circuit_attach(c, 1, RT_END_EDGE, t->sess, &t->sess->ends);
    if (rt_sess_relay_dial(t->sess, c, f) < 0)
        rt_circuit_end(r, c, 1, WEFT_ECLOSED, "the hosting edge's session is closing; retry");
}

static int on_link_dial(rt_link *l, const pr_frame *f)
{
    link_dial d;
    rt_circuit *c;
    const char *why;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &d.id) < 0)
        return WEFT_EPROTO;
    if (read_link_dial(l, f, &d, &why) < 0) {
        dial_fail(l, d.id, WEFT_EPROTO, why);
        return 0;
    }
    if (rt_circuits_add(&l->r->circuits, d.id, &c) < 0) {
        dial_fail(l, d.id, WEFT_EEXISTS, "circuit id already in use at a router on the path");
        return 0;
    }
    c->state = RT_CIRC_DIALING;
    snprintf(c->service, sizeof(c->service), "%s", d.service);
    snprintf(c->dialler, sizeof(c->dialler), "%s", d.identity);
    rt_circuit_attach(c, 0, RT_END_LINK, l, &l->ends);
    c->mode = d.mode;
    if (d.hop + 1 < d.path.n) {
        transit(l, c, &d, f);
        return 0;
    }
    c->role = RT_ROLE_EGRESS;
    c->leg_side = 0;
    c->leg[0].path = d.path;
    snprintf(c->ingress, sizeof(c->ingress), "%s", d.path.hop[0]);
    snprintf(c->egress, sizeof(c->egress), "%s", l->r->id->id);
    egress(l, c, &d, f);
    return 0;
}

/* ---- circuit frames from a link ---- */

/* 1: not ours (any more): drop quietly, it crossed a close. */
static int link_circuit(rt_link *l, const pr_frame *f, rt_circuit **c, int *side)
{
    uint64_t id;

    if (pr_frame_u64(f, PR_H_CIRCUIT, &id) < 0)
        return WEFT_EPROTO;
    *c = rt_circuits_find(&l->r->circuits, id, l);
    if (*c == NULL || (*side = rt_circuit_side(*c, l)) < 0) {
        pr_debug("link_unknown_circuit", "peer=%s circuit=%016llx type=0x%04x", l->peer,
                 (unsigned long long)id, f->type);
        return 1;
    }
    return 0;
}

static int on_answer(rt_link *l, rt_circuit *c, int side, const pr_frame *f)
{
    if (side != 1 || c->state != RT_CIRC_DIALING)
        return 0;
    return rt_circuit_answer(l->r, c, f, "the far router refused the dial");
}

static int on_circuit_frame(rt_link *l, const pr_frame *f)
{
    char msg[256] = "";
    uint32_t err = 0;
    rt_circuit *c;
    int side, rc = link_circuit(l, f, &c, &side);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    switch (f->type) {
    case PR_EDGE_DIAL_OK:
    case PR_EDGE_DIAL_FAIL:
        return on_answer(l, c, side, f);
    case PR_EDGE_CLOSE:
        pr_frame_u32(f, PR_H_ERR, &err);
        pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
        if (rt_leg_closed(l->r, c, rt_circuit_end_of(c, l), -(int)(err & 0x7fffffff), msg))
            return 0;
        rt_circuit_end_by(l->r, c, rt_circuit_end_of(c, l), -(int)(err & 0x7fffffff),
                          msg[0] ? msg : NULL);
        return 0;
    default:
        if (c->state == RT_CIRC_OPEN && rt_forward(l->r, c, side, f) == 1 && l->conn) {
            pr_conn_read_stop(l->conn);
            l->paused = 1;
        }
        return 0;
    }
}

int rt_mesh_on_frame(rt_link *l, const pr_frame *f)
{
    switch (f->type) {
    case PR_LINK_DIAL:
        return on_link_dial(l, f);
    case PR_LINK_REROUTE:
        return rt_mesh_on_reroute(l, f);
    case PR_LINK_LEG_DOWN:
        return rt_mesh_on_leg_down(l, f);
    case PR_LINK_RESUME:
        return rt_resume_on_link(l, f);
    case PR_EDGE_RESUME_OK:
    case PR_EDGE_RESUME_FAIL:
        return rt_resume_on_link_answer(l, f);
    case PR_EDGE_DIAL_OK:
    case PR_EDGE_DIAL_FAIL:
    case PR_EDGE_CLOSE:
    case PR_PAYLOAD_DATA:
    case PR_ACK_WINDOW:
        return on_circuit_frame(l, f);
    default:
        return 0; /* from a newer router */
    }
}
