/* Limits across routers on the controller side (controller/usage.c): every
 * malformed CTL_USAGE, the sums per identity through the other routers, the
 * CTL_USAGE_NET bodies a flush sends (and those it holds back because the
 * identity's limits do not care), a router restarting or going offline, a
 * new day, and the sweep of idle figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "controller/usage.h"
#include "weft/errors.h"

#define DAY 20454 /* 2026-01-01 */

static int parse_text(const char *text, ctl_usage_report *r)
{
    char err[256] = "";
    int rc = ctl_usage_parse((const uint8_t *)text, strlen(text), r, err, sizeof(err));

    if (rc < 0)
        assert_true(err[0] != '\0'); /* a sentence says what is wrong */
    return rc;
}

static void test_parse_good(void **state)
{
    ctl_usage_report r;

    (void)state;
    assert_int_equal(parse_text("{\"boot\":\"ab12\",\"day\":20454,\"future\":1,\"ids\":["
                                "{\"id\":\"dev1\",\"b\":1000,\"c\":2,\"r\":50,\"q\":5000,"
                                "\"m\":3,\"w\":100,\"x\":\"new\"},{\"id\":\"dev2\"}]}",
                                &r),
                     0);
    assert_string_equal(r.boot, "ab12");
    assert_int_equal(r.day, DAY);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.e[0].id, "dev1");
    assert_int_equal(r.e[0].bytes, 1000);
    assert_int_equal(r.e[0].circuits, 2);
    assert_int_equal(r.e[0].rate, 50);
    assert_int_equal(r.e[0].quota, 5000);
    assert_int_equal(r.e[0].maxc, 3);
    assert_int_equal(r.e[0].bw, 100);
    assert_int_equal(r.e[1].bytes + r.e[1].circuits + r.e[1].rate, 0); /* absent keys are 0 */
    ctl_usage_report_free(&r);
    assert_int_equal(parse_text("{\"boot\":\"a\",\"day\":0,\"ids\":[]}", &r), 0);
    assert_int_equal(r.n, 0);
    ctl_usage_report_free(&r);
}

static void test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "not json",
        "[]",
        "7",
        "null",
        "{\"boot\":\"a\",\"boot\":\"b\",\"day\":1,\"ids\":[]}", /* a key twice */
        "{\"day\":1,\"ids\":[]}",
        "{\"boot\":\"\",\"day\":1,\"ids\":[]}",
        "{\"boot\":7,\"day\":1,\"ids\":[]}",
        "{\"boot\":\"a-b\",\"day\":1,\"ids\":[]}",
        "{\"boot\":\"a b\",\"day\":1,\"ids\":[]}",
        "{\"boot\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"day\":1,"
        "\"ids\":[]}", /* 65 characters */
        "{\"boot\":\"a\",\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":-1,\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":1.5,\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":\"1\",\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":2147483649,\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":null,\"ids\":[]}",
        "{\"boot\":\"a\",\"day\":1}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":{}}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":\"dev1\"}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[7]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[[]]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"\"}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":7}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":null}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaa\"}]}", /* 65 characters */
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"b\":-1}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"b\":1.5}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"b\":9007199254740993}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"c\":1000000001}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"c\":true}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"r\":\"5\"}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"q\":-5}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"m\":[]}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"w\":{}}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\",\"w\":null}]}",
        "{\"boot\":\"a\",\"day\":1,\"ids\":[{\"id\":\"d\"},{\"id\":\"e\",\"b\":-2}]}",
    };
    ctl_usage_report r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_text(bad[i], &r);
        if (rc != WEFT_EJSON && rc != WEFT_EPROTO)
            fail_msg("accepted or wrong error %d: %s", rc, bad[i]);
        assert_null(r.e); /* nothing kept */
        assert_int_equal(r.n, 0);
    }
}

static void test_parse_too_many(void **state)
{
    json_t *ids = json_array(), *root;
    ctl_usage_report r;
    char *text;
    char id[16];

    (void)state;
    for (int i = 0; i <= CTL_USAGE_IDS_MAX; i++) {
        snprintf(id, sizeof(id), "d%d", i);
        json_array_append_new(ids, json_pack("{s:s}", "id", id));
    }
    root = json_pack("{s:s, s:i, s:o}", "boot", "a", "day", 1, "ids", ids);
    text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(parse_text(text, &r), WEFT_EPROTO);
    free(text);
    json_array_remove(json_object_get(root, "ids"), 0); /* exactly the limit */
    text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(parse_text(text, &r), 0);
    assert_int_equal(r.n, CTL_USAGE_IDS_MAX);
    ctl_usage_report_free(&r);
    free(text);
    json_decref(root);
}

