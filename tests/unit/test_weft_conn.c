/* libweft end to end, with real TLS on 127.0.0.1: two weft_ctx in one
 * process (a dialler and a host) reach each other
 *   - through a tiny relay that forwards frames by circuit id (scaffolding
 *     that stands in for the forwarding table, nothing more), and
 *   - through the real router (router/), with real service tokens.
 * Both carry 8 MiB each way (SHA-256 compared), half-close, a reader that
 * stops reading stalls only its own circuit, refusals come back as errors,
 * and a lost session resets circuits and re-binds. Every loop test ends with
 * every handle closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "edge/lib/weft_int.h"
#include "proto/addr.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/pki.h"
#include "router/router.h"

#define NET      "acme"
#define BULK     (8u << 20)
#define PIECE    (192 * 1024)
#define GUARD_MS 60000

/* ---- credentials ---- */

static char dir[64];
static pr_ca ca;
static pr_idfile router_id, router2_id, router3_id;
static char host_file[128], dial_file[128];
static uint8_t tok_pk[crypto_sign_PUBLICKEYBYTES], tok_sk[crypto_sign_SECRETKEYBYTES];

static void make_identity(const char *kind, const char *id, const char *path, pr_idfile *out)
{
    char uri[PR_URI_MAX];
    const char *ips[] = {"127.0.0.1", NULL};
    pr_cert_req req = {
        .cn = id, .uri = uri, .ips = ips, .usage = PR_CERT_BOTH, .not_after = time(NULL) + 3600};
    pr_idfile f = {0};

    assert_int_equal(
        pr_ident_format(strcmp(kind, "router") == 0 ? PR_IDENT_ROUTER : PR_IDENT_IDENTITY, NET, id,
                        uri, sizeof(uri)),
        0);
    assert_int_equal(pr_ca_issue(&ca, &req, &f.cert_pem, &f.key_pem), 0);
    f.ca_pem = strdup(ca.cert_pem);
    snprintf(f.kind, sizeof(f.kind), "%s", kind);
    snprintf(f.id, sizeof(f.id), "%s", id);
    snprintf(f.name, sizeof(f.name), "%s", id);
    snprintf(f.network, sizeof(f.network), NET);
    snprintf(f.controller, sizeof(f.controller), "https://127.0.0.1:1");
    if (path)
        assert_int_equal(pr_idfile_save(path, &f), 0);
    if (out)
        *out = f;
    else
        pr_idfile_free(&f);
}

static int group_setup(void **state)
{
    char tmpl[] = "/tmp/weft-conn-XXXXXX";

    assert_true(sodium_init() >= 0);
    pr_log_init("test", PR_LOG_WARN);
    assert_non_null(mkdtemp(tmpl));
    snprintf(dir, sizeof(dir), "%s", tmpl);
    assert_int_equal(pr_ca_create(NET, &ca), 0);
    snprintf(host_file, sizeof(host_file), "%s/host.json", dir);
    snprintf(dial_file, sizeof(dial_file), "%s/dial.json", dir);
    make_identity("identity", "host1", host_file, NULL);
    make_identity("identity", "dev1", dial_file, NULL);
    make_identity("router", "r1", NULL, &router_id);
    make_identity("router", "r2", NULL, &router2_id);
    make_identity("router", "r3", NULL, &router3_id);
    crypto_sign_keypair(tok_pk, tok_sk);
    return 0;
}

static int group_teardown(void **state)
{
    unlink(host_file);
    unlink(dial_file);
    rmdir(dir);
    pr_idfile_free(&router_id);
    pr_idfile_free(&router2_id);
    pr_idfile_free(&router3_id);
    pr_ca_free(&ca);
    return 0;
}

/* A service token as the controller makes them (docs/dataplane.md). */
static char *token(const char *sub, const char *svc, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "aud",
                          "weft-service", "iss", "https://127.0.0.1:1", "net", NET, "sub", sub,
                          "svc", svc, "svc_name", svc, "act", act, "iat", (json_int_t)time(NULL),
                          "exp", (json_int_t)time(NULL) + 900, "jti", "j1");
    char *t = NULL;

    assert_int_equal(pr_jwt_sign(c, tok_sk, &t), 0);
    json_decref(c);
    return t;
}

/* The body of GET /v1/edge/session for identity sub with the router at addr
 * (and a second at addr2, unless NULL). */
static char *session_json2(const char *sub, const char *addr, const char *addr2)
{
    const char *names[] = {"echo", "nohost"};
    json_t *svcs = json_array(), *root;
    char *s, *dt, *bt;

    for (size_t i = 0; i < 2; i++) {
        dt = token(sub, names[i], "dial");
        bt = token(sub, names[i], "bind");
        json_array_append_new(svcs,
                              json_pack("{s:s, s:s, s:b, s:b, s:{s:s, s:s}, s:s, s:s, s:s}", "id",
                                        names[i], "name", names[i], "dial", 1, "bind", 1, "tokens",
                                        "dial", dt, "bind", bt, "expires_at",
                                        "2099-01-01T00:00:00Z", "intercept", "tcp:127.0.0.1:8080",
                                        "host", "tcp:127.0.0.1:80"));
        free(dt);
        free(bt);
    }
    root = json_pack("{s:{s:{s:s}, s:[{s:s, s:s, s:s}], s:o, s:s, s:i}}", "data", "identity", "id",
                     sub, "routers", "id", "r1", "name", "r1", "edge_listen", addr, "services",
                     svcs, "signing_key", "unused", "refresh_s", 60);
    if (addr2)
        json_array_append_new(json_object_get(json_object_get(root, "data"), "routers"),
                              json_pack("{s:s, s:s, s:s}", "id", "r2", "name", "r2",
                                        "edge_listen", addr2));
    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static char *session_json(const char *sub, const char *addr)
{
    return session_json2(sub, addr, NULL);
}

/* ---- the relay: forwards frames by circuit id, nothing else ---- */

#define RELAY_SESS 8
#define RELAY_CIRC 16

typedef struct relay relay;
typedef struct {
    relay *rl;
    pr_conn *conn;
    pr_reader rd;
    char bound[64];
    char laddr[64]; /* the relay address the edge connected to */
    int silent;     /* a router dead without a FIN: nothing in, nothing out */
} relay_sess;

struct relay {
    uv_tcp_t tcp;
    pr_tls_ctx *tls;
    char addr[64];
    relay_sess s[RELAY_SESS];
    struct {
        uint64_t id;
        relay_sess *end[2]; /* dialler, host */
        uint32_t req;
    } c[RELAY_CIRC];
    uint64_t next_circ;
    int binds, live;
    int tamper_kx, tamper_data; /* a relay that tries to read or alter a circuit */
    int lossy;                  /* drops, repeats and reorders circuit frames */
    int caps;                   /* PR_H_EDGE_CAPS in EDGE_HELLO_OK (0: none) */
    int rehome;                 /* circuits outlive an end's session, awaiting EDGE_RESUME */
    int forge;                  /* alters the MAC of a resume it passes on */
    int replay;                 /* after a resume: plays it again, and closes on the far
                                   edge's other session (an old path's teardown) */
    size_t saved_len;
    uint8_t saved[PR_FRAME_MAX];
    int blackhole;              /* drops payload frames 40..80, then sends EDGE_RETRANSMIT */
    uv_tcp_t tcp2;              /* a second listener: a second router of the same fabric */
    char addr2[64];
    int two;
    uv_loop_t *loop;
    unsigned resumes, refused_resumes, old_closes, notices, early_rtx, npay;
    uint64_t resume_at; /* loop time the first EDGE_RESUME arrived */
    uint64_t notice_at, maxseq[RELAY_CIRC][2];
    relay_sess *pending[RELAY_CIRC];
    uint32_t pending_req[RELAY_CIRC];
    unsigned nfwd, dropped, doubled, held;
    relay_sess *held_to;
    size_t held_len;
    uint8_t out[PR_FRAME_MAX];
    uint8_t hold[PR_FRAME_MAX];
};

static void relay_send(relay_sess *s, const uint8_t *p, size_t n)
{
    if (s && s->conn && !s->silent)
        assert_int_equal(pr_conn_write(s->conn, p, n), 0);
}

static const uint8_t *frame_raw(const pr_frame *f, size_t *len)
{
    size_t hdr = 0;

    for (unsigned i = 0; i < f->nheaders; i++)
        hdr += 5 + (size_t)f->headers[i].len;
    *len = PR_FRAME_FIXED + hdr + f->body_len;
    return f->body - hdr - PR_FRAME_FIXED;
}

static relay_sess *host_of(relay *rl, const char *service)
{
    for (int i = 0; i < RELAY_SESS; i++)
        if (rl->s[i].conn && strcmp(rl->s[i].bound, service) == 0)
            return &rl->s[i];
    return NULL;
}

static int circ_of(relay *rl, uint64_t id)
{
    for (int i = 0; i < RELAY_CIRC; i++)
        if (rl->c[i].id == id && id != 0)
            return i;
    return -1;
}

static void relay_reply(relay_sess *s, uint16_t type, uint32_t req, int err, const char *msg)
{
    size_t n;
    pr_enc e;

    pr_enc_init(&e, s->rl->out, PR_FRAME_MAX, type, 0);
    if (req)
        pr_enc_u32(&e, PR_H_REQ_ID, req);
    if (err)
        pr_enc_u32(&e, PR_H_ERR, (uint32_t)-err);
    if (msg)
        pr_enc_str(&e, type == PR_EDGE_BIND_OK ? PR_H_TERMINATOR : PR_H_ERR_MSG, msg);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    relay_send(s, s->rl->out, n);
}

/* The frame in buf[0..n) again with PR_H_ROUTER_ID "r1" added, as the
 * routers' anchors for re-homing (docs/dataplane.md). */
static size_t add_anchor(uint8_t *buf, size_t n)
{
    static uint8_t tmp[PR_FRAME_MAX];
    pr_frame f;
    size_t used, len;
    pr_enc e;

    assert_int_equal(pr_frame_decode(buf, n, &f, &used), 0);
    pr_enc_init(&e, tmp, sizeof(tmp), f.type, f.flags);
    for (unsigned i = 0; i < f.nheaders; i++) {
        const pr_header *h = &f.headers[i];
        uint64_t v = 0;
        static char str[PR_FRAME_MAX_HDR_LEN + 1];
        for (unsigned k = 0; k < h->len && h->type != PR_HT_BYTES && h->type != PR_HT_STR; k++)
            v = v << 8 | h->val[k];
        if (h->type == PR_HT_U32)
            pr_enc_u32(&e, h->key, (uint32_t)v);
        else if (h->type == PR_HT_U64)
            pr_enc_u64(&e, h->key, v);
        else if (h->type == PR_HT_BYTES)
            pr_enc_bytes(&e, h->key, h->val, h->len);
        else {
            memcpy(str, h->val, h->len);
            str[h->len] = '\0';
            pr_enc_str(&e, h->key, str);
        }
    }
    pr_enc_str(&e, PR_H_ROUTER_ID, "r1");
    assert_int_equal(pr_enc_finish(&e, f.body, f.body_len, &len), 0);
    memcpy(buf, tmp, len);
    return len;
}

static void relay_dial(relay_sess *s, const pr_frame *f)
{
    relay *rl = s->rl;
    weft_dial_msg d = {0};
    char service[64], cert[WEFT_CERT_MAX];
    relay_sess *host;
    size_t n;
    uint32_t req;
    int i;

    assert_int_equal(pr_frame_u32(f, PR_H_REQ_ID, &req), 0);
    assert_int_equal(pr_frame_str(f, PR_H_SERVICE, service, sizeof(service)), 0);
    assert_int_equal(pr_frame_str(f, PR_H_PEER_CERT, cert, sizeof(cert)), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_PK, &d.kx_pk, &n), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_SIG, &d.sig, &d.sig_len), 0);
    pr_frame_u64(f, PR_H_RWND, &d.rwnd); /* a relay that keeps what it does not know */
    if ((host = host_of(rl, service)) == NULL)
        return relay_reply(s, PR_EDGE_ERROR, req, WEFT_ENOTFOUND, "no terminator");
    for (i = 0; i < RELAY_CIRC && rl->c[i].id != 0; i++)
        ;
    assert_true(i < RELAY_CIRC);
    rl->c[i].id = rl->next_circ += 0x1000000010001ull;
    rl->c[i].end[0] = s;
    rl->c[i].end[1] = host;
    rl->c[i].req = req;
    d.circuit = rl->c[i].id;
    d.service = service;
    if (rl->tamper_kx) { /* substitute the dialler's key, as a man in the middle would */
        static uint8_t kx[WEFT_E2E_PK_LEN];
        memcpy(kx, d.kx_pk, sizeof(kx));
        kx[0] ^= 1;
        d.kx_pk = kx;
    }
    d.cert = cert;
    assert_int_equal(weft__msg_dial(rl->out, PR_FRAME_MAX, &d, &n), 0);
    if (rl->rehome)
        n = add_anchor(rl->out, n);
    relay_send(host, rl->out, n);
}

static void relay_answer(relay_sess *s, const pr_frame *f)
{
    relay *rl = s->rl;
    weft_dial_msg d = {0};
    char cert[WEFT_CERT_MAX];
    size_t n;
    int i;

    assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &d.circuit), 0);
    if ((i = circ_of(rl, d.circuit)) < 0)
        return;
    if (f->type == PR_EDGE_DIAL_FAIL) {
        uint32_t err = 0;
        pr_frame_u32(f, PR_H_ERR, &err);
        relay_reply(rl->c[i].end[0], PR_EDGE_DIAL_FAIL, rl->c[i].req, -(int)err, "host refused");
        rl->c[i].id = 0;
        return;
    }
    assert_int_equal(pr_frame_str(f, PR_H_PEER_CERT, cert, sizeof(cert)), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_PK, &d.kx_pk, &n), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_SIG, &d.sig, &d.sig_len), 0);
    pr_frame_u64(f, PR_H_RWND, &d.rwnd);
    d.req_id = rl->c[i].req;
    d.cert = cert;
    assert_int_equal(weft__msg_dial_ok(rl->out, PR_FRAME_MAX, &d, &n), 0);
    if (rl->rehome)
        n = add_anchor(rl->out, n);
    relay_send(rl->c[i].end[0], rl->out, n);
}

