/* Limits across routers on the router side (router/enforce.c, router/usage.c
 * and the baseline reset of router/baseline.c): the quota, max_circuits and
 * bandwidth decisions with the other routers' figures, the usage each report
 * pass gives, every malformed CTL_USAGE_NET and CTL_BASELINE_RESET, and the
 * final baseline batch of a stopping router. */
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
#include "router/usage.h"
#include "weft/errors.h"

#include "rt_sink.h"

#define NOW_S (20454LL * 86400 + 3600) /* 2026-01-01 01:00 UTC */
#define DAY   (NOW_S / 86400)

static rt_limits lim_of(const char *claims)
{
    json_t *c = json_loads(claims, 0, NULL);
    rt_limits lim;
    rt_hwbind hw;

    assert_non_null(c);
    rt_limits_from_claims(c, &lim, &hw);
    json_decref(c);
    return lim;
}

static int net_text(rt_enforce *e, const char *text)
{
    char err[256] = "";
    int rc = rt_usage_net_apply(e, (const uint8_t *)text, strlen(text), err, sizeof(err));

    if (rc < 0)
        assert_true(err[0] != '\0');
    return rc;
}

static void set_net(rt_enforce *e, const char *id, long long day, long long b, unsigned c,
                    long long r, unsigned n)
{
    rt_usage_net net = {.day = day, .bytes = b, .circuits = c, .rate = r, .routers = n};

    rt_enforce_usage_net(e, id, &net);
}

static int dial(rt_enforce *e, const char *id, const rt_limits *lim, unsigned open, char *msg,
                size_t cap)
{
    return rt_enforce_dial(e, id, "web", lim, open, 1000, NOW_S, msg, cap);
}

static void test_quota_network(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"quota\":1000,\"act\":[\"block\",\"log\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_bytes(e, "dev1", "web", 600, 1000, NOW_S), 0);
    /* Alone, 600 more bytes would pass here (1,200 > 1,000 only network-wide). */
    set_net(e, "dev1", DAY, 300, 0, 0, 0);
    assert_int_equal(rt_enforce_bytes(e, "dev1", "web", 50, 1001, NOW_S), 0); /* 950 */
    assert_int_equal(rt_enforce_bytes(e, "dev1", "web", 100, 1002, NOW_S), WEFT_EDENIED);
    assert_string_equal(log.last_kind, "quota");
    assert_true(log.blocked);
    assert_non_null(strstr(log.last_msg, "across the network"));
    assert_non_null(strstr(log.last_msg, "750 bytes through this router, 300 through others"));
    /* A new dial is refused while the quota is spent. */
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), WEFT_EDENIED);
    assert_non_null(strstr(msg, "quota"));
    /* The other routers' bytes of another day do not count. */
    rt_enforce_free(e);
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(dial(e, "dev2", &lim, 0, msg, sizeof(msg)), 0);
    set_net(e, "dev2", DAY - 1, 5000, 0, 0, 0);
    assert_int_equal(rt_enforce_bytes(e, "dev2", "web", 900, 1000, NOW_S), 0);
    assert_int_equal(dial(e, "dev2", &lim, 0, msg, sizeof(msg)), 0);
    rt_enforce_free(e);
}

static void test_quota_log_only(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"quota\":1000,\"act\":[\"log\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    set_net(e, "dev1", DAY, 2000, 0, 0, 0);
    /* Without block the bytes go on and the violation is reported. */
    assert_int_equal(rt_enforce_bytes(e, "dev1", "web", 10, 1000, NOW_S), 0);
    assert_string_equal(log.last_kind, "quota");
    assert_false(log.blocked);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    rt_enforce_free(e);
}

