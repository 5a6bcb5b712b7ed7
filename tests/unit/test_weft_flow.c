/* libweft flow control and buffers: credit accounting on both ends, grants at
 * half a window, chunking of writes into messages, and the byte ring, which
 * grows on demand, is released or shrunk once quiet, and survives failed
 * allocations with every byte in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge/lib/flow.h"
#include "tests/unit/fail_alloc.h"
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
    weft__ring_init(&r, 64);
    assert_int_equal(weft__ring_push(&r, in, 50), 0);
    assert_int_equal(r.cap, 64); /* below WEFT_BUF_MIN: the cap is max */
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

/* A byte stream whose every byte says where it is: lost, doubled or
 * reordered bytes show. */
typedef struct {
    uint64_t in, out;
} stream;

static void stream_push(weft_ring *r, stream *st, size_t n, int want)
{
    uint8_t b[20000];

    assert_true(n <= sizeof(b));
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((st->in + i) % 251);
    assert_int_equal(weft__ring_push(r, b, n), want);
    if (want == 0)
        st->in += n;
}

static void stream_take(weft_ring *r, stream *st, size_t n)
{
    const uint8_t *p;
    size_t k;

    while (n > 0 && (k = weft__ring_peek(r, &p)) > 0) {
        k = k < n ? k : n;
        for (size_t i = 0; i < k; i++)
            assert_int_equal(p[i], (uint8_t)((st->out + i) % 251));
        weft__ring_consume(r, k);
        st->out += k;
        n -= k;
    }
    assert_int_equal(r->len, st->in - st->out);
}

static void trims(weft_ring *r, int n)
{
    while (n-- > 0)
        weft__ring_trim(r);
}

/* Nothing is allocated until a byte is queued; the ring doubles from
 * WEFT_BUF_MIN and stops at its max, whatever max is. */
static void ring_grows_on_demand(void **state)
{
    const size_t max = 3 * WEFT_BUF_MIN; /* not a power of two */
    weft_ring r;
    stream st = {0};
    const uint8_t *p;

    weft__ring_init(&r, max);
    assert_null(r.buf);
    assert_int_equal(weft__ring_peek(&r, &p), 0);
    weft__ring_consume(&r, 10); /* nothing there: harmless */
    stream_push(&r, &st, 0, 0);
    assert_null(r.buf); /* an empty write allocates nothing */
    stream_push(&r, &st, 1, 0);
    assert_int_equal(r.cap, WEFT_BUF_MIN);
    stream_push(&r, &st, WEFT_BUF_MIN, 0);
    assert_int_equal(r.cap, 2 * WEFT_BUF_MIN);
    stream_push(&r, &st, WEFT_BUF_MIN, 0);
    assert_int_equal(r.cap, max);
    stream_push(&r, &st, max - r.len + 1, WEFT_ENOBUFS);
    stream_push(&r, &st, max - r.len, 0);
    assert_int_equal(r.len, max);
    stream_take(&r, &st, max);
    weft__ring_free(&r);
    assert_null(r.buf);
    assert_int_equal(r.max, max); /* free keeps the cap: the ring can be used again */
}

/* Growing a ring whose bytes wrap past its end keeps them in order. */
static void ring_grows_at_wrap(void **state)
{
    weft_ring r;
    stream st = {0};

    weft__ring_init(&r, 1 << 20);
    stream_push(&r, &st, 3000, 0);
    stream_take(&r, &st, 2000);
    stream_push(&r, &st, 2500, 0); /* 1096 bytes at the end, the rest from 0 */
    assert_int_equal(r.cap, 4096);
    assert_true(r.head + r.len > r.cap);
    stream_push(&r, &st, 1000, 0);
    assert_int_equal(r.cap, 8192);
    assert_int_equal(r.head, 0);    /* moved in order to the start of the new buffer */
    stream_push(&r, &st, 10000, 0); /* more than one doubling at once */
    assert_int_equal(r.cap, 16384);
    stream_take(&r, &st, SIZE_MAX);
    weft__ring_free(&r);
}

/* A trim releases an empty ring only after WEFT_BUF_QUIET trims without a
 * push; a quiet ring that holds a little shrinks, its bytes in order. */
