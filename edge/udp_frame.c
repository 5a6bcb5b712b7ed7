/* Length-prefixed datagrams in a byte stream (see udp_frame.h). */
#include "edge/udp_frame.h"

#include <string.h>

size_t edge_dgram_frame(uint8_t *out, size_t cap, const uint8_t *p, size_t n)
{
    if (n > EDGE_DGRAM_MAX || cap < EDGE_DGRAM_HDR + n)
        return 0;
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    if (n > 0)
        memcpy(out + EDGE_DGRAM_HDR, p, n);
    return EDGE_DGRAM_HDR + n;
}

/* Bytes still missing from the frame being assembled. */
static size_t need(const edge_deframer *d)
{
    if (d->have < EDGE_DGRAM_HDR)
        return EDGE_DGRAM_HDR - d->have;
    return EDGE_DGRAM_HDR + ((size_t)d->buf[0] << 8 | d->buf[1]) - d->have;
}

void edge_deframe(edge_deframer *d, const uint8_t *p, size_t n, edge_dgram_cb cb, void *arg)
{
    size_t k;

    while (n > 0) {
        k = need(d) < n ? need(d) : n;
        /* need() never exceeds what is left of buf: the header bounds it. */
        memcpy(d->buf + d->have, p, k);
        d->have += k;
        p += k;
        n -= k;
        if (d->have >= EDGE_DGRAM_HDR && need(d) == 0) {
            cb(arg, d->buf + EDGE_DGRAM_HDR, d->have - EDGE_DGRAM_HDR);
            d->have = 0;
        }
    }
}
