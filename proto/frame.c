/* The weft frame codec: strict decoder, encoder with sticky errors, and the
 * stream reader that reassembles frames from TLS reads. proto/PROTOCOL.md is
 * the byte-level specification; change the two together. */
#include "proto/frame.h"

#include <stdlib.h>
#include <string.h>

#include "weft/errors.h"

#define HDR_ENTRY_FIXED 5 /* key u16, type u8, len u16 */

static const uint8_t frame_magic[3] = {'W', 'F', 'T'};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Length of the UTF-8 sequence starting at p (at most n bytes), 0 if invalid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* 1 if (p, n) is valid UTF-8 without NUL bytes, the STR value rule. */
static int valid_str(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t k;
        if (p[i] == 0)
            return 0;
        k = utf8_seq(p + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static int check_value(uint8_t type, const uint8_t *val, uint16_t len)
{
    switch (type) {
    case PR_HT_U32:
        return len == 4 ? 0 : WEFT_EPROTO;
    case PR_HT_U64:
        return len == 8 ? 0 : WEFT_EPROTO;
    case PR_HT_BYTES:
        return 0;
    case PR_HT_STR:
        return valid_str(val, len) ? 0 : WEFT_EPROTO;
    default:
        return WEFT_EPROTO;
    }
}

int pr_frame_peek(const uint8_t *buf, size_t len, size_t *frame_len)
{
    uint16_t hdr_len;
    uint32_t body_len;

    if (len < PR_FRAME_FIXED)
        return WEFT_EAGAIN;
    if (memcmp(buf, frame_magic, sizeof(frame_magic)) != 0)
        return WEFT_EMAGIC;
    if (buf[3] != PR_FRAME_VERSION)
        return WEFT_EVERSION;
    hdr_len = get16(buf + 8);
    body_len = get32(buf + 12);
    /* Sizes are checked before anything else so that a reader can refuse an
     * oversize frame without buffering a byte of it. */
    if (hdr_len > PR_FRAME_MAX_HDR_LEN || body_len > PR_FRAME_MAX_BODY)
        return WEFT_ETOOBIG;
    if (get16(buf + 10) != 0)
        return WEFT_EPROTO;
    *frame_len = PR_FRAME_FIXED + (size_t)hdr_len + body_len;
    return 0;
}

static int add_header(pr_frame *f, const pr_header *h)
{
    if (h->key == 0 || f->nheaders >= PR_FRAME_MAX_HEADERS)
        return WEFT_EPROTO;
    for (unsigned i = 0; i < f->nheaders; i++)
        if (f->headers[i].key == h->key)
            return WEFT_EPROTO;
    f->headers[f->nheaders++] = *h;
    return 0;
}

/* Parses the header map map[0..hdr_len) of which only avail bytes have
 * arrived. An entry that overruns hdr_len is malformed; one that is merely
 * cut short by avail needs more data. Every entry seen so far is validated, so
 * a malformed frame is refused as early as possible. */
static int parse_headers(const uint8_t *map, size_t hdr_len, size_t avail, pr_frame *f)
{
    size_t off = 0;

    while (off < hdr_len) {
        pr_header h;
        int rc;

        if (hdr_len - off < HDR_ENTRY_FIXED)
            return WEFT_EPROTO;
        if (avail - off < HDR_ENTRY_FIXED)
            return WEFT_EAGAIN;
        h.key = get16(map + off);
        h.type = map[off + 2];
        h.len = get16(map + off + 3);
        off += HDR_ENTRY_FIXED;
        if (h.len > hdr_len - off)
            return WEFT_EPROTO;
        if (h.type < PR_HT_U32 || h.type > PR_HT_STR)
            return WEFT_EPROTO;
        if (h.len > avail - off)
            return WEFT_EAGAIN;
        h.val = map + off;
        rc = check_value(h.type, h.val, h.len);
        if (rc == 0)
            rc = add_header(f, &h);
        if (rc < 0)
            return rc;
        off += h.len;
    }
    return 0;
}

int pr_frame_decode(const uint8_t *buf, size_t len, pr_frame *f, size_t *consumed)
{
    size_t frame_len, hdr_len, avail;
    int rc;

    if (buf == NULL || f == NULL || consumed == NULL)
        return WEFT_EINVAL;
    rc = pr_frame_peek(buf, len, &frame_len);
    if (rc < 0)
        return rc;
    f->type = get16(buf + 4);
    f->flags = get16(buf + 6);
    f->nheaders = 0;
    hdr_len = get16(buf + 8);
    avail = len - PR_FRAME_FIXED;
    rc = parse_headers(buf + PR_FRAME_FIXED, hdr_len, avail < hdr_len ? avail : hdr_len, f);
    if (rc < 0)
        return rc;
    if (len < frame_len)
        return WEFT_EAGAIN;
    f->body = buf + PR_FRAME_FIXED + hdr_len;
    f->body_len = get32(buf + 12);
    f->raw = buf;
    f->raw_len = frame_len;
    *consumed = frame_len;
    return 0;
}

void pr_frame_raw(const pr_frame *f, const uint8_t **raw, size_t *len)
{
    *raw = f->raw;
    *len = f->raw_len;
}

const pr_header *pr_frame_header(const pr_frame *f, uint16_t key)
{
    for (unsigned i = 0; i < f->nheaders; i++)
        if (f->headers[i].key == key)
            return &f->headers[i];
    return NULL;
}

static int typed_header(const pr_frame *f, uint16_t key, uint8_t type, const pr_header **out)
{
    const pr_header *h = pr_frame_header(f, key);

    if (h == NULL)
        return WEFT_ENOTFOUND;
    if (h->type != type)
        return WEFT_EPROTO;
    *out = h;
    return 0;
}

int pr_frame_u32(const pr_frame *f, uint16_t key, uint32_t *out)
{
    const pr_header *h;
    int rc = typed_header(f, key, PR_HT_U32, &h);

    if (rc < 0)
        return rc;
    *out = get32(h->val);
    return 0;
}

int pr_frame_u64(const pr_frame *f, uint16_t key, uint64_t *out)
{
    const pr_header *h;
    int rc = typed_header(f, key, PR_HT_U64, &h);

    if (rc < 0)
        return rc;
    *out = ((uint64_t)get32(h->val) << 32) | get32(h->val + 4);
    return 0;
}

int pr_frame_str(const pr_frame *f, uint16_t key, char *out, size_t cap)
{
    const pr_header *h;
    int rc = typed_header(f, key, PR_HT_STR, &h);

    if (rc < 0)
        return rc;
    if (cap < (size_t)h->len + 1)
        return WEFT_ETOOBIG;
    memcpy(out, h->val, h->len);
    out[h->len] = '\0';
    return 0;
}

int pr_frame_bytes(const pr_frame *f, uint16_t key, const uint8_t **val, size_t *len)
{
    const pr_header *h;
    int rc = typed_header(f, key, PR_HT_BYTES, &h);

    if (rc < 0)
        return rc;
    *val = h->val;
    *len = h->len;
    return 0;
}

/* ---- encoder ---- */

void pr_enc_init(pr_enc *e, uint8_t *buf, size_t cap, uint16_t type, uint16_t flags)
{
    e->buf = buf;
    e->cap = cap;
    e->len = 0;
    e->nheaders = 0;
    e->err = 0;
    if (buf == NULL) {
        e->err = WEFT_EINVAL;
        return;
    }
    if (cap < PR_FRAME_FIXED) {
        e->err = WEFT_ETOOBIG;
        return;
    }
    memcpy(buf, frame_magic, sizeof(frame_magic));
    buf[3] = PR_FRAME_VERSION;
    put16(buf + 4, type);
    put16(buf + 6, flags);
    memset(buf + 8, 0, PR_FRAME_FIXED - 8); /* lengths filled in by finish */
    e->len = PR_FRAME_FIXED;
}

/* 1 if key is already in the map: the map is small (<= 32 entries, 4 KiB). */
static int enc_has_key(const pr_enc *e, uint16_t key)
{
    size_t off = PR_FRAME_FIXED;

    while (off < e->len) {
        if (get16(e->buf + off) == key)
            return 1;
        off += HDR_ENTRY_FIXED + get16(e->buf + off + 3);
    }
    return 0;
}

static int enc_check(const pr_enc *e, uint16_t key, size_t len)
{
    if (key == 0 || enc_has_key(e, key))
        return WEFT_EINVAL;
    if (e->nheaders >= PR_FRAME_MAX_HEADERS || len > UINT16_MAX)
        return WEFT_ETOOBIG;
    if (e->len - PR_FRAME_FIXED + HDR_ENTRY_FIXED + len > PR_FRAME_MAX_HDR_LEN)
        return WEFT_ETOOBIG;
    if (e->cap - e->len < HDR_ENTRY_FIXED + len)
        return WEFT_ETOOBIG;
    return 0;
}

static void enc_header(pr_enc *e, uint16_t key, uint8_t type, const void *v, size_t len)
{
    uint8_t *p;

    if (e->err)
        return;
    e->err = enc_check(e, key, len);
    if (e->err)
        return;
    p = e->buf + e->len;
    put16(p, key);
    p[2] = type;
    put16(p + 3, (uint16_t)len);
    if (len > 0)
        memcpy(p + HDR_ENTRY_FIXED, v, len);
    e->len += HDR_ENTRY_FIXED + len;
    e->nheaders++;
}

void pr_enc_u32(pr_enc *e, uint16_t key, uint32_t v)
{
    uint8_t b[4];

    put32(b, v);
    enc_header(e, key, PR_HT_U32, b, sizeof(b));
}

void pr_enc_u64(pr_enc *e, uint16_t key, uint64_t v)
{
    uint8_t b[8];

    put32(b, (uint32_t)(v >> 32));
    put32(b + 4, (uint32_t)v);
    enc_header(e, key, PR_HT_U64, b, sizeof(b));
}

void pr_enc_bytes(pr_enc *e, uint16_t key, const void *v, size_t len)
{
    if (e->err == 0 && v == NULL && len > 0)
        e->err = WEFT_EINVAL;
    enc_header(e, key, PR_HT_BYTES, v, len);
}

void pr_enc_str(pr_enc *e, uint16_t key, const char *s)
{
    size_t len;

    if (e->err)
        return;
    if (s == NULL) {
        e->err = WEFT_EINVAL;
        return;
    }
    /* Bounded scan: a longer string cannot fit in the header map anyway. */
    len = strnlen(s, PR_FRAME_MAX_HDR_LEN + 1);
    if (len > PR_FRAME_MAX_HDR_LEN) {
        e->err = WEFT_ETOOBIG;
        return;
    }
    if (!valid_str((const uint8_t *)s, len)) {
        e->err = WEFT_EINVAL;
        return;
    }
    enc_header(e, key, PR_HT_STR, s, len);
}

int pr_enc_finish(pr_enc *e, const void *body, size_t body_len, size_t *out_len)
{
    if (e->err)
        return e->err;
    if (body == NULL && body_len > 0)
        return e->err = WEFT_EINVAL;
    if (body_len > PR_FRAME_MAX_BODY || e->cap - e->len < body_len)
        return e->err = WEFT_ETOOBIG;
    if (body_len > 0)
        memcpy(e->buf + e->len, body, body_len);
    put16(e->buf + 8, (uint16_t)(e->len - PR_FRAME_FIXED));
    put32(e->buf + 12, (uint32_t)body_len);
    e->len += body_len;
    if (out_len)
        *out_len = e->len;
    return 0;
}

/* ---- stream reader ---- */

int pr_reader_init(pr_reader *r)
{
    r->len = 0;
    r->err = 0;
    r->cap = PR_FRAME_MAX;
    r->buf = malloc(r->cap);
    if (r->buf == NULL) {
        r->cap = 0;
        return WEFT_ENOMEM;
    }
    return 0;
}

void pr_reader_free(pr_reader *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
    r->cap = 0;
}

/* Delivers every whole frame at the start of (buf, len); *used is how many
 * bytes they took. A trailing partial frame is not an error. */
static int deliver(const uint8_t *buf, size_t len, size_t *used, pr_frame_cb cb, void *arg)
{
    pr_frame f;
    size_t off = 0;
    int rc = 0;

    while (off < len) {
        size_t n;
        rc = pr_frame_decode(buf + off, len - off, &f, &n);
        if (rc == WEFT_EAGAIN) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        off += n;
        rc = cb(arg, &f);
        if (rc != 0)
            break;
    }
    *used = off;
    return rc;
}

/* Appends what fits of (data, len) to the buffer, delivers the whole frames
 * there and moves the remainder to the front. Returns how much data it took. */
static int feed_buffered(pr_reader *r, const uint8_t *data, size_t len, size_t *took,
                         pr_frame_cb cb, void *arg)
{
    size_t n = r->cap - r->len, used;
    int rc;

    if (n > len)
        n = len;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    *took = n;
    rc = deliver(r->buf, r->len, &used, cb, arg);
    if (rc != 0)
        return rc;
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return 0;
}

int pr_reader_feed(pr_reader *r, const uint8_t *data, size_t len, pr_frame_cb cb, void *arg)
{
    int rc = 0;

    if (r->err)
        return r->err;
    if (r->buf == NULL || cb == NULL || (data == NULL && len > 0))
        return WEFT_EINVAL;
    while (len > 0) {
        size_t n;
        /* With nothing buffered, frames are delivered straight from the
         * caller's data and only a trailing partial frame is copied. */
        if (r->len == 0) {
            rc = deliver(data, len, &n, cb, arg);
            if (rc != 0)
                break;
            data += n;
            len -= n;
            if (len == 0)
                break;
        }
        /* Every valid frame fits in cap (pr_frame_peek refuses larger ones), so
         * each pass either delivers a frame or takes all remaining data. */
        rc = feed_buffered(r, data, len, &n, cb, arg);
        if (rc != 0)
            break;
        data += n;
        len -= n;
    }
    if (rc != 0)
        r->err = rc;
    return rc;
}
