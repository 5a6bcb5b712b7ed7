/* The identity's anomaly baseline at the router (router/baseline.c and
 * router/enforce.c): the "base" claim and every malformed form of it, a
 * restarted router that judges at once from the claim, the increments it
 * learns and reports in batches kept until acknowledged, hours in the
 * identity's zone, and the anomaly settings the map carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router/baseline.h"
#include "router/enforce.h"
#include "weft/errors.h"

#include "rt_sink.h"

static int claim_of(const char *text, rt_base *b)
{
    json_t *c = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(c);
    rc = rt_base_from_claim(c, b);
    json_decref(c);
    return rc;
}

/* ---- the claim ---- */

static void test_claim_good(void **state)
{
    rt_base b;

    (void)state;
    assert_int_equal(claim_of("{\"w\":12,\"d\":2.5,\"s\":1,\"c\":4,\"b\":900.5,\"h\":16776960,"
                              "\"t\":1767225600,\"z\":-18000,\"future\":[1]}",
                              &b),
                     0);
    assert_true(b.have);
    assert_int_equal(b.windows, 12);
    assert_true(b.avg_dials == 2.5 && b.avg_svcs == 1.0 && b.avg_bytes == 900.5);
    assert_int_equal(b.circuits, 4);
    assert_int_equal(b.hours, 16776960);
    assert_int_equal(b.first_s, 1767225600);
    assert_int_equal(b.tz_off, -18000);
    assert_int_equal(claim_of("{}", &b), 0); /* nothing learnt yet, UTC */
    assert_true(b.have);
    assert_int_equal(b.windows, 0);
    assert_int_equal(rt_base_from_claim(NULL, &b), 0);
    assert_false(b.have);
}

static void test_claim_bad(void **state)
{
    static const char *const bad[] = {
        "[]",
        "\"base\"",
        "7",
        "null",
        "true",
        "{\"w\":-1}",
        "{\"w\":\"3\"}",
        "{\"w\":1.5}",
        "{\"w\":1000000001}",
        "{\"w\":null}",
        "{\"d\":-0.1}",
        "{\"d\":\"2\"}",
        "{\"d\":1e16}",
        "{\"d\":[]}",
        "{\"s\":-1}",
        "{\"s\":{}}",
        "{\"c\":-3}",
        "{\"c\":2.5}",
        "{\"c\":false}",
        "{\"b\":-1}",
        "{\"b\":2e15}",
        "{\"h\":-1}",
        "{\"h\":16777216}",
        "{\"h\":1.0}",
        "{\"t\":-1}",
        "{\"t\":1099511627777}",
        "{\"t\":\"now\"}",
        "{\"z\":86400}",
        "{\"z\":-86400}",
        "{\"z\":3600.5}",
        "{\"z\":\"+01:00\"}",
        "{\"w\":3,\"d\":2,\"h\":-5}", /* one bad key spoils the claim */
    };
    rt_base b;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *c = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(c);
        memset(&b, 0x5a, sizeof(b));
        if (rt_base_from_claim(c, &b) != WEFT_EPROTO)
            fail_msg("accepted %s", bad[i]);
        assert_false(b.have); /* learnt as if there were none */
        assert_int_equal(b.windows, 0);
        json_decref(c);
    }
}

/* The claim comes with limits only (anomaly detection needs a behaviour policy). */
static void test_claim_in_token(void **state)
{
    json_t *c = json_loads("{\"lim\":{\"act\":[\"log\"]},\"base\":{\"w\":4,\"d\":2}}", 0, NULL);
    rt_limits lim;
    rt_hwbind hw;

    (void)state;
    rt_limits_from_claims(c, &lim, &hw);
    assert_true(lim.have && lim.base.have);
    assert_int_equal(lim.base.windows, 4);
    json_decref(c);
    c = json_loads("{\"base\":{\"w\":4}}", 0, NULL);
    rt_limits_from_claims(c, &lim, &hw);
    assert_false(lim.base.have);
    json_decref(c);
    c = json_loads("{\"lim\":{\"act\":[\"log\"]},\"base\":{\"w\":\"x\"}}", 0, NULL);
    rt_limits_from_claims(c, &lim, &hw);
    assert_true(lim.have); /* a bad baseline never costs the limits */
    assert_false(lim.base.have);
    json_decref(c);
}

/* ---- judging from the claim ---- */

