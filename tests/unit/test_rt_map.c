/* The router's network map: full maps, deltas applied all or nothing, and
 * version gaps refused so that the router asks for a full map again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "router/map.h"
#include "weft/errors.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static const char full_map[] =
    "{\"version\": 7, \"signing_key\": \"" KEY_B64 "\","
    " \"routers\": [{\"id\": \"r1\", \"name\": \"one\", \"edge_listen\": \"127.0.0.1:3022\","
    " \"link_listen\": \"127.0.0.1:4022\", \"online\": true}],"
    " \"services\": [{\"id\": \"s1\", \"name\": \"web\", \"intercept\": \"tcp:127.0.0.1:8080\","
    " \"host\": \"tcp:127.0.0.1:80\", \"hosted_by\": \"\"},"
    " {\"id\": \"s2\", \"name\": \"db\", \"host\": \"tcp:127.0.0.1:5432\", \"hosted_by\": \"r1\"}],"
    " \"terminators\": [{\"id\": \"t1\", \"service\": \"s1\", \"router\": \"r1\", \"identity\": \"i1\"}],"
    " \"revoked\": [\"bad1\"]}";

static void load(rt_map *m)
{
    char err[256] = "";

    rt_map_init(m);
    assert_int_equal(rt_map_apply_full(m, full_map, strlen(full_map), err, sizeof(err)), 0);
}

static int delta(rt_map *m, const char *json)
{
    char err[256] = "";
    return rt_map_apply_delta(m, json, strlen(json), err, sizeof(err));
}

static void test_full(void **state)
{
    rt_map m;

    load(&m);
    assert_int_equal(m.version, 7);
    assert_true(m.have_key);
    assert_int_equal(m.signing_key[31], 31);
    assert_string_equal(rt_map_router_get(&m, "r1")->edge_listen, "127.0.0.1:3022");
    assert_true(rt_map_router_get(&m, "r1")->online);
    assert_string_equal(rt_map_service_by_name(&m, "db")->hosted_by, "r1");
    assert_string_equal(rt_map_service_get(&m, "s1")->name, "web");
    assert_string_equal(rt_map_term_of(&m, "s1", 0)->identity, "i1");
    assert_null(rt_map_term_of(&m, "s1", 1));
    assert_true(rt_map_is_revoked(&m, "bad1"));
    assert_false(rt_map_is_revoked(&m, "i1"));
    assert_null(rt_map_service_by_name(&m, "nope"));
    rt_map_free(&m);
}

static void test_full_replaces(void **state)
{
    rt_map m;
    char err[256];
    const char *small = "{\"version\": 9, \"services\": [{\"id\": \"s9\", \"name\": \"x\"}]}";

    load(&m);
    assert_int_equal(rt_map_apply_full(&m, small, strlen(small), err, sizeof(err)), 0);
    assert_int_equal(m.version, 9);
    assert_null(rt_map_service_get(&m, "s1"));
    assert_non_null(rt_map_service_get(&m, "s9"));
    assert_false(rt_map_is_revoked(&m, "bad1"));
    rt_map_free(&m);
}

static void test_bad_full_keeps_old(void **state)
{
    static const char *bad[] = {
        "not json", "[]", "{\"routers\": []}", "{\"version\": -1}",
        "{\"version\": 3, \"services\": [{\"id\": \"s\"}]}",
        "{\"version\": 3, \"services\": {}}",
        "{\"version\": 3, \"signing_key\": \"short\"}",
        "{\"version\": 3, \"revoked\": [5]}",
        "{\"version\": 3, \"services\": [{\"id\": \"x\", \"name\": \"a\", \"host\": 7}]}",
    };
    rt_map m;
    char err[256];

    load(&m);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_true(rt_map_apply_full(&m, bad[i], strlen(bad[i]), err, sizeof(err)) < 0);
        assert_true(err[0] != '\0');
        assert_int_equal(m.version, 7);
        assert_non_null(rt_map_service_get(&m, "s1"));
    }
    rt_map_free(&m);
}

static void test_delta(void **state)
{
    rt_map m;

    load(&m);
    assert_int_equal(delta(&m, "{\"version\": 8, \"base\": 7, \"ops\": ["
                               "{\"op\": \"put\", \"kind\": \"revoked\", \"obj\": {\"id\": \"i1\"}},"
                               "{\"op\": \"del\", \"kind\": \"revoked\", \"obj\": {\"id\": \"bad1\"}},"
                               "{\"op\": \"put\", \"kind\": \"service\", \"obj\": {\"id\": \"s1\","
                               " \"name\": \"web2\"}},"
                               "{\"op\": \"del\", \"kind\": \"terminator\", \"obj\": {\"id\": \"t1\"}},"
                               "{\"op\": \"put\", \"kind\": \"router\", \"obj\": {\"id\": \"r2\"}}]}"),
                     0);
    assert_int_equal(m.version, 8);
    assert_true(rt_map_is_revoked(&m, "i1"));
    assert_false(rt_map_is_revoked(&m, "bad1"));
    assert_string_equal(rt_map_service_get(&m, "s1")->name, "web2");
    assert_null(rt_map_term_get(&m, "t1"));
    assert_non_null(rt_map_router_get(&m, "r2"));
    rt_map_free(&m);
}

static void test_delta_gap(void **state)
{
    rt_map m;
    rt_map empty;

    load(&m);
    /* A delta from the future, one from the past, and one that goes nowhere. */
    assert_int_equal(delta(&m, "{\"version\": 10, \"base\": 9, \"ops\": []}"), WEFT_ECONFLICT);
    assert_int_equal(delta(&m, "{\"version\": 7, \"base\": 6, \"ops\": []}"), WEFT_ECONFLICT);
    assert_int_equal(delta(&m, "{\"version\": 7, \"base\": 7, \"ops\": []}"), WEFT_ECONFLICT);
    assert_int_equal(m.version, 7);
    /* Without a full map no delta applies. */
    rt_map_init(&empty);
    assert_int_equal(delta(&empty, "{\"version\": 1, \"base\": 0, \"ops\": []}"), WEFT_ECONFLICT);
    rt_map_free(&empty);
    rt_map_free(&m);
}

