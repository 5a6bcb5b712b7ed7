/* The forwarding table: unique random ids, look-ups, and the per-peer lists
 * that let a dropped session find its circuits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "router/circuit.h"
#include "weft/errors.h"

#define N 5000

static void test_ids_unique(void **state)
{
    static rt_circuit *cs[N];
    static uint64_t ids[N];
    rt_circuits t;

    assert_int_equal(rt_circuits_init(&t), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rt_circuits_new(&t, &cs[i]), 0);
        assert_true(cs[i]->id != 0);
        ids[i] = cs[i]->id;
    }
    assert_int_equal(t.n, N);
    assert_true(t.nb > 1024); /* grew */
    for (int i = 0; i < N; i++)
        assert_ptr_equal(rt_circuits_get(&t, cs[i]->id), cs[i]);
    for (int i = 0; i < N; i += 2)
        rt_circuits_del(&t, cs[i]);
    assert_int_equal(t.n, N / 2);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(rt_circuits_get(&t, ids[i]), i % 2 ? cs[i] : NULL);
    rt_circuits_free(&t);
}

static void test_add_existing(void **state)
{
    rt_circuits t;
    rt_circuit *a, *b;

    assert_int_equal(rt_circuits_init(&t), 0);
    assert_int_equal(rt_circuits_add(&t, 42, &a), 0);
    assert_int_equal(rt_circuits_add(&t, 42, &b), WEFT_EEXISTS);
    assert_int_equal(rt_circuits_add(&t, 0, &b), WEFT_EINVAL);
    assert_ptr_equal(rt_circuits_get(&t, 42), a);
    assert_null(rt_circuits_get(&t, 43));
    rt_circuits_free(&t);
}

static void test_ends_and_lists(void **state)
{
    int peer_a, peer_b, peer_c;
    rt_end_list la = {0}, lb = {0}, lc = {0};
    rt_circuits t;
    rt_circuit *c1, *c2;

    assert_int_equal(rt_circuits_init(&t), 0);
    assert_int_equal(rt_circuits_new(&t, &c1), 0);
    assert_int_equal(rt_circuits_new(&t, &c2), 0);
    rt_circuit_attach(c1, 0, RT_END_EDGE, &peer_a, &la);
    rt_circuit_attach(c1, 1, RT_END_EDGE, &peer_b, &lb);
    rt_circuit_attach(c2, 0, RT_END_EDGE, &peer_a, &la);
    rt_circuit_attach(c2, 1, RT_END_HOSTED, &peer_c, &lc);
    assert_int_equal(rt_circuit_side(c1, &peer_a), 0);
    assert_int_equal(rt_circuit_side(c1, &peer_b), 1);
    assert_int_equal(rt_circuit_side(c1, &peer_c), -1);
    /* peer a's list holds both circuits; deleting empties it end by end. */
    assert_ptr_equal(la.head->circ, c2);
    assert_ptr_equal(la.head->next->circ, c1);
    rt_circuits_del(&t, c2);
    assert_ptr_equal(la.head->circ, c1);
    assert_null(la.head->next);
    assert_null(lc.head);
    while (la.head)
        rt_circuits_del(&t, la.head->circ);
    assert_null(lb.head);
    assert_int_equal(t.n, 0);
    rt_circuits_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_add_existing),
        cmocka_unit_test(test_ends_and_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