/* ---- the table ---- */

/* What a flush sent: {router -> [entries]}, every body checked to be one. */
static int collect_out(void *arg, const char *router_id, const char *text)
{
    json_t *got = arg, *body = json_loads(text, JSON_REJECT_DUPLICATES, NULL), *v;
    size_t i;

    assert_non_null(body);
    assert_true(json_array_size(json_object_get(body, "ids")) <= CTL_USAGE_NET_IDS);
    if (json_object_get(got, router_id) == NULL)
        json_object_set_new(got, router_id, json_array());
    json_array_foreach(json_object_get(body, "ids"), i, v)
        json_array_append(json_object_get(got, router_id), v);
    json_decref(body);
    return 0;
}

static json_t *flush(ctl_usage *u)
{
    json_t *got = json_object();

    ctl_usage_flush(u, collect_out, got);
    return got;
}

/* The entry for identity in what router was sent, or NULL. */
static json_t *entry(json_t *got, const char *router, const char *identity)
{
    json_t *v;
    size_t i;

    json_array_foreach(json_object_get(got, router), i,
                       v) if (strcmp(json_string_value(json_object_get(v, "id")), identity) ==
                              0) return v;
    return NULL;
}

static long long field(json_t *e, const char *k)
{
    return (long long)json_integer_value(json_object_get(e, k));
}

static void report(ctl_usage *u, const char *router, const char *boot, int64_t day,
                   const char *entries)
{
    char text[2048];

    snprintf(text, sizeof(text), "{\"boot\":\"%s\",\"day\":%lld,\"ids\":[%s]}", boot,
             (long long)day, entries);
    assert_int_equal(ctl_usage_ingest(u, router, (const uint8_t *)text, strlen(text)), 0);
}

static void test_sums(void **state)
{
    ctl_usage *u = NULL;
    ctl_usage_net n;
    json_t *got;

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r1", &n), WEFT_ENOTFOUND);
    report(u, "r1", "b1", DAY, "{\"id\":\"dev1\",\"b\":600,\"c\":1,\"r\":200,\"q\":1000}");
    /* One router alone: nobody else to tell. */
    got = flush(u);
    assert_int_equal(json_object_size(got), 0);
    json_decref(got);
    report(u, "r2", "b2", DAY, "{\"id\":\"dev1\",\"b\":500,\"c\":2,\"r\":100,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r1", &n), 0);
    assert_int_equal(n.day, DAY);
    assert_int_equal(n.bytes, 500);
    assert_int_equal(n.circuits, 2);
    assert_int_equal(n.rate, 100);
    assert_int_equal(n.routers, 1);
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", NULL, &n), 0);
    assert_int_equal(n.bytes, 1100); /* network-wide: past the quota of 1000 */
    assert_int_equal(n.circuits, 3);
    assert_int_equal(n.routers, 2);
    /* Each router is told what the identity uses through the other. */
    got = flush(u);
    assert_int_equal(field(entry(got, "r1", "dev1"), "b"), 500);
    assert_int_equal(field(entry(got, "r2", "dev1"), "b"), 600);
    assert_int_equal(field(entry(got, "r2", "dev1"), "day"), DAY);
    assert_int_equal(field(entry(got, "r2", "dev1"), "c"), 1);
    assert_int_equal(field(entry(got, "r2", "dev1"), "r"), 200);
    assert_int_equal(field(entry(got, "r2", "dev1"), "n"), 1);
    json_decref(got);
    /* Nothing changed: nothing sent. */
    got = flush(u);
    assert_int_equal(json_object_size(got), 0);
    json_decref(got);
    /* The same report again changes nothing either. */
    report(u, "r2", "b2", DAY, "{\"id\":\"dev1\",\"b\":500,\"c\":2,\"r\":100,\"q\":1000}");
    got = flush(u);
    assert_int_equal(json_object_size(got), 0);
    json_decref(got);
    assert_int_equal(ctl_usage_tracked(u), 1);
    ctl_usage_free(u);
}