static rt_limits lim_with(const char *base)
{
    char text[512];
    json_t *c;
    rt_limits lim;
    rt_hwbind hw;

    snprintf(text, sizeof(text), "{\"lim\":{\"act\":[\"log\",\"remove\"]}%s%s}",
             base ? ",\"base\":" : "", base ? base : "");
    c = json_loads(text, 0, NULL);
    assert_non_null(c);
    rt_limits_from_claims(c, &lim, &hw);
    json_decref(c);
    return lim;
}

static int flood(rt_enforce *e, const char *id, const rt_limits *lim, uint64_t t, int n)
{
    char msg[256];

    for (int k = 0; k < n; k++)
        assert_int_equal(
            rt_enforce_dial(e, id, "telemetry", lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg)), 0);
    return 0;
}

/* A restarted router (a fresh table) flags a flood in its first window when
 * the token carries a learnt baseline; without one it would be learning. */
static void test_judges_at_once(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits learnt = lim_with("{\"w\":20,\"d\":2,\"s\":1}"), bare = lim_with(NULL);

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    flood(e, "dev", &bare, 1000, 40);
    assert_int_equal(log.n, 0); /* no baseline: learning, nothing to judge against */
    flood(e, "moved", &learnt, 1000, 40);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    assert_non_null(strstr(log.last_msg, "baseline 2.0 dials"));
    rt_enforce_free(e);
}

/* A claim that knows less than the router does not replace what it learnt. */
static void test_keeps_what_it_knows(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits bare = lim_with(NULL), stale = lim_with("{\"w\":2,\"d\":100,\"s\":50}");
    uint64_t t = 1000;

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    for (int w = 0; w < 5; w++, t += RT_ANOM_WINDOW_MS)
        flood(e, "dev", &bare, t, 2);
    flood(e, "dev", &stale, t, 30); /* 30 dials: over 4 x 2, whatever the stale claim says */
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    rt_enforce_free(e);
}

/* ---- increments ---- */

static void test_increments(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_with("{\"w\":9,\"d\":2,\"s\":1,\"h\":1,\"t\":500}");
    rt_base_inc inc;
    char msg[256];
    uint64_t t = 1000;
    long long s = 1767225600 + 10 * 3600; /* 10:00 UTC */
    json_t *j;

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(rt_enforce_take(e, &inc), 0);
    /* Two windows of 3 dials, then an idle gap of two windows. */
    for (int w = 0; w < 2; w++, t += RT_ANOM_WINDOW_MS)
        for (int k = 0; k < 3; k++)
            rt_enforce_dial(e, "dev", k ? "a" : "b", &lim, 0, t + (uint64_t)k, s, msg, sizeof(msg));
    t += 2 * RT_ANOM_WINDOW_MS;
    rt_enforce_dial(e, "dev", "a", &lim, 0, t, s, msg, sizeof(msg));
    rt_enforce_circuit_bytes(e, "dev", "a", 1500, 1, t);
    rt_enforce_circuit_bytes(e, "dev", "a", 500, 1, t);
    assert_int_equal(rt_enforce_take(e, &inc), 1);
    assert_string_equal(inc.id, "dev");
    assert_int_equal(inc.windows, 2);
    assert_true(inc.dials == 6.0 && inc.svcs == 4.0);
    assert_int_equal(inc.quiet, 2);
    assert_int_equal(inc.circuits, 2);
    assert_true(inc.bytes == 2000.0);
    assert_int_equal(inc.hours, 1u << 10); /* hour 0 came with the claim: not reported */
    assert_int_equal(inc.first_s, 0);      /* the claim knew an earlier first dial */
    j = rt_base_inc_json(&inc);
    assert_int_equal(json_integer_value(json_object_get(j, "w")), 2);
    assert_null(json_object_get(j, "t")); /* zero keys are left out */
    json_decref(j);
    assert_int_equal(rt_enforce_take(e, &inc), 0); /* taken: cleared */
    /* An identity first seen here reports its first dial. */
    lim = lim_with(NULL);
    rt_enforce_dial(e, "new", "a", &lim, 0, t, s, msg, sizeof(msg));
    assert_int_equal(rt_enforce_take(e, &inc), 1);
    assert_int_equal(inc.first_s, s);
    rt_enforce_free(e);
}

/* ---- reports ---- */

typedef struct {
    int n, fail;
    char last[16384];
} sent_log;

static int capture(void *arg, const char *text)
{
    sent_log *l = arg;

    if (l->fail)
        return WEFT_ECLOSED;
    l->n++;
    snprintf(l->last, sizeof(l->last), "%s", text);
    return 0;
}

