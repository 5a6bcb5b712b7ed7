/* Edge-protocol message encoders and the checked decoder. */
#include "edge/lib/msg.h"

#include <string.h>

#include "weft/errors.h"
#include "weft/weft.h"

/* Optional headers: absent is fine, present with the wrong type is not. */
static int opt_str(const pr_frame *f, uint16_t key, char *out, size_t cap)
{
    int r = pr_frame_str(f, key, out, cap);

    if (r == WEFT_ENOTFOUND) {
        out[0] = '\0';
        return 0;
    }
    return r < 0 ? WEFT_EPROTO : 0;
}

static int opt_u64(const pr_frame *f, uint16_t key, uint64_t *v)
{
    int r = pr_frame_u64(f, key, v);

    return r == WEFT_ENOTFOUND ? 0 : r < 0 ? WEFT_EPROTO : 0;
}

static int decode_err(const pr_frame *f, weft_msg *m)
{
    uint32_t e = 0;
    int r = pr_frame_u32(f, PR_H_ERR, &e);

    if (r < 0 && r != WEFT_ENOTFOUND)
        return WEFT_EPROTO;
    /* Codes cross the wire positive; anything outside our table becomes EPROTO
     * rather than a value a caller might mistake for success. */
    m->err = e == 0 ? 0 : e < 1000 || e > 1999 ? WEFT_EPROTO : -(int)e;
    return opt_str(f, PR_H_ERR_MSG, m->err_msg, sizeof(m->err_msg));
}

static int decode_kx(const pr_frame *f, weft_msg *m)
{
    size_t n;

    if (pr_frame_bytes(f, PR_H_KX_PK, &m->kx_pk, &n) < 0 || n != WEFT_E2E_PK_LEN)
        return WEFT_EPROTO;
    if (pr_frame_bytes(f, PR_H_KX_SIG, &m->sig, &m->sig_len) < 0 || m->sig_len == 0 ||
        m->sig_len > WEFT_E2E_SIG_MAX)
        return WEFT_EPROTO;
    if (pr_frame_str(f, PR_H_PEER_CERT, m->cert, sizeof(m->cert)) < 0)
        return WEFT_EPROTO;
    return 0;
}

/* A window below WEFT_RWND_MIN would make every message tiny; above the
 * maximum it is not a window any memory could honour. */
static int decode_rwnd(const pr_frame *f, weft_msg *m)
{
    if (opt_u64(f, PR_H_RWND, &m->rwnd) < 0 ||
        (m->rwnd != 0 && (m->rwnd < WEFT_RWND_MIN || m->rwnd > WEFT_RWND_MAX)))
        return WEFT_EPROTO;
    return 0;
}

static int decode_ack(const pr_frame *f, weft_msg *m)
{
    int r = pr_frame_u64(f, PR_H_ACK_SEQ, &m->ack_seq);

    if (r < 0 && r != WEFT_ENOTFOUND)
        return WEFT_EPROTO;
    m->has_ack_seq = r == 0;
    return pr_frame_u64(f, PR_H_WINDOW, &m->window) < 0 ? WEFT_EPROTO : 0;
}

static int decode_resume(const pr_frame *f, weft_msg *m)
{
    size_t n, k;

    if (pr_frame_bytes(f, PR_H_NONCE, &m->nonce, &n) < 0 || n != WEFT_RESUME_NONCE ||
        pr_frame_bytes(f, PR_H_MAC, &m->mac, &k) < 0 || k != WEFT_RESUME_MAC ||
        pr_frame_u64(f, PR_H_ACK_SEQ, &m->ack_seq) < 0)
        return WEFT_EPROTO;
    m->has_ack_seq = 1;
    return 0;
}

/* An admission refusal's hint; absent is 0 (no hint). */
static int decode_retry(const pr_frame *f, weft_msg *m)
{
    int r = pr_frame_u32(f, PR_H_RETRY_MS, &m->retry_ms);

    if (r == WEFT_ENOTFOUND)
        m->retry_ms = 0;
    return r < 0 && r != WEFT_ENOTFOUND ? WEFT_EPROTO : 0;
}

static int need_circuit(const pr_frame *f, weft_msg *m)
{
    return pr_frame_u64(f, PR_H_CIRCUIT, &m->circuit) < 0 || m->circuit == 0 ? WEFT_EPROTO : 0;
}

