/* Anomaly baselines kept by the controller (docs/policies.md "Anomaly
 * detection"): routers report what they learnt of each identity in
 * CTL_BASELINE batches of increments; the controller merges them into the
 * identity's baseline in the store, acknowledges a batch once it is durable
 * (CTL_BASELINE_ACK), and signs the baseline back into the identity's service
 * tokens as the "base" claim, the starting point of any router it uses. */
#ifndef CTL_BASELINE_H
#define CTL_BASELINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/controller.h"
#include "proto/ident.h"

#define CTL_BASELINE_ALPHA     0.2 /* the routers' EWMA weight (RT_ANOM_ALPHA) */
#define CTL_BASELINE_IDS_MAX   256 /* identities in one batch */
#define CTL_BASELINE_COUNT_MAX 1000000000LL
#define CTL_BASELINE_VALUE_MAX 1e15
#define CTL_BASELINE_HOURS     0xffffffu /* 24 bits: the hours of the identity's day */
#define CTL_BASELINE_BOOT_MAX  64

/* An identity's baseline: windows and circuits learnt, the EWMAs of dials
 * and distinct services per window and of bytes per circuit, the hours it
 * was active in and its first dial (Unix time; 0 unknown). */
typedef struct {
    int64_t windows;
    double dials, svcs;
    int64_t circuits;
    double bytes;
    uint32_t hours;
    int64_t first_s;
} ctl_baseline;

/* What one router learnt of one identity since its last report: sums over
 * the windows and circuits learnt (router/baseline.h, rt_base_inc). */
typedef struct {
    char id[PR_ID_MAX + 1];
    int64_t windows, quiet;
    double dials, svcs;
    int64_t circuits;
    double bytes;
    uint32_t hours;
    int64_t first_s;
} ctl_baseline_inc;

/* Merges increments into b, as if each learnt window (circuit) had the
 * increment's mean: the first ones set an empty baseline, later ones move
 * the EWMA by 1 - (1 - alpha)^n; quiet windows then decay it. Exact when the
 * windows of one increment are alike (a report covers a few seconds), and
 * independent of the order in which increments of one window count arrive. */
void ctl_baseline_merge(ctl_baseline *b, const ctl_baseline_inc *inc);

/* A CTL_BASELINE body {"boot", "seq", "ids": [{"id", "w", "q", "d", "s", "c",
 * "b", "h", "t"}]} (keys of an entry optional, 0 when absent). */
typedef struct {
    char boot[CTL_BASELINE_BOOT_MAX + 1];
    int64_t seq;
    size_t n;
    ctl_baseline_inc *inc;
} ctl_baseline_batch;

/* A router process's boot id: 1..64 letters and digits (CTL_BASELINE, CTL_USAGE). */
int ctl_baseline_boot_ok(const char *s);
/* Parses a batch. WEFT_EJSON or WEFT_EPROTO with a sentence in err when
 * malformed; *head_ok then says whether boot and seq were read (the batch
 * is acknowledged and dropped all the same: sending it again cannot help). */
int ctl_baseline_parse(const uint8_t *body, size_t len, ctl_baseline_batch *out, int *head_ok,
                       char *err, size_t errcap);
void ctl_baseline_batch_free(ctl_baseline_batch *b);

/* Stores a batch from router_id: merged into each identity's baseline in one
 * transaction with the router's mark, unless the mark says it was stored
 * already (sent again after a lost acknowledgement). *ack (malloc'd, may be
 * NULL) is the CTL_BASELINE_ACK body to send; set when the batch is stored
 * or cannot be (malformed), NULL when the store failed (the router sends it
 * again). */
int ctl_baseline_ingest(ctl *c, const char *router_id, const uint8_t *body, size_t len, char **ack);

/* Conversions with the store's JSON (store.h); from_json: absent keys 0. */
void ctl_baseline_from_json(const json_t *o, ctl_baseline *b);
json_t *ctl_baseline_to_json(const ctl_baseline *b);

/* The "base" claim of identity's service tokens at now: its baseline and its
 * zone's UTC offset ("tz"); NULL when there is neither. */
json_t *ctl_baseline_claim(ctl *c, const json_t *identity, int64_t now);

#endif
