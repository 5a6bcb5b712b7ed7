/* Shared by the router loop tests (test_rt_mesh.c, test_rt_hosted.c): a real
 * CA, routers on 127.0.0.1:0 with maps built here, and edge clients that speak
 * the edge protocol over real TLS with real end-to-end keys. */
#ifndef TEST_RT_WORLD_H
#define TEST_RT_WORLD_H

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

#define MAXREC 32
#define TW_FN static __attribute__((unused)) /* not every test uses every helper */
#define NROUTERS 4

struct cred {
    char *cert, *key;
};

static pr_ca ca;
static struct cred rcred[NROUTERS], dcred, hcred;
static unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];
static const char *const rid[NROUTERS] = {"ra", "rb", "rc", "rd"};
static char svc_host[96] = "tcp:127.0.0.1:9"; /* "host" of service web in world maps */
static char svc_mp[16] = "";                    /* "multipath" of service web ("": absent) */
static char svc_routers[64] = "";               /* its "routers" (a JSON array; "": absent) */

TW_FN void issue(const char *uri, int usage, struct cred *c)
{
    pr_cert_req req = {.cn = "t", .uri = uri, .usage = usage,
                       .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_issue(&ca, &req, &c->cert, &c->key), 0);
}

TW_FN int group_setup(void **state)
{
    char uri[64];

    pr_log_init("router", PR_LOG_WARN);
    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(sign_pk, sign_sk);
    assert_int_equal(pr_ca_create("net", &ca), 0);
    for (int i = 0; i < NROUTERS; i++) {
        snprintf(uri, sizeof(uri), "spiffe://net/router/%s", rid[i]);
        issue(uri, PR_CERT_BOTH, &rcred[i]);
    }
    issue("spiffe://net/identity/dev1", PR_CERT_CLIENT, &dcred);
    issue("spiffe://net/identity/app1", PR_CERT_CLIENT, &hcred);
    return 0;
}

TW_FN int group_teardown(void **state)
{
    for (int i = 0; i < NROUTERS; i++)
        free(rcred[i].cert), free(rcred[i].key);
    free(dcred.cert), free(dcred.key), free(hcred.cert), free(hcred.key);
    pr_ca_free(&ca);
    return 0;
}

typedef struct client client;
struct client {
    struct cred *cred;
    pr_tls_ctx *ctx;
    pr_conn *conn;
    pr_reader rd;
    void (*on_frame)(client *c, const pr_frame *f);
    int open, closed, hello_ok, errors, closes;
    uint32_t last_err, close_err;
    uint64_t circuit, txseq, rxseq;
    pr_e2e_kx kx;
    pr_e2e_keys keys;
    pr_e2e_stream tx, rx;
    uint8_t got[512];
    size_t got_len;
    int got_final, sent_final;
    uint8_t sent[MAXREC][256];
    size_t sent_len[MAXREC];
    int nsent;
};

static struct {
    uv_loop_t loop;
    uv_timer_t guard, poll;
    rt_router r[NROUTERS];
    pr_idfile id[NROUTERS];
    int nr;
    client host, dialler;
    uint8_t tap[MAXREC][256];
    size_t tap_len[MAXREC];
    int ntap, timed_out, done;
    void (*poll_cb)(void);
    void (*on_stop)(void); /* closes what a test added to the loop */
} w;

TW_FN char *svc_token(const char *sub, const char *svc, const char *name, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "aud", "weft-service", "net",
                          "net", "sub", sub, "svc", svc, "svc_name", name, "act", act, "exp",
                          (json_int_t)time(NULL) + 600);
    char *t = NULL;
    assert_int_equal(pr_jwt_sign(c, sign_sk, &t), 0);
    json_decref(c);
    return t;
}

TW_FN void on_tap(void *arg, const rt_circuit *c, const pr_frame *f, const uint8_t *raw,
                   size_t len)
{
    if (f->type != PR_PAYLOAD_DATA || w.ntap >= MAXREC || f->body_len > 256)
        return;
    memcpy(w.tap[w.ntap], f->body, f->body_len);
    w.tap_len[w.ntap++] = f->body_len;
}

/* nr routers with edge (and link, if links) listeners on 127.0.0.1:0. */
TW_FN void world_init(int nr, int links)
{
    memset(&w, 0, sizeof(w));
    w.nr = nr;
    assert_int_equal(uv_loop_init(&w.loop), 0);
    for (int i = 0; i < nr; i++) {
        pr_idfile *id = &w.id[i];
        snprintf(id->kind, sizeof(id->kind), "router");
        snprintf(id->id, sizeof(id->id), "%s", rid[i]);
        snprintf(id->name, sizeof(id->name), "name-%s", rid[i]);
        snprintf(id->network, sizeof(id->network), "net");
        id->cert_pem = rcred[i].cert;
        id->key_pem = rcred[i].key;
        id->ca_pem = ca.cert_pem;
        assert_int_equal(rt_router_init(&w.r[i], &w.loop, id), 0);
        assert_int_equal(rt_router_listen_edge(&w.r[i], "127.0.0.1:0"), 0);
        if (links)
            assert_int_equal(rt_router_listen_link(&w.r[i], "127.0.0.1:0"), 0);
    }
}