/* What each type needs beyond the common headers. */
static int decode_type(const pr_frame *f, weft_msg *m)
{
    switch (m->type) {
    case PR_EDGE_DIAL: /* router -> host */
        if (need_circuit(f, m) < 0 || m->service[0] == '\0' || decode_rwnd(f, m) < 0)
            return WEFT_EPROTO;
        return decode_kx(f, m);
    case PR_EDGE_DIAL_OK: /* router -> dialler */
        if (!m->has_req || need_circuit(f, m) < 0 || decode_rwnd(f, m) < 0)
            return WEFT_EPROTO;
        return decode_kx(f, m);
    case PR_EDGE_ERROR:
        return decode_retry(f, m);
    case PR_EDGE_BIND_OK:
    case PR_EDGE_DIAL_FAIL:
        return m->has_req || m->type != PR_EDGE_BIND_OK ? 0 : WEFT_EPROTO;
    case PR_EDGE_UNBIND: /* router -> host: the terminator is gone */
        return m->service[0] ? 0 : WEFT_EPROTO;
    case PR_EDGE_CLOSE:
    case PR_EDGE_RETRANSMIT:
    case PR_EDGE_RESUME_FAIL:
        return need_circuit(f, m);
    case PR_EDGE_RESUME:
    case PR_EDGE_RESUME_OK:
        return need_circuit(f, m) < 0 ? WEFT_EPROTO : decode_resume(f, m);
    case PR_EDGE_HELLO_OK:
        return pr_frame_u32(f, PR_H_EDGE_CAPS, &m->caps) == WEFT_EPROTO ? WEFT_EPROTO : 0;
    case PR_PAYLOAD_DATA:
        if (need_circuit(f, m) < 0 || pr_frame_u64(f, PR_H_SEQ, &m->seq) < 0)
            return WEFT_EPROTO;
        return 0;
    case PR_ACK_WINDOW:
        if (need_circuit(f, m) < 0)
            return WEFT_EPROTO;
        return decode_ack(f, m);
    default:
        return 0;
    }
}

int weft__msg_decode(const pr_frame *f, weft_msg *m)
{
    int r;

    m->type = f->type;
    m->flags = f->flags;
    m->circuit = m->seq = m->window = m->rwnd = m->ack_seq = 0;
    m->has_ack_seq = 0;
    m->err = 0;
    m->err_msg[0] = m->service[0] = m->terminator[0] = m->router_id[0] = '\0';
    m->caps = m->retry_ms = 0;
    m->nonce = m->mac = NULL;
    m->kx_pk = m->sig = NULL;
    m->sig_len = 0;
    m->cert[0] = '\0';
    m->body = f->body;
    m->body_len = f->body_len;
    r = pr_frame_u32(f, PR_H_REQ_ID, &m->req_id);
    if (r < 0 && r != WEFT_ENOTFOUND)
        return WEFT_EPROTO;
    m->has_req = r == 0 && m->req_id != 0; /* ids are never 0: the encoders leave it out */
    if (decode_err(f, m) < 0 || opt_str(f, PR_H_SERVICE, m->service, sizeof(m->service)) < 0 ||
        opt_str(f, PR_H_TERMINATOR, m->terminator, sizeof(m->terminator)) < 0 ||
        opt_str(f, PR_H_ROUTER_ID, m->router_id, sizeof(m->router_id)) < 0 ||
        opt_u64(f, PR_H_CIRCUIT, &m->circuit) < 0)
        return WEFT_EPROTO;
    return decode_type(f, m);
}

