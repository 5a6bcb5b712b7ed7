/* Frame codec: round trips, every truncation, every malformed-input rule, the
 * encoder's limits, and the stream reader under every split of its input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"
#include "weft/errors.h"

#define T_PING    PR_TYPE(PR_FAM_CONTROL, 1)
/* Key numbers as registered in proto/msg.h; the codec itself gives keys no meaning. */
#define K_REQ_ID  0x0001
#define K_ERR_MSG 0x0003

/* Builds a frame by hand: fixed header, the given raw map, body_len 'b' bytes. */
static size_t raw_frame(uint8_t *out, const uint8_t *map, size_t map_len, size_t body_len)
{
    memcpy(out, "WFT", 3);
    out[3] = 1;
    out[4] = 0x01;
    out[5] = 0x02;
    out[6] = 0x80;
    out[7] = 0x01;
    out[8] = (uint8_t)(map_len >> 8);
    out[9] = (uint8_t)map_len;
    out[10] = out[11] = 0;
    out[12] = (uint8_t)(body_len >> 24);
    out[13] = (uint8_t)(body_len >> 16);
    out[14] = (uint8_t)(body_len >> 8);
    out[15] = (uint8_t)body_len;
    if (map_len)
        memcpy(out + 16, map, map_len);
    memset(out + 16 + map_len, 'b', body_len);
    return 16 + map_len + body_len;
}

/* Appends one raw header entry to map at *off. */
static void raw_entry(uint8_t *map, size_t *off, uint16_t key, uint8_t type, const void *v,
                      uint16_t len)
{
    map[*off] = (uint8_t)(key >> 8);
    map[*off + 1] = (uint8_t)key;
    map[*off + 2] = type;
    map[*off + 3] = (uint8_t)(len >> 8);
    map[*off + 4] = (uint8_t)len;
    if (len)
        memcpy(map + *off + 5, v, len);
    *off += 5 + len;
}

static int decode_all(const uint8_t *buf, size_t len, pr_frame *f)
{
    size_t consumed = 0;
    int rc = pr_frame_decode(buf, len, f, &consumed);
    if (rc == 0)
        assert_int_equal(consumed, len);
    return rc;
}

/* A frame with one header of every type and a body. */
static size_t sample(uint8_t *buf, size_t cap)
{
    static const uint8_t blob[] = {0, 1, 2, 0xff};
    pr_enc e;
    size_t n = 0;

    pr_enc_init(&e, buf, cap, T_PING, 0x8001);
    pr_enc_u32(&e, K_REQ_ID, 0xdeadbeef);
    pr_enc_u64(&e, 0x0100, 0x0123456789abcdefULL);
    pr_enc_bytes(&e, 0x0101, blob, sizeof(blob));
    pr_enc_str(&e, K_ERR_MSG, "h\xc3\xa9llo world");
    pr_enc_bytes(&e, 0x0102, NULL, 0);
    pr_enc_str(&e, 0x0103, "");
    assert_int_equal(pr_enc_finish(&e, "payload", 7, &n), 0);
    return n;
}

