/* Prometheus metrics of the controller (docs/operations.md "Metrics"): a
 * plain-HTTP endpoint, GET /metrics in the text exposition format, on an
 * address of its own (weft-controller run --metrics-listen HOST:PORT), meant
 * for a local port: it carries no secrets and no authentication.
 *
 * The counters live as long as the controller; the server is optional. */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "controller/controller.h"

#define CTL_METRICS_MAX_CONNS 64
#define CTL_METRICS_IDLE_MS 10000

typedef struct ctl_metrics ctl_metrics;

int ctl_metrics_new(ctl_metrics **out);
/* Frees the counters; the server must have stopped. NULL is a no-op. */
void ctl_metrics_free(ctl_metrics *m);

/* Counts one answer of the REST API (m NULL: no-op). A 2xx answer to POST
 * /v1/enroll... counts as an enrolment too. */
void ctl_metrics_count(ctl_metrics *m, const char *method, const char *path, int status);

/* The exposition text for the running controller c; *text is malloc'd. */
int ctl_metrics_render(const ctl *c, char **text, size_t *len);

/* Serves GET /metrics for c (c->metrics must be set) on addr ("HOST:PORT",
 * port 0 picks one). */
int ctl_metrics_start(uv_loop_t *loop, ctl *c, const char *addr);
/* The bound port, or -1. */
int ctl_metrics_port(const ctl_metrics *m);
/* Closes the listener and every connection; cb (may be NULL) runs once all
 * handles closed. A server that never started calls cb at once. */
void ctl_metrics_stop(ctl_metrics *m, void (*cb)(void *arg), void *arg);

#endif
