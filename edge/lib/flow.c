/* Flow-control accounting and the per-circuit byte rings. */
#include "edge/lib/flow.h"

#include <stdlib.h>
#include <string.h>

#include "weft/errors.h"

void weft__txflow_init(weft_txflow *f, uint64_t window)
{
    f->sent = 0;
    f->granted = 0;
    f->window = window;
}

uint64_t weft__txflow_credit(const weft_txflow *f)
{
    uint64_t limit = f->granted + f->window;

    return limit > f->sent ? limit - f->sent : 0;
}

int weft__txflow_grant(weft_txflow *f, uint64_t consumed)
{
    if (consumed > f->sent)
        return WEFT_EPROTO;
    if (consumed > f->granted)
        f->granted = consumed;
    return 0;
}

size_t weft__chunk_len(size_t avail, uint64_t credit)
{
    size_t n = avail < WEFT_CHUNK_MAX ? avail : WEFT_CHUNK_MAX;

    return credit < n ? (size_t)credit : n;
}

void weft__rxflow_init(weft_rxflow *f, uint64_t window)
{
    memset(f, 0, sizeof(*f));
    f->window = window;
}

int weft__rxflow_recv(weft_rxflow *f, size_t n)
{
    /* One message of slack: a sender may check the window before a message
     * rather than for its whole length (the router's hosted services do). */
    if (f->received + n > f->granted + f->window + WEFT_CHUNK_MAX)
        return WEFT_EPROTO;
    f->received += n;
    return 0;
}

int weft__rxflow_consume(weft_rxflow *f, size_t n)
{
    f->consumed += n;
    return f->consumed - f->granted >= f->window / 2;
}

uint64_t weft__rxflow_grant(weft_rxflow *f)
{
    f->granted = f->consumed;
    return f->granted;
}

void weft__ring_init(weft_ring *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max;
}

void weft__ring_free(weft_ring *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->head = 0;
    r->len = 0;
}

size_t weft__buf_size(size_t need, size_t max)
{
    size_t cap = WEFT_BUF_MIN;

    while (cap < need && cap < max)
        cap *= 2;
    return cap < max ? cap : max;
}

/* Moves the bytes to a new buffer of cap bytes (0: none), starting at 0. */
static int ring_resize(weft_ring *r, size_t cap)
{
    uint8_t *b = NULL;
    size_t first;

    if (cap > 0 && (b = malloc(cap)) == NULL)
        return WEFT_ENOMEM;
    if (r->len > 0) {
        first = r->cap - r->head < r->len ? r->cap - r->head : r->len;
        memcpy(b, r->buf + r->head, first);
        memcpy(b + first, r->buf, r->len - first);
    }
    free(r->buf);
    r->buf = b;
    r->cap = cap;
    r->head = 0;
    return 0;
}

int weft__ring_reserve(weft_ring *r, size_t n)
{
    if (n > r->max - r->len)
        return WEFT_ENOBUFS;
    if (n <= r->cap - r->len)
        return 0;
    return ring_resize(r, weft__buf_size(r->len + n, r->max));
}

int weft__ring_push(weft_ring *r, const void *data, size_t n)
{
    size_t tail, first;
    int rc;

    if (n == 0)
        return 0;
    if ((rc = weft__ring_reserve(r, n)) < 0)
        return rc;
    r->quiet = 0;
    tail = (r->head + r->len) % r->cap;
    first = r->cap - tail < n ? r->cap - tail : n;
    memcpy(r->buf + tail, data, first);
    memcpy(r->buf, (const uint8_t *)data + first, n - first);
    r->len += n;
    return 0;
}

size_t weft__ring_peek(const weft_ring *r, const uint8_t **p)
{
    size_t contig = r->cap - r->head;

    if (r->len == 0) {
        *p = NULL;
        return 0;
    }
    *p = r->buf + r->head;
    return r->len < contig ? r->len : contig;
}

void weft__ring_consume(weft_ring *r, size_t n)
{
    if (n > r->len)
        n = r->len;
    r->len -= n;
    r->head = r->len == 0 ? 0 : (r->head + n) % r->cap;
}

void weft__ring_trim(weft_ring *r)
{
    size_t cap;

    if (r->buf == NULL || ++r->quiet < WEFT_BUF_QUIET)
        return;
    if (r->len == 0) {
        weft__ring_free(r);
        return;
    }
    cap = weft__buf_size(2 * r->len, r->max);
    if (r->len <= r->cap / 4 && cap < r->cap)
        ring_resize(r, cap); /* no memory: the ring stays as it is */
}
