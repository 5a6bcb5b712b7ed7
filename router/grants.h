/* Withdrawn grants (docs/dataplane.md "Withdrawn grants"): when the map says
 * an identity lost the right to dial or bind a service, the circuits it dialled
 * (or hosts) for that service end at this router and its terminators for the
 * service go, within one map delta of the policy change. */
#ifndef RT_GRANTS_H
#define RT_GRANTS_H

#include <stddef.h>
#include <jansson.h>

struct rt_router;

/* Called after every map change; does nothing when the map has no entries. */
void rt_grants_enforce(struct rt_router *r);

/* Router policies (docs/policies.md "Router policies"). */
struct rt_sess;
/* 0 when the session's identity may use this router (with the roles of its
 * newest token, or, before any token, whatever the map decides without them);
 * WEFT_EDENIED and a sentence in why otherwise. */
int rt_rpolicy_check(struct rt_sess *s, char *why, size_t cap);
/* Ends the sessions that the map no longer lets use this router. */
void rt_rpolicy_enforce(struct rt_router *r);

/* Identities' roles from the controller (CTL_ROLES, docs/policies.md "Router
 * policies"), so that a role change or a policy change holds on live sessions
 * without waiting for a token. */
/* A JSON array of role names as "#a,#b" (the form rt_sel_match takes); roles
 * with a ',' and those past cap are left out. WEFT_EPROTO: not an array. */
int rt_roles_join(const json_t *roles, char *out, size_t cap);
/* Asks the controller (CTL_ROLES_ASK) for the roles of only's identity, or
 * (only NULL) of every session whose roles it has not told since the channel
 * opened; nothing when no router policy names this router. */
void rt_rpolicy_ask(struct rt_router *r, struct rt_sess *only);
/* The control channel (re)opened: pushes may have been missed; ask again. */
void rt_rpolicy_control_open(struct rt_router *r);
/* A CTL_ROLES body ({"at": UNIX, "roles": {"IDENTITY": ["role", ...]}}): the
 * sessions of those identities take the roles (unless a newer token told
 * theirs) and those the router policies now refuse end with EDENIED. */
int rt_rpolicy_roles(struct rt_router *r, const json_t *body);

#endif
