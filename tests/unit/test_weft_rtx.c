/* The retransmission queue and the reorder buffer of a circuit
 * (edge/lib/rtx.c), alone: frames stay contiguous and in seq order, acks
 * release them, a full queue says so, and the reorder buffer hands frames
 * back in seq order whatever order they came in, each once. Both grow on
 * demand, are released once quiet and empty, and keep every frame when an
 * allocation fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "edge/lib/rtx.h"
#include "tests/unit/fail_alloc.h"
#include "weft/errors.h"

static uint8_t *reserve(weft_rtxq *q, size_t len)
{
    uint8_t *p = NULL;

    return weft__rtxq_reserve(q, len, &p) == 0 ? p : NULL;
}

static void put_frame(weft_rtxq *q, uint64_t seq, size_t len)
{
    uint8_t *p = reserve(q, len);

    assert_non_null(p);
    memset(p, (int)(seq & 0xff), len);
    weft__rtxq_commit(q, seq, len);
}

static void check_frames(const weft_rtxq *q, uint64_t first)
{
    for (unsigned i = 0; i < q->n; i++) {
        const weft_rtx_ent *e = weft__rtxq_at(q, i);
        assert_int_equal(e->seq, first + i);
        assert_true(e->off + e->len <= q->cap);
        for (size_t k = 0; k < e->len; k++)
            assert_int_equal(q->buf[e->off + k], (uint8_t)(e->seq & 0xff));
    }
}

static void rtxq_keeps_frames_until_acked(void **state)
{
    weft_rtxq q;

    weft__rtxq_init(&q, 1000);
    for (uint64_t s = 0; s < 3; s++)
        put_frame(&q, s, 300);
    /* 100 bytes left at the end, and nothing free before the head. */
    assert_null(reserve(&q, 200));
    weft__rtxq_ack(&q, 0);
    assert_int_equal(q.n, 2);
    /* Wraps to the start: 300 bytes free there, but the tail may not meet the head. */
    assert_null(reserve(&q, 300));
    put_frame(&q, 3, 250);
    assert_int_equal(weft__rtxq_at(&q, 2)->off, 0);
    check_frames(&q, 1);
    weft__rtxq_ack(&q, 2);
    check_frames(&q, 3);
    assert_int_equal(q.n, 1);
    /* An ack below the oldest changes nothing; one above everything empties it. */
    weft__rtxq_ack(&q, 1);
    assert_int_equal(q.n, 1);
    weft__rtxq_ack(&q, 100);
    assert_int_equal(q.n, 0);
    /* Empty: a frame as large as the buffer fits. */
    put_frame(&q, 4, 1000);
    assert_null(reserve(&q, 1));
    weft__rtxq_free(&q);
}

static void rtxq_bounded_in_frames(void **state)
{
    weft_rtxq q;

    weft__rtxq_init(&q, weft__rtxq_cap_for(512 * 1024));
    for (uint64_t s = 0; s < WEFT_RTX_FRAMES; s++)
        put_frame(&q, s, 10);
    assert_null(reserve(&q, 10));
    weft__rtxq_drop_oldest(&q);
    put_frame(&q, WEFT_RTX_FRAMES, 10);
    check_frames(&q, 1);
    weft__rtxq_free(&q);
}

/* A window of plaintext in full-size frames, with a ring that wraps many
 * times, always fits the capacity computed for it. */
static void rtxq_holds_a_window(void **state)
{
    const uint64_t window = 512 * 1024;
    const size_t frame = WEFT_PAYLOAD_HDR_MAX + 65536 + 17;
    weft_rtxq q;
    uint64_t seq = 0, acked = 0;

    weft__rtxq_init(&q, weft__rtxq_cap_for(window));
    for (int round = 0; round < 100; round++) {
        while ((seq - acked) * 65536 < window)
            put_frame(&q, seq++, frame);
        weft__rtxq_ack(&q, acked + 2);
        acked += 3;
        check_frames(&q, acked);
    }
    weft__rtxq_free(&q);
}

static void trims(weft_rtxq *q, int n)
{
    while (n-- > 0)
        weft__rtxq_trim(q);
}

/* Nothing is allocated before the first frame; the buffer doubles as frames
 * need it, up to its max, and a quiet queue is released once everything is
 * acknowledged. */
