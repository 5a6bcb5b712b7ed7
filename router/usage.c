/* Limits across routers on the router side (usage.h): usage reports out,
 * the other routers' figures in. */
#include "router/usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/errf.h"
#include "proto/jsonnum.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/baseline.h"
#include "router/router.h"
#include "weft/errors.h"

json_t *rt_usage_json(const rt_usage *u)
{
    json_t *o = json_pack("{s:s}", "id", u->id);

#define PUT(k, v)                                                                                  \
    if (o && (v))                                                                                  \
        json_object_set_new(o, k, json_integer((json_int_t)(v)));
    PUT("b", u->bytes)
    PUT("c", u->circuits)
    PUT("r", u->rate)
    PUT("q", u->quota)
    PUT("m", u->maxc)
    PUT("w", u->bw)
#undef PUT
    return o;
}

/* ---- CTL_USAGE_NET ---- */

static int parse_net(const json_t *e, const char **id, rt_usage_net *net)
{
    int64_t day, b, c, r, n;

    *id = json_string_value(json_object_get(e, "id"));
    memset(net, 0, sizeof(*net));
    if (!json_is_object(e) || *id == NULL || (*id)[0] == '\0' || strlen(*id) >= RT_ID_CAP)
        return WEFT_EPROTO;
    if (pr_json_uint(e, "day", INT64_C(1) << 31, &day) < 0 ||
        pr_json_uint(e, "b", RT_USAGE_MAX, &b) < 0 ||
        pr_json_uint(e, "c", RT_BASE_COUNT_MAX, &c) < 0 ||
        pr_json_uint(e, "r", RT_USAGE_MAX, &r) < 0 ||
        pr_json_uint(e, "n", RT_BASE_COUNT_MAX, &n) < 0)
        return WEFT_EPROTO;
    net->day = day;
    net->bytes = b;
    net->circuits = (unsigned)c;
    net->rate = r;
    net->routers = (unsigned)n;
    return 0;
}

static int check_net(const json_t *root, char *err, size_t errcap)
{
    const json_t *ids = json_object_get(root, "ids"), *e;
    rt_usage_net net;
    const char *id;
    size_t i;

    if (!json_is_object(root))
        return pr_errf(err, errcap, WEFT_EJSON, "CTL_USAGE_NET is a JSON object");
    if (!json_is_array(ids) || json_array_size(ids) > RT_USAGE_NET_IDS_MAX)
        return pr_errf(err, errcap, WEFT_EPROTO, "\"ids\" is not an array of at most %d entries",
                       RT_USAGE_NET_IDS_MAX);
    json_array_foreach(ids, i, e)
    {
        if (parse_net(e, &id, &net) < 0)
            return pr_errf(err, errcap, WEFT_EPROTO,
                           "entry %zu of \"ids\" is malformed (an \"id\" of 1..64 characters; "
                           "day, b, c, r, n non-negative integers in range)",
                           i);
    }
    return 0;
}

int rt_usage_net_apply(rt_enforce *e, const uint8_t *body, size_t len, char *err, size_t errcap)
{
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL), *v;
    rt_usage_net net;
    const char *id;
    size_t i;
    int rc;

    if (root == NULL)
        return pr_errf(err, errcap, WEFT_EJSON, "CTL_USAGE_NET is not JSON");
    if ((rc = check_net(root, err, errcap)) == 0) {
        json_array_foreach(json_object_get(root, "ids"), i, v)
        {
            parse_net(v, &id, &net);
            rt_enforce_usage_net(e, id, &net);
        }
        rc = (int)json_array_size(json_object_get(root, "ids"));
    }
    json_decref(root);
    return rc;
}

/* ---- glue with the router ---- */

typedef struct {
    rt_router *r;
    json_t *ids;
    long long day;
    size_t sent;
} report;

static void send_report(report *rp)
{
    rt_baseline *b = rt_enforce_reports(rp->r->enforce);
    json_t *root;
    char *text;

    if (json_array_size(rp->ids) == 0)
        return;
    root = json_pack("{s:s, s:I, s:O}", "boot", rt_baseline_boot(b), "day", (json_int_t)rp->day,
                     "ids", rp->ids);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text && rt_control_send(rp->r, PR_CTL_USAGE, text) == 0)
        rp->sent += json_array_size(rp->ids);
    free(text);
    json_decref(root);
    json_array_clear(rp->ids);
}

static void add_usage(void *arg, const rt_usage *u)
{
    report *rp = arg;

    json_array_append_new(rp->ids, rt_usage_json(u));
    if (json_array_size(rp->ids) >= RT_USAGE_BATCH_IDS)
        send_report(rp);
}

static void usage_pass(rt_router *r, int force)
{
    uint64_t now = uv_now(r->loop);
    long long now_s = (long long)time(NULL);
    report rp = {.r = r, .day = now_s / 86400};

    if (r->enforce == NULL || !rt_control_is_open(r) ||
        (!force && !rt_enforce_usage_due(r->enforce, now)) || (rp.ids = json_array()) == NULL)
        return;
    rt_enforce_count_open(r);
    rt_enforce_usage_each(r->enforce, now, now_s, add_usage, &rp);
    send_report(&rp);
    json_decref(rp.ids);
    if (rp.sent)
        pr_debug("usage_sent", "identities=%zu", rp.sent);
}

void rt_usage_tick(rt_router *r)
{
    usage_pass(r, 0);
}

void rt_usage_stop(rt_router *r)
{
    usage_pass(r, 1);
}

void rt_usage_control_open(rt_router *r)
{
    rt_enforce_usage_full(r->enforce);
}

void rt_usage_control_closed(rt_router *r)
{
    rt_enforce_usage_forget(r->enforce);
}

void rt_usage_net_frame(rt_router *r, const uint8_t *body, size_t len)
{
    char err[256] = "";
    int rc = rt_usage_net_apply(r->enforce, body, len, err, sizeof(err));

    if (rc < 0)
        pr_warn("usage_net_rejected", "bytes=%zu err=%s reason=%s hint=%s", len, weft_err_name(rc),
                pr_log_q(err), pr_log_q("the limits hold for this router's own figures meanwhile"));
    else
        pr_debug("usage_net", "identities=%d", rc);
}
