/* Service policy evaluation (controller/policy.c): selectors, AnyOf/AllOf,
 * and what a set of policies grants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "controller/policy.h"

static json_t *rec(const char *id, const char *name, const char *roles_json)
{
    return json_pack("{s:s, s:s, s:o}", "id", id, "name", name, "roles",
                     json_loads(roles_json, 0, NULL));
}

static json_t *pol(const char *type, const char *sem, const char *ids, const char *svcs)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", "p", "type", type, "semantic", sem,
                     "identity_roles", json_loads(ids, 0, NULL), "service_roles",
                     json_loads(svcs, 0, NULL));
}

static void test_selectors(void **state)
{
    json_t *r = rec("id1", "alice", "[\"web\", \"ops\"]");

    (void)state;
    assert_true(ctl_policy_selector_match("#all", r));
    assert_true(ctl_policy_selector_match("#web", r));
    assert_false(ctl_policy_selector_match("#db", r));
    assert_true(ctl_policy_selector_match("@alice", r));
    assert_true(ctl_policy_selector_match("@id1", r));
    assert_false(ctl_policy_selector_match("@bob", r));
    assert_false(ctl_policy_selector_match("web", r)); /* the store holds "#web" only */
    assert_false(ctl_policy_selector_match("#", r));
    assert_false(ctl_policy_selector_match(NULL, r));
    json_decref(r);
}

static void test_anyof_allof(void **state)
{
    json_t *r = rec("id1", "alice", "[\"web\", \"ops\"]");
    json_t *both = json_loads("[\"#web\", \"#ops\"]", 0, NULL);
    json_t *one = json_loads("[\"#web\", \"#db\"]", 0, NULL);
    json_t *none = json_array();

    (void)state;
    assert_true(ctl_policy_selects(both, "AnyOf", r));
    assert_true(ctl_policy_selects(both, "AllOf", r));
    assert_true(ctl_policy_selects(one, "AnyOf", r));
    assert_false(ctl_policy_selects(one, "AllOf", r));
    /* An empty selector list selects nothing, under either semantic. */
    assert_false(ctl_policy_selects(none, "AnyOf", r));
    assert_false(ctl_policy_selects(none, "AllOf", r));
    assert_false(ctl_policy_selects(NULL, "AnyOf", r));
    json_decref(r);
    json_decref(both);
    json_decref(one);
    json_decref(none);
}

static void test_access(void **state)
{
    json_t *alice = rec("i1", "alice", "[\"users\"]"), *bob = rec("i2", "bob", "[]");
    json_t *web = rec("s1", "web", "[\"web\"]"), *db = rec("s2", "db", "[\"db\"]");
    json_t *ps = json_array();

    (void)state;
    /* No policy: nobody may do anything. */
    assert_int_equal(ctl_policy_access(ps, alice, web), 0);
    json_array_append_new(ps, pol("dial", "AnyOf", "[\"#users\"]", "[\"#web\"]"));
    json_array_append_new(ps, pol("bind", "AnyOf", "[\"@bob\"]", "[\"#all\"]"));
    json_array_append_new(ps, pol("dial", "AllOf", "[\"#users\", \"@alice\"]", "[\"@db\"]"));
    assert_int_equal(ctl_policy_access(ps, alice, web), CTL_POLICY_DIAL);
    assert_int_equal(ctl_policy_access(ps, alice, db), CTL_POLICY_DIAL);
    assert_int_equal(ctl_policy_access(ps, bob, web), CTL_POLICY_BIND);
    assert_int_equal(ctl_policy_access(ps, bob, db), CTL_POLICY_BIND);
    /* #all on both sides grants everything of its type. */
    json_array_append_new(ps, pol("dial", "AnyOf", "[\"#all\"]", "[\"#all\"]"));
    assert_int_equal(ctl_policy_access(ps, bob, db), CTL_POLICY_DIAL | CTL_POLICY_BIND);
    /* A policy of an unknown type grants nothing. */
    json_t *odd = json_array();
    json_array_append_new(odd, pol("admin", "AnyOf", "[\"#all\"]", "[\"#all\"]"));
    assert_int_equal(ctl_policy_access(odd, bob, db), 0);
    json_decref(odd);
    json_decref(ps);
    json_decref(alice);
    json_decref(bob);
    json_decref(web);
    json_decref(db);
}

static json_t *rpol(const char *type, const char *key, const char *sels, const char *rts)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "type", type, "semantic", "AnyOf", key,
                     json_loads(sels, 0, NULL), "router_roles", json_loads(rts, 0, NULL));
}

/* Router policies only restrict: without one every router is allowed; an
 * identity a policy selects keeps only the routers its policies select. */
static void test_router_policies(void **state)
{
    (void)state;
    json_t *fleet = rec("i1", "dev1", "[\"fleet\"]"), *ops = rec("i2", "ops1", "[\"ops\"]");
    json_t *r1 = rec("r1", "r1", "[\"eu\"]"), *r2 = rec("r2", "r2", "[\"us\"]");
    json_t *svc = rec("s1", "web", "[\"web\"]"), *other = rec("s2", "db", "[]");
    json_t *ps = json_array();

    json_array_append_new(ps, pol("dial", "AnyOf", "[\"#all\"]", "[\"#all\"]"));
    assert_true(ctl_policy_router_allowed(ps, fleet, r1));
    assert_true(ctl_policy_service_router_allowed(ps, svc, r2));
    json_array_append_new(ps, rpol("router", "identity_roles", "[\"#fleet\"]", "[\"#us\"]"));
    assert_false(ctl_policy_router_allowed(ps, fleet, r1));
    assert_true(ctl_policy_router_allowed(ps, fleet, r2));
    assert_true(ctl_policy_router_allowed(ps, ops, r1)); /* not selected: unrestricted */
    /* A second policy adds routers for the identities it selects. */
    json_array_append_new(ps, rpol("router", "identity_roles", "[\"@dev1\"]", "[\"@r1\"]"));
    assert_true(ctl_policy_router_allowed(ps, fleet, r1));
    json_array_append_new(ps,
                          rpol("service-router", "service_roles", "[\"#web\"]", "[\"#eu\"]"));
    assert_true(ctl_policy_service_router_allowed(ps, svc, r1));
    assert_false(ctl_policy_service_router_allowed(ps, svc, r2));
    assert_true(ctl_policy_service_router_allowed(ps, other, r2));
    /* A service-router policy says nothing of identities, and the reverse. */
    assert_true(ctl_policy_router_allowed(ps, ops, r2));
    assert_int_equal(ctl_policy_access(ps, ops, other), CTL_POLICY_DIAL);
    json_decref(ps);
    json_decref(fleet);
    json_decref(ops);
    json_decref(r1);
    json_decref(r2);
    json_decref(svc);
    json_decref(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_anyof_allof),
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_router_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
