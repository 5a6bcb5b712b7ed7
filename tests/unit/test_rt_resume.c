/* Re-homing a live circuit (EDGE_RESUME) across four routers on real TLS:
 * the dialler's router ra links to rd (the host's router, the anchor); rb
 * reaches rd only through rc. Mid-transfer ra dies (every connection it has
 * closes at once); the dialling edge, which also holds a session to rb,
 * resumes there: rb sets up rb - rc - rd, rd asks the host edge, which checks
 * the MAC. A forged resume (wrong MAC) is refused and switches nothing; the
 * real one switches the circuit, both edges send again what the other's ack
 * seq does not cover, and every byte arrives in order both ways.
 *
 * Under a service-router policy that keeps the service off rc (rb's way to
 * rd): with a direct rb - rd link as well (dearer), rd refuses the path over
 * rc naming the service and rb resumes along rb - rd; without it, no allowed
 * path is left, the resume fails with EDENIED and rd ends the circuit, the
 * host hearing EDENIED too.
 *
 * Edges are test clients that keep every payload frame they sent and take
 * frames in seq order, dropping duplicates (as libweft does). */
#include "test_rt_world.h"

#define NMSG   8
#define LOGMAX 32

typedef struct {
    uint8_t body[256];
    size_t len;
    uint16_t flags;
} logged;

typedef struct {
    logged tx[LOGMAX];
    char text[512];
    int dups;
} edge_state;

static edge_state es[2]; /* 0: dialler, 1: host */
static client d2;        /* the dialler's second session (rb) */
static char term_id[RT_ID_CAP];
static int killed, forged_sent, forged_failed, resumed, host_resumes, caps_ok, anchors_ok;
static uint8_t nonce[16];
static int updates; /* periodic "update" events from rb with running byte counts */
/* 0: no policy; 1: web kept off rc, rb - rd allowed; 2: kept off rc, no other way */
static int policy;
static uint32_t resume_err;

static void on_event(void *arg, const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    assert_non_null(j);
    if (strcmp(json_string_value(json_object_get(j, "event")), "update") == 0 &&
        json_integer_value(json_object_get(j, "bytes_up")) > 0 &&
        json_integer_value(json_object_get(j, "bytes_down")) > 0 &&
        json_array_size(json_object_get(j, "path")) == (policy ? 2 : 3))
        updates++;
    json_decref(j);
}

static edge_state *st(client *c)
{
    return c == &w.host ? &es[1] : &es[0];
}

/* The dialler talks over ra until it resumes, then over rb. */
static pr_conn *conn_of(client *c)
{
    return c == &w.dialler && resumed ? d2.conn : c->conn;
}

static void put_frame(client *c, uint64_t seq)
{
    const logged *x = &st(c)->tx[seq];
    pr_enc e;
    size_t n;

    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_PAYLOAD_DATA, x->flags);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    pr_enc_u64(&e, PR_H_SEQ, seq);
    assert_int_equal(pr_enc_finish(&e, x->body, x->len, &n), 0);
    pr_conn_write(conn_of(c), cbuf, n); /* may fail: the session died, it goes again */
}

static void log_send(client *c, const uint8_t *body, size_t len, uint16_t flags)
{
    logged *x = &st(c)->tx[c->txseq];

    assert_true(c->txseq < LOGMAX && len <= sizeof(x->body));
    memcpy(x->body, body, len);
    x->len = len;
    x->flags = flags;
    put_frame(c, c->txseq++);
}

static void send_msg(client *c, int i)
{
    char text[32];
    uint8_t ct[256];
    size_t n;

    snprintf(text, sizeof(text), "%s-%d;", c == &w.host ? "h" : "d", i);
    assert_int_equal(pr_e2e_push(&c->tx, (const uint8_t *)text, strlen(text), i == NMSG - 1,
                                 ct, sizeof(ct), &n), 0);
    log_send(c, ct, n, i == NMSG - 1 ? PR_PF_FIN : 0);
}

