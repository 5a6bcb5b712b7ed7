/* Path computation (router/path.c): least-cost paths on small graphs, ties,
 * unreachable routers, limits, the path encoding carried by LINK_DIAL, k paths
 * as disjoint as the graph allows, link cost with queues, the hysteresis of
 * smart rerouting and the weighted striping of split circuits. */
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

/* Two node-disjoint routes a-b-d and a-c-d, a direct a-d, and a bridge b-c. */
static void test_k_node_disjoint(void **state)
{
    rt_path_edge e[] = {{"a", "b", 10}, {"b", "d", 10}, {"a", "c", 30}, {"c", "d", 30},
                        {"b", "c", 1},  {"a", "d", 200}};
    rt_path p[4];
    int lv[4];

    assert_int_equal(rt_path_k(e, 6, "a", "d", 4, p, lv), 4);
    assert_path(&p[0], "a,b,d");
    assert_int_equal(p[0].cost, 20);
    assert_path(&p[1], "a,c,d"); /* not a,b,c,d: b is taken */
    assert_int_equal(lv[1], RT_DISJ_NODE);
    assert_path(&p[2], "a,d");
    assert_int_equal(lv[2], RT_DISJ_NODE);
    /* the fourth must reuse links: only the bridge b-c is left unused */
    assert_int_equal(lv[3], RT_DISJ_ANY);
    assert_int_equal(p[3].n, 4); /* a,b,c,d or a,c,b,d: both cost 41 */
    assert_int_equal(p[3].cost, 10 + 1 + 30);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                assert_false(rt_path_shares_node(&p[i], &p[j]));
    /* k = 1 is the least-cost path */
    assert_int_equal(rt_path_k(e, 6, "a", "d", 1, p, NULL), 1);
    assert_path(&p[0], "a,b,d");
}

/* A cut router m: no two node-disjoint paths exist, edge-disjoint ones do. */
static void test_k_edge_then_any(void **state)
{
    rt_path_edge e[] = {{"a", "m", 10}, {"a", "x", 10}, {"x", "m", 10},
                        {"m", "z", 10}, {"m", "y", 10}, {"y", "z", 10}};
    rt_path p[3];
    int lv[3];

    assert_int_equal(rt_path_k(e, 6, "a", "z", 3, p, lv), 3);
    assert_path(&p[0], "a,m,z");
    assert_path(&p[1], "a,x,m,y,z");
    assert_int_equal(lv[1], RT_DISJ_EDGE);
    assert_true(rt_path_shares_node(&p[0], &p[1]));
    assert_false(rt_path_shares_edge(&p[0], &p[1]));
    assert_int_equal(lv[2], RT_DISJ_ANY); /* shares links, but is another path */
    assert_true(rt_path_shares_edge(&p[2], &p[0]) || rt_path_shares_edge(&p[2], &p[1]));
    assert_int_equal(p[2].cost, rt_path_cost(e, 6, &p[2]));
    /* a line has exactly one path */
    rt_path_edge line[] = {{"a", "b", 1}, {"b", "c", 1}};
    assert_int_equal(rt_path_k(line, 2, "a", "c", 3, p, lv), 1);
    assert_int_equal(rt_path_k(line, 2, "a", "zz", 3, p, lv), 0);
}

static void test_cost_queue_and_path_cost(void **state)
{
    rt_path_edge e[] = {{"a", "b", rt_link_cost(100, 0)}, {"b", "c", rt_link_cost(100, 0)},
                        {"a", "c", rt_link_cost(150, 0)}};
    rt_path p;

    assert_int_equal(rt_link_cost(0, 0), 1);
    assert_int_equal(rt_link_cost(100, 12 * 1000), 1100);
    assert_int_equal(rt_path_compute(e, 3, "a", "c", &p), 0);
    assert_path(&p, "a,c");
    /* 1.2 kB queued on the direct link makes the detour cheaper */
    e[2].cost = rt_link_cost(150, 1200);
    assert_int_equal(rt_path_compute(e, 3, "a", "c", &p), 0);
    assert_path(&p, "a,b,c");
    assert_int_equal(rt_path_cost(e, 3, &p), 200);
    assert_int_equal(rt_path_parse("a,c,b", &p), 0);
    assert_int_equal(rt_path_cost(e, 3, &p), 250 + 100);
    assert_int_equal(rt_path_parse("a,zz", &p), 0);
    assert_int_equal(rt_path_cost(e, 3, &p), UINT64_MAX);
}

static void test_hysteresis(void **state)
{
    rt_hyst h = {0};

    /* 20 ms vs 10 ms: better enough, but only after 3 s in a row */
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 1000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 3000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 3999), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 4000), 1);
    /* fired: the next move needs another full hold */
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 4100), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 7099), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 7100), 1);
    /* a blip in between restarts the hold */
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 10000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 19000, 11000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 12000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 14000), 0);
    assert_int_equal(rt_hyst_update(&h, 20000, 10000, 15000), 1);
    /* 30 % but under 2 ms: never */
    for (uint64_t t = 20000; t < 30000; t += 500)
        assert_int_equal(rt_hyst_update(&h, 5000, 3100, t), 0);
    /* 2 ms but under 30 %: never */
    for (uint64_t t = 30000; t < 40000; t += 500)
        assert_int_equal(rt_hyst_update(&h, 100000, 97000, t), 0);
    /* exactly 30 % and 3 ms */
    assert_int_equal(rt_hyst_update(&h, 10000, 7000, 50000), 0);
    assert_int_equal(rt_hyst_update(&h, 10000, 7000, 53000), 1);
}

static void test_stripe_weights(void **state)
{
    uint64_t w[3] = {3, 1, 0};
    int64_t credit[3] = {0};
    int count[3] = {0};

    for (int i = 0; i < 500; i++)
        count[rt_stripe_pick(w, credit, 3)]++;
    assert_int_equal(count[0], 300); /* 3:1:1 (a zero weight counts as 1) */
    assert_int_equal(count[1], 100);
    assert_int_equal(count[2], 100);
    /* smooth: the heavy path never takes more than its share in a row */
    uint64_t w2[2] = {1, 1};
    int64_t c2[2] = {0};
    size_t last = rt_stripe_pick(w2, c2, 2);
    for (int i = 0; i < 10; i++) {
        size_t cur = rt_stripe_pick(w2, c2, 2);
        assert_int_not_equal(cur, last);
        last = cur;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_beats_detour_unless_slower),
        cmocka_unit_test(test_diamond_and_longer_graph),
        cmocka_unit_test(test_unreachable_and_bad_args),
        cmocka_unit_test(test_path_too_long),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_k_node_disjoint),
        cmocka_unit_test(test_k_edge_then_any),
        cmocka_unit_test(test_cost_queue_and_path_cost),
        cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_stripe_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