/* A full map for router i: every router (with its link address when
 * link_mask has its bit), service "web" (s1, hosted_by), extra JSON members. */
TW_FN void world_map(int i, unsigned link_mask, const char *hosted_by, const char *extra)
{
    char b64[64], routers[2048] = "", map[4096], err[256];
    size_t off = 0;

    for (int k = 0; k < w.nr; k++)
        off += (size_t)snprintf(routers + off, sizeof(routers) - off,
                                "%s{\"id\": \"%s\", \"name\": \"name-%s\", \"link_listen\": \"%s\"}",
                                k ? ", " : "", rid[k], rid[k],
                                (link_mask >> k) & 1 ? w.r[k].link_addr : "");
    sodium_bin2base64(b64, sizeof(b64), sign_pk, sizeof(sign_pk), sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\": 1, \"signing_key\": \"%s\", \"routers\": [%s],"
             " \"services\": [{\"id\": \"s1\", \"name\": \"web\", \"host\": \"%s\","
             " \"hosted_by\": \"%s\", \"multipath\": \"%s\"%s%s}]%s}",
             b64, routers, svc_host, hosted_by ? hosted_by : "", svc_mp,
             svc_routers[0] ? ", \"routers\": " : "", svc_routers, extra ? extra : "");
    assert_int_equal(rt_map_apply_full(&w.r[i].map, map, strlen(map), err, sizeof(err)), 0);
    rt_router_map_changed(&w.r[i]);
}

TW_FN void world_stop(void)
{
    if (w.done)
        return;
    w.done = 1;
    if (w.on_stop)
        w.on_stop();
    if (w.host.conn && !w.host.closed)
        pr_conn_close(w.host.conn, 0);
    if (w.dialler.conn && !w.dialler.closed)
        pr_conn_close(w.dialler.conn, 0);
    for (int i = 0; i < w.nr; i++)
        rt_router_close(&w.r[i]);
    uv_close((uv_handle_t *)&w.guard, NULL);
    uv_close((uv_handle_t *)&w.poll, NULL);
}

TW_FN void guard_cb(uv_timer_t *t)
{
    w.timed_out = 1;
    world_stop();
}

TW_FN void poll_cb(uv_timer_t *t)
{
    if (w.poll_cb && !w.done)
        w.poll_cb();
}

TW_FN void world_run(unsigned guard_ms)
{
    uv_timer_init(&w.loop, &w.guard);
    uv_timer_start(&w.guard, guard_cb, guard_ms, 0);
    uv_timer_init(&w.loop, &w.poll);
    uv_timer_start(&w.poll, poll_cb, 10, 10);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_false(w.timed_out);
    assert_int_equal(uv_loop_close(&w.loop), 0); /* no live handles */
    for (int i = 0; i < w.nr; i++) {
        assert_int_equal(w.r[i].circuits.n, 0);
        assert_null(w.r[i].sessions);
        assert_null(w.r[i].links);
        rt_router_free(&w.r[i]);
    }
    pr_tls_ctx_free(w.host.ctx);
    pr_tls_ctx_free(w.dialler.ctx);
}

/* ---- edge clients ---- */

static uint8_t cbuf[PR_FRAME_MAX];

TW_FN void csend(client *c, pr_enc *e, const void *body, size_t len)
{
    size_t n;
    assert_int_equal(pr_enc_finish(e, body, len, &n), 0);
    assert_int_equal(pr_conn_write(c->conn, e->buf, n), 0);
}

TW_FN int c_frame(void *arg, const pr_frame *f)
{
    client *c = arg;

    if (f->type == PR_EDGE_HELLO_OK)
        c->hello_ok = 1;
    if (f->type == PR_EDGE_ERROR || f->type == PR_EDGE_DIAL_FAIL) {
        c->errors++;
        pr_frame_u32(f, PR_H_ERR, &c->last_err);
    }
    if (f->type == PR_EDGE_CLOSE) {
        c->closes++;
        pr_frame_u32(f, PR_H_ERR, &c->close_err);
    }
    if (c->on_frame)
        c->on_frame(c, f);
    return 0;
}

TW_FN void c_open(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);
    pr_enc e;

    assert_int_equal(status, 0);
    c->open = 1;
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_HELLO, 0);
    pr_enc_str(&e, PR_H_VERSION, "test");
    csend(c, &e, NULL, 0);
}