static void learn_ids(rt_enforce *e, int n, uint64_t t)
{
    rt_limits lim = lim_with(NULL);
    char id[32], msg[256];

    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "dev%d", i);
        rt_enforce_dial(e, id, "a", &lim, 0, t, 0, msg, sizeof(msg));
        rt_enforce_dial(e, id, "a", &lim, 0, t + RT_ANOM_WINDOW_MS, 0, msg, sizeof(msg));
    }
}

static char *ack_for(const char *batch_text)
{
    json_t *b = json_loads(batch_text, 0, NULL), *a;
    char *text;

    a = json_pack("{s:O, s:O}", "boot", json_object_get(b, "boot"), "seq",
                  json_object_get(b, "seq"));
    text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    json_decref(b);
    return text;
}

static void test_batches(void **state)
{
    rt_enforce *e = NULL;
    rt_baseline *b = rt_enforce_reports(NULL);
    sent_log sent = {0};
    json_t *j;
    char *ack;
    uint64_t now = 100000;

    (void)state;
    assert_null(b);
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    b = rt_enforce_reports(e);
    learn_ids(e, RT_BASE_BATCH_IDS + 5, 1000);
    /* Two batches: a full one and the rest; each fits a control frame. */
    assert_int_equal(rt_baseline_flush(b, e, now, capture, &sent), 2);
    assert_int_equal(sent.n, 2);
    assert_true(strlen(sent.last) < 16384);
    j = json_loads(sent.last, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "ids")), 5);
    assert_int_equal(json_string_length(json_object_get(j, "boot")), 32);
    json_decref(j);
    assert_int_equal(rt_baseline_waiting(b), 2);
    /* Nothing more before the next flush time, nothing to send after it. */
    learn_ids(e, 1, 50000);
    assert_int_equal(rt_baseline_flush(b, e, now + 1, capture, &sent), 0);
    /* Acknowledging seq 2 drops both (cumulative); another boot's ack drops nothing. */
    assert_int_equal(rt_baseline_ack(b, (const uint8_t *)"{\"boot\":\"other\",\"seq\":9}", 24), 0);
    assert_int_equal(rt_baseline_ack(b, (const uint8_t *)"not json", 8), 0);
    ack = ack_for(sent.last);
    assert_int_equal(rt_baseline_ack(b, (const uint8_t *)ack, strlen(ack)), 2);
    free(ack);
    assert_int_equal(rt_baseline_waiting(b), 0);
    assert_int_equal(rt_baseline_acked_total(b), 2);
    /* The controller away: a batch that did not go out waits and goes again, in order. */
    sent.fail = 1;
    assert_int_equal(rt_baseline_flush(b, e, now + RT_BASE_FLUSH_MS, capture, &sent), 1);
    assert_int_equal(rt_baseline_waiting(b), 1);
    assert_false(rt_baseline_overdue(b, now + RT_BASE_FLUSH_MS + 1));
    assert_true(rt_baseline_overdue(b, now + RT_BASE_FLUSH_MS + RT_BASE_RESEND_MS));
    sent.fail = 0;
    assert_int_equal(rt_baseline_send_waiting(b, now + 2 * RT_BASE_FLUSH_MS, capture, &sent), 1);
    j = json_loads(sent.last, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 3);
    json_decref(j);
    rt_enforce_free(e);
}

/* At most RT_BASE_INFLIGHT wait: past that the increments stay in the table. */
static void test_inflight_bound(void **state)
{
    rt_enforce *e = NULL;
    rt_baseline *b;
    sent_log sent = {0};
    uint64_t now = 100000;
    rt_base_inc inc;

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    b = rt_enforce_reports(e);
    learn_ids(e, RT_BASE_BATCH_IDS * (RT_BASE_INFLIGHT + 1), 1000);
    for (int k = 0; k < 4; k++, now += RT_BASE_FLUSH_MS)
        rt_baseline_flush(b, e, now, capture, &sent);
    assert_int_equal(rt_baseline_waiting(b), RT_BASE_INFLIGHT);
    assert_int_equal(sent.n, RT_BASE_INFLIGHT);
    assert_int_equal(rt_enforce_take(e, &inc), 1); /* the rest is still there */
    rt_enforce_free(e);
}

/* ---- hours in the identity's zone ---- */

static void test_hours_zone(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    /* Kolkata (UTC+05:30), learnt a week ago, active 09:00-17:59 local. */
    rt_limits lim = lim_with("{\"h\":261632,\"t\":1000,\"z\":19800}");
    rt_enforce_cfg cfg;
    char msg[256];
    long long day = 1767225600;

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    rt_enforce_cfg_default(&cfg);
    rt_enforce_configure(e, &cfg);
    /* 04:00 UTC is 09:30 in Kolkata: a usual hour there, though not in UTC. */
    rt_enforce_dial(e, "dev", "a", &lim, 0, 1000, day + 4 * 3600, msg, sizeof(msg));
    assert_int_equal(log.n, 0);
    /* 22:00 UTC is 03:30 there: never active then. */
    rt_enforce_dial(e, "dev", "a", &lim, 0, 2000, day + 22 * 3600, msg, sizeof(msg));
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    assert_non_null(strstr(log.last_msg, "03:00-03:59 UTC+05:30"));
    rt_enforce_free(e);
}

