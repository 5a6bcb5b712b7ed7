/* Behaviour limits and device binding at the ingress router (router/enforce.c):
 * decisions over a simulated clock, and the events they report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "router/enforce.h"
#include "weft/errors.h"

#include "rt_sink.h"

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

static void test_claims(void **state)
{
    json_t *c = json_loads("{\"lim\":{\"rate\":5,\"bw\":1000,\"maxc\":2,\"win\":[480,1080,3600],"
                           "\"act\":[\"block\",\"alert\"]},\"hw\":{\"mode\":\"exact\",\"imei\":"
                           "\"1\",\"iccid\":\"A\"}}",
                           0, NULL);
    rt_limits lim;
    rt_hwbind hw;
    (void)state;
    rt_limits_from_claims(c, &lim, &hw);
    assert_true(lim.have && lim.have_win);
    assert_int_equal(lim.rate, 5);
    assert_int_equal(lim.win_off, 3600);
    assert_int_equal(lim.act, RT_ACT_BLOCK | RT_ACT_ALERT);
    assert_string_equal(hw.mode, "exact");
    assert_string_equal(hw.iccid, "A");
    json_decref(c);
    c = json_loads("{\"lim\":{\"rate\":\"x\",\"win\":[1,2]}}", 0, NULL);
    rt_limits_from_claims(c, &lim, &hw);
    assert_int_equal(lim.rate, 0); /* malformed values mean no limit, not a crash */
    assert_false(lim.have_win);
    json_decref(c);
}

static void test_window(void **state)
{
    (void)state;
    assert_true(rt_window_allows(480, 1080, 600));
    assert_false(rt_window_allows(480, 1080, 1080));
    assert_true(rt_window_allows(1320, 360, 30)); /* 22:00-06:00 */
    assert_false(rt_window_allows(1320, 360, 720));
    /* 07:30 UTC is 08:30 at UTC+1. */
    assert_int_equal(rt_local_minute(7 * 3600 + 30 * 60, 3600), 510);
    assert_int_equal(rt_local_minute(30 * 60, -3600), 1410);
}

static void test_rate_and_reports(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"rate\":3,\"act\":[\"block\",\"log\"]}}");
    char msg[256];
    uint64_t t = 1000;
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 0, t, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 0, t, 0, msg, sizeof(msg)),
                     WEFT_EDENIED);
    assert_non_null(strstr(msg, "conn_rate"));
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "rate");
    /* Within a second further violations are counted, not sent. */
    rt_enforce_dial(e, "i1", "web", &lim, 0, t + 10, 0, msg, sizeof(msg));
    rt_enforce_dial(e, "i1", "web", &lim, 0, t + 20, 0, msg, sizeof(msg));
    assert_int_equal(log.n, 1);
    /* Another identity has its own bucket. */
    assert_int_equal(rt_enforce_dial(e, "i2", "web", &lim, 0, t, 0, msg, sizeof(msg)), 0);
    /* 20 s later one token (3 a minute) is back, and the held-back count is reported. */
    assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 0, t + 20000, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 0, t + 20001, 0, msg, sizeof(msg)),
                     WEFT_EDENIED);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.last_count, 3);
    assert_int_equal(rt_enforce_violations(e), 4);
    rt_enforce_free(e);
}

static void test_log_only_and_maxc_time(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"maxc\":2,\"act\":[\"log\"]}}");
    rt_limits win = lim_of("{\"lim\":{\"win\":[480,1080,0],\"act\":[\"block\"]}}");
    char msg[256];
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    /* log only: admitted, but reported. */
    assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 2, 1, 0, msg, sizeof(msg)), 0);
    assert_string_equal(log.last_kind, "max_circuits");
    assert_int_equal(rt_enforce_dial(e, "i3", "web", &win, 0, 1, 9 * 3600, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_dial(e, "i3", "web", &win, 0, 1, 20 * 3600, msg, sizeof(msg)),
                     WEFT_EDENIED);
    assert_string_equal(log.last_kind, "time");
    rt_enforce_refused(e, "i4", "other", WEFT_EDENIED, 5);
    assert_string_equal(log.last_kind, "destination");
    assert_false(log.has_actions); /* the controller decides them */
    rt_enforce_refused(e, "i5", "other", WEFT_ETOKENEXPIRED, 5);
    assert_int_equal(log.n, 3); /* an expired token is not a violation */
    rt_enforce_free(e);
}

