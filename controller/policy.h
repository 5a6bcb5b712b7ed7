/* Service policies: which identities may dial or bind which services.
 * A policy selects identities by identity_roles and services by service_roles;
 * each selector is "#role" (carries the role), "@name" (that name or id) or
 * "#all". Semantic "AnyOf": a record is selected when any selector matches;
 * "AllOf": when every selector matches. An empty list selects nothing, and
 * with no policy nobody may dial or bind anything. */
#ifndef CTL_POLICY_H
#define CTL_POLICY_H

#include <jansson.h>

#define CTL_POLICY_DIAL 0x1
#define CTL_POLICY_BIND 0x2

/* 1 when selector matches rec (an identity or service: id, name, roles[]). */
int ctl_policy_selector_match(const char *selector, const json_t *rec);
/* 1 when the selector list sels selects rec under semantic ("AnyOf"|"AllOf"). */
int ctl_policy_selects(const json_t *sels, const char *semantic, const json_t *rec);
/* 1 when policy grants identity its type ("dial"|"bind") on service. */
int ctl_policy_grants(const json_t *policy, const json_t *identity, const json_t *service);
/* CTL_POLICY_DIAL | CTL_POLICY_BIND: what the policies (an array) grant. */
int ctl_policy_access(const json_t *policies, const json_t *identity, const json_t *service);

/* Router policies (docs/policies.md): "router" policies select identities
 * (identity_roles) and routers (router_roles); "service-router" policies
 * services (service_roles) and routers. They only restrict: an identity (a
 * service) that no such policy selects may use (be carried by) every router;
 * one that some policy selects, only the routers those policies select. */
/* 1 when identity may use router under policies (an array of any types). */
int ctl_policy_router_allowed(const json_t *policies, const json_t *identity,
                              const json_t *router);
/* 1 when service may be carried by router under policies. */
int ctl_policy_service_router_allowed(const json_t *policies, const json_t *service,
                                      const json_t *router);

#endif