static void test_delta_all_or_nothing(void **state)
{
    rt_map m;

    load(&m);
    assert_true(delta(&m, "{\"version\": 8, \"base\": 7, \"ops\": ["
                          "{\"op\": \"put\", \"kind\": \"revoked\", \"obj\": {\"id\": \"i1\"}},"
                          "{\"op\": \"put\", \"kind\": \"bogus\", \"obj\": {\"id\": \"x\"}}]}") < 0);
    assert_true(delta(&m, "{\"version\": 8, \"base\": 7, \"ops\": ["
                          "{\"op\": \"put\", \"kind\": \"revoked\", \"obj\": {\"id\": \"i1\"}},"
                          "{\"op\": \"zap\", \"kind\": \"revoked\", \"obj\": {\"id\": \"x\"}}]}") < 0);
    assert_true(delta(&m, "{\"version\": 8, \"base\": 7, \"ops\": ["
                          "{\"op\": \"put\", \"kind\": \"service\", \"obj\": {\"id\": \"q\"}}]}") < 0);
    assert_true(delta(&m, "{\"version\": 8, \"base\": 7}") < 0);
    assert_false(rt_map_is_revoked(&m, "i1"));
    assert_int_equal(m.version, 7);
    rt_map_free(&m);
}

/* Links are optional: "links" in full maps, "link" ops in deltas, keyed by the pair. */
static void test_links(void **state)
{
    const char *full = "{\"version\": 1, \"links\": [{\"a\": \"r2\", \"b\": \"r1\", \"rtt_us\": 900,"
                       " \"up\": true}]}";
    const char *delta = "{\"version\": 2, \"base\": 1, \"ops\": ["
                        "{\"op\": \"put\", \"kind\": \"link\", \"obj\": {\"a\": \"r1\", \"b\": \"r2\","
                        " \"rtt_us\": 50, \"up\": false}},"
                        "{\"op\": \"put\", \"kind\": \"link\", \"obj\": {\"a\": \"r3\", \"b\": \"r1\"}}]}";
    const char *del = "{\"version\": 3, \"base\": 2, \"ops\": [{\"op\": \"del\", \"kind\": \"link\","
                      " \"obj\": {\"a\": \"r2\", \"b\": \"r1\"}}]}";
    const char *self = "{\"version\": 1, \"links\": [{\"a\": \"r1\", \"b\": \"r1\"}]}";
    const rt_map_link *l;
    char err[256];
    rt_map m;

    rt_map_init(&m);
    assert_int_equal(rt_map_apply_full(&m, full, strlen(full), err, sizeof(err)), 0);
    assert_int_equal(rt_map_count(&m.links), 1);
    l = rt_map_at(&m.links, 0);
    assert_string_equal(l->a, "r1"); /* ordered */
    assert_string_equal(l->b, "r2");
    assert_int_equal(l->rtt_us, 900);
    assert_true(l->up);
    assert_int_equal(rt_map_apply_delta(&m, delta, strlen(delta), err, sizeof(err)), 0);
    assert_int_equal(rt_map_count(&m.links), 2); /* r1|r2 replaced, r1|r3 added */
    l = rt_map_at(&m.links, 0);
    assert_int_equal(l->rtt_us, 50);
    assert_false(l->up);
    assert_int_equal(rt_map_apply_delta(&m, del, strlen(del), err, sizeof(err)), 0);
    assert_int_equal(rt_map_count(&m.links), 1);
    assert_string_equal(((const rt_map_link *)rt_map_at(&m.links, 0))->b, "r3");
    assert_int_equal(rt_map_apply_full(&m, self, strlen(self), err, sizeof(err)), WEFT_EPROTO);
    assert_int_equal(m.version, 3); /* refused: the old map stays */
    rt_map_free(&m);
}

