/* Withdrawn grants at the router (grants.h). Only the circuits and terminators
 * whose token was issued at or before the withdrawal are touched, so a right
 * granted again (a new token) is not undone when a full map repeats the entry. */
#include "router/grants.h"

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

void rt_rpolicy_enforce(rt_router *r)
{
    const rt_map_router *me = rt_map_router_get(&r->map, r->id->id);
    char why[320];
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
        if (s->state == RT_SESS_CLOSING || s->identity[0] == '\0' ||
            rt_rpolicy_check(s, why, sizeof(why)) == 0)
            continue;
        pr_warn("session_router_policy", "sess=%llu identity=%s reason=%s",
                (unsigned long long)s->num, s->identity, pr_log_q(why));
        rt_sess_kill(s, WEFT_EDENIED, why);
    }
}
