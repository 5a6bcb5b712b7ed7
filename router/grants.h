/* Withdrawn grants (docs/dataplane.md "Withdrawn grants"): when the map says
 * an identity lost the right to dial or bind a service, the circuits it dialled
 * (or hosts) for that service end at this router and its terminators for the
 * service go, within one map delta of the policy change. */
#ifndef RT_GRANTS_H
#define RT_GRANTS_H

#include <stddef.h>

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

#endif
