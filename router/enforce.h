/* Behaviour limits and device binding at the ingress router (docs/policies.md):
 * what the controller put in the service tokens ("lim", "hw") is enforced here,
 * per identity, without asking the controller. Violations are refused (action
 * "block"), or let through, and reported to the controller as CTL_EVENT, which
 * logs, alerts and quarantines. */
#ifndef RT_ENFORCE_H
#define RT_ENFORCE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/anomaly.h"
#include "router/baseline.h"
#include "router/map.h"

#define RT_ACT_BLOCK 0x1
#define RT_ACT_LOG 0x2
#define RT_ACT_ALERT 0x4
#define RT_ACT_REMOVE 0x8

#define RT_HW_CAP 65
#define RT_ENF_BUCKETS 1024
#define RT_ENF_REPORT_MS 1000 /* one event per identity and kind per second; the rest counted */
/* Anomaly detection (docs/policies.md "Anomaly detection"): per identity with
 * a behaviour policy, dials and distinct services per window and bytes per
 * circuit against EWMA baselines learnt over the first RT_ANOM_LEARN windows
 * (circuits), and the hours of the identity's day it is active in, learnt for
 * RT_ANOM_HOURS_LEARN_S. The baseline starts from the one its service token
 * carries (the controller's, merged from every router's reports) and what is
 * learnt here is reported back (router/baseline.h). These are the defaults of
 * rt_enforce_cfg (proto/anomaly.h). */
#define RT_ANOM_WINDOW_MS     (PR_ANOM_WINDOW_S * 1000)
#define RT_ANOM_LEARN         PR_ANOM_LEARN
#define RT_ANOM_ALPHA 0.2
#define RT_ANOM_FACTOR        PR_ANOM_FACTOR
#define RT_ANOM_BYTES_FACTOR  PR_ANOM_BYTES_FACTOR
#define RT_ANOM_MIN_BYTES     PR_ANOM_MIN_BYTES
#define RT_ANOM_HOURS_LEARN_S PR_ANOM_HOURS_LEARN_S
#define RT_ANOM_MIN_DIALS 10.0
#define RT_ANOM_MIN_SVCS 3.0
#define RT_ANOM_SVCS 32

/* Anomaly settings: the map's "anomaly" object (network-wide, from the
 * controller), else router.json's "anomaly_*" keys, else the defaults; key by
 * key (rt_enforce_cfg_from_set). */
typedef struct {
    uint64_t window_ms;      /* window_s: the dial-rate window */
    unsigned learn;          /* learn: windows (and circuits) learnt before judging */
    double factor;           /* factor: dials or services over factor x baseline */
    double bytes_factor;     /* bytes_factor: a circuit's bytes over it x baseline */
    double min_bytes;        /* min_bytes: and over this many bytes */
    long long hours_learn_s; /* hours_learn_s: hours of activity learnt this long */
} rt_enforce_cfg;

/* The defaults above. */
void rt_enforce_cfg_default(rt_enforce_cfg *cfg);
/* Reads the anomaly_* keys of conf (NULL or absent: defaults); WEFT_EINVAL
 * on a bad value, with the key's name in bad (when not NULL). */
int rt_enforce_cfg_from_json(const json_t *conf, rt_enforce_cfg *cfg, const char **bad);
/* The defaults, overlaid by each set of settings in turn (NULL: skipped). */
void rt_enforce_cfg_from_set(const pr_anom_set *local, const pr_anom_set *net, rt_enforce_cfg *cfg);

/* The "lim" claim: 0 means no limit. */
typedef struct {
    int have;
    int have_win;
    int win_from, win_to; /* minutes of the local day */
    long win_off;         /* the zone's UTC offset in seconds when the token was issued */
    long long rate;       /* new circuits per minute */
    long long bw;         /* bytes per second from the identity, shared by its routers */
    long long quota;      /* bytes per UTC day from the identity, network-wide */
    long long maxc;       /* circuits open at once, network-wide */
    unsigned act;         /* RT_ACT_* */
    rt_base base;         /* "base" claim: the identity's anomaly baseline (baseline.h) */
} rt_limits;

