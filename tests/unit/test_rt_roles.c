/* Identities' roles from the controller at the router (router/grants.c,
 * docs/policies.md "Router policies"): a CTL_ROLES body checks the sessions
 * of the identities it names again and ends those the router policies now
 * refuse; the newest roles win (a push beats a token of the same second, an
 * older push changes nothing); malformed bodies change nothing; role lists
 * are joined as selectors expect them. Sessions are detached (no sockets). */
#include "test_rt_world.h"
#include "router/grants.h"

static rt_router *r0;

/* Router ra under router policies: '#westonly' and '@dev9' are restricted,
 * and ra lets in only '#east'. */
static void police(void)
{
    const char *d = "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\", \"kind\": \"router\","
                    " \"obj\": {\"id\": \"ra\", \"name\": \"name-ra\", \"roles\": [\"east\"],"
                    " \"restricted\": [\"#westonly\", \"@dev9\"], \"allow\": [\"#east\"]}}]}";
    char err[256];

    assert_int_equal(rt_map_apply_delta(&r0->map, d, strlen(d), err, sizeof(err)), 0);
    rt_router_map_changed(r0);
}

static void start(void)
{
    world_init(1, 0);
    r0 = &w.r[0];
    world_map(0, 0, NULL, NULL);
    police();
}

static rt_sess *sess(const char *identity)
{
    rt_sess *s;

    assert_int_equal(rt_sess_detached(r0, identity, &s), 0);
    s->state = RT_SESS_OPEN;
    return s;
}

static int roles(const char *json)
{
    json_t *b = json_loads(json, 0, NULL);
    int rc;

    assert_non_null(b);
    rc = rt_rpolicy_roles(r0, b);
    json_decref(b);
    return rc;
}

/* Frees the sessions, then lets the loop close the router's handles. */
static void finish(rt_sess **s, int n)
{
    for (int i = 0; i < n; i++)
        rt_sess_detached_free(s[i]);
    w.poll_cb = world_stop;
    world_run(5000);
}

static void test_push_closes(void **state)
{
    rt_sess *s[3];

    start();
    s[0] = sess("dev1");
    s[1] = sess("dev2");
    s[2] = sess("dev3");
    assert_int_equal(roles("{\"at\": 100, \"roles\": {\"dev1\": [\"westonly\"],"
                           " \"dev2\": [\"fleet\", \"east\"], \"nobody\": []}}"),
                     0);
    assert_int_equal(s[0]->state, RT_SESS_CLOSING); /* refused: restricted, not let in */
    assert_int_equal(s[1]->state, RT_SESS_OPEN);
    assert_string_equal(s[1]->roles, "#fleet,#east");
    assert_true(s[1]->roles_known && s[1]->roles_ctl);
    assert_int_equal(s[1]->roles_at, 100);
    assert_false(s[2]->roles_known); /* not named: untouched */
    assert_int_equal(s[2]->state, RT_SESS_OPEN);
    finish(s, 3);
}

static void test_newest_wins(void **state)
{
    rt_sess *s[1];

    start();
    s[0] = sess("dev2");
    /* A token issued at 200 told its roles; a push read at 150 is older. */
    snprintf(s[0]->roles, sizeof(s[0]->roles), "#east");
    s[0]->roles_known = 1;
    s[0]->roles_at = 200;
    assert_int_equal(roles("{\"at\": 150, \"roles\": {\"dev2\": [\"westonly\"]}}"), 0);
    assert_int_equal(s[0]->state, RT_SESS_OPEN);
    assert_string_equal(s[0]->roles, "#east");
    /* The same second: the controller's push wins (a token must be newer). */
    assert_int_equal(roles("{\"at\": 200, \"roles\": {\"dev2\": [\"westonly\"]}}"), 0);
    assert_int_equal(s[0]->state, RT_SESS_CLOSING);
    finish(s, 1);
}

static void test_malformed(void **state)
{
    rt_sess *s[1];

    start();
    s[0] = sess("dev1");
    assert_int_equal(roles("{\"roles\": {\"dev1\": [\"westonly\"]}}"), WEFT_EPROTO);
    assert_int_equal(roles("{\"at\": \"1\", \"roles\": {\"dev1\": [\"westonly\"]}}"), WEFT_EPROTO);
    assert_int_equal(roles("{\"at\": 1, \"roles\": [\"dev1\"]}"), WEFT_EPROTO);
    assert_int_equal(roles("[1, 2]"), WEFT_EPROTO);
    /* Roles that are not a list leave that session alone. */
    assert_int_equal(roles("{\"at\": 1, \"roles\": {\"dev1\": \"westonly\"}}"), 0);
    assert_false(s[0]->roles_known);
    assert_int_equal(s[0]->state, RT_SESS_OPEN);
    finish(s, 1);
}

static void test_join(void **state)
{
    char out[32], big[RT_SEL_CAP];
    json_t *a = json_pack("[s, i, s, s, n]", "a,b", 7, "ok", "");
    json_t *many = json_array(), *obj = json_object();

    assert_int_equal(rt_roles_join(a, out, sizeof(out)), 0);
    assert_string_equal(out, "#ok"); /* a ',' would split the role, "" is none: left out */
    assert_int_equal(rt_roles_join(obj, out, sizeof(out)), WEFT_EPROTO);
    assert_string_equal(out, "");
    /* Past the buffer: whole entries only, always terminated. */
    for (int i = 0; i < 400; i++)
        json_array_append_new(many, json_string("role-name"));
    assert_int_equal(rt_roles_join(many, big, sizeof(big)), 0);
    assert_true(strlen(big) < sizeof(big));
    assert_int_equal(big[strlen(big) - 1], 'e');
    assert_int_equal(rt_roles_join(many, out, 12), 0);
    assert_string_equal(out, "#role-name");
    json_decref(a);
    json_decref(many);
    json_decref(obj);
}

/* Without a control channel nothing is asked, and a channel that opens
 * forgets which sessions the controller told (it may have missed pushes). */
static void test_ask_offline(void **state)
{
    rt_sess *s[1];

    start();
    s[0] = sess("dev2");
    assert_int_equal(roles("{\"at\": 5, \"roles\": {\"dev2\": [\"east\"]}}"), 0);
    assert_true(s[0]->roles_ctl);
    rt_rpolicy_ask(r0, NULL);
    rt_rpolicy_ask(r0, s[0]);
    rt_rpolicy_control_open(r0);
    assert_false(s[0]->roles_ctl);
    assert_true(s[0]->roles_known); /* the roles stay until newer ones come */
    finish(s, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_closes),
        cmocka_unit_test(test_newest_wins),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_ask_offline),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
