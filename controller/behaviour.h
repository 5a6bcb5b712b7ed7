/* Behaviour policies and device binding (docs/policies.md): what the
 * controller decides for one identity, carried to the ingress router in the
 * service tokens so that the router enforces it while the controller is away.
 *
 * A behaviour policy is a policy record of type "behaviour" selecting
 * identities (identity_roles) and, optionally, services (service_roles; empty
 * means every service), with any of:
 *   "time":         "HH:MM-HH:MM@Zone" (allowed window, IANA zone; the end
 *                   may be before the start: a window across midnight)
 *   "conn_rate":    new circuits per minute
 *   "bandwidth":    bytes per second from the identity, shaped at the ingress
 *   "quota":        bytes per day (UTC day) from and to the identity
 *   "max_circuits": circuits open at once
 *   "actions":      ["block", "log", "alert", "remove"] (at least one)
 * Several policies applying to one identity and service combine to the
 * strictest: the smallest of each limit, the union of the actions, the first
 * time window by policy name. */
#ifndef CTL_BEHAVIOUR_H
#define CTL_BEHAVIOUR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/controller.h"

#define CTL_ACT_BLOCK 0x1
#define CTL_ACT_LOG 0x2
#define CTL_ACT_ALERT 0x4
#define CTL_ACT_REMOVE 0x8

/* Parses "HH:MM-HH:MM@Zone" into minutes of the day; the zone is checked to
 * exist in the system's zone database. 0 or WEFT_EINVAL. */
int ctl_behaviour_parse_window(const char *s, int *from_min, int *to_min, char *zone,
                               size_t zonecap);
/* 1 when zone is "UTC" or a zone of the system's zone database (IANA name). */
int ctl_behaviour_zone_valid(const char *zone);
/* The zone's offset from UTC in seconds at time t (DST included). */
int ctl_behaviour_zone_offset(const char *zone, int64_t t, long *off_s);
/* Action bits from an array of action names; WEFT_EINVAL for an unknown one
 * or an empty array. */
int ctl_behaviour_actions(const json_t *arr, unsigned *bits);

/* Checks the behaviour fields of a policy body (create, or patch when
 * creating is 0) and copies them into fields. 0, or WEFT_EINVAL with a
 * sentence in err. */
int ctl_behaviour_fields(const json_t *body, int creating, json_t *fields, char *err,
                         size_t errcap);

/* The "lim" claim for identity on service from every behaviour policy in
 * policies that applies, at time now; NULL when none does (no limits). */
json_t *ctl_behaviour_limits(const json_t *policies, const json_t *identity,
                             const json_t *service, int64_t now);
/* The union of the actions of every behaviour policy applying to identity
 * (any service): what a violation without a token (a dial of a service the
 * identity is not entitled to) triggers. */
unsigned ctl_behaviour_identity_actions(const json_t *policies, const json_t *identity);

/* Device binding at session time. imei/iccid are what the edge reports (""
 * when it reports nothing). Returns 0 when the session may go on, with
 * *update set to the fields to record (first use, or a flagged change; NULL
 * when nothing changes) and *flag to a sentence when a change is to be
 * logged; WEFT_EDENIED with why filled when it must be refused. */
int ctl_binding_check(const json_t *identity, const char *imei, const char *iccid,
                      json_t **update, char *why, size_t whycap, int *flag);
/* The "hw" claim routers check EDGE_HELLO against, or NULL (mode none, or
 * nothing recorded yet). */
json_t *ctl_binding_claim(const json_t *identity);

/* Signs a service token like ctl_svctoken_issue, with extra claims (an
 * object whose keys are added; may be NULL). */
int ctl_svctoken_issue_ext(const ctl *c, const char *identity_id, const json_t *service,
                           const char *act, int64_t now, const json_t *extra, char **tok,
                           int64_t *exp);

#endif