/* ---- settings: the map's over router.json's over the defaults ---- */

static void test_settings(void **state)
{
    json_t *local =
        json_loads("{\"anomaly_window_s\":30,\"anomaly_learn\":5,\"window_s\":1}", 0, NULL);
    json_t *net =
        json_loads("{\"learn\":7,\"factor\":\"high\",\"min_bytes\":-1,\"later\":1}", 0, NULL);
    pr_anom_set a, n;
    rt_enforce_cfg cfg;
    const char *bad = NULL;

    (void)state;
    assert_int_equal(rt_anom_set_from_json(local, "anomaly_", &a, &bad), 0);
    assert_int_equal(a.have, (1u << PR_ANOM_K_WINDOW_S) | (1u << PR_ANOM_K_LEARN));
    /* Bad keys are left out and named; the good ones are read all the same. */
    assert_int_equal(rt_anom_set_from_json(net, "", &n, &bad), WEFT_EINVAL);
    assert_string_equal(bad, "factor");
    assert_int_equal(n.have, 1u << PR_ANOM_K_LEARN);
    rt_enforce_cfg_from_set(&a, &n, &cfg);
    assert_int_equal(cfg.window_ms, 30000);    /* router.json */
    assert_int_equal(cfg.learn, 7);            /* the map wins */
    assert_true(cfg.factor == RT_ANOM_FACTOR); /* the default */
    rt_enforce_cfg_from_set(NULL, NULL, &cfg);
    assert_int_equal(cfg.window_ms, RT_ANOM_WINDOW_MS);
    assert_int_equal(rt_anom_set_from_json(NULL, "", &n, NULL), 0);
    assert_int_equal(n.have, 0);
    json_decref(local);
    json_decref(net);
}

static void test_map_settings(void **state)
{
    rt_map m;
    char err[256];
    const char *full = "{\"version\":3,\"anomaly\":{\"window_s\":60,\"factor\":2}}";

    (void)state;
    rt_map_init(&m);
    assert_int_equal(rt_map_apply_full(&m, full, strlen(full), err, sizeof(err)), 0);
    assert_int_equal(m.anomaly.have, (1u << PR_ANOM_K_WINDOW_S) | (1u << PR_ANOM_K_FACTOR));
    /* A delta without "anomaly" keeps them. */
    const char *d1 = "{\"version\":4,\"base\":3,\"ops\":[]}";
    assert_int_equal(rt_map_apply_delta(&m, d1, strlen(d1), err, sizeof(err)), 0);
    assert_int_equal(m.anomaly.have, (1u << PR_ANOM_K_WINDOW_S) | (1u << PR_ANOM_K_FACTOR));
    /* One that has it replaces them; a bad key is left out, the delta applies. */
    const char *d2 = "{\"version\":5,\"base\":4,\"ops\":[],\"anomaly\":{\"learn\":9,"
                     "\"window_s\":0}}";
    assert_int_equal(rt_map_apply_delta(&m, d2, strlen(d2), err, sizeof(err)), 0);
    assert_int_equal(m.anomaly.have, 1u << PR_ANOM_K_LEARN);
    assert_int_equal(m.version, 5);
    /* null, or anything but an object: none (router.json again). */
    const char *d3 = "{\"version\":6,\"base\":5,\"ops\":[],\"anomaly\":null}";
    assert_int_equal(rt_map_apply_delta(&m, d3, strlen(d3), err, sizeof(err)), 0);
    assert_int_equal(m.anomaly.have, 0);
    const char *f2 = "{\"version\":7,\"anomaly\":[60]}";
    assert_int_equal(rt_map_apply_full(&m, f2, strlen(f2), err, sizeof(err)), 0);
    assert_int_equal(m.anomaly.have, 0);
    rt_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_good),
        cmocka_unit_test(test_claim_bad),
        cmocka_unit_test(test_claim_in_token),
        cmocka_unit_test(test_judges_at_once),
        cmocka_unit_test(test_keeps_what_it_knows),
        cmocka_unit_test(test_increments),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_inflight_bound),
        cmocka_unit_test(test_hours_zone),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_map_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
