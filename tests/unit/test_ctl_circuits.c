/* The circuit view (controller/circuits.c): events open, update and close a
 * circuit, counters only grow, malformed events are refused, paging is newest
 * first, and the view stays within its bound by forgetting the circuit closed
 * longest ago first, then the oldest open one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/circuits.h"
#include "weft/errors.h"

static int ev(ctl_circuits *v, const char *fmt, ...)
{
    va_list ap;
    json_t *e;
    int rc;

    va_start(ap, fmt);
    e = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    assert_non_null(e);
    rc = ctl_circuits_event(v, "r1", e, 1000);
    json_decref(e);
    return rc;
}

static int simple(ctl_circuits *v, const char *event, const char *id)
{
    return ev(v, "{s:s, s:s}", "event", event, "circuit", id);
}

/* The ids of a page, space separated. */
static const char *page(ctl_circuits *v, const char *state, size_t off, size_t lim, char *buf,
                        size_t cap, size_t *total)
{
    json_t *items = NULL, *c;
    size_t i, len = 0;

    assert_int_equal(ctl_circuits_list(v, state, off, lim, &items, total), 0);
    buf[0] = '\0';
    json_array_foreach(items, i, c)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "",
                                json_string_value(json_object_get(c, "id")));
    json_decref(items);
    return buf;
}

static void test_events(void **state)
{
    ctl_circuits *v;
    json_t *items = NULL, *c;
    size_t total;

    (void)state;
    assert_int_equal(ctl_circuits_new(0, &v), 0);
    assert_int_equal(ev(v, "{s:s, s:s, s:s, s:s, s:[s, s], s:i}", "event", "open", "circuit",
                        "00000000000000a1", "service", "svc", "identity", "alice", "path", "r1",
                        "r2", "rtt_us", 700),
                     0);
    assert_int_equal(ev(v, "{s:s, s:s, s:i, s:i}", "event", "update", "circuit",
                        "00000000000000a1", "bytes_up", 100, "bytes_down", 300),
                     0);
    /* A late update with smaller counters does not undo a newer one. */
    assert_int_equal(ev(v, "{s:s, s:s, s:i}", "event", "update", "circuit", "00000000000000a1",
                        "bytes_up", 50),
                     0);
    assert_int_equal(ctl_circuits_open_count(v), 1);
    assert_int_equal(ev(v, "{s:s, s:s, s:i}", "event", "close", "circuit", "00000000000000a1",
                        "bytes_up", 150),
                     0);
    assert_int_equal(ctl_circuits_open_count(v), 0);
    assert_int_equal(ctl_circuits_list(v, NULL, 0, 10, &items, &total), 0);
    assert_int_equal(total, 1);
    c = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(c, "state")), "closed");
    assert_string_equal(json_string_value(json_object_get(c, "service")), "svc");
    assert_string_equal(json_string_value(json_object_get(c, "router")), "r1");
    assert_int_equal(json_integer_value(json_object_get(c, "bytes_up")), 150);
    assert_int_equal(json_integer_value(json_object_get(c, "bytes_down")), 300);
    assert_int_equal(json_integer_value(json_object_get(c, "rtt_us")), 700);
    assert_int_equal(json_array_size(json_object_get(c, "path")), 2);
    assert_non_null(json_object_get(c, "closed_at"));
    json_decref(items);
    /* A close of a circuit never opened creates it (the open was missed). */
    assert_int_equal(simple(v, "close", "00000000000000b2"), 0);
    assert_int_equal(ctl_circuits_count(v), 2);
    ctl_circuits_free(v);
}