static void rtxq_grows_and_is_released(void **state)
{
    weft_rtxq q;
    uint64_t s;

    weft__rtxq_init(&q, weft__rtxq_cap_for(512 * 1024));
    assert_null(q.buf);
    assert_null(q.ent);
    weft__rtxq_trim(&q);
    put_frame(&q, 0, 40);
    assert_int_equal(q.cap, WEFT_BUF_MIN);
    assert_non_null(q.ent);
    for (s = 1; s < 40; s++)
        put_frame(&q, s, 1000);
    assert_int_equal(q.cap, 64 * 1024);
    check_frames(&q, 0);
    /* A full-size frame doubles again, or more. */
    put_frame(&q, 40, WEFT_PAYLOAD_HDR_MAX + 65536 + 17);
    assert_int_equal(q.cap, 128 * 1024);
    check_frames(&q, 0);
    /* Something left unacknowledged: kept, even when quiet. */
    weft__rtxq_ack(&q, 39);
    trims(&q, WEFT_BUF_QUIET - 1);
    weft__rtxq_ack(&q, 40);
    assert_non_null(q.buf);
    weft__rtxq_trim(&q);
    assert_null(q.buf);
    assert_null(q.ent);
    assert_int_equal(q.cap, 0);
    /* And used again from nothing. */
    put_frame(&q, 41, 100);
    assert_int_equal(q.cap, WEFT_BUF_MIN);
    check_frames(&q, 41);
    /* A commit resets the count: a busy queue keeps its buffer. */
    weft__rtxq_ack(&q, 41);
    trims(&q, WEFT_BUF_QUIET - 1);
    put_frame(&q, 42, 100);
    weft__rtxq_ack(&q, 42);
    trims(&q, WEFT_BUF_QUIET - 1);
    assert_non_null(q.buf);
    /* Never past max, even for one frame. */
    assert_null(reserve(&q, q.max + 1));
    weft__rtxq_free(&q);
}

/* Growing while the frames wrap lays them out again from 0, in seq order. */
static void rtxq_grows_at_wrap(void **state)
{
    weft_rtxq q;

    weft__rtxq_init(&q, 1 << 20);
    for (uint64_t s = 0; s < 4; s++)
        put_frame(&q, s, 1000); /* 0 .. 4000 of 4096 */
    weft__rtxq_ack(&q, 1);
    put_frame(&q, 4, 1000); /* does not fit at the end: at 0 */
    assert_int_equal(weft__rtxq_at(&q, 2)->off, 0);
    assert_int_equal(q.cap, 4096);
    put_frame(&q, 5, 1500); /* 1000 free between tail and head: grows */
    assert_int_equal(q.cap, 8192);
    for (unsigned i = 0; i < q.n; i++)
        assert_int_equal(weft__rtxq_at(&q, i)->off, i * 1000);
    check_frames(&q, 2);
    weft__rtxq_free(&q);
}

/* The entries grow the same way: with the ring of entries wrapped, twice as
 * many, in seq order from 0. */
static void rtxq_entries_grow_at_wrap(void **state)
{
    weft_rtxq q;
    uint64_t s;

    weft__rtxq_init(&q, 1 << 20);
    for (s = 0; s < WEFT_RTX_ENT_MIN; s++)
        put_frame(&q, s, 10);
    assert_int_equal(q.nent, WEFT_RTX_ENT_MIN);
    weft__rtxq_ack(&q, 9);
    for (; s < WEFT_RTX_ENT_MIN + 10; s++)
        put_frame(&q, s, 10);
    assert_int_equal(q.nent, WEFT_RTX_ENT_MIN);
    assert_int_equal(q.first, 10);
    put_frame(&q, s, 10);
    assert_int_equal(q.nent, 2 * WEFT_RTX_ENT_MIN);
    assert_int_equal(q.first, 0);
    check_frames(&q, 10);
    weft__rtxq_free(&q);
}

/* A quiet queue holding little shrinks, its frames in place and in order;
 * one holding more than a quarter keeps its size. */
static void rtxq_shrinks_with_frames(void **state)
{
    weft_rtxq q;
    uint64_t s;

    weft__rtxq_init(&q, 1 << 20);
    for (s = 0; s < 64; s++)
        put_frame(&q, s, 4000);
    assert_int_equal(q.cap, 256 * 1024);
    weft__rtxq_ack(&q, 59); /* 4 frames left, at the end of the buffer */
    put_frame(&q, 64, 4000);
    trims(&q, WEFT_BUF_QUIET);
    assert_int_equal(q.cap, 64 * 1024); /* twice the 20,000 held, rounded up */
    check_frames(&q, 60);
    trims(&q, WEFT_BUF_QUIET);
    assert_int_equal(q.cap, 64 * 1024);
    put_frame(&q, 65, 4000);
    check_frames(&q, 60);
    weft__rtxq_free(&q);
}

/* Failed allocations: the queue is as it was, the caller hears
 * WEFT_ENOMEM (not "full", which would make it wait for an ack), and the
 * next try works. */