/* A lossy path, deterministically: of the payload and ack frames it drops
 * some (the 2nd, which carries a stream header, and every 23rd), sends some
 * twice and holds some back behind the next frame to the same end. */
static void lossy_send(relay *rl, relay_sess *to, const uint8_t *raw, size_t n)
{
    unsigned k = ++rl->nfwd;

    if (k == 2 || k % 23 == 7) {
        rl->dropped++;
        return;
    }
    if (k % 17 == 3 && rl->held_to == NULL) {
        memcpy(rl->hold, raw, n);
        rl->held_len = n;
        rl->held_to = to;
        rl->held++;
        return;
    }
    relay_send(to, raw, n);
    if (k % 19 == 4) {
        relay_send(to, raw, n);
        rl->doubled++;
    }
    if (rl->held_to == to) {
        relay_send(to, rl->hold, rl->held_len);
        rl->held_to = NULL;
    }
}

/* A path change inside the fabric: payload frames 40..80 are lost, then the
 * relay tells both ends to send again what is not acknowledged. Frames sent
 * again soon after the notice count as its effect (the timer waits >= 1 s). */
static int blackholed(relay *rl, int i, relay_sess *from, uint64_t seq)
{
    int d = rl->c[i].end[0] == from ? 0 : 1;
    unsigned k = ++rl->npay;
    uint64_t now = uv_now(rl->loop);

    if (rl->notice_at && seq <= rl->maxseq[i][d] && now - rl->notice_at < 300)
        rl->early_rtx++;
    if (seq > rl->maxseq[i][d])
        rl->maxseq[i][d] = seq;
    if (k > 40 && k <= 80)
        return 1;
    if (k == 81) {
        size_t n;
        pr_enc e;
        pr_enc_init(&e, rl->hold, PR_FRAME_MAX, PR_EDGE_RETRANSMIT, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, rl->c[i].id);
        assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
        relay_send(rl->c[i].end[0], rl->hold, n);
        relay_send(rl->c[i].end[1], rl->hold, n);
        rl->notices++;
        rl->notice_at = now;
    }
    return 0;
}

/* Payload, ack and close go byte for byte to the other end of the circuit. */
static void relay_forward(relay_sess *s, const pr_frame *f)
{
    relay *rl = s->rl;
    const uint8_t *raw;
    uint64_t id;
    size_t n;
    int i;

    assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &id), 0);
    if ((i = circ_of(rl, id)) < 0)
        return;
    uint64_t seq = 0;

    raw = frame_raw(f, &n);
    pr_frame_u64(f, PR_H_SEQ, &seq);
    if (f->type == PR_PAYLOAD_DATA && rl->blackhole && blackholed(rl, i, s, seq))
        return;
    /* Seq 0 is the stream header, the only frame without a message. */
    if (rl->tamper_data && f->type == PR_PAYLOAD_DATA && seq > 0) {
        memcpy(rl->out, raw, n); /* flip one ciphertext bit */
        rl->out[n - 1] ^= 0x80;
        raw = rl->out;
    }
    if (rl->lossy && f->type != PR_EDGE_CLOSE)
        lossy_send(rl, rl->c[i].end[rl->c[i].end[0] == s], raw, n);
    else
        relay_send(rl->c[i].end[rl->c[i].end[0] == s], raw, n);
    if (f->type == PR_EDGE_CLOSE)
        rl->c[i].id = 0;
}

static void relay_hello_caps(relay_sess *s)
{
    size_t n;
    pr_enc e;

    pr_enc_init(&e, s->rl->out, PR_FRAME_MAX, PR_EDGE_HELLO_OK, 0);
    pr_enc_u32(&e, PR_H_EDGE_CAPS, (uint32_t)s->rl->caps);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    relay_send(s, s->rl->out, n);
}

static void relay_resume_fail(relay_sess *to, uint32_t req, uint64_t id, uint32_t err)
{
    size_t n;
    pr_enc e;

    pr_enc_init(&e, to->rl->out, PR_FRAME_MAX, PR_EDGE_RESUME_FAIL, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u32(&e, PR_H_ERR, err);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    relay_send(to, to->rl->out, n);
}

/* An end of a circuit that is there: a silent one counts as gone, as a
 * router's link to a dead router is once its silence is noticed. */
static int live_end(const relay_sess *e)
{
    return e != NULL && !e->silent;
}

/* As the proposal's anchor router: the resume goes, unchanged, to the end
 * that is still there; the new leg waits for the far edge's answer. */
static void relay_resume(relay_sess *s, const pr_frame *f)
{
    relay *rl = s->rl;
    const uint8_t *raw;
    uint64_t id = 0;
    uint32_t req = 0;
    size_t n;
    int i;

    pr_frame_u64(f, PR_H_CIRCUIT, &id);
    pr_frame_u32(f, PR_H_REQ_ID, &req);
    if ((i = circ_of(rl, id)) < 0 || (live_end(rl->c[i].end[0]) && live_end(rl->c[i].end[1])))
        return relay_resume_fail(s, req, id, (uint32_t)-WEFT_ENOTFOUND);
    rl->pending[i] = s;
    rl->pending_req[i] = req;
    if (rl->resume_at == 0)
        rl->resume_at = uv_now(rl->loop);
    raw = frame_raw(f, &n);
    memcpy(rl->saved, raw, n);
    rl->saved_len = n;
    if (rl->forge) { /* a router trying to take the circuit: flip one bit of the MAC */
        memcpy(rl->hold, raw, n);
        rl->hold[n - 1] ^= 1; /* the MAC is the frame's last header (weft__msg_resume) */
        raw = rl->hold;
    }
    relay_send(live_end(rl->c[i].end[0]) ? rl->c[i].end[0] : rl->c[i].end[1], raw, n);
}

/* A router that kept the resume plays it again; and the far edge's other
 * session carries a close for the circuit, as an old path's teardown would. */
static void relay_replay(relay *rl, relay_sess *far, uint64_t id)
{
    size_t n;
    pr_enc e;

    relay_send(far, rl->saved, rl->saved_len);
    for (int k = 0; k < RELAY_SESS; k++) {
        relay_sess *o = &rl->s[k];
        if (o == far || o->conn == NULL || strcmp(o->bound, "echo") != 0)
            continue;
        pr_enc_init(&e, rl->out, PR_FRAME_MAX, PR_EDGE_CLOSE, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, id);
        pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_ECANCELED);
        assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
        relay_send(o, rl->out, n);
        rl->old_closes++;
    }
}

/* The far edge's answer: on OK the circuit switches to the new leg, and the
 * answer goes back with the resuming edge's request id. */
static void relay_resume_answer(relay_sess *s, const pr_frame *f)
{
    relay *rl = s->rl;
    uint64_t id = 0, ack = 0;
    const uint8_t *nonce, *mac;
    size_t nn, mn, n;
    pr_enc e;
    int i;

    pr_frame_u64(f, PR_H_CIRCUIT, &id);
    if (f->type == PR_EDGE_RESUME_FAIL)
        rl->refused_resumes++;
    if ((i = circ_of(rl, id)) < 0 || rl->pending[i] == NULL)
        return;
    if (f->type == PR_EDGE_RESUME_FAIL) {
        uint32_t err = 0;
        pr_frame_u32(f, PR_H_ERR, &err);
        relay_resume_fail(rl->pending[i], rl->pending_req[i], id, err);
        rl->pending[i] = NULL;
        return;
    }
    assert_int_equal(pr_frame_u64(f, PR_H_ACK_SEQ, &ack), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_NONCE, &nonce, &nn), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_MAC, &mac, &mn), 0);
    rl->c[i].end[live_end(rl->c[i].end[0]) ? 1 : 0] = rl->pending[i];
    pr_enc_init(&e, rl->out, PR_FRAME_MAX, PR_EDGE_RESUME_OK, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, rl->pending_req[i]);
    pr_enc_u64(&e, PR_H_CIRCUIT, id);
    pr_enc_u64(&e, PR_H_ACK_SEQ, ack);
    pr_enc_bytes(&e, PR_H_NONCE, nonce, nn);
    pr_enc_bytes(&e, PR_H_MAC, mac, mn);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    relay_send(rl->pending[i], rl->out, n);
    rl->pending[i] = NULL;
    rl->resumes++;
    if (rl->replay)
        relay_replay(rl, s, id);
}

static int relay_frame(void *arg, const pr_frame *f)
{
    relay_sess *s = arg;
    char service[64];
    uint32_t req = 0;

    if (s->silent)
        return 0;
    switch (f->type) {
    case PR_EDGE_PING: /* answered at once, as routers do */
        pr_frame_u32(f, PR_H_REQ_ID, &req);
        relay_reply(s, PR_EDGE_PONG, req, 0, NULL);
        break;
    case PR_EDGE_HELLO:
        if (s->rl->caps)
            relay_hello_caps(s);
        else
            relay_reply(s, PR_EDGE_HELLO_OK, 0, 0, NULL);
        break;
    case PR_EDGE_RESUME:
        relay_resume(s, f);
        break;
    case PR_EDGE_RESUME_OK:
    case PR_EDGE_RESUME_FAIL:
        relay_resume_answer(s, f);
        break;
    case PR_EDGE_BIND:
        pr_frame_u32(f, PR_H_REQ_ID, &req);
        assert_int_equal(pr_frame_str(f, PR_H_SERVICE, service, sizeof(service)), 0);
        snprintf(s->bound, sizeof(s->bound), "%s", service);
        s->rl->binds++;
        relay_reply(s, PR_EDGE_BIND_OK, req, 0, "t1");
        break;
    case PR_EDGE_DIAL:
        relay_dial(s, f);
        break;
    case PR_EDGE_DIAL_OK:
    case PR_EDGE_DIAL_FAIL:
        relay_answer(s, f);
        break;
    case PR_PAYLOAD_DATA:
    case PR_ACK_WINDOW:
    case PR_EDGE_CLOSE:
        relay_forward(s, f);
        break;
    }
    return 0;
}

static void relay_read(pr_conn *c, const uint8_t *data, size_t len)
{
    relay_sess *s = pr_conn_data(c);

    assert_int_equal(pr_reader_feed(&s->rd, data, len, relay_frame, s), 0);
}

static void relay_closed(pr_conn *c, int status)
{
    relay_sess *s = pr_conn_data(c);
    relay *rl = s->rl;

    if (rl->held_to == s)
        rl->held_to = NULL;
    for (int i = 0; i < RELAY_CIRC; i++) {
        if (rl->pending[i] == s)
            rl->pending[i] = NULL;
        if (rl->rehome && (rl->c[i].end[0] == s || rl->c[i].end[1] == s))
            rl->c[i].end[rl->c[i].end[0] == s ? 0 : 1] = NULL; /* awaits a resume */
        else if (rl->c[i].end[0] == s || rl->c[i].end[1] == s)
            rl->c[i].id = 0, rl->c[i].end[0] = rl->c[i].end[1] = NULL;
    }
    pr_reader_free(&s->rd);
    memset(s, 0, sizeof(*s));
    rl->live--;
}

static void relay_accept(uv_stream_t *server, int status)
{
    static const pr_conn_cbs cbs = {NULL, relay_read, NULL, relay_closed};
    relay *rl = server->data;
    int i;

    for (i = 0; i < RELAY_SESS && rl->s[i].rl; i++)
        ;
    assert_true(i < RELAY_SESS);
    rl->s[i].rl = rl;
    snprintf(rl->s[i].laddr, sizeof(rl->s[i].laddr), "%s",
             server == (uv_stream_t *)&rl->tcp2 ? rl->addr2 : rl->addr);
    assert_int_equal(pr_reader_init(&rl->s[i].rd), 0);
    assert_int_equal(pr_conn_accept(rl->tls, server, &cbs, &rl->s[i], &rl->s[i].conn), 0);
    rl->live++;
}

static void relay_start(relay *rl, uv_loop_t *loop)
{
    pr_tls_cfg cfg = {.server = 1,
                      .ca_pem = router_id.ca_pem,
                      .cert_pem = router_id.cert_pem,
                      .key_pem = router_id.key_pem,
                      .require_peer_cert = 1};
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(rl, 0, sizeof(*rl));
    rl->loop = loop;
    assert_int_equal(pr_tls_ctx_new(&cfg, &rl->tls), 0);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_init(loop, &rl->tcp), 0);
    rl->tcp.data = rl;
    assert_int_equal(uv_tcp_bind(&rl->tcp, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&rl->tcp, 16, relay_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&rl->tcp, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, rl->addr, sizeof(rl->addr)), 0);
}