static void start_stream(client *c)
{
    uint8_t hdr[PR_E2E_HEADER_BYTES];

    assert_int_equal(pr_e2e_push_start(&c->tx, c->keys.tx, hdr), 0);
    log_send(c, hdr, sizeof(hdr), 0);
    for (int i = 0; i < 4; i++)
        send_msg(c, i);
}

static void resend_after(client *c, uint64_t acked)
{
    for (uint64_t s = acked + 1; s < c->txseq; s++)
        put_frame(c, s);
}

static void expected(const char *who, char *out, size_t cap)
{
    size_t off = 0;

    for (int i = 0; i < NMSG; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s-%d;", who, i);
}

/* In seq order: duplicates dropped; nothing comes early on one path. */
static void on_payload(client *c, const pr_frame *f)
{
    edge_state *s = st(c);
    uint8_t pt[256];
    uint64_t seq;
    size_t n;
    int final;

    assert_int_equal(pr_frame_u64(f, PR_H_SEQ, &seq), 0);
    if (seq < c->rxseq) {
        s->dups++;
        return;
    }
    assert_int_equal(seq, c->rxseq);
    c->rxseq++;
    if (seq == 0) {
        assert_int_equal(pr_e2e_pull_start(&c->rx, c->keys.rx, f->body, f->body_len), 0);
        return;
    }
    assert_int_equal(pr_e2e_pull(&c->rx, f->body, f->body_len, pt, sizeof(pt) - 1, &n, &final),
                     0);
    pt[n] = '\0';
    strncat(s->text, (const char *)pt, sizeof(s->text) - strlen(s->text) - 1);
    c->got_final = final;
}

/* ---- the resume proof (docs/dataplane.md "Re-homing live circuits") ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void resume_mac(client *c, int dialler, int role, uint64_t ack, const uint8_t *nc,
                       uint8_t mac[32])
{
    static const char tag[] = "weft-resume-v1";
    uint8_t k[32], rk[32], msg[sizeof(tag) - 1 + 24 + 16];
    crypto_generichash_state gs;

    crypto_generichash_init(&gs, NULL, 0, sizeof(k));
    crypto_generichash_update(&gs, dialler ? c->keys.tx : c->keys.rx, PR_E2E_KEY_BYTES);
    crypto_generichash_update(&gs, dialler ? c->keys.rx : c->keys.tx, PR_E2E_KEY_BYTES);
    crypto_generichash_final(&gs, k, sizeof(k));
    assert_int_equal(crypto_kdf_derive_from_key(rk, sizeof(rk), 1, "weftrsm1", k), 0);
    memcpy(msg, tag, sizeof(tag) - 1);
    put_be64(msg + sizeof(tag) - 1, (uint64_t)role);
    put_be64(msg + sizeof(tag) - 1 + 8, c->circuit);
    put_be64(msg + sizeof(tag) - 1 + 16, ack);
    memcpy(msg + sizeof(tag) - 1 + 24, nc, 16);
    crypto_generichash(mac, 32, msg, sizeof(msg), rk, sizeof(rk));
}

static void send_resume(uint32_t req, int forge)
{
    uint64_t ack = w.dialler.rxseq - 1;
    uint8_t mac[32];
    pr_enc e;
    size_t n;

    randombytes_buf(nonce, sizeof(nonce));
    resume_mac(&w.dialler, 1, 1, ack, nonce, mac);
    mac[0] ^= (uint8_t)forge;
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_RESUME, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, req);
    pr_enc_u64(&e, PR_H_CIRCUIT, w.dialler.circuit);
    pr_enc_str(&e, PR_H_ROUTER_ID, "rd");
    pr_enc_u64(&e, PR_H_ACK_SEQ, ack);
    pr_enc_bytes(&e, PR_H_NONCE, nonce, sizeof(nonce));
    pr_enc_bytes(&e, PR_H_MAC, mac, sizeof(mac));
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &n), 0);
    assert_int_equal(pr_conn_write(d2.conn, cbuf, n), 0);
}

/* The proof in f, made with the peer's role. */
static int proof_ok(client *c, int dialler, const pr_frame *f, uint64_t *ack,
                    const uint8_t **nc)
{
    const uint8_t *mac;
    uint8_t want[32];
    size_t n, k;

    if (pr_frame_u64(f, PR_H_ACK_SEQ, ack) < 0 || pr_frame_bytes(f, PR_H_NONCE, nc, &n) < 0 ||
        n != 16 || pr_frame_bytes(f, PR_H_MAC, &mac, &k) < 0 || k != 32)
        return 0;
    resume_mac(c, dialler, dialler ? 2 : 1, *ack, *nc, want);
    return sodium_memcmp(want, mac, 32) == 0;
}

/* ---- the host edge (at rd, the dialler's anchor) ---- */

static void host_resume(client *c, const pr_frame *f)
{
    const uint8_t *nc;
    uint64_t ack, mine = c->rxseq - 1;
    uint8_t mac[32];
    pr_enc e;

    if (!proof_ok(c, 0, f, &ack, &nc)) {
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_RESUME_FAIL, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
        pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_EDENIED);
        pr_enc_str(&e, PR_H_ERR_MSG, "the resume was not made by the far end");
        csend(c, &e, NULL, 0);
        return;
    }
    host_resumes++;
    resume_mac(c, 0, 2, mine, nc, mac);
    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_RESUME_OK, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    pr_enc_u64(&e, PR_H_ACK_SEQ, mine);
    pr_enc_bytes(&e, PR_H_NONCE, nc, 16);
    pr_enc_bytes(&e, PR_H_MAC, mac, sizeof(mac));
    csend(c, &e, NULL, 0);
    resend_after(c, ack);
    for (int i = 6; i < NMSG; i++)
        send_msg(c, i);
}

