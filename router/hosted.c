/* Router-hosted services: for a service whose "hosted_by" names this router,
 * the router is the terminator. It checks the dialler's certificate and kx
 * signature, connects to the service's host address and runs the host side
 * of the end-to-end protocol (proto/e2e.h), with the same flow control as an
 * edge: plaintext waits in one bounded buffer per circuit, and credit
 * (ACK_WINDOW) is granted only for bytes the service has taken. */
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/e2e.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "router/router.h"
#include "weft/errors.h"

#define WQ_CAP (PR_E2E_WINDOW + PR_E2E_MAX_MSG)
#define ACK_EVERY (PR_E2E_WINDOW / 4)

struct rt_hosted {
    rt_hosted *next, *prev;
    rt_router *r;
    rt_circuit *c; /* NULL once the circuit is gone */
    rt_end_list ends;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    int closed, connected, reading, tcp_eof, peer_fin, fin_sent, shut, shut_done, writing;
    pr_e2e_kx kx;
    pr_e2e_keys keys;
    pr_e2e_stream tx, rx;
    uint8_t sig[PR_E2E_SIG_MAX];
    size_t sig_len;
    uint64_t tx_seq, rx_seq, sent, peer_ack, consumed, acked;
    uint8_t *wq;
    size_t wq_len, inflight;
    uint8_t rbuf[PR_E2E_MAX_MSG];
};

static void close_cb(uv_handle_t *hd)
{
    rt_hosted *h = hd->data;

    sodium_memzero(&h->keys, sizeof(h->keys));
    free(h->wq);
    free(h);
}

/* Closes the service connection; the circuit is already gone or going. */
static void hosted_close(rt_hosted *h)
{
    rt_router *r = h->r;

    if (h->closed)
        return;
    h->closed = 1;
    h->c = NULL;
    if (h->prev)
        h->prev->next = h->next;
    else
        r->hosted = h->next;
    if (h->next)
        h->next->prev = h->prev;
    uv_close((uv_handle_t *)&h->tcp, close_cb);
}

void rt_hosted_abort(rt_hosted *h)
{
    hosted_close(h);
}

/* Ends the circuit from the host side (the dialler hears of it), then closes. */
static void fail(rt_hosted *h, int err, const char *msg)
{
    if (h->c)
        rt_circuit_end(h->r, h->c, 1, err, msg);
    hosted_close(h);
}

static int send_frame(rt_hosted *h, uint16_t type, uint16_t flags, const uint8_t *body,
                      size_t len, uint64_t window)
{
    rt_router *r = h->r;
    size_t n;
    pr_enc e;
    int rc;

    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, type, flags);
    pr_enc_u64(&e, PR_H_CIRCUIT, h->c->id);
    if (type == PR_PAYLOAD_DATA)
        pr_enc_u64(&e, PR_H_SEQ, h->tx_seq++);
    else
        pr_enc_u64(&e, PR_H_WINDOW, window);
    if ((rc = pr_enc_finish(&e, body, len, &n)) < 0)
        return rc;
    rc = rt_end_write(r, h->c, 0, r->txbuf, n);
    if (rc < 0) {
        fail(h, rc, "the dialling edge is not reading; circuit closed");
        return rc;
    }
    return rc; /* 1: the dialler's connection is full */
}

static int window_open(const rt_hosted *h)
{
    return h->sent - h->peer_ack < PR_E2E_WINDOW;
}

static void read_stop(rt_hosted *h)
{
    if (h->reading)
        uv_read_stop((uv_stream_t *)&h->tcp);
    h->reading = 0;
}

static void check_done(rt_hosted *h)
{
    if (h->c && h->fin_sent && h->peer_fin && h->shut_done) {
        rt_circuit_end(h->r, h->c, 1, 0, NULL);
        hosted_close(h);
    }
}

static void push_msg(rt_hosted *h, const uint8_t *msg, size_t len, int final)
{
    size_t clen;
    int rc = pr_e2e_push(&h->tx, msg, len, final, h->r->cbuf, PR_E2E_MAX_MSG + PR_E2E_ABYTES,
                         &clen);

    if (rc < 0) {
        fail(h, rc, "end-to-end encryption failed at the hosting router");
        return;
    }
    h->sent += len;
    rc = send_frame(h, PR_PAYLOAD_DATA, final ? PR_PF_FIN : 0, h->r->cbuf, clen, 0);
    if (rc < 0 || h->closed)
        return;
    if (rc == 1 || !window_open(h))
        read_stop(h);
}

static void alloc_cb(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    rt_hosted *h = hd->data;
    *buf = uv_buf_init((char *)h->rbuf, sizeof(h->rbuf));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    rt_hosted *h = st->data;

    if (h->closed || nread == 0)
        return;
    if (nread == UV_EOF) {
        read_stop(h);
        h->tcp_eof = h->fin_sent = 1;
        push_msg(h, NULL, 0, 1);
        if (!h->closed)
            check_done(h);
        return;
    }
    if (nread < 0) {
        fail(h, WEFT_ERESET, "the service closed its connection abruptly");
        return;
    }
    push_msg(h, h->rbuf, (size_t)nread, 0);
}

