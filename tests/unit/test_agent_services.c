/* The agent's records of the services libweft reads (edge/services.c): names,
 * intercept and host addresses and dial/bind flags, oversized ones left out,
 * endpoints parsed and resolved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "edge/agent.h"

/* What libweft hands the agent (weft_services / weft_set_services_cb). */
static const weft_service svcs[] = {
    {"web", "tcp:127.0.0.1:8080", "tcp:127.0.0.1:80", 1, 0},
    {"dns", "udp:[::1]:5353", "udp:127.0.0.1:53", 0, 1},
    {"bare", "", "", 1, 0},
    {"", "tcp:127.0.0.1:1", "", 1, 1}, /* no name: not a service the agent can run */
};

static void from_services(void **state)
{
    edge_svc *v = NULL;
    size_t n = 0;
    (void)state;

    assert_int_equal(edge_svcs_from(svcs, 4, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].name, "web");
    assert_string_equal(v[0].intercept, "tcp:127.0.0.1:8080");
    assert_string_equal(v[0].host, "tcp:127.0.0.1:80");
    assert_true(v[0].dial);
    assert_false(v[0].bind);
    assert_int_equal(v[0].icpt_ep.proto, EDGE_TCP);
    assert_string_equal(v[0].icpt_ep.text, "127.0.0.1:8080");
    assert_int_equal(v[1].icpt_ep.proto, EDGE_UDP);
    assert_string_equal(v[1].icpt_ep.text, "[::1]:5353");
    assert_int_equal(v[1].host_ep.proto, EDGE_UDP);
    assert_false(v[1].dial);
    assert_true(v[1].bind);
    /* No addresses: nothing to start, but the service is there. */
    assert_string_equal(v[2].intercept, "");
    assert_int_equal(v[2].icpt_ep.proto, 0);
    assert_string_equal(v[3].name, ""); /* the zeroed record after the last */
    free(v);
}

/* An address longer than the agent's records: that service is left out. */
static void from_oversized(void **state)
{
    char big[EDGE_ADDR_MAX + 8];
    weft_service one[2] = {{"long", big, "", 1, 0}, {"ok", "tcp:127.0.0.1:9", NULL, 1, 0}};
    edge_svc *v = NULL;
    size_t n = 9;
    (void)state;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(edge_svcs_from(one, 2, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "ok");
    assert_string_equal(v[0].host, "");
    free(v);
    assert_int_equal(edge_svcs_from(NULL, 0, &v, &n), 0);
    assert_int_equal(n, 0);
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
        cmocka_unit_test(from_services),
        cmocka_unit_test(from_oversized),
        cmocka_unit_test(endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