/* A second address of the same relay: to an edge, a second router. */
static void relay_second(relay *rl, uv_loop_t *loop)
{
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_init(loop, &rl->tcp2), 0);
    rl->tcp2.data = rl;
    assert_int_equal(uv_tcp_bind(&rl->tcp2, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&rl->tcp2, 16, relay_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&rl->tcp2, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(pr_addr_format((struct sockaddr *)&ss, rl->addr2, sizeof(rl->addr2)), 0);
    rl->two = 1;
}

/* Drops every edge session, as a router restart would. */
static void relay_kill_sessions(relay *rl)
{
    for (int i = 0; i < RELAY_SESS; i++)
        if (rl->s[i].conn)
            pr_conn_close(rl->s[i].conn, WEFT_ECLOSED);
}

static void relay_stop(relay *rl)
{
    relay_kill_sessions(rl);
    uv_close((uv_handle_t *)&rl->tcp, NULL);
    if (rl->two)
        uv_close((uv_handle_t *)&rl->tcp2, NULL);
    pr_tls_ctx_free(rl->tls);
}

/* ---- the fabric under test: relay or real router ---- */

/* ---- a stand-in controller for GET /v1/edge/session ---- */

typedef struct {
    uv_tcp_t tcp;
    pr_tls_ctx *tls;
    const char *router_addr;
    int port, requests;
} ctl_stub;

static void ctl_read(pr_conn *c, const uint8_t *data, size_t len)
{
    ctl_stub *cs = pr_conn_data(c);
    char id[PR_ID_MAX + 1], td[PR_TRUST_DOMAIN_MAX + 1], head[256], *body;
    int kind, n;

    /* One small request per connection: its first bytes name it, with the
     * hardware ids of EDGE_HELLO as the query (docs/policies.md "Device binding"). */
    static const char want[] =
        "GET /v1/edge/session?imei=356938035643809&iccid=8944500102198304826 ";
    if (len < sizeof(want) - 1 || memcmp(data, want, sizeof(want) - 1) != 0)
        return pr_conn_close(c, WEFT_EPROTO);
    assert_int_equal(pr_ident_parse(pr_conn_peer_uri(c), &kind, td, sizeof(td), id, sizeof(id)), 0);
    body = session_json(id, cs->router_addr);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 strlen(body));
    assert_int_equal(pr_conn_write(c, head, (size_t)n), 0);
    assert_int_equal(pr_conn_write(c, body, strlen(body)), 0);
    free(body);
    cs->requests++;
    pr_conn_close(c, 0);
}

static void ctl_accept(uv_stream_t *server, int status)
{
    static const pr_conn_cbs cbs = {NULL, ctl_read, NULL, NULL};
    ctl_stub *cs = server->data;
    pr_conn *c;

    assert_int_equal(pr_conn_accept(cs->tls, server, &cbs, cs, &c), 0);
}

static void ctl_start(ctl_stub *cs, uv_loop_t *loop, const char *router_addr)
{
    pr_tls_cfg cfg = {.server = 1,
                      .ca_pem = router_id.ca_pem,
                      .cert_pem = router_id.cert_pem,
                      .key_pem = router_id.key_pem,
                      .require_peer_cert = 1};
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(cs, 0, sizeof(*cs));
    cs->router_addr = router_addr;
    assert_int_equal(pr_tls_ctx_new(&cfg, &cs->tls), 0);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_init(loop, &cs->tcp), 0);
    cs->tcp.data = cs;
    assert_int_equal(uv_tcp_bind(&cs->tcp, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&cs->tcp, 16, ctl_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&cs->tcp, (struct sockaddr *)&ss, &len), 0);
    cs->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard;
    int via_router, online;
    ctl_stub ctl;
    relay rl;
    rt_router rt;
    const char *addr;
    weft_ctx *host, *dial;
} fabric;

static void on_guard(uv_timer_t *t)
{
    fail_msg("the test did not finish within %d ms", GUARD_MS);
}

/* The network map a router is given: r1 at addr, and r2 at addr2 unless NULL. */
static void router_map(rt_router *rt, const char *addr, const char *addr2)
{
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    char map[1536], r2[256] = "", err[256];

    sodium_bin2base64(b64, sizeof(b64), tok_pk, sizeof(tok_pk), sodium_base64_VARIANT_ORIGINAL);
    if (addr2)
        snprintf(r2, sizeof(r2),
                 ",{\"id\":\"r2\",\"name\":\"r2\",\"edge_listen\":\"%s\","
                 "\"link_listen\":\"127.0.0.1:1\",\"online\":true}",
                 addr2);
    snprintf(map, sizeof(map),
             "{\"version\":1,\"signing_key\":\"%s\",\"routers\":[{\"id\":\"r1\",\"name\":\"r1\","
             "\"edge_listen\":\"%s\",\"link_listen\":\"127.0.0.1:1\",\"online\":true}%s],"
             "\"services\":[{\"id\":\"echo\",\"name\":\"echo\",\"intercept\":\"tcp:127.0.0.1:1\","
             "\"host\":\"tcp:127.0.0.1:1\",\"hosted_by\":\"\"},{\"id\":\"nohost\",\"name\":"
             "\"nohost\",\"intercept\":\"tcp:127.0.0.1:2\",\"host\":\"tcp:127.0.0.1:2\","
             "\"hosted_by\":\"\"}],\"terminators\":[],\"revoked\":[]}",
             b64, addr, r2);
    if (rt_map_apply_full(&rt->map, map, strlen(map), err, sizeof(err)) < 0)
        fail_msg("map refused: %s", err);
}

static void router_start(fabric *fb)
{
    assert_int_equal(rt_router_init(&fb->rt, &fb->loop, &router_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb->rt, "127.0.0.1:0"), 0);
    router_map(&fb->rt, fb->rt.edge_addr, NULL);
}

static void start_online(fabric *fb, const weft_options *opt)
{
    char url[64], hf[160], df[160];

    ctl_start(&fb->ctl, &fb->loop, fb->addr);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", fb->ctl.port);
    snprintf(hf, sizeof(hf), "%s/host-online.json", dir);
    snprintf(df, sizeof(df), "%s/dial-online.json", dir);
    make_identity("identity", "host1", hf, NULL);
    make_identity("identity", "dev1", df, NULL);
    for (int i = 0; i < 2; i++) { /* point them at the stand-in controller */
        pr_idfile f;
        char err[128];
        assert_int_equal(pr_idfile_load(i ? df : hf, &f, err, sizeof(err)), 0);
        snprintf(f.controller, sizeof(f.controller), "%s", url);
        assert_int_equal(pr_idfile_save(i ? df : hf, &f), 0);
        pr_idfile_free(&f);
    }
    assert_int_equal(weft_init(&fb->loop, hf, opt, &fb->host), 0);
    assert_int_equal(weft_init(&fb->loop, df, opt, &fb->dial), 0);
    unlink(hf);
    unlink(df);
}

/* Receive windows of the two ends (0: the default). */
static size_t host_window, dial_window;
/* The dialler's liveness settings (0: the defaults). */
static unsigned dial_keepalive_ms, dial_idle_dead_ms;
/* Relay modes for the next fabric: a second address offering EDGE_RESUME,
 * and a path change with EDGE_RETRANSMIT. */
static int relay_rehome, relay_blackhole;

static void fabric_start(fabric *fb, int via_router, int online)
{
    weft_options opt = {.imei = "356938035643809", .iccid = "8944500102198304826"};
    char *js;

    memset(fb, 0, sizeof(*fb));
    fb->via_router = via_router;
    fb->online = online;
    assert_int_equal(uv_loop_init(&fb->loop), 0);
    uv_timer_init(&fb->loop, &fb->guard);
    uv_timer_start(&fb->guard, on_guard, GUARD_MS, 0);
    if (via_router) {
        router_start(fb);
        fb->addr = fb->rt.edge_addr;
    } else {
        relay_start(&fb->rl, &fb->loop);
        fb->addr = fb->rl.addr;
        fb->rl.blackhole = relay_blackhole;
        if (relay_rehome) {
            relay_second(&fb->rl, &fb->loop);
            fb->rl.caps = PR_CAP_RESUME;
            fb->rl.rehome = 1;
        }
    }
    if (online)
        return start_online(fb, &opt);
    js = session_json2("host1", fb->addr, fb->rl.two ? fb->rl.addr2 : NULL);
    opt.window = host_window;
    assert_int_equal(weft__init_offline(&fb->loop, host_file, &opt, js, &fb->host), 0);
    free(js);
    js = session_json2("dev1", fb->addr, fb->rl.two ? fb->rl.addr2 : NULL);
    opt.window = dial_window;
    opt.keepalive_ms = dial_keepalive_ms;
    opt.idle_dead_ms = dial_idle_dead_ms;
    assert_int_equal(weft__init_offline(&fb->loop, dial_file, &opt, js, &fb->dial), 0);
    free(js);
}

/* Frees both ends and the fabric, then checks nothing is left on the loop. */
static void (*stop_extra)(void); /* more of a fabric to stop (routers of a mesh) */

static void fabric_stop(fabric *fb)
{
    if (stop_extra)
        stop_extra();
    weft_free(fb->host);
    weft_free(fb->dial);
    if (fb->via_router)
        rt_router_close(&fb->rt);
    else
        relay_stop(&fb->rl);
    if (fb->online) {
        uv_close((uv_handle_t *)&fb->ctl.tcp, NULL);
        pr_tls_ctx_free(fb->ctl.tls);
    }
    uv_close((uv_handle_t *)&fb->guard, NULL);
}

static void fabric_finish(fabric *fb)
{
    assert_int_equal(uv_run(&fb->loop, UV_RUN_DEFAULT), 0);
    if (fb->via_router)
        rt_router_free(&fb->rt);
    assert_int_equal(uv_loop_close(&fb->loop), 0);
}

/* ---- one end of a circuit in a test: sends n bytes, hashes both ways ---- */

typedef struct {
    fabric *fb;
    weft_conn *c;
    uint64_t target, sent, rcvd;
    int outstanding, shut, eof, err, closed, write_errs, hold;
    int pause; /* all sent: wait instead of half-closing */
    crypto_hash_sha256_state tx, rx;
    uint8_t tx_sum[32], rx_sum[32];
} end;

static uint8_t piece[PIECE];

static void end_init(end *e, fabric *fb, uint64_t target)
{
    memset(e, 0, sizeof(*e));
    e->fb = fb;
    e->target = target;
    crypto_hash_sha256_init(&e->tx);
    crypto_hash_sha256_init(&e->rx);
}

static void end_pump(end *e);
static void end_maybe_close(end *e);

static void on_written(weft_conn *c, int status, void *data)
{
    end *e = data;

    e->outstanding--;
    if (status < 0) {
        e->write_errs++;
        e->err = status;
        return;
    }
    end_pump(e);
}

/* Deterministic bytes that differ per position and per sender. */
static void fill(uint8_t *p, size_t n, uint64_t off, uint8_t salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(((off + i) * 2654435761u) >> 13) ^ salt;
}

static void end_pump(end *e)
{
    size_t n;
    int r;

    while (!e->closed && e->outstanding < 3 && e->sent < e->target) {
        n = e->target - e->sent < PIECE ? (size_t)(e->target - e->sent) : PIECE;
        fill(piece, n, e->sent, (uint8_t)(uintptr_t)e);
        if ((r = weft_write(e->c, piece, n, on_written, e)) == WEFT_ENOBUFS)
            return;
        assert_int_equal(r, 0);
        crypto_hash_sha256_update(&e->tx, piece, n);
        e->sent += n;
        e->outstanding++;
    }
    if (!e->closed && !e->pause && e->sent == e->target && e->outstanding == 0 && !e->shut) {
        e->shut = 1;
        crypto_hash_sha256_final(&e->tx, e->tx_sum);
        assert_int_equal(weft_shutdown(e->c), 0);
    }
    end_maybe_close(e);
}

static int ends_closed;
static end *pairs[8];
static int npairs;

static void on_end_closed(weft_conn *c)
{
    end *e = weft_conn_data(c);

    e->closed = 2;
    if (++ends_closed == npairs)
        fabric_stop(e->fb);
}

static void end_maybe_close(end *e)
{
    if (e->closed || !e->eof || !e->shut || e->outstanding)
        return;
    e->closed = 1;
    weft_close(e->c, on_end_closed);
}

/* Runs once, when the dialling end has read more than kill_after bytes. */
static void (*kill_fn)(end *e);
static uint64_t kill_after;

static void on_end_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    end *e = weft_conn_data(c);

    if (n > 0 && kill_fn && e->rcvd > kill_after && c->ctx == e->fb->dial) {
        void (*fn)(end *) = kill_fn;
        kill_fn = NULL;
        fn(e);
    }
    if (n > 0) {
        crypto_hash_sha256_update(&e->rx, buf, (size_t)n);
        e->rcvd += (uint64_t)n;
        return;
    }
    if (n == WEFT_ECLOSED) {
        e->eof = 1;
        crypto_hash_sha256_final(&e->rx, e->rx_sum);
        end_maybe_close(e);
        return;
    }
    e->err = (int)n;
}

static void end_start(end *e, weft_conn *c)
{
    e->c = c;
    weft_conn_set_data(c, e);
    assert_int_equal(weft_read_start(c, on_end_read), 0);
    if (e->hold)
        assert_int_equal(weft_read_stop(c), 0);
    end_pump(e);
}

/* The write side finishing (shutdown sent) may come after EOF. */
static void on_end_tick(uv_timer_t *t)
{
    for (int i = 0; i < npairs; i++)
        end_maybe_close(pairs[i]);
}

/* ---- bulk: 8 MiB each way, half-close both ways ---- */

static end host_end[2], dial_end[2];
static int naccepted, ndialled;

static void on_accept(weft_conn *c, void *data)
{
    end *e = &host_end[naccepted++];

    assert_string_equal(weft_conn_peer_identity(c), "spiffe://" NET "/identity/dev1");
    assert_string_equal(weft_conn_service(c), "echo");
    end_start(e, c);
}

static void on_dialled(weft_conn *c, int status, void *data)
{
    end *e = &dial_end[ndialled++];

    assert_int_equal(status, 0);
    assert_string_equal(weft_conn_peer_identity(c), "spiffe://" NET "/identity/host1");
    end_start(e, c);
}

static void on_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    fabric *fb = data;
    int n = (int)(npairs / 2);

    assert_int_equal(status, 0);
    assert_string_equal(service, "echo");
    for (int i = 0; i < n; i++)
        assert_int_equal(weft_dial(fb->dial, "echo", on_dialled, fb), 0);
}

static void pairs_init(fabric *fb, int ncircuits, uint64_t bytes)
{
    ends_closed = naccepted = ndialled = 0;
    npairs = 2 * ncircuits;
    for (int i = 0; i < ncircuits; i++) {
        end_init(&host_end[i], fb, bytes);
        end_init(&dial_end[i], fb, bytes);
        pairs[2 * i] = &host_end[i];
        pairs[2 * i + 1] = &dial_end[i];
    }
}

