/* The router on a real loop: its edge listener on 127.0.0.1:0 with a map built
 * here, and real pr_conn clients with identity certificates from a real CA.
 * A host binds, a dialler dials, both exchange end-to-end encrypted payload
 * through the router and close; the router's forwarded bytes are exactly the
 * ciphertext the edges sent. Revocation and malformed input close sessions
 * without harming the router. A session whose reads are paused hears unasked
 * pongs, so that its edge does not take the router for dead. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/addr.h"
#include "proto/e2e.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "proto/pki.h"
#include "router/router.h"
#include "weft/errors.h"

#define GUARD_MS 15000
#define MAXREC 16

struct cred {
    char *cert, *key;
};

static pr_ca ca;
static struct cred rcred, dcred, hcred;
static unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];

static void issue(const char *uri, int usage, struct cred *c)
{
    pr_cert_req req = {.cn = "t", .uri = uri, .usage = usage,
                       .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_issue(&ca, &req, &c->cert, &c->key), 0);
}

static int group_setup(void **state)
{
    pr_log_init("router", PR_LOG_WARN);
    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(sign_pk, sign_sk);
    assert_int_equal(pr_ca_create("net", &ca), 0);
    issue("spiffe://net/router/r1", PR_CERT_BOTH, &rcred);
    issue("spiffe://net/identity/dev1", PR_CERT_CLIENT, &dcred);
    issue("spiffe://net/identity/app1", PR_CERT_CLIENT, &hcred);
    return 0;
}

static int group_teardown(void **state)
{
    struct cred *cs[] = {&rcred, &dcred, &hcred};
    for (int i = 0; i < 3; i++)
        free(cs[i]->cert), free(cs[i]->key);
    pr_ca_free(&ca);
    return 0;
}

/* ---- the world of one test ---- */

typedef struct client client;
struct client {
    const char *identity;
    struct cred *cred;
    pr_tls_ctx *ctx;
    pr_conn *conn;
    pr_reader rd;
    void (*on_frame)(client *c, const pr_frame *f);
    int open, closed, hello_ok, errors;
    uint32_t last_err;
    uint64_t circuit, txseq, rxseq;
    pr_e2e_kx kx;
    pr_e2e_keys keys;
    pr_e2e_stream tx, rx;
    uint8_t got[512];
    size_t got_len;
    int got_final, sent_final, got_close;
    uint8_t sent[MAXREC][256];
    size_t sent_len[MAXREC];
    int nsent;
};

static struct {
    uv_loop_t loop;
    uv_timer_t guard;
    rt_router r;
    pr_idfile id;
    client host, dialler;
    uint8_t tap[MAXREC][256];
    size_t tap_len[MAXREC];
    int ntap, timed_out;
} w;

static char *svc_token(const char *sub, const char *svc, const char *name, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "aud", "weft-service", "net",
                          "net", "sub", sub, "svc", svc, "svc_name", name, "act", act, "exp",
                          (json_int_t)time(NULL) + 600);
    char *t = NULL;
    assert_int_equal(pr_jwt_sign(c, sign_sk, &t), 0);
    json_decref(c);
    return t;
}

static void on_tap(void *arg, const rt_circuit *c, const pr_frame *f, const uint8_t *raw,
                   size_t len)
{
    if (f->type != PR_PAYLOAD_DATA || w.ntap >= MAXREC || f->body_len > 256)
        return;
    memcpy(w.tap[w.ntap], f->body, f->body_len);
    w.tap_len[w.ntap++] = f->body_len;
}

static void world_init(void)
{
    char b64[64], map[512], err[128];

    memset(&w, 0, sizeof(w));
    assert_int_equal(uv_loop_init(&w.loop), 0);
    snprintf(w.id.kind, sizeof(w.id.kind), "router");
    snprintf(w.id.id, sizeof(w.id.id), "r1");
    snprintf(w.id.name, sizeof(w.id.name), "one");
    snprintf(w.id.network, sizeof(w.id.network), "net");
    w.id.cert_pem = rcred.cert;
    w.id.key_pem = rcred.key;
    w.id.ca_pem = ca.cert_pem;
    assert_int_equal(rt_router_init(&w.r, &w.loop, &w.id), 0);
    sodium_bin2base64(b64, sizeof(b64), sign_pk, sizeof(sign_pk), sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\": 1, \"signing_key\": \"%s\", \"routers\": [{\"id\": \"r1\"}],"
             " \"services\": [{\"id\": \"s1\", \"name\": \"web\", \"host\": \"tcp:127.0.0.1:9\"}]}",
             b64);
    assert_int_equal(rt_map_apply_full(&w.r.map, map, strlen(map), err, sizeof(err)), 0);
    assert_int_equal(rt_router_listen_edge(&w.r, "127.0.0.1:0"), 0);
    w.r.on_forward = on_tap;
}

