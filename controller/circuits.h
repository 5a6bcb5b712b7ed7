/* The controller's view of circuits, from the routers' CTL_CIRCUIT_EVENTs
 * (docs/dataplane.md "Circuit events"). Routers set circuits up without the
 * controller and tell it afterwards; this view is for operators (REST, CLI,
 * metrics), in memory only, and bounded: past its limit the circuit closed
 * longest ago is forgotten first, then the oldest open one. */
#ifndef CTL_CIRCUITS_H
#define CTL_CIRCUITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_CIRCUITS_MAX 100000
#define CTL_CIRCUIT_PATH_MAX 16 /* routers in one path */

typedef struct ctl_circuits ctl_circuits;

/* max 0: CTL_CIRCUITS_MAX. */
int ctl_circuits_new(size_t max, ctl_circuits **out);
void ctl_circuits_free(ctl_circuits *v); /* NULL is a no-op */

/* Applies one event body {"event":"open"|"update"|"close","circuit",
 * "service","identity","path":[router ids],"bytes_up","bytes_down","rtt_us"}
 * reported by router_id at now (Unix seconds). An update or close of an
 * unknown circuit creates it (the open was missed, e.g. across a restart).
 * WEFT_EINVAL for a malformed body. */
int ctl_circuits_event(ctl_circuits *v, const char *router_id, const json_t *ev, int64_t now);

size_t ctl_circuits_count(const ctl_circuits *v);      /* every circuit held */
size_t ctl_circuits_open_count(const ctl_circuits *v); /* those not closed */

/* One page, newest first: state NULL (all), "open" or "closed". *items is a
 * new array of {"id","state","service","identity","router","path",
 * "bytes_up","bytes_down","rtt_us","opened_at","closed_at"}; *total counts
 * every match. */
int ctl_circuits_list(const ctl_circuits *v, const char *state, size_t offset, size_t limit,
                      json_t **items, size_t *total);

#endif
