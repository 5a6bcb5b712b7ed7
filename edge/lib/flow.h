/* End-to-end flow control and the per-circuit buffers (docs/dataplane.md,
 * "Flow control"). Plain accounting with no I/O, so that it is tested alone.
 *
 * The receiver grants credit with ACK_WINDOW carrying the cumulative count of
 * plaintext bytes its application consumed; the sender keeps at most `window`
 * bytes beyond the last grant in flight. */
#ifndef WEFT_LIB_FLOW_H
#define WEFT_LIB_FLOW_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_CHUNK_MAX      (64 * 1024) /* plaintext per secretstream message */
#define WEFT_WINDOW_DEFAULT (512 * 1024)
#define WEFT_WINDOW_MIN     (2 * WEFT_CHUNK_MAX)
#define WEFT_WRITES_MAX     64 /* pending write requests per circuit */

typedef struct {
    uint64_t sent;    /* plaintext bytes handed to the transport */
    uint64_t granted; /* the peer's last cumulative consumed count */
    uint64_t window;
} weft_txflow;

typedef struct {
    uint64_t received; /* plaintext bytes that arrived */
    uint64_t consumed; /* delivered to the application */
    uint64_t granted;  /* consumed count last sent in ACK_WINDOW */
    uint64_t window;
} weft_rxflow;

void weft__txflow_init(weft_txflow *f, uint64_t window);
/* Bytes that may be sent now. */
uint64_t weft__txflow_credit(const weft_txflow *f);
/* Records a grant; WEFT_EPROTO if it acknowledges bytes never sent. Stale
 * (smaller) grants are ignored: the count is cumulative. */
int weft__txflow_grant(weft_txflow *f, uint64_t consumed);
/* Plaintext length of the next message: at most the contiguous bytes queued,
 * the credit and WEFT_CHUNK_MAX. */
size_t weft__chunk_len(size_t avail, uint64_t credit);

void weft__rxflow_init(weft_rxflow *f, uint64_t window);
/* Accounts n arriving bytes; WEFT_EPROTO if the sender overran its window by
 * more than one message. */
int weft__rxflow_recv(weft_rxflow *f, size_t n);
/* Accounts n bytes handed to the application; returns 1 when a grant is due
 * (consumed >= window/2 since the last one). */
int weft__rxflow_consume(weft_rxflow *f, size_t n);
/* The value to send in ACK_WINDOW; records it as granted. */
uint64_t weft__rxflow_grant(weft_rxflow *f);

/* Per-circuit buffers (the byte rings here, the retransmission queue and the
 * reorder buffer in rtx.h) hold nothing while a circuit is idle: they are
 * allocated when the first byte or frame needs them, grow by doubling from
 * WEFT_BUF_MIN up to the cap the window sets, and are released (or shrunk)
 * by a trim, called on the conn tick, once WEFT_BUF_QUIET trims saw them
 * unused. A busy circuit keeps what it grew: nothing is allocated per frame. */
#define WEFT_BUF_MIN   1024
#define WEFT_BUF_QUIET 4 /* trims (250 ms apart) without use before release */

/* The size a buffer grows or shrinks to so that it holds need bytes:
 * WEFT_BUF_MIN doubled as often as needed, at most max. */
size_t weft__buf_size(size_t need, size_t max);

/* A byte ring of at most max bytes. */
typedef struct {
    uint8_t *buf;
    size_t cap, max, head, len;
    unsigned quiet; /* trims since the last push */
} weft_ring;

/* Allocates nothing. */
void weft__ring_init(weft_ring *r, size_t max);
void weft__ring_free(weft_ring *r);
/* Room for n more bytes, growing the ring: WEFT_ENOBUFS when n would take it
 * past max, WEFT_ENOMEM when it cannot grow (the ring is unchanged). */
int weft__ring_reserve(weft_ring *r, size_t n);
/* All of data or nothing, with reserve's errors. */
int weft__ring_push(weft_ring *r, const void *data, size_t n);
/* The contiguous bytes at the head. */
size_t weft__ring_peek(const weft_ring *r, const uint8_t **p);
void weft__ring_consume(weft_ring *r, size_t n);
/* After WEFT_BUF_QUIET trims without a push: an empty ring is released, one at
 * most a quarter full shrinks to twice what it holds. */
void weft__ring_trim(weft_ring *r);

#endif