static void close_all(void)
{
    if (w.host.conn && !w.host.closed)
        pr_conn_close(w.host.conn, 0);
    if (w.dialler.conn && !w.dialler.closed)
        pr_conn_close(w.dialler.conn, 0);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void guard_cb(uv_timer_t *t)
{
    w.timed_out = 1;
    close_all();
}

static void world_run(void)
{
    uv_timer_init(&w.loop, &w.guard);
    uv_timer_start(&w.guard, guard_cb, GUARD_MS, 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_false(w.timed_out);
    assert_int_equal(uv_loop_close(&w.loop), 0); /* no live handles */
    assert_int_equal(w.r.circuits.n, 0);
    assert_null(w.r.sessions);
    rt_router_free(&w.r);
    pr_tls_ctx_free(w.host.ctx);
    pr_tls_ctx_free(w.dialler.ctx);
}

/* ---- clients ---- */

static void csend(client *c, pr_enc *e, const void *body, size_t len)
{
    size_t n;
    assert_int_equal(pr_enc_finish(e, body, len, &n), 0);
    assert_int_equal(pr_conn_write(c->conn, e->buf, n), 0);
}

static uint8_t cbuf[PR_FRAME_MAX];

static void c_hello(client *c)
{
    pr_enc e;
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_HELLO, 0);
    pr_enc_str(&e, PR_H_VERSION, "test");
    csend(c, &e, NULL, 0);
}

static int c_frame(void *arg, const pr_frame *f)
{
    client *c = arg;

    if (f->type == PR_EDGE_HELLO_OK)
        c->hello_ok = 1;
    if (f->type == PR_EDGE_ERROR || f->type == PR_EDGE_DIAL_FAIL) {
        c->errors++;
        pr_frame_u32(f, PR_H_ERR, &c->last_err);
    }
    if (c->on_frame)
        c->on_frame(c, f);
    return 0;
}

static void c_open(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);
    assert_int_equal(status, 0);
    c->open = 1;
    c_hello(c);
}

static void c_read(pr_conn *conn, const uint8_t *d, size_t n)
{
    client *c = pr_conn_data(conn);
    assert_int_equal(pr_reader_feed(&c->rd, d, n, c_frame, c), 0);
}

static void c_close(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);
    c->closed = 1;
    pr_reader_free(&c->rd);
}

static const pr_conn_cbs ccbs = {c_open, c_read, NULL, c_close};

static void c_connect(client *c, const char *identity, struct cred *cred,
                      void (*on_frame)(client *, const pr_frame *))
{
    pr_tls_cfg cfg = {.ca_pem = ca.cert_pem, .cert_pem = cred->cert, .key_pem = cred->key};
    struct sockaddr_storage ss;

    c->identity = identity;
    c->cred = cred;
    c->on_frame = on_frame;
    assert_int_equal(pr_reader_init(&c->rd), 0);
    assert_int_equal(pr_tls_ctx_new(&cfg, &c->ctx), 0);
    assert_int_equal(pr_addr_resolve(w.r.edge_addr, &ss), 0);
    assert_int_equal(pr_conn_connect(c->ctx, &w.loop, (struct sockaddr *)&ss, NULL, &ccbs, c,
                                     &c->conn), 0);
}

static void c_payload(client *c, const uint8_t *body, size_t len, uint16_t flags)
{
    pr_enc e;

    assert_true(c->nsent < MAXREC && len <= 256);
    memcpy(c->sent[c->nsent], body, len);
    c->sent_len[c->nsent++] = len;
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_PAYLOAD_DATA, flags);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    pr_enc_u64(&e, PR_H_SEQ, c->txseq++);
    csend(c, &e, body, len);
}