static void read_start(rt_hosted *h)
{
    if (h->reading || h->tcp_eof || !h->connected || h->closed)
        return;
    if (uv_read_start((uv_stream_t *)&h->tcp, alloc_cb, read_cb) == 0)
        h->reading = 1;
}

void rt_hosted_resume_all(rt_router *r)
{
    for (rt_hosted *h = r->hosted; h; h = h->next)
        if (h->c && window_open(h) && rt_circuit_side(h->c, h) == 1 &&
            rt_end_writable(r, h->c, 0))
            read_start(h);
}

/* ---- towards the service ---- */

static void flush_wq(rt_hosted *h);

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    rt_hosted *h = req->data;

    if (h->closed)
        return;
    h->shut_done = 1;
    check_done(h);
}

static void write_cb(uv_write_t *req, int status)
{
    rt_hosted *h = req->data;

    if (h->closed)
        return;
    h->writing = 0;
    if (status < 0) {
        fail(h, WEFT_ERESET, "the service stopped taking data");
        return;
    }
    h->consumed += h->inflight;
    memmove(h->wq, h->wq + h->inflight, h->wq_len - h->inflight);
    h->wq_len -= h->inflight;
    h->inflight = 0;
    if (h->consumed - h->acked >= ACK_EVERY) {
        h->acked = h->consumed;
        if (send_frame(h, PR_ACK_WINDOW, 0, NULL, 0, h->consumed) < 0)
            return;
    }
    flush_wq(h);
}

static void flush_wq(rt_hosted *h)
{
    uv_buf_t b;

    if (h->closed || h->writing)
        return;
    if (h->wq_len > 0) {
        b = uv_buf_init((char *)h->wq, (unsigned)h->wq_len);
        h->wreq.data = h;
        if (uv_write(&h->wreq, (uv_stream_t *)&h->tcp, &b, 1, write_cb) < 0) {
            fail(h, WEFT_EIO, "cannot write to the service");
            return;
        }
        h->writing = 1;
        h->inflight = h->wq_len;
    } else if (h->peer_fin && !h->shut) {
        h->shut = 1;
        h->sreq.data = h;
        if (uv_shutdown(&h->sreq, (uv_stream_t *)&h->tcp, shutdown_cb) < 0)
            h->shut_done = 1;
        check_done(h);
    }
}

static int pull_into_wq(rt_hosted *h, const pr_frame *f)
{
    size_t n;
    int final, rc;

    if (h->wq == NULL && (h->wq = malloc(WQ_CAP)) == NULL)
        return WEFT_ENOMEM;
    if (f->body_len < PR_E2E_ABYTES || WQ_CAP - h->wq_len < f->body_len - PR_E2E_ABYTES)
        return WEFT_EPROTO; /* the dialler ignored its window */
    rc = pr_e2e_pull(&h->rx, f->body, f->body_len, h->wq + h->wq_len, WQ_CAP - h->wq_len, &n,
                     &final);
    if (rc < 0)
        return rc;
    if (final != ((f->flags & PR_PF_FIN) != 0))
        return WEFT_EPROTO;
    h->wq_len += n;
    h->peer_fin = final;
    return 0;
}

static void on_payload(rt_hosted *h, const pr_frame *f)
{
    uint64_t seq;
    int rc;

    if (pr_frame_u64(f, PR_H_SEQ, &seq) < 0 || seq != h->rx_seq) {
        fail(h, WEFT_EPROTO, "payload out of sequence at the hosting router");
        return;
    }
    h->rx_seq++;
    if (seq == 0)
        rc = pr_e2e_pull_start(&h->rx, h->keys.rx, f->body, f->body_len);
    else
        rc = pull_into_wq(h, f);
    if (rc == WEFT_ECRYPTO) {
        fail(h, rc, "end-to-end decryption failed: data altered or cut in transit");
        return;
    }
    if (rc < 0) {
        fail(h, rc, "bad payload frame at the hosting router");
        return;
    }
    flush_wq(h);
}

void rt_hosted_on_frame(rt_hosted *h, const pr_frame *f)
{
    uint64_t w;

    if (h->closed || h->c == NULL)
        return;
    if (f->type == PR_PAYLOAD_DATA) {
        on_payload(h, f);
        return;
    }
    if (pr_frame_u64(f, PR_H_WINDOW, &w) < 0) {
        fail(h, WEFT_EPROTO, "acknowledgement without a window");
        return;
    }
    if (w > h->peer_ack)
        h->peer_ack = w;
    rt_hosted_resume_all(h->r);
}

