/* Fuzzes the router's link frame handlers (router/link.c, mesh.c, reroute.c,
 * resume.c) with what another router of the network could send: router rb
 * holds two links without sockets (rt_link_detached), from ra and to rc, and
 * a host session bound to service web; each input plays raw bytes and LINK-
 * family frames (LINK_DIAL, LINK_REROUTE, LINK_LEG_DOWN, LINK_RESUME, pings)
 * and circuit frames (answers, closes, payload, acks, resume answers) into
 * either link. The router must never crash, and once the links and the
 * session are gone it must hold no circuit.
 *
 * Input: ops until the data runs out. op byte: bit 0 picks the link, bit 1
 * raw (next byte = length, then bytes) or a frame built from the next bytes. */
#include "rt_fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t types[] = {
    PR_LINK_DIAL,     PR_LINK_REROUTE,   PR_LINK_LEG_DOWN,    PR_LINK_RESUME, PR_LINK_PING,
    PR_LINK_PONG,     PR_EDGE_DIAL_OK,   PR_EDGE_DIAL_FAIL,   PR_EDGE_CLOSE,  PR_PAYLOAD_DATA,
    PR_ACK_WINDOW,    PR_EDGE_RESUME_OK, PR_EDGE_RESUME_FAIL, PR_EDGE_HELLO,
};
static const char *const paths[] = {
    "ra,rb", "ra,rb,rc", "rc,rb", "rc,rb,ra", "ra,rb,rc,rd", "rb,rc", "ra,rc,rb", "ra,ra,rb", "",
};

static rt_link *la, *lc;
static rt_sess *host;

static void send_frame(rt_link *l, const pr_enc *e, const uint8_t *body, size_t len)
{
    pr_enc x = *e;
    size_t n;

    if (pr_enc_finish(&x, body, len, &n) == 0)
        rt_link_feed(l, fbuf, n);
}

static uint64_t pick_circuit(rt_link *l, input *in)
{
    uint8_t how = take(in) % 4;

    if (how == 0 && l->ends.head)
        return l->ends.head->circ->id;
    if (how == 1)
        return take64(in);
    return how == 2 ? take(in) % 4 + 1 : 0;
}

static void add_route(pr_enc *e, input *in, uint8_t bits)
{
    uint8_t p = take(in);

    pr_enc_str(e, PR_H_PATH, paths[p % (sizeof(paths) / sizeof(paths[0]))]);
    pr_enc_u32(e, PR_H_HOP, take(in) % 4);
    if (bits & 1)
        pr_enc_str(e, PR_H_IDENTITY, "dev1");
    if (bits & 2)
        pr_enc_str(e, PR_H_TERMINATOR, (bits & 4) && r.terms ? r.terms->id : "nope");
    if (bits & 8)
        pr_enc_str(e, PR_H_MULTIPATH, (bits & 16) ? "split" : "redundant");
    if (bits & 32)
        pr_enc_u32(e, PR_H_REROUTE, take(in) & 1);
    if (bits & 64)
        pr_enc_str(e, PR_H_FAILED_LINK, (bits & 128) ? "ra,rb" : "nocomma");
}

static void add_resume(pr_enc *e, input *in, uint8_t bits)
{
    uint8_t nonce[16] = {0}, mac[32] = {0};

    nonce[0] = take(in);
    if (bits & 1)
        pr_enc_u64(e, PR_H_ACK_SEQ, take(in));
    if (bits & 2)
        pr_enc_bytes(e, PR_H_NONCE, nonce, (bits & 8) ? 3 : sizeof(nonce));
    if (bits & 4)
        pr_enc_bytes(e, PR_H_MAC, mac, sizeof(mac));
    if (bits & 16)
        pr_enc_u32(e, PR_H_RESUME_ROLE, take(in) % 4);
    if (bits & 32)
        pr_enc_u64(e, PR_H_TIMESTAMP, take64(in));
}

static void structured(rt_link *l, input *in)
{
    uint8_t t = take(in), bits = take(in), blen;
    uint16_t type = t < 0xf0 ? types[t % (sizeof(types) / sizeof(types[0]))] : (uint16_t)take64(in);
    uint64_t circ = pick_circuit(l, in);
    pr_enc e;

    pr_enc_init(&e, fbuf, sizeof(fbuf), type, take(in) % 4);
    if (circ)
        pr_enc_u64(&e, PR_H_CIRCUIT, circ);
    if (bits & 0x01)
        pr_enc_u64(&e, PR_H_SEQ, take(in));
    if (bits & 0x02)
        pr_enc_u64(&e, type == PR_ACK_WINDOW ? PR_H_WINDOW : PR_H_ERR, take64(in));
    if (bits & 0x04)
        pr_enc_str(&e, PR_H_SERVICE, (bits & 0x80) ? "web" : "nope");
    if (bits & 0x08)
        add_route(&e, in, take(in));
    if (bits & 0x10)
        add_dial_fields(&e, take(in));
    if (bits & 0x20)
        add_resume(&e, in, take(in));
    if (bits & 0x40)
        pr_enc_str(&e, PR_H_ERR_MSG, "fuzz");
    blen = take(in);
    blen = in->n < blen ? (uint8_t)in->n : blen;
    send_frame(l, &e, in->p, blen);
    in->p += blen;
    in->n -= blen;
}

static void raw(rt_link *l, input *in)
{
    size_t len = take(in);

    len = len < in->n ? len : in->n;
    rt_link_feed(l, in->p, len);
    in->p += len;
    in->n -= len;
}

/* ---- one run ---- */

static void sess_frame(rt_sess *s, const pr_enc *e)
{
    pr_enc x = *e;
    size_t n;

    if (pr_enc_finish(&x, NULL, 0, &n) == 0)
        rt_sess_feed(s, fbuf, n);
}

static void start(void)
{
    pr_enc e;

    if (rt_link_detached(&r, "ra", &la) < 0 || rt_link_detached(&r, "rc", &lc) < 0 ||
        rt_sess_detached(&r, "app1", &host) < 0)
        abort();
    pr_enc_init(&e, fbuf, sizeof(fbuf), PR_EDGE_HELLO, 0);
    sess_frame(host, &e);
    pr_enc_init(&e, fbuf, sizeof(fbuf), PR_EDGE_BIND, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 1);
    pr_enc_str(&e, PR_H_TOKEN, bind_tok);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    sess_frame(host, &e);
    if (r.terms == NULL)
        abort(); /* the set-up itself must work, or the fuzzer explores less */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    input in = {data, size};

    if (!ready) {
        world_setup("rb", "[{\"id\": \"ra\"}, {\"id\": \"rb\"}, {\"id\": \"rc\"}, {\"id\": \"rd\"}]");
        ready = 1;
    }
    start();
    while (in.n) {
        uint8_t op = take(&in);
        rt_link *l = (op & 1) ? lc : la;
        if (op & 2)
            raw(l, &in);
        else
            structured(l, &in);
    }
    rt_link_detached_free(la);
    rt_link_detached_free(lc);
    rt_sess_detached_free(host);
    if (r.circuits.n != 0 || r.terms != NULL || r.sessions != NULL || r.links != NULL)
        abort();
    return 0;
}