static void c_message(client *c, const char *text, int final)
{
    uint8_t ct[256];
    size_t n;

    assert_int_equal(pr_e2e_push(&c->tx, (const uint8_t *)text, strlen(text), final, ct,
                                 sizeof(ct), &n), 0);
    c_payload(c, ct, n, final ? PR_PF_FIN : 0);
    c->sent_final = final;
}

/* Starts our stream and sends one message then FINAL. */
static void c_stream(client *c, const char *text)
{
    uint8_t hdr[PR_E2E_HEADER_BYTES];

    assert_int_equal(pr_e2e_push_start(&c->tx, c->keys.tx, hdr), 0);
    c_payload(c, hdr, sizeof(hdr), 0);
    c_message(c, text, 0);
    c_message(c, "", 1);
}

static void c_kx_fields(client *c, pr_enc *e, int role)
{
    uint8_t sig[PR_E2E_SIG_MAX];
    size_t n;

    assert_int_equal(pr_e2e_sign(c->cred->key, role, c->kx.pk, "web", sig, &n), 0);
    pr_enc_bytes(e, PR_H_KX_PK, c->kx.pk, sizeof(c->kx.pk));
    pr_enc_bytes(e, PR_H_KX_SIG, sig, n);
    pr_enc_str(e, PR_H_PEER_CERT, c->cred->cert);
}

static void c_peer_keys(client *c, const pr_frame *f, int my_role, const char *want_uri)
{
    const uint8_t *kx, *sig;
    size_t kx_len, sig_len;
    const pr_header *cert = pr_frame_header(f, PR_H_PEER_CERT);
    char uri[200];

    assert_non_null(cert);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_PK, &kx, &kx_len), 0);
    assert_int_equal(pr_frame_bytes(f, PR_H_KX_SIG, &sig, &sig_len), 0);
    assert_int_equal(pr_e2e_verify_peer((const char *)cert->val, cert->len, ca.cert_pem,
                                        my_role == PR_E2E_HOST ? PR_E2E_DIALLER : PR_E2E_HOST,
                                        kx, "web", sig, sig_len, uri, sizeof(uri)), 0);
    assert_string_equal(uri, want_uri);
    assert_int_equal(pr_e2e_keys_derive(my_role, &c->kx, kx, &c->keys), 0);
}

/* Payload for us: the header, then messages until FINAL. */
static void c_on_payload(client *c, const pr_frame *f)
{
    uint64_t seq;
    size_t n;
    int final;

    assert_int_equal(pr_frame_u64(f, PR_H_SEQ, &seq), 0);
    assert_int_equal(seq, c->rxseq++);
    if (seq == 0) {
        assert_int_equal(pr_e2e_pull_start(&c->rx, c->keys.rx, f->body, f->body_len), 0);
        return;
    }
    assert_int_equal(pr_e2e_pull(&c->rx, f->body, f->body_len, c->got + c->got_len,
                                 sizeof(c->got) - c->got_len, &n, &final), 0);
    c->got_len += n;
    c->got_final = final;
    assert_int_equal(final, (f->flags & PR_PF_FIN) != 0);
}

/* ---- test: bind, dial, payload both ways, close ---- */

static void host_frame(client *c, const pr_frame *f);
static void dialler_frame(client *c, const pr_frame *f);

static void maybe_close(void)
{
    pr_enc e;

    if (!(w.host.got_final && w.dialler.got_final && w.host.sent_final && w.dialler.sent_final))
        return;
    if (w.dialler.got_close)
        return;
    w.dialler.got_close = 1; /* we close: send EDGE_CLOSE once */
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, w.dialler.circuit);
    pr_enc_u32(&e, PR_H_ERR, 0);
    csend(&w.dialler, &e, NULL, 0);
}

static void host_frame(client *c, const pr_frame *f)
{
    char *tok;
    pr_enc e;

    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        tok = svc_token("app1", "s1", "web", "bind");
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_BIND, 0);
        pr_enc_u32(&e, PR_H_REQ_ID, 1);
        pr_enc_str(&e, PR_H_TOKEN, tok);
        pr_enc_str(&e, PR_H_SERVICE, "web");
        csend(c, &e, NULL, 0);
        free(tok);
        break;
    case PR_EDGE_BIND_OK:
        c_connect(&w.dialler, "dev1", &dcred, dialler_frame);
        break;
    case PR_EDGE_DIAL:
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        assert_int_equal(pr_e2e_kx_new(&c->kx), 0);
        c_peer_keys(c, f, PR_E2E_HOST, "spiffe://net/identity/dev1");
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL_OK, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
        c_kx_fields(c, &e, PR_E2E_HOST);
        csend(c, &e, NULL, 0);
        c_stream(c, "reply from the host");
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        maybe_close();
        break;
    case PR_EDGE_CLOSE:
        c->got_close = 1;
        pr_conn_close(c->conn, 0);
        pr_conn_close(w.dialler.conn, 0);
        rt_router_close(&w.r);
        uv_close((uv_handle_t *)&w.guard, NULL);
        break;
    default:
        break;
    }
}