/* Hosts "echo" and runs the ends of pairs_init until they all closed. */
static void run_ends(fabric *fb)
{
    static uv_timer_t tick; /* closed here, freed by the caller's last uv_run */

    uv_timer_init(&fb->loop, &tick);
    uv_timer_start(&tick, on_end_tick, 50, 50);
    uv_unref((uv_handle_t *)&tick);
    assert_int_equal(weft_listen(fb->host, "echo", on_listening, on_accept, fb), 0);
    uv_run(&fb->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&tick, NULL);
}

static void run_pairs(fabric *fb, int ncircuits, uint64_t bytes)
{
    pairs_init(fb, ncircuits, bytes);
    run_ends(fb);
}

static void check_pair(int i)
{
    assert_int_equal(host_end[i].rcvd, dial_end[i].sent);
    assert_int_equal(dial_end[i].rcvd, host_end[i].sent);
    assert_memory_equal(host_end[i].rx_sum, dial_end[i].tx_sum, 32);
    assert_memory_equal(dial_end[i].rx_sum, host_end[i].tx_sum, 32);
    assert_int_equal(host_end[i].write_errs + dial_end[i].write_errs, 0);
    assert_int_equal(host_end[i].err, 0);
    assert_int_equal(dial_end[i].err, 0);
    assert_int_equal(host_end[i].closed + dial_end[i].closed, 4);
}

static void bulk(int via_router)
{
    fabric fb;

    fabric_start(&fb, via_router, 0);
    run_pairs(&fb, 1, BULK);
    fabric_finish(&fb);
    assert_int_equal(host_end[0].rcvd, BULK);
    check_pair(0);
}

/* weft_init proper: the session data comes from the controller's HTTPS API,
 * fetched off the loop, then the ctx connects to the router it names. */
static void online_session_then_dial(void **state)
{
    fabric fb;

    fabric_start(&fb, 1, 1);
    run_pairs(&fb, 1, 100000);
    fabric_finish(&fb);
    assert_int_equal(fb.ctl.requests, 2);
    check_pair(0);
}

static void relay_bulk_both_ways(void **state)
{
    bulk(0);
}

/* Each end announces its receive window: a sender with a larger one of its
 * own keeps to the peer's, so the circuit is not cut for overrunning it. */
static void relay_windows_differ(void **state)
{
    fabric fb;

    host_window = 256 * 1024; /* above PIECE: a write never waits for more than a window */
    dial_window = 2u << 20;
    fabric_start(&fb, 0, 0);
    host_window = dial_window = 0;
    run_pairs(&fb, 1, BULK);
    fabric_finish(&fb);
    check_pair(0);
}

/* Over a path that drops, repeats and reorders frames, every byte arrives
 * once and in order both ways, and both half-closes get through. */
static void relay_lossy_path(void **state)
{
    fabric fb;

    fabric_start(&fb, 0, 0);
    fb.rl.lossy = 1;
    run_pairs(&fb, 1, 3u << 20);
    fabric_finish(&fb);
    assert_true(fb.rl.dropped >= 3);
    assert_true(fb.rl.doubled >= 3);
    assert_true(fb.rl.held >= 3);
    assert_int_equal(host_end[0].rcvd, 3u << 20);
    check_pair(0);
}

static void router_bulk_both_ways(void **state)
{
    bulk(1);
}

/* ---- a reader that stops reading stalls only its own circuit ---- */

static uv_timer_t release;

static void on_release(uv_timer_t *t)
{
    end *held = &host_end[0], *flowing = &host_end[1];
    const uint64_t window = WEFT_WINDOW_DEFAULT + WEFT_CHUNK_MAX;

    /* The other circuit ran to completion while this one took no data. */
    assert_true(flowing->eof);
    assert_int_equal(flowing->rcvd, 2u << 20);
    assert_int_equal(held->rcvd, 0);
    /* Its sender holds the rest: no more than a window went out. */
    assert_true(dial_end[0].sent - weft_write_queue_size(dial_end[0].c) <= window);
    assert_true(weft_write_queue_size(dial_end[0].c) > 0);
    assert_false(held->eof);
    assert_int_equal(weft_read_start(held->c, on_end_read), 0);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_watch(uv_timer_t *t)
{
    if (host_end[1].eof && dial_end[0].c && dial_end[1].c) {
        uv_timer_stop(t);
        uv_timer_start(&release, on_release, 300, 0); /* time for a stall to show */
    }
}

static void read_stop(int via_router)
{
    uv_timer_t watch;
    fabric fb;

    fabric_start(&fb, via_router, 0);
    uv_timer_init(&fb.loop, &watch);
    uv_timer_init(&fb.loop, &release);
    uv_timer_start(&watch, on_watch, 20, 20);
    pairs_init(&fb, 2, 0);
    dial_end[0].target = dial_end[1].target = 2u << 20;
    host_end[0].hold = 1;
    run_ends(&fb);
    uv_close((uv_handle_t *)&watch, NULL);
    fabric_finish(&fb);
    check_pair(0);
    check_pair(1);
}

static void relay_read_stop_stalls_one_circuit(void **state)
{
    read_stop(0);
}

static void router_read_stop_stalls_one_circuit(void **state)
{
    read_stop(1);
}

/* ---- an idle circuit gives its buffers back ---- */

static uv_timer_t idle_watch;
static int idle_phase;

static int holds_buffers(const weft_conn *c)
{
    return c->sendq.buf || c->recvq.buf || c->rtxq.buf || c->rtxq.ent || c->ooo.buf ||
           c->ooo.slot;
}

static int phase_over(void)
{
    end *h = &host_end[0], *d = &dial_end[0];

    return h->c && d->c && h->rcvd == d->target && d->rcvd == h->target && !h->outstanding &&
           !d->outstanding;
}

/* Phase 0: 1 MiB each way, then quiet; 1: after 2 s both conns hold no
 * buffer; then 1 MiB more each way, and the circuit ends as usual. */
static void on_idle_watch(uv_timer_t *t)
{
    if (idle_phase == 0 && phase_over()) {
        /* Just busy: the buffers are still there, ready for more. */
        assert_true(holds_buffers(dial_end[0].c));
        assert_true(holds_buffers(host_end[0].c));
        idle_phase = 1;
        uv_timer_start(t, on_idle_watch, 2000, 0);
    } else if (idle_phase == 1) {
        assert_false(holds_buffers(dial_end[0].c));
        assert_false(holds_buffers(host_end[0].c));
        idle_phase = 2;
        uv_close((uv_handle_t *)t, NULL);
        for (int i = 0; i < npairs; i++) {
            pairs[i]->target *= 2;
            pairs[i]->pause = 0;
            end_pump(pairs[i]);
        }
    }
}

static void idle_gives_buffers_back(int via_router)
{
    fabric fb;

    fabric_start(&fb, via_router, 0);
    idle_phase = 0;
    uv_timer_init(&fb.loop, &idle_watch);
    uv_timer_start(&idle_watch, on_idle_watch, 20, 20);
    pairs_init(&fb, 1, 1u << 20);
    host_end[0].pause = dial_end[0].pause = 1;
    run_ends(&fb);
    fabric_finish(&fb);
    assert_int_equal(idle_phase, 2);
    assert_int_equal(host_end[0].rcvd, 2u << 20);
    check_pair(0);
}

/* An idle circuit costs its weft_conn and nothing more. */
static void relay_idle_gives_buffers_back(void **state)
{
    assert_true(sizeof(weft_conn) <= 4096);
    idle_gives_buffers_back(0);
}

static void router_idle_gives_buffers_back(void **state)
{
    idle_gives_buffers_back(1);
}

/* ---- refusals ---- */

static int refusals;

static void on_refused(weft_conn *c, int status, void *data)
{
    int *want = data;

    assert_null(c);
    assert_int_equal(status, *want);
    refusals++;
}

static void refuse_accept(weft_conn *c, void *data)
{
    weft_close(c, NULL); /* the application says no */
}

static void on_refuse_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    static int want_refused = WEFT_EREFUSED, want_missing = WEFT_ENOTFOUND;
    fabric *fb = data;

    assert_int_equal(status, 0);
    assert_int_equal(weft_dial(fb->dial, "echo", on_refused, &want_refused), 0);
    assert_int_equal(weft_dial(fb->dial, "nohost", on_refused, &want_missing), 0);
}

static void on_refuse_tick(uv_timer_t *t)
{
    fabric *fb = t->data;

    if (refusals == 2) {
        uv_close((uv_handle_t *)t, NULL);
        fabric_stop(fb);
    }
}

static void refusals_come_back(int via_router)
{
    uv_timer_t tick;
    fabric fb;

    fabric_start(&fb, via_router, 0);
    refusals = 0;
    /* Not in the session data: refused at once, no callback. */
    assert_int_equal(weft_dial(fb.dial, "nosuch", on_refused, NULL), WEFT_ENOTFOUND);
    assert_int_equal(weft_listen(fb.host, "nosuch", on_refuse_listening, refuse_accept, &fb),
                     WEFT_ENOTFOUND);
    assert_int_equal(weft_listen(fb.host, "echo", on_refuse_listening, refuse_accept, &fb), 0);
    assert_int_equal(weft_listen(fb.host, "echo", on_refuse_listening, refuse_accept, &fb),
                     WEFT_EEXISTS);
    uv_timer_init(&fb.loop, &tick);
    tick.data = &fb;
    uv_timer_start(&tick, on_refuse_tick, 20, 20);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(refusals, 2);
}

static void relay_refusals(void **state)
{
    refusals_come_back(0);
}

static void router_refusals(void **state)
{
    refusals_come_back(1);
}

/* ---- a bind withdrawn by a policy: the hosting edge hears it at once ---- */

static struct {
    fabric *fb;
    int listened, lost, dial_status, dialled;
    uint64_t withdrawn_at, heard_ns;
    char why[256];
} wd;

static void wd_services(weft_ctx *ctx, const weft_service *v, size_t n, void *data)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, "echo") == 0)
            *(int *)data = v[i].bind;
}

static void wd_dialled(weft_conn *c, int status, void *data)
{
    assert_null(c);
    wd.dial_status = status;
    wd.dialled = 1;
    fabric_stop(wd.fb);
}

/* The map takes host1's bind of echo away, as a bind policy deleted does
 * (docs/policies.md "Withdrawn grants"). */
static void wd_withdraw(rt_router *rt)
{
    char delta[512], err[256];
    long long now = (long long)time(NULL);

    snprintf(delta, sizeof(delta),
             "{\"version\":2,\"base\":1,\"ops\":[{\"op\":\"put\",\"kind\":\"grant_revoked\","
             "\"obj\":{\"id\":\"host1|echo|bind\",\"identity\":\"host1\",\"service\":\"echo\","
             "\"act\":\"bind\",\"at\":%lld,\"until\":%lld,"
             "\"cause\":\"bind policy \\\"echo-bind\\\" deleted or changed\"}}]}",
             now, now + 900);
    if (rt_map_apply_delta(&rt->map, delta, strlen(delta), err, sizeof(err)) < 0)
        fail_msg("delta refused: %s", err);
    wd.withdrawn_at = uv_hrtime();
    rt_router_map_changed(rt);
}

static void wd_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    int bindable = -1;

    if (status == 0) {
        wd.listened++;
        wd_withdraw(&wd.fb->rt);
        return;
    }
    wd.lost++;
    wd.heard_ns = uv_hrtime() - wd.withdrawn_at;
    assert_int_equal(status, WEFT_EDENIED);
    snprintf(wd.why, sizeof(wd.why), "%s", weft_last_error_msg(ctx));
    /* The token in hand is gone: the service is no longer bindable here. */
    assert_int_equal(weft_services(ctx, wd_services, &bindable), 0);
    assert_int_equal(bindable, 0);
    assert_int_equal(weft_listen(ctx, "echo", wd_listening, refuse_accept, NULL), WEFT_ENOPOLICY);
    assert_int_equal(weft_dial(wd.fb->dial, "echo", wd_dialled, NULL), 0);
}

static void router_bind_withdrawn(void **state)
{
    fabric fb;

    fabric_start(&fb, 1, 0);
    memset(&wd, 0, sizeof(wd));
    wd.fb = &fb;
    assert_int_equal(weft_listen(fb.host, "echo", wd_listening, refuse_accept, &fb), 0);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(wd.listened, 1);
    assert_int_equal(wd.lost, 1); /* once, though the withdrawal names it on every frame */
    print_message("bind withdrawn: the hosting edge heard it %.3f ms after the map change\n",
                  (double)wd.heard_ns / 1e6);
    assert_true(wd.heard_ns < 1000000000ull);
    assert_non_null(strstr(wd.why, "bind policy \"echo-bind\" deleted or changed"));
    assert_non_null(strstr(wd.why, "host service echo"));
    /* No terminator left: the dial fails, and says so. */
    assert_int_equal(wd.dialled, 1);
    assert_true(wd.dial_status < 0);
}

/* ---- session loss: circuits reset, writes cancelled, listeners re-bound ---- */

static struct {
    fabric *fb;
    weft_conn *dc, *hc;
    int phase, reset_seen, cancelled, redialled, closed;
} loss;

static void loss_written(weft_conn *c, int status, void *data)
{
    if (status == WEFT_ECANCELED)
        loss.cancelled++;
}

static void loss_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n == WEFT_ERESET)
        loss.reset_seen++;
}

static void loss_closed(weft_conn *c)
{
    if (++loss.closed == 4)
        fabric_stop(loss.fb);
}

static void loss_dialled(weft_conn *c, int status, void *data)
{
    assert_int_equal(status, 0);
    if (loss.phase == 0) {
        loss.dc = c;
        assert_int_equal(weft_read_start(c, loss_read), 0);
        /* More than a window: the host never reads, so writes stay pending. */
        for (int i = 0; i < 4; i++)
            assert_int_equal(weft_write(c, piece, PIECE, loss_written, NULL), 0);
        loss.phase = 1;
    } else {
        loss.redialled = 1;
        weft_close(c, loss_closed);
    }
}

