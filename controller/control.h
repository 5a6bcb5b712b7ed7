/* The control channel server (docs/dataplane.md "Control channel and the
 * network map"): routers dial it over TLS 1.3 with their router certificate,
 * send CTL_HELLO and receive CTL_MAP_FULL, then a CTL_MAP_DELTA for every
 * change of the network map. They report terminators (CTL_TERM_ADD /
 * CTL_TERM_REMOVE) and heartbeat with CTL_PING; a router silent for
 * CTL_CONTROL_DEAD_MS is dropped and its terminators leave the map. */
#ifndef CTL_CONTROL_H
#define CTL_CONTROL_H

#include <uv.h>

#include "controller/controller.h"

#define CTL_CONTROL_DEAD_MS 15000
#define CTL_CONTROL_SWEEP_MS 1000

typedef struct ctl_control ctl_control;

/* Listens on addr ("HOST:PORT"; port 0 picks one) with the controller's
 * server certificate, requiring client certificates from the network CA.
 * c->map must be set: the server installs itself as its delta callback. */
int ctl_control_start(uv_loop_t *loop, ctl *c, const char *addr, ctl_control **out);
/* The bound TCP port, or -1. */
int ctl_control_port(const ctl_control *s);
/* Overrides CTL_CONTROL_DEAD_MS (tests); the sweep then runs at least four
 * times per period. */
void ctl_control_set_dead_ms(ctl_control *s, unsigned dead_ms);
/* Routers whose control connection is open now. */
unsigned ctl_control_count(const ctl_control *s);
/* Stops listening and closes every connection; cb (may be NULL) runs once
 * every handle closed, and the server is freed then. */
void ctl_control_stop(ctl_control *s, void (*cb)(void *arg), void *arg);

#endif