static void dialler_frame(client *c, const pr_frame *f)
{
    char *tok;
    pr_enc e;
    uint32_t req;

    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        tok = svc_token("dev1", "s1", "web", "dial");
        assert_int_equal(pr_e2e_kx_new(&c->kx), 0);
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL, 0);
        pr_enc_u32(&e, PR_H_REQ_ID, 7);
        pr_enc_str(&e, PR_H_TOKEN, tok);
        pr_enc_str(&e, PR_H_SERVICE, "web");
        c_kx_fields(c, &e, PR_E2E_DIALLER);
        csend(c, &e, NULL, 0);
        free(tok);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u32(f, PR_H_REQ_ID, &req), 0);
        assert_int_equal(req, 7);
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        assert_int_equal(c->circuit, w.host.circuit);
        c_peer_keys(c, f, PR_E2E_DIALLER, "spiffe://net/identity/app1");
        c_stream(c, "hello from the dialler");
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        maybe_close();
        break;
    default:
        break;
    }
}

static int sent_by_someone(const uint8_t *b, size_t n)
{
    client *cs[2] = {&w.host, &w.dialler};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < cs[k]->nsent; i++)
            if (cs[k]->sent_len[i] == n && memcmp(cs[k]->sent[i], b, n) == 0)
                return 1;
    return 0;
}

static void test_bind_dial_exchange(void **state)
{
    world_init();
    c_connect(&w.host, "app1", &hcred, host_frame);
    world_run();
    assert_int_equal(w.host.errors + w.dialler.errors, 0);
    assert_int_equal(w.host.got_len, strlen("hello from the dialler"));
    assert_memory_equal(w.host.got, "hello from the dialler", w.host.got_len);
    assert_memory_equal(w.dialler.got, "reply from the host", w.dialler.got_len);
    assert_true(w.host.got_close);
    /* The router forwarded every payload frame, each exactly as sent. */
    assert_int_equal(w.ntap, w.host.nsent + w.dialler.nsent);
    for (int i = 0; i < w.ntap; i++) {
        assert_true(sent_by_someone(w.tap[i], w.tap_len[i]));
        assert_null(memmem(w.tap[i], w.tap_len[i], "hello", 5));
        assert_null(memmem(w.tap[i], w.tap_len[i], "reply", 5));
    }
}

/* ---- test: refusals keep the session; revocation closes it within a second ---- */

static uint64_t revoked_at;

static void revoke_frame(client *c, const pr_frame *f)
{
    char *tok;
    pr_enc e;
    char err[128];
    const char *delta = "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\","
                        " \"kind\": \"revoked\", \"obj\": {\"id\": \"dev1\"}}]}";

    if (f->type == PR_EDGE_HELLO_OK) {
        /* a token for someone else, then a dial with nobody bound */
        tok = svc_token("app1", "s1", "web", "dial");
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL, 0);
        pr_enc_u32(&e, PR_H_REQ_ID, 1);
        pr_enc_str(&e, PR_H_TOKEN, tok);
        pr_enc_str(&e, PR_H_SERVICE, "web");
        csend(c, &e, NULL, 0);
        free(tok);
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_PING, 0);
        pr_enc_u32(&e, PR_H_REQ_ID, 2);
        csend(c, &e, NULL, 0);
    } else if (f->type == PR_EDGE_PONG) {
        assert_int_equal(c->errors, 1);
        assert_int_equal(c->last_err, (uint32_t)-WEFT_EDENIED);
        assert_int_equal(rt_map_apply_delta(&w.r.map, delta, strlen(delta), err, sizeof(err)), 0);
        revoked_at = uv_now(&w.loop);
        rt_router_map_changed(&w.r);
    }
}

