/* Keeping circuits alive when their path changes (docs/dataplane.md,
 * "Re-homing live circuits"): EDGE_RETRANSMIT from a router that moved a
 * circuit inside the fabric, and EDGE_RESUME, by which an edge whose router
 * died moves its circuits to its other router. Both ends prove with a MAC of
 * the circuit's end-to-end keys that the resume is theirs; a router can
 * neither make nor redirect one. After the switch each end drops what the
 * other's ack seq covers and sends the rest again. */
#include <string.h>

#include "edge/lib/weft_int.h"
#include "proto/log.h"

static int peer_role(const weft_conn *c)
{
    return c->e2e.role == WEFT_E2E_CLIENT ? WEFT_E2E_SERVER : WEFT_E2E_CLIENT;
}

/* The highest seq received in order; only asked once seq 0 arrived. */
static uint64_t our_ack(const weft_conn *c)
{
    return c->rx_seq - 1;
}

/* Frames the peer holds are dropped; the rest goes again at once. */
static void resend_after(weft_conn *c, uint64_t peer_ack)
{
    weft__rtxq_ack(&c->rtxq, peer_ack);
    c->rto_ms = WEFT_RTO_MIN_MS;
    weft__conn_retransmit(c);
    weft__conn_ack(c);
    weft__conn_pump(c);
}

void weft__conn_retransmit_notice(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_conn *c = weft__conn_by_circuit(ctx, m->circuit);

    if (c == NULL || c->state != CS_OPEN || c->resume_req != 0 || c->sess != s)
        return;
    pr_debug("edge_circuit_rerouted", "circuit=%016llx frames=%u", (unsigned long long)c->circuit,
             c->rtxq.n);
    c->rto_ms = WEFT_RTO_MIN_MS;
    weft__conn_retransmit(c);
}

/* ---- the resuming side ---- */

int weft__resume_possible(const weft_conn *c, const weft_rsess *to)
{
    return c->ctx->resume && c->state == CS_OPEN && c->anchor[0] != '\0' && c->rtx_mode == RTX_ON &&
           c->rx_seq > 0 && c->tx_seq > 0 && weft__rsess_ready(to) && (to->caps & PR_CAP_RESUME);
}

int weft__resume_start(weft_conn *c, weft_rsess *to)
{
    weft_ctx *ctx = c->ctx;
    uint8_t mac[WEFT_RESUME_MAC];
    weft_resume_msg rm;
    size_t len;
    int r;

    randombytes_buf(c->resume_nonce, sizeof(c->resume_nonce));
    if ((r = weft__e2e_resume_mac(&c->e2e, c->e2e.role, c->circuit, our_ack(c), c->resume_nonce,
                                  mac)) < 0)
        return r;
    rm = (weft_resume_msg){weft__req_id(ctx), c->circuit,      c->anchor,
                           our_ack(c),        c->resume_nonce, mac};
    if ((r = weft__msg_resume(ctx->fbuf, PR_FRAME_MAX, PR_EDGE_RESUME, &rm, &len)) < 0)
        return r;
    c->sess = to;
    c->resume_req = rm.req_id;
    c->resume_deadline = weft__now(ctx) + WEFT_REQ_TIMEOUT_MS;
    pr_info("edge_circuit_resuming", "circuit=%016llx service=%s router=%s anchor=%s",
            (unsigned long long)c->circuit, c->service, to->addr, c->anchor);
    return weft__send(to, len);
}

static int mac_ok(const weft_conn *c, const weft_msg *m)
{
    uint8_t want[WEFT_RESUME_MAC];

    if (weft__e2e_resume_mac(&c->e2e, peer_role(c), c->circuit, m->ack_seq, m->nonce, want) < 0)
        return 0;
    return sodium_memcmp(want, m->mac, sizeof(want)) == 0;
}

