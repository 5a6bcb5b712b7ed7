/* Circuits: dial and accept (end-to-end key exchange), the data path with
 * end-to-end flow control and reliability, half-close and close. The data
 * path allocates nothing per frame: messages are sealed straight into the
 * conn's retransmission queue (or the ctx's frame buffer for a peer that
 * acknowledges nothing), which pr_conn_write copies into the TLS queue; what
 * the window holds back waits in the conn's send ring. The conn's buffers
 * are allocated when first needed and released when the circuit is idle
 * (flow.h, "Per-circuit buffers"). */
#include <stdlib.h>
#include <string.h>

#include "edge/lib/weft_int.h"
#include "proto/log.h"

static const char *const state_names[] = {
#define XX(s) #s,
    CONN_STATES(XX)
#undef XX
};

static void change_state(weft_conn *c, int st)
{
    pr_debug("edge_circuit_state", "circuit=%016llx service=%s from=%s to=%s",
             (unsigned long long)c->circuit, c->service, state_names[c->state], state_names[st]);
    c->state = st;
}

/* ---- lookup ---- */

static unsigned bucket(uint64_t circuit)
{
    return (unsigned)((circuit ^ (circuit >> 29)) * 0x9E3779B97F4A7C15ull >> 56) %
           WEFT_HASH_BUCKETS;
}

static void hash_add(weft_conn *c)
{
    weft_conn **b = &c->ctx->hash[bucket(c->circuit)];

    c->hnext = *b;
    *b = c;
    c->hashed = 1;
}

static void hash_del(weft_conn *c)
{
    weft_conn **p;

    if (!c->hashed)
        return;
    for (p = &c->ctx->hash[bucket(c->circuit)]; *p; p = &(*p)->hnext)
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    c->hashed = 0;
}

weft_conn *weft__conn_by_circuit(weft_ctx *ctx, uint64_t circuit)
{
    weft_conn *c;

    for (c = ctx->hash[bucket(circuit)]; c; c = c->hnext)
        if (c->circuit == circuit)
            return c;
    return NULL;
}

weft_conn *weft__conn_by_req(weft_ctx *ctx, uint32_t req)
{
    weft_conn *c;

    for (c = ctx->conns; c; c = c->next)
        if (c->state == CS_DIALING && c->req_id == req)
            return c;
    return NULL;
}

/* ---- life ---- */

static weft_conn *conn_new(weft_ctx *ctx, const char *service, int role)
{
    weft_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    weft__ring_init(&c->sendq, ctx->window);
    weft__ring_init(&c->recvq, ctx->window + WEFT_CHUNK_MAX);
    c->ctx = ctx;
    snprintf(c->service, sizeof(c->service), "%s", service);
    weft__txflow_init(&c->tx, WEFT_RWND_DEFAULT); /* until the peer says */
    weft__rxflow_init(&c->rx, ctx->window);
    weft__reorder_init(&c->ooo, ctx->window + 2 * PR_FRAME_MAX_BODY);
    c->rto_ms = WEFT_RTO_MIN_MS;
    if (weft__e2e_init(&c->e2e, role) < 0) {
        free(c);
        return NULL;
    }
    c->next = ctx->conns;
    ctx->conns = c;
    return c;
}

