/* HOST:PORT parsing, resolution of loopback names and literals, formatting,
 * and a real bind to a resolved ephemeral address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/addr.h"
#include "weft/errors.h"

static void split_good(void **state)
{
    static const struct {
        const char *in, *host;
        unsigned port;
    } cases[] = {
        {"127.0.0.1:1280", "127.0.0.1", 1280},
        {"localhost:1", "localhost", 1},
        {"ctl.example.org:65535", "ctl.example.org", 65535},
        {"[::1]:443", "::1", 443},
        {"[fe80::1%lo]:80", "fe80::1%lo", 80},
        {"[::ffff:127.0.0.1]:9", "::ffff:127.0.0.1", 9},
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"my_host-1:8080", "my_host-1", 8080},
    };
    char host[256];
    unsigned port;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        port = 99999;
        assert_int_equal(pr_addr_split(cases[i].in, host, sizeof(host), &port), 0);
        assert_string_equal(host, cases[i].host);
        assert_int_equal(port, cases[i].port);
    }
}

static void split_bad(void **state)
{
    static const char *const bad[] = {
        "",          ":80",          "host",       "host:",          "host:80:81",
        "::1:80",    "[::1]",        "[::1]80",    "[::1:80",        "::1]:80",
        "[]:80",     "[[::1]]:80",   "[::1]]:80",  "[127.0.0.1]:80", "[fe80::1%]:80", "[fe80::1%abcdefghijklmnop]:80",
        "[::1]:80x", "host:65536",   "host:99999", "host:123456",    "host:-1",
        "host:+80",  "host: 80",     "host:0x50",  "host:080",       "ho st:80",
        "host/x:80", "h\xc3\xa9:80", "[zz::1]:80", "host:80 ",
    };
    char host[256];
    unsigned port;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pr_addr_split(bad[i], host, sizeof(host), &port), WEFT_EADDR);
    assert_int_equal(pr_addr_split(NULL, host, sizeof(host), &port), WEFT_EADDR);
}

static void split_limits(void **state)
{
    char in[400], host[300];
    unsigned port;

    /* A host that does not fit the caller's buffer is refused, not cut. */
    assert_int_equal(pr_addr_split("abcdef:1", host, 7, &port), 0);
    assert_int_equal(pr_addr_split("abcdef:1", host, 6, &port), WEFT_EADDR);
    memset(in, 'a', 253);
    strcpy(in + 253, ":80");
    assert_int_equal(pr_addr_split(in, host, sizeof(host), &port), 0);
    memset(in, 'a', 254);
    strcpy(in + 254, ":80");
    assert_int_equal(pr_addr_split(in, host, sizeof(host), &port), WEFT_EADDR);
}

static void resolve_and_format(void **state)
{
    struct sockaddr_storage ss;
    char out[128];

    assert_int_equal(pr_addr_resolve("127.0.0.1:1280", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, out, sizeof(out)), 0);
    assert_string_equal(out, "127.0.0.1:1280");

    assert_int_equal(pr_addr_resolve("[::1]:65535", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, out, sizeof(out)), 0);
    assert_string_equal(out, "[::1]:65535");

    /* "localhost" resolves to a loopback address of either family. */
    assert_int_equal(pr_addr_resolve("localhost:7", &ss), 0);
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, out, sizeof(out)), 0);
    assert_true(strcmp(out, "127.0.0.1:7") == 0 || strcmp(out, "[::1]:7") == 0);

    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, out, 5), WEFT_ETOOBIG);
    assert_int_equal(pr_addr_resolve("127.0.0.1", &ss), WEFT_EADDR);
    assert_int_equal(pr_addr_resolve("no-such-host.invalid:80", &ss), WEFT_EADDR);
    assert_int_equal(pr_addr_resolve("[::1]:80", NULL), WEFT_EADDR);

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, out, sizeof(out)), WEFT_EADDR);
}

/* Port 0 resolves to an address the kernel binds to an ephemeral port. */
static void ephemeral_bind(void **state)
{
    struct sockaddr_storage ss, got;
    socklen_t len = sizeof(got);
    char out[128];
    int fd;

    assert_int_equal(pr_addr_resolve("127.0.0.1:0", &ss), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&got, &len), 0);
    assert_int_equal(pr_addr_format((struct sockaddr *)&got, out, sizeof(out)), 0);
    assert_int_equal(strncmp(out, "127.0.0.1:", 10), 0);
    assert_int_not_equal(((struct sockaddr_in *)&got)->sin_port, 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_good),     cmocka_unit_test(split_bad),
        cmocka_unit_test(split_limits),   cmocka_unit_test(resolve_and_format),
        cmocka_unit_test(ephemeral_bind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