void weft__resume_answer(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_conn *c = weft__conn_by_circuit(ctx, m->circuit);

    if (c == NULL || c->resume_req == 0 || c->sess != s ||
        (m->has_req && m->req_id != c->resume_req))
        return;
    c->resume_req = 0;
    if (m->type != PR_EDGE_RESUME_OK) {
        pr_warn("edge_circuit_resume_failed", "circuit=%016llx err=%s msg=%s",
                (unsigned long long)c->circuit, weft_err_name(m->err ? m->err : WEFT_ERESET),
                pr_log_q(m->err_msg));
        return weft__conn_gone(c, m->err ? m->err : WEFT_ERESET);
    }
    if (sodium_memcmp(m->nonce, c->resume_nonce, WEFT_RESUME_NONCE) != 0 || !mac_ok(c, m) ||
        m->ack_seq >= c->tx_seq) {
        pr_warn("edge_circuit_resume_forged", "circuit=%016llx hint=%s",
                (unsigned long long)c->circuit,
                pr_log_q("the answer was not made by the far end; the circuit is reset"));
        return weft__conn_gone(c, WEFT_ECRYPTO);
    }
    pr_info("edge_circuit_resumed", "circuit=%016llx service=%s router=%s resent=%u",
            (unsigned long long)c->circuit, c->service, s->addr, c->rtxq.n);
    resend_after(c, m->ack_seq);
}

void weft__resumes_tick(weft_conn *c, uint64_t now)
{
    if (c->resume_req != 0 && c->resume_deadline <= now) {
        c->resume_req = 0;
        pr_warn("edge_circuit_resume_timeout", "circuit=%016llx", (unsigned long long)c->circuit);
        weft__conn_gone(c, WEFT_ERESET);
    }
}

/* ---- the far side ---- */

static void resume_refuse(weft_ctx *ctx, weft_rsess *s, const weft_msg *m, int err, const char *why)
{
    size_t len;
    pr_enc e;

    pr_warn("edge_resume_refused", "circuit=%016llx err=%s why=%s", (unsigned long long)m->circuit,
            weft_err_name(err), pr_log_q(why));
    pr_enc_init(&e, ctx->fbuf, PR_FRAME_MAX, PR_EDGE_RESUME_FAIL, 0);
    if (m->has_req)
        pr_enc_u32(&e, PR_H_REQ_ID, m->req_id);
    pr_enc_u64(&e, PR_H_CIRCUIT, m->circuit);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    pr_enc_str(&e, PR_H_ERR_MSG, why);
    if (pr_enc_finish(&e, NULL, 0, &len) == 0)
        weft__send(s, len);
}

/* A router that recorded a resume (the anchor itself, even) must not be able
 * to play it again later to pull the circuit to itself: the last few nonces
 * taken are refused. The resumer draws a fresh one each time. */
static int nonce_seen(weft_conn *c, const uint8_t *nonce)
{
    unsigned n = c->nseen < 4 ? c->nseen : 4;

    for (unsigned i = 0; i < n; i++)
        if (sodium_memcmp(c->seen_nonce[i], nonce, WEFT_RESUME_NONCE) == 0)
            return 1;
    memcpy(c->seen_nonce[c->nseen++ % 4], nonce, WEFT_RESUME_NONCE);
    return 0;
}

void weft__resume_request(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_conn *c = weft__conn_by_circuit(ctx, m->circuit);
    uint8_t mac[WEFT_RESUME_MAC];
    weft_resume_msg rm;
    size_t len;

    if (c == NULL || c->state != CS_OPEN || c->rx_seq == 0)
        return resume_refuse(ctx, s, m, WEFT_ENOTFOUND, "no such open circuit here");
    if (!mac_ok(c, m) || m->ack_seq >= c->tx_seq)
        return resume_refuse(ctx, s, m, WEFT_EDENIED, "the resume was not made by the far end");
    if (nonce_seen(c, m->nonce))
        return resume_refuse(ctx, s, m, WEFT_EDENIED, "the resume repeats one already taken");
    if (weft__e2e_resume_mac(&c->e2e, c->e2e.role, c->circuit, our_ack(c), m->nonce, mac) < 0)
        return resume_refuse(ctx, s, m, WEFT_ECRYPTO, "cannot prove the circuit");
    rm = (weft_resume_msg){m->has_req ? m->req_id : 0, c->circuit, NULL, our_ack(c), m->nonce, mac};
    if (weft__msg_resume(ctx->fbuf, PR_FRAME_MAX, PR_EDGE_RESUME_OK, &rm, &len) < 0)
        return;
    c->sess = s;
    c->resume_req = 0;
    weft__send(s, len);
    pr_info("edge_circuit_resumed_by_peer", "circuit=%016llx service=%s resent=%u",
            (unsigned long long)c->circuit, c->service, c->rtxq.n);
    resend_after(c, m->ack_seq);
}
