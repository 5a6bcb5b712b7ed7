/* Retransmission queue and reorder buffer of a circuit. */
#include "edge/lib/rtx.h"

#include <stdlib.h>
#include <string.h>

#include "edge/lib/e2e.h"
#include "edge/lib/flow.h"
#include "proto/frame.h"
#include "weft/errors.h"

/* ---- retransmission queue ---- */

size_t weft__rtxq_cap_for(uint64_t window)
{
    /* A window of plaintext, each frame's header and tag, and the room a
     * frame may leave unused at the end of buf. */
    return (size_t)window + WEFT_RTX_FRAMES * (WEFT_PAYLOAD_HDR_MAX + WEFT_E2E_ABYTES) +
           2 * (WEFT_PAYLOAD_HDR_MAX + PR_FRAME_MAX_BODY);
}

int weft__rtxq_init(weft_rtxq *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    if ((q->buf = malloc(cap)) == NULL)
        return WEFT_ENOMEM;
    q->cap = cap;
    return 0;
}

void weft__rtxq_free(weft_rtxq *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

/* Where a frame of max bytes goes, or (size_t)-1. The used bytes are
 * [head, tail) or, once wrapped, [head, cap) and [0, tail); tail never
 * reaches head, so that the two cases stay apart. */
static size_t place(const weft_rtxq *q, size_t max)
{
    size_t head;

    if (q->n == 0)
        return max <= q->cap ? 0 : (size_t)-1;
    head = weft__rtxq_at(q, 0)->off;
    if (q->tail > head) {
        if (q->cap - q->tail >= max)
            return q->tail;
        return head > max ? 0 : (size_t)-1;
    }
    return head - q->tail > max ? q->tail : (size_t)-1;
}

uint8_t *weft__rtxq_reserve(weft_rtxq *q, size_t max)
{
    if (q->buf == NULL || q->n == WEFT_RTX_FRAMES || (q->resv = place(q, max)) == (size_t)-1)
        return NULL;
    return q->buf + q->resv;
}

void weft__rtxq_commit(weft_rtxq *q, uint64_t seq, size_t len)
{
    weft_rtx_ent *e = &q->ent[(q->first + q->n) % WEFT_RTX_FRAMES];

    e->seq = seq;
    e->off = q->resv;
    e->len = len;
    q->tail = q->resv + len;
    q->n++;
}

void weft__rtxq_drop_oldest(weft_rtxq *q)
{
    if (q->n == 0)
        return;
    q->first = (q->first + 1) % WEFT_RTX_FRAMES;
    q->n--;
}

void weft__rtxq_ack(weft_rtxq *q, uint64_t seq)
{
    while (q->n > 0 && weft__rtxq_at(q, 0)->seq <= seq)
        weft__rtxq_drop_oldest(q);
}

/* ---- reorder buffer ---- */

void weft__reorder_init(weft_reorder *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->cap = cap;
}

void weft__reorder_free(weft_reorder *r)
{
    free(r->buf);
    r->buf = NULL;
    r->n = 0;
    r->tail = 0;
    memset(r->slot, 0, sizeof(r->slot));
}

/* Moves the held frames to the start of buf, in the order they lie. */
static void compact(weft_reorder *r)
{
    weft_ooo *live[WEFT_REORDER_SLOTS], *t;
    unsigned n = 0, i, j;

    for (i = 0; i < WEFT_REORDER_SLOTS; i++)
        if (r->slot[i].used)
            live[n++] = &r->slot[i];
    for (i = 1; i < n; i++) /* insertion sort by offset: at most a few dozen */
        for (j = i; j > 0 && live[j - 1]->off > live[j]->off; j--) {
            t = live[j];
            live[j] = live[j - 1];
            live[j - 1] = t;
        }
    r->tail = 0;
    for (i = 0; i < n; i++) {
        memmove(r->buf + r->tail, r->buf + live[i]->off, live[i]->len);
        live[i]->off = r->tail;
        r->tail += live[i]->len;
    }
}

int weft__reorder_put(weft_reorder *r, uint64_t next, uint64_t seq, uint16_t flags,
                      const uint8_t *body, size_t len)
{
    weft_ooo *s = &r->slot[seq % WEFT_REORDER_SLOTS];

    if (seq <= next || seq - next >= WEFT_REORDER_SLOTS || len > r->cap)
        return WEFT_ENOBUFS;
    if (s->used)
        return s->seq == seq ? 1 : WEFT_ENOBUFS;
    if (r->buf == NULL && (r->buf = malloc(r->cap)) == NULL)
        return WEFT_ENOMEM;
    if (r->cap - r->tail < len)
        compact(r);
    if (r->cap - r->tail < len)
        return WEFT_ENOBUFS;
    memcpy(r->buf + r->tail, body, len);
    *s = (weft_ooo){seq, r->tail, len, flags, 1};
    r->tail += len;
    r->n++;
    return 0;
}

int weft__reorder_take(weft_reorder *r, uint64_t seq, uint16_t *flags, const uint8_t **body,
                       size_t *len)
{
    weft_ooo *s = &r->slot[seq % WEFT_REORDER_SLOTS];

    if (r->n == 0 || !s->used || s->seq != seq)
        return 0;
    *flags = s->flags;
    *body = r->buf + s->off;
    *len = s->len;
    return 1;
}

void weft__reorder_release(weft_reorder *r, uint64_t seq)
{
    weft_ooo *s = &r->slot[seq % WEFT_REORDER_SLOTS];

    if (!s->used || s->seq != seq)
        return;
    s->used = 0;
    if (--r->n == 0)
        r->tail = 0;
}
