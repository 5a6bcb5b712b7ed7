/* UDP datagrams in a circuit's byte stream (edge/udp_frame.c): boundaries
 * survive however the stream is cut, empty and maximum-size datagrams
 * included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge/udp_frame.h"

#define NMAX 16

typedef struct {
    size_t n;
    size_t len[NMAX];
    uint8_t *data[NMAX];
} got_t;

static void on_dgram(void *arg, const uint8_t *p, size_t n)
{
    got_t *g = arg;

    assert_true(g->n < NMAX);
    g->len[g->n] = n;
    g->data[g->n] = malloc(n + 1);
    assert_non_null(g->data[g->n]);
    if (n > 0)
        memcpy(g->data[g->n], p, n);
    g->n++;
}

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->data[i]);
    memset(g, 0, sizeof(*g));
}

/* Frames datagrams of the given sizes into one stream; returns its length. */
static size_t build(uint8_t *out, size_t cap, const size_t *sizes, size_t k)
{
    static uint8_t payload[EDGE_DGRAM_MAX];
    size_t off = 0, len;

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < k; i++) {
        len = edge_dgram_frame(out + off, cap - off, payload, sizes[i]);
        assert_int_equal(len, EDGE_DGRAM_HDR + sizes[i]);
        off += len;
    }
    return off;
}

static void check(const got_t *g, const size_t *sizes, size_t k)
{
    assert_int_equal(g->n, k);
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(g->len[i], sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(g->data[i][j], (uint8_t)(j * 7 + 3));
    }
}

static void test_frame_header(void **state)
{
    uint8_t out[8];
    (void)state;

    assert_int_equal(edge_dgram_frame(out, sizeof(out), (const uint8_t *)"abc", 3), 5);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 3);
    assert_memory_equal(out + 2, "abc", 3);
    assert_int_equal(edge_dgram_frame(out, sizeof(out), NULL, 0), 2);
    assert_int_equal(edge_dgram_frame(out, 4, (const uint8_t *)"abc", 3), 0); /* no room */
}

static void test_frame_too_big(void **state)
{
    static uint8_t big[EDGE_DGRAM_MAX + 1], out[EDGE_DGRAM_MAX + 8];
    (void)state;

    assert_int_equal(edge_dgram_frame(out, sizeof(out), big, sizeof(big)), 0);
    assert_int_equal(edge_dgram_frame(out, sizeof(out), big, EDGE_DGRAM_MAX),
                     EDGE_DGRAM_HDR + EDGE_DGRAM_MAX);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[1], 0xff);
}

/* The same stream fed whole, byte by byte and in odd-sized pieces. */
static void test_deframe_any_cut(void **state)
{
    static const size_t sizes[] = {5, 0, 1, 1000, EDGE_DGRAM_MAX, 2, 0};
    static const size_t steps[] = {0, 1, 2, 3, 7, 4096, 65537};
    static uint8_t stream[8 * (EDGE_DGRAM_MAX + 2)];
    static edge_deframer d;
    size_t k = sizeof(sizes) / sizeof(sizes[0]), len = build(stream, sizeof(stream), sizes, k);
    got_t g = {0};
    (void)state;

    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        memset(&d, 0, sizeof(d));
        size_t step = steps[s] ? steps[s] : len;
        for (size_t off = 0; off < len; off += step)
            edge_deframe(&d, stream + off, len - off < step ? len - off : step, on_dgram, &g);
        check(&g, sizes, k);
        assert_int_equal(d.have, 0);
        got_free(&g);
    }
}

static void test_deframe_partial_waits(void **state)
{
    static const size_t sizes[] = {10};
    static edge_deframer d;
    uint8_t stream[16];
    size_t len = build(stream, sizeof(stream), sizes, 1);
    got_t g = {0};
    (void)state;

    edge_deframe(&d, stream, 1, on_dgram, &g); /* half a header */
    edge_deframe(&d, stream + 1, len - 2, on_dgram, &g);
    assert_int_equal(g.n, 0);
    edge_deframe(&d, stream + len - 1, 1, on_dgram, &g);
    check(&g, sizes, 1);
    got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_frame_too_big),
        cmocka_unit_test(test_deframe_any_cut),
        cmocka_unit_test(test_deframe_partial_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