/* Only what the limits care about is pushed. */
static void test_relevance(void **state)
{
    ctl_usage *u = NULL;
    json_t *got;

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    /* No limit the controller sums (only a rate or a window): nothing to tell. */
    report(u, "r1", "b1", DAY, "{\"id\":\"calm\",\"b\":600,\"c\":1,\"r\":200}");
    report(u, "r2", "b2", DAY, "{\"id\":\"calm\",\"b\":600,\"c\":1,\"r\":200}");
    /* max_circuits only: bytes and rates moving are not told, circuits are. */
    report(u, "r1", "b1", DAY, "{\"id\":\"mc\",\"c\":1,\"m\":2}");
    report(u, "r2", "b2", DAY, "{\"id\":\"mc\",\"c\":1,\"m\":2}");
    got = flush(u);
    assert_null(entry(got, "r1", "calm"));
    assert_int_equal(field(entry(got, "r1", "mc"), "c"), 1);
    json_decref(got);
    report(u, "r2", "b2", DAY, "{\"id\":\"mc\",\"b\":90000,\"c\":1,\"r\":5000,\"m\":2}");
    got = flush(u);
    assert_null(entry(got, "r1", "mc"));
    json_decref(got);
    report(u, "r2", "b2", DAY, "{\"id\":\"mc\",\"b\":90000,\"m\":2}");
    got = flush(u);
    assert_non_null(entry(got, "r1", "mc"));
    assert_int_equal(field(entry(got, "r1", "mc"), "c"), 0); /* closed: told, absent is 0 */
    assert_null(json_object_get(entry(got, "r1", "mc"), "c"));
    json_decref(got);
    /* Bandwidth: the routers carrying it, and its rate when it moves by more than 1/8. */
    report(u, "r1", "b1", DAY, "{\"id\":\"bw\",\"r\":800,\"w\":1000}");
    report(u, "r2", "b2", DAY, "{\"id\":\"bw\",\"w\":1000}");
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "bw"), "r"), 800);
    assert_int_equal(field(entry(got, "r2", "bw"), "n"), 1);
    assert_null(entry(got, "r1", "bw")); /* r2 carries nothing: r1 knows zeros already */
    json_decref(got);
    report(u, "r1", "b1", DAY, "{\"id\":\"bw\",\"r\":850,\"w\":1000}");
    got = flush(u);
    assert_null(entry(got, "r2", "bw")); /* 50 in 800 is under an eighth */
    json_decref(got);
    report(u, "r1", "b1", DAY, "{\"id\":\"bw\",\"r\":950,\"w\":1000}");
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "bw"), "r"), 950);
    json_decref(got);
    report(u, "r1", "b1", DAY, "{\"id\":\"bw\",\"w\":1000}"); /* idle */
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "bw"), "n"), 0);
    json_decref(got);
    /* The strictest limit of any router counts: a quota at r2 alone is enough. */
    report(u, "r1", "b1", DAY, "{\"id\":\"q\",\"b\":10}");
    report(u, "r2", "b2", DAY, "{\"id\":\"q\",\"b\":20,\"q\":100}");
    got = flush(u);
    assert_int_equal(field(entry(got, "r1", "q"), "b"), 20);
    assert_int_equal(field(entry(got, "r2", "q"), "b"), 10);
    json_decref(got);
    ctl_usage_free(u);
}

static void test_boot_and_day(void **state)
{
    ctl_usage *u = NULL;
    ctl_usage_net n;

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    report(u, "r1", "b1", DAY, "{\"id\":\"dev1\",\"b\":600,\"q\":1000}");
    /* r1 restarted: its new process counts from 0, the earlier bytes stay. */
    report(u, "r1", "b9", DAY, "{\"id\":\"dev1\",\"b\":50,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r2", &n), 0);
    assert_int_equal(n.bytes, 650);
    report(u, "r1", "b9", DAY, "{\"id\":\"dev1\",\"b\":70,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r2", &n), 0);
    assert_int_equal(n.bytes, 670);
    /* A new UTC day starts again, and a router still on the old day does not count. */
    report(u, "r2", "c1", DAY + 1, "{\"id\":\"dev1\",\"b\":5,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r2", &n), 0);
    assert_int_equal(n.day, DAY + 1);
    assert_int_equal(n.bytes, 0);
    report(u, "r1", "b9", DAY + 1, "{\"id\":\"dev1\",\"b\":3,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", NULL, &n), 0);
    assert_int_equal(n.bytes, 8);
    /* A restart across midnight carries nothing of yesterday. */
    report(u, "r1", "b10", DAY + 2, "{\"id\":\"dev1\",\"b\":4,\"q\":1000}");
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", NULL, &n), 0);
    assert_int_equal(n.bytes, 4);
    ctl_usage_free(u);
}

