/* Fuzzes libweft's edge-message decoder (edge/lib/msg.c) behind the frame
 * decoder, as a router's frames reach it.
 *
 * Checks, beyond "no crash, no read out of bounds":
 *  - what the decoder hands out points inside the frame and fits its
 *    buffers (kx key, signature, strings NUL-terminated);
 *  - a message the decoder accepts and libweft would answer or forward
 *    (dial, answer, ack, resume) re-encodes with libweft's own encoders to a
 *    frame that decodes to the same content;
 *  - the reading of a refusal's reason (weft__refusal_kind, avoid.c) takes
 *    any decoded reason and names a router policy only for an EDENIED;
 *  - a router's EDGE_UNBIND (a bind withdrawn) always names its service. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/lib/msg.h"
#include "edge/lib/weft_int.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[PR_FRAME_MAX];

static void inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
    if (p == NULL)
        return;
    if (p < data || p + n > data + size)
        abort();
}

static void terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

static void same_dial(const weft_msg *a, const weft_msg *b)
{
    if (a->type != b->type || a->circuit != b->circuit || a->rwnd != b->rwnd ||
        a->sig_len != b->sig_len || memcmp(a->kx_pk, b->kx_pk, WEFT_E2E_PK_LEN) != 0 ||
        memcmp(a->sig, b->sig, a->sig_len) != 0 || strcmp(a->cert, b->cert) != 0)
        abort();
}

/* The dial and its answer round-trip through libweft's encoders. */
static void reencode_dial(const weft_msg *m)
{
    weft_dial_msg d = {m->has_req ? m->req_id : 0, m->circuit, NULL, m->service, m->kx_pk,
                       m->sig, m->sig_len, m->cert, m->rwnd};
    weft_msg back;
    pr_frame f;
    size_t n, used;
    int r;

    if (m->type == PR_EDGE_DIAL)
        r = weft__msg_dial(buf, sizeof(buf), &d, &n);
    else
        r = weft__msg_dial_ok(buf, sizeof(buf), &d, &n);
    if (r < 0)
        return; /* a certificate that fills the header map on its own */
    if (pr_frame_decode(buf, n, &f, &used) != 0 || used != n || weft__msg_decode(&f, &back) != 0)
        abort();
    same_dial(m, &back);
}

static void reencode_ack(const weft_msg *m)
{
    weft_msg back;
    pr_frame f;
    size_t n, used;

    if (weft__msg_ack(buf, sizeof(buf), m->circuit, m->window, m->has_ack_seq, m->ack_seq, &n) != 0)
        abort();
    if (pr_frame_decode(buf, n, &f, &used) != 0 || weft__msg_decode(&f, &back) != 0 ||
        back.window != m->window || back.has_ack_seq != m->has_ack_seq ||
        back.ack_seq != m->ack_seq || back.circuit != m->circuit)
        abort();
}

/* A resume and its answer round-trip too; nonce and MAC point into the frame. */
static void reencode_resume(const weft_msg *m)
{
    weft_resume_msg r = {m->has_req ? m->req_id : 0, m->circuit, m->router_id, m->ack_seq,
                         m->nonce, m->mac};
    weft_msg back;
    pr_frame f;
    size_t n, used;

    if (m->nonce == NULL || m->mac == NULL || !m->has_ack_seq)
        abort();
    if (weft__msg_resume(buf, sizeof(buf), m->type, &r, &n) != 0)
        abort();
    if (pr_frame_decode(buf, n, &f, &used) != 0 || weft__msg_decode(&f, &back) != 0 ||
        back.circuit != m->circuit || back.ack_seq != m->ack_seq ||
        memcmp(back.nonce, m->nonce, WEFT_RESUME_NONCE) != 0 ||
        memcmp(back.mac, m->mac, WEFT_RESUME_MAC) != 0 || strcmp(back.router_id, m->router_id) != 0)
        abort();
}

static void check(const weft_msg *m, const uint8_t *data, size_t size)
{
    terminated(m->service, sizeof(m->service));
    terminated(m->terminator, sizeof(m->terminator));
    terminated(m->err_msg, sizeof(m->err_msg));
    terminated(m->cert, sizeof(m->cert));
    terminated(m->router_id, sizeof(m->router_id));
    if (m->retry_ms != 0 && m->type != PR_EDGE_ERROR) /* a hint only refuses a session */
        abort();
    inside(m->nonce, WEFT_RESUME_NONCE, data, size);
    inside(m->mac, WEFT_RESUME_MAC, data, size);
    inside(m->kx_pk, WEFT_E2E_PK_LEN, data, size);
    inside(m->sig, m->sig_len, data, size);
    inside(m->body, m->body_len, data, size);
    if (m->sig_len > WEFT_E2E_SIG_MAX || (m->err != 0 && (m->err > -1000 || m->err < -1999) &&
                                          m->err != WEFT_EPROTO))
        abort();
    if ((m->type == PR_EDGE_DIAL || m->type == PR_EDGE_DIAL_OK) && m->kx_pk == NULL)
        abort();
    if (m->rwnd != 0 && (m->rwnd < WEFT_RWND_MIN || m->rwnd > WEFT_RWND_MAX))
        abort();
    if (m->type == PR_EDGE_DIAL || m->type == PR_EDGE_DIAL_OK)
        reencode_dial(m);
    if (m->type == PR_ACK_WINDOW)
        reencode_ack(m);
    if (m->type == PR_EDGE_RESUME || m->type == PR_EDGE_RESUME_OK)
        reencode_resume(m);
    if ((m->type == PR_EDGE_RETRANSMIT || m->type == PR_EDGE_RESUME_FAIL) && m->circuit == 0)
        abort();
    /* A withdrawn bind names the service the listener is found by. */
    if (m->type == PR_EDGE_UNBIND && m->service[0] == '\0')
        abort();
    /* A router's reason moves a session or a dial (avoid.c) only when it is an EDENIED. */
    if (weft__refusal_kind(m) != WEFT_REFUSAL_OTHER && m->err != WEFT_EDENIED)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, used;
    weft_msg m;
    pr_frame f;

    /* Every frame of the input, as pr_reader would deliver them. */
    while (off < size && pr_frame_decode(data + off, size - off, &f, &used) == 0) {
        memset(&m, 0xa5, sizeof(m)); /* the decoder must not rely on a clean struct */
        if (weft__msg_decode(&f, &m) == 0)
            check(&m, data, size);
        off += used;
    }
    return 0;
}
