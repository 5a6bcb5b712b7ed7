/* Limits across routers on the controller side (usage.h): the routers'
 * reports parsed and kept per (identity, router), summed per identity, and
 * the sums each router needs pushed back to it. */
#include "controller/usage.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/baseline.h"
#include "proto/errf.h"
#include "proto/jsonnum.h"
#include "proto/log.h"
#include "weft/errors.h"

#define BUCKETS 4096

/* One router's figures for one identity, and what that router was last told. */
typedef struct {
    char router[PR_ID_MAX + 1];
    char boot[CTL_USAGE_BOOT_MAX + 1];
    int64_t day;
    int64_t bytes, carried; /* that day: this router process, and its earlier ones */
    int64_t circuits, rate;
    int64_t quota, maxc, bw;
    int offline; /* its control channel is closed: told nothing until it opens */
    ctl_usage_net told;
} site;

typedef struct ident ident;
struct ident {
    char id[PR_ID_MAX + 1];
    site *sites;
    size_t n, cap;
    int dirty;
    int64_t quota_day; /* the day the quota was logged as passed */
    int over_maxc;     /* logged as over max_circuits */
    ident *next, *dnext;
};

struct ctl_usage {
    ident *bucket[BUCKETS];
    ident *dirty;
    size_t nids;
    int full_logged;
    uint64_t swept_ms;
};

/* ---- reports ---- */

static int parse_entry(const json_t *o, ctl_usage_entry *e)
{
    const char *id = json_string_value(json_object_get(o, "id"));

    memset(e, 0, sizeof(*e));
    if (!json_is_object(o) || id == NULL || id[0] == '\0' || strlen(id) > PR_ID_MAX)
        return WEFT_EPROTO;
    memcpy(e->id, id, strlen(id) + 1);
    if (pr_json_uint(o, "b", CTL_USAGE_VALUE_MAX, &e->bytes) < 0 ||
        pr_json_uint(o, "c", CTL_USAGE_COUNT_MAX, &e->circuits) < 0 ||
        pr_json_uint(o, "r", CTL_USAGE_VALUE_MAX, &e->rate) < 0 ||
        pr_json_uint(o, "q", CTL_USAGE_VALUE_MAX, &e->quota) < 0 ||
        pr_json_uint(o, "m", CTL_USAGE_COUNT_MAX, &e->maxc) < 0 ||
        pr_json_uint(o, "w", CTL_USAGE_VALUE_MAX, &e->bw) < 0)
        return WEFT_EPROTO;
    return 0;
}