static void round_trip_every_type(void **state)
{
    uint8_t buf[256];
    size_t n = sample(buf, sizeof(buf));
    pr_frame f;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *v;
    size_t vlen;
    char s[64];

    assert_int_equal(decode_all(buf, n, &f), 0);
    assert_int_equal(f.type, T_PING);
    assert_int_equal(PR_TYPE_FAMILY(f.type), PR_FAM_CONTROL);
    assert_int_equal(f.flags, 0x8001);
    assert_int_equal(f.nheaders, 6);
    assert_int_equal(pr_frame_u32(&f, K_REQ_ID, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(pr_frame_u64(&f, 0x0100, &u64), 0);
    assert_true(u64 == 0x0123456789abcdefULL);
    assert_int_equal(pr_frame_bytes(&f, 0x0101, &v, &vlen), 0);
    assert_int_equal(vlen, 4);
    assert_memory_equal(v, "\x00\x01\x02\xff", 4);
    assert_int_equal(pr_frame_str(&f, K_ERR_MSG, s, sizeof(s)), 0);
    assert_string_equal(s, "h\xc3\xa9llo world");
    assert_int_equal(pr_frame_bytes(&f, 0x0102, &v, &vlen), 0);
    assert_int_equal(vlen, 0);
    assert_int_equal(pr_frame_str(&f, 0x0103, s, sizeof(s)), 0);
    assert_string_equal(s, "");
    assert_int_equal(f.body_len, 7);
    assert_memory_equal(f.body, "payload", 7);
    /* Values point into the caller's buffer: the decoder copies nothing. */
    assert_true(f.body == buf + n - 7);
}

static void lookups_check_type_and_presence(void **state)
{
    uint8_t buf[256];
    size_t n = sample(buf, sizeof(buf));
    pr_frame f;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *v;
    size_t vlen;
    char s[64];

    assert_int_equal(decode_all(buf, n, &f), 0);
    assert_null(pr_frame_header(&f, 0x7777));
    assert_int_equal(pr_frame_u32(&f, 0x7777, &u32), WEFT_ENOTFOUND);
    assert_int_equal(pr_frame_u32(&f, 0x0100, &u32), WEFT_EPROTO);
    assert_int_equal(pr_frame_u64(&f, K_REQ_ID, &u64), WEFT_EPROTO);
    assert_int_equal(pr_frame_bytes(&f, K_ERR_MSG, &v, &vlen), WEFT_EPROTO);
    assert_int_equal(pr_frame_str(&f, 0x0101, s, sizeof(s)), WEFT_EPROTO);
    /* "héllo world" is 12 bytes: 12 is one short of room for the NUL. */
    assert_int_equal(pr_frame_str(&f, K_ERR_MSG, s, 12), WEFT_ETOOBIG);
    assert_int_equal(pr_frame_str(&f, K_ERR_MSG, s, 13), 0);
}

static void every_truncation_needs_more_data(void **state)
{
    uint8_t buf[256];
    size_t n = sample(buf, sizeof(buf));
    pr_frame f;
    size_t consumed, frame_len;

    for (size_t i = 0; i < n; i++)
        assert_int_equal(pr_frame_decode(buf, i, &f, &consumed), WEFT_EAGAIN);
    for (size_t i = 0; i < PR_FRAME_FIXED; i++)
        assert_int_equal(pr_frame_peek(buf, i, &frame_len), WEFT_EAGAIN);
    assert_int_equal(pr_frame_peek(buf, PR_FRAME_FIXED, &frame_len), 0);
    assert_int_equal(frame_len, n);
    /* Trailing bytes belong to the next frame and are not consumed. */
    assert_int_equal(pr_frame_decode(buf, sizeof(buf), &f, &consumed), 0);
    assert_int_equal(consumed, n);
}

static void empty_frame(void **state)
{
    uint8_t buf[PR_FRAME_FIXED];
    pr_enc e;
    pr_frame f;
    size_t n;

    pr_enc_init(&e, buf, sizeof(buf), 0, 0);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    assert_int_equal(n, PR_FRAME_FIXED);
    assert_int_equal(decode_all(buf, n, &f), 0);
    assert_int_equal(f.nheaders, 0);
    assert_int_equal(f.body_len, 0);
}

/* The example in proto/PROTOCOL.md section 2.4, byte for byte. */
static void spec_example(void **state)
{
    static const uint8_t want[] = {
        0x57, 0x46, 0x54, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
    };
    uint8_t buf[64];
    pr_enc e;
    size_t n;

    pr_enc_init(&e, buf, sizeof(buf), PR_TYPE(PR_FAM_CONTROL, 0x07), 0);
    pr_enc_u32(&e, K_REQ_ID, 7);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void fixed_header_errors(void **state)
{
    uint8_t buf[64];
    size_t n = raw_frame(buf, NULL, 0, 4), frame_len;
    pr_frame f;

    assert_int_equal(decode_all(buf, n, &f), 0);
    buf[0] = 'X';
    assert_int_equal(decode_all(buf, n, &f), WEFT_EMAGIC);
    buf[0] = 'W';
    buf[2] = 't';
    assert_int_equal(decode_all(buf, n, &f), WEFT_EMAGIC);
    buf[2] = 'T';
    buf[3] = 2;
    assert_int_equal(decode_all(buf, n, &f), WEFT_EVERSION);
    buf[3] = 0;
    assert_int_equal(decode_all(buf, n, &f), WEFT_EVERSION);
    buf[3] = 1;
    buf[11] = 1;
    assert_int_equal(decode_all(buf, n, &f), WEFT_EPROTO);
    assert_int_equal(pr_frame_peek(buf, n, &frame_len), WEFT_EPROTO);
    buf[11] = 0;
    buf[10] = 0x80;
    assert_int_equal(decode_all(buf, n, &f), WEFT_EPROTO);
}

static void oversize_refused_from_fixed_header(void **state)
{
    uint8_t buf[PR_FRAME_FIXED];
    size_t frame_len;
    pr_frame f;
    size_t consumed;

    /* Only the 16 fixed bytes exist: the sizes alone must refuse the frame. */
    raw_frame(buf, NULL, 0, 0);
    buf[8] = (PR_FRAME_MAX_HDR_LEN + 1) >> 8;
    buf[9] = (PR_FRAME_MAX_HDR_LEN + 1) & 0xff;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), WEFT_ETOOBIG);
    assert_int_equal(pr_frame_decode(buf, sizeof(buf), &f, &consumed), WEFT_ETOOBIG);
    buf[8] = buf[9] = 0xff;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), WEFT_ETOOBIG);

    raw_frame(buf, NULL, 0, 0);
    buf[12] = 0;
    buf[13] = (PR_FRAME_MAX_BODY + 1) >> 16;
    buf[14] = ((PR_FRAME_MAX_BODY + 1) >> 8) & 0xff;
    buf[15] = (PR_FRAME_MAX_BODY + 1) & 0xff;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), WEFT_ETOOBIG);
    buf[12] = buf[13] = buf[14] = buf[15] = 0xff;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), WEFT_ETOOBIG);
    /* The size check comes before the reserved-field check. */
    buf[11] = 1;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), WEFT_ETOOBIG);

    /* Exactly at the limits is fine. */
    raw_frame(buf, NULL, 0, 0);
    buf[8] = PR_FRAME_MAX_HDR_LEN >> 8;
    buf[9] = PR_FRAME_MAX_HDR_LEN & 0xff;
    buf[13] = PR_FRAME_MAX_BODY >> 16;
    buf[14] = (PR_FRAME_MAX_BODY >> 8) & 0xff;
    buf[15] = PR_FRAME_MAX_BODY & 0xff;
    assert_int_equal(pr_frame_peek(buf, sizeof(buf), &frame_len), 0);
    assert_int_equal(frame_len, PR_FRAME_MAX);
}

