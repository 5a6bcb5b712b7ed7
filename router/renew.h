/* Certificate renewal of a running router (docs/router.md "Certificate
 * renewal"): pr_renew_if_due on DIR/identity.json from a worker thread at
 * start and every check interval; a renewed file (or SIGHUP) is loaded and
 * new TLS contexts made for the edge listener, the link listener and
 * dialler and the control client. Only NEW connections use them: live
 * sessions, links and circuits keep the context they were opened with
 * (pr_tls_ctx is reference-counted), and the old certificate stays valid
 * until it expires. */
#ifndef RT_RENEW_H
#define RT_RENEW_H

#include <stdint.h>
#include <uv.h>

#include "proto/idfile.h"
#include "router/router.h"

#define RT_RENEW_CHECK_MS (3600 * 1000) /* renewal is checked at start and this often */
#define RT_RENEW_TIMEOUT_MS 20000       /* one POST /v1/renew, worker thread */

typedef struct rt_renew_job rt_renew_job;

typedef struct {
    rt_router *r;
    char path[4096];   /* DIR/identity.json */
    uint64_t check_ms; /* 0: RT_RENEW_CHECK_MS */
    int64_t before_s;  /* also renew when fewer seconds than this remain; 0: a third of the life */
    uv_timer_t timer;
    uv_work_t work;
    rt_renew_job *job; /* a renewal in flight, or NULL */
    int timer_on, stopping;
    pr_idfile *owned;  /* the identity loaded by the last reload (r->id points at it), or NULL */
    uint64_t renewals, reloads;
} rt_renew;

/* Starts the checks: one now (on a worker thread), then every check_ms.
 * rn->path, check_ms and before_s are set by the caller beforehand. */
int rt_renew_start(rt_renew *rn, rt_router *r);
/* Stops the timer; a renewal in flight finishes and is not loaded. */
void rt_renew_stop(rt_renew *rn);
/* Frees the identity loaded by reloads; after rt_router_free. */
void rt_renew_free(rt_renew *rn);
/* Loads rn->path now (SIGHUP: renewed by someone else) and uses it for new
 * connections. The running identity stays on any error. */
int rt_renew_reload(rt_renew *rn);

/* New TLS contexts from id for the edge and link listeners, the link
 * dialler and the control client; r->id becomes id (the caller keeps it
 * alive). id must be the same router of the same network. Nothing changes
 * on error. */
int rt_router_reload(rt_router *r, const pr_idfile *id);
/* control.c: the control client's context for its next connection, from id. */
int rt_control_reload(rt_router *r, const pr_idfile *id);

#endif