static int parse_root(const json_t *root, ctl_usage_report *out, char *err, size_t errcap)
{
    const char *boot = json_string_value(json_object_get(root, "boot"));
    const json_t *ids = json_object_get(root, "ids"), *v;
    size_t i;

    if (!json_is_object(root))
        return pr_errf(err, errcap, WEFT_EJSON, "a usage report is a JSON object");
    if (!ctl_baseline_boot_ok(boot))
        return pr_errf(err, errcap, WEFT_EPROTO, "\"boot\" is not 1..64 letters and digits");
    if (json_object_get(root, "day") == NULL ||
        pr_json_uint(root, "day", CTL_USAGE_DAY_MAX, &out->day) < 0)
        return pr_errf(err, errcap, WEFT_EPROTO, "\"day\" is not a UTC day number");
    if (!json_is_array(ids) || json_array_size(ids) > CTL_USAGE_IDS_MAX)
        return pr_errf(err, errcap, WEFT_EPROTO, "\"ids\" is not an array of at most %d entries",
                       CTL_USAGE_IDS_MAX);
    memcpy(out->boot, boot, strlen(boot) + 1);
    if ((out->e = calloc(json_array_size(ids) + 1, sizeof(*out->e))) == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(ids, i, v)
    {
        if (parse_entry(v, &out->e[i]) < 0)
            return pr_errf(err, errcap, WEFT_EPROTO,
                           "entry %zu of \"ids\" is malformed (an \"id\" of 1..64 characters; "
                           "b, c, r, q, m, w non-negative integers in range)",
                           i);
        out->n++;
    }
    return 0;
}

int ctl_usage_parse(const uint8_t *body, size_t len, ctl_usage_report *out, char *err,
                    size_t errcap)
{
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    int rc;

    memset(out, 0, sizeof(*out));
    if (root == NULL)
        return pr_errf(err, errcap, WEFT_EJSON, "a usage report is not JSON");
    rc = parse_root(root, out, err, errcap);
    json_decref(root);
    if (rc < 0)
        ctl_usage_report_free(out);
    return rc;
}

void ctl_usage_report_free(ctl_usage_report *r)
{
    if (r == NULL)
        return;
    free(r->e);
    r->e = NULL;
    r->n = 0;
}

/* ---- the table ---- */

int ctl_usage_new(ctl_usage **out)
{
    return (*out = calloc(1, sizeof(**out))) == NULL ? WEFT_ENOMEM : 0;
}

static void ident_free(ident *d)
{
    free(d->sites);
    free(d);
}

void ctl_usage_free(ctl_usage *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        while (u->bucket[i]) {
            ident *n = u->bucket[i]->next;
            ident_free(u->bucket[i]);
            u->bucket[i] = n;
        }
    free(u);
}

size_t ctl_usage_tracked(const ctl_usage *u)
{
    return u ? u->nids : 0;
}

static size_t hash(const char *id)
{
    size_t h = 5381;

    for (; *id; id++)
        h = h * 33 + (unsigned char)*id;
    return h % BUCKETS;
}

static ident *find(const ctl_usage *u, const char *id)
{
    for (ident *d = u->bucket[hash(id)]; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

static ident *ident_get(ctl_usage *u, const char *id)
{
    ident *d = find(u, id);

    if (d != NULL)
        return d;
    if (u->nids >= CTL_USAGE_TRACK_MAX) {
        if (!u->full_logged++)
            pr_warn("usage_table_full", "identities=%zu hint=%s", u->nids,
                    pr_log_q("more identities than the controller follows; the others are "
                             "limited per router"));
        return NULL;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return NULL;
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->next = u->bucket[hash(id)];
    u->bucket[hash(id)] = d;
    u->nids++;
    return d;
}

static site *site_get(ident *d, const char *router)
{
    site *ns;

    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->sites[i].router, router) == 0)
            return &d->sites[i];
    if (d->n == CTL_USAGE_SITES_MAX)
        return NULL;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 2;
        if ((ns = realloc(d->sites, cap * sizeof(*ns))) == NULL)
            return NULL;
        d->sites = ns;
        d->cap = cap;
    }
    ns = &d->sites[d->n++];
    memset(ns, 0, sizeof(*ns));
    snprintf(ns->router, sizeof(ns->router), "%s", router);
    return ns;
}

static void mark(ctl_usage *u, ident *d)
{
    if (d->dirty)
        return;
    d->dirty = 1;
    d->dnext = u->dirty;
    u->dirty = d;
}

static int64_t clamp(int64_t v)
{
    return v > CTL_USAGE_VALUE_MAX ? CTL_USAGE_VALUE_MAX : v;
}

/* The bytes of an earlier process of the router that day are kept. */
static void site_put(site *s, const char *boot, int64_t day, const ctl_usage_entry *e)
{
    if (strcmp(s->boot, boot) != 0) {
        s->carried = s->day == day ? clamp(s->carried + s->bytes) : 0;
        snprintf(s->boot, sizeof(s->boot), "%s", boot);
    } else if (s->day != day) {
        s->carried = 0;
    }
    s->day = day;
    s->offline = 0;
    s->bytes = e->bytes;
    s->circuits = e->circuits;
    s->rate = e->rate;
    s->quota = e->quota;
    s->maxc = e->maxc;
    s->bw = e->bw;
}

void ctl_usage_apply(ctl_usage *u, const char *router_id, const ctl_usage_report *r)
{
    ident *d;
    site *s;

    for (size_t i = 0; i < r->n; i++) {
        if ((d = ident_get(u, r->e[i].id)) == NULL || (s = site_get(d, router_id)) == NULL)
            continue;
        site_put(s, r->boot, r->day, &r->e[i]);
        mark(u, d);
    }
}

int ctl_usage_ingest(ctl_usage *u, const char *router_id, const uint8_t *body, size_t len)
{
    ctl_usage_report r;
    char err[256] = "";
    int rc = ctl_usage_parse(body, len, &r, err, sizeof(err));

    if (rc < 0) {
        pr_warn("usage_rejected", "router=%s err=%s reason=%s hint=%s", router_id,
                weft_err_name(rc), pr_log_q(err),
                pr_log_q("the report is dropped; the router's next one replaces it"));
        return rc;
    }
    ctl_usage_apply(u, router_id, &r);
    ctl_usage_report_free(&r);
    return 0;
}

/* ---- sums ---- */

static int64_t newest_day(const ident *d)
{
    int64_t day = 0;

    for (size_t i = 0; i < d->n; i++)
        if (d->sites[i].day > day)
            day = d->sites[i].day;
    return day;
}

/* Through every site but `but` (NULL: all). */
static void sum(const ident *d, const site *but, ctl_usage_net *out)
{
    memset(out, 0, sizeof(*out));
    out->day = newest_day(d);
    for (size_t i = 0; i < d->n; i++) {
        const site *s = &d->sites[i];
        if (s == but)
            continue;
        if (s->day == out->day)
            out->bytes = clamp(out->bytes + s->bytes + s->carried);
        out->circuits += s->circuits;
        out->rate = clamp(out->rate + s->rate);
        out->routers += s->rate > 0;
    }
}

int ctl_usage_elsewhere(const ctl_usage *u, const char *identity, const char *router_id,
                        ctl_usage_net *out)
{
    const ident *d = u ? find(u, identity) : NULL;
    const site *but = NULL;

    memset(out, 0, sizeof(*out));
    if (d == NULL || d->n == 0)
        return WEFT_ENOTFOUND;
    for (size_t i = 0; router_id && i < d->n; i++)
        if (strcmp(d->sites[i].router, router_id) == 0)
            but = &d->sites[i];
    sum(d, but, out);
    return 0;
}

/* The strictest of each limit the routers enforce for the identity (0: none). */
typedef struct {
    int64_t quota, maxc, bw;
} limits;

static int64_t stricter(int64_t a, int64_t b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

static limits limits_of(const ident *d)
{
    limits l = {0, 0, 0};

    for (size_t i = 0; i < d->n; i++) {
        l.quota = stricter(l.quota, d->sites[i].quota);
        l.maxc = stricter(l.maxc, d->sites[i].maxc);
        l.bw = stricter(l.bw, d->sites[i].bw);
    }
    return l;
}

static int rate_moved(int64_t was, int64_t now)
{
    int64_t d = now > was ? now - was : was - now;

    return (was == 0) != (now == 0) || d * 8 > was;
}

/* Would the router decide differently with n than with what it was told? */
static int worth_telling(const ctl_usage_net *told, const ctl_usage_net *n, limits l)
{
    if (l.quota && (n->bytes != told->bytes || (n->bytes > 0 && n->day != told->day)))
        return 1;
    if (l.maxc && n->circuits != told->circuits)
        return 1;
    return l.bw && (n->routers != told->routers || rate_moved(told->rate, n->rate));
}

/* Logs the network-wide sums passing a limit: once a day for the quota, once
 * each time for max_circuits (routers admit in parallel between two reports). */
static void log_passed(ident *d, limits l)
{
    ctl_usage_net all;

    sum(d, NULL, &all);
    if (l.quota && all.bytes > l.quota && d->quota_day != all.day) {
        d->quota_day = all.day;
        pr_info("usage_quota_passed", "identity=%s bytes=%lld quota=%lld routers=%zu", d->id,
                (long long)all.bytes, (long long)l.quota, d->n);
    }
    if (l.maxc && all.circuits > l.maxc && !d->over_maxc)
        pr_info("usage_circuits_over", "identity=%s circuits=%lld max_circuits=%lld", d->id,
                (long long)all.circuits, (long long)l.maxc);
    d->over_maxc = l.maxc && all.circuits > l.maxc;
}

static json_t *net_json(const char *id, const ctl_usage_net *n)
{
    json_t *o = json_pack("{s:s, s:I}", "id", id, "day", (json_int_t)n->day);

#define PUT(k, v)                                                                                  \
    if (o && (v))                                                                                  \
        json_object_set_new(o, k, json_integer((json_int_t)(v)));
    PUT("b", n->bytes)
    PUT("c", n->circuits)
    PUT("r", n->rate)
    PUT("n", n->routers)
#undef PUT
    return o;
}

/* The entries each router is to be told: {router -> [entry, ...]}. */
static size_t collect(ident *d, json_t *per)
{
    limits l = limits_of(d);
    ctl_usage_net n;
    json_t *arr;
    size_t told = 0;

    log_passed(d, l);
    for (size_t i = 0; i < d->n; i++) {
        site *s = &d->sites[i];
        sum(d, s, &n);
        if (s->offline || !worth_telling(&s->told, &n, l))
            continue;
        if ((arr = json_object_get(per, s->router)) == NULL) {
            arr = json_array();
            json_object_set_new(per, s->router, arr);
        }
        if (arr && json_array_append_new(arr, net_json(d->id, &n)) == 0) {
            s->told = n;
            told++;
        }
    }
    return told;
}

/* One router's entries, CTL_USAGE_NET_IDS a body. */
static void send_to(const char *router, json_t *arr, ctl_usage_out out, void *arg)
{
    size_t n = json_array_size(arr);

    for (size_t off = 0; off < n; off += CTL_USAGE_NET_IDS) {
        json_t *part = json_array(), *root;
        char *text;
        for (size_t i = off; part && i < n && i < off + CTL_USAGE_NET_IDS; i++)
            json_array_append(part, json_array_get(arr, i));
        root = part ? json_pack("{s:o}", "ids", part) : NULL;
        text = root ? json_dumps(root, JSON_COMPACT) : NULL;
        if (text)
            out(arg, router, text);
        free(text);
        json_decref(root);
    }
}

size_t ctl_usage_flush(ctl_usage *u, ctl_usage_out out, void *arg)
{
    json_t *per = json_object(), *arr;
    const char *router;
    size_t told = 0;

    while (u->dirty) {
        ident *d = u->dirty;
        u->dirty = d->dnext;
        d->dirty = 0;
        d->dnext = NULL;
        if (per)
            told += collect(d, per);
    }
    json_object_foreach(per, router, arr) send_to(router, arr, out, arg);
    json_decref(per);
    return told;
}

/* Calls fn on the site of router in every identity that has one. */
static void each_site(ctl_usage *u, const char *router, void (*fn)(ctl_usage *, ident *, site *))
{
    for (size_t b = 0; b < BUCKETS; b++)
        for (ident *d = u->bucket[b]; d; d = d->next)
            for (size_t i = 0; i < d->n; i++)
                if (strcmp(d->sites[i].router, router) == 0)
                    fn(u, d, &d->sites[i]);
}

static void site_open(ctl_usage *u, ident *d, site *s)
{
    memset(&s->told, 0, sizeof(s->told));
    s->offline = 0;
    mark(u, d);
}

static void site_gone(ctl_usage *u, ident *d, site *s)
{
    s->circuits = 0;
    s->rate = 0;
    site_open(u, d, s);
    s->offline = 1;
}

void ctl_usage_router_open(ctl_usage *u, const char *router_id)
{
    if (u && router_id)
        each_site(u, router_id, site_open);
}

void ctl_usage_router_gone(ctl_usage *u, const char *router_id)
{
    if (u && router_id)
        each_site(u, router_id, site_gone);
}

/* Nothing of the site counts today, and its router holds nothing that could
 * go stale without it. */
static int site_idle(const site *s, int64_t today)
{
    return s->day < today && s->circuits == 0 && s->rate == 0 && s->told.circuits == 0 &&
           s->told.rate == 0 && s->told.routers == 0;
}

/* Drops the identity's idle sites; 1 when none is left. */
static int sweep_ident(ident *d, int64_t today)
{
    size_t k = 0;

    for (size_t i = 0; i < d->n; i++)
        if (!site_idle(&d->sites[i], today))
            d->sites[k++] = d->sites[i];
    d->n = k;
    return k == 0 && !d->dirty;
}

void ctl_usage_sweep(ctl_usage *u, uint64_t now_ms, int64_t today)
{
    if (u == NULL || (u->swept_ms != 0 && now_ms - u->swept_ms < CTL_USAGE_SWEEP_MS))
        return;
    u->swept_ms = now_ms ? now_ms : 1;
    for (size_t b = 0; b < BUCKETS; b++)
        for (ident **p = &u->bucket[b]; *p;) {
            ident *d = *p;
            if (!sweep_ident(d, today)) {
                p = &d->next;
                continue;
            }
            *p = d->next;
            ident_free(d);
            u->nids--;
        }
}
