/* Withdrawn grants at the router (grants.h). Only the circuits and terminators
 * whose token was issued at or before the withdrawal are touched, so a right
 * granted again (a new token) is not undone when a full map repeats the entry. */
#include "router/grants.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "router/circuit.h"
#include "router/router.h"
#include "weft/errors.h"

#define WITHDRAWN_MSG "a policy change withdrew access to this service; ask the administrator"

/* The first circuit s dialled whose dial right is withdrawn, or NULL. */
static rt_circuit *withdrawn_dial(rt_router *r, rt_sess *s, long long now)
{
    for (rt_end *e = s->ends.head; e; e = e->next) {
        rt_circuit *c = e->circ;
        if (e == &c->end[0] && c->service_id[0] &&
            rt_map_grant_withdrawn(&r->map, s->identity, c->service_id, "dial", c->token_iat,
                                   now))
            return c;
    }
    return NULL;
}

/* The first circuit s hosts through terminator t's service, or NULL. */
static rt_circuit *hosted_by(rt_sess *s, const rt_term *t)
{
    for (rt_end *e = s->ends.head; e; e = e->next) {
        rt_circuit *c = e->circ;
        if (e == &c->end[1] && strcmp(c->service, t->service) == 0)
            return c;
    }
    return NULL;
}

/* Ending a circuit can unlink any end of the session: start over after each. */
static void end_dials(rt_router *r, rt_sess *s, long long now)
{
    rt_circuit *c;

    while ((c = withdrawn_dial(r, s, now)) != NULL) {
        pr_warn("grant_withdrawn", "act=dial identity=%s service=%s circuit=%016llx", s->identity,
                pr_log_q(c->service), (unsigned long long)c->id);
        rt_circuit_end(r, c, -1, WEFT_EDENIED, WITHDRAWN_MSG);
    }
}

/* The hosting edge hears it at once (EDGE_UNBIND), with the cause the
 * controller gave (the policy), rather than at its next session-data
 * refresh. The sentence fits an edge's 255 bytes: with long names, it goes
 * without the cause. */
static void tell_unbound(rt_router *r, const rt_term *t)
{
    const rt_map_grant *g = rt_map_grant_get(&r->map, t->sess->identity, t->service_id, "bind");
    char msg[256];
    int n = snprintf(msg, sizeof(msg),
                     "a policy change withdrew this identity's right to host service %s (%s); "
                     "the router removed the terminator until a bind policy grants it again",
                     t->service, g && g->cause[0] ? g->cause : "a bind policy deleted or changed");

    if (n < 0 || (size_t)n >= sizeof(msg))
        snprintf(msg, sizeof(msg),
                 "a policy change withdrew this identity's right to host service %.128s",
                 t->service);
    rt_sess_unbound(t->sess, t, WEFT_EDENIED, msg);
}

static void end_binds(rt_router *r, long long now)
{
    rt_term **p = &r->terms;
    rt_circuit *c;

    while (*p) {
        rt_term *t = *p;
        if (t->sess->state == RT_SESS_CLOSING ||
            !rt_map_grant_withdrawn(&r->map, t->sess->identity, t->service_id, "bind",
                                    t->token_iat, now)) {
            p = &t->next;
            continue;
        }
        pr_warn("grant_withdrawn", "act=bind identity=%s service=%s terminator=%s",
                t->sess->identity, pr_log_q(t->service), t->id);
        while ((c = hosted_by(t->sess, t)) != NULL)
            rt_circuit_end(r, c, -1, WEFT_EDENIED, WITHDRAWN_MSG);
        tell_unbound(r, t);
        *p = t->next;
        rt_control_term_remove(r, t);
        free(t);
    }
}

void rt_grants_enforce(rt_router *r)
{
    long long now = (long long)time(NULL);

    if (rt_map_count(&r->map.grants) == 0)
        return;
    for (rt_sess *s = r->sessions; s; s = s->next)
        if (s->state != RT_SESS_CLOSING)
            end_dials(r, s, now);
    end_binds(r, now);
}

/* ---- router policies ---- */

int rt_rpolicy_check(rt_sess *s, char *why, size_t cap)
{
    rt_router *r = s->r;
    const rt_map_router *me = rt_map_router_get(&r->map, r->id->id);

    if (rt_map_identity_allowed(&r->map, r->id->id, s->identity,
                                s->roles_known ? s->roles : NULL))
        return 0;
    snprintf(why, cap,
             "identity %s may not use router %s (router policy); the edge will use another "
             "router",
             s->identity, me && me->name[0] ? me->name : r->id->id);
    return WEFT_EDENIED;
}