static void test_maxc_network(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"maxc\":3,\"act\":[\"block\",\"log\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(dial(e, "dev1", &lim, 1, msg, sizeof(msg)), 0);
    set_net(e, "dev1", DAY, 0, 2, 0, 0);
    assert_int_equal(dial(e, "dev1", &lim, 1, msg, sizeof(msg)), WEFT_EDENIED);
    assert_string_equal(log.last_kind, "max_circuits");
    assert_non_null(strstr(msg, "across the network"));
    assert_non_null(strstr(msg, "1 through this router, 2 through others"));
    /* One closes elsewhere: room again. */
    set_net(e, "dev1", DAY, 0, 1, 0, 0);
    assert_int_equal(dial(e, "dev1", &lim, 1, msg, sizeof(msg)), 0);
    /* The channel closes: the others' circuits are forgotten, this router's limit holds. */
    set_net(e, "dev1", DAY, 0, 5, 0, 0);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), WEFT_EDENIED);
    rt_enforce_usage_forget(e);
    assert_int_equal(dial(e, "dev1", &lim, 2, msg, sizeof(msg)), 0);
    assert_int_equal(dial(e, "dev1", &lim, 3, msg, sizeof(msg)), WEFT_EDENIED);
    assert_null(strstr(msg, "across"));
    rt_enforce_free(e);
}

static void test_bandwidth_share(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"bw\":1000,\"quota\":100000,\"act\":[\"block\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 0); /* unknown: no limit */
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 1000);
    /* Another router carries 800 B/s of it: this one gives the rest, at least half. */
    set_net(e, "dev1", DAY, 0, 0, 800, 1);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 500);
    set_net(e, "dev1", DAY, 0, 0, 100, 1);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 900);
    set_net(e, "dev1", DAY, 0, 0, 3000, 3);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 250);
    /* Shaping uses it: 250 B/s of burst, then a debt paid back at 250 B/s. */
    assert_int_equal(rt_enforce_bytes(e, "dev1", "web", 250, 5000, NOW_S), 0);
    int wait = rt_enforce_bytes(e, "dev1", "web", 125, 5000, NOW_S);
    assert_in_range(wait, 450, 550);
    rt_enforce_usage_forget(e); /* the controller is away: the whole limit here */
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 1000);
    rt_enforce_free(e);
}

/* ---- report passes ---- */

typedef struct {
    int n;
    rt_usage u[8];
} passes;

static void take(void *arg, const rt_usage *u)
{
    passes *p = arg;

    if (p->n < 8)
        p->u[p->n] = *u;
    p->n++;
}

static passes pass(rt_enforce *e, uint64_t now_ms)
{
    passes p;

    memset(&p, 0, sizeof(p));
    rt_enforce_usage_each(e, now_ms, NOW_S, take, &p);
    return p;
}

static void test_report_passes(void **state)
{
    rt_enforce *e = NULL;
    rt_limits lim =
        lim_of("{\"lim\":{\"quota\":100000,\"maxc\":4,\"bw\":50000,\"act\":[\"block\"]}}");
    rt_limits rate_only = lim_of("{\"lim\":{\"rate\":60,\"act\":[\"block\"]}}");
    char msg[256];
    passes p;

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    assert_int_equal(dial(e, "calm", &rate_only, 0, msg, sizeof(msg)), 0);
    assert_false(rt_enforce_usage_due(e, 1)); /* nothing the network sums: no pass at all */
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    assert_true(rt_enforce_usage_due(e, 1));
    rt_enforce_bytes(e, "calm", "web", 500, 1000, NOW_S);
    p = pass(e, 1000); /* nothing used yet: nothing said */
    assert_int_equal(p.n, 0);
    assert_false(rt_enforce_usage_due(e, 1000 + RT_USAGE_MS - 1));
    assert_true(rt_enforce_usage_due(e, 1000 + RT_USAGE_MS));
    rt_enforce_bytes(e, "dev1", "web", 2000, 1100, NOW_S);
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 2);
    rt_enforce_usage_open(e, "nobody", 3); /* no state: ignored */
    p = pass(e, 1500);
    assert_int_equal(p.n, 1); /* "calm" has no limit the network sums */
    assert_string_equal(p.u[0].id, "dev1");
    assert_int_equal(p.u[0].bytes, 2000);
    assert_int_equal(p.u[0].circuits, 2);
    assert_int_equal(p.u[0].rate, 4000); /* 2,000 bytes in 500 ms */
    assert_int_equal(p.u[0].quota, 100000);
    assert_int_equal(p.u[0].maxc, 4);
    assert_int_equal(p.u[0].bw, 50000);
    /* The bytes stop: one more report (rate 0), then silence. */
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 2);
    p = pass(e, 2000);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.u[0].rate, 0);
    assert_int_equal(p.u[0].bytes, 2000);
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 2);
    p = pass(e, 2500);
    assert_int_equal(p.n, 0);
    /* A circuit closes: reported. */
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 1);
    p = pass(e, 3000);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.u[0].circuits, 1);
    /* A full pass (the channel opened) says it again, though nothing changed. */
    rt_enforce_usage_full(e);
    assert_true(rt_enforce_usage_due(e, 3001));
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 1);
    p = pass(e, 3001);
    assert_int_equal(p.n, 1);
    /* Midnight: today's bytes are 0. */
    p.n = 0;
    rt_enforce_usage_begin(e);
    rt_enforce_usage_open(e, "dev1", 1);
    rt_enforce_usage_each(e, 4000, NOW_S + 86400, take, &p);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.u[0].bytes, 0);
    rt_enforce_free(e);
}

