/* The control channel server (docs/dataplane.md "Control channel and the
 * network map"): routers dial it over TLS 1.3 with their router certificate,
 * send CTL_HELLO and receive CTL_MAP_FULL, then a CTL_MAP_DELTA for every
 * change of the network map. They report terminators (CTL_TERM_ADD /
 * CTL_TERM_REMOVE), their links (CTL_LINK_REPORT) and circuits
 * (CTL_CIRCUIT_EVENT), and heartbeat with CTL_PING; a router silent for
 * CTL_CONTROL_DEAD_MS is dropped, its terminators leave the map and its links
 * go down. */
#ifndef CTL_CONTROL_H
#define CTL_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/controller.h"

#define CTL_CONTROL_DEAD_MS 15000
#define CTL_CONTROL_SWEEP_MS 1000

/* Maps larger than one frame (docs/dataplane.md "Maps larger than a frame"):
 * CTL_MAP_FULL / CTL_MAP_DELTA bodies of at most CTL_MAP_PART_MAX bytes each,
 * every part but the last flagged CTL_MAP_F_MORE, every part carrying
 * PR_H_MAP_VERSION; the router joins the bodies and parses the whole. A map
 * that fits travels as one frame with neither, as before. */
#define CTL_MAP_F_MORE 0x0001
#define CTL_MAP_PART_MAX 65536
/* Bytes one router may have waiting behind a slow TLS queue. */
#define CTL_BACKLOG_MAX (64u * 1024 * 1024)
#define CTL_BACKLOG_KEEP (1024u * 1024)

typedef struct ctl_control ctl_control;

/* Receives each encoded frame of a map (ctl_map_frames). */
typedef int (*ctl_frame_out)(void *arg, const uint8_t *frame, size_t len);
/* Encodes a map or delta body of len bytes as one frame, or as parts when it
 * is larger than CTL_MAP_PART_MAX, into buf (at least PR_FRAME_MAX bytes),
 * handing each frame to out before encoding the next. */
int ctl_map_frames(uint16_t type, uint64_t version, const char *json, size_t len, uint8_t *buf,
                   size_t cap, ctl_frame_out out, void *arg);

/* Listens on addr ("HOST:PORT"; port 0 picks one) with the controller's
 * server certificate, requiring client certificates from the network CA.
 * c->map must be set: the server installs itself as its delta callback. */
int ctl_control_start(uv_loop_t *loop, ctl *c, const char *addr, ctl_control **out);
/* The bound TCP port, or -1. */
int ctl_control_port(const ctl_control *s);
/* Overrides CTL_CONTROL_DEAD_MS (tests); the sweep then runs at least four
 * times per period. */
void ctl_control_set_dead_ms(ctl_control *s, unsigned dead_ms);
/* An identity's roles changed (PATCH /v1/identities/{id}): every open router
 * gets them from the store in a CTL_ROLES, so that router policies hold on
 * its live sessions at once (docs/policies.md "Router policies"). Routers ask
 * for the roles of their sessions' identities with CTL_ROLES_ASK. s NULL: no-op. */
void ctl_control_roles_changed(ctl_control *s, const char *identity_id);
/* An admin made the controller forget an identity's baseline: every open
 * router forgets what it learnt of it too (CTL_BASELINE_RESET); the number of
 * routers told. s NULL: no-op. */
unsigned ctl_control_baseline_reset(ctl_control *s, const char *identity_id);
/* Routers whose control connection is open now. */
unsigned ctl_control_count(const ctl_control *s);
/* Stops listening and closes every connection; cb (may be NULL) runs once
 * every handle closed, and the server is freed then. */
void ctl_control_stop(ctl_control *s, void (*cb)(void *arg), void *arg);

#endif
