/* The agent's datagram deframer (edge/udp_frame.c) on any byte stream, cut
 * at any step: every datagram it yields fits the limit, and framing the
 * datagrams again gives back exactly the bytes it consumed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/udp_frame.h"

typedef struct {
    const uint8_t *in;
    size_t off;
} check_t;

static void on_dgram(void *arg, const uint8_t *p, size_t n)
{
    static uint8_t frame[EDGE_DGRAM_HDR + EDGE_DGRAM_MAX];
    check_t *c = arg;
    size_t len = edge_dgram_frame(frame, sizeof(frame), p, n);

    if (n > EDGE_DGRAM_MAX || len != EDGE_DGRAM_HDR + n || memcmp(frame, c->in + c->off, len) != 0)
        abort();
    c->off += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static edge_deframer d;
    check_t c = {data + 1, 0};
    size_t step, off;

    if (size < 1)
        return 0;
    step = data[0] ? data[0] : size;
    memset(&d, 0, sizeof(d));
    for (off = 1; off < size; off += step)
        edge_deframe(&d, data + off, size - off < step ? size - off : step, on_dgram, &c);
    if (c.off + d.have != size - 1)
        abort();
    return 0;
}
