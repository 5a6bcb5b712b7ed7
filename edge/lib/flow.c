/* Flow-control accounting and the per-circuit byte ring. */
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

int weft__ring_init(weft_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if ((r->buf = malloc(cap)) == NULL)
        return WEFT_ENOMEM;
    r->cap = cap;
    return 0;
}

void weft__ring_free(weft_ring *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int weft__ring_push(weft_ring *r, const void *data, size_t n)
{
    size_t tail, first;

    if (n > r->cap - r->len)
        return WEFT_ENOBUFS;
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