static void test_bytes(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"bw\":1000,\"quota\":5000,\"act\":[\"block\"]}}");
    char msg[64];
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(rt_enforce_dial(e, "i1", "web", &lim, 0, 100, 0, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_bytes(e, "i1", "web", 1000, 100, 0), 0); /* the burst */
    int wait = rt_enforce_bytes(e, "i1", "web", 500, 100, 0);
    assert_in_range(wait, 400, 600); /* 500 bytes of debt at 1000 B/s */
    assert_int_equal(rt_enforce_bytes(e, "i1", "web", 900, 5000, 0), 0); /* refilled */
    assert_int_equal(rt_enforce_bytes(e, "i1", "web", 3000, 9000, 0), WEFT_EDENIED); /* 5400 */
    assert_string_equal(log.last_kind, "quota");
    /* A new UTC day resets the quota. */
    assert_int_equal(rt_enforce_bytes(e, "i1", "web", 100, 20000, 86400), 0);
    /* No token admitted yet: no limits known. */
    assert_int_equal(rt_enforce_bytes(e, "i9", "web", 1 << 20, 1, 0), 0);
    rt_enforce_free(e);
}

static void test_binding(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_hwbind exact = {"exact", "1", "A"}, iccid = {"iccid", "1", "A"}, fresh = {"exact", "", ""};
    rt_hwbind none = {"", "", ""};
    char msg[256];
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    assert_int_equal(rt_enforce_binding(e, "i1", &exact, "1", "A", 1, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_binding(e, "i1", &exact, "2", "A", 1, msg, sizeof(msg)),
                     WEFT_EDENIED);
    assert_string_equal(log.last_kind, "binding");
    assert_int_equal(rt_enforce_binding(e, "i2", &iccid, "2", "A", 1, msg, sizeof(msg)), 0);
    assert_int_equal(rt_enforce_binding(e, "i2", &iccid, "1", "B", 5000, msg, sizeof(msg)),
                     WEFT_EDENIED);
    int before = log.n;
    assert_int_equal(rt_enforce_binding(e, "i1", &fresh, "7", "Z", 2, msg, sizeof(msg)), 0);
    assert_int_equal(log.n, before + 1); /* first use reported even right after a mismatch */
    assert_int_equal(rt_enforce_binding(e, "i3", &none, "7", "Z", 2, msg, sizeof(msg)), 0);
    rt_enforce_free(e);
}

static void test_anomaly(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"act\":[\"log\",\"remove\"]}}");
    char msg[256];
    uint64_t t = 1000;
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    /* Learning: three windows of regular telemetry (2 dials of one service). */
    for (int w = 0; w < RT_ANOM_LEARN + 1; w++, t += RT_ANOM_WINDOW_MS)
        for (int k = 0; k < 2; k++) {
            assert_int_equal(rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k, 0,
                                             msg, sizeof(msg)), 0);
            assert_int_equal(rt_enforce_dial(e, "quiet", "telemetry", &lim, 0, t + (uint64_t)k,
                                             0, msg, sizeof(msg)), 0);
        }
    assert_int_equal(log.n, 0); /* regular traffic raises nothing */
    /* It turns: many services (refused) in one window. */
    rt_enforce_refused(e, "dev", "ssh", WEFT_EDENIED, t);
    rt_enforce_refused(e, "dev", "telnet", WEFT_EDENIED, t + 1100);
    rt_enforce_refused(e, "dev", "http", WEFT_EDENIED, t + 2200);
    rt_enforce_refused(e, "dev", "db", WEFT_EDENIED, t + 3300);
    rt_enforce_refused(e, "dev", "ftp", WEFT_EDENIED, t + 4400); /* 5 services: over 4x 1 */
    assert_string_equal(log.last_kind, "anomaly");
    assert_true(log.has_actions);
    int n = log.n;
    /* A flood of dials of its own service is one anomaly per window, too. */
    t += RT_ANOM_WINDOW_MS;
    for (int k = 0; k < 30; k++)
        rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k * 50, 0, msg, sizeof(msg));
    assert_int_equal(log.n, n + 1);
    assert_string_equal(log.last_kind, "anomaly");
    /* The quiet neighbour keeps its pace and is never flagged. */
    for (int k = 0; k < 2; k++)
        rt_enforce_dial(e, "quiet", "telemetry", &lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg));
    assert_int_equal(log.n, n + 1);
    rt_enforce_free(e);
}