/* Decodes a frame whose map is (map, len) and returns the result. */
static int decode_map(const uint8_t *map, size_t len)
{
    static uint8_t buf[PR_FRAME_FIXED + PR_FRAME_MAX_HDR_LEN + 8];
    pr_frame f;
    size_t n = raw_frame(buf, map, len, 3);
    return decode_all(buf, n, &f);
}

static void header_entry_errors(void **state)
{
    uint8_t map[512];
    size_t off;
    static const uint8_t zeros[16];

    off = 0;
    raw_entry(map, &off, 1, PR_HT_U32, zeros, 4);
    assert_int_equal(decode_map(map, off), 0);
    /* The entry's value runs past hdr_len. */
    assert_int_equal(decode_map(map, off - 1), WEFT_EPROTO);
    /* Leftover bytes too short for an entry. */
    for (size_t k = 1; k < 5; k++)
        assert_int_equal(decode_map(map, off + k), WEFT_EPROTO);

    off = 0;
    raw_entry(map, &off, 1, PR_HT_U32, zeros, 3);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 1, PR_HT_U32, zeros, 8);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 1, PR_HT_U64, zeros, 7);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 1, PR_HT_U64, zeros, 9);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 1, 0, zeros, 0);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 1, 5, zeros, 0);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
    off = 0;
    raw_entry(map, &off, 0, PR_HT_BYTES, zeros, 0);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
}

static void str_values_must_be_text(void **state)
{
    static const char *const bad[] = {
        "a\0b",
        "\xff",
        "\xc3",
        "\xc0\xaf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80",
    };
    static const size_t bad_len[] = {3, 1, 1, 2, 3, 3, 4, 5};
    uint8_t map[64];
    size_t off;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        off = 0;
        raw_entry(map, &off, 9, PR_HT_STR, bad[i], (uint16_t)bad_len[i]);
        assert_int_equal(decode_map(map, off), WEFT_EPROTO);
        /* The same bytes are fine as BYTES. */
        off = 0;
        raw_entry(map, &off, 9, PR_HT_BYTES, bad[i], (uint16_t)bad_len[i]);
        assert_int_equal(decode_map(map, off), 0);
    }
    off = 0;
    raw_entry(map, &off, 9, PR_HT_STR, "\xf0\x9f\x98\x80 \xe2\x82\xac", 8);
    assert_int_equal(decode_map(map, off), 0);
}

