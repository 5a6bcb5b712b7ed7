/* Withdrawn grants (docs/dataplane.md "Withdrawn grants"): when the map says
 * an identity lost the right to dial or bind a service, the circuits it dialled
 * (or hosts) for that service end at this router and its terminators for the
 * service go, within one map delta of the policy change. */
#ifndef RT_GRANTS_H
#define RT_GRANTS_H

struct rt_router;

/* Called after every map change; does nothing when the map has no entries. */
void rt_grants_enforce(struct rt_router *r);

#endif