/* Withdrawn grants: tokens issued at or before "at" are refused until "until". */
static void test_grants(void **state)
{
    const char *full = "{\"version\": 1, \"grants_revoked\": [{\"identity\": \"i1\", \"service\":"
                       " \"s1\", \"act\": \"dial\", \"at\": 1000, \"until\": 1900}]}";
    const char *put = "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\", \"kind\":"
                      " \"grant_revoked\", \"obj\": {\"id\": \"i1|s1|dial\", \"identity\": \"i1\","
                      " \"service\": \"s1\", \"act\": \"dial\", \"at\": 2000, \"until\": 2900}}]}";
    const char *bad = "{\"version\": 3, \"base\": 2, \"ops\": [{\"op\": \"put\", \"kind\":"
                      " \"grant_revoked\", \"obj\": {\"identity\": \"i1\", \"service\": \"s1\","
                      " \"act\": \"host\", \"at\": 1, \"until\": 2}}]}";
    char err[256];
    rt_map m;

    rt_map_init(&m);
    assert_int_equal(rt_map_apply_full(&m, full, strlen(full), err, sizeof(err)), 0);
    assert_true(rt_map_grant_withdrawn(&m, "i1", "s1", "dial", 1000, 1500));
    assert_false(rt_map_grant_withdrawn(&m, "i1", "s1", "dial", 1001, 1500)); /* newer token */
    assert_false(rt_map_grant_withdrawn(&m, "i1", "s1", "bind", 900, 1500));
    assert_false(rt_map_grant_withdrawn(&m, "i2", "s1", "dial", 900, 1500));
    assert_false(rt_map_grant_withdrawn(&m, "i1", "s1", "dial", 900, 1900)); /* all expired */
    assert_int_equal(rt_map_apply_delta(&m, put, strlen(put), err, sizeof(err)), 0);
    assert_int_equal(rt_map_count(&m.grants), 1); /* replaced, not added */
    assert_true(rt_map_grant_withdrawn(&m, "i1", "s1", "dial", 1500, 2500));
    assert_int_equal(rt_map_apply_delta(&m, bad, strlen(bad), err, sizeof(err)), WEFT_EPROTO);
    rt_map_free(&m);
}

/* A grant's cause: kept for the edges told, cut when too long, ignored when
 * not a string; never a reason to refuse the entry. */
static void test_grant_cause(void **state)
{
    char map[1024], err[256], long_cause[300];
    const rt_map_grant *g;
    rt_map m;

    (void)state;
    memset(long_cause, 'c', sizeof(long_cause) - 1);
    long_cause[sizeof(long_cause) - 1] = '\0';
    snprintf(
        map, sizeof(map),
        "{\"version\": 1, \"grants_revoked\": ["
        "{\"identity\": \"i1\", \"service\": \"s1\", \"act\": \"bind\", \"at\": 1, \"until\": 9,"
        " \"cause\": \"bind policy \\\"web-bind\\\" deleted or changed\"},"
        "{\"identity\": \"i2\", \"service\": \"s1\", \"act\": \"bind\", \"at\": 1, \"until\": 9,"
        " \"cause\": \"%s\"},"
        "{\"identity\": \"i3\", \"service\": \"s1\", \"act\": \"bind\", \"at\": 1, \"until\": 9,"
        " \"cause\": 7},"
        "{\"identity\": \"i4\", \"service\": \"s1\", \"act\": \"dial\", \"at\": 1, \"until\": 9}]}",
        long_cause);
    rt_map_init(&m);
    assert_int_equal(rt_map_apply_full(&m, map, strlen(map), err, sizeof(err)), 0);
    assert_int_equal(rt_map_count(&m.grants), 4);
    g = rt_map_grant_get(&m, "i1", "s1", "bind");
    assert_non_null(g);
    assert_string_equal(g->cause, "bind policy \"web-bind\" deleted or changed");
    assert_int_equal(strlen(rt_map_grant_get(&m, "i2", "s1", "bind")->cause),
                     RT_GRANT_CAUSE_CAP - 1);
    assert_string_equal(rt_map_grant_get(&m, "i3", "s1", "bind")->cause, "");
    assert_string_equal(rt_map_grant_get(&m, "i4", "s1", "dial")->cause, "");
    assert_null(rt_map_grant_get(&m, "i4", "s1", "bind"));
    assert_true(rt_map_grant_withdrawn(&m, "i1", "s1", "bind", 1, 5));
    rt_map_free(&m);
}