static void rs_host(client *c, const pr_frame *f)
{
    char anchor[RT_ID_CAP] = "";

    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_bind(c, "app1");
        break;
    case PR_EDGE_BIND_OK: {
        char delta[512], err[256];
        assert_int_equal(pr_frame_str(f, PR_H_TERMINATOR, term_id, sizeof(term_id)), 0);
        snprintf(delta, sizeof(delta),
                 "{\"version\": %llu, \"base\": %llu, \"ops\": [{\"op\": \"put\", \"kind\": "
                 "\"terminator\", \"obj\": {\"id\": \"%s\", \"service\": \"s1\", \"router\": "
                 "\"rd\", \"identity\": \"app1\"}}]}",
                 (unsigned long long)w.r[0].map.version + 1, (unsigned long long)w.r[0].map.version,
                 term_id);
        assert_int_equal(rt_map_apply_delta(&w.r[0].map, delta, strlen(delta), err, sizeof(err)),
                         0);
        break;
    }
    case PR_EDGE_DIAL:
        assert_int_equal(pr_frame_str(f, PR_H_ROUTER_ID, anchor, sizeof(anchor)), 0);
        anchors_ok += strcmp(anchor, "ra") == 0;
        c_answer_dial(c, f);
        start_stream(c);
        break;
    case PR_EDGE_RESUME:
        host_resume(c, f);
        break;
    case PR_PAYLOAD_DATA:
        on_payload(c, f);
        break;
    case PR_EDGE_CLOSE:
        assert_int_equal(c->close_err, policy == 2 ? (uint32_t)-WEFT_EDENIED : 0);
        if (policy != 2 || resume_err)
            world_stop();
        break;
    default:
        break;
    }
}

/* ---- the dialling edge: ra, then rb ---- */

static void check_caps(const pr_frame *f)
{
    uint32_t caps = 0;

    caps_ok += pr_frame_u32(f, PR_H_EDGE_CAPS, &caps) == 0 && (caps & PR_CAP_RESUME);
}