TW_FN void c_read(pr_conn *conn, const uint8_t *d, size_t n)
{
    client *c = pr_conn_data(conn);
    assert_int_equal(pr_reader_feed(&c->rd, d, n, c_frame, c), 0);
}

TW_FN void c_close(pr_conn *conn, int status)
{
    client *c = pr_conn_data(conn);
    c->closed = 1;
    pr_reader_free(&c->rd);
}

static const pr_conn_cbs ccbs = {c_open, c_read, NULL, c_close};

TW_FN void c_connect(client *c, rt_router *r, struct cred *cred,
                      void (*on_frame)(client *, const pr_frame *))
{
    pr_tls_cfg cfg = {.ca_pem = ca.cert_pem, .cert_pem = cred->cert, .key_pem = cred->key};
    struct sockaddr_storage ss;

    c->cred = cred;
    c->on_frame = on_frame;
    assert_int_equal(pr_reader_init(&c->rd), 0);
    assert_int_equal(pr_tls_ctx_new(&cfg, &c->ctx), 0);
    assert_int_equal(pr_addr_resolve(r->edge_addr, &ss), 0);
    assert_int_equal(pr_conn_connect(c->ctx, &w.loop, (struct sockaddr *)&ss, NULL, &ccbs, c,
                                     &c->conn), 0);
}

TW_FN void c_payload(client *c, const uint8_t *body, size_t len, uint16_t flags)
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

TW_FN void c_message(client *c, const char *text, int final)
{
    uint8_t ct[256];
    size_t n;

    assert_int_equal(pr_e2e_push(&c->tx, (const uint8_t *)text, strlen(text), final, ct,
                                 sizeof(ct), &n), 0);
    c_payload(c, ct, n, final ? PR_PF_FIN : 0);
    c->sent_final = final;
}

/* Starts our stream and sends one message, then FINAL if final. */
TW_FN void c_stream(client *c, const char *text, int final)
{
    uint8_t hdr[PR_E2E_HEADER_BYTES];

    assert_int_equal(pr_e2e_push_start(&c->tx, c->keys.tx, hdr), 0);
    c_payload(c, hdr, sizeof(hdr), 0);
    c_message(c, text, 0);
    if (final)
        c_message(c, "", 1);
}

TW_FN void c_kx_fields(client *c, pr_enc *e, int role)
{
    uint8_t sig[PR_E2E_SIG_MAX];
    size_t n;

    assert_int_equal(pr_e2e_sign(c->cred->key, role, c->kx.pk, "web", sig, &n), 0);
    pr_enc_bytes(e, PR_H_KX_PK, c->kx.pk, sizeof(c->kx.pk));
    pr_enc_bytes(e, PR_H_KX_SIG, sig, n);
    pr_enc_str(e, PR_H_PEER_CERT, c->cred->cert);
}

TW_FN void c_peer_keys(client *c, const pr_frame *f, int my_role, const char *want_uri)
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

TW_FN void c_on_payload(client *c, const pr_frame *f)
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

TW_FN void c_bind(client *c, const char *sub)
{
    char *tok = svc_token(sub, "s1", "web", "bind");
    pr_enc e;

    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_BIND, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 1);
    pr_enc_str(&e, PR_H_TOKEN, tok);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    csend(c, &e, NULL, 0);
    free(tok);
}

TW_FN void c_dial(client *c, const char *sub, uint32_t req)
{
    char *tok = svc_token(sub, "s1", "web", "dial");
    pr_enc e;

    assert_int_equal(pr_e2e_kx_new(&c->kx), 0);
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_str(&e, PR_H_TOKEN, tok);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    c_kx_fields(c, &e, PR_E2E_DIALLER);
    csend(c, &e, NULL, 0);
    free(tok);
}

/* The host side of a dial: answer DIAL_OK with our keys. */
TW_FN void c_answer_dial(client *c, const pr_frame *f)
{
    pr_enc e;

    assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
    assert_int_equal(pr_e2e_kx_new(&c->kx), 0);
    c_peer_keys(c, f, PR_E2E_HOST, "spiffe://net/identity/dev1");
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL_OK, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    c_kx_fields(c, &e, PR_E2E_HOST);
    csend(c, &e, NULL, 0);
}

TW_FN void c_send_close(client *c)
{
    pr_enc e;

    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    pr_enc_u32(&e, PR_H_ERR, 0);
    csend(c, &e, NULL, 0);
}

TW_FN int sent_by_someone(const uint8_t *b, size_t n)
{
    client *cs[2] = {&w.host, &w.dialler};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < cs[k]->nsent; i++)
            if (cs[k]->sent_len[i] == n && memcmp(cs[k]->sent[i], b, n) == 0)
                return 1;
    return 0;
}

#endif