static void loss_read_again(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n < 0) /* the dialler closed */
        weft_close(c, loss_closed);
}

static void loss_accept(weft_conn *c, void *data)
{
    if (loss.phase == 0)
        loss.hc = c; /* never reads */
    else
        assert_int_equal(weft_read_start(c, loss_read_again), 0);
}

static void loss_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(status, 0);
    assert_int_equal(weft_dial(loss.fb->dial, "echo", loss_dialled, NULL), 0);
}

static void on_loss_tick(uv_timer_t *t)
{
    fabric *fb = loss.fb;

    if (loss.phase == 1 && weft_write_queue_size(loss.dc) > 0) {
        relay_kill_sessions(&fb->rl); /* as a router restart would */
        loss.phase = 2;
    } else if (loss.phase == 2 && loss.reset_seen && fb->rl.binds == 2 &&
               weft__rsess_best(fb->dial) != NULL) {
        assert_int_equal(weft_dial(fb->dial, "echo", loss_dialled, NULL), 0);
        weft_close(loss.dc, loss_closed);
        weft_close(loss.hc, loss_closed);
        loss.phase = 3;
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void relay_session_loss(void **state)
{
    uv_timer_t tick;
    fabric fb;

    fabric_start(&fb, 0, 0);
    memset(&loss, 0, sizeof(loss));
    loss.fb = &fb;
    assert_int_equal(weft_listen(fb.host, "echo", loss_listening, loss_accept, NULL), 0);
    uv_timer_init(&fb.loop, &tick);
    uv_timer_start(&tick, on_loss_tick, 20, 20);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(loss.reset_seen, 1);
    assert_true(loss.cancelled >= 1);
    assert_int_equal(loss.redialled, 1);
    assert_int_equal(fb.rl.binds, 2); /* bound again after the reconnect, unasked */
}

/* ---- a relay cannot substitute keys or alter data undetected ---- */

static struct {
    fabric *fb;
    int host_err, dial_err, closed, dial_status;
} tam;

static void tamper_closed(weft_conn *c)
{
    if (++tam.closed == 2)
        fabric_stop(tam.fb);
}

static void tamper_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n >= 0)
        fail_msg("altered data reached the application");
    if (weft_conn_data(c))
        tam.host_err = (int)n;
    else
        tam.dial_err = (int)n;
    weft_close(c, tamper_closed);
}

static void tamper_accept(weft_conn *c, void *data)
{
    weft_conn_set_data(c, &tam);
    assert_int_equal(weft_read_start(c, tamper_read), 0);
}

static void tamper_dialled(weft_conn *c, int status, void *data)
{
    tam.dial_status = status;
    if (status < 0) { /* the key substitution was caught by the host */
        fabric_stop(tam.fb);
        return;
    }
    assert_int_equal(weft_read_start(c, tamper_read), 0);
    assert_int_equal(weft_write(c, "hello", 5, NULL, NULL), 0);
}

static void tamper_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(weft_dial(tam.fb->dial, "echo", tamper_dialled, NULL), 0);
}

static void tamper(int kx)
{
    fabric fb;

    fabric_start(&fb, 0, 0);
    memset(&tam, 0, sizeof(tam));
    tam.fb = &fb;
    fb.rl.tamper_kx = kx;
    fb.rl.tamper_data = !kx;
    assert_int_equal(weft_listen(fb.host, "echo", tamper_listening, tamper_accept, NULL), 0);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
}

static void relay_cannot_substitute_keys(void **state)
{
    tamper(1);
    assert_int_equal(tam.dial_status, WEFT_ECRYPTO);
}

static void relay_cannot_alter_data(void **state)
{
    tamper(0);
    assert_int_equal(tam.dial_status, 0);
    /* The host caught it, and told the dialler why. */
    assert_int_equal(tam.host_err, WEFT_ECRYPTO);
    assert_int_equal(tam.dial_err, WEFT_ECRYPTO);
}

/* ---- path changes: EDGE_RETRANSMIT and EDGE_RESUME ---- */

/* Frames lost on a path the fabric replaced: the router's notice makes both
 * ends send again at once, not after the 1 s retransmission timer. */
static void relay_retransmit_notice(void **state)
{
    fabric fb;

    relay_blackhole = 1;
    fabric_start(&fb, 0, 0);
    relay_blackhole = 0;
    run_pairs(&fb, 1, BULK);
    fabric_finish(&fb);
    check_pair(0);
    assert_int_equal(fb.rl.notices, 1);
    assert_true(fb.rl.early_rtx > 0);
}

static weft_rsess *killed_sess;

/* The dialler's router dies mid-stream (its session, as a crash would). */
static void kill_dialler_router(end *e)
{
    relay *rl = &e->fb->rl;
    weft_conn *c = e->c;

    assert_true(weft__rsess_ready(&e->fb->dial->sess[0]));
    assert_true(weft__rsess_ready(&e->fb->dial->sess[1]));
    assert_int_equal(e->fb->dial->sess[0].caps & PR_CAP_RESUME, PR_CAP_RESUME);
    assert_string_equal(c->anchor, "r1");
    killed_sess = c->sess;
    for (int i = 0; i < RELAY_CIRC; i++)
        if (rl->c[i].id == c->circuit && rl->c[i].end[0])
            pr_conn_close(rl->c[i].end[0]->conn, WEFT_ECLOSED);
}

static void on_both_ready(uv_timer_t *t)
{
    fabric *fb = t->data;

    if (!weft__rsess_ready(&fb->dial->sess[0]) || !weft__rsess_ready(&fb->dial->sess[1]) ||
        !weft__rsess_ready(&fb->host->sess[0]) || !weft__rsess_ready(&fb->host->sess[1]))
        return;
    uv_close((uv_handle_t *)t, NULL);
    run_pairs(fb, 1, BULK);
}

/* Both edges on two relay addresses offering EDGE_RESUME; one circuit of
 * BULK each way, and fn once the dialler has read a quarter. */
static void run_rehomed(fabric *fb, void (*fn)(end *e))
{
    uv_timer_t wait;

    relay_rehome = 1;
    fabric_start(fb, 0, 0);
    relay_rehome = 0;
    kill_fn = fn;
    kill_after = BULK / 4;
    uv_timer_init(&fb->loop, &wait);
    wait.data = fb;
    uv_timer_start(&wait, on_both_ready, 20, 20);
    uv_run(&fb->loop, UV_RUN_DEFAULT);
    fabric_finish(fb);
    assert_null(kill_fn);
    check_pair(0);
}

/* The circuit moves to the dialler's other router without losing or
 * repeating a byte: both ends prove the resume with their circuit keys, drop
 * what the other acknowledged and send the rest again. */
static void relay_resume_on_other_router(void **state)
{
    fabric fb;

    run_rehomed(&fb, kill_dialler_router);
    assert_int_equal(fb.rl.resumes, 1);
    assert_non_null(killed_sess);
}

static void on_forge_tick(uv_timer_t *t)
{
    fabric *fb = t->data;

    if (dial_end[0].err == 0 || dial_end[0].closed)
        return;
    /* The resume was refused: the dialler's end failed; the host's end was
     * never moved anywhere. Both are closed now. */
    assert_int_equal(dial_end[0].err, WEFT_EDENIED);
    assert_int_equal(host_end[0].c->state, CS_OPEN);
    uv_close((uv_handle_t *)t, NULL);
    npairs = 2;
    ends_closed = 0;
    dial_end[0].closed = host_end[0].closed = 1;
    weft_close(dial_end[0].c, on_end_closed);
    weft_close(host_end[0].c, on_end_closed);
    (void)fb;
}

/* A relay that alters the resume (a router trying to take a circuit) gets
 * nothing: the far edge refuses it and keeps its end where it was. */
static void relay_forged_resume_refused(void **state)
{
    uv_timer_t wait, watch;
    fabric fb;

    relay_rehome = 1;
    fabric_start(&fb, 0, 0);
    relay_rehome = 0;
    fb.rl.forge = 1;
    kill_fn = kill_dialler_router;
    kill_after = BULK / 4;
    uv_timer_init(&fb.loop, &wait);
    wait.data = &fb;
    uv_timer_start(&wait, on_both_ready, 20, 20);
    uv_timer_init(&fb.loop, &watch);
    watch.data = &fb;
    uv_timer_start(&watch, on_forge_tick, 20, 20);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(fb.rl.resumes, 0);
    assert_int_equal(fb.rl.refused_resumes, 1);
}

/* ---- a router dead without a word: no FIN, no RST (power cut, dropped network) ---- */

static uint64_t silenced_at;

/* The relay session of the dialler's circuit goes silent: it reads nothing
 * and sends nothing, and its connection stays open. */
static void silence_dialler_router(end *e)
{
    relay *rl = &e->fb->rl;

    killed_sess = e->c->sess;
    silenced_at = uv_now(&e->fb->loop);
    for (int i = 0; i < RELAY_CIRC; i++)
        if (rl->c[i].id == e->c->circuit && rl->c[i].end[0])
            rl->c[i].end[0]->silent = 1;
}

/* The dialler's session, carrying the stream, hears nothing from its router:
 * probed after 1 s, dropped after 1.5 s (the defaults at a loopback RTT) once
 * the other router answered the probe; the circuit resumes there intact. */
static void relay_resume_after_silence(void **state)
{
    fabric fb;

    run_rehomed(&fb, silence_dialler_router);
    assert_int_equal(fb.rl.resumes, 1);
    assert_in_range(fb.rl.resume_at - silenced_at, 1400, 2600);
}

static int is_dialler(const relay_sess *rs)
{
    const char *uri = rs->conn ? pr_conn_peer_uri(rs->conn) : NULL;

    return uri != NULL && strcmp(uri, "spiffe://" NET "/identity/dev1") == 0;
}

static uv_timer_t unsilence;

static void on_unsilence(uv_timer_t *t)
{
    fabric *fb = t->data;

    /* Twice the busy deadline: neither session was dropped, nothing moved. */
    assert_true(weft__rsess_ready(&fb->dial->sess[0]));
    assert_true(weft__rsess_ready(&fb->dial->sess[1]));
    assert_int_equal(fb->rl.resumes, 0);
    for (int k = 0; k < RELAY_SESS; k++)
        fb->rl.s[k].silent = 0;
    uv_close((uv_handle_t *)t, NULL);
}

/* Both routers of the dialler fall silent at once: its own network, more
 * likely than two routers dying together, and nowhere to move to. */
static void silence_both(end *e)
{
    relay *rl = &e->fb->rl;

    for (int k = 0; k < RELAY_SESS; k++)
        if (is_dialler(&rl->s[k]))
            rl->s[k].silent = 1;
    uv_timer_init(&e->fb->loop, &unsilence);
    unsilence.data = e->fb;
    uv_timer_start(&unsilence, on_unsilence, 3000, 0);
}

/* A busy session is dropped only when the other router answers: with both
 * silent for 3 s the sessions stay, and once the network is back the stream
 * ends intact on its first path (what the silence lost is sent again). */
static void relay_both_silent_no_move(void **state)
{
    fabric fb;

    run_rehomed(&fb, silence_both);
    assert_int_equal(fb.rl.resumes, 0);
}

static struct {
    fabric *fb;
    int phase;
    uint64_t last_rx, dropped_quiet, dropped_at;
} idle;

/* The dialler carries nothing; its first session's router falls silent.
 * It is dropped after the idle deadline (3 s here), not the busy one. */
static void idle_poll(uv_timer_t *t)
{
    weft_rsess *s = &idle.fb->dial->sess[0];
    relay *rl = &idle.fb->rl;

    if (idle.phase == 0) {
        if (!weft__rsess_ready(s) || !weft__rsess_ready(&idle.fb->dial->sess[1]))
            return;
        for (int k = 0; k < RELAY_SESS; k++)
            if (is_dialler(&rl->s[k]) && strcmp(rl->s[k].laddr, s->addr) == 0)
                rl->s[k].silent = 1;
        silenced_at = uv_now(&idle.fb->loop);
        idle.phase = 1;
    }
    if (weft__rsess_ready(s)) {
        idle.last_rx = s->last_rx;
        return;
    }
    idle.dropped_at = uv_now(&idle.fb->loop);
    idle.dropped_quiet = idle.dropped_at - idle.last_rx;
    uv_close((uv_handle_t *)t, NULL);
    fabric_stop(idle.fb);
}

static void idle_session_keeps_idle_deadline(void **state)
{
    uv_timer_t poll;
    fabric fb;

    dial_keepalive_ms = 1000;
    dial_idle_dead_ms = 3000;
    relay_rehome = 1;
    fabric_start(&fb, 0, 0);
    relay_rehome = 0;
    dial_keepalive_ms = dial_idle_dead_ms = 0;
    memset(&idle, 0, sizeof(idle));
    idle.fb = &fb;
    uv_timer_init(&fb.loop, &poll);
    uv_timer_start(&poll, idle_poll, 20, 20);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_in_range(idle.dropped_quiet, 3000, 3400);
    assert_true(idle.dropped_at - silenced_at >= 1900); /* the last pong: 1 s before at most */
}

/* ---- re-homing through real routers: a mesh of three ---- */

static struct {
    fabric *fb;
    rt_router r1, r3; /* r2 is fb->rt */
    uv_timer_t t, tick;
    int phase;
    char r1_addr[64], r3_addr[64], resumed_at[64];
} mr;

/* The map every router of the mesh holds: three routers with links, the
 * echo service, and its terminator at r2 once the host is bound. */
