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

void weft__rtxq_init(weft_rtxq *q, size_t max)
{
    memset(q, 0, sizeof(*q));
    q->max = max;
}

void weft__rtxq_free(weft_rtxq *q)
{
    free(q->buf);
    free(q->ent);
    q->buf = NULL;
    q->ent = NULL;
    q->cap = 0;
    q->first = 0;
    q->n = 0;
    q->nent = 0;
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

static size_t held(const weft_rtxq *q)
{
    size_t sum = 0;
    unsigned i;

    for (i = 0; i < q->n; i++)
        sum += weft__rtxq_at(q, i)->len;
    return sum;
}

/* Moves the frames, in order and without gaps, to a new buffer of cap bytes. */
static int rtxq_resize(weft_rtxq *q, size_t cap)
{
    uint8_t *b = malloc(cap);
    weft_rtx_ent *e;
    size_t off = 0;
    unsigned i;

    if (b == NULL)
        return WEFT_ENOMEM;
    for (i = 0; i < q->n; i++) {
        e = &q->ent[(q->first + i) & (q->nent - 1)];
        memcpy(b + off, q->buf + e->off, e->len);
        e->off = (uint32_t)off;
        off += e->len;
    }
    free(q->buf);
    q->buf = b;
    q->cap = cap;
    q->tail = off;
    return 0;
}

/* Room for a frame of max bytes that place() did not find. */
static int rtxq_grow(weft_rtxq *q, size_t max)
{
    size_t need = held(q) + max;

    if (q->cap == q->max || need > q->max)
        return WEFT_ENOBUFS;
    return rtxq_resize(q, weft__buf_size(need > 2 * q->cap ? need : 2 * q->cap, q->max));
}

/* Twice the entries (at first WEFT_RTX_ENT_MIN), in order from 0. */
static int ent_grow(weft_rtxq *q)
{
    unsigned nent = q->nent ? 2 * q->nent : WEFT_RTX_ENT_MIN, i;
    weft_rtx_ent *e = malloc(nent * sizeof(*e));

    if (e == NULL)
        return WEFT_ENOMEM;
    for (i = 0; i < q->n; i++)
        e[i] = *weft__rtxq_at(q, i);
    free(q->ent);
    q->ent = e;
    q->nent = nent;
    q->first = 0;
    return 0;
}

int weft__rtxq_reserve(weft_rtxq *q, size_t max, uint8_t **p)
{
    int r;

    if (q->n == WEFT_RTX_FRAMES)
        return WEFT_ENOBUFS;
    if (q->n == q->nent && (r = ent_grow(q)) < 0)
        return r;
    if ((q->resv = place(q, max)) == (size_t)-1) {
        if ((r = rtxq_grow(q, max)) < 0)
            return r;
        q->resv = place(q, max); /* laid out from 0 with room for max */
    }
    *p = q->buf + q->resv;
    return 0;
}

void weft__rtxq_commit(weft_rtxq *q, uint64_t seq, size_t len)
{
    weft_rtx_ent *e = &q->ent[(q->first + q->n) & (q->nent - 1)];

    e->seq = seq;
    e->off = (uint32_t)q->resv;
    e->len = (uint32_t)len;
    q->tail = q->resv + len;
    q->n++;
    q->quiet = 0;
}

void weft__rtxq_drop_oldest(weft_rtxq *q)
{
    if (q->n == 0)
        return;
    q->first = (q->first + 1) & (q->nent - 1);
    q->n--;
}

void weft__rtxq_ack(weft_rtxq *q, uint64_t seq)
{
    while (q->n > 0 && weft__rtxq_at(q, 0)->seq <= seq)
        weft__rtxq_drop_oldest(q);
}

void weft__rtxq_trim(weft_rtxq *q)
{
    size_t need, cap;

    if ((q->buf == NULL && q->ent == NULL) || ++q->quiet < WEFT_BUF_QUIET)
        return;
    if (q->n == 0) {
        weft__rtxq_free(q);
        return;
    }
    need = held(q);
    cap = weft__buf_size(2 * need, q->max);
    if (need <= q->cap / 4 && cap < q->cap)
        rtxq_resize(q, cap); /* no memory: the queue stays as it is */
}

/* ---- reorder buffer ---- */

void weft__reorder_init(weft_reorder *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max;
}

void weft__reorder_free(weft_reorder *r)
{
    free(r->buf);
    free(r->slot);
    r->buf = NULL;
    r->slot = NULL;
    r->cap = 0;
    r->n = 0;
    r->tail = 0;
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

/* The slots and a first buffer for a frame of len bytes, both or neither. */
static int reorder_alloc(weft_reorder *r, size_t len)
{
    r->cap = weft__buf_size(len, r->max);
    r->slot = calloc(WEFT_REORDER_SLOTS, sizeof(*r->slot));
    r->buf = malloc(r->cap);
    if (r->slot == NULL || r->buf == NULL) {
        weft__reorder_free(r);
        return WEFT_ENOMEM;
    }
    return 0;
}

/* Room for len more bytes at tail: compacted, else grown. */
static int reorder_room(weft_reorder *r, size_t len)
{
    uint8_t *b;
    size_t cap;

    if (r->cap - r->tail >= len)
        return 0;
    compact(r);
    if (r->cap - r->tail >= len)
        return 0;
    cap = weft__buf_size(r->tail + len > 2 * r->cap ? r->tail + len : 2 * r->cap, r->max);
    if (cap - r->tail < len || (b = realloc(r->buf, cap)) == NULL)
        return WEFT_ENOBUFS;
    r->buf = b;
    r->cap = cap;
    return 0;
}

int weft__reorder_put(weft_reorder *r, uint64_t next, uint64_t seq, uint16_t flags,
                      const uint8_t *body, size_t len)
{
    weft_ooo *s;

    if (seq <= next || seq - next >= WEFT_REORDER_SLOTS || len > r->max)
        return WEFT_ENOBUFS;
    if (r->slot == NULL && reorder_alloc(r, len) < 0)
        return WEFT_ENOMEM;
    s = &r->slot[seq % WEFT_REORDER_SLOTS];
    if (s->used)
        return s->seq == seq ? 1 : WEFT_ENOBUFS;
    if (reorder_room(r, len) < 0)
        return WEFT_ENOBUFS;
    memcpy(r->buf + r->tail, body, len);
    *s = (weft_ooo){seq, r->tail, len, flags, 1};
    r->tail += len;
    r->n++;
    r->quiet = 0;
    return 0;
}

int weft__reorder_take(weft_reorder *r, uint64_t seq, uint16_t *flags, const uint8_t **body,
                       size_t *len)
{
    weft_ooo *s;

    if (r->n == 0)
        return 0;
    s = &r->slot[seq % WEFT_REORDER_SLOTS];
    if (!s->used || s->seq != seq)
        return 0;
    *flags = s->flags;
    *body = r->buf + s->off;
    *len = s->len;
    return 1;
}

void weft__reorder_release(weft_reorder *r, uint64_t seq)
{
    weft_ooo *s;

    if (r->n == 0)
        return;
    s = &r->slot[seq % WEFT_REORDER_SLOTS];
    if (!s->used || s->seq != seq)
        return;
    s->used = 0;
    if (--r->n == 0)
        r->tail = 0;
}

void weft__reorder_trim(weft_reorder *r)
{
    if (r->slot == NULL || ++r->quiet < WEFT_BUF_QUIET || r->n > 0)
        return;
    weft__reorder_free(r);
}