/* FNV-1a over our router object's policy fields: most map changes (links,
 * terminators) leave them alone, and then no session needs a look. */
static uint64_t rpol_hash(const rt_map_router *me)
{
    const char *parts[] = {me->restricted, "|", me->allow};
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < 3; i++)
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* Ends s when this router's policies refuse its identity; 1 if it did. */
static int rpolicy_close(rt_sess *s, const char *source)
{
    char why[320];

    if (s->state == RT_SESS_CLOSING || s->identity[0] == '\0' ||
        rt_rpolicy_check(s, why, sizeof(why)) == 0)
        return 0;
    pr_warn("session_router_policy", "sess=%llu identity=%s roles=%s source=%s reason=%s",
            (unsigned long long)s->num, s->identity, s->roles_known ? s->roles : "-", source,
            pr_log_q(why));
    rt_sess_kill(s, WEFT_EDENIED, why);
    return 1;
}

static int policed(rt_router *r)
{
    const rt_map_router *me = rt_map_router_get(&r->map, r->id->id);

    return me != NULL && me->policed;
}

void rt_rpolicy_enforce(rt_router *r)
{
    const rt_map_router *me = rt_map_router_get(&r->map, r->id->id);
    rt_sess *s, *n;
    uint64_t h;

    if (me == NULL || !me->policed) {
        r->rpol_hash = 0;
        return;
    }
    if ((h = rpol_hash(me)) == r->rpol_hash)
        return;
    r->rpol_hash = h;
    for (s = r->sessions; s; s = n) {
        n = s->next;
        rpolicy_close(s, "map");
    }
    rt_rpolicy_ask(r, NULL); /* sessions whose roles the controller has not told yet */
}

/* ---- identities' roles from the controller (docs/policies.md) ---- */

int rt_roles_join(const json_t *roles, char *out, size_t cap)
{
    const json_t *v;
    size_t i, off = 0;

    out[0] = '\0';
    if (!json_is_array(roles))
        return WEFT_EPROTO;
    json_array_foreach(roles, i, v)
    {
        const char *name = json_string_value(v);
        int n;
        if (name == NULL || name[0] == '\0' || strchr(name, ',') != NULL)
            continue;
        n = snprintf(out + off, cap - off, "%s#%s", off ? "," : "", name);
        if (n < 0 || (size_t)n >= cap - off) {
            out[off] = '\0';
            break;
        }
        off += (size_t)n;
    }
    return 0;
}

void rt_rpolicy_ask(rt_router *r, rt_sess *only)
{
    json_t *ids;

    if (!policed(r) || (ids = json_object()) == NULL)
        return;
    for (rt_sess *s = only ? only : r->sessions; s; s = only ? NULL : s->next)
        if (s->state != RT_SESS_CLOSING && s->identity[0] && !s->roles_ctl)
            json_object_set_new(ids, s->identity, json_true());
    if (json_object_size(ids) > 0)
        rt_control_roles_ask(r, ids);
    json_decref(ids);
}

void rt_rpolicy_control_open(rt_router *r)
{
    for (rt_sess *s = r->sessions; s; s = s->next)
        s->roles_ctl = 0; /* changes made while the channel was down were not pushed */
    rt_rpolicy_ask(r, NULL);
}

/* Newer roles for s (a push is newer than a token issued in the same second). */
static void take_roles(rt_sess *s, const json_t *roles, long long at)
{
    if (s->roles_known && at < s->roles_at)
        return;
    rt_roles_join(roles, s->roles, sizeof(s->roles));
    s->roles_known = 1;
    s->roles_ctl = 1;
    s->roles_at = at;
}

int rt_rpolicy_roles(rt_router *r, const json_t *body)
{
    const json_t *roles = json_object_get(body, "roles"), *at = json_object_get(body, "at"), *v;
    size_t seen = 0, closed = 0;
    rt_sess *s, *n;

    if (!json_is_object(roles) || !json_is_integer(at))
        return WEFT_EPROTO;
    for (s = r->sessions; s; s = n) {
        n = s->next;
        if (s->state == RT_SESS_CLOSING || !json_is_array(v = json_object_get(roles, s->identity)))
            continue;
        take_roles(s, v, (long long)json_integer_value(at));
        seen++;
        closed += (size_t)rpolicy_close(s, "controller");
    }
    pr_debug("roles_received", "identities=%zu sessions=%zu closed=%zu", json_object_size(roles),
             seen, closed);
    return 0;
}