static void conn_free(weft_conn *c)
{
    weft_conn **p;

    hash_del(c);
    for (p = &c->ctx->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    for (p = &c->ctx->dirty; c->dirty && *p; p = &(*p)->dnext)
        if (*p == c) {
            *p = c->dnext;
            break;
        }
    weft__ring_free(&c->sendq);
    weft__ring_free(&c->recvq);
    weft__rtxq_free(&c->rtxq);
    weft__reorder_free(&c->ooo);
    weft__e2e_wipe(&c->e2e);
    free(c);
}

/* ---- frames of a circuit ---- */

static int send_close(weft_conn *c, int err)
{
    size_t len;

    if (weft__msg_close(c->ctx->fbuf, PR_FRAME_MAX, c->circuit, err, &len) < 0)
        return WEFT_EPROTO;
    return weft__send(c->sess, len);
}

/* Acknowledges the frames received in order and, with grant, the bytes
 * consumed since the last grant; both counts are cumulative, so a lost or
 * repeated ack does no harm. */
static int send_ack(weft_conn *c, int grant)
{
    uint64_t w = grant ? weft__rxflow_grant(&c->rx) : c->rx.granted;
    size_t len;

    if (c->resume_req != 0)
        return 0; /* the next ack after the switch covers it (credit is cumulative) */
    c->acked_next = c->rx_seq;
    if (weft__msg_ack(c->ctx->fbuf, PR_FRAME_MAX, c->circuit, w, c->rx_seq > 0, c->rx_seq - 1,
                      &len) < 0)
        return WEFT_EPROTO;
    return weft__send(c->sess, len);
}

/* Marks the first n queued bytes as handed to the transport; write requests
 * whose last byte went complete (their callbacks run from the idle pass). */
static void account_sent(weft_conn *c, size_t n)
{
    weft_wreq *w;

    while (c->wr_done < c->wr_n) {
        w = &c->wr[(c->wr_head + c->wr_done) % WEFT_WRITES_MAX];
        if (w->left > n) {
            w->left -= n;
            return;
        }
        n -= w->left;
        w->left = 0;
        c->wr_done++;
        weft__mark_dirty(c);
    }
}

/* Room for a payload frame with n bytes of plaintext in *f: in the
 * retransmission queue unless the peer acknowledges nothing. WEFT_ENOBUFS
 * when the queue is full of frames a reliable peer has not acknowledged yet
 * (the sender waits), WEFT_ENOMEM when it cannot grow. */
static int frame_room(weft_conn *c, size_t n, uint8_t **f)
{
    size_t max = WEFT_PAYLOAD_HDR_MAX + n + WEFT_E2E_ABYTES;
    int r;

    *f = c->ctx->fbuf;
    if (c->rtx_mode == RTX_OFF)
        return 0;
    /* A peer that may never acknowledge must not stall us: forget its oldest. */
    while ((r = weft__rtxq_reserve(&c->rtxq, max, f)) == WEFT_ENOBUFS &&
           c->rtx_mode == RTX_UNKNOWN && c->rtxq.n > 0)
        weft__rtxq_drop_oldest(&c->rtxq);
    return r;
}

/* The frame is kept and its seq used whether or not the session takes it:
 * the stream state moved on when it was sealed, and a lost session is what
 * retransmission is for. */
static void frame_sent(weft_conn *c, const uint8_t *f, size_t len)
{
    if (c->rtx_mode != RTX_OFF) {
        if (c->rtxq.n == 0)
            c->rtx_at = weft__now(c->ctx); /* the timer runs from the oldest frame */
        weft__rtxq_commit(&c->rtxq, c->tx_seq, len);
    }
    c->tx_seq++;
    weft__send_buf(c->sess, f, len);
}

static int send_msg(weft_conn *c, const uint8_t *p, size_t n, uint16_t flags)
{
    static const uint8_t empty[1];
    size_t off, clen, cap = WEFT_PAYLOAD_HDR_MAX + n + WEFT_E2E_ABYTES;
    uint8_t *f;
    int r;

    if (n > WEFT_CHUNK_MAX)
        return WEFT_ETOOBIG;
    if ((r = frame_room(c, n, &f)) < 0)
        return r;
    if ((r = weft__msg_payload_begin(f, cap, c->circuit, c->tx_seq, flags, &off)) < 0)
        return r;
    if ((r = weft__e2e_seal(&c->e2e, n ? p : empty, n, flags & PR_PF_FIN, f + off, cap - off,
                            &clen)) < 0)
        return r;
    c->tx.sent += n;
    account_sent(c, n);
    frame_sent(c, f, weft__msg_payload_end(f, off, clen));
    return 0;
}

/* The seq 0 frame: our stream header, no message. */
static int send_header(weft_conn *c)
{
    uint8_t *f;
    size_t off;
    int r;

    if ((r = frame_room(c, sizeof(c->tx_hdr), &f)) < 0)
        return r;
    if ((r = weft__msg_payload_begin(f, WEFT_PAYLOAD_HDR_MAX + sizeof(c->tx_hdr), c->circuit,
                                     c->tx_seq, 0, &off)) < 0)
        return r;
    memcpy(f + off, c->tx_hdr, sizeof(c->tx_hdr));
    frame_sent(c, f, weft__msg_payload_end(f, off, sizeof(c->tx_hdr)));
    return 0;
}

int weft__conn_retransmit(weft_conn *c)
{
    const weft_rtx_ent *e;
    unsigned i;
    int r = 0;

    if (c->state != CS_OPEN || c->rtx_mode == RTX_OFF || c->resume_req != 0)
        return 0;
    for (i = 0; i < c->rtxq.n && r == 0; i++) {
        e = weft__rtxq_at(&c->rtxq, i);
        r = weft__send_buf(c->sess, c->rtxq.buf + e->off, e->len);
    }
    c->rtx_at = weft__now(c->ctx);
    return r;
}

static void cancel_writes(weft_conn *c)
{
    unsigned i;

    for (i = c->wr_done; i < c->wr_n; i++) {
        c->wr[(c->wr_head + i) % WEFT_WRITES_MAX].status = WEFT_ECANCELED;
        c->wr[(c->wr_head + i) % WEFT_WRITES_MAX].left = 0;
    }
    if (c->wr_done < c->wr_n)
        weft__mark_dirty(c);
    c->wr_done = c->wr_n;
    weft__ring_consume(&c->sendq, c->sendq.len);
}

/* The circuit is gone at the router: err 0 after the peer's FIN is a
 * graceful end, anything else reaches the reader as an error. */
static void circuit_gone(weft_conn *c, int err)
{
    hash_del(c);
    if (c->state == CS_CLOSING || c->state == CS_DONE)
        return;
    if (err != 0 || !c->fin_rcvd)
        c->err = err ? err : WEFT_ERESET;
    cancel_writes(c);
    change_state(c, CS_DONE);
    weft__mark_dirty(c);
}

/* A local protocol failure: tell the far end, then end like a reset. */
static void conn_abort(weft_conn *c, int err, const char *why)
{
    pr_warn("edge_circuit_abort", "circuit=%016llx service=%s err=%s why=%s",
            (unsigned long long)c->circuit, c->service, weft_err_name(err), pr_log_q(why));
    if (c->hashed)
        send_close(c, err);
    circuit_gone(c, err);
}

/* Both directions ended: release the circuit at the router, once a reliable
 * peer acknowledged our FIN (else a lost FIN would end in a reset). */
static void maybe_done(weft_conn *c)
{
    if (c->state != CS_OPEN || !c->fin_sent || !c->fin_rcvd ||
        (c->rtx_mode == RTX_ON && c->rtxq.n > 0))
        return;
    send_close(c, 0);
    hash_del(c);
    change_state(c, CS_DONE);
}

/* ---- send side ---- */

static void pump(weft_conn *c)
{
    const uint8_t *p;
    size_t n;
    int r;

    if (c->state != CS_OPEN || c->resume_req != 0)
        return;
    while (c->sendq.len > 0 && weft__sess_writable(c->sess)) {
        n = weft__chunk_len(weft__ring_peek(&c->sendq, &p), weft__txflow_credit(&c->tx));
        if (n == 0)
            return; /* no credit: a grant resumes */
        if ((r = send_msg(c, p, n, 0)) == WEFT_ENOMEM)
            return conn_abort(c, r, "no memory for the retransmission queue");
        if (r < 0)
            return; /* the retransmission queue is full: an ack resumes */
        weft__ring_consume(&c->sendq, n);
    }
    if (c->shut_req && !c->fin_sent && c->sendq.len == 0 && weft__sess_writable(c->sess) &&
        send_msg(c, NULL, 0, PR_PF_FIN) == 0) {
        c->fin_sent = 1;
        maybe_done(c);
    }
}

void weft__conns_pump(weft_ctx *ctx, weft_rsess *s)
{
    weft_conn *c;

    for (c = ctx->conns; c; c = c->next)
        if (s == NULL || c->sess == s)
            pump(c);
}

static int write_check(const weft_conn *c, const void *buf, size_t len)
{
    if (c == NULL || (buf == NULL && len > 0))
        return WEFT_EINVAL;
    if (c->state == CS_CLOSING || c->shut_req)
        return WEFT_ECLOSED;
    if (c->state == CS_DONE)
        return c->err ? c->err : WEFT_ECLOSED;
    if (c->wr_n == WEFT_WRITES_MAX)
        return WEFT_ENOBUFS;
    return 0;
}

/* What goes straight to the transport: what the window allows when nothing
 * waits. Bytes always fit the retransmission queue (it holds a window);
 * frames may not, when many small ones wait for an ack. */
static size_t direct_len(const weft_conn *c, size_t len)
{
    size_t direct = 0;

    if (c->state == CS_OPEN && c->sendq.len == 0 && c->resume_req == 0 &&
        weft__sess_writable(c->sess))
        direct = weft__txflow_credit(&c->tx) < len ? (size_t)weft__txflow_credit(&c->tx) : len;
    if (c->rtx_mode == RTX_ON && direct > (WEFT_RTX_FRAMES - c->rtxq.n) * (size_t)WEFT_CHUNK_MAX)
        direct = (WEFT_RTX_FRAMES - c->rtxq.n) * (size_t)WEFT_CHUNK_MAX;
    return direct;
}

int weft_write(weft_conn *c, const void *buf, size_t len, weft_write_cb cb, void *data)
{
    const uint8_t *p = buf;
    size_t direct, off = 0, n;
    weft_wreq *w;
    int r;

    if ((r = write_check(c, buf, len)) < 0)
        return r;
    direct = direct_len(c, len);
    /* Room for the rest first: a write that cannot be queued changes nothing. */
    if ((r = weft__ring_reserve(&c->sendq, len - direct)) < 0)
        return r;
    w = &c->wr[(c->wr_head + c->wr_n++) % WEFT_WRITES_MAX];
    *w = (weft_wreq){cb, data, len, 0};
    if (len == 0 && c->wr_done == c->wr_n - 1)
        account_sent(c, 0);
    while (off < direct) {
        n = direct - off < WEFT_CHUNK_MAX ? direct - off : WEFT_CHUNK_MAX;
        if ((r = send_msg(c, p + off, n, 0)) < 0)
            break; /* the retransmission queue is full: the rest waits for acks */
        off += n;
    }
    if (r == WEFT_ENOMEM)
        conn_abort(c, r, "no memory for the retransmission queue");
    else if (off < len && (r = weft__ring_push(&c->sendq, p + off, len - off)) < 0)
        conn_abort(c, r, r == WEFT_ENOMEM ? "no memory for the send queue" : "send queue overrun");
    return 0;
}

size_t weft_write_queue_size(const weft_conn *c)
{
    return c ? c->sendq.len : 0;
}

int weft_shutdown(weft_conn *c)
{
    if (c == NULL)
        return WEFT_EINVAL;
    if (c->state != CS_OPEN && c->state != CS_ACCEPTING)
        return c->err ? c->err : WEFT_ECLOSED;
    c->shut_req = 1;
    pump(c);
    return 0;
}

/* ---- receive side ---- */

static void consumed(weft_conn *c, size_t n)
{
    if (weft__rxflow_consume(&c->rx, n) && c->state == CS_OPEN && c->hashed)
        send_ack(c, 1);
}

static void deliver(weft_conn *c, const uint8_t *p, size_t n)
{
    int r;

    if (c->reading && c->recvq.len == 0) {
        c->read_cb(c, p, (ssize_t)n);
        consumed(c, n);
        return;
    }
    /* Cannot overflow: the ring holds a window and a message, and rxflow
     * refused anything more. */
    if ((r = weft__ring_push(&c->recvq, p, n)) == WEFT_ENOMEM)
        conn_abort(c, r, "no memory for the receive buffer");
    else if (r < 0)
        conn_abort(c, WEFT_EPROTO, "receive buffer overrun");
    else if (c->reading)
        weft__mark_dirty(c);
}

static int open_msg(weft_conn *c, uint16_t flags, const uint8_t *body, size_t len, size_t *n,
                    int *final)
{
    int r;

    if (len > PR_FRAME_MAX_BODY)
        return WEFT_ETOOBIG;
    if ((r = weft__e2e_open(&c->e2e, body, len, c->ctx->pbuf, PR_FRAME_MAX_BODY, n, final)) < 0)
        return r;
    /* The FIN flag is the router's to see; the FINAL tag is what proves it. */
    if (*final != !!(flags & PR_PF_FIN))
        return WEFT_ECRYPTO;
    return 0;
}

/* The frame with the next seq: decrypted and delivered. */
static void take_next(weft_conn *c, uint16_t flags, const uint8_t *body, size_t len)
{
    size_t n;
    int final, r;

    c->rx_seq++;
    if (c->fin_rcvd)
        return conn_abort(c, WEFT_EPROTO, "payload after FIN");
    if (!weft__e2e_rx_ready(&c->e2e)) {
        if ((r = weft__e2e_rx_start(&c->e2e, body, len)) < 0)
            conn_abort(c, r, "bad stream header");
        return;
    }
    if ((r = open_msg(c, flags, body, len, &n, &final)) < 0)
        return conn_abort(c, r, "payload failed authentication: forged or truncated");
    if (n > 0 && weft__rxflow_recv(&c->rx, n) < 0)
        return conn_abort(c, WEFT_EPROTO, "peer overran the window");
    if (n > 0)
        deliver(c, c->ctx->pbuf, n);
    if (final && c->state == CS_OPEN) {
        c->fin_rcvd = 1;
        send_ack(c, 0); /* at once: the peer waits for it to release the circuit */
        weft__mark_dirty(c);
        maybe_done(c);
    }
}

/* A frame ahead of a gap waits (bounded: one window, WEFT_REORDER_SLOTS
 * frames); one that does not fit is dropped and comes again. */
static void hold_early(weft_conn *c, const weft_msg *m)
{
    int r;

    if (c->fin_rcvd)
        return conn_abort(c, WEFT_EPROTO, "payload after FIN");
    r = weft__reorder_put(&c->ooo, c->rx_seq, m->seq, m->flags, m->body, m->body_len);
    if (r == WEFT_ENOMEM)
        conn_abort(c, r, "no memory for the reorder buffer");
}

static void on_payload(weft_conn *c, const weft_msg *m)
{
    const uint8_t *body;
    uint16_t flags;
    size_t len;

    if (m->seq < c->rx_seq) { /* a duplicate: say again how far we are */
        send_ack(c, 0);
        return;
    }
    if (m->seq > c->rx_seq)
        return hold_early(c, m);
    take_next(c, m->flags, m->body, m->body_len);
    while (c->state == CS_OPEN &&
           weft__reorder_take(&c->ooo, c->rx_seq, &flags, &body, &len)) {
        take_next(c, flags, body, len);
        weft__reorder_release(&c->ooo, c->rx_seq - 1);
    }
    if (c->state == CS_OPEN && c->rx_seq - c->acked_next >= WEFT_ACK_EVERY)
        send_ack(c, 0);
}

/* An acknowledgement: credit, and the frames the peer holds in order. */
static void on_ack(weft_conn *c, const weft_msg *m)
{
    if (m->has_ack_seq) {
        if (m->ack_seq >= c->tx_seq)
            return conn_abort(c, WEFT_EPROTO, "acknowledgement of a frame never sent");
        if (c->rtx_mode == RTX_UNKNOWN)
            c->rtx_mode = RTX_ON;
        if (c->rtxq.n > 0 && weft__rtxq_at(&c->rtxq, 0)->seq <= m->ack_seq) {
            c->rtx_at = weft__now(c->ctx);
            c->rto_ms = WEFT_RTO_MIN_MS;
        }
        weft__rtxq_ack(&c->rtxq, m->ack_seq);
    } else if (c->rtx_mode == RTX_UNKNOWN) {
        c->rtx_mode = RTX_OFF;
        weft__rtxq_free(&c->rtxq);
    }
    if (weft__txflow_grant(&c->tx, m->window) < 0)
        return conn_abort(c, WEFT_EPROTO, "credit for bytes never sent");
    pump(c);
    maybe_done(c);
}

void weft__conn_frame(weft_conn *c, const weft_msg *m)
{
    switch (m->type) {
    case PR_PAYLOAD_DATA:
        if (c->state == CS_OPEN)
            on_payload(c, m);
        break;
    case PR_ACK_WINDOW:
        if (c->state == CS_OPEN)
            on_ack(c, m);
        break;
    case PR_EDGE_CLOSE:
    case PR_EDGE_DIAL_FAIL:
        pr_debug("edge_circuit_closed", "circuit=%016llx err=%s", (unsigned long long)c->circuit,
                 m->err ? weft_err_name(m->err) : "none");
        circuit_gone(c, m->err);
        break;
    }
}

int weft_read_start(weft_conn *c, weft_read_cb cb)
{
    if (c == NULL || cb == NULL)
        return WEFT_EINVAL;
    if (c->state == CS_CLOSING)
        return WEFT_ECLOSED;
    c->read_cb = cb;
    c->reading = 1;
    if (c->recvq.len > 0 || (c->fin_rcvd && !c->eof_given) || (c->err && !c->err_given))
        weft__mark_dirty(c);
    return 0;
}

int weft_read_stop(weft_conn *c)
{
    if (c == NULL)
        return WEFT_EINVAL;
    c->reading = 0; /* no consumption, so no credit: the sender stalls */
    return 0;
}

/* ---- deferred callbacks (the idle pass) ---- */

static int flush_writes(weft_conn *c)
{
    weft_wreq w;

    if (c->wr_done == 0)
        return 0;
    w = c->wr[c->wr_head];
    c->wr_head = (c->wr_head + 1) % WEFT_WRITES_MAX;
    c->wr_n--;
    c->wr_done--;
    if (w.cb)
        w.cb(c, w.status, w.data);
    return 1;
}

static int flush_reads(weft_conn *c)
{
    const uint8_t *p;
    size_t n;

    if (!c->reading || c->state == CS_CLOSING)
        return 0;
    if (c->recvq.len > 0) {
        n = weft__ring_peek(&c->recvq, &p);
        c->read_cb(c, p, (ssize_t)n);
        weft__ring_consume(&c->recvq, n);
        consumed(c, n);
        return 1;
    }
    if (c->fin_rcvd && !c->eof_given) {
        c->eof_given = 1;
        c->read_cb(c, NULL, WEFT_ECLOSED);
        return 1;
    }
    if (c->err && !c->err_given) {
        c->err_given = 1;
        c->read_cb(c, NULL, c->err);
        return 1;
    }
    return 0;
}

void weft__conn_flush(weft_conn *c)
{
    weft_close_cb cb;

    while (flush_writes(c) || flush_reads(c))
        ;
    if (c->state != CS_CLOSING)
        return;
    cb = c->close_cb;
    if (cb)
        cb(c);
    conn_free(c);
}

/* ---- dial ---- */

static void dial_fail(weft_conn *c, int err)
{
    weft_dial_cb cb = c->dial_cb;
    void *data = c->dial_data;
    weft_ctx *ctx = c->ctx;

    conn_free(c);
    cb(NULL, err, data);
    ctx->last_err[0] = '\0'; /* the reason belongs to this callback only */
}

static int dial_send(weft_conn *c, weft_rsess *s)
{
    weft_ctx *ctx = c->ctx;
    const weft_svc *svc = weft__sessdata_find(&ctx->sd, c->service);
    uint8_t sig[WEFT_E2E_SIG_MAX];
    weft_dial_msg d = {0};
    size_t len;
    int r;

    if (svc == NULL || svc->dial_token == NULL)
        return svc ? WEFT_ENOPOLICY : WEFT_ENOTFOUND;
    if ((r = weft__e2e_sign(&c->e2e, ctx->id.key_pem, c->service, sig, &d.sig_len)) < 0)
        return r;
    d = (weft_dial_msg){weft__req_id(ctx), 0,         svc->dial_token,  c->service,
                        weft__e2e_pk(&c->e2e), sig, d.sig_len, ctx->id.cert_pem, ctx->window};
    if ((r = weft__msg_dial(ctx->fbuf, PR_FRAME_MAX, &d, &len)) < 0)
        return r;
    c->req_id = d.req_id;
    c->sess = s;
    change_state(c, CS_DIALING);
    pr_debug("edge_dial_sent", "service=%s router=%s srtt_us=%llu", c->service, s->addr,
             (unsigned long long)s->srtt_us);
    weft__send(s, len);
    return 0;
}

/* Each waiting dial goes on the nearest session whose router may carry it
 * (avoid.c), or fails when no router may. */
void weft__dials_send(weft_ctx *ctx)
{
    weft_conn *c, *next;
    weft_rsess *s;
    int r;

    for (c = ctx->conns; c; c = next) {
        next = c->next;
        if (c->state != CS_DIAL_WAIT)
            continue;
        if ((r = weft__dial_route(ctx, c, &s)) == 0 && s != NULL)
            r = dial_send(c, s);
        if (r < 0) {
            pr_warn("edge_dial_failed", "service=%s err=%s msg=%s", c->service, weft_err_name(r),
                    pr_log_q(ctx->last_err));
            dial_fail(c, r);
        }
    }
}

int weft_dial(weft_ctx *ctx, const char *service, weft_dial_cb cb, void *data)
{
    const weft_svc *svc = NULL;
    weft_conn *c;

    if (ctx == NULL || service == NULL || cb == NULL || strlen(service) >= WEFT_NAME_MAX)
        return WEFT_EINVAL;
    if (ctx->freeing)
        return WEFT_ECANCELED;
    if (ctx->have_sd && (svc = weft__sessdata_find(&ctx->sd, service)) == NULL)
        return WEFT_ENOTFOUND;
    if (ctx->have_sd && svc->dial_token == NULL)
        return WEFT_ENOPOLICY;
    if ((c = conn_new(ctx, service, WEFT_E2E_CLIENT)) == NULL)
        return WEFT_ENOMEM;
    c->dial_cb = cb;
    c->dial_data = data;
    c->deadline = weft__now(ctx) + WEFT_REQ_TIMEOUT_MS;
    weft__dials_send(ctx);
    return 0;
}

/* Our end is keyed: start our stream, keep to the peer's window (absent:
 * the default of every edge before it was announced, capped to what we
 * keep for retransmission) and set up the retransmission queue for it. */
static int keys_up(weft_conn *c, const weft_msg *m)
{
    uint64_t w = m->rwnd ? m->rwnd : WEFT_RWND_DEFAULT;
    int r;

    if (w > WEFT_WINDOW_MAX)
        w = WEFT_WINDOW_MAX;
    weft__txflow_init(&c->tx, w);
    c->rtx_mode = m->rwnd ? RTX_ON : RTX_UNKNOWN; /* an edge that announces a window acks */
    weft__rtxq_init(&c->rtxq, weft__rtxq_cap_for(w));
    if ((r = weft__e2e_derive(&c->e2e, m->kx_pk, c->tx_hdr)) < 0)
        return r;
    hash_add(c);
    return 0;
}

void weft__dial_answer(weft_conn *c, const weft_msg *m)
{
    weft_ctx *ctx = c->ctx;
    int r;

    if (m->type != PR_EDGE_DIAL_OK && weft__dial_refused(c, m)) {
        change_state(c, CS_DIAL_WAIT); /* another router may carry it */
        c->sess = NULL;
        return weft__dials_send(ctx);
    }
    if (m->type != PR_EDGE_DIAL_OK) {
        r = m->err ? m->err : WEFT_EREFUSED;
        pr_warn("edge_dial_refused", "service=%s err=%s msg=%s", c->service, weft_err_name(r),
                pr_log_q(m->err_msg));
        snprintf(ctx->last_err, sizeof(ctx->last_err), "%s", m->err_msg);
        return dial_fail(c, r);
    }
    c->circuit = m->circuit;
    snprintf(c->anchor, sizeof(c->anchor), "%s", m->router_id);
    r = weft__e2e_verify_peer(ctx->id.ca_pem, ctx->id.network, m->cert, WEFT_E2E_SERVER, m->kx_pk,
                              c->service, m->sig, m->sig_len, c->peer, sizeof(c->peer));
    if (r == 0 && weft__conn_by_circuit(ctx, m->circuit) != NULL)
        r = WEFT_EEXISTS;
    if (r < 0 || (r = keys_up(c, m)) < 0) {
        pr_error("edge_host_rejected", "service=%s circuit=%016llx err=%s hint=%s", c->service,
                 (unsigned long long)m->circuit, weft_err_name(r),
                 pr_log_q("the host's certificate or key signature did not verify"));
        send_close(c, r);
        return dial_fail(c, r);
    }
    change_state(c, CS_OPEN);
    if ((r = send_header(c)) < 0) {
        pr_warn("edge_dial_failed", "service=%s err=%s msg=%s", c->service, weft_err_name(r),
                pr_log_q("no memory for the circuit's buffers"));
        send_close(c, r);
        return dial_fail(c, r);
    }
    pr_info("edge_dialled", "service=%s circuit=%016llx peer=%s", c->service,
            (unsigned long long)c->circuit, c->peer);
    c->dial_cb(c, 0, c->dial_data);
}

/* ---- accept ---- */

static void refuse(weft_ctx *ctx, weft_rsess *s, uint64_t circuit, int err, const char *why)
{
    size_t len;

    pr_warn("edge_dial_refused_here", "circuit=%016llx err=%s why=%s", (unsigned long long)circuit,
            weft_err_name(err), pr_log_q(why));
    if (weft__msg_dial_fail(ctx->fbuf, PR_FRAME_MAX, circuit, err, why, &len) == 0)
        weft__send(s, len);
}

static int answer_ok(weft_conn *c)
{
    weft_ctx *ctx = c->ctx;
    uint8_t sig[WEFT_E2E_SIG_MAX];
    weft_dial_msg d = {0};
    size_t len;
    int r;

    if ((r = weft__e2e_sign(&c->e2e, ctx->id.key_pem, c->service, sig, &d.sig_len)) < 0)
        return r;
    d = (weft_dial_msg){0,         c->circuit,       NULL,       c->service, weft__e2e_pk(&c->e2e),
                        sig,       d.sig_len, ctx->id.cert_pem, ctx->window};
    if ((r = weft__msg_dial_ok(ctx->fbuf, PR_FRAME_MAX, &d, &len)) < 0)
        return r;
    return weft__send(c->sess, len);
}

static weft_conn *accept_new(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_conn *c = conn_new(ctx, m->service, WEFT_E2E_SERVER);
    int r;

    if (c == NULL) {
        refuse(ctx, s, m->circuit, WEFT_ENOMEM, "host out of memory");
        return NULL;
    }
    c->sess = s;
    c->circuit = m->circuit;
    snprintf(c->anchor, sizeof(c->anchor), "%s", m->router_id);
    r = weft__e2e_verify_peer(ctx->id.ca_pem, ctx->id.network, m->cert, WEFT_E2E_CLIENT, m->kx_pk,
                              m->service, m->sig, m->sig_len, c->peer, sizeof(c->peer));
    if (r < 0 || (r = keys_up(c, m)) < 0) {
        refuse(ctx, s, m->circuit, r, "dialler certificate or key signature did not verify");
        conn_free(c);
        return NULL;
    }
    change_state(c, CS_ACCEPTING);
    return c;
}

/* The host's yes: keys are up, our stream starts, waiting writes go. */
static int accept_finish(weft_conn *c)
{
    int r;

    if ((r = answer_ok(c)) < 0)
        return r;
    change_state(c, CS_OPEN);
    if ((r = send_header(c)) < 0) {
        conn_abort(c, r, "no memory for the circuit's buffers");
        return r;
    }
    pr_info("edge_accepted", "service=%s circuit=%016llx peer=%s", c->service,
            (unsigned long long)c->circuit, c->peer);
    pump(c);
    return 0;
}

void weft__incoming_dial(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_listener *l = weft__listener_by_service(ctx, m->service);
    weft_conn *c;

    if (l == NULL || !l->bound[s->slot])
        return refuse(ctx, s, m->circuit, WEFT_ENOTFOUND, "not hosting this service");
    if (weft__conn_by_circuit(ctx, m->circuit) != NULL)
        return refuse(ctx, s, m->circuit, WEFT_EEXISTS, "circuit id already in use");
    if ((c = accept_new(ctx, s, m)) == NULL)
        return;
    c->in_accept = 1;
    l->accept_cb(c, l->data);
    c->in_accept = 0;
    if (c->state == CS_CLOSING) /* the application refused it */
        return refuse(ctx, s, c->circuit, c->close_err ? c->close_err : WEFT_EREFUSED,
                      "refused by the hosting application");
    if (c->state != CS_ACCEPTING) /* answered inside the callback */
        return;
    if (c->deferred) {
        c->deadline = weft__now(ctx) + WEFT_REQ_TIMEOUT_MS;
        return;
    }
    accept_finish(c);
}

int weft_accept_defer(weft_conn *c)
{
    if (c == NULL)
        return WEFT_EINVAL;
    if (c->state != CS_ACCEPTING || !c->in_accept)
        return WEFT_ECLOSED;
    c->deferred = 1;
    return 0;
}

int weft_accept(weft_conn *c)
{
    if (c == NULL)
        return WEFT_EINVAL;
    if (c->state != CS_ACCEPTING)
        return c->err ? c->err : WEFT_ECLOSED;
    c->deferred = 0;
    if (c->in_accept)
        return 0; /* the answer goes when accept_cb returns */
    return accept_finish(c);
}

int weft_reject(weft_conn *c, int err, const char *msg)
{
    if (c == NULL || err > 0)
        return WEFT_EINVAL;
    if (c->state != CS_ACCEPTING)
        return c->err ? c->err : WEFT_ECLOSED;
    err = err ? err : WEFT_EREFUSED;
    refuse(c->ctx, c->sess, c->circuit, err, msg ? msg : "refused by the hosting application");
    hash_del(c);
    c->err = err;
    cancel_writes(c);
    change_state(c, CS_DONE);
    weft__mark_dirty(c);
    return 0;
}

const char *weft_last_error_msg(const weft_ctx *ctx)
{
    return ctx ? ctx->last_err : "";
}

/* ---- close ---- */

void weft_close(weft_conn *c, weft_close_cb cb)
{
    weft_close_err(c, 0, cb);
}

void weft_close_err(weft_conn *c, int err, weft_close_cb cb)
{
    if (c == NULL || c->state == CS_CLOSING)
        return;
    if (err > 0)
        err = WEFT_EINVAL;
    c->close_cb = cb;
    c->close_err = err;
    if (c->hashed && c->state == CS_OPEN)
        send_close(c, err);
    else if (c->hashed && c->state == CS_ACCEPTING && !c->in_accept) /* deferred, never answered */
        refuse(c->ctx, c->sess, c->circuit, err ? err : WEFT_EREFUSED,
               "closed by the hosting application");
    hash_del(c);
    cancel_writes(c);
    change_state(c, CS_CLOSING);
    weft__mark_dirty(c);
}

/* The other session, when the ctx holds two. */
static weft_rsess *other_sess(weft_ctx *ctx, const weft_rsess *s)
{
    for (int i = 0; i < ctx->nsess; i++)
        if (&ctx->sess[i] != s && weft__rsess_ready(&ctx->sess[i]))
            return &ctx->sess[i];
    return NULL;
}

/* Circuits over a lost session move to the other session when its router
 * carries EDGE_RESUME (docs/dataplane.md, "Re-homing live circuits"), else
 * they end; its dials go again on the other session at once, or on the next
 * to come up, within their 10 s. */
void weft__conns_session_lost(weft_ctx *ctx, weft_rsess *s)
{
    weft_rsess *o = other_sess(ctx, s);
    weft_conn *c;

    for (c = ctx->conns; c; c = c->next) {
        if (c->sess != s)
            continue;
        if (c->state == CS_DIALING) {
            change_state(c, CS_DIAL_WAIT);
            c->sess = NULL;
        } else if (c->state == CS_OPEN && c->resume_req == 0 && weft__resume_possible(c, o)) {
            if (weft__resume_start(c, o) < 0)
                circuit_gone(c, WEFT_ERESET);
        } else if (c->state == CS_OPEN || c->state == CS_ACCEPTING) {
            circuit_gone(c, WEFT_ERESET);
        }
    }
    weft__dials_send(ctx);
}

void weft__conn_gone(weft_conn *c, int err)
{
    circuit_gone(c, err);
}

void weft__conn_pump(weft_conn *c)
{
    pump(c);
}

int weft__conn_ack(weft_conn *c)
{
    return c->state == CS_OPEN && c->hashed ? send_ack(c, 0) : 0;
}

int weft__conns_open_on(const weft_ctx *ctx, const weft_rsess *s)
{
    int n = 0;

    for (const weft_conn *c = ctx->conns; c; c = c->next)
        if (c->sess == s && c->state != CS_CLOSING && c->state != CS_DONE &&
            c->state != CS_DIAL_WAIT)
            n++;
    return n;
}

/* Buffers unused for a while are released (or shrunk): an idle circuit
 * holds none. */
static void trim(weft_conn *c)
{
    weft__ring_trim(&c->sendq);
    weft__ring_trim(&c->recvq);
    weft__rtxq_trim(&c->rtxq);
    weft__reorder_trim(&c->ooo);
}

/* Delayed acks, and retransmission after rto_ms without progress (doubling
 * while nothing moves): frames are lost only when a path dies, and a session
 * whose own queue is not drained is not a path that lost anything. */
static void open_tick(weft_conn *c, uint64_t now)
{
    weft__resumes_tick(c, now);
    if (c->state != CS_OPEN || c->resume_req != 0)
        return;
    if (c->rx_seq != c->acked_next)
        send_ack(c, 0);
    if (c->rtx_mode != RTX_ON || c->rtxq.n == 0 || now - c->rtx_at < c->rto_ms ||
        !weft__sess_writable(c->sess))
        return;
    pr_debug("edge_circuit_retransmit", "circuit=%016llx frames=%u rto_ms=%u",
             (unsigned long long)c->circuit, c->rtxq.n, c->rto_ms);
    weft__conn_retransmit(c);
    c->rto_ms = c->rto_ms * 2 > WEFT_RTO_MAX_MS ? WEFT_RTO_MAX_MS : c->rto_ms * 2;
}

/* A dial a router policy refused once ends with that refusal, not a timeout. */
static void dial_expired(weft_conn *c)
{
    if (c->refused) {
        weft__no_router_msg(c->ctx, c->service);
        pr_warn("edge_dial_failed", "service=%s err=EDENIED msg=%s", c->service,
                pr_log_q(c->ctx->last_err));
        return dial_fail(c, WEFT_EDENIED);
    }
    pr_warn("edge_dial_timeout", "service=%s hint=%s", c->service,
            pr_log_q("no answer from the router; check it and the service's host"));
    dial_fail(c, WEFT_ETIMEDOUT);
}

void weft__conns_tick(weft_ctx *ctx, uint64_t now)
{
    weft_conn *c, *next;

    for (c = ctx->conns; c; c = next) {
        next = c->next;
        trim(c);
        if (c->state == CS_OPEN && c->hashed && (weft__rsess_ready(c->sess) || c->resume_req))
            open_tick(c, now);
        if (c->state == CS_ACCEPTING && c->deferred && c->deadline <= now) {
            pr_warn("edge_accept_timeout", "service=%s circuit=%016llx hint=%s", c->service,
                    (unsigned long long)c->circuit,
                    pr_log_q("the hosting application did not answer in 10 s"));
            weft_reject(c, WEFT_ETIMEDOUT, "the hosting application did not answer in 10 s");
        }
        if ((c->state == CS_DIAL_WAIT || c->state == CS_DIALING) && c->deadline <= now)
            dial_expired(c);
    }
}

void weft__conns_cancel_all(weft_ctx *ctx)
{
    weft_conn *c, *next;

    for (c = ctx->conns; c; c = next) {
        next = c->next;
        if (c->state == CS_DIAL_WAIT || c->state == CS_DIALING)
            dial_fail(c, WEFT_ECANCELED);
        else if (c->state != CS_CLOSING)
            weft_close(c, NULL);
    }
}

/* A DIAL_OK whose dial already gave up: release the circuit it made. */
void weft__late_dial_ok(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    size_t len;

    if (m->type == PR_EDGE_DIAL_OK &&
        weft__msg_close(ctx->fbuf, PR_FRAME_MAX, m->circuit, WEFT_ETIMEDOUT, &len) == 0)
        weft__send(s, len);
}

void *weft_conn_data(const weft_conn *c)
{
    return c ? c->data : NULL;
}

void weft_conn_set_data(weft_conn *c, void *data)
{
    if (c)
        c->data = data;
}

const char *weft_conn_service(const weft_conn *c)
{
    return c ? c->service : NULL;
}

const char *weft_conn_peer_identity(const weft_conn *c)
{
    return c ? c->peer : NULL;
}
