/* Limits across routers on the controller side (docs/policies.md "Limits
 * across routers"). Routers report in CTL_USAGE what each identity with a
 * quota, max_circuits or bandwidth limit uses through them: its payload
 * bytes of the UTC day, the circuits it has open, the bytes a second it sends,
 * and the limits of its newest token. The controller keeps the last figures
 * of every (identity, router), sums them per identity, and tells each router
 * the identity uses what it uses through the other routers (CTL_USAGE_NET)
 * whenever that changed in a way its limits care about, so that every router
 * enforces the network-wide figure. Kept in memory: a restarted controller
 * learns the figures again from the routers' next reports (a full one when
 * their control channel opens). */
#ifndef CTL_USAGE_H
#define CTL_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ident.h"

#define CTL_USAGE_IDS_MAX   256 /* entries one CTL_USAGE may carry */
#define CTL_USAGE_BOOT_MAX  64  /* the boot id of CTL_BASELINE (ctl_baseline_boot_ok) */
#define CTL_USAGE_VALUE_MAX (INT64_C(1) << 53) /* bytes and rates: exact in JSON */
#define CTL_USAGE_COUNT_MAX INT64_C(1000000000)
#define CTL_USAGE_DAY_MAX   (INT64_C(1) << 31) /* UTC days since 1970 */
#define CTL_USAGE_TRACK_MAX 1000000            /* identities followed at once */
#define CTL_USAGE_SITES_MAX 32                 /* routers followed per identity */
#define CTL_USAGE_NET_IDS   256                /* entries per CTL_USAGE_NET sent */
#define CTL_USAGE_SWEEP_MS  60000 /* idle figures of past days are dropped this often */

/* One entry of a report: what the identity uses through the reporting router. */
typedef struct {
    char id[PR_ID_MAX + 1];
    int64_t bytes;           /* "b": payload bytes from it this UTC day, this router process */
    int64_t circuits;        /* "c": circuits open */
    int64_t rate;            /* "r": bytes a second */
    int64_t quota, maxc, bw; /* "q", "m", "w": the limits of its newest token there (0 none) */
} ctl_usage_entry;

/* A CTL_USAGE body {"boot", "day", "ids": [{"id", "b", "c", "r", "q", "m", "w"}]}
 * (keys of an entry but id optional, 0 when absent; unknown keys ignored). */
typedef struct {
    char boot[CTL_USAGE_BOOT_MAX + 1]; /* the router process (its bytes start at 0) */
    int64_t day;                       /* the UTC day of the bytes */
    size_t n;
    ctl_usage_entry *e;
} ctl_usage_report;

/* Parses a report; WEFT_EJSON or WEFT_EPROTO with a sentence in err when it
 * is malformed (then nothing is kept). */
int ctl_usage_parse(const uint8_t *body, size_t len, ctl_usage_report *out, char *err,
                    size_t errcap);
void ctl_usage_report_free(ctl_usage_report *r);

/* What an identity uses through every router but one (a CTL_USAGE_NET entry). */
typedef struct {
    int64_t day;      /* the identity's current UTC day (the newest any router reported) */
    int64_t bytes;    /* "b": payload bytes that day */
    int64_t circuits; /* "c": circuits open */
    int64_t rate;     /* "r": bytes a second */
    int64_t routers;  /* "n": routers carrying its bytes now (rate above 0) */
} ctl_usage_net;

typedef struct ctl_usage ctl_usage;

int ctl_usage_new(ctl_usage **out);
void ctl_usage_free(ctl_usage *u); /* NULL: no-op */
/* A report from router_id replaces its figures for each identity in it. A
 * new boot of the router keeps the bytes of its earlier processes that day;
 * a new day starts the bytes again. */
void ctl_usage_apply(ctl_usage *u, const char *router_id, const ctl_usage_report *r);
/* Parses and applies a CTL_USAGE body (a malformed one is logged, dropped). */
int ctl_usage_ingest(ctl_usage *u, const char *router_id, const uint8_t *body, size_t len);
/* The identity's usage through every router but router_id (NULL: through
 * all of them); WEFT_ENOTFOUND when no router reported it. */
int ctl_usage_elsewhere(const ctl_usage *u, const char *identity, const char *router_id,
                        ctl_usage_net *out);

/* Sends one CTL_USAGE_NET body to a router; 0 when it went out. */
typedef int (*ctl_usage_out)(void *arg, const char *router_id, const char *text);
/* For each identity whose figures changed since the last flush, tells each
 * router that reported it what it uses through the others, when that
 * differs from what the router was last told in a way the identity's limits
 * care about: the bytes (quota), the circuits (max_circuits), the routers
 * carrying it or its rate by more than an eighth (bandwidth). One body per
 * router (several past CTL_USAGE_NET_IDS entries); the number of entries. */
size_t ctl_usage_flush(ctl_usage *u, ctl_usage_out out, void *arg);
/* The router's control channel opened: it knows nothing of the others yet. */
void ctl_usage_router_open(ctl_usage *u, const char *router_id);
/* The router is offline: its circuits and rates no longer count (its bytes
 * of the day do); the others are told at the next flush. */
void ctl_usage_router_gone(ctl_usage *u, const char *router_id);
/* Drops figures of past days that nobody needs any more (no circuit, no
 * rate, nothing told that would go stale); at most every CTL_USAGE_SWEEP_MS. */
void ctl_usage_sweep(ctl_usage *u, uint64_t now_ms, int64_t today);
/* Identities followed now. */
size_t ctl_usage_tracked(const ctl_usage *u);

#endif
