/* libweft flow control and buffers: credit accounting on both ends, grants at
 * half a window, chunking of writes into messages, and the byte ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge/lib/flow.h"
#include "weft/errors.h"

#define W (512 * 1024)

static void tx_credit_follows_grants(void **state)
{
    weft_txflow f;

    weft__txflow_init(&f, W);
    assert_int_equal(weft__txflow_credit(&f), W);
    f.sent = W;
    assert_int_equal(weft__txflow_credit(&f), 0);
    assert_int_equal(weft__txflow_grant(&f, 1000), 0);
    assert_int_equal(weft__txflow_credit(&f), 1000);
    /* A stale grant (counts are cumulative, frames may cross) changes nothing. */
    assert_int_equal(weft__txflow_grant(&f, 10), 0);
    assert_int_equal(weft__txflow_credit(&f), 1000);
    /* Credit for bytes never sent is a protocol error. */
    assert_int_equal(weft__txflow_grant(&f, W + 1), WEFT_EPROTO);
    assert_int_equal(weft__txflow_grant(&f, W), 0);
    assert_int_equal(weft__txflow_credit(&f), W);
}

static void chunks_are_bounded(void **state)
{
    assert_int_equal(weft__chunk_len(10, W), 10);
    assert_int_equal(weft__chunk_len(1 << 20, W), WEFT_CHUNK_MAX);
    assert_int_equal(weft__chunk_len(1 << 20, 100), 100);
    assert_int_equal(weft__chunk_len(1 << 20, 0), 0);
    assert_int_equal(weft__chunk_len(0, W), 0);
}

/* Writing 8 MiB through a sender and a receiver that consumes everything:
 * the sender never has more than a window in flight and every byte is granted. */
static void sender_and_receiver_agree(void **state)
{
    weft_txflow tx;
    weft_rxflow rx;
    size_t left = 8u << 20, n, grants = 0;

    weft__txflow_init(&tx, W);
    weft__rxflow_init(&rx, W);
    while (left > 0) {
        n = weft__chunk_len(left, weft__txflow_credit(&tx));
        assert_true(n > 0); /* the receiver always granted in time */
        tx.sent += n;
        left -= n;
        assert_true(tx.sent - tx.granted <= W);
        assert_int_equal(weft__rxflow_recv(&rx, n), 0);
        if (weft__rxflow_consume(&rx, n)) {
            assert_int_equal(weft__txflow_grant(&tx, weft__rxflow_grant(&rx)), 0);
            grants++;
        }
    }
    assert_int_equal(rx.received, 8u << 20);
    /* Grants come at half a window, not per message. */
    assert_true(grants >= (8u << 20) / W && grants <= 2 * (8u << 20) / W);
}

static void receiver_refuses_overrun(void **state)
{
    weft_rxflow rx;

    weft__rxflow_init(&rx, W);
    assert_int_equal(weft__rxflow_recv(&rx, W), 0);
    /* One message of slack past the window, no more. */
    assert_int_equal(weft__rxflow_recv(&rx, WEFT_CHUNK_MAX), 0);
    assert_int_equal(weft__rxflow_recv(&rx, 1), WEFT_EPROTO);
    /* Nothing consumed, nothing granted: a stopped reader stalls its sender. */
    assert_int_equal(weft__rxflow_consume(&rx, 0), 0);
    assert_int_equal(weft__rxflow_consume(&rx, W / 2 - 1), 0);
    assert_int_equal(weft__rxflow_consume(&rx, 1), 1);
    assert_int_equal(weft__rxflow_grant(&rx), W / 2);
    assert_int_equal(weft__rxflow_consume(&rx, 1), 0);
    assert_int_equal(weft__rxflow_recv(&rx, W / 2), 0);
}

static void ring_wraps(void **state)
{
    uint8_t in[100], out[100];
    const uint8_t *p;
    weft_ring r;
    size_t i, n, got = 0;

    for (i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    assert_int_equal(weft__ring_init(&r, 64), 0);
    assert_int_equal(weft__ring_push(&r, in, 50), 0);
    assert_int_equal(weft__ring_push(&r, in, 15), WEFT_ENOBUFS); /* all or nothing */
    assert_int_equal(r.len, 50);
    weft__ring_consume(&r, 40);
    assert_int_equal(weft__ring_push(&r, in + 50, 50), 0); /* wraps */
    assert_int_equal(r.len, 60);
    memcpy(out, in, 40);
    got = 40;
    while ((n = weft__ring_peek(&r, &p)) > 0) {
        assert_true(got + n <= sizeof(out));
        memcpy(out + got, p, n);
        got += n;
        weft__ring_consume(&r, n);
    }
    assert_int_equal(got, 100);
    assert_memory_equal(in, out, 100);
    assert_int_equal(r.head, 0); /* empty rings restart at 0: the next push is contiguous */
    weft__ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tx_credit_follows_grants),
        cmocka_unit_test(chunks_are_bounded),
        cmocka_unit_test(sender_and_receiver_agree),
        cmocka_unit_test(receiver_refuses_overrun),
        cmocka_unit_test(ring_wraps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