static void duplicate_keys_and_entry_count(void **state)
{
    uint8_t map[512];
    size_t off = 0;

    raw_entry(map, &off, 7, PR_HT_BYTES, "x", 1);
    raw_entry(map, &off, 8, PR_HT_BYTES, "x", 1);
    raw_entry(map, &off, 7, PR_HT_STR, "y", 1);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);

    off = 0;
    for (uint16_t k = 1; k <= PR_FRAME_MAX_HEADERS; k++)
        raw_entry(map, &off, k, PR_HT_BYTES, NULL, 0);
    assert_int_equal(decode_map(map, off), 0);
    raw_entry(map, &off, PR_FRAME_MAX_HEADERS + 1, PR_HT_BYTES, NULL, 0);
    assert_int_equal(decode_map(map, off), WEFT_EPROTO);
}

static void malformed_map_refused_before_body_arrives(void **state)
{
    uint8_t buf[128], map[32];
    size_t off = 0, consumed;
    pr_frame f;

    raw_entry(map, &off, 7, PR_HT_BYTES, "x", 1);
    raw_entry(map, &off, 7, PR_HT_BYTES, "y", 1);
    raw_frame(buf, map, off, 50);
    /* The whole map but none of the body: the duplicate is already visible. */
    assert_int_equal(pr_frame_decode(buf, 16 + off, &f, &consumed), WEFT_EPROTO);
    /* One byte short of the second entry's value: not yet. */
    assert_int_equal(pr_frame_decode(buf, 16 + off - 1, &f, &consumed), WEFT_EAGAIN);
}

static void encoder_limits(void **state)
{
    static uint8_t big[PR_FRAME_MAX + 16];
    uint8_t small[40];
    pr_enc e;
    size_t n;
    pr_frame f;

    pr_enc_init(&e, small, PR_FRAME_FIXED - 1, 1, 0);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_ETOOBIG);

    /* Overflow is sticky: a later header that would fit does not clear it. */
    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_bytes(&e, 0x10, big, 30);
    pr_enc_u32(&e, 0x11, 1);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_ETOOBIG);

    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_u32(&e, 0x10, 1);
    assert_int_equal(pr_enc_finish(&e, big, sizeof(small) - 16 - 9 + 1, &n), WEFT_ETOOBIG);
    assert_int_equal(pr_enc_finish(&e, big, 1, &n), WEFT_ETOOBIG); /* still sticky */

    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_u32(&e, 0x10, 1);
    assert_int_equal(pr_enc_finish(&e, big, sizeof(small) - 16 - 9, &n), 0);
    assert_int_equal(n, sizeof(small));

    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_u32(&e, 0x10, 1);
    pr_enc_u32(&e, 0x10, 2);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_EINVAL);

    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_u32(&e, 0, 1);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_EINVAL);

    pr_enc_init(&e, small, sizeof(small), 1, 0);
    pr_enc_str(&e, 0x10, "\xc3(");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_EINVAL);

    pr_enc_init(&e, big, sizeof(big), 1, 0);
    for (uint16_t k = 1; k <= PR_FRAME_MAX_HEADERS + 1; k++)
        pr_enc_u32(&e, k, k);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_ETOOBIG);

    pr_enc_init(&e, big, sizeof(big), 1, 0);
    pr_enc_bytes(&e, 1, big, PR_FRAME_MAX_HDR_LEN - 5 + 1);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), WEFT_ETOOBIG);

    pr_enc_init(&e, big, sizeof(big), 1, 0);
    assert_int_equal(pr_enc_finish(&e, big, PR_FRAME_MAX_BODY + 1, &n), WEFT_ETOOBIG);

    /* The largest frame the limits allow encodes and decodes. */
    static uint8_t payload[PR_FRAME_MAX_BODY];
    memset(payload, 0x5a, sizeof(payload));
    pr_enc_init(&e, big, sizeof(big), 1, 0);
    pr_enc_bytes(&e, 1, payload, PR_FRAME_MAX_HDR_LEN - 5);
    assert_int_equal(pr_enc_finish(&e, payload, sizeof(payload), &n), 0);
    assert_int_equal(n, PR_FRAME_MAX);
    assert_int_equal(decode_all(big, n, &f), 0);
    assert_int_equal(f.body_len, PR_FRAME_MAX_BODY);
}

/* ---- reader ---- */

struct sink {
    unsigned frames;
    uint32_t ids[16];
    size_t body_len[16];
    int stop_after; /* return 99 after this many frames; 0 = never */
};

