/* Edge-protocol messages (docs/dataplane.md, "Dial and bind"): encoders for
 * what an edge sends and one decoder that checks every header a message type
 * needs before anything uses it. Buffers are the caller's; nothing allocates. */
#ifndef WEFT_LIB_MSG_H
#define WEFT_LIB_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "edge/lib/e2e.h"
#include "proto/msg.h"

#define WEFT_NAME_MAX   128
#define WEFT_CERT_MAX   4096
#define WEFT_ERRMSG_MAX 256
/* A receive window announced in PR_H_RWND must lie in this range; a sender
 * keeps to min(announced, WEFT_RWND_MAX). Absent means WEFT_RWND_DEFAULT, the
 * window of every edge before the header existed. */
#define WEFT_RWND_MIN     4096
#define WEFT_RWND_MAX     (1ull << 32)
#define WEFT_RWND_DEFAULT (512 * 1024)
#define WEFT_PAYLOAD_HDR_MAX 64
#define WEFT_RESUME_NONCE 16
#define WEFT_RESUME_MAC   32 /* fixed header, circuit and seq of a payload frame */

/* A decoded edge, payload or ack frame; pointers point into the frame. */
typedef struct {
    uint16_t type;
    uint16_t flags;
    uint32_t req_id;
    int has_req;
    uint64_t circuit;
    uint64_t seq;
    uint64_t window;
    uint64_t rwnd; /* the peer's receive window (dial, answer); 0 when not announced */
    uint64_t ack_seq;
    int has_ack_seq; /* ACK_WINDOW from an edge that acknowledges seqs */
    int err; /* negative WEFT_E*, 0 when the frame carries none */
    char err_msg[WEFT_ERRMSG_MAX];
    char service[WEFT_NAME_MAX];
    char terminator[WEFT_NAME_MAX];
    char router_id[WEFT_NAME_MAX]; /* PR_H_ROUTER_ID: the far end's router (dial, answer) */
    uint32_t caps;                 /* PR_H_EDGE_CAPS of EDGE_HELLO_OK */
    uint32_t retry_ms; /* PR_H_RETRY_MS of EDGE_ERROR (admission refusal); 0 = none */
    const uint8_t *nonce;          /* EDGE_RESUME(_OK): WEFT_RESUME_NONCE bytes */
    const uint8_t *mac;            /* EDGE_RESUME(_OK): WEFT_RESUME_MAC bytes */
    const uint8_t *kx_pk;
    const uint8_t *sig;
    size_t sig_len;
    char cert[WEFT_CERT_MAX];
    const uint8_t *body;
    size_t body_len;
} weft_msg;

/* Fills m from f; WEFT_EPROTO when a header the type requires is missing or
 * malformed (a wrong-length kx key, a signature over WEFT_E2E_SIG_MAX...). */
int weft__msg_decode(const pr_frame *f, weft_msg *m);

int weft__msg_hello(uint8_t *buf, size_t cap, const char *imei, const char *iccid, size_t *len);
int weft__msg_bind(uint8_t *buf, size_t cap, uint32_t req, const char *token, const char *service,
                   size_t *len);
int weft__msg_unbind(uint8_t *buf, size_t cap, uint32_t req, const char *service, size_t *len);
/* The dialler's request; circuit 0 and a token, or the router's forward to
 * the host with a circuit and no token. */
typedef struct {
    uint32_t req_id;
    uint64_t circuit;
    const char *token;
    const char *service;
    const uint8_t *kx_pk;
    const uint8_t *sig;
    size_t sig_len;
    const char *cert;
    uint64_t rwnd; /* our receive window, announced in PR_H_RWND; 0 = not sent */
} weft_dial_msg;
int weft__msg_dial(uint8_t *buf, size_t cap, const weft_dial_msg *d, size_t *len);
/* The host's answer (type PR_EDGE_DIAL_OK). */
int weft__msg_dial_ok(uint8_t *buf, size_t cap, const weft_dial_msg *d, size_t *len);
int weft__msg_dial_fail(uint8_t *buf, size_t cap, uint64_t circuit, int err, const char *why,
                        size_t *len);
int weft__msg_close(uint8_t *buf, size_t cap, uint64_t circuit, int err, size_t *len);
/* Credit (cumulative bytes consumed) and, when has_seq, the highest payload
 * seq received in order. */
int weft__msg_ack(uint8_t *buf, size_t cap, uint64_t circuit, uint64_t window, int has_seq,
                  uint64_t seq, size_t *len);
/* EDGE_RESUME (req != 0, router id of the anchor) and EDGE_RESUME_OK (req 0). */
typedef struct {
    uint32_t req_id;
    uint64_t circuit;
    const char *anchor;
    uint64_t ack_seq;
    const uint8_t *nonce;
    const uint8_t *mac;
} weft_resume_msg;
int weft__msg_resume(uint8_t *buf, size_t cap, uint16_t type, const weft_resume_msg *r,
                     size_t *len);
int weft__msg_pong(uint8_t *buf, size_t cap, const weft_msg *ping, size_t *len);

/* Payload frames are built in place so that ciphertext is sealed straight into
 * the frame: begin writes the headers (at most WEFT_PAYLOAD_HDR_MAX bytes) and
 * returns where the body goes, end sets the body length and returns the
 * frame's size. */
int weft__msg_payload_begin(uint8_t *buf, size_t cap, uint64_t circuit, uint64_t seq,
                            uint16_t flags, size_t *body_off);
size_t weft__msg_payload_end(uint8_t *buf, size_t body_off, size_t body_len);

#endif