static void test_usage_json(void **state)
{
    rt_usage u;
    json_t *o;
    char *text;

    (void)state;
    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "dev1");
    u.bytes = 7;
    u.maxc = 2;
    o = rt_usage_json(&u);
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"b\":7,\"id\":\"dev1\",\"m\":2}"); /* zeros left out */
    free(text);
    json_decref(o);
}

/* ---- CTL_USAGE_NET ---- */

static void test_net_good(void **state)
{
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"maxc\":2,\"bw\":1000,\"act\":[\"block\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    assert_int_equal(net_text(e, "{\"ids\":[{\"id\":\"dev1\",\"day\":20454,\"b\":5,\"c\":2,"
                                 "\"r\":600,\"n\":1,\"future\":true},{\"id\":\"unknown\"}],"
                                 "\"x\":1}"),
                     2);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), WEFT_EDENIED);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 500);
    /* Absent keys are 0: the others have nothing open any more. */
    assert_int_equal(net_text(e, "{\"ids\":[{\"id\":\"dev1\"}]}"), 1);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_bw_now(e, "dev1"), 1000);
    assert_int_equal(net_text(e, "{\"ids\":[]}"), 0);
    rt_enforce_free(e);
}

static void test_net_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "nope",
        "[]",
        "3",
        "null",
        "{}",
        "{\"ids\":{}}",
        "{\"ids\":\"dev1\"}",
        "{\"ids\":null}",
        "{\"ids\":[],\"ids\":[]}",
        "{\"ids\":[7]}",
        "{\"ids\":[[]]}",
        "{\"ids\":[{}]}",
        "{\"ids\":[{\"id\":\"\"}]}",
        "{\"ids\":[{\"id\":5}]}",
        "{\"ids\":[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]"
        "}",
        "{\"ids\":[{\"id\":\"d\",\"day\":-1}]}",
        "{\"ids\":[{\"id\":\"d\",\"day\":2147483649}]}",
        "{\"ids\":[{\"id\":\"d\",\"day\":\"1\"}]}",
        "{\"ids\":[{\"id\":\"d\",\"b\":-1}]}",
        "{\"ids\":[{\"id\":\"d\",\"b\":0.5}]}",
        "{\"ids\":[{\"id\":\"d\",\"b\":9007199254740993}]}",
        "{\"ids\":[{\"id\":\"d\",\"c\":1000000001}]}",
        "{\"ids\":[{\"id\":\"d\",\"c\":false}]}",
        "{\"ids\":[{\"id\":\"d\",\"r\":-3}]}",
        "{\"ids\":[{\"id\":\"d\",\"n\":[1]}]}",
        "{\"ids\":[{\"id\":\"d\",\"n\":null}]}",
        /* one bad entry after a good one: nothing at all is applied */
        "{\"ids\":[{\"id\":\"dev1\",\"c\":9},{\"id\":\"d\",\"c\":-1}]}",
    };
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"maxc\":2,\"act\":[\"block\"]}}");
    char msg[256];

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = net_text(e, bad[i]);
        if (rc != WEFT_EJSON && rc != WEFT_EPROTO)
            fail_msg("accepted or wrong error %d: %s", rc, bad[i]);
    }
    assert_int_equal(dial(e, "dev1", &lim, 0, msg, sizeof(msg)), 0); /* nothing applied */
    rt_enforce_free(e);
}