static void closed_check(uv_timer_t *t)
{
    if (!w.dialler.closed)
        return;
    assert_true(uv_now(&w.loop) - revoked_at < 1000);
    uv_close((uv_handle_t *)t, NULL);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void test_revocation(void **state)
{
    uv_timer_t poll;

    world_init();
    c_connect(&w.dialler, "dev1", &dcred, revoke_frame);
    uv_timer_init(&w.loop, &poll);
    uv_timer_start(&poll, closed_check, 10, 10);
    world_run();
    assert_true(w.dialler.closed);
    assert_int_equal(w.dialler.errors, 2); /* the refusal, then "identity revoked" */
    assert_int_equal(w.dialler.last_err, (uint32_t)-WEFT_EDISABLED);
}

/* ---- test: malformed input and unknown circuits close only that session ---- */

static int garbage_step;

static void garbage_frame(client *c, const pr_frame *f)
{
    static const uint8_t junk[] = "WFT\x01 this is not a frame at all................";
    pr_enc e;

    if (f->type != PR_EDGE_HELLO_OK)
        return;
    if (garbage_step++ == 0) {
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_PAYLOAD_DATA, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, 12345);
        pr_enc_u64(&e, PR_H_SEQ, 0);
        csend(c, &e, "x", 1);
    } else {
        assert_int_equal(pr_conn_write(c->conn, junk, sizeof(junk)), 0);
    }
}

static void garbage_check(uv_timer_t *t)
{
    if (!w.dialler.closed)
        return;
    if (!w.host.conn) {
        /* the router still serves: a second session gets its hello answered */
        c_connect(&w.host, "app1", &hcred, garbage_frame);
        return;
    }
    if (!w.host.closed)
        return;
    uv_close((uv_handle_t *)t, NULL);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void test_malformed(void **state)
{
    uv_timer_t poll;

    garbage_step = 0;
    world_init();
    c_connect(&w.dialler, "dev1", &dcred, garbage_frame);
    uv_timer_init(&w.loop, &poll);
    uv_timer_start(&poll, garbage_check, 10, 10);
    world_run();
    assert_true(w.dialler.hello_ok && w.host.hello_ok);
    assert_int_equal(w.dialler.errors, 1); /* unknown circuit */
    assert_int_equal(w.host.errors, 1);    /* malformed frame */
}

/* ---- test: a session whose reads are paused still hears its router ---- */

static struct {
    uint64_t paused_at, first_unasked; /* loop ms */
    int unasked, answered;
} fresh;

static void ping(client *c, uint32_t req)
{
    pr_enc e;

    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_PING, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    csend(c, &e, NULL, 0);
}

/* The router pauses the session (as when an outgoing connection is full, or
 * the identity is shaped); the edge's ping waits unread meanwhile, and the
 * router's unasked pongs say it lives. Resumed, it answers the ping. */
static void fresh_frame(client *c, const pr_frame *f)
{
    uint32_t req = 0;

    if (f->type == PR_EDGE_HELLO_OK) {
        assert_non_null(w.r.sessions);
        w.r.sessions->paused = 1;
        pr_conn_read_stop(w.r.sessions->conn);
        fresh.paused_at = uv_now(&w.loop);
        ping(c, 9);
        return;
    }
    if (f->type != PR_EDGE_PONG)
        return;
    if (pr_frame_u32(f, PR_H_REQ_ID, &req) < 0) {
        if (fresh.unasked++ == 0)
            fresh.first_unasked = uv_now(&w.loop);
        if (fresh.unasked == 2)
            rt_resume_paused(&w.r);
        return;
    }
    assert_int_equal(req, 9);
    assert_int_equal(fresh.unasked, 2); /* the ping was read only once resumed */
    fresh.answered = 1;
    pr_conn_close(c->conn, 0);
    rt_router_close(&w.r);
    uv_close((uv_handle_t *)&w.guard, NULL);
}

static void test_paused_session_kept_fresh(void **state)
{
    memset(&fresh, 0, sizeof(fresh));
    world_init();
    c_connect(&w.dialler, "dev1", &dcred, fresh_frame);
    world_run();
    assert_true(fresh.answered);
    /* 500 ms after the pause, at the router's next 125 ms tick or so */
    assert_in_range(fresh.first_unasked - fresh.paused_at, 450, 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_dial_exchange),
        cmocka_unit_test(test_revocation),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_paused_session_kept_fresh),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