static int on_frame(void *arg, const pr_frame *f)
{
    struct sink *s = arg;
    uint32_t id = 0;

    assert_int_equal(pr_frame_u32(f, K_REQ_ID, &id), 0);
    for (uint32_t i = 0; i < f->body_len; i++)
        assert_int_equal(f->body[i], (uint8_t)(id + i));
    if (s->frames < 16) {
        s->ids[s->frames] = id;
        s->body_len[s->frames] = f->body_len;
    }
    s->frames++;
    if (s->stop_after && s->frames == (unsigned)s->stop_after)
        return 99;
    return 0;
}

/* Writes nframes frames of growing size into buf; returns total length. */
static size_t stream(uint8_t *buf, size_t cap, unsigned nframes)
{
    uint8_t body[2048];
    size_t len = 0;

    for (unsigned i = 0; i < nframes; i++) {
        pr_enc e;
        size_t n, blen = i * 97;
        for (size_t j = 0; j < blen; j++)
            body[j] = (uint8_t)(i + 1 + j);
        pr_enc_init(&e, buf + len, cap - len, PR_TYPE(PR_FAM_PAYLOAD, 1), 0);
        pr_enc_u32(&e, K_REQ_ID, i + 1);
        if (i % 2)
            pr_enc_str(&e, K_ERR_MSG, "odd");
        assert_int_equal(pr_enc_finish(&e, body, blen, &n), 0);
        len += n;
    }
    return len;
}

static void check_sink(const struct sink *s, unsigned nframes)
{
    assert_int_equal(s->frames, nframes);
    for (unsigned i = 0; i < nframes; i++) {
        assert_int_equal(s->ids[i], i + 1);
        assert_int_equal(s->body_len[i], i * 97);
    }
}

static void reader_one_byte_at_a_time(void **state)
{
    static uint8_t buf[16384];
    size_t len = stream(buf, sizeof(buf), 8);
    pr_reader r;
    struct sink s = {0};

    assert_int_equal(pr_reader_init(&r), 0);
    assert_int_equal(r.cap, PR_FRAME_MAX);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(pr_reader_feed(&r, buf + i, 1, on_frame, &s), 0);
    check_sink(&s, 8);
    assert_int_equal(r.len, 0);
    pr_reader_free(&r);
}

static void reader_every_split_point(void **state)
{
    static uint8_t buf[16384];
    size_t len = stream(buf, sizeof(buf), 5);

    /* Two feeds split at each byte, then three feeds split at a stride. */
    for (size_t cut = 0; cut <= len; cut++) {
        pr_reader r;
        struct sink s = {0};
        assert_int_equal(pr_reader_init(&r), 0);
        assert_int_equal(pr_reader_feed(&r, buf, cut, on_frame, &s), 0);
        assert_int_equal(pr_reader_feed(&r, buf + cut, len - cut, on_frame, &s), 0);
        check_sink(&s, 5);
        pr_reader_free(&r);
    }
    for (size_t a = 0; a <= len; a += 13) {
        for (size_t b = a; b <= len; b += 29) {
            pr_reader r;
            struct sink s = {0};
            assert_int_equal(pr_reader_init(&r), 0);
            assert_int_equal(pr_reader_feed(&r, buf, a, on_frame, &s), 0);
            assert_int_equal(pr_reader_feed(&r, buf + a, b - a, on_frame, &s), 0);
            assert_int_equal(pr_reader_feed(&r, buf + b, len - b, on_frame, &s), 0);
            check_sink(&s, 5);
            pr_reader_free(&r);
        }
    }
}

static void reader_many_frames_one_feed(void **state)
{
    static uint8_t buf[16384];
    size_t len = stream(buf, sizeof(buf), 12);
    pr_reader r;
    struct sink s = {0};

    assert_int_equal(pr_reader_init(&r), 0);
    assert_int_equal(pr_reader_feed(&r, buf, len, on_frame, &s), 0);
    check_sink(&s, 12);
    assert_int_equal(pr_reader_feed(&r, NULL, 0, on_frame, &s), 0);
    pr_reader_free(&r);
}