static void test_net_too_many(void **state)
{
    json_t *ids = json_array(), *root;
    rt_enforce *e = NULL;
    char *text, id[16];

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    for (int i = 0; i <= RT_USAGE_NET_IDS_MAX; i++) {
        snprintf(id, sizeof(id), "d%d", i);
        json_array_append_new(ids, json_pack("{s:s}", "id", id));
    }
    root = json_pack("{s:o}", "ids", ids);
    text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(net_text(e, text), WEFT_EPROTO);
    free(text);
    json_array_remove(json_object_get(root, "ids"), 0);
    text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(net_text(e, text), RT_USAGE_NET_IDS_MAX);
    free(text);
    json_decref(root);
    rt_enforce_free(e);
}

/* ---- the baseline: forgotten, and sent when the router stops ---- */

typedef struct {
    int n;
    char text[4096];
} sent_log;

static int send_cb(void *arg, const char *text)
{
    sent_log *s = arg;

    s->n++;
    snprintf(s->text, sizeof(s->text), "%s", text);
    return 0;
}

static void learn(rt_enforce *e, const char *id, int windows)
{
    rt_limits lim = lim_of("{\"lim\":{\"act\":[\"log\"]}}");
    char msg[256];

    for (int w = 0; w <= windows; w++)
        rt_enforce_dial(e, id, "web", &lim, 0, 1000 + (uint64_t)w * 10000, NOW_S, msg, sizeof(msg));
}

static int forget_text(rt_enforce *e, const char *text)
{
    return rt_baseline_forget(e, (const uint8_t *)text, strlen(text));
}

static void test_forget(void **state)
{
    static const char *const bad[] = {
        "",
        "x",
        "[]",
        "{}",
        "{\"identities\":\"dev1\"}",
        "{\"identities\":{}}",
        "{\"identities\":[7]}",
        "{\"identities\":[\"\"]}",
        "{\"identities\":[null]}",
        "{\"identities\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}",
        "{\"identities\":[\"dev1\"],\"identities\":[\"dev2\"]}",
        "{\"identities\":[\"dev1\", 3]}", /* one bad name: nothing forgotten */
    };
    rt_enforce *e = NULL;
    rt_base_inc inc;

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    learn(e, "dev1", 4);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (forget_text(e, bad[i]) != WEFT_EPROTO)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(rt_enforce_take(e, &inc), 1); /* still learnt */
    assert_int_equal(inc.windows, 4);
    learn(e, "dev1", 4);
    assert_int_equal(forget_text(e, "{\"identities\":[\"dev1\",\"unknown\"]}"), 2);
    assert_int_equal(rt_enforce_take(e, &inc), 0); /* nothing left to report */
    assert_int_equal(forget_text(e, "{\"identities\":[]}"), 0);
    rt_enforce_free(e);
}

static void test_final_batch(void **state)
{
    rt_enforce *e = NULL;
    sent_log s = {0};
    char id[16];

    (void)state;
    assert_int_equal(rt_enforce_new(NULL, NULL, &e), 0);
    /* More identities than the batches a flush may make, and none waits. */
    for (int i = 0; i < RT_BASE_BATCH_IDS * (RT_BASE_INFLIGHT + 2); i++) {
        snprintf(id, sizeof(id), "d%d", i);
        learn(e, id, 1);
    }
    assert_int_equal(rt_baseline_final(rt_enforce_reports(e), e, send_cb, &s),
                     RT_BASE_INFLIGHT + 2);
    assert_int_equal(s.n, RT_BASE_INFLIGHT + 2);
    assert_non_null(strstr(s.text, "\"seq\":18"));
    assert_int_equal(rt_baseline_waiting(rt_enforce_reports(e)), 0); /* nothing kept */
    s.n = 0;
    assert_int_equal(rt_baseline_final(rt_enforce_reports(e), e, send_cb, &s), 0);
    assert_int_equal(s.n, 0);
    rt_enforce_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_network), cmocka_unit_test(test_quota_log_only),
        cmocka_unit_test(test_maxc_network),  cmocka_unit_test(test_bandwidth_share),
        cmocka_unit_test(test_report_passes), cmocka_unit_test(test_usage_json),
        cmocka_unit_test(test_net_good),      cmocka_unit_test(test_net_bad),
        cmocka_unit_test(test_net_too_many),  cmocka_unit_test(test_forget),
        cmocka_unit_test(test_final_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