/* ---- set-up ---- */

static void connect_cb(uv_connect_t *req, int status)
{
    rt_hosted *h = req->data;
    uint8_t hdr[PR_E2E_HEADER_BYTES];
    char msg[384];

    if (h->closed)
        return;
    if (status < 0) {
        snprintf(msg, sizeof(msg), "cannot connect to service %s: %s; is the service running?",
                 h->c->service, uv_strerror(status));
        fail(h, WEFT_EREFUSED, msg);
        return;
    }
    h->connected = 1;
    rt_edge_dial_ok(h->r, h->c, h->kx.pk, h->sig, h->sig_len);
    pr_e2e_kx_wipe(&h->kx);
    if (h->closed)
        return;
    if (pr_e2e_push_start(&h->tx, h->keys.tx, hdr) < 0) {
        fail(h, WEFT_ECRYPTO, "end-to-end set-up failed at the hosting router");
        return;
    }
    if (send_frame(h, PR_PAYLOAD_DATA, 0, hdr, sizeof(hdr), 0) >= 0 && !h->closed)
        read_start(h);
}

/* The dialler's certificate must chain to the network CA, belong to the
 * identity of the session that dialled, and have signed the kx key. */
static int check_dialler(rt_router *r, const char *identity, const pr_frame *f, const char *service,
                         const uint8_t **kx, char *err, size_t errcap)
{
    const pr_header *cert = pr_frame_header(f, PR_H_PEER_CERT);
    const uint8_t *sig;
    size_t kx_len, sig_len;
    char uri[PR_URI_MAX], td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind, rc;

    pr_frame_bytes(f, PR_H_KX_PK, kx, &kx_len);
    pr_frame_bytes(f, PR_H_KX_SIG, &sig, &sig_len);
    rc = pr_e2e_verify_peer((const char *)cert->val, cert->len, r->id->ca_pem, PR_E2E_DIALLER,
                            *kx, service, sig, sig_len, uri, sizeof(uri));
    if (rc < 0) {
        snprintf(err, errcap, "the dialler's certificate or kx signature does not verify (%s)",
                 weft_strerror(rc));
        return rc;
    }
    if (pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)) < 0 ||
        strcmp(id, identity) != 0) {
        snprintf(err, errcap, "the dial carries another identity's certificate");
        return WEFT_EDENIED;
    }
    return 0;
}

static int host_addr(const rt_map_service *svc, struct sockaddr_storage *ss, char *err,
                     size_t errcap)
{
    if (strncmp(svc->host, "tcp:", 4) != 0 || pr_addr_resolve(svc->host + 4, ss) < 0) {
        snprintf(err, errcap, "service %s has host \"%s\"; a router can host only tcp:HOST:PORT",
                 svc->name, svc->host);
        return WEFT_EADDR;
    }
    return 0;
}

static int keys_make(rt_router *r, rt_hosted *h, const uint8_t *peer_kx, const char *service)
{
    int rc;

    if ((rc = pr_e2e_kx_new(&h->kx)) < 0 ||
        (rc = pr_e2e_sign(r->id->key_pem, PR_E2E_HOST, h->kx.pk, service, h->sig,
                          &h->sig_len)) < 0)
        return rc;
    return pr_e2e_keys_derive(PR_E2E_HOST, &h->kx, peer_kx, &h->keys);
}

int rt_hosted_dial(rt_router *r, rt_circuit *c, const rt_map_service *svc,
                   const char *dialler_identity, const pr_frame *f, char *err, size_t errcap)
{
    struct sockaddr_storage ss;
    const uint8_t *kx;
    rt_hosted *h;
    int rc;

    if ((rc = check_dialler(r, dialler_identity, f, svc->name, &kx, err, errcap)) < 0 ||
        (rc = host_addr(svc, &ss, err, errcap)) < 0)
        return rc;
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        snprintf(err, errcap, "router out of memory");
        return WEFT_ENOMEM;
    }
    h->r = r;
    if ((rc = keys_make(r, h, kx, svc->name)) < 0) {
        snprintf(err, errcap, "end-to-end key set-up failed at the hosting router");
        free(h);
        return rc;
    }
    uv_tcp_init(r->loop, &h->tcp);
    h->tcp.data = h->creq.data = h;
    h->c = c;
    h->next = r->hosted;
    if (r->hosted)
        r->hosted->prev = h;
    r->hosted = h;
    rt_circuit_attach(c, 1, RT_END_HOSTED, h, &h->ends);
    if ((rc = uv_tcp_connect(&h->creq, &h->tcp, (struct sockaddr *)&ss, connect_cb)) < 0) {
        snprintf(err, errcap, "cannot connect to service %s: %s", svc->name, uv_strerror(rc));
        h->c = NULL; /* the caller ends the circuit */
        hosted_close(h);
        return WEFT_EREFUSED;
    }
    return 0;
}