static void maybe_close(void)
{
    char want[512];

    if (!resumed || !w.dialler.got_final || !w.host.got_final || w.dialler.circuit == 0 ||
        updates < 2) /* the resume's own update, then a periodic one */
        return;
    expected("h", want, sizeof(want));
    assert_string_equal(es[0].text, want);
    expected("d", want, sizeof(want));
    assert_string_equal(es[1].text, want);
    d2.circuit = w.dialler.circuit;
    c_send_close(&d2);
    w.dialler.circuit = 0;
}

static void rs_dialler(client *c, const pr_frame *f)
{
    char anchor[RT_ID_CAP] = "";

    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        check_caps(f);
        c_dial(c, "dev1", 7);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        assert_int_equal(pr_frame_str(f, PR_H_ROUTER_ID, anchor, sizeof(anchor)), 0);
        anchors_ok += strcmp(anchor, "rd") == 0;
        c_peer_keys(c, f, PR_E2E_DIALLER, "spiffe://net/identity/app1");
        start_stream(c);
        break;
    case PR_PAYLOAD_DATA:
        if (!killed)
            on_payload(c, f);
        break;
    default:
        break; /* the EDGE_CLOSE of a dying router is not for us: we resume */
    }
}

static void d2_answer(const pr_frame *f)
{
    const uint8_t *nc;
    uint32_t req = 0;
    uint64_t ack;

    assert_int_equal(pr_frame_u32(f, PR_H_REQ_ID, &req), 0);
    if (f->type == PR_EDGE_RESUME_FAIL && policy == 2) {
        /* No allowed path: refused before the far edge is asked, forged or not. */
        assert_int_equal(pr_frame_u32(f, PR_H_ERR, &resume_err), 0);
        assert_int_equal(resume_err, (uint32_t)-WEFT_EDENIED);
        if (w.host.closes)
            world_stop();
        return;
    }
    if (f->type == PR_EDGE_RESUME_FAIL) {
        assert_int_equal(req, 8);
        forged_failed = 1;
        send_resume(9, 0);
        return;
    }
    assert_int_equal(req, 9);
    assert_true(proof_ok(&w.dialler, 1, f, &ack, &nc));
    assert_memory_equal(nc, nonce, sizeof(nonce));
    resumed = 1;
    resend_after(&w.dialler, ack);
    for (int i = 6; i < NMSG; i++)
        send_msg(&w.dialler, i);
}

static void rs_d2(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        check_caps(f);
        break;
    case PR_EDGE_RESUME_OK:
    case PR_EDGE_RESUME_FAIL:
        d2_answer(f);
        break;
    case PR_PAYLOAD_DATA:
        on_payload(&w.dialler, f);
        maybe_close();
        break;
    default:
        break;
    }
}

/* Service web may be carried by ra, rb and rd only (not rc). */
static void keep_off_rc(int i)
{
    char delta[512], err[256];

    snprintf(delta, sizeof(delta),
             "{\"version\": %llu, \"base\": %llu, \"ops\": [{\"op\": \"put\", \"kind\":"
             " \"service\", \"obj\": {\"id\": \"s1\", \"name\": \"web\", \"host\":"
             " \"tcp:127.0.0.1:9\", \"routers\": [\"@ra\", \"@rb\", \"@rd\"]}}]}",
             (unsigned long long)w.r[i].map.version + 1, (unsigned long long)w.r[i].map.version);
    assert_int_equal(rt_map_apply_delta(&w.r[i].map, delta, strlen(delta), err, sizeof(err)), 0);
    rt_router_map_changed(&w.r[i]);
}

/* rb's own link to rd looks slow, so that its first choice is over rc. */
static void slow_rb_rd(void)
{
    rt_link *l = rt_link_to(&w.r[1], "rd");

    if (l)
        l->srtt_us = 5000000;
}