/* Bytes per circuit: learnt over ended circuits; a live circuit past the
 * factor is an anomaly at once, with the policy's actions. */
static void test_anomaly_bytes(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"act\":[\"log\",\"remove\"]}}");
    char msg[256];
    uint64_t t = 1000;
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    for (int c = 0; c < 10; c++, t += 2000) {
        assert_int_equal(rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t, 0, msg, sizeof(msg)),
                         0);
        for (uint64_t b = 2000; b <= 20000; b += 2000) /* 20 kB per circuit, seen live */
            rt_enforce_circuit_bytes(e, "dev", "telemetry", b, 0, t + 1);
        rt_enforce_circuit_bytes(e, "dev", "telemetry", 20000 + (uint64_t)c * 10, 1, t + 2);
    }
    assert_int_equal(log.n, 0);
    /* Four times the usual is within the default factor (10). */
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 80000, 0, t);
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 80000, 1, t);
    assert_int_equal(log.n, 0);
    /* 50 times the usual bytes on one circuit. */
    t += 2000;
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 500000, 0, t);
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 1000000, 0, t + 10); /* once per window */
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    assert_string_equal(log.last_actions, "log,remove");
    /* It did not teach the baseline: the next such circuit is flagged too. */
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 1000000, 1, t + 20);
    t += 2 * RT_ANOM_WINDOW_MS;
    rt_enforce_circuit_bytes(e, "dev", "telemetry", 1000000, 0, t);
    assert_int_equal(log.n, 2);
    rt_enforce_free(e);
}

/* Activity by hour: after the learning time, an hour never seen is a log-level anomaly. */
static void test_anomaly_hours(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_limits lim = lim_of("{\"lim\":{\"act\":[\"log\",\"alert\",\"remove\"]}}");
    char msg[256];
    uint64_t t = 1000;
    long long day0 = 1767225600, s; /* 2026-01-01 00:00 UTC */
    (void)state;

    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    /* Seven days of office hours (09:00-17:59 UTC), one dial an hour. */
    for (int d = 0; d < 7; d++)
        for (int h = 9; h < 18; h++, t += 60000) {
            s = day0 + d * 86400 + h * 3600;
            assert_int_equal(rt_enforce_dial(e, "dev", "web", &lim, 0, t, s, msg, sizeof(msg)), 0);
        }
    assert_int_equal(log.n, 0); /* learning: no hour is strange yet */
    s = day0 + 7 * 86400 + 10 * 3600; /* the eighth day, a usual hour */
    rt_enforce_dial(e, "dev", "web", &lim, 0, t += 60000, s, msg, sizeof(msg));
    assert_int_equal(log.n, 0);
    s = day0 + 8 * 86400 + 3 * 3600; /* 03:00, after the week: never active then */
    assert_int_equal(rt_enforce_dial(e, "dev", "web", &lim, 0, t += 60000, s, msg, sizeof(msg)),
                     0);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    assert_string_equal(log.last_actions, "log"); /* log level only, whatever the policy */
    rt_enforce_dial(e, "dev", "web", &lim, 0, t += 60000, s + 60, msg, sizeof(msg));
    assert_int_equal(log.n, 1); /* once per hour of the day */
    rt_enforce_free(e);
}

