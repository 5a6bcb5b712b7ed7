/* Behaviour limits and device binding at the ingress router (enforce.h).
 * State is per identity, in a small hash table: a token bucket for new
 * circuits (rate per minute), one for bytes (bandwidth), a byte counter for
 * the UTC day (quota), when each kind of violation was last reported, the
 * anomaly baseline with what was learnt of it since the last report, and its
 * usage through the other routers as the controller last said. */
#include "router/enforce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "router/router.h"
#include "router/usage.h"
#include "weft/errors.h"

/* A first use has a slot of its own so that a burst of mismatches never
 * holds back the report that records the new binding. */
enum {
    K_RATE,
    K_BW,
    K_QUOTA,
    K_MAXC,
    K_TIME,
    K_DEST,
    K_BINDING,
    K_FIRST_USE,
    K_ANOM,
    K_ANOM_BYTES,
    K_ANOM_HOUR,
    K_N
};
static const char *const kind_names[K_N] = {
    "rate",    "bandwidth", "quota",   "max_circuits", "time",   "destination",
    "binding", "binding",   "anomaly", "anomaly",      "anomaly"};

/* The baseline of one identity (anomaly detection): dials and distinct
 * services per window, smoothed over the windows seen (EWMA). It starts from
 * the token's "base" claim (base_adopt); inc is what this router learnt since
 * the last report to the controller. */
typedef struct {
    uint64_t start_ms;
    unsigned dials;
    uint32_t svc[RT_ANOM_SVCS]; /* hashes of the services tried this window */
    unsigned nsvc;
    unsigned windows; /* windows learnt */
    double avg_dials, avg_svcs;
    int flagged; /* reported in this window */
    /* Bytes per circuit: an EWMA over the circuits ended without anomaly. */
    unsigned circuits;
    double avg_bytes;
    uint64_t bytes_flagged_ms; /* when a circuit was last flagged (once per window) */
    /* Activity by hour of the identity's day (its zone, tz_off): bit h set
     * once it dialled in hour h. */
    uint32_t hours;
    long long first_s; /* the first dial seen (Unix time): the hours learn from it */
    long tz_off;       /* from the newest token's claim; 0: UTC */
    rt_base_inc inc;   /* id unused: the state's */
    int dirty;         /* inc holds something */
} baseline;

typedef struct idstate idstate;
struct idstate {
    char id[RT_ID_CAP];
    double rate_tokens;
    uint64_t rate_ms;
    double bw_tokens;
    uint64_t bw_ms;
    long long day, day_bytes;
    rt_limits lim; /* from the newest admitted token */
    uint64_t reported_ms[K_N];
    unsigned suppressed[K_N];
    baseline base;
    /* Usage across routers: what was last reported of it, and the others'. */
    uint64_t all_bytes, pass_bytes; /* payload bytes ever, and at the last pass */
    unsigned open_now;              /* circuits open here at the last count */
    rt_usage said;                  /* the last report (id unused) */
    long long said_day;
    rt_usage_net net;
    idstate *next;
};

struct rt_enforce {
    idstate *bucket[RT_ENF_BUCKETS];
    rt_enforce_sink sink;
    void *arg;
    uint64_t violations;
    rt_enforce_cfg cfg;
    pr_anom_set local;  /* router.json's settings */
    size_t take_bucket; /* where rt_enforce_take goes on */
    rt_baseline *reports;
    uint64_t usage_ms; /* the last usage pass */
    int usage_full;    /* the next pass reports everything */
    int usage_any;     /* an identity had a limit the network sums: passes are worth making */
};

/* ---- claims ---- */

static unsigned act_bits(const json_t *arr)
{
    static const char *const names[] = {"block", "log", "alert", "remove"};
    unsigned bits = 0;
    const json_t *v;
    size_t i;

    json_array_foreach(arr, i, v)
        for (size_t k = 0; k < 4; k++)
            if (json_is_string(v) && strcmp(json_string_value(v), names[k]) == 0)
                bits |= 1u << k;
    return bits;
}

static long long claim_int(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (long long)json_integer_value(v) : 0;
}

static void copy_str(char *dst, size_t cap, const json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s && strlen(s) < cap ? s : "");
}