static void reader_errors_are_sticky(void **state)
{
    static uint8_t buf[16384];
    size_t len = stream(buf, sizeof(buf), 3), first;
    pr_reader r;
    struct sink s = {0};
    size_t frame_len;

    assert_int_equal(pr_frame_peek(buf, len, &frame_len), 0);
    first = frame_len;
    /* Corrupt the second frame's magic. */
    buf[first] = 'Z';
    assert_int_equal(pr_reader_init(&r), 0);
    assert_int_equal(pr_reader_feed(&r, buf, first + 8, on_frame, &s), 0);
    assert_int_equal(s.frames, 1);
    assert_int_equal(pr_reader_feed(&r, buf + first + 8, len - first - 8, on_frame, &s),
                     WEFT_EMAGIC);
    assert_int_equal(pr_reader_feed(&r, buf, first, on_frame, &s), WEFT_EMAGIC);
    assert_int_equal(s.frames, 1);
    pr_reader_free(&r);
    pr_reader_free(&r); /* idempotent */
}

static void reader_callback_stops_it(void **state)
{
    static uint8_t buf[16384];
    size_t len = stream(buf, sizeof(buf), 6);
    pr_reader r;
    struct sink s = {.stop_after = 2};

    assert_int_equal(pr_reader_init(&r), 0);
    assert_int_equal(pr_reader_feed(&r, buf, len, on_frame, &s), 99);
    assert_int_equal(s.frames, 2);
    assert_int_equal(pr_reader_feed(&r, buf, len, on_frame, &s), 99);
    assert_int_equal(s.frames, 2);
    pr_reader_free(&r);
}

static void reader_refuses_oversize_after_fixed_header(void **state)
{
    uint8_t hdr[PR_FRAME_FIXED];
    pr_reader r;
    struct sink s = {0};

    raw_frame(hdr, NULL, 0, 0);
    hdr[12] = 0x7f; /* a 2 GiB body */
    assert_int_equal(pr_reader_init(&r), 0);
    assert_int_equal(pr_reader_feed(&r, hdr, PR_FRAME_FIXED - 1, on_frame, &s), 0);
    assert_int_equal(pr_reader_feed(&r, hdr + PR_FRAME_FIXED - 1, 1, on_frame, &s), WEFT_ETOOBIG);
    pr_reader_free(&r);
}

static int count_big(void *arg, const pr_frame *f)
{
    unsigned *n = arg;
    assert_int_equal(f->body_len, PR_FRAME_MAX_BODY);
    (*n)++;
    return 0;
}

static void reader_largest_frames_in_chunks(void **state)
{
    static uint8_t buf[3 * PR_FRAME_MAX];
    static uint8_t payload[PR_FRAME_MAX_BODY];
    size_t len = 0;
    unsigned got = 0;
    pr_reader r;

    for (int i = 0; i < 3; i++) {
        pr_enc e;
        size_t n;
        pr_enc_init(&e, buf + len, sizeof(buf) - len, 1, 0);
        pr_enc_bytes(&e, 1, payload, PR_FRAME_MAX_HDR_LEN - 5);
        assert_int_equal(pr_enc_finish(&e, payload, sizeof(payload), &n), 0);
        len += n;
    }
    assert_int_equal(len, sizeof(buf));
    assert_int_equal(pr_reader_init(&r), 0);
    /* Chunks larger than one frame, not aligned to frames: the buffer fills
     * completely before a frame is delivered. */
    for (size_t off = 0; off < len; off += 50000) {
        size_t n = len - off < 50000 ? len - off : 50000;
        assert_int_equal(pr_reader_feed(&r, buf + off, n, count_big, &got), 0);
    }
    assert_int_equal(got, 3);
    pr_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(lookups_check_type_and_presence),
        cmocka_unit_test(every_truncation_needs_more_data),
        cmocka_unit_test(empty_frame),
        cmocka_unit_test(spec_example),
        cmocka_unit_test(fixed_header_errors),
        cmocka_unit_test(oversize_refused_from_fixed_header),
        cmocka_unit_test(header_entry_errors),
        cmocka_unit_test(str_values_must_be_text),
        cmocka_unit_test(duplicate_keys_and_entry_count),
        cmocka_unit_test(malformed_map_refused_before_body_arrives),
        cmocka_unit_test(encoder_limits),
        cmocka_unit_test(reader_one_byte_at_a_time),
        cmocka_unit_test(reader_every_split_point),
        cmocka_unit_test(reader_many_frames_one_feed),
        cmocka_unit_test(reader_errors_are_sticky),
        cmocka_unit_test(reader_callback_stops_it),
        cmocka_unit_test(reader_refuses_oversize_after_fixed_header),
        cmocka_unit_test(reader_largest_frames_in_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
