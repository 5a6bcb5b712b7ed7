/* Fuzzes the parsers of limits across routers (docs/policies.md "Limits
 * across routers"): the controller's CTL_USAGE report parser and the table
 * it feeds (controller/usage.c), the router's CTL_USAGE_NET reader
 * (router/usage.c) and its CTL_BASELINE_RESET reader (router/baseline.c),
 * all on the same input.
 *
 * Checks, beyond "no crash, no read out of bounds":
 *  - whatever the report parser accepts is within the documented ranges, and
 *    a refused report leaves nothing behind and a sentence in err;
 *  - an accepted report, applied for two routers and flushed, gives sums
 *    that never go below zero or past their bounds, and CTL_USAGE_NET bodies
 *    the router's own reader accepts whole;
 *  - every accepted entry, written again by the router's own encoder
 *    (rt_usage_json), is read back by the controller with the same values;
 *  - the router's readers apply nothing from a body they refuse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller/usage.h"
#include "router/baseline.h"
#include "router/enforce.h"
#include "router/usage.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const ctl_usage_entry *e)
{
    size_t n = strnlen(e->id, sizeof(e->id));

    if (n == 0 || n > PR_ID_MAX || e->bytes < 0 || e->bytes > CTL_USAGE_VALUE_MAX ||
        e->circuits < 0 || e->circuits > CTL_USAGE_COUNT_MAX || e->rate < 0 ||
        e->rate > CTL_USAGE_VALUE_MAX || e->quota < 0 || e->maxc < 0 || e->bw < 0)
        abort();
}

/* The router's encoding of the entry, read back by the controller. */
static void round_trip(const ctl_usage_entry *e)
{
    rt_usage u;
    ctl_usage_report r;
    json_t *o, *root;
    char *text, err[128];

    memset(&u, 0, sizeof(u));
    memcpy(u.id, e->id, strlen(e->id) + 1);
    u.bytes = e->bytes;
    u.circuits = (unsigned)e->circuits;
    u.rate = e->rate;
    u.quota = e->quota;
    u.maxc = e->maxc;
    u.bw = e->bw;
    if ((o = rt_usage_json(&u)) == NULL)
        return;
    root = json_pack("{s:s, s:i, s:[o]}", "boot", "fuzz", "day", 1, "ids", o);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        return;
    if (ctl_usage_parse((const uint8_t *)text, strlen(text), &r, err, sizeof(err)) < 0 ||
        r.n != 1 || strcmp(r.e[0].id, e->id) != 0 || r.e[0].bytes != e->bytes ||
        r.e[0].circuits != e->circuits || r.e[0].rate != e->rate || r.e[0].quota != e->quota ||
        r.e[0].maxc != e->maxc || r.e[0].bw != e->bw)
        abort();
    ctl_usage_report_free(&r);
    free(text);
}

/* A CTL_USAGE_NET body the controller made: the router reads it whole. */
static int net_out(void *arg, const char *router_id, const char *text)
{
    rt_enforce *e = arg;
    char err[128];
    int rc = rt_usage_net_apply(e, (const uint8_t *)text, strlen(text), err, sizeof(err));

    (void)router_id;
    if (rc < 0 || rc > CTL_USAGE_NET_IDS)
        abort();
    return 0;
}

static void fuzz_report(const uint8_t *data, size_t size, rt_enforce *e)
{
    ctl_usage_report r;
    ctl_usage *u = NULL;
    ctl_usage_net n;
    char err[256];

    if (ctl_usage_parse(data, size, &r, err, sizeof(err)) < 0) {
        if (r.e != NULL || r.n != 0 || memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();
        return;
    }
    if (r.n > CTL_USAGE_IDS_MAX || strlen(r.boot) == 0 || r.day < 0 || r.day > CTL_USAGE_DAY_MAX)
        abort();
    if (ctl_usage_new(&u) < 0)
        abort();
    ctl_usage_apply(u, "r1", &r);
    ctl_usage_apply(u, "r2", &r);
    for (size_t i = 0; i < r.n; i++) {
        check_entry(&r.e[i]);
        round_trip(&r.e[i]);
        if (ctl_usage_elsewhere(u, r.e[i].id, NULL, &n) < 0 || n.bytes < 0 ||
            n.bytes > CTL_USAGE_VALUE_MAX || n.circuits < 0 || n.rate < 0 ||
            n.rate > CTL_USAGE_VALUE_MAX || n.routers < 0 || n.routers > 2)
            abort();
    }
    ctl_usage_flush(u, net_out, e);
    ctl_usage_router_gone(u, "r1");
    ctl_usage_flush(u, net_out, e);
    ctl_usage_sweep(u, 1, r.day + 1);
    ctl_usage_free(u);
    ctl_usage_report_free(&r);
}

/* The router's readers: a refused body applies nothing. */
static void fuzz_router(const uint8_t *data, size_t size, rt_enforce *e)
{
    char err[256] = "";
    int rc = rt_usage_net_apply(e, data, size, err, sizeof(err));

    if (rc < 0 && (rc != WEFT_EJSON && rc != WEFT_EPROTO))
        abort();
    if (rc < 0 && rt_enforce_bw_now(e, "dev1") != 1000)
        abort(); /* nothing applied: the others carry nothing of dev1 */
    if (rc > RT_USAGE_NET_IDS_MAX)
        abort();
    rc = rt_baseline_forget(e, data, size);
    if (rc != WEFT_EPROTO && (rc < 0 || rc > RT_BASE_FORGET_MAX))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *c = json_loads("{\"lim\":{\"bw\":1000,\"maxc\":2,\"act\":[\"block\"]}}", 0, NULL);
    rt_enforce *e = NULL;
    rt_limits lim;
    rt_hwbind hw;
    char msg[256];

    if (c == NULL || rt_enforce_new(NULL, NULL, &e) < 0)
        abort();
    rt_limits_from_claims(c, &lim, &hw);
    json_decref(c);
    rt_enforce_dial(e, "dev1", "web", &lim, 0, 1, 1, msg, sizeof(msg));
    fuzz_router(data, size, e);
    fuzz_report(data, size, e);
    rt_enforce_free(e);
    return 0;
}