void rt_limits_from_claims(const json_t *claims, rt_limits *lim, rt_hwbind *hw)
{
    const json_t *l = json_object_get(claims, "lim"), *h = json_object_get(claims, "hw");
    const json_t *w = json_object_get(l, "win");

    memset(lim, 0, sizeof(*lim));
    memset(hw, 0, sizeof(*hw));
    if (json_is_object(l)) {
        lim->have = 1;
        rt_base_from_claim(json_object_get(claims, "base"), &lim->base);
        lim->rate = claim_int(l, "rate");
        lim->bw = claim_int(l, "bw");
        lim->quota = claim_int(l, "quota");
        lim->maxc = claim_int(l, "maxc");
        lim->act = act_bits(json_object_get(l, "act"));
        if (json_is_array(w) && json_array_size(w) == 3 &&
            json_is_integer(json_array_get(w, 0)) && json_is_integer(json_array_get(w, 1)) &&
            json_is_integer(json_array_get(w, 2))) {
            lim->win_from = (int)json_integer_value(json_array_get(w, 0));
            lim->win_to = (int)json_integer_value(json_array_get(w, 1));
            lim->win_off = (long)json_integer_value(json_array_get(w, 2));
            lim->have_win = lim->win_from >= 0 && lim->win_from <= 1440 && lim->win_to >= 0 &&
                            lim->win_to <= 1440 && lim->win_off > -86400 && lim->win_off < 86400;
        }
    }
    if (json_is_object(h)) {
        copy_str(hw->mode, sizeof(hw->mode), json_object_get(h, "mode"));
        copy_str(hw->imei, sizeof(hw->imei), json_object_get(h, "imei"));
        copy_str(hw->iccid, sizeof(hw->iccid), json_object_get(h, "iccid"));
    }
}

int rt_window_allows(int from, int to, int m)
{
    if (from < to)
        return m >= from && m < to;
    return m >= from || m < to; /* across midnight */
}

int rt_local_minute(long long t, long off_s)
{
    long long local = t + off_s;
    long long m = (local / 60) % 1440;
    return (int)(m < 0 ? m + 1440 : m);
}

/* ---- state ---- */

int rt_enforce_new(rt_enforce_sink sink, void *arg, rt_enforce **out)
{
    if ((*out = calloc(1, sizeof(**out))) == NULL)
        return WEFT_ENOMEM;
    if (rt_baseline_new(&(*out)->reports) < 0) {
        free(*out);
        *out = NULL;
        return WEFT_ENOMEM;
    }
    (*out)->sink = sink;
    (*out)->arg = arg;
    rt_enforce_cfg_default(&(*out)->cfg);
    return 0;
}

void rt_enforce_cfg_default(rt_enforce_cfg *cfg)
{
    rt_enforce_cfg_from_set(NULL, NULL, cfg);
}

void rt_enforce_cfg_from_set(const pr_anom_set *local, const pr_anom_set *net, rt_enforce_cfg *cfg)
{
    double v[PR_ANOM_NKEYS];

    for (int k = 0; k < PR_ANOM_NKEYS; k++) {
        v[k] = pr_anom_keys[k].dflt;
        if (local && (local->have & (1u << k)))
            v[k] = local->v[k];
        if (net && (net->have & (1u << k)))
            v[k] = net->v[k];
    }
    cfg->window_ms = (uint64_t)(v[PR_ANOM_K_WINDOW_S] * 1000.0);
    cfg->learn = (unsigned)v[PR_ANOM_K_LEARN];
    cfg->factor = v[PR_ANOM_K_FACTOR];
    cfg->bytes_factor = v[PR_ANOM_K_BYTES_FACTOR];
    cfg->min_bytes = v[PR_ANOM_K_MIN_BYTES];
    cfg->hours_learn_s = (long long)v[PR_ANOM_K_HOURS_LEARN_S];
}

/* router.json's "anomaly_<name>" keys; *bad is the key as written there. */
static int local_set(const json_t *conf, pr_anom_set *set, const char **bad)
{
    static char key[64];
    const char *name = NULL;

    if (rt_anom_set_from_json(conf, "anomaly_", set, &name) == 0)
        return 0;
    snprintf(key, sizeof(key), "anomaly_%s", name);
    if (bad)
        *bad = key;
    return WEFT_EINVAL;
}

int rt_enforce_cfg_from_json(const json_t *conf, rt_enforce_cfg *cfg, const char **bad)
{
    pr_anom_set set;
    int rc = local_set(conf, &set, bad);

    rt_enforce_cfg_from_set(rc == 0 ? &set : NULL, NULL, cfg);
    return rc;
}

void rt_enforce_configure(rt_enforce *e, const rt_enforce_cfg *cfg)
{
    if (e && cfg)
        e->cfg = *cfg;
}

void rt_enforce_free(rt_enforce *e)
{
    if (e == NULL)
        return;
    rt_baseline_free(e->reports);
    for (size_t i = 0; i < RT_ENF_BUCKETS; i++)
        while (e->bucket[i]) {
            idstate *n = e->bucket[i]->next;
            free(e->bucket[i]);
            e->bucket[i] = n;
        }
    free(e);
}

static size_t bucket_of(const char *id)
{
    size_t h = 5381;

    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % RT_ENF_BUCKETS;
}

