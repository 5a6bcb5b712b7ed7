/* End-to-end reliability buffers of a circuit (docs/dataplane.md,
 * "Reliability"): plain bookkeeping with no I/O, so that it is tested alone.
 *
 * The sender keeps every payload frame it sent, byte for byte, until the
 * receiver acknowledges its seq: a secretstream is stateful, so the only
 * frame that can replace a lost one is the identical ciphertext. The receiver
 * holds frames that arrived ahead of a gap until the gap is filled, and
 * decrypts strictly in seq order. Both buffers are allocated once per
 * circuit; nothing here allocates per frame. */
#ifndef WEFT_LIB_RTX_H
#define WEFT_LIB_RTX_H

#include <stddef.h>
#include <stdint.h>

#include "edge/lib/msg.h"

#define WEFT_RTX_FRAMES      512 /* frames a sender keeps unacknowledged */
#define WEFT_REORDER_SLOTS   128 /* frames a receiver holds ahead of a gap */

typedef struct {
    uint64_t seq;
    size_t off, len;
} weft_rtx_ent;

/* Frames in seq order, each contiguous in buf (a frame that does not fit
 * before the end of buf starts again at 0), so that a frame is written to
 * the transport straight from here. */
typedef struct {
    uint8_t *buf;
    size_t cap, tail, resv; /* resv: where reserve() put the next frame */
    weft_rtx_ent ent[WEFT_RTX_FRAMES];
    unsigned first, n;
} weft_rtxq;

/* The byte capacity that holds a window of plaintext in frames of any size. */
size_t weft__rtxq_cap_for(uint64_t window);
int weft__rtxq_init(weft_rtxq *q, size_t cap);
void weft__rtxq_free(weft_rtxq *q);
/* Room for a frame of up to max bytes, or NULL when the buffer is full. */
uint8_t *weft__rtxq_reserve(weft_rtxq *q, size_t max);
/* Keeps the frame just built in the reserved room (len <= max). */
void weft__rtxq_commit(weft_rtxq *q, uint64_t seq, size_t len);
/* Forgets every frame up to and including seq. */
void weft__rtxq_ack(weft_rtxq *q, uint64_t seq);
void weft__rtxq_drop_oldest(weft_rtxq *q);
static inline const weft_rtx_ent *weft__rtxq_at(const weft_rtxq *q, unsigned i)
{
    return &q->ent[(q->first + i) % WEFT_RTX_FRAMES];
}

typedef struct {
    uint64_t seq;
    size_t off, len;
    uint16_t flags;
    int used;
} weft_ooo;

/* Frames ahead of the next expected seq, slot seq % WEFT_REORDER_SLOTS;
 * their bytes in buf, compacted when the end is reached. buf is allocated
 * by the first frame that arrives out of order. */
typedef struct {
    uint8_t *buf;
    size_t cap, tail;
    weft_ooo slot[WEFT_REORDER_SLOTS];
    unsigned n;
} weft_reorder;

void weft__reorder_init(weft_reorder *r, size_t cap);
void weft__reorder_free(weft_reorder *r);
/* Keeps a frame that arrived early (next < seq < next + WEFT_REORDER_SLOTS);
 * 1 when it is already held (a duplicate), WEFT_ENOBUFS when no room is left
 * (the frame is dropped; the sender sends it again). */
int weft__reorder_put(weft_reorder *r, uint64_t next, uint64_t seq, uint16_t flags,
                      const uint8_t *body, size_t len);
/* The frame with this seq if held: valid until the next put. */
int weft__reorder_take(weft_reorder *r, uint64_t seq, uint16_t *flags, const uint8_t **body,
                       size_t *len);
void weft__reorder_release(weft_reorder *r, uint64_t seq);

#endif