static void mesh_map(rt_router *rt, const char *term)
{
    /* r1 and r3 have no link of their own: r3 reaches r2 only, as r1 does. */
    int self = rt == &mr.r1 ? 0 : rt == &mr.r3 ? 2 : 1;
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    char map[3072], terms[256] = "", err[256];
    rt_router *all[3] = {&mr.r1, &mr.fb->rt, &mr.r3};
    const char *ids[3] = {"r1", "r2", "r3"};
    char routers[1536] = "";
    size_t off = 0;

    sodium_bin2base64(b64, sizeof(b64), tok_pk, sizeof(tok_pk), sodium_base64_VARIANT_ORIGINAL);
    for (int i = 0; i < 3; i++)
        off += (size_t)snprintf(routers + off, sizeof(routers) - off,
                                "%s{\"id\":\"%s\",\"name\":\"%s\",\"edge_listen\":\"%s\","
                                "\"link_listen\":\"%s\",\"online\":true}",
                                i ? "," : "", ids[i], ids[i], all[i]->edge_addr,
                                self + i == 2 && self != 1 ? "" : all[i]->link_addr);
    if (term)
        snprintf(terms, sizeof(terms),
                 "{\"id\":\"%s\",\"service\":\"echo\",\"router\":\"r2\",\"identity\":\"host1\"}",
                 term);
    snprintf(map, sizeof(map),
             "{\"version\":%d,\"signing_key\":\"%s\",\"routers\":[%s],"
             "\"services\":[{\"id\":\"echo\",\"name\":\"echo\",\"intercept\":\"tcp:127.0.0.1:1\","
             "\"host\":\"tcp:127.0.0.1:1\",\"hosted_by\":\"\"}],\"terminators\":[%s],"
             "\"revoked\":[]}",
             term ? 2 : 1, b64, routers, terms);
    if (rt_map_apply_full(&rt->map, map, strlen(map), err, sizeof(err)) < 0)
        fail_msg("map refused: %s", err);
    rt_router_map_changed(rt);
}

static void mesh_stop_extra(void)
{
    uv_close((uv_handle_t *)&mr.t, NULL);
    rt_router_close(&mr.r1);
    rt_router_close(&mr.r3);
    uv_close((uv_handle_t *)&mr.tick, NULL);
}

static int same_addr(const struct sockaddr_storage *ss, const char *want)
{
    char a[64];

    return pr_addr_format((const struct sockaddr *)ss, a, sizeof(a)) == 0 && strcmp(a, want) == 0;
}

/* r1's end of the dialler's session (accepted on r1's edge address) and of
 * its link to r2 (the only connection to r2's link address): cut at the
 * socket, so nothing r1 does afterwards reaches anyone, as in a crash. */
static void cut_r1(uv_handle_t *h, void *arg)
{
    struct sockaddr_storage me, peer;
    int ml = sizeof(me), pl = sizeof(peer);
    uv_os_fd_t fd;

    if (h->type != UV_TCP || uv_is_closing(h) ||
        uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&me, &ml) < 0 ||
        uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&peer, &pl) < 0 ||
        uv_fileno(h, &fd) < 0)
        return;
    if (same_addr(&me, mr.r1_addr) || same_addr(&peer, mr.fb->rt.link_addr)) {
        shutdown(fd, SHUT_RDWR);
        (*(int *)arg)++;
    }
}

/* The dialler's router dies (r1: its session and its link to r2). */
static void kill_r1(end *e)
{
    int cut = 0;

    assert_string_equal(e->c->sess->addr, mr.r1_addr);
    assert_string_equal(e->c->anchor, "r2");
    uv_walk(&mr.fb->loop, cut_r1, &cut);
    assert_int_equal(cut, 2);
}

static void on_mesh_tick(uv_timer_t *t)
{
    fabric *fb = mr.fb;
    weft_listener *l = fb->host->listeners;
    rt_router *rs[3] = {&mr.r1, &fb->rt, &mr.r3};

    if (mr.phase == 2 && dial_end[0].c && !dial_end[0].closed && dial_end[0].c->sess)
        memcpy(mr.resumed_at, dial_end[0].c->sess->addr, sizeof(mr.resumed_at) - 1);
    if (mr.phase == 0 && l && l->bound[0]) {
        for (int i = 0; i < 3; i++)
            mesh_map(rs[i], l->terminator);
        mr.phase = 1;
    }
    if (mr.phase != 1 || !rt_link_to(&mr.r1, "r2") || !rt_link_to(&mr.r3, "r2") ||
        !weft__rsess_ready(&fb->dial->sess[0]) || !weft__rsess_ready(&fb->dial->sess[1]) ||
        !(fb->dial->sess[0].caps & PR_CAP_RESUME))
        return;
    /* Dials go via r1: its session is made the nearer one. */
    for (int i = 0; i < 2; i++)
        fb->dial->sess[i].srtt_us = strcmp(fb->dial->sess[i].addr, mr.r1_addr) == 0 ? 1 : 900000;
    mr.phase = 2;
    assert_int_equal(weft_dial(fb->dial, "echo", on_dialled, fb), 0);
}

static void mesh_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(status, 0);
}

/* Dialler on r1 and r3, host on r2; the circuit runs r1 - r2. r1 dies mid-
 * stream: the dialler resumes at r3, which reaches the anchor r2 over its
 * link; the host proves the resume, and every byte arrives once. */
static void mesh_resume_after_router_death(void **state)
{
    pr_idfile *ids[3] = {&router_id, &router2_id, &router3_id};
    rt_router *rs[3];
    weft_options opt = {0};
    fabric fb;
    char *js;

    memset(&fb, 0, sizeof(fb));
    memset(&mr, 0, sizeof(mr));
    mr.fb = &fb;
    fb.via_router = 1;
    rs[0] = &mr.r1, rs[1] = &fb.rt, rs[2] = &mr.r3;
    assert_int_equal(uv_loop_init(&fb.loop), 0);
    uv_timer_init(&fb.loop, &fb.guard);
    uv_timer_start(&fb.guard, on_guard, GUARD_MS, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rt_router_init(rs[i], &fb.loop, ids[i]), 0);
        assert_int_equal(rt_router_listen_edge(rs[i], "127.0.0.1:0"), 0);
        assert_int_equal(rt_router_listen_link(rs[i], "127.0.0.1:0"), 0);
    }
    for (int i = 0; i < 3; i++)
        mesh_map(rs[i], NULL);
    snprintf(mr.r1_addr, sizeof(mr.r1_addr), "%s", mr.r1.edge_addr);
    snprintf(mr.r3_addr, sizeof(mr.r3_addr), "%s", mr.r3.edge_addr);
    js = session_json("host1", fb.rt.edge_addr);
    assert_int_equal(weft__init_offline(&fb.loop, host_file, &opt, js, &fb.host), 0);
    free(js);
    js = session_json2("dev1", mr.r1.edge_addr, mr.r3.edge_addr);
    assert_int_equal(weft__init_offline(&fb.loop, dial_file, &opt, js, &fb.dial), 0);
    free(js);
    stop_extra = mesh_stop_extra;
    ends_closed = naccepted = ndialled = 0;
    npairs = 2;
    end_init(&host_end[0], &fb, BULK);
    end_init(&dial_end[0], &fb, BULK);
    pairs[0] = &host_end[0];
    pairs[1] = &dial_end[0];
    kill_fn = kill_r1;
    kill_after = BULK / 4;
    assert_int_equal(weft_listen(fb.host, "echo", mesh_listening, on_accept, &fb), 0);
    uv_timer_init(&fb.loop, &mr.t);
    uv_timer_start(&mr.t, on_mesh_tick, 10, 10);
    uv_timer_init(&fb.loop, &mr.tick);
    uv_timer_start(&mr.tick, on_end_tick, 50, 50);
    assert_int_equal(uv_run(&fb.loop, UV_RUN_DEFAULT), 0);
    stop_extra = NULL;
    for (int i = 0; i < 3; i++)
        rt_router_free(rs[i]);
    assert_int_equal(uv_loop_close(&fb.loop), 0);
    assert_null(kill_fn);
    check_pair(0);
    assert_string_equal(mr.resumed_at, mr.r3_addr);
}

/* A resume played again is refused by the far edge, and a close on a
 * session the circuit no longer uses does not end it. */
static void relay_resume_replay_refused(void **state)
{
    uv_timer_t wait;
    fabric fb;

    relay_rehome = 1;
    fabric_start(&fb, 0, 0);
    relay_rehome = 0;
    fb.rl.replay = 1;
    kill_fn = kill_dialler_router;
    kill_after = BULK / 4;
    uv_timer_init(&fb.loop, &wait);
    wait.data = &fb;
    uv_timer_start(&wait, on_both_ready, 20, 20);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    check_pair(0);
    assert_int_equal(fb.rl.resumes, 1);
    assert_int_equal(fb.rl.refused_resumes, 1);
    assert_int_equal(fb.rl.old_closes, 1);
}

/* Without the router's capability nothing changes: the circuit is reset. */
static void resume_needs_capability(void **state)
{
    weft_ctx ctx = {0};
    weft_conn c = {0};
    weft_rsess s = {0};

    c.ctx = &ctx;
    ctx.resume = 1;
    c.state = CS_OPEN;
    c.rtx_mode = RTX_ON;
    c.rx_seq = c.tx_seq = 3;
    snprintf(c.anchor, sizeof(c.anchor), "r1");
    s.state = RS_READY;
    s.tls = (pr_conn *)&s; /* only compared with NULL */
    assert_false(weft__resume_possible(&c, &s));
    s.caps = PR_CAP_RESUME;
    assert_true(weft__resume_possible(&c, &s));
    c.anchor[0] = '\0'; /* a router that names no anchor */
    assert_false(weft__resume_possible(&c, &s));
    assert_false(weft__resume_possible(&c, NULL));
}

/* The MAC binds the keys, the role, the circuit, the ack seq and the nonce. */
static void resume_mac(void **state)
{
    weft_e2e a, b;
    uint8_t ha[WEFT_E2E_HDR_LEN], hb[WEFT_E2E_HDR_LEN], n[16] = {1}, m1[32], m2[32];

    assert_int_equal(weft__e2e_init(&a, WEFT_E2E_CLIENT), 0);
    assert_int_equal(weft__e2e_init(&b, WEFT_E2E_SERVER), 0);
    uint8_t pa[WEFT_E2E_PK_LEN], pb[WEFT_E2E_PK_LEN];
    memcpy(pa, weft__e2e_pk(&a), sizeof(pa));
    memcpy(pb, weft__e2e_pk(&b), sizeof(pb));
    assert_int_equal(weft__e2e_derive(&a, pb, ha), 0);
    assert_int_equal(weft__e2e_derive(&b, pa, hb), 0);
    /* Both ends compute the same proof for the dialler's resume... */
    assert_int_equal(weft__e2e_resume_mac(&a, WEFT_E2E_CLIENT, 7, 9, n, m1), 0);
    assert_int_equal(weft__e2e_resume_mac(&b, WEFT_E2E_CLIENT, 7, 9, n, m2), 0);
    assert_memory_equal(m1, m2, 32);
    /* ...and any change of role, circuit, seq or nonce changes it. */
    assert_int_equal(weft__e2e_resume_mac(&b, WEFT_E2E_SERVER, 7, 9, n, m2), 0);
    assert_memory_not_equal(m1, m2, 32);
    assert_int_equal(weft__e2e_resume_mac(&b, WEFT_E2E_CLIENT, 8, 9, n, m2), 0);
    assert_memory_not_equal(m1, m2, 32);
    assert_int_equal(weft__e2e_resume_mac(&b, WEFT_E2E_CLIENT, 7, 10, n, m2), 0);
    assert_memory_not_equal(m1, m2, 32);
    n[15] = 1;
    assert_int_equal(weft__e2e_resume_mac(&b, WEFT_E2E_CLIENT, 7, 9, n, m2), 0);
    assert_memory_not_equal(m1, m2, 32);
    weft__e2e_wipe(&a);
    weft__e2e_wipe(&b);
}

/* ---- deferred accept, closing with a reason ---- */

static struct {
    fabric *fb;
    weft_conn *pending;
    uv_timer_t t;
    int phase, refused, opened, peer_err, closed;
    char reason[WEFT_ERRMSG_MAX];
} da;

static void da_closed(weft_conn *c)
{
    if (++da.closed < 4)
        return;
    uv_close((uv_handle_t *)&da.t, NULL);
    fabric_stop(da.fb);
}

static void da_host_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n == 4 && memcmp(buf, "ping", 4) == 0)
        weft_close_err(c, WEFT_EDENIED, da_closed); /* the dialler reads this code */
}

static void da_dial_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n >= 0)
        return;
    da.peer_err = (int)n;
    weft_close(c, da_closed);
}

static void da_dialled(weft_conn *c, int status, void *data);

/* The host application answers later: the first circuit is refused with a
 * reason, the second accepted. */
static void on_da_timer(uv_timer_t *t)
{
    weft_conn *c = da.pending;

    if (c == NULL)
        return;
    da.pending = NULL;
    if (da.phase == 0) {
        assert_int_equal(weft_reject(c, WEFT_EREFUSED, "service echo: host 127.0.0.1:9 refused the "
                                                       "connection; is the service running?"),
                         0);
        assert_int_equal(weft_accept(c), WEFT_EREFUSED); /* answered once */
        weft_close(c, da_closed);
        return;
    }
    assert_int_equal(weft_accept(c), 0);
    assert_int_equal(weft_read_start(c, da_host_read), 0);
}

static void da_accept(weft_conn *c, void *data)
{
    assert_int_equal(weft_accept_defer(c), 0);
    da.pending = c;
    uv_timer_start(&da.t, on_da_timer, 50, 0);
}

static void da_dialled(weft_conn *c, int status, void *data)
{
    if (da.phase == 0) {
        assert_null(c);
        da.refused = status;
        snprintf(da.reason, sizeof(da.reason), "%s", weft_last_error_msg(da.fb->dial));
        da.phase = 1;
        assert_int_equal(weft_dial(da.fb->dial, "echo", da_dialled, NULL), 0);
        return;
    }
    assert_int_equal(status, 0);
    da.opened = 1;
    assert_int_equal(weft_accept_defer(c), WEFT_ECLOSED); /* only inside accept_cb */
    assert_int_equal(weft_read_start(c, da_dial_read), 0);
    assert_int_equal(weft_write(c, "ping", 4, NULL, NULL), 0);
}

