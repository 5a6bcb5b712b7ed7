/* Anomaly baselines that belong to the identity, not to the router
 * (docs/policies.md "Anomaly detection"): the "base" claim a service token
 * carries (the controller's merged baseline, the router's starting point),
 * and the increments a router learns and reports to the controller in
 * CTL_BASELINE batches until they are acknowledged. */
#ifndef RT_BASELINE_H
#define RT_BASELINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "router/map.h"

#define RT_BASE_HOURS_MASK 0xffffffu /* 24 bits: hour h of the identity's day */
#define RT_BASE_COUNT_MAX  1000000000LL
#define RT_BASE_VALUE_MAX  1e15

/* The "base" claim: {"w","d","s","c","b","h","t","z"}, every key optional. */
typedef struct {
    int have;          /* a well-formed claim was there */
    unsigned windows;  /* "w": dial-rate windows learnt */
    double avg_dials;  /* "d": EWMA of dials per window */
    double avg_svcs;   /* "s": EWMA of distinct services per window */
    unsigned circuits; /* "c": circuits learnt */
    double avg_bytes;  /* "b": EWMA of bytes per circuit */
    uint32_t hours;    /* "h": hours of the identity's day it was active in */
    long long first_s; /* "t": its first dial (Unix time); 0 unknown */
    long tz_off;       /* "z": its zone's UTC offset (seconds) when signed; 0 UTC */
} rt_base;

/* Reads a "base" claim (claim NULL: none, have 0, returns 0). A malformed
 * claim is WEFT_EPROTO with have 0: the router learns as if there were none. */
int rt_base_from_claim(const json_t *claim, rt_base *out);

/* What one router learnt of one identity since its last report: sums over
 * the windows and circuits learnt, so that the controller merges them in any
 * order (controller/baseline.c). */
typedef struct {
    char id[RT_ID_CAP];
    unsigned windows;  /* "w": windows learnt (not flagged) */
    unsigned quiet;    /* "q": idle windows that decayed the averages */
    double dials;      /* "d": dials over those windows */
    double svcs;       /* "s": distinct services over those windows */
    unsigned circuits; /* "c": circuits learnt */
    double bytes;      /* "b": bytes over those circuits */
    uint32_t hours;    /* "h": hours first seen here */
    long long first_s; /* "t": the first dial seen here, when it was the first */
} rt_base_inc;

/* One batch entry ({"id", and the non-zero keys above}), or NULL. */
json_t *rt_base_inc_json(const rt_base_inc *inc);

/* ---- reports to the controller ---- */
#define RT_BASE_FLUSH_MS  5000  /* batches are made this often */
#define RT_BASE_BATCH_IDS 40    /* identities per batch: under 16 KiB whatever the ids */
#define RT_BASE_PER_FLUSH 8     /* batches made per flush at most */
#define RT_BASE_INFLIGHT  16    /* batches sent and not yet acknowledged, at most */
#define RT_BASE_RESEND_MS 30000 /* unacknowledged this long: sent again */

struct rt_router;
struct rt_enforce;
typedef struct rt_baseline rt_baseline;

int rt_baseline_new(rt_baseline **out);
void rt_baseline_free(rt_baseline *b); /* NULL: no-op */
/* Sends one CTL_BASELINE body; 0 when it went out. */
typedef int (*rt_baseline_send_fn)(void *arg, const char *text);
/* Once RT_BASE_FLUSH_MS have passed since the last flush: makes batches of
 * the increments e holds (at most RT_BASE_PER_FLUSH, while fewer than
 * RT_BASE_INFLIGHT wait) and sends each; the number made. */
size_t rt_baseline_flush(rt_baseline *b, struct rt_enforce *e, uint64_t now_ms,
                         rt_baseline_send_fn send, void *arg);
/* The router stops: every increment e holds goes out now in batches, kept
 * nowhere (the acknowledgement will not be read); the number sent. */
size_t rt_baseline_final(rt_baseline *b, struct rt_enforce *e, rt_baseline_send_fn send,
                         void *arg);
/* Sends every batch waiting, oldest first (stops at the first failure); the
 * number sent. */
size_t rt_baseline_send_waiting(rt_baseline *b, uint64_t now_ms, rt_baseline_send_fn send,
                                void *arg);
/* 1 when batches wait and none went out for RT_BASE_RESEND_MS. */
int rt_baseline_overdue(const rt_baseline *b, uint64_t now_ms);
/* A CTL_BASELINE_ACK body {"boot","seq"}: the batches up to seq of this
 * process are dropped; the number dropped. */
size_t rt_baseline_ack(rt_baseline *b, const uint8_t *body, size_t len);

/* ---- glue with the router ---- */
/* Every router tick, while the control channel is open: rt_baseline_flush,
 * and the waiting batches again when overdue. While it is closed increments
 * add up per identity in r->enforce. */
void rt_baseline_tick(struct rt_router *r);
/* The control channel is (back) up: every unacknowledged batch again, in order. */
void rt_baseline_resend(struct rt_router *r);
/* CTL_BASELINE_ACK from the controller: rt_baseline_ack. */
void rt_baseline_acked(struct rt_router *r, const uint8_t *body, size_t len);
/* The router stops (before its control channel closes): rt_baseline_final,
 * when the channel is open. */
void rt_baseline_stop(struct rt_router *r);
/* A CTL_BASELINE_RESET body {"identities": ["id", ...]} (at most
 * RT_BASE_FORGET_MAX): the router forgets what it learnt of each
 * (rt_enforce_base_forget); the number forgotten, or WEFT_EPROTO when
 * malformed (nothing forgotten). */
#define RT_BASE_FORGET_MAX 1024
int rt_baseline_forget(struct rt_enforce *e, const uint8_t *body, size_t len);
/* CTL_BASELINE_RESET from the controller: rt_baseline_forget, logged. */
void rt_baseline_reset_frame(struct rt_router *r, const uint8_t *body, size_t len);
/* The control channel (control.c): sends a frame with a text body when it
 * is open (else WEFT_ECLOSED); is it open? */
int rt_control_send(struct rt_router *r, uint16_t type, const char *text);
int rt_control_is_open(const struct rt_router *r);
/* This process's boot id (random at start; CTL_BASELINE and CTL_USAGE). */
const char *rt_baseline_boot(const rt_baseline *b);
/* Batches waiting for their acknowledgement, and acknowledged so far (metrics). */
size_t rt_baseline_waiting(const rt_baseline *b);
uint64_t rt_baseline_acked_total(const rt_baseline *b);

#endif
