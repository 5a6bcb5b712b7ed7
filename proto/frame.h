/* The weft frame codec (proto/PROTOCOL.md is the byte-level specification).
 *
 *   0      3   4        6        8          10        12          16
 *   +------+---+--------+--------+----------+---------+-----------+----------+------+
 *   | WFT  |ver| type   | flags  | hdr_len  | rsvd=0  | body_len  | hdr map  | body |
 *   +------+---+--------+--------+----------+---------+-----------+----------+------+
 *   all integers big-endian; header map entries: key u16, type u8, len u16, value.
 *
 * The decoder never allocates and never reads past (buf, len); decoded frames
 * point into the caller's buffer. */
#ifndef PR_FRAME_H
#define PR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PR_FRAME_VERSION     1
#define PR_FRAME_FIXED       16            /* fixed header bytes */
#define PR_FRAME_MAX_HEADERS 32            /* entries in the header map */
#define PR_FRAME_MAX_HDR_LEN 4096          /* bytes of header map */
#define PR_FRAME_MAX_BODY    (65536 + 512) /* 64 KiB payload + e2e overhead */
#define PR_FRAME_MAX         (PR_FRAME_FIXED + PR_FRAME_MAX_HDR_LEN + PR_FRAME_MAX_BODY)

/* Message families: the high byte of the type. */
enum pr_family {
    PR_FAM_CONTROL = 0x01, /* router <-> controller */
    PR_FAM_LINK = 0x02,    /* router <-> router */
    PR_FAM_EDGE = 0x03,    /* edge <-> router */
    PR_FAM_PAYLOAD = 0x04, /* circuit data */
    PR_FAM_ACK = 0x05,     /* circuit acknowledgements */
};
#define PR_TYPE(fam, n)   ((uint16_t)(((fam) << 8) | (n)))
#define PR_TYPE_FAMILY(t) ((uint8_t)((t) >> 8))

/* Header keys and message types are registered in proto/msg.h; key 0 is
 * invalid on the wire. */

/* Header value types; the type fixes or bounds the value length. Any other
 * type byte is malformed. */
enum pr_htype {
    PR_HT_U32 = 1,   /* len 4 */
    PR_HT_U64 = 2,   /* len 8 */
    PR_HT_BYTES = 3, /* any len */
    PR_HT_STR = 4,   /* valid UTF-8 text, no NUL bytes */
};

typedef struct {
    uint16_t key;
    uint8_t type;
    uint16_t len;
    const uint8_t *val; /* points into the decoded buffer */
} pr_header;

typedef struct {
    uint16_t type;
    uint16_t flags;
    unsigned nheaders;
    pr_header headers[PR_FRAME_MAX_HEADERS];
    const uint8_t *body; /* points into the decoded buffer */
    uint32_t body_len;
    const uint8_t *raw; /* the whole frame as decoded (set by pr_frame_decode) */
    size_t raw_len;
} pr_frame;

/* Validate the fixed header in buf and report the whole frame's length.
 * Returns 0 and sets *frame_len, WEFT_EAGAIN if fewer than PR_FRAME_FIXED bytes,
 * or WEFT_EMAGIC / WEFT_EVERSION / WEFT_ETOOBIG / WEFT_EPROTO. */
int pr_frame_peek(const uint8_t *buf, size_t len, size_t *frame_len);

/* Decode one frame from the start of buf. Returns 0 and sets *consumed,
 * WEFT_EAGAIN when buf holds only part of a (so far valid) frame, or a negative
 * error for malformed input (the connection should then be closed). */
int pr_frame_decode(const uint8_t *buf, size_t len, pr_frame *f, size_t *consumed);

/* The raw bytes of a frame decoded by pr_frame_decode (they point into the
 * decoded buffer), for forwarding a frame byte for byte. */
void pr_frame_raw(const pr_frame *f, const uint8_t **raw, size_t *len);

/* Header look-ups: return NULL / WEFT_ENOTFOUND when absent, WEFT_EPROTO when
 * the header is present with the wrong type. */
const pr_header *pr_frame_header(const pr_frame *f, uint16_t key);
int pr_frame_u32(const pr_frame *f, uint16_t key, uint32_t *out);
int pr_frame_u64(const pr_frame *f, uint16_t key, uint64_t *out);
/* Copies a STR header into out (NUL-terminated); WEFT_ETOOBIG if cap is too small. */
int pr_frame_str(const pr_frame *f, uint16_t key, char *out, size_t cap);
int pr_frame_bytes(const pr_frame *f, uint16_t key, const uint8_t **val, size_t *len);

/* Encoder writing into a caller buffer; errors are sticky and reported by finish:
 * WEFT_ETOOBIG when the buffer, the header map, the entry count or the body
 * would exceed its limit, WEFT_EINVAL for a duplicate key, key 0, or a string
 * that is not valid UTF-8. Whatever finish accepts, pr_frame_decode accepts. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    unsigned nheaders;
    int err;
} pr_enc;

void pr_enc_init(pr_enc *e, uint8_t *buf, size_t cap, uint16_t type, uint16_t flags);
void pr_enc_u32(pr_enc *e, uint16_t key, uint32_t v);
void pr_enc_u64(pr_enc *e, uint16_t key, uint64_t v);
void pr_enc_bytes(pr_enc *e, uint16_t key, const void *v, size_t len);
void pr_enc_str(pr_enc *e, uint16_t key, const char *s);
/* Appends the body, fills in the lengths; returns 0 and the frame size in *out_len. */
int pr_enc_finish(pr_enc *e, const void *body, size_t body_len, size_t *out_len);

/* Stream reassembly: feed bytes as they arrive, get whole frames back.
 * The buffer is allocated once (PR_FRAME_MAX) at init; feeding never allocates. */
typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err; /* sticky: once set, every feed returns it */
} pr_reader;

typedef int (*pr_frame_cb)(void *arg, const pr_frame *f);

int pr_reader_init(pr_reader *r);
void pr_reader_free(pr_reader *r);
/* Calls cb for each complete frame; stops at the first non-zero return from cb
 * or decode error and returns it (the stream is then unusable). Returns 0 when
 * all input was consumed or buffered. The frame passed to cb points into the
 * reader's buffer or into data and is valid only during the call; cb must not
 * feed the same reader. */
int pr_reader_feed(pr_reader *r, const uint8_t *data, size_t len, pr_frame_cb cb, void *arg);

#endif
