/* Security and audit events (docs/policies.md "Events"): violations reported
 * by routers (CTL_EVENT), binding mismatches seen by the controller,
 * quarantines and re-enables. Each event is kept in DATA_DIR/events.db (its
 * own SQLite file, so that an event storm never holds the main store's write
 * lock), appended as one JSON line to DATA_DIR/events.jsonl, counted for
 * /metrics, and, when its actions include "alert", posted to every webhook
 * with retries; an alert given up after every retry is itself an event
 * (kind "webhook", actions "log" only). An event whose actions include
 * "remove" quarantines the identity: it is disabled in the store and the
 * map's revocation closes its sessions and circuits on every router. */
#ifndef CTL_EVENTS_H
#define CTL_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/controller.h"

#define CTL_EVENTS_DB "events.db"
#define CTL_EVENTS_LOG "events.jsonl"
#define CTL_WEBHOOK_TRIES 6        /* first attempt and five retries */
#define CTL_WEBHOOK_BACKOFF_MS 500 /* doubles after each failure */
#define CTL_WEBHOOK_TIMEOUT_MS 5000

typedef struct ctl_events ctl_events;

/* Opens (creating) the event store in dir; loop (may be NULL: no webhook
 * delivery, for tests) runs the deliveries. */
int ctl_events_open(uv_loop_t *loop, const char *dir, ctl_events **out);
/* Closes the store; pending deliveries are abandoned (logged). NULL: no-op. */
void ctl_events_close(ctl_events *e);
/* Stops the delivery timers so that the loop can end; cb runs once closed. */
void ctl_events_stop(ctl_events *e, void (*cb)(void *arg), void *arg);

/* Records ev (an object: "kind" required; "identity", "router", "service",
 * "msg", "actions" [names], anything else kept) and carries out its actions.
 * ev gains "id" and "ts". c may be NULL (no remove, tests). */
int ctl_events_emit(ctl *c, ctl_events *e, json_t *ev);
/* A CTL_EVENT body from router router_id: checked, then emitted, once per
 * event id ("eid", kept in eid, "" when absent): 0 stored, 1 stored before
 * (a router sending it again), < 0 not stored. An event with an id is
 * acknowledged (CTL_EVENT_ACK) unless the store failed, so that the router
 * keeps it, and sends it again, until it is safe here. */
#define CTL_EVENT_ID_CAP 64
#define CTL_EVENT_KEY_CAP (CTL_EVENT_ID_CAP + 128)
int ctl_events_from_router(ctl *c, const char *router_id, const uint8_t *body, size_t len,
                           char *eid, size_t eidcap);

/* Events with id > after, oldest first, at most limit (1..1000), optionally
 * of one identity; *out a new array. */
int ctl_events_list(ctl_events *e, int64_t after, int limit, const char *identity,
                    json_t **out);

/* Webhook targets: {"id","name","url","trust","created_at"}, and "ca" when
 * the webhook has its own. trust is "ca" (https, verified with that CA
 * only), "system" (https, the system trust store) or "none" (http). ca is
 * NULL or "" (none) or a PEM bundle pr_httpc_ca_check accepts, for an
 * https:// URL only. WEFT_EEXISTS for a name taken, WEFT_EINVAL for a URL
 * that is not http(s)://HOST:PORT/PATH or a CA that is not allowed. */
int ctl_webhook_add(ctl_events *e, const char *name, const char *url, const char *ca, json_t **out);
/* A new url and/or ca (NULL: unchanged; ca "": none) for a webhook, checked
 * as ctl_webhook_add does; *out the webhook as stored. WEFT_ENOTFOUND. */
int ctl_webhook_update(ctl_events *e, const char *id_or_name, const char *url, const char *ca,
                       json_t **out);
int ctl_webhook_list(ctl_events *e, json_t **out);
int ctl_webhook_del(ctl_events *e, const char *id_or_name);
/* Deliveries made, and given up after every retry (metrics and tests). */
void ctl_webhook_stats(const ctl_events *e, uint64_t *sent, uint64_t *failed);

/* Prometheus lines (weft_events_total{kind=...}, webhook counters) into buf;
 * the length written, or a negative code when cap is too small. */
int ctl_events_metrics(const ctl_events *e, char *buf, size_t cap);

/* webhook.c: one POST of body to t->url (http:// or https://HOST:PORT/PATH),
 * blocking, for a thread of the pool. 0 on a 2xx answer; otherwise negative
 * with a sentence in err that says what to do. */
typedef struct {
    const char *name; /* for the sentences ("weft webhook update NAME --ca FILE") */
    const char *url;
    const char *ca; /* PEM trust anchors for an https:// url; NULL: the system's */
} ctl_webhook_target;
int ctl_webhook_post(const ctl_webhook_target *t, const char *body, size_t len, int timeout_ms,
                     char *err, size_t errcap);

/* api_events.c: GET /v1/events, /v1/webhooks, POST /v1/identities/{id}/rebind. */
void ctl_api_events_list(ctl_call *call);
void ctl_api_webhooks_list(ctl_call *call);
void ctl_api_webhooks_create(ctl_call *call);
void ctl_api_webhooks_patch(ctl_call *call);
void ctl_api_webhooks_delete(ctl_call *call);
void ctl_api_identities_rebind(ctl_call *call);

#endif