int weft__msg_hello(uint8_t *buf, size_t cap, const char *imei, const char *iccid, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_HELLO, 0);
    pr_enc_str(&e, PR_H_VERSION, WEFT_VERSION);
    if (imei && imei[0])
        pr_enc_str(&e, PR_H_HW_IMEI, imei);
    if (iccid && iccid[0])
        pr_enc_str(&e, PR_H_HW_ICCID, iccid);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_bind(uint8_t *buf, size_t cap, uint32_t req, const char *token, const char *service,
                   size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_BIND, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_str(&e, PR_H_TOKEN, token);
    pr_enc_str(&e, PR_H_SERVICE, service);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_unbind(uint8_t *buf, size_t cap, uint32_t req, const char *service, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_UNBIND, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_str(&e, PR_H_SERVICE, service);
    return pr_enc_finish(&e, NULL, 0, len);
}

static void enc_kx(pr_enc *e, const weft_dial_msg *d)
{
    pr_enc_bytes(e, PR_H_KX_PK, d->kx_pk, WEFT_E2E_PK_LEN);
    pr_enc_bytes(e, PR_H_KX_SIG, d->sig, d->sig_len);
    pr_enc_str(e, PR_H_PEER_CERT, d->cert);
    if (d->rwnd)
        pr_enc_u64(e, PR_H_RWND, d->rwnd);
}

int weft__msg_dial(uint8_t *buf, size_t cap, const weft_dial_msg *d, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_DIAL, 0);
    if (d->req_id)
        pr_enc_u32(&e, PR_H_REQ_ID, d->req_id);
    if (d->circuit)
        pr_enc_u64(&e, PR_H_CIRCUIT, d->circuit);
    if (d->token)
        pr_enc_str(&e, PR_H_TOKEN, d->token);
    pr_enc_str(&e, PR_H_SERVICE, d->service);
    enc_kx(&e, d);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_dial_ok(uint8_t *buf, size_t cap, const weft_dial_msg *d, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_DIAL_OK, 0);
    if (d->req_id)
        pr_enc_u32(&e, PR_H_REQ_ID, d->req_id);
    pr_enc_u64(&e, PR_H_CIRCUIT, d->circuit);
    enc_kx(&e, d);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_dial_fail(uint8_t *buf, size_t cap, uint64_t circuit, int err, const char *why,
                        size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_DIAL_FAIL, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    if (why)
        pr_enc_str(&e, PR_H_ERR_MSG, why);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_close(uint8_t *buf, size_t cap, uint64_t circuit, int err, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_ack(uint8_t *buf, size_t cap, uint64_t circuit, uint64_t window, int has_seq,
                  uint64_t seq, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_ACK_WINDOW, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u64(&e, PR_H_WINDOW, window);
    if (has_seq)
        pr_enc_u64(&e, PR_H_ACK_SEQ, seq);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_resume(uint8_t *buf, size_t cap, uint16_t type, const weft_resume_msg *r, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, type, 0);
    if (r->req_id)
        pr_enc_u32(&e, PR_H_REQ_ID, r->req_id);
    pr_enc_u64(&e, PR_H_CIRCUIT, r->circuit);
    if (r->anchor && r->anchor[0])
        pr_enc_str(&e, PR_H_ROUTER_ID, r->anchor);
    pr_enc_u64(&e, PR_H_ACK_SEQ, r->ack_seq);
    pr_enc_bytes(&e, PR_H_NONCE, r->nonce, WEFT_RESUME_NONCE);
    pr_enc_bytes(&e, PR_H_MAC, r->mac, WEFT_RESUME_MAC);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_pong(uint8_t *buf, size_t cap, const weft_msg *ping, size_t *len)
{
    pr_enc e;

    pr_enc_init(&e, buf, cap, PR_EDGE_PONG, 0);
    if (ping->has_req)
        pr_enc_u32(&e, PR_H_REQ_ID, ping->req_id);
    return pr_enc_finish(&e, NULL, 0, len);
}

int weft__msg_payload_begin(uint8_t *buf, size_t cap, uint64_t circuit, uint64_t seq,
                            uint16_t flags, size_t *body_off)
{
    pr_enc e;

    if (cap < WEFT_PAYLOAD_HDR_MAX)
        return WEFT_ETOOBIG;
    pr_enc_init(&e, buf, WEFT_PAYLOAD_HDR_MAX, PR_PAYLOAD_DATA, flags);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u64(&e, PR_H_SEQ, seq);
    return pr_enc_finish(&e, NULL, 0, body_off);
}

size_t weft__msg_payload_end(uint8_t *buf, size_t body_off, size_t body_len)
{
    /* body_len is the big-endian u32 at offset 12 (proto/PROTOCOL.md 2.1);
     * the caller keeps body_len <= PR_FRAME_MAX_BODY. */
    buf[12] = (uint8_t)(body_len >> 24);
    buf[13] = (uint8_t)(body_len >> 16);
    buf[14] = (uint8_t)(body_len >> 8);
    buf[15] = (uint8_t)body_len;
    return body_off + body_len;
}
