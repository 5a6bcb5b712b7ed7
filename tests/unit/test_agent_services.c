/* The agent's reading of the session data (edge/services.c): services with
 * their intercept and host addresses and dial/bind flags, the refresh
 * period, malformed documents refused, endpoints parsed and resolved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "edge/agent.h"

static const char doc[] =
    "{\"data\": {\"identity\": {\"id\": \"i1\", \"name\": \"laptop\", \"roles\": []},"
    " \"routers\": [{\"id\": \"r\", \"name\": \"r1\", \"edge_listen\": \"127.0.0.1:3022\"}],"
    " \"services\": ["
    "  {\"id\": \"s1\", \"name\": \"web\", \"intercept\": \"tcp:127.0.0.1:8080\","
    "   \"host\": \"tcp:127.0.0.1:80\", \"dial\": true, \"bind\": false,"
    "   \"tokens\": {\"dial\": \"x.y.z\"}, \"expires_at\": \"2026-11-25T03:15:00Z\"},"
    "  {\"id\": \"s2\", \"name\": \"dns\", \"intercept\": \"udp:[::1]:5353\","
    "   \"host\": \"udp:127.0.0.1:53\", \"dial\": false, \"bind\": true},"
    "  {\"id\": \"s3\", \"name\": \"bare\", \"dial\": true}],"
    " \"signing_key\": \"AAAA\", \"refresh_s\": 30}}";

static void parse_services(void **state)
{
    edge_svc *v = NULL;
    size_t n = 0;
    unsigned refresh = 0;
    char err[128];
    (void)state;

    assert_int_equal(edge_svcs_parse(doc, strlen(doc), &v, &n, &refresh, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(refresh, 30);
    assert_string_equal(v[0].name, "web");
    assert_string_equal(v[0].intercept, "tcp:127.0.0.1:8080");
    assert_string_equal(v[0].host, "tcp:127.0.0.1:80");
    assert_true(v[0].dial);
    assert_false(v[0].bind);
    assert_int_equal(v[0].icpt_ep.proto, EDGE_TCP);
    assert_string_equal(v[0].icpt_ep.text, "127.0.0.1:8080");
    assert_int_equal(v[1].icpt_ep.proto, EDGE_UDP);
    assert_string_equal(v[1].icpt_ep.text, "[::1]:5353");
    assert_false(v[1].dial);
    assert_true(v[1].bind);
    /* No addresses: nothing to start, but the service is there. */
    assert_string_equal(v[2].intercept, "");
    assert_int_equal(v[2].icpt_ep.proto, 0);
    free(v);
}

static void parse_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"data\": {}}",
        "{\"services\": {}}",
        "{\"services\": [{\"intercept\": \"tcp:127.0.0.1:1\"}]}", /* no name */
        "{\"services\": [7]}",
    };
    edge_svc *v = (edge_svc *)1;
    size_t n = 9;
    unsigned refresh = 0;
    char err[128];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            edge_svcs_parse(bad[i], strlen(bad[i]), &v, &n, &refresh, err, sizeof(err)),
            WEFT_EJSON);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_true(strlen(err) > 0);
    }
}

/* No "data" envelope and no refresh_s: the default period. */
static void parse_bare(void **state)
{
    static const char d[] = "{\"services\": []}";
    edge_svc *v = NULL;
    size_t n = 1;
    unsigned refresh = 0;
    char err[64];
    (void)state;

    assert_int_equal(edge_svcs_parse(d, strlen(d), &v, &n, &refresh, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(refresh, 60);
    free(v);
}

static void endpoints(void **state)
{
    edge_ep ep;
    (void)state;

    assert_int_equal(edge_ep_parse("tcp:127.0.0.1:80", &ep), 0);
    assert_int_equal(ep.proto, EDGE_TCP);
    assert_int_equal(edge_ep_resolve(&ep), 0);
    assert_true(ep.resolved);
    assert_int_equal(ep.sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ep.sa)->sin_port), 80);

    assert_int_equal(edge_ep_parse("udp:[::1]:53", &ep), 0);
    assert_int_equal(ep.proto, EDGE_UDP);
    assert_int_equal(edge_ep_resolve(&ep), 0);
    assert_int_equal(ep.sa.ss_family, AF_INET6);

    assert_int_equal(edge_ep_parse("127.0.0.1:9", &ep), 0); /* tcp by default */
    assert_int_equal(ep.proto, EDGE_TCP);

    assert_int_equal(edge_ep_parse("", &ep), WEFT_EADDR);
    assert_int_equal(edge_ep_parse(NULL, &ep), WEFT_EADDR);
    assert_int_equal(edge_ep_parse("tcp:127.0.0.1", &ep), WEFT_EADDR);
    assert_int_equal(edge_ep_parse("tcp:127.0.0.1:0", &ep), WEFT_EADDR);
    assert_int_equal(edge_ep_parse("tcp:127.0.0.1:70000", &ep), WEFT_EADDR);

    assert_int_equal(edge_ep_parse("tcp:no-such-host.invalid:80", &ep), 0);
    assert_int_equal(edge_ep_resolve(&ep), WEFT_EADDR);
    assert_false(ep.resolved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_services),
        cmocka_unit_test(parse_refused),
        cmocka_unit_test(parse_bare),
        cmocka_unit_test(endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