static void rtxq_survives_failed_allocations(void **state)
{
    weft_rtxq q;
    uint8_t *p = NULL;

    weft__rtxq_init(&q, 1 << 20);
    fail_next(0, 1); /* the entries */
    assert_int_equal(weft__rtxq_reserve(&q, 100, &p), WEFT_ENOMEM);
    assert_null(q.ent);
    fail_next(1, 1); /* the bytes */
    assert_int_equal(weft__rtxq_reserve(&q, 100, &p), WEFT_ENOMEM);
    assert_null(q.buf);
    assert_int_equal(q.n, 0);
    put_frame(&q, 0, 3000);
    put_frame(&q, 1, 1000);
    fail_next(0, 1); /* the growth */
    assert_int_equal(weft__rtxq_reserve(&q, 2000, &p), WEFT_ENOMEM);
    assert_int_equal(q.cap, 4096);
    check_frames(&q, 0);
    put_frame(&q, 2, 2000);
    check_frames(&q, 0);
    weft__rtxq_ack(&q, 1); /* 2,000 bytes held in 8 KiB */
    fail_next(0, 1);
    trims(&q, WEFT_BUF_QUIET);
    assert_int_equal(q.cap, 8192); /* the shrink failed: kept */
    check_frames(&q, 2);
    weft__rtxq_trim(&q);
    assert_int_equal(q.cap, 4096);
    check_frames(&q, 2);
    assert_int_equal(fail_allocs, 0);
    weft__rtxq_free(&q);
}

static int take(weft_reorder *r, uint64_t seq, uint8_t *first)
{
    const uint8_t *body;
    uint16_t flags;
    size_t len;

    if (!weft__reorder_take(r, seq, &flags, &body, &len))
        return 0;
    assert_int_equal(flags, (uint16_t)seq);
    assert_int_equal(len, 100 + seq);
    *first = body[0];
    weft__reorder_release(r, seq);
    return 1;
}

/* Frames 1..7 arrive as 3 5 3 7 6 2 4 (after 0, taken in order): the
 * receiver takes each next seq itself and drains what waits behind it. */
static void reorder_hands_back_in_order(void **state)
{
    const uint64_t order[] = {3, 5, 3, 7, 6, 1, 2, 4};
    uint8_t frame[300], b, got[16];
    weft_reorder r;
    uint64_t next = 1;
    size_t ngot = 0;
    int rc;

    weft__reorder_init(&r, 2000);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        uint64_t s = order[i];

        memset(frame, (int)s, sizeof(frame));
        rc = weft__reorder_put(&r, next, s, (uint16_t)s, frame, 100 + s);
        if (s != next) {
            assert_int_equal(rc, i == 2 ? 1 : 0); /* the second 3 is a duplicate */
            continue;
        }
        assert_int_equal(rc, WEFT_ENOBUFS); /* not for the buffer: it is the next one */
        got[ngot++] = (uint8_t)next++;
        while (take(&r, next, &b)) {
            assert_int_equal(b, (uint8_t)next);
            got[ngot++] = (uint8_t)next++;
        }
    }
    assert_int_equal(ngot, 7);
    for (size_t i = 0; i < ngot; i++)
        assert_int_equal(got[i], i + 1);
    assert_int_equal(r.n, 0);
    /* Out of range: behind, at, or too far ahead of the next seq. */
    assert_int_equal(weft__reorder_put(&r, 10, 9, 0, frame, 1), WEFT_ENOBUFS);
    assert_int_equal(weft__reorder_put(&r, 10, 10, 0, frame, 1), WEFT_ENOBUFS);
    assert_int_equal(weft__reorder_put(&r, 10, 10 + WEFT_REORDER_SLOTS, 0, frame, 1), WEFT_ENOBUFS);
    /* No room left: refused, to come again. */
    assert_int_equal(weft__reorder_put(&r, 10, 11, 11, frame, 300), 0);
    assert_int_equal(weft__reorder_put(&r, 10, 12, 12, frame, 2000), WEFT_ENOBUFS);
    weft__reorder_free(&r);
}

static void reorder_compacts(void **state)
{
    uint8_t frame[400], b;
    weft_reorder r;

    weft__reorder_init(&r, 1000);
    memset(frame, 2, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 0, 2, 2, frame, 102), 0);
    memset(frame, 3, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 0, 3, 3, frame, 103), 0);
    memset(frame, 4, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 0, 4, 4, frame, 104), 0);
    /* 2 leaves a hole at the start; 5 needs it. */
    assert_true(take(&r, 2, &b));
    assert_int_equal(b, 2);
    memset(frame, 9, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 1, 9, 9, frame, 109), 0);
    memset(frame, 5, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 1, 5, 5, frame, 105), 0);
    memset(frame, 6, sizeof(frame));
    assert_int_equal(weft__reorder_put(&r, 1, 6, 6, frame, 106), 0);
    for (uint64_t s = 3; s <= 6; s++) {
        assert_true(take(&r, s, &b));
        assert_int_equal(b, (uint8_t)s);
    }
    assert_true(take(&r, 9, &b));
    assert_int_equal(b, 9);
    assert_int_equal(r.n, 0);
    weft__reorder_free(&r);
}