/* The identity's state, or NULL when it has none. */
static idstate *find(rt_enforce *e, const char *id)
{
    for (idstate *s = e->bucket[bucket_of(id)]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static idstate *state_of(rt_enforce *e, const char *id)
{
    size_t h = bucket_of(id);
    idstate *s = find(e, id);

    if (s != NULL)
        return s;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->rate_tokens = -1; /* full at first use */
    s->bw_tokens = -1;
    s->next = e->bucket[h];
    e->bucket[h] = s;
    return s;
}

uint64_t rt_enforce_violations(const rt_enforce *e)
{
    return e ? e->violations : 0;
}

int rt_enforce_take(rt_enforce *e, rt_base_inc *out)
{
    for (size_t n = 0; e && n <= RT_ENF_BUCKETS; n++) {
        for (idstate *s = e->bucket[e->take_bucket]; s; s = s->next) {
            if (!s->base.dirty)
                continue;
            *out = s->base.inc;
            snprintf(out->id, sizeof(out->id), "%s", s->id);
            memset(&s->base.inc, 0, sizeof(s->base.inc));
            s->base.dirty = 0;
            return 1;
        }
        e->take_bucket = (e->take_bucket + 1) % RT_ENF_BUCKETS;
    }
    return 0;
}

rt_baseline *rt_enforce_reports(rt_enforce *e)
{
    return e ? e->reports : NULL;
}

/* Reports a violation, at most once a second per identity and kind; the
 * ones held back are counted in the next report. */
static void report_x(rt_enforce *e, idstate *st, int kind, unsigned act, const char *service,
                     const char *msg, uint64_t now_ms, const json_t *extra);

static void report(rt_enforce *e, idstate *st, int kind, unsigned act, const char *service,
                   const char *msg, uint64_t now_ms)
{
    report_x(e, st, kind, act, service, msg, now_ms, NULL);
}

/* extra: fields added to the event (the hardware ids of a binding event). */
static void report_x(rt_enforce *e, idstate *st, int kind, unsigned act, const char *service,
                     const char *msg, uint64_t now_ms, const json_t *extra)
{
    static const char *const names[] = {"block", "log", "alert", "remove"};
    json_t *ev, *acts;

    e->violations++;
    if (st && st->reported_ms[kind] && now_ms - st->reported_ms[kind] < RT_ENF_REPORT_MS) {
        st->suppressed[kind]++;
        return;
    }
    pr_warn("policy_violation", "identity=%s kind=%s service=%s blocked=%d msg=%s",
            st ? st->id : "-", kind_names[kind], pr_log_q(service), (act & RT_ACT_BLOCK) != 0,
            pr_log_q(msg));
    if (e->sink == NULL || st == NULL)
        return;
    ev = json_pack("{s:s, s:s, s:s, s:s, s:b, s:i}", "kind", kind_names[kind], "identity",
                   st->id, "service", service ? service : "", "msg", msg, "blocked",
                   (act & RT_ACT_BLOCK) != 0, "count", 1 + (int)st->suppressed[kind]);
    if (ev && kind != K_DEST) { /* the controller decides a destination's actions */
        acts = json_array();
        for (size_t k = 0; k < 4; k++)
            if (act & (1u << k))
                json_array_append_new(acts, json_string(names[k]));
        json_object_set_new(ev, "actions", acts);
    }
    if (ev && extra)
        json_object_update(ev, (json_t *)extra);
    if (ev)
        e->sink(e->arg, ev);
    json_decref(ev);
    st->reported_ms[kind] = now_ms;
    st->suppressed[kind] = 0;
}

/* Refills a bucket of cap tokens at per_ms tokens a millisecond. */
static void refill(double *tokens, uint64_t *last, double cap, double per_ms, uint64_t now)
{
    if (*tokens < 0 && *last == 0) {
        *tokens = cap;
        *last = now;
        return;
    }
    *tokens += (double)(now - *last) * per_ms;
    if (*tokens > cap)
        *tokens = cap;
    *last = now;
}

static int violate(rt_enforce *e, idstate *st, int kind, const rt_limits *lim,
                   const char *service, uint64_t now_ms, const char *msg)
{
    report(e, st, kind, lim->act, service, msg, now_ms);
    return (lim->act & RT_ACT_BLOCK) ? WEFT_EDENIED : 0;
}

/* ---- usage across routers ---- */

/* Payload bytes from the identity on UTC day `day`, here and (the
 * controller's figure, when it is of that day) through the other routers. */
static long long here_bytes(const idstate *st, long long day)
{
    return st->day == day ? st->day_bytes : 0;
}

static long long far_bytes(const idstate *st, long long day)
{
    return st->net.day == day ? st->net.bytes : 0;
}

static void quota_msg(const idstate *st, long long day, char *msg, size_t cap)
{
    long long far = far_bytes(st, day);

    if (far > 0)
        snprintf(msg, cap,
                 "daily volume quota of %lld bytes spent across the network (policy quota: "
                 "%lld bytes through this router, %lld through others)",
                 st->lim.quota, here_bytes(st, day), far);
    else
        snprintf(msg, cap, "daily volume quota of %lld bytes spent (policy quota)", st->lim.quota);
}

/* The bandwidth given here: the limit less what the other routers carry,
 * and at least an even share, so that routers carrying the identity at once
 * settle on the limit between them and none is starved. */
static long long bw_now(const idstate *st)
{
    long long bw = st->lim.bw, share, rest;

    if (bw == 0 || st->net.routers == 0)
        return bw;
    share = bw / (1 + (long long)st->net.routers);
    rest = bw - st->net.rate;
    bw = share > rest ? share : rest;
    return bw > 0 ? bw : 1;
}

long long rt_enforce_bw_now(rt_enforce *e, const char *identity)
{
    idstate *st = e ? find(e, identity) : NULL;

    return st && st->lim.have ? bw_now(st) : 0;
}

static int reportable(const idstate *st)
{
    return st->lim.have && (st->lim.quota || st->lim.maxc || st->lim.bw);
}

int rt_enforce_usage_due(const rt_enforce *e, uint64_t now_ms)
{
    return e && e->usage_any &&
           (e->usage_full || e->usage_ms == 0 || now_ms - e->usage_ms >= RT_USAGE_MS);
}

void rt_enforce_usage_begin(rt_enforce *e)
{
    for (size_t i = 0; e && i < RT_ENF_BUCKETS; i++)
        for (idstate *st = e->bucket[i]; st; st = st->next)
            st->open_now = 0;
}

void rt_enforce_usage_open(rt_enforce *e, const char *identity, unsigned n)
{
    idstate *st = e ? find(e, identity) : NULL;

    if (st)
        st->open_now += n;
}

void rt_enforce_usage_full(rt_enforce *e)
{
    if (e)
        e->usage_full = 1;
}

/* The identity's usage now, with the rate since the last pass dt ms ago. */
static void usage_now(idstate *st, uint64_t dt, long long day, rt_usage *u)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", st->id);
    u->bytes = here_bytes(st, day);
    u->circuits = st->open_now;
    if (dt > 0)
        u->rate = (long long)((st->all_bytes - st->pass_bytes) * 1000 / dt);
    st->pass_bytes = st->all_bytes;
    u->quota = st->lim.quota;
    u->maxc = st->lim.maxc;
    u->bw = st->lim.bw;
}

static int usage_changed(const idstate *st, const rt_usage *u, long long day)
{
    return st->said_day != day || u->bytes != st->said.bytes || u->circuits != st->said.circuits ||
           u->rate != st->said.rate || u->quota != st->said.quota || u->maxc != st->said.maxc ||
           u->bw != st->said.bw;
}

size_t rt_enforce_usage_each(rt_enforce *e, uint64_t now_ms, long long now_s, rt_usage_fn fn,
                             void *arg)
{
    uint64_t dt = e->usage_ms ? now_ms - e->usage_ms : 0;
    long long day = now_s / 86400;
    size_t n = 0;
    rt_usage u;

    for (size_t i = 0; i < RT_ENF_BUCKETS; i++)
        for (idstate *st = e->bucket[i]; st; st = st->next) {
            if (!reportable(st))
                continue;
            usage_now(st, dt, day, &u);
            int uses = u.bytes || u.circuits || u.rate;
            if (!usage_changed(st, &u, day) && !(e->usage_full && uses))
                continue;
            if (!uses && st->said.bytes == 0 && st->said.circuits == 0 && st->said.rate == 0)
                continue; /* nothing then, nothing now: a change of limits alone */
            fn(arg, &u);
            st->said = u;
            st->said_day = day;
            n++;
        }
    e->usage_ms = now_ms ? now_ms : 1;
    e->usage_full = 0;
    return n;
}

void rt_enforce_usage_net(rt_enforce *e, const char *identity, const rt_usage_net *net)
{
    idstate *st = e ? find(e, identity) : NULL;

    if (st)
        st->net = *net;
}

void rt_enforce_usage_forget(rt_enforce *e)
{
    for (size_t i = 0; e && i < RT_ENF_BUCKETS; i++)
        for (idstate *st = e->bucket[i]; st; st = st->next) {
            st->net.circuits = 0;
            st->net.rate = 0;
            st->net.routers = 0;
        }
}

void rt_enforce_base_forget(rt_enforce *e, const char *identity)
{
    idstate *st = e ? find(e, identity) : NULL;

    if (st)
        memset(&st->base, 0, sizeof(st->base));
}

static uint32_t hash32(const char *s)
{
    uint32_t h = 2166136261u;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Closes the window when its time is up: a window that was not an anomaly
 * feeds the baseline, and the increments reported to the controller. */
static void window_roll(baseline *b, uint64_t win_ms, uint64_t now_ms)
{
    if (b->start_ms != 0 && now_ms - b->start_ms < win_ms)
        return;
    if (b->start_ms != 0 && !b->flagged) {
        double a = b->windows == 0 ? 1.0 : RT_ANOM_ALPHA;
        b->avg_dials += a * ((double)b->dials - b->avg_dials);
        b->avg_svcs += a * ((double)b->nsvc - b->avg_svcs);
        if (b->windows < RT_BASE_COUNT_MAX)
            b->windows++;
        b->inc.windows++;
        b->inc.dials += (double)b->dials;
        b->inc.svcs += (double)b->nsvc;
        b->dirty = 1;
    }
    /* Idle windows in between count as quiet ones, at most a few. */
    for (uint64_t k = 1; b->start_ms != 0 && k < 4 &&
                         now_ms - b->start_ms >= (k + 1) * win_ms; k++) {
        b->avg_dials -= RT_ANOM_ALPHA * b->avg_dials;
        b->avg_svcs -= RT_ANOM_ALPHA * b->avg_svcs;
        b->inc.quiet++;
        b->dirty = 1;
    }
    b->start_ms = now_ms;
    b->dials = b->nsvc = 0;
    b->flagged = 0;
}

/* Counts one dial (admitted or refused) of service and reports an anomaly
 * once per window when, after the learning windows, the window's dials or
 * distinct services pass RT_ANOM_FACTOR times the baseline (and a floor, so
 * that a quiet device's first burst of two is not an alarm). */
static void anomaly_dial(rt_enforce *e, idstate *st, const char *service, unsigned act,
                         uint64_t now_ms)
{
    baseline *b = &st->base;
    uint32_t h = hash32(service);
    char msg[192];
    unsigned i;

    window_roll(b, e->cfg.window_ms, now_ms);
    b->dials++;
    for (i = 0; i < b->nsvc && b->svc[i] != h; i++)
        ;
    if (i == b->nsvc && b->nsvc < RT_ANOM_SVCS)
        b->svc[b->nsvc++] = h;
    if (b->flagged || b->windows < e->cfg.learn)
        return;
    double lim_d = e->cfg.factor * b->avg_dials, lim_s = e->cfg.factor * b->avg_svcs;
    if (lim_d < RT_ANOM_MIN_DIALS)
        lim_d = RT_ANOM_MIN_DIALS;
    if (lim_s < RT_ANOM_MIN_SVCS)
        lim_s = RT_ANOM_MIN_SVCS;
    if ((double)b->dials <= lim_d && (double)b->nsvc <= lim_s)
        return;
    b->flagged = 1;
    snprintf(msg, sizeof(msg),
             "anomaly: %u dials and %u services in %u s, baseline %.1f dials and %.1f services",
             b->dials, b->nsvc, (unsigned)(e->cfg.window_ms / 1000), b->avg_dials, b->avg_svcs);
    report(e, st, K_ANOM, act & ~(unsigned)RT_ACT_BLOCK, service, msg, now_ms);
}

/* "UTC" or "UTC+01:00": the zone the hours of activity are in. */
static void zone_name(long off, char *out, size_t cap)
{
    long a = off < 0 ? -off : off;

    if (off == 0)
        snprintf(out, cap, "UTC");
    else
        snprintf(out, cap, "UTC%c%02ld:%02ld", off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
}

/* Activity by hour: once the identity has been seen for hours_learn_s, a dial
 * in an hour of its day (its zone, UTC without one) it was never active in is
 * reported, at log level only (a device may have a reason; an operator
 * looks), and the hour is learnt so that it is reported once. */
static void anomaly_hour(rt_enforce *e, idstate *st, const char *service, long long now_s,
                         uint64_t now_ms)
{
    baseline *b = &st->base;
    long long local = now_s + b->tz_off;
    int h = (int)(((local % 86400) + 86400) % 86400 / 3600);
    char msg[160], zone[32];

    if (b->first_s == 0) {
        b->first_s = b->inc.first_s = now_s;
        b->dirty = 1;
    }
    if (b->hours & (1u << h))
        return;
    b->hours |= 1u << h;
    b->inc.hours |= 1u << h;
    b->dirty = 1;
    if (now_s - b->first_s < e->cfg.hours_learn_s)
        return;
    zone_name(b->tz_off, zone, sizeof(zone));
    snprintf(msg, sizeof(msg),
             "anomaly: active at %02d:00-%02d:59 %s, an hour of the day it was never active in", h,
             h, zone);
    report(e, st, K_ANOM_HOUR, RT_ACT_LOG, service, msg, now_ms);
}

/* The token's baseline (the identity's, merged by the controller from every
 * router) is the starting point when it has learnt more than this router
 * has: a restarted router, or a device that moved here, judges at once. What
 * this router learns afterwards goes on from it. */
static void base_adopt(baseline *b, const rt_base *t)
{
    if (!t->have)
        return;
    b->tz_off = t->tz_off;
    if (t->windows > b->windows) {
        b->windows = t->windows;
        b->avg_dials = t->avg_dials;
        b->avg_svcs = t->avg_svcs;
    }
    if (t->circuits > b->circuits) {
        b->circuits = t->circuits;
        b->avg_bytes = t->avg_bytes;
    }
    b->hours |= t->hours & RT_BASE_HOURS_MASK;
    if (t->first_s > 0 && (b->first_s == 0 || t->first_s < b->first_s))
        b->first_s = t->first_s;
}

void rt_enforce_circuit_bytes(rt_enforce *e, const char *identity, const char *service,
                              uint64_t total, int ended, uint64_t now_ms)
{
    idstate *st;
    baseline *b;
    char msg[192];

    if (e == NULL || (st = state_of(e, identity)) == NULL || !st->lim.have)
        return;
    b = &st->base;
    double lim = e->cfg.bytes_factor * b->avg_bytes;
    if (lim < e->cfg.min_bytes)
        lim = e->cfg.min_bytes;
    int over = b->circuits >= e->cfg.learn && (double)total > lim;

    if (ended) {
        if (!over) { /* an anomalous circuit does not teach the baseline */
            b->avg_bytes += (b->circuits == 0 ? 1.0 : RT_ANOM_ALPHA) *
                            ((double)total - b->avg_bytes);
            if (b->circuits < RT_BASE_COUNT_MAX)
                b->circuits++;
            b->inc.circuits++;
            b->inc.bytes += (double)total;
            b->dirty = 1;
        }
        return;
    }
    if (!over || (b->bytes_flagged_ms && now_ms - b->bytes_flagged_ms < e->cfg.window_ms))
        return;
    b->bytes_flagged_ms = now_ms;
    snprintf(msg, sizeof(msg),
             "anomaly: a circuit carried %llu bytes, baseline %.0f bytes per circuit",
             (unsigned long long)total, b->avg_bytes);
    report(e, st, K_ANOM_BYTES, st->lim.act & ~(unsigned)RT_ACT_BLOCK, service, msg, now_ms);
}

int rt_enforce_dial(rt_enforce *e, const char *identity, const char *service,
                    const rt_limits *lim, unsigned open, uint64_t now_ms, long long now_s,
                    char *msg, size_t cap)
{
    idstate *st;
    int rc = 0;

    if (e == NULL || lim == NULL || !lim->have || (st = state_of(e, identity)) == NULL)
        return 0;
    st->lim = *lim;
    e->usage_any |= reportable(st);
    base_adopt(&st->base, &lim->base);
    anomaly_dial(e, st, service, lim->act, now_ms);
    anomaly_hour(e, st, service, now_s, now_ms);
    int m = rt_local_minute(now_s, lim->win_off);

    if (lim->have_win && !rt_window_allows(lim->win_from, lim->win_to, m)) {
        snprintf(msg, cap,
                 "outside the identity's allowed hours (policy time window %02d:%02d-%02d:%02d, "
                 "now %02d:%02d local)",
                 lim->win_from / 60, lim->win_from % 60, lim->win_to / 60, lim->win_to % 60,
                 m / 60, m % 60);
        return violate(e, st, K_TIME, lim, service, now_ms, msg);
    }
    if (lim->quota && here_bytes(st, now_s / 86400) + far_bytes(st, now_s / 86400) >= lim->quota) {
        quota_msg(st, now_s / 86400, msg, cap);
        return violate(e, st, K_QUOTA, lim, service, now_ms, msg);
    }
    if (lim->maxc && (unsigned long long)open + st->net.circuits >= (unsigned long long)lim->maxc) {
        if (st->net.circuits > 0)
            snprintf(msg, cap,
                     "too many circuits open at once across the network (policy max_circuits "
                     "%lld: %u through this router, %u through others); close one first",
                     lim->maxc, open, st->net.circuits);
        else
            snprintf(msg, cap,
                     "too many circuits open at once (policy max_circuits %lld); close one first",
                     lim->maxc);
        return violate(e, st, K_MAXC, lim, service, now_ms, msg);
    }
    if (lim->rate) {
        refill(&st->rate_tokens, &st->rate_ms, (double)lim->rate, (double)lim->rate / 60000.0,
               now_ms);
        if (st->rate_tokens < 1.0) {
            snprintf(msg, cap, "too many new circuits (policy conn_rate %lld per minute); slow "
                               "down",
                     lim->rate);
            return violate(e, st, K_RATE, lim, service, now_ms, msg);
        }
        st->rate_tokens -= 1.0;
    }
    return rc;
}

static int hw_differs(const char *bound, const char *seen)
{
    return bound[0] != '\0' && strcmp(bound, seen) != 0;
}

int rt_enforce_binding(rt_enforce *e, const char *identity, const rt_hwbind *hw,
                       const char *imei, const char *iccid, uint64_t now_ms, char *msg,
                       size_t cap)
{
    int exact = strcmp(hw->mode, "exact") == 0, by_iccid = strcmp(hw->mode, "iccid") == 0;
    int by_imei = strcmp(hw->mode, "imei") == 0;
    int bad_imei = hw_differs(hw->imei, imei), bad_iccid = hw_differs(hw->iccid, iccid);
    idstate *st;

    if (e == NULL || !(exact || by_iccid || by_imei) || (st = state_of(e, identity)) == NULL)
        return 0;
    json_t *ids = json_pack("{s:s, s:s}", "imei", imei, "iccid", iccid);
    int rc = 0;

    if ((exact && (bad_imei || bad_iccid)) || (by_iccid && bad_iccid) || (by_imei && bad_imei)) {
        snprintf(msg, cap,
                 "device binding (%s): this device reports IMEI %s, ICCID %s, not the ids bound "
                 "to the identity; an administrator may run 'weft identity rebind'",
                 hw->mode, imei[0] ? imei : "none", iccid[0] ? iccid : "none");
        report_x(e, st, K_BINDING, RT_ACT_BLOCK | RT_ACT_LOG | RT_ACT_ALERT, "", msg, now_ms, ids);
        rc = WEFT_EDENIED;
    } else if ((by_iccid && bad_imei) || (by_imei && bad_iccid)) {
        snprintf(msg, cap, "device binding (%s): %s changed (IMEI %s, ICCID %s)", hw->mode,
                 by_iccid ? "IMEI" : "ICCID", imei[0] ? imei : "none", iccid[0] ? iccid : "none");
        report_x(e, st, K_BINDING, RT_ACT_LOG, "", msg, now_ms, ids);
        msg[0] = '\0';
    } else if ((imei[0] && !hw->imei[0]) || (iccid[0] && !hw->iccid[0])) {
        /* First use: the controller records the ids (the pair is fixed from now on). */
        json_object_set_new(ids, "first_use", json_true());
        snprintf(msg, cap, "device binding (%s): first use", hw->mode);
        report_x(e, st, K_FIRST_USE, RT_ACT_LOG, "", msg, now_ms, ids);
        msg[0] = '\0';
    }
    json_decref(ids);
    return rc;
}

void rt_enforce_refused(rt_enforce *e, const char *identity, const char *service, int err,
                        uint64_t now_ms)
{
    char msg[192];
    idstate *st;

    /* An expired token or a revoked identity is not an attempt to reach more. */
    if (e == NULL || err == WEFT_ETOKENEXPIRED || err == WEFT_EDISABLED ||
        (st = state_of(e, identity)) == NULL)
        return;
    snprintf(msg, sizeof(msg), "dial of service %.128s refused: not entitled (%s)",
             service ? service : "?", weft_err_name(err));
    report(e, st, K_DEST, RT_ACT_BLOCK, service, msg, now_ms);
    if (st->lim.have)
        anomaly_dial(e, st, service ? service : "", st->lim.act, now_ms);
}

int rt_enforce_bytes(rt_enforce *e, const char *identity, const char *service, size_t len,
                     uint64_t now_ms, long long now_s)
{
    long long day = now_s / 86400, bw;
    char msg[256];
    idstate *st;

    if (e == NULL || (st = state_of(e, identity)) == NULL || !st->lim.have)
        return 0;
    if (st->day != day) {
        st->day = day;
        st->day_bytes = 0;
    }
    st->day_bytes += (long long)len;
    st->all_bytes += len;
    if (st->lim.quota && st->day_bytes + far_bytes(st, day) > st->lim.quota) {
        quota_msg(st, day, msg, sizeof(msg));
        report(e, st, K_QUOTA, st->lim.act, service, msg, now_ms);
        if (st->lim.act & RT_ACT_BLOCK)
            return WEFT_EDENIED;
    }
    if ((bw = bw_now(st)) > 0) {
        /* One second of burst; a debt is paid back by pausing the reads. */
        refill(&st->bw_tokens, &st->bw_ms, (double)bw, (double)bw / 1000.0, now_ms);
        st->bw_tokens -= (double)len;
        if (st->bw_tokens < 0)
            return 1 + (int)(-st->bw_tokens * 1000.0 / (double)bw);
    }
    return 0;
}

/* ---- glue with the router's sessions ---- */

/* Circuits the session's identity dialled through it. */
static unsigned dialled(const rt_sess *s)
{
    unsigned n = 0;

    for (const rt_end *en = s->ends.head; en; en = en->next)
        if (en->side == 0)
            n++;
    return n;
}

static unsigned open_circuits(rt_router *r, const char *identity)
{
    unsigned n = 0;

    for (rt_sess *s = r->sessions; s; s = s->next)
        if (strcmp(s->identity, identity) == 0)
            n += dialled(s);
    return n;
}

void rt_enforce_count_open(rt_router *r)
{
    unsigned n;

    rt_enforce_usage_begin(r->enforce);
    for (rt_sess *s = r->sessions; s; s = s->next)
        if ((n = dialled(s)) > 0)
            rt_enforce_usage_open(r->enforce, s->identity, n);
}

static void to_controller(void *arg, const json_t *ev)
{
    rt_control_event(arg, ev);
}

int rt_enforce_attach(rt_router *r)
{
    return rt_enforce_new(to_controller, r, &r->enforce);
}

static void log_cfg(const rt_enforce_cfg *cfg, const char *source)
{
    pr_info("anomaly",
            "source=%s window_s=%g learn=%u factor=%g bytes_factor=%g min_bytes=%g "
            "hours_learn_s=%lld",
            source, (double)cfg->window_ms / 1000.0, cfg->learn, cfg->factor, cfg->bytes_factor,
            cfg->min_bytes, cfg->hours_learn_s);
}

int rt_enforce_setup(rt_router *r, const json_t *conf)
{
    const char *bad = "?";

    if (local_set(conf, &r->enforce->local, &bad) < 0) {
        pr_error("config", "key=%s msg=%s", bad,
                 pr_log_q("bad anomaly setting in router.json; fix it or remove it "
                          "(docs/policies.md \"Anomaly detection\")"));
        return WEFT_EINVAL;
    }
    rt_enforce_cfg_from_set(&r->enforce->local, &r->map.anomaly, &r->enforce->cfg);
    log_cfg(&r->enforce->cfg, r->map.anomaly.have ? "map" : "router.json");
    return 0;
}

void rt_enforce_map_changed(rt_router *r)
{
    rt_enforce *e = r->enforce;
    rt_enforce_cfg cfg;

    if (e == NULL)
        return;
    rt_enforce_cfg_from_set(&e->local, &r->map.anomaly, &cfg);
    if (cfg.window_ms == e->cfg.window_ms && cfg.learn == e->cfg.learn &&
        cfg.factor == e->cfg.factor && cfg.bytes_factor == e->cfg.bytes_factor &&
        cfg.min_bytes == e->cfg.min_bytes && cfg.hours_learn_s == e->cfg.hours_learn_s)
        return;
    e->cfg = cfg;
    log_cfg(&cfg, r->map.anomaly.have ? "map" : "router.json");
}

void rt_enforce_tick(rt_router *r)
{
    if (r->shaped_until != 0 && uv_now(r->loop) >= r->shaped_until) {
        r->shaped_until = 0;
        rt_resume_paused(r);
    }
    rt_baseline_tick(r);
    rt_usage_tick(r);
}

static long long unix_now(void)
{
    return (long long)time(NULL);
}

int rt_enforce_on_admit(rt_sess *s, const char *act, const char *service,
                        const rt_limits *lim, const rt_hwbind *hw, char *msg, size_t cap)
{
    rt_router *r = s->r;
    uint64_t now = uv_now(r->loop);
    int rc;

    msg[0] = '\0';
    if (r->enforce == NULL)
        return 0;
    if ((rc = rt_enforce_binding(r->enforce, s->identity, hw, s->imei, s->iccid, now, msg,
                                 cap)) < 0)
        return rc;
    if (strcmp(act, "dial") != 0)
        return 0;
    return rt_enforce_dial(r->enforce, s->identity, service, lim,
                           open_circuits(r, s->identity), now, unix_now(), msg, cap);
}

void rt_enforce_on_refused(rt_sess *s, const char *act, const char *service, int err)
{
    if (s->r->enforce && strcmp(act, "dial") == 0)
        rt_enforce_refused(s->r->enforce, s->identity, service, err, uv_now(s->r->loop));
}

int rt_enforce_on_data(rt_sess *s, rt_circuit *c, size_t len)
{
    rt_router *r = s->r;
    int rc;

    if (r->enforce == NULL || c->end[0].peer != s)
        return 0; /* limits are the dialler's, counted where it enters */
    rt_enforce_circuit_bytes(r->enforce, s->identity, c->service, c->bytes_up + len, 0,
                             uv_now(r->loop));
    rc = rt_enforce_bytes(r->enforce, s->identity, c->service, len, uv_now(r->loop),
                          unix_now());
    if (rc == WEFT_EDENIED) {
        rt_circuit_end(r, c, -1, WEFT_EDENIED,
                       "daily volume quota spent (behaviour policy); try again tomorrow");
        return rc;
    }
    if (rc > 0 && s->conn && !s->paused) {
        pr_conn_read_stop(s->conn);
        s->paused = 1;
        uint64_t until = uv_now(r->loop) + (uint64_t)rc;
        if (r->shaped_until == 0 || until < r->shaped_until)
            r->shaped_until = until; /* the tick resumes it (rt_enforce_tick) */
        return 1;
    }
    return 0;
}

void rt_enforce_on_circuit_end(rt_router *r, rt_circuit *c)
{
    if (r->enforce && c->end[0].kind == RT_END_EDGE)
        rt_enforce_circuit_bytes(r->enforce, c->dialler, c->service, c->bytes_up, 1,
                                 uv_now(r->loop));
}
