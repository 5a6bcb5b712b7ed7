/* End-to-end reliability buffers of a circuit (docs/dataplane.md,
 * "Reliability"): plain bookkeeping with no I/O, so that it is tested alone.
 *
 * The sender keeps every payload frame it sent, byte for byte, until the
 * receiver acknowledges its seq: a secretstream is stateful, so the only
 * frame that can replace a lost one is the identical ciphertext. The receiver
 * holds frames that arrived ahead of a gap until the gap is filled, and
 * decrypts strictly in seq order. Both buffers hold nothing while the
 * circuit is idle and grow on demand (flow.h, "Per-circuit buffers"); a busy
 * circuit keeps what it grew, so nothing here allocates per frame. */
#ifndef WEFT_LIB_RTX_H
#define WEFT_LIB_RTX_H

#include <stddef.h>
#include <stdint.h>

#include "edge/lib/flow.h"
#include "edge/lib/msg.h"

#define WEFT_RTX_FRAMES    512 /* frames a sender keeps unacknowledged */
#define WEFT_RTX_ENT_MIN   16  /* entries the queue starts with (doubling to the above) */
#define WEFT_REORDER_SLOTS 128 /* frames a receiver holds ahead of a gap */

typedef struct {
    uint64_t seq;
    uint32_t off, len;
} weft_rtx_ent;

/* Frames in seq order, each contiguous in buf (a frame that does not fit
 * before the end of buf starts again at 0), so that a frame is written to
 * the transport straight from here. buf grows up to max bytes, the ring of
 * entries (nent, a power of two) up to WEFT_RTX_FRAMES. */
typedef struct {
    uint8_t *buf;
    weft_rtx_ent *ent;
    size_t cap, max, tail, resv; /* resv: where reserve() put the next frame */
    unsigned first, n, nent;
    unsigned quiet; /* trims since the last commit */
} weft_rtxq;

/* The byte capacity that holds a window of plaintext in frames of any size. */
size_t weft__rtxq_cap_for(uint64_t window);
/* Allocates nothing; max is the most buf grows to (at most 4 GiB). */
void weft__rtxq_init(weft_rtxq *q, size_t max);
void weft__rtxq_free(weft_rtxq *q);
/* Room for a frame of up to max bytes in *p, growing the buffer if need be:
 * WEFT_ENOBUFS when it is full at its largest or holds WEFT_RTX_FRAMES
 * frames, WEFT_ENOMEM when it cannot grow (the queue is unchanged). */
int weft__rtxq_reserve(weft_rtxq *q, size_t max, uint8_t **p);
/* Keeps the frame just built in the reserved room (len <= max). */
void weft__rtxq_commit(weft_rtxq *q, uint64_t seq, size_t len);
/* Forgets every frame up to and including seq. */
void weft__rtxq_ack(weft_rtxq *q, uint64_t seq);
void weft__rtxq_drop_oldest(weft_rtxq *q);
static inline const weft_rtx_ent *weft__rtxq_at(const weft_rtxq *q, unsigned i)
{
    return &q->ent[(q->first + i) & (q->nent - 1)];
}
/* After WEFT_BUF_QUIET trims without a commit: an empty queue is released,
 * one at most a quarter full shrinks. */
void weft__rtxq_trim(weft_rtxq *q);

typedef struct {
    uint64_t seq;
    size_t off, len;
    uint16_t flags;
    int used;
} weft_ooo;

/* Frames ahead of the next expected seq, slot seq % WEFT_REORDER_SLOTS;
 * their bytes in buf, compacted when the end is reached, then grown up to
 * max. buf and slot are allocated by the first frame that arrives out of
 * order and released by a trim once empty. */
typedef struct {
    uint8_t *buf;
    weft_ooo *slot;
    size_t cap, max, tail;
    unsigned n;
    unsigned quiet; /* trims since the last put */
} weft_reorder;

void weft__reorder_init(weft_reorder *r, size_t max);
void weft__reorder_free(weft_reorder *r);
/* Keeps a frame that arrived early (next < seq < next + WEFT_REORDER_SLOTS);
 * 1 when it is already held (a duplicate), WEFT_ENOBUFS when no room is left
 * or the buffer cannot grow (the frame is dropped; the sender sends it
 * again), WEFT_ENOMEM when the buffer cannot be allocated at all. */
int weft__reorder_put(weft_reorder *r, uint64_t next, uint64_t seq, uint16_t flags,
                      const uint8_t *body, size_t len);
/* The frame with this seq if held: valid until the next put or trim. */
int weft__reorder_take(weft_reorder *r, uint64_t seq, uint16_t *flags, const uint8_t **body,
                       size_t *len);
void weft__reorder_release(weft_reorder *r, uint64_t seq);
/* After WEFT_BUF_QUIET trims without a put, an empty buffer is released. */
void weft__reorder_trim(weft_reorder *r);

#endif