static void test_malformed(void **state)
{
    ctl_circuits *v;

    (void)state;
    assert_int_equal(ctl_circuits_new(0, &v), 0);
    assert_int_equal(simple(v, "reopen", "c1"), WEFT_EINVAL);
    assert_int_equal(ev(v, "{s:s}", "event", "open"), WEFT_EINVAL);
    assert_int_equal(ev(v, "{s:s, s:i}", "event", "open", "circuit", 7), WEFT_EINVAL);
    assert_int_equal(ev(v, "{s:s, s:s, s:i}", "event", "open", "circuit", "c1", "bytes_up", -1),
                     WEFT_EINVAL);
    assert_int_equal(ev(v, "{s:s, s:s, s:[i]}", "event", "open", "circuit", "c1", "path", 1),
                     WEFT_EINVAL);
    assert_int_equal(ev(v, "{s:s, s:s, s:[ssssssssssssssssss]}", "event", "open", "circuit",
                        "c1", "path", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
                        "m", "n", "o", "p", "q", "r"),
                     WEFT_EINVAL);
    char long_id[80];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(simple(v, "open", long_id), WEFT_EINVAL);
    assert_int_equal(ctl_circuits_event(v, "r1", NULL, 0), WEFT_EINVAL);
    assert_int_equal(ctl_circuits_count(v), 0);
    ctl_circuits_free(v);
}

static void test_paging(void **state)
{
    ctl_circuits *v;
    char buf[256];
    size_t total;

    (void)state;
    assert_int_equal(ctl_circuits_new(0, &v), 0);
    assert_int_equal(simple(v, "open", "c1"), 0);
    assert_int_equal(simple(v, "open", "c2"), 0);
    assert_int_equal(simple(v, "open", "c3"), 0);
    assert_int_equal(simple(v, "close", "c2"), 0);
    assert_string_equal(page(v, NULL, 0, 10, buf, sizeof(buf), &total), "c3 c2 c1");
    assert_int_equal(total, 3);
    assert_string_equal(page(v, NULL, 1, 1, buf, sizeof(buf), &total), "c2");
    assert_int_equal(total, 3);
    assert_string_equal(page(v, "open", 0, 10, buf, sizeof(buf), &total), "c3 c1");
    assert_string_equal(page(v, "closed", 0, 10, buf, sizeof(buf), &total), "c2");
    assert_string_equal(page(v, NULL, 5, 10, buf, sizeof(buf), &total), "");
    assert_int_equal(total, 3);
    ctl_circuits_free(v);
}

static void test_bounds(void **state)
{
    ctl_circuits *v;
    char buf[256], id[32];
    size_t total;

    (void)state;
    assert_int_equal(ctl_circuits_new(3, &v), 0);
    assert_int_equal(simple(v, "open", "c1"), 0);
    assert_int_equal(simple(v, "open", "c2"), 0);
    assert_int_equal(simple(v, "open", "c3"), 0);
    assert_int_equal(simple(v, "close", "c2"), 0);
    assert_int_equal(simple(v, "close", "c1"), 0);
    /* Full: c2 closed first, so it goes first, then c1; the open c3 stays. */
    assert_int_equal(simple(v, "open", "c4"), 0);
    assert_string_equal(page(v, NULL, 0, 10, buf, sizeof(buf), &total), "c4 c3 c1");
    assert_int_equal(simple(v, "open", "c5"), 0);
    assert_string_equal(page(v, NULL, 0, 10, buf, sizeof(buf), &total), "c5 c4 c3");
    /* Nothing closed left: the oldest open one goes. */
    assert_int_equal(simple(v, "open", "c6"), 0);
    assert_string_equal(page(v, NULL, 0, 10, buf, sizeof(buf), &total), "c6 c5 c4");
    assert_int_equal(ctl_circuits_count(v), 3);
    ctl_circuits_free(v);
    /* The default bound holds under a flood of events. */
    assert_int_equal(ctl_circuits_new(0, &v), 0);
    for (int i = 0; i < CTL_CIRCUITS_MAX + 500; i++) {
        snprintf(id, sizeof(id), "%016x", i);
        assert_int_equal(simple(v, i % 2 ? "close" : "open", id), 0);
    }
    assert_int_equal(ctl_circuits_count(v), CTL_CIRCUITS_MAX);
    /* The first 500 forgotten were closed ones, the oldest closed first. */
    assert_int_equal(ctl_circuits_open_count(v), (CTL_CIRCUITS_MAX + 500) / 2);
    ctl_circuits_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