/* ra dies: every connection it has closes at once, with nothing said. */
static void kill_ra(void)
{
    rt_router *r = &w.r[0];

    for (rt_sess *s = r->sessions; s; s = s->next)
        pr_conn_close(s->conn, WEFT_ECANCELED);
    for (rt_link *l = r->links; l; l = l->next)
        if (l->conn)
            pr_conn_close(l->conn, WEFT_ECANCELED);
    killed = 1;
}

static void rs_poll(void)
{
    if (w.dialler.conn == NULL) {
        if (term_id[0] && rt_link_to(&w.r[0], "rd") && rt_link_to(&w.r[1], "rc") &&
            rt_link_to(&w.r[2], "rd") && (policy != 1 || rt_link_to(&w.r[1], "rd"))) {
            c_connect(&w.dialler, &w.r[0], &dcred, rs_dialler);
            c_connect(&d2, &w.r[1], &dcred, rs_d2);
        }
        return;
    }
    if (!killed && w.dialler.rxseq == 5 && w.host.rxseq == 5) {
        /* Mid-transfer: two more messages each way are in flight as ra dies. */
        send_msg(&w.dialler, 4), send_msg(&w.dialler, 5);
        send_msg(&w.host, 4), send_msg(&w.host, 5);
        slow_rb_rd();
        kill_ra();
        return;
    }
    maybe_close();
    if (killed && w.dialler.closed && d2.hello_ok && !forged_sent) {
        forged_sent = 1;
        send_resume(8, 1); /* a resume the dialler did not make: refused by the host */
    }
}

static void rs_stop(void)
{
    if (d2.conn && !d2.closed)
        pr_conn_close(d2.conn, 0);
}

static void run_resume(int pol)
{
    const char *links = ", \"links\": [{\"a\": \"rc\", \"b\": \"rd\", \"rtt_us\": 300, \"up\": true}]";

    policy = pol;
    resume_err = 0;
    memset(&d2, 0, sizeof(d2));
    memset(es, 0, sizeof(es));
    memset(nonce, 0, sizeof(nonce));
    term_id[0] = '\0';
    updates = killed = forged_sent = forged_failed = resumed = host_resumes = caps_ok = anchors_ok = 0;
    if (getenv("RT_TEST_DEBUG"))
        pr_log_init("router", PR_LOG_DEBUG);
    world_init(4, 1);
    world_map(0, 0x8, NULL, NULL);  /* ra dials rd */
    world_map(1, pol == 1 ? 0xc : 0x4, NULL, links); /* rb dials rc (and rd), knows rc - rd */
    world_map(2, 0x8, NULL, NULL);  /* rc dials rd */
    world_map(3, 0x0, NULL, NULL);
    for (int i = 0; pol && i < 4; i++)
        keep_off_rc(i);
    w.poll_cb = rs_poll;
    w.on_stop = rs_stop;
    w.r[1].on_event = on_event;
    w.r[1].update_ms = 200;
    c_connect(&w.host, &w.r[3], &hcred, rs_host);
    world_run(15000);
    pr_tls_ctx_free(d2.ctx);
    assert_int_equal(caps_ok, 2);
    assert_int_equal(anchors_ok, 2);
    assert_int_equal(w.host.closes, 1);
    if (pol == 2) { /* refused at rd: the host was never asked */
        assert_int_equal(resume_err, (uint32_t)-WEFT_EDENIED);
        assert_int_equal(host_resumes, 0);
        assert_false(resumed);
        return;
    }
    assert_true(forged_failed);
    assert_int_equal(host_resumes, 1); /* the forged one never reached a switch */
    assert_true(resumed);
    assert_true(updates >= 2);
}

static void test_resume(void **state)
{
    run_resume(0);
}

/* The resume's first path crosses rc; rd refuses it naming the service and
 * rb sends it again over rb - rd, where the circuit then runs. */
static void test_resume_policy_retry(void **state)
{
    run_resume(1);
}

static void test_resume_policy_no_path(void **state)
{
    run_resume(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_resume_policy_retry),
        cmocka_unit_test(test_resume_policy_no_path),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
