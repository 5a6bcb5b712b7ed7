/* Admission control at the controller (docs/policies.md "Admission
 * control"): token buckets for enrolments (POST /v1/enroll, /v1/enroll/factory)
 * and session data (GET /v1/edge/session). Over the rate the answer is 429
 * with Retry-After and {"error":{"code":"busy",...}}. The limits are
 * controller.json keys admit_enroll_rate, admit_enroll_burst,
 * admit_session_rate, admit_session_burst (per second; rate 0: no limit). */
#ifndef CTL_ADMIT_H
#define CTL_ADMIT_H

#include "controller/controller.h"

#define CTL_ADMIT_ENROLL_RATE 100
#define CTL_ADMIT_ENROLL_BURST 200
#define CTL_ADMIT_SESSION_RATE 1000
#define CTL_ADMIT_SESSION_BURST 2000

/* Sets the defaults in cfg (ctl_config_defaults calls it). */
void ctl_admit_config_defaults(ctl_config *cfg);
/* Reads the keys from controller.json's root; err says what is wrong. */
int ctl_admit_config_load(ctl_config *cfg, const json_t *root, char *err, size_t errcap);
/* Writes the keys that differ from the defaults into root. */
void ctl_admit_config_save(const ctl_config *cfg, json_t *root);
/* Before a route runs: 0 go on; 1 refused (answered 429). Routes other than
 * enrolment and session data always go on. */
int ctl_admit_route(ctl_call *call, const char *method, const char *path);
/* Prometheus text of the counters into buf (at most cap bytes); the length. */
size_t ctl_admit_metrics(const ctl *c, char *buf, size_t cap);

#endif