/* Router policies: r1 lets in only #fleet among the restricted identities
 * (#fleet and @i9); r2 has no allow list left; the delta adds the policy to r2. */
static void test_router_policies(void **state)
{
    (void)state;
    static const char full[] =
        "{\"version\": 1, \"routers\": ["
        " {\"id\": \"r1\", \"name\": \"one\", \"roles\": [\"eu\"],"
        "  \"restricted\": [\"#fleet\", \"@i9\", \"#a&#b\"], \"allow\": [\"#fleet\", \"#a&#b\"]},"
        " {\"id\": \"r2\", \"name\": \"two\", \"roles\": [\"us\"],"
        "  \"restricted\": [\"#fleet\", \"@i9\", \"#a&#b\"], \"allow\": []},"
        " {\"id\": \"r3\", \"name\": \"three\"}],"
        " \"services\": [{\"id\": \"s1\", \"name\": \"web\", \"routers\": [\"#eu\", \"@r3\"]},"
        " {\"id\": \"s2\", \"name\": \"db\"}]}";
    static const char delta[] =
        "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\", \"kind\": \"router\", \"obj\":"
        " {\"id\": \"r2\", \"name\": \"two\", \"restricted\": [\"#fleet\"],"
        " \"allow\": [\"#fleet\"]}}]}";
    char err[256] = "";
    rt_map m;
    const rt_map_service *web, *db;

    rt_map_init(&m);
    assert_int_equal(rt_map_apply_full(&m, full, strlen(full), err, sizeof(err)), 0);
    /* Known roles: exact answers. */
    assert_true(rt_map_identity_allowed(&m, "r1", "i1", "#fleet"));
    assert_false(rt_map_identity_allowed(&m, "r2", "i1", "#fleet,#x"));
    assert_true(rt_map_identity_allowed(&m, "r2", "i2", "#ops")); /* not restricted */
    assert_true(rt_map_identity_allowed(&m, "r3", "i1", "#fleet")); /* no policy data */
    assert_false(rt_map_identity_allowed(&m, "r1", "i9", "")); /* by id, not let in */
    assert_true(rt_map_identity_allowed(&m, "r1", "i4", "#b,#a")); /* AllOf entry */
    assert_false(rt_map_identity_allowed(&m, "r2", "i4", "#b,#a"));
    assert_true(rt_map_identity_allowed(&m, "r2", "i5", "#a")); /* half an AllOf */
    /* Roles not known yet: only a refusal by id is certain. */
    assert_true(rt_map_identity_allowed(&m, "r2", "i1", NULL));
    assert_false(rt_map_identity_allowed(&m, "r2", "i9", NULL));
    assert_true(rt_map_identity_allowed(&m, "r1", "i9", NULL)); /* #fleet might let it in */
    /* Services: routers by role or id; no list, every router. */
    web = rt_map_service_get(&m, "s1");
    db = rt_map_service_get(&m, "s2");
    assert_true(rt_map_service_router_ok(&m, web, "r1"));
    assert_false(rt_map_service_router_ok(&m, web, "r2"));
    assert_true(rt_map_service_router_ok(&m, web, "r3"));
    assert_false(rt_map_service_router_ok(&m, web, "r9")); /* not in the map */
    assert_true(rt_map_service_router_ok(&m, db, "r2"));
    /* A delta changes a live router's policy data. */
    assert_int_equal(rt_map_apply_delta(&m, delta, strlen(delta), err, sizeof(err)), 0);
    assert_true(rt_map_identity_allowed(&m, "r2", "i1", "#fleet"));
    assert_true(rt_map_identity_allowed(&m, "r2", "i9", NULL));
    rt_map_free(&m);
}

static void test_router_policy_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"version\": 1, \"routers\": [{\"id\": \"r1\", \"allow\": \"#x\"}]}",
        "{\"version\": 1, \"routers\": [{\"id\": \"r1\", \"allow\": [\"#a,#b\"]}]}",
        "{\"version\": 1, \"services\": [{\"id\": \"s\", \"name\": \"s\", \"routers\": [1]}]}",
    };
    char err[256];
    rt_map m;

    rt_map_init(&m);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rt_map_apply_full(&m, bad[i], strlen(bad[i]), err, sizeof(err)),
                         WEFT_EPROTO);
    rt_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_full_replaces),
        cmocka_unit_test(test_bad_full_keeps_old),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_delta_gap),
        cmocka_unit_test(test_delta_all_or_nothing),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_grants),
        cmocka_unit_test(test_grant_cause),
        cmocka_unit_test(test_router_policies),
        cmocka_unit_test(test_router_policy_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
