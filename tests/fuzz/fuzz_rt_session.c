/* Fuzzes the router's edge-session frame handler (router/edge.c) with what an
 * authenticated edge could send: each input starts from a host session bound
 * to a service and a dialler with a circuit to it (valid tokens, made at start
 * up), then plays a sequence of raw bytes and structured frames into either
 * session. The router must never crash, and once both sessions are gone it
 * must hold no circuit and no terminator.
 *
 * Input: ops until the data runs out. op byte: bit 0 picks the session, bit 1
 * raw (next byte = length, then bytes) or a frame built from the next bytes. */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "proto/e2e.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "proto/pki.h"
#include "router/admit.h"
#include "router/router.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rt_router r;
static pr_idfile id;
static uv_loop_t loop;
static char *bind_tok, *dial_tok, *dev_cert, *dev_key;
static uint8_t kx_pk[PR_E2E_KX_BYTES], kx_sig[PR_E2E_SIG_MAX];
static size_t kx_sig_len;
static uint8_t fbuf[PR_FRAME_MAX];

static char *token(const uint8_t *sk, const char *sub, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "aud", "weft-service", "net",
                          "net", "sub", sub, "svc", "s1", "svc_name", "web", "act", act, "exp",
                          (json_int_t)time(NULL) + 86400);
    char *t = NULL;

    if (c == NULL || pr_jwt_sign(c, sk, &t) < 0)
        abort();
    json_decref(c);
    return t;
}

static void setup_map(const uint8_t *pk)
{
    char b64[64], map[512], err[128];

    sodium_bin2base64(b64, sizeof(b64), pk, crypto_sign_PUBLICKEYBYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\": 1, \"signing_key\": \"%s\", \"routers\": [{\"id\": \"r1\"}],"
             " \"services\": [{\"id\": \"s1\", \"name\": \"web\"}]}", b64);
    if (rt_map_apply_full(&r.map, map, strlen(map), err, sizeof(err)) < 0)
        abort();
}

static void setup(void)
{
    static pr_ca ca;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    pr_cert_req rreq = {.cn = "r", .uri = "spiffe://net/router/r1", .usage = PR_CERT_BOTH,
                        .not_after = (int64_t)time(NULL) + 86400};
    pr_cert_req dreq = {.cn = "d", .uri = "spiffe://net/identity/dev1", .usage = PR_CERT_CLIENT,
                        .not_after = (int64_t)time(NULL) + 86400};
    pr_e2e_kx kx;

    pr_log_init("router", PR_LOG_ERROR + 1);
    if (sodium_init() < 0 || uv_loop_init(&loop) < 0 || pr_ca_create("net", &ca) < 0 ||
        pr_ca_issue(&ca, &rreq, &id.cert_pem, &id.key_pem) < 0 ||
        pr_ca_issue(&ca, &dreq, &dev_cert, &dev_key) < 0)
        abort();
    snprintf(id.kind, sizeof(id.kind), "router");
    snprintf(id.id, sizeof(id.id), "r1");
    snprintf(id.network, sizeof(id.network), "net");
    id.ca_pem = ca.cert_pem;
    if (rt_router_init(&r, &loop, &id) < 0 || pr_e2e_kx_new(&kx) < 0)
        abort();
    /* Every run says hello twice and loop time stands still: the admission
     * limit (fuzzed by nothing here) would refuse the set-up after 200 runs. */
    rt_admit_config(&r, 0, 0);
    crypto_sign_keypair(pk, sk);
    setup_map(pk);
    bind_tok = token(sk, "app1", "bind");
    dial_tok = token(sk, "dev1", "dial");
    memcpy(kx_pk, kx.pk, sizeof(kx_pk));
    if (pr_e2e_sign(dev_key, PR_E2E_DIALLER, kx.pk, "web", kx_sig, &kx_sig_len) < 0)
        abort();
}

/* ---- frames ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t take(input *in)
{
    uint8_t b = 0;

    if (in->n) {
        b = *in->p++;
        in->n--;
    }
    return b;
}

static uint64_t take64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take(in);
    return v;
}

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

static void add_dial_fields(pr_enc *e, uint8_t bits)
{
    if (bits & 1)
        pr_enc_bytes(e, PR_H_KX_PK, kx_pk, sizeof(kx_pk));
    if (bits & 2)
        pr_enc_bytes(e, PR_H_KX_SIG, kx_sig, (bits & 8) ? 1 : kx_sig_len);
    if (bits & 4)
        pr_enc_str(e, PR_H_PEER_CERT, dev_cert);
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
        setup();
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