/* The settings come from router.json's anomaly_* keys. */
static void test_anomaly_config(void **state)
{
    sink_log log = {0};
    rt_enforce *e = NULL;
    rt_enforce_cfg cfg;
    rt_limits lim = lim_of("{\"lim\":{\"act\":[\"log\"]}}");
    const char *bad = NULL;
    char msg[256];
    uint64_t t = 1000;
    json_t *conf;
    (void)state;

    assert_int_equal(rt_enforce_cfg_from_json(NULL, &cfg, NULL), 0);
    assert_int_equal(cfg.window_ms, RT_ANOM_WINDOW_MS);
    assert_int_equal(cfg.learn, RT_ANOM_LEARN);
    conf = json_loads("{\"anomaly_window_s\":2,\"anomaly_learn\":5,\"anomaly_factor\":2,"
                      "\"anomaly_bytes_factor\":3,\"anomaly_min_bytes\":0,"
                      "\"anomaly_hours_learn_s\":3600}",
                      0, NULL);
    assert_int_equal(rt_enforce_cfg_from_json(conf, &cfg, &bad), 0);
    json_decref(conf);
    assert_int_equal(cfg.window_ms, 2000);
    assert_int_equal(cfg.learn, 5);
    assert_int_equal(cfg.hours_learn_s, 3600);
    conf = json_loads("{\"anomaly_factor\":\"high\"}", 0, NULL);
    assert_int_equal(rt_enforce_cfg_from_json(conf, &cfg, &bad), WEFT_EINVAL);
    assert_string_equal(bad, "anomaly_factor");
    json_decref(conf);
    conf = json_loads("{\"anomaly_window_s\":0}", 0, NULL);
    assert_int_equal(rt_enforce_cfg_from_json(conf, &cfg, &bad), WEFT_EINVAL);
    json_decref(conf);

    /* Learn 5 windows of 2 s, factor 2: 12 dials in a window (over 2 x 5 and the
     * floor of 10) is an anomaly that the defaults (4 x 5 = 20) would let pass. */
    conf = json_loads("{\"anomaly_window_s\":2,\"anomaly_learn\":5,\"anomaly_factor\":2}", 0,
                      NULL);
    assert_int_equal(rt_enforce_cfg_from_json(conf, &cfg, NULL), 0);
    json_decref(conf);
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    rt_enforce_configure(e, &cfg);
    for (int w = 0; w < 5; w++, t += 2000)
        for (int k = 0; k < 5; k++)
            rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg));
    assert_int_equal(log.n, 0);
    for (int k = 0; k < 12; k++)
        rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg));
    assert_int_equal(log.n, 1);
    assert_string_equal(log.last_kind, "anomaly");
    rt_enforce_free(e);
    /* The same traffic with the defaults (learnt 5 windows of 10 s) passes. */
    log.n = 0;
    t = 1000;
    assert_int_equal(rt_enforce_new(sink, &log, &e), 0);
    for (int w = 0; w < 5; w++, t += RT_ANOM_WINDOW_MS)
        for (int k = 0; k < 5; k++)
            rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg));
    for (int k = 0; k < 12; k++)
        rt_enforce_dial(e, "dev", "telemetry", &lim, 0, t + (uint64_t)k, 0, msg, sizeof(msg));
    assert_int_equal(log.n, 0);
    rt_enforce_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims),          cmocka_unit_test(test_window),
        cmocka_unit_test(test_rate_and_reports), cmocka_unit_test(test_log_only_and_maxc_time),
        cmocka_unit_test(test_bytes),           cmocka_unit_test(test_binding),
        cmocka_unit_test(test_anomaly),         cmocka_unit_test(test_anomaly_bytes),
        cmocka_unit_test(test_anomaly_hours),   cmocka_unit_test(test_anomaly_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
