/* UDP datagrams over a circuit. A circuit is a byte stream, so each datagram
 * travels as a 2-byte big-endian length then that many bytes; the receiver
 * cuts the stream back into the same datagrams (boundaries preserved, empty
 * datagrams included). */
#ifndef WEFT_EDGE_UDP_FRAME_H
#define WEFT_EDGE_UDP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define EDGE_DGRAM_MAX 65535
#define EDGE_DGRAM_HDR 2

typedef struct {
    uint8_t buf[EDGE_DGRAM_HDR + EDGE_DGRAM_MAX];
    size_t have;
} edge_deframer;

typedef void (*edge_dgram_cb)(void *arg, const uint8_t *p, size_t n);

/* Writes the framed datagram into out (cap bytes); returns its length, or 0
 * when n is too big for one frame or out too small. */
size_t edge_dgram_frame(uint8_t *out, size_t cap, const uint8_t *p, size_t n);
/* Feeds n stream bytes; cb runs once per complete datagram. Never fails:
 * every length a u16 can say fits the buffer. */
void edge_deframe(edge_deframer *d, const uint8_t *p, size_t n, edge_dgram_cb cb, void *arg);

#endif
