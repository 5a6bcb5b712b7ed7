/* Token bucket: burst, refill at the rate, the retry hint, unlimited mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/bucket.h"
#include "weft/errors.h"

static void burst_then_refused(void **state)
{
    pr_bucket b;
    uint32_t retry = 0;

    (void)state;
    pr_bucket_init(&b, 5, 5, 1000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pr_bucket_take(&b, 1000, &retry), 0);
    assert_int_equal(pr_bucket_take(&b, 1000, &retry), WEFT_EREFUSED);
    /* one token needs 200 ms at 5/s */
    assert_in_range(retry, 200, 201);
    assert_int_equal(b.admitted, 5);
    assert_int_equal(b.refused, 1);
}

static void refills_at_rate(void **state)
{
    pr_bucket b;
    uint32_t retry;
    int ok = 0;

    (void)state;
    pr_bucket_init(&b, 100, 10, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pr_bucket_take(&b, 0, NULL), 0);
    /* one second later: 100 more tokens accrued, capped at the burst of 10 */
    for (int i = 0; i < 50; i++)
        ok += pr_bucket_take(&b, 1000, &retry) == 0;
    assert_int_equal(ok, 10);
    /* 25 ms later: 2.5 tokens, so 2 admissions */
    ok = 0;
    for (int i = 0; i < 5; i++)
        ok += pr_bucket_take(&b, 1025, &retry) == 0;
    assert_int_equal(ok, 2);
    assert_true(retry >= 1 && retry <= 10);
}

static void clock_backwards_and_unlimited(void **state)
{
    pr_bucket b;
    uint32_t retry = 7;

    (void)state;
    pr_bucket_init(&b, 1, 1, 5000);
    assert_int_equal(pr_bucket_take(&b, 5000, NULL), 0);
    assert_int_equal(pr_bucket_take(&b, 100, &retry), WEFT_EREFUSED); /* no refill backwards */
    assert_true(retry >= 1000);
    pr_bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(pr_bucket_take(&b, 0, &retry), 0);
    assert_int_equal(retry, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refused),
        cmocka_unit_test(refills_at_rate),
        cmocka_unit_test(clock_backwards_and_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
