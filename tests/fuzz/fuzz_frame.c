/* Fuzzes the frame decoder and the stream reader.
 *
 * Checks, beyond "no crash, no read out of bounds":
 *  - a frame that decodes re-encodes to the very same bytes (the format has
 *    exactly one encoding per content) and decodes to the same content;
 *  - the reader, fed the input in uneven chunks, delivers exactly the frames a
 *    plain decode loop finds, and fails with the same error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEN 64

static uint8_t enc_buf[PR_FRAME_MAX];

static void same_content(const pr_frame *a, const pr_frame *b)
{
    if (a->type != b->type || a->flags != b->flags || a->nheaders != b->nheaders ||
        a->body_len != b->body_len || memcmp(a->body, b->body, a->body_len) != 0)
        abort();
    for (unsigned i = 0; i < a->nheaders; i++) {
        const pr_header *x = &a->headers[i], *y = &b->headers[i];
        if (x->key != y->key || x->type != y->type || x->len != y->len ||
            memcmp(x->val, y->val, x->len) != 0)
            abort();
    }
}

static void reencode(const pr_frame *f, const uint8_t *orig, size_t orig_len)
{
    pr_enc e;
    pr_frame g;
    size_t n, consumed;
    char str[PR_FRAME_MAX_HDR_LEN + 1];

    pr_enc_init(&e, enc_buf, sizeof(enc_buf), f->type, f->flags);
    for (unsigned i = 0; i < f->nheaders; i++) {
        const pr_header *h = &f->headers[i];
        uint32_t u32;
        uint64_t u64;
        switch (h->type) {
        case PR_HT_U32:
            if (pr_frame_u32(f, h->key, &u32) != 0)
                abort();
            pr_enc_u32(&e, h->key, u32);
            break;
        case PR_HT_U64:
            if (pr_frame_u64(f, h->key, &u64) != 0)
                abort();
            pr_enc_u64(&e, h->key, u64);
            break;
        case PR_HT_STR:
            if (pr_frame_str(f, h->key, str, sizeof(str)) != 0)
                abort();
            pr_enc_str(&e, h->key, str);
            break;
        default:
            pr_enc_bytes(&e, h->key, h->val, h->len);
        }
    }
    if (pr_enc_finish(&e, f->body, f->body_len, &n) != 0)
        abort();
    if (n != orig_len || memcmp(enc_buf, orig, n) != 0)
        abort();
    if (pr_frame_decode(enc_buf, n, &g, &consumed) != 0 || consumed != n)
        abort();
    same_content(f, &g);
}

struct seen {
    unsigned n;
    size_t len[MAX_SEEN];
    uint16_t type[MAX_SEEN];
};

static int on_frame(void *arg, const pr_frame *f)
{
    struct seen *s = arg;
    if (s->n < MAX_SEEN) {
        s->len[s->n] = f->body_len;
        s->type[s->n] = f->type;
    }
    s->n++;
    return 0;
}

/* Sequential decode: the reference the reader must agree with. */
static int decode_loop(const uint8_t *data, size_t size, struct seen *s)
{
    size_t off = 0;

    while (off < size) {
        pr_frame f;
        size_t n;
        int rc = pr_frame_decode(data + off, size - off, &f, &n);
        if (rc == WEFT_EAGAIN)
            return 0;
        if (rc < 0)
            return rc;
        if (n == 0 || n > size - off)
            abort();
        reencode(&f, data + off, n);
        on_frame(s, &f);
        off += n;
    }
    return 0;
}

static int reader_chunks(const uint8_t *data, size_t size, struct seen *s)
{
    pr_reader r;
    size_t off = 0, i = 0;
    int rc = 0;

    if (pr_reader_init(&r) != 0)
        abort();
    while (off < size && rc == 0) {
        /* Chunk sizes from the input itself: 1..64 bytes, or the rest. */
        size_t k = data[i++ % size] % 66;
        size_t n = k == 65 ? size - off : k + 1;
        if (n > size - off)
            n = size - off;
        rc = pr_reader_feed(&r, data + off, n, on_frame, s);
        off += n;
    }
    pr_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen a = {0}, b = {0};
    size_t frame_len;
    int ra = decode_loop(data, size, &a);
    int rb = reader_chunks(data, size, &b);

    if (ra != rb || a.n != b.n)
        abort();
    for (unsigned i = 0; i < a.n && i < MAX_SEEN; i++)
        if (a.len[i] != b.len[i] || a.type[i] != b.type[i])
            abort();
    /* peek and decode agree on the fixed header and on where the frame ends. */
    pr_frame f;
    size_t consumed;
    int rp = pr_frame_peek(data, size, &frame_len);
    int rd = pr_frame_decode(data, size, &f, &consumed);
    if (rp != 0 && rp != rd)
        abort();
    if (rp == 0 && (frame_len > PR_FRAME_MAX || (rd == 0 && consumed != frame_len) ||
                    (rd == WEFT_EAGAIN && size >= frame_len)))
        abort();
    return 0;
}
