/* Path computation (router/path.c): least-cost paths on small graphs, ties,
 * unreachable routers, limits, and the path encoding carried by LINK_DIAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "router/path.h"
#include "weft/errors.h"

static void assert_path(const rt_path *p, const char *want)
{
    char s[RT_PATH_MAX * RT_ID_CAP];
    assert_int_equal(rt_path_format(p, s, sizeof(s)), 0);
    assert_string_equal(s, want);
}

static void test_direct_beats_detour_unless_slower(void **state)
{
    rt_path_edge e[] = {{"a", "b", 100}, {"b", "c", 100}, {"a", "c", 500}};
    rt_path p;

    assert_int_equal(rt_path_compute(e, 3, "a", "c", &p), 0);
    assert_path(&p, "a,b,c");
    assert_int_equal(p.cost, 200);
    e[2].cost = 150;
    assert_int_equal(rt_path_compute(e, 3, "a", "c", &p), 0);
    assert_path(&p, "a,c");
    assert_int_equal(p.cost, 150);
    /* edges are undirected */
    assert_int_equal(rt_path_compute(e, 3, "c", "a", &p), 0);
    assert_path(&p, "c,a");
}

static void test_diamond_and_longer_graph(void **state)
{
    /*   a - b - d
     *    \     /
     *     c - e - f      (a..f through c,e is cheapest) */
    rt_path_edge e[] = {{"a", "b", 10}, {"b", "d", 10}, {"d", "f", 50}, {"a", "c", 3},
                        {"c", "e", 3},  {"e", "f", 3},  {"e", "d", 1}};
    rt_path p;

    assert_int_equal(rt_path_compute(e, 7, "a", "f", &p), 0);
    assert_path(&p, "a,c,e,f");
    assert_int_equal(p.cost, 9);
    assert_int_equal(rt_path_compute(e, 7, "a", "d", &p), 0);
    assert_path(&p, "a,c,e,d");
    assert_int_equal(p.cost, 7);
    assert_int_equal(rt_path_compute(e, 7, "b", "c", &p), 0);
    assert_int_equal(p.cost, 13); /* b-a-c, not b-d-e-c (14) */
    assert_path(&p, "b,a,c");
}

static void test_unreachable_and_bad_args(void **state)
{
    rt_path_edge e[] = {{"a", "b", 1}, {"c", "d", 1}};
    rt_path p;

    assert_int_equal(rt_path_compute(e, 2, "a", "d", &p), WEFT_ENOTFOUND);
    assert_int_equal(rt_path_compute(e, 2, "a", "zz", &p), WEFT_ENOTFOUND);
    assert_int_equal(rt_path_compute(e, 2, "a", "a", &p), WEFT_EINVAL);
    assert_int_equal(rt_path_compute(NULL, 0, "a", "b", &p), WEFT_ENOTFOUND);
    /* a cost of 0 counts as 1: a path is never free */
    e[0].cost = 0;
    assert_int_equal(rt_path_compute(e, 2, "a", "b", &p), 0);
    assert_int_equal(p.cost, 1);
}

static void test_path_too_long(void **state)
{
    char names[RT_PATH_MAX + 1][8];
    rt_path_edge e[RT_PATH_MAX];
    rt_path p;

    for (int i = 0; i <= RT_PATH_MAX; i++)
        snprintf(names[i], sizeof(names[i]), "r%d", i);
    for (int i = 0; i < RT_PATH_MAX; i++)
        e[i] = (rt_path_edge){names[i], names[i + 1], 1};
    /* RT_PATH_MAX routers fit; one more does not */
    assert_int_equal(rt_path_compute(e, RT_PATH_MAX, "r0", names[RT_PATH_MAX - 1], &p), 0);
    assert_int_equal(p.n, RT_PATH_MAX);
    assert_int_equal(rt_path_compute(e, RT_PATH_MAX, "r0", names[RT_PATH_MAX], &p),
                     WEFT_ETOOBIG);
}

static void test_parse(void **state)
{
    rt_path p;

    assert_int_equal(rt_path_parse("a,b,c", &p), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.hop[2], "c");
    assert_int_equal(rt_path_parse("a", &p), WEFT_EPROTO);      /* one router is no path */
    assert_int_equal(rt_path_parse("a,,b", &p), WEFT_EPROTO);   /* empty id */
    assert_int_equal(rt_path_parse("a,b,a", &p), WEFT_EPROTO);  /* loop */
    assert_int_equal(rt_path_parse("", &p), WEFT_EPROTO);
    assert_int_equal(rt_path_parse("a,b,", &p), WEFT_EPROTO);
    assert_int_equal(rt_path_parse("1,2,3,4,5,6,7,8", &p), 0);
    assert_int_equal(rt_path_parse("1,2,3,4,5,6,7,8,9", &p), WEFT_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_beats_detour_unless_slower),
        cmocka_unit_test(test_diamond_and_longer_graph),
        cmocka_unit_test(test_unreachable_and_bad_args),
        cmocka_unit_test(test_path_too_long),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
