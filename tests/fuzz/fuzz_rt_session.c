/* Fuzzes the router's edge-session frame handler (router/edge.c) with what an
 * authenticated edge could send: each input starts from a host session bound
 * to a service and a dialler with a circuit to it (valid tokens, made at start
 * up), then plays a sequence of raw bytes and structured frames into either
 * session. The router must never crash, and once both sessions are gone it
 * must hold no circuit and no terminator.
 *
 * Input: ops until the data runs out. op byte: bit 0 picks the session, bit 1
 * raw (next byte = length, then bytes) or a frame built from the next bytes. */
#include "rt_fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t types[] = {
    PR_EDGE_HELLO, PR_EDGE_BIND,  PR_EDGE_UNBIND,  PR_EDGE_DIAL, PR_EDGE_DIAL_OK,
    PR_EDGE_DIAL_FAIL, PR_EDGE_CLOSE, PR_EDGE_PING, PR_EDGE_PONG, PR_PAYLOAD_DATA,
    PR_ACK_WINDOW, PR_LINK_DIAL, PR_CTL_HELLO,
};

static void send_frame(rt_sess *s, const pr_enc *e, const uint8_t *body, size_t len)
{
    pr_enc x = *e;
    size_t n;

    if (pr_enc_finish(&x, body, len, &n) == 0)
        rt_sess_feed(s, fbuf, n);
}

static uint64_t pick_circuit(rt_sess *s, input *in)
{
    uint8_t how = take(in) % 4;

    if (how == 0 && s->ends.head)
        return s->ends.head->circ->id;
    if (how == 1)
        return take64(in);
    return how == 2 ? take(in) : 0;
}

static void structured(rt_sess *s, input *in)
{
    uint8_t t = take(in), bits = take(in), blen;
    uint16_t type = t < 0xf0 ? types[t % (sizeof(types) / sizeof(types[0]))] : (uint16_t)take64(in);
    uint64_t circ = pick_circuit(s, in);
    pr_enc e;

    pr_enc_init(&e, fbuf, sizeof(fbuf), type, take(in) % 4);
    if (bits & 0x01)
        pr_enc_u32(&e, PR_H_REQ_ID, take(in));
    if (circ)
        pr_enc_u64(&e, PR_H_CIRCUIT, circ);
    if (bits & 0x02)
        pr_enc_u64(&e, PR_H_SEQ, take(in));
    if (bits & 0x04)
        pr_enc_u64(&e, type == PR_ACK_WINDOW ? PR_H_WINDOW : PR_H_ERR, take64(in));
    if (bits & 0x08)
        pr_enc_str(&e, PR_H_SERVICE, (bits & 0x80) ? "web" : "nope");
    if (bits & 0x10)
        pr_enc_str(&e, PR_H_TOKEN, type == PR_EDGE_BIND ? bind_tok : dial_tok);
    if (bits & 0x20)
        add_dial_fields(&e, take(in));
    if (bits & 0x40)
        pr_enc_str(&e, PR_H_ERR_MSG, "fuzz");
    blen = take(in);
    blen = in->n < blen ? (uint8_t)in->n : blen;
    send_frame(s, &e, in->p, blen);
    in->p += blen;
    in->n -= blen;
}

static void raw(rt_sess *s, input *in)
{
    size_t len = take(in);

    len = len < in->n ? len : in->n;
    rt_sess_feed(s, in->p, len);
    in->p += len;
    in->n -= len;
}

/* ---- one run ---- */

static void start_sessions(rt_sess **host, rt_sess **dialler)
{
    pr_enc e;

    if (rt_sess_detached(&r, "app1", host) < 0 || rt_sess_detached(&r, "dev1", dialler) < 0)
        abort();
    pr_enc_init(&e, fbuf, sizeof(fbuf), PR_EDGE_HELLO, 0);
    send_frame(*host, &e, NULL, 0);
    send_frame(*dialler, &e, NULL, 0);
    pr_enc_init(&e, fbuf, sizeof(fbuf), PR_EDGE_BIND, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 1);
    pr_enc_str(&e, PR_H_TOKEN, bind_tok);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    send_frame(*host, &e, NULL, 0);
    pr_enc_init(&e, fbuf, sizeof(fbuf), PR_EDGE_DIAL, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 2);
    pr_enc_str(&e, PR_H_TOKEN, dial_tok);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    add_dial_fields(&e, 7);
    send_frame(*dialler, &e, NULL, 0);
    if (r.circuits.n != 1 || r.terms == NULL)
        abort(); /* the set-up itself must work, or the fuzzer explores nothing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    input in = {data, size};
    rt_sess *host, *dialler;

    if (!ready) {
        world_setup("r1", "[{\"id\": \"r1\"}]");
        ready = 1;
    }
    start_sessions(&host, &dialler);
    while (in.n) {
        uint8_t op = take(&in);
        rt_sess *s = (op & 1) ? host : dialler;
        if (op & 2)
            raw(s, &in);
        else
            structured(s, &in);
    }
    rt_sess_detached_free(dialler);
    rt_sess_detached_free(host);
    if (r.circuits.n != 0 || r.terms != NULL || r.sessions != NULL)
        abort();
    return 0;
}
