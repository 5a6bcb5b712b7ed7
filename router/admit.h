/* Admission control of new edge sessions (docs/policies.md "Admission
 * control"): a token bucket of sessions per second. Over the limit the router
 * has completed TLS, so the refusal is authenticated: EDGE_HELLO is answered
 * with EDGE_ERROR carrying PR_H_RETRY_MS, and the session is closed. */
#ifndef RT_ADMIT_H
#define RT_ADMIT_H

#include "router/router.h"

#define RT_ADMIT_RATE 200  /* default new sessions per second */
#define RT_ADMIT_BURST 400 /* default burst */
#define RT_ADMIT_QUEUE_MS 60000 /* retry hints reach at most this far ahead */

/* Sets the limit (rate 0: unlimited; burst 0: the rate). Before the loop runs. */
void rt_admit_config(rt_router *r, double rate, double burst);
/* From the command line (strings, NULL: not given) or router.json keys
 * admit_rate and admit_burst; else the defaults. WEFT_EINVAL on a bad value. */
int rt_admit_setup(rt_router *r, const json_t *conf, const char *rate, const char *burst);
/* At EDGE_HELLO: 0 admitted; 1 refused (the error is sent and s is closing). */
int rt_admit_hello(rt_sess *s);

#endif