static int put_ooo(weft_reorder *r, uint64_t next, uint64_t seq, size_t len)
{
    static uint8_t frame[8192];

    assert_true(len <= sizeof(frame));
    memset(frame, (int)seq, len);
    return weft__reorder_put(r, next, seq, (uint16_t)seq, frame, len);
}

static void check_ooo(weft_reorder *r, uint64_t seq, size_t len)
{
    const uint8_t *body;
    uint16_t flags;
    size_t got;

    assert_true(weft__reorder_take(r, seq, &flags, &body, &got));
    assert_int_equal(flags, (uint16_t)seq);
    assert_int_equal(got, len);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(body[i], (uint8_t)seq);
}

/* The buffer comes with the first early frame, grows when compacting is not
 * enough, and goes once it is empty and quiet; frames held keep it. */
static void reorder_grows_and_is_released(void **state)
{
    weft_reorder r;
    uint64_t s;

    weft__reorder_init(&r, 1 << 20);
    weft__reorder_trim(&r);
    assert_null(r.buf);
    assert_false(weft__reorder_take(&r, 1, &(uint16_t){0}, &(const uint8_t *){NULL}, &(size_t){0}));
    weft__reorder_release(&r, 1); /* nothing held: harmless */
    assert_int_equal(put_ooo(&r, 0, 2, 1000), 0);
    assert_non_null(r.slot);
    assert_int_equal(r.cap, WEFT_BUF_MIN);
    for (s = 3; s < 7; s++)
        assert_int_equal(put_ooo(&r, 0, s, 1000), 0);
    assert_int_equal(r.cap, 8192);
    assert_int_equal(put_ooo(&r, 0, 7, 8000), 0); /* more than one doubling */
    assert_int_equal(r.cap, 16384);
    for (s = 2; s < 7; s++)
        check_ooo(&r, s, 1000);
    check_ooo(&r, 7, 8000);
    for (int i = 0; i < 2 * WEFT_BUF_QUIET; i++)
        weft__reorder_trim(&r);
    assert_non_null(r.buf); /* frames held */
    for (s = 2; s < 8; s++)
        weft__reorder_release(&r, s);
    assert_int_equal(r.n, 0);
    weft__reorder_trim(&r);
    assert_null(r.buf);
    assert_null(r.slot);
    assert_int_equal(put_ooo(&r, 10, 12, 100), 0);
    check_ooo(&r, 12, 100);
    weft__reorder_free(&r);
}

/* No memory for the first buffer: WEFT_ENOMEM (the circuit cannot reorder
 * at all); none for growing: the frame is dropped like one that does not
 * fit, and the frames held stay as they were. */
static void reorder_survives_failed_allocations(void **state)
{
    weft_reorder r;

    weft__reorder_init(&r, 1 << 20);
    fail_next(0, 1);
    assert_int_equal(put_ooo(&r, 0, 2, 100), WEFT_ENOMEM);
    fail_next(1, 1);
    assert_int_equal(put_ooo(&r, 0, 2, 100), WEFT_ENOMEM);
    assert_null(r.slot);
    assert_null(r.buf);
    assert_int_equal(put_ooo(&r, 0, 2, 3000), 0);
    fail_next(0, 1);
    assert_int_equal(put_ooo(&r, 0, 3, 3000), WEFT_ENOBUFS);
    assert_int_equal(r.n, 1);
    check_ooo(&r, 2, 3000);
    assert_int_equal(put_ooo(&r, 0, 3, 3000), 0);
    check_ooo(&r, 2, 3000);
    check_ooo(&r, 3, 3000);
    assert_int_equal(fail_allocs, 0);
    weft__reorder_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rtxq_keeps_frames_until_acked),
        cmocka_unit_test(rtxq_bounded_in_frames),
        cmocka_unit_test(rtxq_holds_a_window),
        cmocka_unit_test(reorder_hands_back_in_order),
        cmocka_unit_test(reorder_compacts),
        cmocka_unit_test(rtxq_grows_and_is_released),
        cmocka_unit_test(rtxq_grows_at_wrap),
        cmocka_unit_test(rtxq_entries_grow_at_wrap),
        cmocka_unit_test(rtxq_shrinks_with_frames),
        cmocka_unit_test(rtxq_survives_failed_allocations),
        cmocka_unit_test(reorder_grows_and_is_released),
        cmocka_unit_test(reorder_survives_failed_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