/* The "hw" claim: mode "exact", "iccid" or "imei" ("" none); ids bound ("" not yet). */
typedef struct {
    char mode[8];
    char imei[RT_HW_CAP];
    char iccid[RT_HW_CAP];
} rt_hwbind;

/* Reads the "lim", "hw" and "base" claims of a checked token (absent: none). */
void rt_limits_from_claims(const json_t *claims, rt_limits *lim, rt_hwbind *hw);
/* Is minute-of-day m (local) in [from, to) (a window may cross midnight)? */
int rt_window_allows(int from, int to, int m);
/* The local minute of the day at Unix time t for a zone offset. */
int rt_local_minute(long long t, long off_s);

typedef struct rt_enforce rt_enforce;
struct rt_router;
struct rt_sess;
struct rt_circuit;

/* Per-identity buckets and counters; the sink gets every violation event
 * (JSON object, borrowed) to send to the controller. */
typedef void (*rt_enforce_sink)(void *arg, const json_t *ev);
int rt_enforce_new(rt_enforce_sink sink, void *arg, rt_enforce **out);
void rt_enforce_free(rt_enforce *e); /* NULL: no-op */
/* Replaces the anomaly settings (rt_enforce_new starts with the defaults). */
void rt_enforce_configure(rt_enforce *e, const rt_enforce_cfg *cfg);

/* Decisions, at monotonic time now_ms and Unix time now_s. `open` is the
 * number of circuits the identity has open at this router (those through
 * the other routers are added, as the controller last said). A dial is
 * refused outside the time window, once the day's quota is spent, at
 * max_circuits and over the rate. 0: admitted; WEFT_EDENIED with a sentence
 * in msg: refused (the caller answers EDGE_ERROR). */
int rt_enforce_dial(rt_enforce *e, const char *identity, const char *service,
                    const rt_limits *lim, unsigned open, uint64_t now_ms, long long now_s,
                    char *msg, size_t cap);
/* The device binding: hello ids of the session against the token's claim. */
int rt_enforce_binding(rt_enforce *e, const char *identity, const rt_hwbind *hw,
                       const char *imei, const char *iccid, uint64_t now_ms, char *msg,
                       size_t cap);
/* A refused token (a dial of a service the identity is not entitled to). */
void rt_enforce_refused(rt_enforce *e, const char *identity, const char *service, int err,
                        uint64_t now_ms);
/* len payload bytes from the identity: 0 go on; > 0 pause its reads for that
 * many ms (bandwidth, rt_enforce_bw_now); WEFT_EDENIED the day's quota is
 * spent, here and through the other routers (end the circuit). */
int rt_enforce_bytes(rt_enforce *e, const char *identity, const char *service, size_t len,
                     uint64_t now_ms, long long now_s);
/* A circuit the identity dialled carries `total` payload bytes from it so far
 * (live: a circuit past the baseline is an anomaly at once) or, with ended
 * set, ended with that many (the bytes-per-circuit baseline learns from it). */
void rt_enforce_circuit_bytes(rt_enforce *e, const char *identity, const char *service,
                              uint64_t total, int ended, uint64_t now_ms);
/* Violations seen (metrics). */
uint64_t rt_enforce_violations(const rt_enforce *e);
/* Takes the increments of one identity learnt since they were last taken
 * (cleared here): 1, or 0 when no identity has any. Fair: the scan goes on
 * where the previous one stopped. */
int rt_enforce_take(rt_enforce *e, rt_base_inc *out);
/* The reports of those increments to the controller (baseline.h). */
rt_baseline *rt_enforce_reports(rt_enforce *e);
/* The controller forgot the identity's baseline (CTL_BASELINE_RESET): this
 * router forgets what it learnt of it too, and learns afresh. */
void rt_enforce_base_forget(rt_enforce *e, const char *identity);

/* ---- limits across routers (docs/policies.md "Limits across routers") ----
 * Each router reports, every RT_USAGE_MS while it changes, what an identity
 * with a quota, max_circuits or bandwidth limit uses here (CTL_USAGE,
 * router/usage.c); the controller sums the reports of every router and tells
 * each router what the identity uses through the others (CTL_USAGE_NET).
 * The decisions above then count both: the quota and max_circuits hold for
 * the network-wide figures, and the bandwidth is shared (rt_enforce_bw_now).
 * What this router counts itself is always counted, so a router that hears
 * nothing from the controller enforces each limit on its own, as before. */
