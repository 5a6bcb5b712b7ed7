/* Fuzzes the router's reading of CTL_ROLES (router/grants.c rt_rpolicy_roles,
 * rt_roles_join): the input is the frame's body, as the control channel hands
 * it over (JSON or not). The router is under router policies; sessions of
 * four identities, one with roles from a token, take what the body says. The
 * router must never crash, a session's roles must stay a terminated list of
 * "#role" entries, and a session may only end when the policies refuse it. */
#include "rt_fuzz_world.h"
#include "router/grants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = {"dev1", "dev2", "app1", "dev9"};
#define NIDS (sizeof(ids) / sizeof(ids[0]))

static void check(rt_sess *s)
{
    char why[320];
    size_t n = strnlen(s->roles, sizeof(s->roles));

    if (n == sizeof(s->roles) || (n > 0 && s->roles[0] != '#'))
        abort();
    if (s->state == RT_SESS_CLOSING && rt_rpolicy_check(s, why, sizeof(why)) == 0)
        abort(); /* ended although allowed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    rt_sess *s[NIDS];
    json_t *body;

    if (!ready) {
        world_setup("ra", "[{\"id\": \"ra\", \"roles\": [\"east\"], \"restricted\": [\"#west\","
                          " \"@dev9\", \"#a&#b\"], \"allow\": [\"#east\", \"#a&#b\"]}, {\"id\": \"rb\"}]");
        ready = 1;
    }
    for (size_t i = 0; i < NIDS; i++) {
        if (rt_sess_detached(&r, ids[i], &s[i]) < 0)
            abort();
        s[i]->state = RT_SESS_OPEN;
    }
    snprintf(s[1]->roles, sizeof(s[1]->roles), "#east"); /* from a token issued at 1000 */
    s[1]->roles_known = 1;
    s[1]->roles_at = 1000;
    if ((body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
        rt_rpolicy_roles(&r, body);
        json_decref(body);
    }
    for (size_t i = 0; i < NIDS; i++) {
        check(s[i]);
        rt_sess_detached_free(s[i]);
    }
    if (r.sessions != NULL)
        abort();
    return 0;
}