static void da_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(status, 0);
    assert_int_equal(weft_dial(da.fb->dial, "echo", da_dialled, NULL), 0);
}

/* Through a real router: a host that cannot reach its service refuses the
 * dial with the reason (no open-then-reset), and a close with a code is read
 * by the peer as that code. */
static void router_deferred_accept(void **state)
{
    fabric fb;

    memset(&da, 0, sizeof(da));
    fabric_start(&fb, 1, 0);
    da.fb = &fb;
    da.closed = 1; /* then the refused circuit, the host's and the dialler's */
    uv_timer_init(&fb.loop, &da.t);
    assert_int_equal(weft_listen(fb.host, "echo", da_listening, da_accept, NULL), 0);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(da.refused, WEFT_EREFUSED);
    assert_non_null(strstr(da.reason, "refused the connection; is the service running?"));
    assert_int_equal(da.opened, 1);
    assert_int_equal(da.peer_err, WEFT_EDENIED);
}

/* ---- the identity's services ---- */

static struct {
    int calls;
    size_t n;
    char intercept[64], host[64];
    int dial, bind;
} sv;

static void on_services(weft_ctx *ctx, const weft_service *v, size_t n, void *data)
{
    sv.calls++;
    sv.n = n;
    assert_true(n >= 1);
    assert_string_equal(v[0].name, "echo");
    snprintf(sv.intercept, sizeof(sv.intercept), "%s", v[0].intercept);
    snprintf(sv.host, sizeof(sv.host), "%s", v[0].host);
    sv.dial = v[0].dial;
    sv.bind = v[0].bind;
}

static char *replace(const char *js, const char *from, const char *to)
{
    const char *p = strstr(js, from);
    char *out = malloc(strlen(js) + strlen(to) + 1);

    assert_non_null(p);
    memcpy(out, js, (size_t)(p - js));
    strcpy(out + (p - js), to);
    strcat(out, p + strlen(from));
    return out;
}

static void services_and_changes(void **state)
{
    weft_ctx *early;
    fabric fb;
    char *js, *js2;

    fabric_start(&fb, 0, 0);
    memset(&sv, 0, sizeof(sv));
    assert_int_equal(weft_services(fb.host, on_services, NULL), 0);
    assert_int_equal(sv.calls, 1);
    assert_int_equal(sv.n, 2);
    assert_string_equal(sv.intercept, "tcp:127.0.0.1:8080");
    assert_string_equal(sv.host, "tcp:127.0.0.1:80");
    assert_true(sv.dial && sv.bind);
    /* The callback: at once with what is known, then on changes only. */
    weft_set_services_cb(fb.host, on_services, NULL);
    assert_int_equal(sv.calls, 2);
    js = session_json("host1", fb.addr); /* new tokens, same services */
    assert_int_equal(weft__use_session_json(fb.host, js), 0);
    assert_int_equal(sv.calls, 2);
    js2 = replace(js, "127.0.0.1:8080", "127.0.0.1:8081");
    assert_int_equal(weft__use_session_json(fb.host, js2), 0);
    assert_int_equal(sv.calls, 3);
    assert_string_equal(sv.intercept, "tcp:127.0.0.1:8081");
    free(js);
    free(js2);
    /* No session data yet: nothing to list. */
    assert_int_equal(weft_init(&fb.loop, host_file, NULL, &early), 0);
    assert_int_equal(weft_services(early, on_services, NULL), WEFT_EAGAIN);
    weft_free(early);
    fabric_stop(&fb);
    fabric_finish(&fb);
}

/* ---- choosing routers by distance ---- */

static struct {
    fabric *fb;
    rt_router rt[3];
    uv_timer_t t;
    int phase;
    char far[256], near[256], moved_to[256];
} pk;

static weft_dist *dist_at(weft_ctx *ctx, const char *addr)
{
    for (size_t i = 0; i < ctx->ndist; i++)
        if (strcmp(ctx->dist[i].addr, addr) == 0)
            return &ctx->dist[i];
    fail_msg("no distance for %s", addr);
    return NULL;
}

static void on_pick_tick(uv_timer_t *t)
{
    weft_ctx *ctx = pk.fb->dial;
    size_t unheld = 0;

    if (!weft__rsess_ready(&ctx->sess[0]) || !weft__rsess_ready(&ctx->sess[1]))
        return;
    if (pk.phase == 0) {
        /* Three routers, two sessions; now the network changes: the router
         * of session 0 is far, the one without a session near. */
        assert_true(dist_at(ctx, "127.0.0.1:1")->failed);
        assert_int_not_equal(ctx->sess[0].cur, 0); /* never the dead router */
        assert_int_not_equal(ctx->sess[1].cur, 0);
        for (size_t i = 1; i < 4; i++)
            if (ctx->sess[0].cur != i && ctx->sess[1].cur != i)
                unheld = i;
        snprintf(pk.far, sizeof(pk.far), "%s", ctx->sess[0].addr);
        snprintf(pk.near, sizeof(pk.near), "%s", ctx->sd.routers[unheld].edge_listen);
        dist_at(ctx, pk.far)->rtt_us = 80000;
        dist_at(ctx, pk.near)->rtt_us = 100;
        dist_at(ctx, ctx->sess[1].addr)->rtt_us = 200;
        weft__rsess_reevaluate(ctx);
        assert_int_equal(ctx->sess[0].move_to, 0); /* one round is not enough */
        weft__rsess_reevaluate(ctx);
        assert_int_not_equal(ctx->sess[0].move_to, 0); /* closing, then moving */
        pk.phase = 1;
        return;
    }
    if (strcmp(ctx->sess[0].addr, pk.near) != 0)
        return;
    snprintf(pk.moved_to, sizeof(pk.moved_to), "%s", ctx->sess[0].addr);
    uv_close((uv_handle_t *)t, NULL);
    weft_free(pk.fb->dial);
    for (int i = 0; i < 3; i++)
        rt_router_close(&pk.rt[i]);
    uv_close((uv_handle_t *)&pk.fb->guard, NULL);
}

/* Sessions go to the two nearest routers of three, never to a dead one, and
 * move to a router that became clearly nearer. */
static void routers_by_distance(void **state)
{
    pr_idfile *ids[3] = {&router_id, &router2_id, &router3_id};
    const char *dead = "127.0.0.1:1";
    weft_options opt = {0};
    fabric fb;
    json_t *root, *rts;
    char *js, *js2;

    memset(&fb, 0, sizeof(fb));
    memset(&pk, 0, sizeof(pk));
    pk.fb = &fb;
    assert_int_equal(uv_loop_init(&fb.loop), 0);
    uv_timer_init(&fb.loop, &fb.guard);
    uv_timer_start(&fb.guard, on_guard, GUARD_MS, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rt_router_init(&pk.rt[i], &fb.loop, ids[i]), 0);
        assert_int_equal(rt_router_listen_edge(&pk.rt[i], "127.0.0.1:0"), 0);
        router_map(&pk.rt[i], pk.rt[i].edge_addr, NULL);
    }
    /* A dead router listed first, then the three. */
    js = session_json2("dev1", dead, pk.rt[0].edge_addr);
    root = json_loads(js, 0, NULL);
    rts = json_object_get(json_object_get(root, "data"), "routers");
    json_array_append_new(rts, json_pack("{s:s, s:s, s:s}", "id", "r2", "name", "r2",
                                         "edge_listen", pk.rt[1].edge_addr));
    json_array_append_new(rts, json_pack("{s:s, s:s, s:s}", "id", "r3", "name", "r3",
                                         "edge_listen", pk.rt[2].edge_addr));
    js2 = json_dumps(root, JSON_COMPACT);
    assert_int_equal(weft__init_offline(&fb.loop, dial_file, &opt, js2, &fb.dial), 0);
    free(js);
    free(js2);
    json_decref(root);
    /* Ranked before any session starts: the dead router failed its probe. */
    assert_int_equal(fb.dial->sess[0].state, RS_IDLE);
    uv_timer_init(&fb.loop, &pk.t);
    uv_timer_start(&pk.t, on_pick_tick, 20, 20);
    assert_int_equal(uv_run(&fb.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++)
        rt_router_free(&pk.rt[i]);
    assert_int_equal(uv_loop_close(&fb.loop), 0);
    assert_string_equal(pk.moved_to, pk.near);
    assert_string_not_equal(pk.far, pk.near);
}

/* The hysteresis and the order. */
static void ranking_rules(void **state)
{
    weft_ctx ctx;
    size_t rank[4];

    assert_false(weft__clearly_nearer(900, 1000));    /* 10 %: no */
    assert_false(weft__clearly_nearer(500, 1400));    /* less than 1 ms apart: no */
    assert_true(weft__clearly_nearer(1000, 5000));
    assert_true(weft__clearly_nearer(1000, UINT64_MAX)); /* the current one failed */
    assert_false(weft__clearly_nearer(0, 5000));         /* not measured */
    assert_false(weft__clearly_nearer(UINT64_MAX, 5000));
    memset(&ctx, 0, sizeof(ctx));
    ctx.sd.routers = calloc(4, sizeof(*ctx.sd.routers));
    ctx.sd.nrouters = 4;
    for (int i = 0; i < 4; i++)
        snprintf(ctx.sd.routers[i].edge_listen, sizeof(ctx.sd.routers[i].edge_listen),
                 "127.0.0.1:%d", 100 + i);
    weft__dist_sample(&ctx, "127.0.0.1:100", 0, 1);  /* failed */
    weft__dist_sample(&ctx, "127.0.0.1:101", 9000, 0);
    weft__dist_sample(&ctx, "127.0.0.1:103", 300, 0); /* 102 unknown */
    assert_int_equal(weft__rank(&ctx, rank, 4), 4);
    assert_int_equal(rank[0], 3);
    assert_int_equal(rank[1], 1);
    assert_int_equal(rank[2], 2);
    assert_int_equal(rank[3], 0);
    weft__dist_sample(&ctx, "127.0.0.1:103", 20300, 0); /* smoothed: 1/8 of a sample */
    assert_int_equal(weft__dist_of(&ctx, "127.0.0.1:103"), (7 * 300 + 20300) / 8);
    free(ctx.sd.routers);
}

/* ---- router policy refusals (avoid.c) ---- */

static void refusal_kinds(void **state)
{
    static const struct {
        int err;
        const char *msg;
        int kind;
    } cases[] = {
        /* router/grants.c rt_rpolicy_check and router/edge.c ingress_may_carry, as sent */
        {WEFT_EDENIED,
         "identity 3ieq6qpm8s1x may not use router r1 (router policy); the edge will use another "
         "router",
         WEFT_REFUSAL_ROUTER},
        {WEFT_EDENIED,
         "service web may not be carried by router r1 (service-router policy); dial it through "
         "one of its routers",
         WEFT_REFUSAL_SERVICE},
        /* cut before the policy's name: the start still tells */
        {WEFT_EDENIED, "identity 3ieq6qpm8s1x may not use router a-very-long-router-na",
         WEFT_REFUSAL_ROUTER},
        {WEFT_EDENIED, "service web may not be carried by router a-very-long-rou",
         WEFT_REFUSAL_SERVICE},
        /* other refusals are not router policies */
        {WEFT_EBUSY, "identity x may not use router r1 (router policy)", WEFT_REFUSAL_OTHER},
        {WEFT_EDENIED, "device binding: IMEI 999 is not the bound one", WEFT_REFUSAL_OTHER},
        {WEFT_EDENIED, "identity revoked; ask the administrator", WEFT_REFUSAL_OTHER},
        {WEFT_EDENIED, "", WEFT_REFUSAL_OTHER},
        {0, "identity x may not use router r1 (router policy)", WEFT_REFUSAL_OTHER},
    };
    weft_msg m;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&m, 0, sizeof(m));
        m.type = PR_EDGE_ERROR;
        m.err = cases[i].err;
        snprintf(m.err_msg, sizeof(m.err_msg), "%s", cases[i].msg);
        if (weft__refusal_kind(&m) != cases[i].kind)
            fail_msg("case %zu: kind %d, want %d", i, weft__refusal_kind(&m), cases[i].kind);
    }
}

/* What a refusal leaves behind: the router out of the ranking for the
 * identity (or out of one service's dials), for 30 s, doubling when it
 * refuses again soon after, back to 30 s after a long quiet. */