static void ring_trims_when_quiet(void **state)
{
    weft_ring r;
    stream st = {0};

    weft__ring_init(&r, 1 << 20);
    weft__ring_trim(&r); /* nothing allocated: nothing to do */
    stream_push(&r, &st, 100, 0);
    stream_take(&r, &st, 100);
    trims(&r, WEFT_BUF_QUIET - 1);
    assert_non_null(r.buf); /* a busy circuit keeps its buffer */
    stream_push(&r, &st, 100, 0);
    trims(&r, WEFT_BUF_QUIET - 1);
    stream_take(&r, &st, 100);
    weft__ring_trim(&r);
    assert_null(r.buf);
    assert_int_equal(r.cap, 0);
    /* Grown to 64 KiB, then nearly drained, with the rest wrapping. */
    stream_push(&r, &st, 20000, 0);
    stream_push(&r, &st, 20000, 0);
    stream_push(&r, &st, 20000, 0);
    assert_int_equal(r.cap, 64 * 1024);
    stream_take(&r, &st, 55000);
    stream_push(&r, &st, 8000, 0); /* 5536 at the end, 2464 from 0 */
    assert_true(r.head + r.len > r.cap);
    trims(&r, WEFT_BUF_QUIET);
    assert_int_equal(r.len, 13000);
    assert_int_equal(r.cap, 32 * 1024); /* twice what it holds, rounded up */
    /* More than a quarter full: no shrink. */
    trims(&r, WEFT_BUF_QUIET);
    assert_int_equal(r.cap, 32 * 1024);
    stream_take(&r, &st, SIZE_MAX);
    weft__ring_free(&r);
}

/* Failed allocations leave the ring as it was: a refused push queues
 * nothing, a failed shrink keeps the old buffer, and the stream goes on. */
static void ring_survives_failed_allocations(void **state)
{
    weft_ring r;
    stream st = {0};

    weft__ring_init(&r, 1 << 20);
    fail_next(0, 1);
    stream_push(&r, &st, 10, WEFT_ENOMEM);
    assert_null(r.buf);
    assert_int_equal(weft__ring_reserve(&r, 10), 0);
    assert_int_equal(r.cap, WEFT_BUF_MIN);
    stream_push(&r, &st, 3000, 0);
    stream_take(&r, &st, 2000);
    stream_push(&r, &st, 2000, 0); /* wraps */
    fail_next(0, 1);
    stream_push(&r, &st, 5000, WEFT_ENOMEM); /* the growth fails */
    assert_int_equal(r.cap, 4096);
    assert_int_equal(weft__ring_reserve(&r, 1 << 20), WEFT_ENOBUFS);
    stream_push(&r, &st, 5000, 0);
    stream_push(&r, &st, 20000, 0);
    stream_take(&r, &st, 27000);
    fail_next(0, 1);
    trims(&r, WEFT_BUF_QUIET);
    assert_int_equal(r.cap, 32 * 1024); /* the shrink failed: kept */
    stream_take(&r, &st, SIZE_MAX);
    assert_int_equal(fail_allocs, 0);
    weft__ring_free(&r);
}

/* Random pushes, reads and trims over a long stream: every byte comes out
 * once and in order, and the ring never passes its max. */
static void ring_stream_in_order(void **state)
{
    const size_t max = 100000;
    uint32_t x = 12345;
    weft_ring r;
    stream st = {0};
    size_t n;

    weft__ring_init(&r, max);
    for (int i = 0; i < 20000; i++) {
        x = x * 1103515245 + 12345;
        n = (x >> 8) % 20000;
        if ((x >> 4) % 3 == 0)
            stream_push(&r, &st, n, n <= max - r.len ? 0 : WEFT_ENOBUFS);
        else if ((x >> 4) % 3 == 1)
            stream_take(&r, &st, n);
        else
            weft__ring_trim(&r);
        assert_true(r.cap <= max && r.len <= r.cap);
    }
    assert_true(st.in > 10 * max);
    stream_take(&r, &st, SIZE_MAX);
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
        cmocka_unit_test(ring_grows_on_demand),
        cmocka_unit_test(ring_grows_at_wrap),
        cmocka_unit_test(ring_trims_when_quiet),
        cmocka_unit_test(ring_survives_failed_allocations),
        cmocka_unit_test(ring_stream_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
