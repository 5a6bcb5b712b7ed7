/* Limits across routers on the router side (docs/policies.md "Limits across
 * routers"; the figures and decisions are router/enforce.c's): every
 * RT_USAGE_MS while the control channel is open, CTL_USAGE reports what the
 * identities with a quota, max_circuits or bandwidth limit use here, and
 * CTL_USAGE_NET brings what they use through the other routers. Reports
 * carry absolute figures (bytes of the day, circuits open now), so that a
 * lost one is made good by the next and nothing waits for an
 * acknowledgement. */
#ifndef RT_USAGE_H
#define RT_USAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "router/enforce.h"

#define RT_USAGE_BATCH_IDS   100  /* identities per CTL_USAGE: under 16 KiB whatever the ids */
#define RT_USAGE_NET_IDS_MAX 1024 /* identities one CTL_USAGE_NET may carry */
#define RT_USAGE_MAX         (1LL << 53) /* bytes and rates: what a JSON number holds exactly */

struct rt_router;

/* One CTL_USAGE entry: {"id", and "b", "c", "r", "q", "m", "w" when not 0}. */
json_t *rt_usage_json(const rt_usage *u);
/* A CTL_USAGE_NET body {"ids": [{"id", "day", "b", "c", "r", "n"}]} (keys
 * but id optional, 0 when absent; unknown keys ignored): every entry is
 * checked before any is applied to e. WEFT_EJSON or WEFT_EPROTO with a
 * sentence in err when malformed (nothing applied); else the number applied. */
int rt_usage_net_apply(rt_enforce *e, const uint8_t *body, size_t len, char *err, size_t errcap);

/* ---- glue with the router ---- */
/* Every router tick: a report pass when one is due and the channel is open. */
void rt_usage_tick(struct rt_router *r);
/* The router stops (before its control channel closes): a last pass now. */
void rt_usage_stop(struct rt_router *r);
/* The control channel opened: the next pass reports everything in use. */
void rt_usage_control_open(struct rt_router *r);
/* It closed: the other routers' circuits and rates are forgotten. */
void rt_usage_control_closed(struct rt_router *r);
/* CTL_USAGE_NET from the controller (a bad body is logged and skipped). */
void rt_usage_net_frame(struct rt_router *r, const uint8_t *body, size_t len);

#endif