static void test_router_gone(void **state)
{
    ctl_usage *u = NULL;
    ctl_usage_net n;
    json_t *got;

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    report(u, "r1", "b1", DAY, "{\"id\":\"dev1\",\"b\":600,\"c\":2,\"r\":10,\"q\":1000,\"m\":3}");
    report(u, "r2", "b2", DAY, "{\"id\":\"dev1\",\"b\":100,\"c\":1,\"q\":1000,\"m\":3}");
    json_decref(flush(u));
    /* r1 goes offline: its circuits no longer count, its bytes of the day do. */
    ctl_usage_router_gone(u, "r1");
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "dev1"), "c"), 0);
    assert_int_equal(field(entry(got, "r2", "dev1"), "b"), 600);
    assert_null(entry(got, "r1", "dev1")); /* offline: told when its channel opens */
    json_decref(got);
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", "r2", &n), 0);
    assert_int_equal(n.circuits, 0);
    assert_int_equal(n.rate, 0);
    /* r2's channel opens again: it knows nothing, and is told everything. */
    ctl_usage_router_open(u, "r2");
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "dev1"), "b"), 600);
    json_decref(got);
    ctl_usage_free(u);
}

static void test_sites_max(void **state)
{
    ctl_usage *u = NULL;
    ctl_usage_net n;
    char router[16];

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    for (int i = 0; i <= CTL_USAGE_SITES_MAX; i++) {
        snprintf(router, sizeof(router), "r%d", i);
        report(u, router, "b", DAY, "{\"id\":\"dev1\",\"b\":1,\"q\":1000}");
    }
    assert_int_equal(ctl_usage_elsewhere(u, "dev1", NULL, &n), 0);
    assert_int_equal(n.bytes, CTL_USAGE_SITES_MAX); /* one router too many is not followed */
    json_decref(flush(u));
    ctl_usage_free(u);
}

static void test_sweep(void **state)
{
    ctl_usage *u = NULL;
    ctl_usage_net n;
    json_t *got;

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    report(u, "r1", "b1", DAY, "{\"id\":\"old\",\"b\":600,\"q\":1000}");
    report(u, "r1", "b1", DAY, "{\"id\":\"held\",\"c\":1,\"m\":3}");
    report(u, "r2", "b2", DAY, "{\"id\":\"held\",\"m\":3}");
    got = flush(u);
    assert_int_equal(field(entry(got, "r2", "held"), "c"), 1);
    json_decref(got);
    ctl_usage_sweep(u, 1000, DAY); /* today: nothing is idle */
    assert_int_equal(ctl_usage_tracked(u), 2);
    ctl_usage_sweep(u, 2000, DAY + 1); /* too soon after the last sweep */
    assert_int_equal(ctl_usage_tracked(u), 2);
    ctl_usage_sweep(u, 1000 + CTL_USAGE_SWEEP_MS, DAY + 1);
    /* "old" is gone; "held" keeps r1 (a circuit open) and r2 (told of it). */
    assert_int_equal(ctl_usage_tracked(u), 1);
    assert_int_equal(ctl_usage_elsewhere(u, "old", NULL, &n), WEFT_ENOTFOUND);
    assert_int_equal(ctl_usage_elsewhere(u, "held", "r2", &n), 0);
    assert_int_equal(n.circuits, 1);
    /* The circuit closes; r2 is told, and then both are idle. */
    report(u, "r1", "b1", DAY, "{\"id\":\"held\",\"m\":3}");
    got = flush(u);
    assert_non_null(entry(got, "r2", "held"));
    json_decref(got);
    ctl_usage_sweep(u, 1000 + 2 * CTL_USAGE_SWEEP_MS, DAY + 1);
    assert_int_equal(ctl_usage_tracked(u), 0);
    ctl_usage_free(u);
}

static void test_many_ids_split(void **state)
{
    ctl_usage *u = NULL;
    json_t *got;
    char text[64];

    (void)state;
    assert_int_equal(ctl_usage_new(&u), 0);
    for (int i = 0; i < CTL_USAGE_NET_IDS + 10; i++) {
        snprintf(text, sizeof(text), "{\"id\":\"d%d\",\"b\":5,\"q\":100}", i);
        report(u, "r1", "b1", DAY, text);
        report(u, "r2", "b2", DAY, text);
    }
    got = flush(u); /* several bodies, each within the limit (collect_out checks) */
    assert_int_equal(json_array_size(json_object_get(got, "r1")), CTL_USAGE_NET_IDS + 10);
    json_decref(got);
    ctl_usage_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),     cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_too_many), cmocka_unit_test(test_sums),
        cmocka_unit_test(test_relevance),      cmocka_unit_test(test_boot_and_day),
        cmocka_unit_test(test_router_gone),    cmocka_unit_test(test_sites_max),
        cmocka_unit_test(test_sweep),          cmocka_unit_test(test_many_ids_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