#define RT_USAGE_MS 250 /* a report pass at most this often */

/* One identity's usage here, as reported. */
typedef struct {
    char id[RT_ID_CAP];
    long long bytes;           /* "b": payload bytes from it this UTC day (day) */
    unsigned circuits;         /* "c": circuits it has open here */
    long long rate;            /* "r": bytes a second from it since the last pass */
    long long quota, maxc, bw; /* "q", "m", "w": the limits of its newest token */
} rt_usage;

/* Its usage through the other routers, as the controller last said. */
typedef struct {
    long long day;     /* the UTC day the bytes are of */
    long long bytes;   /* "b": payload bytes from it that day through the others */
    unsigned circuits; /* "c": circuits open through the others */
    long long rate;    /* "r": bytes a second through the others */
    unsigned routers;  /* "n": other routers carrying its bytes now */
} rt_usage_net;

/* A report pass is due: an identity had a quota, max_circuits or bandwidth
 * limit, and RT_USAGE_MS passed since the last pass (or a full one was asked). */
int rt_enforce_usage_due(const rt_enforce *e, uint64_t now_ms);
/* Counting the circuits open here: begin zeroes every count, then open adds
 * n for an identity (ignored when it has no state). */
void rt_enforce_usage_begin(rt_enforce *e);
void rt_enforce_usage_open(rt_enforce *e, const char *identity, unsigned n);
/* The pass: fn gets the usage of every identity with a quota, max_circuits
 * or bandwidth limit whose figures changed since it was last reported (every
 * one that uses anything when a full pass was asked); the number given. */
typedef void (*rt_usage_fn)(void *arg, const rt_usage *u);
size_t rt_enforce_usage_each(rt_enforce *e, uint64_t now_ms, long long now_s, rt_usage_fn fn,
                             void *arg);
/* The next pass reports every identity that uses anything (a controller
 * that (re)connects knows nothing of this router). */
void rt_enforce_usage_full(rt_enforce *e);
/* The controller's figures for an identity (ignored when it has no state). */
void rt_enforce_usage_net(rt_enforce *e, const char *identity, const rt_usage_net *net);
/* The control channel closed: the other routers' circuits and rates are
 * forgotten (they may change unseen); their bytes of the day are kept, since
 * they only grow. */
void rt_enforce_usage_forget(rt_enforce *e);
/* The bandwidth this router gives the identity now, bytes a second (0: no
 * limit): its limit, shared with the other routers carrying its bytes. */
long long rt_enforce_bw_now(rt_enforce *e, const char *identity);

/* ---- glue with the router (enforce.c) ---- */
/* Makes r->enforce, reporting to the controller (rt_control_event). */
int rt_enforce_attach(struct rt_router *r);
/* Reads router.json's anomaly_* keys into r->enforce; WEFT_EINVAL with a
 * logged sentence on a bad value. */
int rt_enforce_setup(struct rt_router *r, const json_t *conf);
/* After every map change: the map's anomaly settings (or router.json's when
 * the map has none) take effect, logged when they change. */
void rt_enforce_map_changed(struct rt_router *r);
/* Every router tick: resumes sessions paused for shaping once their time is
 * up; baseline and usage reports (baseline.h, usage.h). */
void rt_enforce_tick(struct rt_router *r);
/* Counts the circuits each identity has open here (rt_enforce_usage_open). */
void rt_enforce_count_open(struct rt_router *r);
/* Called by the edge session code; all return as above. */
int rt_enforce_on_admit(struct rt_sess *s, const char *act, const char *service,
                        const rt_limits *lim, const rt_hwbind *hw, char *msg, size_t cap);
void rt_enforce_on_refused(struct rt_sess *s, const char *act, const char *service, int err);
/* A payload frame of len bytes from s on circuit c (s is its dialler): 1 when
 * the session was paused for shaping, WEFT_EDENIED when the circuit was ended. */
int rt_enforce_on_data(struct rt_sess *s, struct rt_circuit *c, size_t len);
/* An open circuit entering at this router ends (bytes-per-circuit baseline). */
void rt_enforce_on_circuit_end(struct rt_router *r, struct rt_circuit *c);

#endif