static void refusals_remembered(void **state)
{
    static const char why[] = "identity dev1 may not use router r1 (router policy); the edge will "
                              "use another router";
    weft_ctx ctx;
    weft_conn c;
    weft_msg m;
    uv_loop_t loop;
    size_t rank[4];
    weft_avoid *a = &ctx.avoid[0];

    memset(&ctx, 0, sizeof(ctx));
    assert_int_equal(uv_loop_init(&loop), 0);
    ctx.loop = &loop;
    ctx.offline = 1; /* no session data is fetched */
    ctx.have_sd = 1;
    ctx.sd.routers = calloc(3, sizeof(*ctx.sd.routers));
    ctx.sd.nrouters = 3;
    for (int i = 0; i < 3; i++)
        snprintf(ctx.sd.routers[i].edge_listen, sizeof(ctx.sd.routers[i].edge_listen),
                 "127.0.0.1:%d", 100 + i);
    ctx.nsess = 2;
    for (int i = 0; i < 2; i++) {
        ctx.sess[i] = (weft_rsess){.ctx = &ctx, .slot = i, .state = RS_READY, .cur = (size_t)i};
        snprintf(ctx.sess[i].addr, sizeof(ctx.sess[i].addr), "127.0.0.1:%d", 100 + i);
    }
    /* Ready needs a connection: a stand-in that nothing here dereferences
     * (slot 0 is refused as the identity, which would close a real one). */
    ctx.sess[1].tls = (pr_conn *)&loop;
    memset(&m, 0, sizeof(m));
    m.type = PR_EDGE_ERROR;
    m.err = WEFT_EDENIED;
    snprintf(m.err_msg, sizeof(m.err_msg), "%s", why);

    assert_int_equal(weft__rank(&ctx, rank, 4), 3);
    weft__rsess_refused(&ctx.sess[0], &m);
    assert_true(ctx.sess[0].refused);
    assert_true(weft__avoided(&ctx, "127.0.0.1:100", NULL));
    assert_true(weft__avoided(&ctx, "127.0.0.1:100", "web")); /* the identity: every service */
    assert_false(weft__avoided(&ctx, "127.0.0.1:101", NULL));
    assert_int_equal(weft__rank(&ctx, rank, 4), 2);
    assert_true(rank[0] != 0 && rank[1] != 0);
    assert_ptr_equal(weft__rsess_best(&ctx), &ctx.sess[1]);
    assert_int_equal(a->avoid_ms, WEFT_AVOID_MS);
    assert_true(a->until > weft__now(&ctx) + WEFT_AVOID_MS - 1000);
    weft__no_router_msg(&ctx, NULL);
    assert_non_null(
        strstr(ctx.last_err, "router 127.0.0.1:100 refused: identity dev1 may not use"));

    /* Forgotten when its time is up; refused again soon: twice as long. */
    a->until = weft__now(&ctx) - 1;
    assert_false(weft__avoided(&ctx, "127.0.0.1:100", NULL));
    assert_int_equal(weft__rank(&ctx, rank, 4), 3);
    ctx.sess[0].refused = 0;
    weft__rsess_refused(&ctx.sess[0], &m);
    assert_int_equal(a->avoid_ms, 2 * WEFT_AVOID_MS);
    /* A repeat while in force keeps its time. */
    ctx.sess[0].refused = 0;
    weft__rsess_refused(&ctx.sess[0], &m);
    assert_int_equal(a->avoid_ms, 2 * WEFT_AVOID_MS);
    /* After a long quiet it starts again at 30 s. */
    a->until = weft__now(&ctx) - WEFT_AVOID_MAX_MS - 1;
    ctx.sess[0].refused = 0;
    weft__rsess_refused(&ctx.sess[0], &m);
    assert_int_equal(a->avoid_ms, WEFT_AVOID_MS);

    /* A service refused at 127.0.0.1:101: only that service's dials avoid it. */
    memset(&c, 0, sizeof(c));
    c.ctx = &ctx;
    c.sess = &ctx.sess[1];
    snprintf(c.service, sizeof(c.service), "web");
    snprintf(m.err_msg, sizeof(m.err_msg),
             "service web may not be carried by router r2 (service-router policy); dial it "
             "through one of its routers");
    assert_int_equal(weft__dial_refused(&c, &m), 1);
    assert_true(c.refused);
    assert_true(weft__avoided(&ctx, "127.0.0.1:101", "web"));
    assert_false(weft__avoided(&ctx, "127.0.0.1:101", "mail"));
    assert_false(weft__avoided(&ctx, "127.0.0.1:101", NULL));
    assert_int_equal(weft__rank(&ctx, rank, 4), 2); /* the ranking is the identity's */
    assert_null(weft__rsess_best_for(&ctx, "web")); /* 100 refused us, 101 refused web */
    assert_ptr_equal(weft__rsess_best_for(&ctx, "mail"), &ctx.sess[1]);
    weft__no_router_msg(&ctx, "web");
    assert_non_null(strstr(ctx.last_err, "carries service web; router 127.0.0.1:101 refused: "
                                         "service web may not be carried"));
    /* Not a policy refusal: the dial fails as before. */
    snprintf(m.err_msg, sizeof(m.err_msg), "no terminator");
    m.err = WEFT_ENOTFOUND;
    assert_int_equal(weft__dial_refused(&c, &m), 0);

    free(ctx.sd.routers);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- identity reload ---- */

static struct {
    fabric *fb;
    weft_conn *dc;
    int phase, echoes, accepted;
    char *old_cert;
} rl_;

static void rl_closed(weft_conn *c)
{
    if (c == rl_.dc)
        fabric_stop(rl_.fb);
}

static void rl_host_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n > 0)
        assert_int_equal(weft_write(c, buf, (size_t)n, NULL, NULL), 0);
    else
        weft_close(c, NULL);
}

static void rl_accept(weft_conn *c, void *data)
{
    rl_.accepted++;
    assert_string_equal(weft_conn_peer_identity(c), "spiffe://" NET "/identity/dev1");
    assert_int_equal(weft_read_start(c, rl_host_read), 0);
}

static void rl_dialled(weft_conn *c, int status, void *data);

static void rl_dial_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    weft_ctx *ctx = rl_.fb->dial;

    assert_true(n > 0);
    rl_.echoes++;
    if (rl_.phase == 0) {
        /* Renewed on disk: reloaded; this circuit keeps running. */
        rl_.old_cert = strdup(ctx->id.cert_pem);
        make_identity("identity", "dev2", dial_file, NULL);
        assert_int_equal(weft_reload_identity(ctx), WEFT_EINVAL); /* another identity */
        assert_string_equal(ctx->id.cert_pem, rl_.old_cert);
        make_identity("identity", "dev1", dial_file, NULL);
        assert_int_equal(weft_reload_identity(ctx), 0);
        assert_string_not_equal(ctx->id.cert_pem, rl_.old_cert);
        rl_.phase = 1;
        assert_int_equal(weft_write(c, "b", 1, NULL, NULL), 0);
        return;
    }
    if (rl_.phase == 1) { /* and a new circuit is made with the new certificate */
        rl_.phase = 2;
        assert_int_equal(weft_dial(ctx, "echo", rl_dialled, NULL), 0);
        weft_close(c, NULL);
        return;
    }
    weft_close(c, rl_closed);
}

static void rl_dialled(weft_conn *c, int status, void *data)
{
    assert_int_equal(status, 0);
    if (rl_.phase == 2)
        rl_.dc = c;
    assert_int_equal(weft_read_start(c, rl_dial_read), 0);
    assert_int_equal(weft_write(c, "a", 1, NULL, NULL), 0);
}

static void rl_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(status, 0);
    assert_int_equal(weft_dial(rl_.fb->dial, "echo", rl_dialled, NULL), 0);
}

static void router_identity_reload(void **state)
{
    fabric fb;

    memset(&rl_, 0, sizeof(rl_));
    fabric_start(&fb, 1, 0);
    rl_.fb = &fb;
    assert_int_equal(weft_listen(fb.host, "echo", rl_listening, rl_accept, NULL), 0);
    uv_run(&fb.loop, UV_RUN_DEFAULT);
    fabric_finish(&fb);
    assert_int_equal(rl_.echoes, 3);
    assert_int_equal(rl_.accepted, 2);
    free(rl_.old_cert);
}

/* ---- multi-homed: two real routers, sessions to both ---- */

static struct {
    fabric *fb;
    rt_router rt2;
    rt_router *victim, *survivor;
    uv_timer_t tick;
    int phase, accepted, closed, second_status;
    uint64_t killed_at, redial_ms;
    char first_addr[256], second_addr[256];
} mh;

static void mh_closed(weft_conn *c)
{
    if (++mh.closed < 4)
        return;
    weft_free(mh.fb->host);
    weft_free(mh.fb->dial);
    rt_router_close(mh.survivor);
    uv_close((uv_handle_t *)&mh.fb->guard, NULL);
}

static void mh_read(weft_conn *c, const uint8_t *buf, ssize_t n)
{
    if (n < 0 && c != weft_conn_data(c)) /* the host side: the dialler went */
        weft_close(c, mh_closed);
}

static void mh_accept(weft_conn *c, void *data)
{
    mh.accepted++;
    assert_int_equal(weft_read_start(c, mh_read), 0);
}

static void mh_dialled(weft_conn *c, int status, void *data);

static int both_up(weft_ctx *ctx)
{
    return weft__rsess_ready(&ctx->sess[0]) && weft__rsess_ready(&ctx->sess[1]) &&
           ctx->sess[0].srtt_us > 0 && ctx->sess[1].srtt_us > 0;
}

static void on_mh_tick(uv_timer_t *t)
{
    weft_listener *l = mh.fb->host->listeners;

    if (mh.phase == 0 && l && l->bound[0] && l->bound[1] && both_up(mh.fb->dial)) {
        /* Bound at both routers, both sessions measured: the dial takes the nearer. */
        mh.phase = 1;
        assert_int_equal(weft_dial(mh.fb->dial, "echo", mh_dialled, NULL), 0);
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void mh_dialled(weft_conn *c, int status, void *data)
{
    fabric *fb = mh.fb;

    if (mh.phase == 1) {
        assert_int_equal(status, 0);
        assert_ptr_equal(c->sess, weft__rsess_best(fb->dial));
        snprintf(mh.first_addr, sizeof(mh.first_addr), "%s", c->sess->addr);
        mh.victim = strcmp(c->sess->addr, fb->rt.edge_addr) == 0 ? &fb->rt : &mh.rt2;
        mh.survivor = mh.victim == &fb->rt ? &mh.rt2 : &fb->rt;
        /* That router dies (listener and every session); a new dial at once
         * must get through the other, to the host bound there too. */
        weft_close(c, mh_closed);
        rt_router_close(mh.victim);
        mh.killed_at = uv_now(&fb->loop);
        mh.phase = 2;
        assert_int_equal(weft_dial(fb->dial, "echo", mh_dialled, NULL), 0);
        return;
    }
    mh.second_status = status;
    assert_int_equal(status, 0);
    mh.redial_ms = uv_now(&fb->loop) - mh.killed_at;
    snprintf(mh.second_addr, sizeof(mh.second_addr), "%s", c->sess->addr);
    weft_conn_set_data(c, c);
    assert_int_equal(weft_read_start(c, mh_read), 0);
    weft_close(c, mh_closed);
}

static void mh_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    assert_int_equal(status, 0);
}

static void router_two_routers_failover(void **state)
{
    weft_options opt = {0};
    fabric fb;
    char *js;

    memset(&fb, 0, sizeof(fb));
    memset(&mh, 0, sizeof(mh));
    mh.fb = &fb;
    fb.via_router = 1;
    assert_int_equal(uv_loop_init(&fb.loop), 0);
    uv_timer_init(&fb.loop, &fb.guard);
    uv_timer_start(&fb.guard, on_guard, GUARD_MS, 0);
    assert_int_equal(rt_router_init(&fb.rt, &fb.loop, &router_id), 0);
    assert_int_equal(rt_router_listen_edge(&fb.rt, "127.0.0.1:0"), 0);
    assert_int_equal(rt_router_init(&mh.rt2, &fb.loop, &router2_id), 0);
    assert_int_equal(rt_router_listen_edge(&mh.rt2, "127.0.0.1:0"), 0);
    router_map(&fb.rt, fb.rt.edge_addr, mh.rt2.edge_addr);
    router_map(&mh.rt2, fb.rt.edge_addr, mh.rt2.edge_addr);
    js = session_json2("host1", fb.rt.edge_addr, mh.rt2.edge_addr);
    assert_int_equal(weft__init_offline(&fb.loop, host_file, &opt, js, &fb.host), 0);
    free(js);
    js = session_json2("dev1", fb.rt.edge_addr, mh.rt2.edge_addr);
    assert_int_equal(weft__init_offline(&fb.loop, dial_file, &opt, js, &fb.dial), 0);
    free(js);
    assert_int_equal(weft_listen(fb.host, "echo", mh_listening, mh_accept, NULL), 0);
    uv_timer_init(&fb.loop, &mh.tick);
    uv_timer_start(&mh.tick, on_mh_tick, 20, 20);
    assert_int_equal(uv_run(&fb.loop, UV_RUN_DEFAULT), 0);
    rt_router_free(&fb.rt);
    rt_router_free(&mh.rt2);
    assert_int_equal(uv_loop_close(&fb.loop), 0);
    assert_int_equal(mh.accepted, 2);
    assert_int_equal(mh.second_status, 0);
    assert_string_not_equal(mh.first_addr, mh.second_addr);
    assert_string_equal(mh.second_addr, mh.survivor->edge_addr);
    /* At once: no reconnect backoff, no dial timeout. */
    assert_true(mh.redial_ms < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay_bulk_both_ways),
        cmocka_unit_test(relay_windows_differ),
        cmocka_unit_test(relay_lossy_path),
        cmocka_unit_test(relay_read_stop_stalls_one_circuit),
        cmocka_unit_test(relay_idle_gives_buffers_back),
        cmocka_unit_test(relay_refusals),
        cmocka_unit_test(relay_session_loss),
        cmocka_unit_test(relay_cannot_substitute_keys),
        cmocka_unit_test(relay_cannot_alter_data),
        cmocka_unit_test(router_bulk_both_ways),
        cmocka_unit_test(router_read_stop_stalls_one_circuit),
        cmocka_unit_test(router_idle_gives_buffers_back),
        cmocka_unit_test(router_refusals),
        cmocka_unit_test(router_bind_withdrawn),
        cmocka_unit_test(online_session_then_dial),
        cmocka_unit_test(router_two_routers_failover),
        cmocka_unit_test(relay_retransmit_notice),
        cmocka_unit_test(relay_resume_on_other_router),
        cmocka_unit_test(relay_forged_resume_refused),
        cmocka_unit_test(relay_resume_after_silence),
        cmocka_unit_test(relay_both_silent_no_move),
        cmocka_unit_test(idle_session_keeps_idle_deadline),
        cmocka_unit_test(mesh_resume_after_router_death),
        cmocka_unit_test(relay_resume_replay_refused),
        cmocka_unit_test(resume_needs_capability),
        cmocka_unit_test(resume_mac),
        cmocka_unit_test(router_deferred_accept),
        cmocka_unit_test(services_and_changes),
        cmocka_unit_test(routers_by_distance),
        cmocka_unit_test(ranking_rules),
        cmocka_unit_test(refusal_kinds),
        cmocka_unit_test(refusals_remembered),
        cmocka_unit_test(router_identity_reload),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
