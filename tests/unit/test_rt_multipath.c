/* Multipath circuits across four routers on real TLS links, in a square:
 * ra - rb - rd and ra - rc - rd (dialler at ra, host at rd, transits rb, rc).
 * Edges are modelled by test clients that keep every payload frame they
 * sent, send all of them again on EDGE_RETRANSMIT, and take frames in seq
 * order, dropping duplicates and holding early ones (as libweft does).
 *
 * - failover: the circuit opens with a standby leg; killing the active
 *   transit's link mid-transfer moves it to the other transit, and every
 *   byte arrives, in order, both ways;
 * - a blackholed link (no reads at either end) is declared down and the
 *   circuit moves within about a second;
 * - split: payload is striped over both transits, and arrives intact;
 * - redundant: every payload frame crosses both transits;
 * - split with the service kept off rc (a service-router policy): one leg,
 *   over rb, and rc forwards nothing;
 * - GET /metrics over real HTTP (and 404, 405, 400). */
#include "test_rt_world.h"

#define NMSG   6
#define LOGMAX 64

typedef struct {
    uint8_t body[256];
    size_t len;
    uint16_t flags;
    int have;
} logged;

/* Per client: what it sent (for retransmission) and what arrived early. */
typedef struct {
    logged tx[LOGMAX];
    logged early[LOGMAX]; /* by seq */
    int dups, retransmits;
    char text[512];
} edge_state;

static edge_state es[2]; /* 0: dialler, 1: host */
static void mp_dialler(client *c, const pr_frame *f);
static char term_id[RT_ID_CAP];
static uint64_t circuit_id;
/* 0 reset, 1 blackhole, 2 split, 3 redundant, 4 host closes, 5 link EOF,
 * 6 blackhole with a deadline between two ticks, 7 a full leg (split, redundant),
 * 8 split with web kept off rc */
static int scenario;
static uint64_t silence_due, down_ms; /* scenario 6 */
static int phase, killed, sent_after;
static uint64_t kill_ms, moved_ms;
static rt_link *held;  /* scenario 4: the active transit's link from rd, not read for a while */
static uint64_t held_ms;
static uint64_t fwd_base[NROUTERS];

static edge_state *st(client *c)
{
    return c == &w.dialler ? &es[0] : &es[1];
}

static uint64_t now_ms(void)
{
    return uv_now(&w.loop);
}

/* ---- sending, with a log for retransmission ---- */

static void send_frame(client *c, uint64_t seq, const logged *x)
{
    pr_enc e;

    pr_enc_init(&e, cbuf, sizeof(cbuf), PR_PAYLOAD_DATA, x->flags);
    pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
    pr_enc_u64(&e, PR_H_SEQ, seq);
    csend(c, &e, x->body, x->len);
}

static void log_send(client *c, const uint8_t *body, size_t len, uint16_t flags)
{
    logged *x = &st(c)->tx[c->txseq];

    assert_true(c->txseq < LOGMAX && len <= sizeof(x->body));
    memcpy(x->body, body, len);
    x->len = len;
    x->flags = flags;
    x->have = 1;
    send_frame(c, c->txseq++, x);
}

static void send_text(client *c, const char *text, int final)
{
    uint8_t ct[256];
    size_t n;

    assert_int_equal(pr_e2e_push(&c->tx, (const uint8_t *)text, strlen(text), final, ct,
                                 sizeof(ct), &n), 0);
    log_send(c, ct, n, final ? PR_PF_FIN : 0);
    c->sent_final = final;
}

static void start_stream(client *c)
{
    uint8_t hdr[PR_E2E_HEADER_BYTES];

    assert_int_equal(pr_e2e_push_start(&c->tx, c->keys.tx, hdr), 0);
    log_send(c, hdr, sizeof(hdr), 0);
}

static void retransmit(client *c)
{
    st(c)->retransmits++;
    for (uint64_t s = 0; s < c->txseq; s++)
        send_frame(c, s, &st(c)->tx[s]);
}

/* ---- receiving in seq order ---- */

static void take(client *c, uint64_t seq, const uint8_t *body, size_t len, uint16_t flags)
{
    uint8_t pt[256];
    size_t n;
    int final;

    if (seq == 0) {
        assert_int_equal(pr_e2e_pull_start(&c->rx, c->keys.rx, body, len), 0);
        return;
    }
    assert_int_equal(pr_e2e_pull(&c->rx, body, len, pt, sizeof(pt), &n, &final), 0);
    assert_int_equal(final, (flags & PR_PF_FIN) != 0);
    strncat(st(c)->text, (const char *)pt, n);
    c->got_final |= final;
}

static void on_payload(client *c, const pr_frame *f)
{
    edge_state *s = st(c);
    uint64_t seq;

    assert_int_equal(pr_frame_u64(f, PR_H_SEQ, &seq), 0);
    assert_true(seq < LOGMAX);
    if (seq < c->rxseq || (seq > c->rxseq && s->early[seq].have)) {
        s->dups++;
        return;
    }
    if (seq > c->rxseq) {
        memcpy(s->early[seq].body, f->body, f->body_len);
        s->early[seq].len = f->body_len;
        s->early[seq].flags = f->flags;
        s->early[seq].have = 1;
        return;
    }
    take(c, c->rxseq++, f->body, f->body_len, f->flags);
    while (c->rxseq < LOGMAX && s->early[c->rxseq].have) {
        logged *x = &s->early[c->rxseq];
        take(c, c->rxseq++, x->body, x->len, x->flags);
    }
}

/* ---- the world ---- */

static void put_term(int i, const char *router)
{
    char delta[512], err[256];

    snprintf(delta, sizeof(delta),
             "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\", \"kind\": \"terminator\","
             " \"obj\": {\"id\": \"%s\", \"service\": \"s1\", \"router\": \"%s\","
             " \"identity\": \"app1\"}}]}", term_id, router);
    assert_int_equal(rt_map_apply_delta(&w.r[i].map, delta, strlen(delta), err, sizeof(err)), 0);
}

static rt_circuit *at(int i, int role)
{
    return circuit_id ? rt_circuits_find_role(&w.r[i].circuits, circuit_id, role) : NULL;
}

/* The transit router (1: rb, 2: rc) of the ingress router's active leg. */
static int active_transit(void)
{
    rt_circuit *c = at(0, RT_ROLE_INGRESS);

    assert_non_null(c);
    assert_int_equal(c->leg[0].path.n, 3);
    return strcmp(c->leg[0].path.hop[1], "rb") == 0 ? 1 : 2;
}

/* The host answers and closes at once; the answer's leg is slow (its transit
 * stops reading rd for 300 ms), so the close on the standby leg comes first. */
static void answer_and_close(client *c)
{
    held = rt_link_to(&w.r[active_transit()], "rd");
    assert_non_null(held);
    pr_conn_read_stop(held->conn);
    held_ms = now_ms();
    send_text(c, "reply", 1);
    c_send_close(c);
}

static void mp_host(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_bind(c, "app1");
        break;
    case PR_EDGE_BIND_OK:
        assert_int_equal(pr_frame_str(f, PR_H_TERMINATOR, term_id, sizeof(term_id)), 0);
        put_term(0, "rd");
        c_connect(&w.dialler, &w.r[0], &dcred, mp_dialler);
        break;
    case PR_EDGE_DIAL:
        c_answer_dial(c, f);
        start_stream(c);
        break;
    case PR_EDGE_RETRANSMIT:
        retransmit(c);
        break;
    case PR_PAYLOAD_DATA:
        on_payload(c, f);
        if (c->got_final && !c->sent_final && scenario == 4)
            answer_and_close(c);
        else if (c->got_final && !c->sent_final)
            send_text(c, "reply", 1);
        break;
    case PR_EDGE_CLOSE:
        assert_int_equal(c->close_err, 0);
        world_stop();
        break;
    default:
        break;
    }
}

static void mp_dialler(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_dial(c, "dev1", 9);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        circuit_id = c->circuit;
        c_peer_keys(c, f, PR_E2E_DIALLER, "spiffe://net/identity/app1");
        start_stream(c);
        break;
    case PR_EDGE_RETRANSMIT:
        moved_ms = now_ms();
        retransmit(c);
        break;
    case PR_PAYLOAD_DATA:
        on_payload(c, f);
        break;
    case PR_EDGE_CLOSE:
        if (scenario == 4) /* the host's close, behind its answer */
            world_stop();
        break;
    default:
        break;
    }
}

static int links_ready(void)
{
    return rt_link_to(&w.r[0], "rb") && rt_link_to(&w.r[0], "rc") && rt_link_to(&w.r[1], "rd") &&
           rt_link_to(&w.r[2], "rd") && rt_link_to(&w.r[3], "rb") && rt_link_to(&w.r[3], "rc");
}

static void blackhole(int transit)
{
    rt_link *a = rt_link_to(&w.r[transit], "rd"), *b = rt_link_to(&w.r[3], rid[transit]);

    assert_non_null(a);
    assert_non_null(b);
    pr_conn_read_stop(a->conn);
    pr_conn_read_stop(b->conn);
}

/* The active transit's link to rd got an orderly close from rd (its
 * connection is closing; the link's close callback has not run yet), and a
 * frame from ra arrives for it in that window. */
static void eof_then_frame(int t)
{
    rt_link *l = rt_link_to(&w.r[t], "rd");
    rt_circuit *c = at(t, RT_ROLE_TRANSIT);
    uint8_t buf[128];
    size_t n, used;
    pr_frame f;
    pr_enc e;

    assert_non_null(l);
    assert_non_null(c);
    pr_conn_close(l->conn, WEFT_ECLOSED); /* what an EOF does to the connection */
    pr_enc_init(&e, buf, sizeof(buf), PR_PAYLOAD_DATA, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit_id);
    pr_enc_u64(&e, PR_H_SEQ, 99);
    assert_int_equal(pr_enc_finish(&e, "x", 1, &n), 0);
    assert_int_equal(pr_frame_decode(buf, n, &f, &used), 0);
    rt_forward(&w.r[t], c, 0, &f);
    assert_null(at(t, RT_ROLE_TRANSIT)); /* gone, with LINK_LEG_DOWN towards ra */
}

/* Makes l's silence deadline 10 ms after one of its router's ticks (the
 * next but two), so that a check made only at ticks is 115 ms late. */
static uint64_t deadline_off_tick(rt_router *r, rt_link *l)
{
    uint64_t d = now_ms() + uv_timer_get_due_in(&r->tick) + 2 * RT_TICK_MS + 10;

    l->busy_since_ms = 1; /* long busy: the 750 ms limit applies */
    l->last_rx_ms = d - 750;
    return d;
}

static void blackhole_off_tick(int t)
{
    uint64_t a, b;

    blackhole(t);
    a = deadline_off_tick(&w.r[t], rt_link_to(&w.r[t], "rd"));
    b = deadline_off_tick(&w.r[3], rt_link_to(&w.r[3], rid[t]));
    silence_due = a < b ? a : b;
}

/* Leg 0's link at ra passes its high watermark (frames of a type routers
 * ignore, not yet written out), then frames from the dialler's side come:
 * the other leg carries every one and the session is not paused. */
static void full_leg(void)
{
    static uint8_t junk[PR_FRAME_MAX], zeros[60000];
    rt_circuit *c = at(0, RT_ROLE_INGRESS);
    rt_link *l = rt_circuit_leg(c, 0)->peer;
    uint64_t f0 = c->leg[0].frames, f1 = c->leg[1].frames;
    uint8_t buf[128];
    size_t n, used;
    pr_frame f;
    pr_enc e;

    while (pr_conn_writable(l->conn)) {
        pr_enc_init(&e, junk, sizeof(junk), 0x02ff, 0);
        assert_int_equal(pr_enc_finish(&e, zeros, sizeof(zeros), &n), 0);
        assert_int_equal(pr_conn_write(l->conn, junk, n), 0);
    }
    pr_enc_init(&e, buf, sizeof(buf), PR_PAYLOAD_DATA, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit_id);
    pr_enc_u64(&e, PR_H_SEQ, 0); /* a copy the host already has */
    assert_int_equal(pr_enc_finish(&e, "x", 1, &n), 0);
    assert_int_equal(pr_frame_decode(buf, n, &f, &used), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rt_forward(&w.r[0], c, 0, &f), 0);
    assert_int_equal(c->leg[1].frames, f1 + 4); /* every frame on the leg that can take it */
    /* split puts none on the full leg; redundant copies go there too (it may be
     * the healthy leg, briefly behind) */
    assert_int_equal(c->leg[0].frames, f0 + (c->mode == RT_MP_SPLIT ? 0 : 4));
}

static void break_path(void)
{
    int t = active_transit();

    kill_ms = now_ms();
    if (scenario == 6)
        blackhole_off_tick(t);
    else if (scenario == 5)
        eof_then_frame(t);
    else if (scenario == 0)
        rt_link_kill(rt_link_to(&w.r[t], "rd"), WEFT_ERESET, "test: link killed");
    else
        blackhole(t);
    killed = t;
}

static void send_some(int from, int to)
{
    char m[32];

    for (int i = from; i < to; i++) {
        snprintf(m, sizeof(m), "m%d;", i);
        send_text(&w.dialler, m, 0);
    }
}

static int legs_ready(void)
{
    rt_circuit *in = at(0, RT_ROLE_INGRESS), *eg = at(3, RT_ROLE_EGRESS);
    int want = scenario == 8 ? 1 : 2; /* no leg may cross rc */
    return in && eg && w.host.rxseq >= 1 && w.dialler.rxseq >= 1 &&
           rt_circuit_nlegs(in) == want && rt_circuit_nlegs(eg) == want;
}

static void expect_all(void)
{
    char want[256] = "";

    for (int i = 0; i < NMSG; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "m%d;", i);
    strcat(want, "end");
    assert_string_equal(es[1].text, want);
    assert_string_equal(es[0].text, "reply");
}

static void finish_when_done(void)
{
    if (held && now_ms() - held_ms >= 300) {
        pr_conn_read_start(held->conn);
        held = NULL;
    }
    if (scenario != 4 && phase == 3 && w.host.got_final && w.dialler.got_final) {
        phase = 4;
        c_send_close(&w.dialler);
    }
}

static int moves(void)
{
    return scenario <= 1 || scenario == 5 || scenario == 6;
}

static void mp_poll(void)
{
    if (scenario == 6 && killed && !down_ms &&
        (!rt_link_to(&w.r[killed], "rd") || !rt_link_to(&w.r[3], rid[killed])))
        down_ms = now_ms();
    if (phase == 0 && links_ready()) {
        phase = 1;
        c_connect(&w.host, &w.r[3], &hcred, mp_host);
    } else if (phase == 1 && legs_ready()) {
        phase = 2;
        for (int i = 0; i < NROUTERS; i++)
            fwd_base[i] = w.r[i].frames_fwd;
        send_some(0, NMSG / 2);
        if (moves())
            break_path(); /* mid-transfer: those frames may be lost on the way */
        else if (scenario == 7)
            full_leg();
    } else if (phase == 2 && (!moves() || (w.r[0].reroutes >= 1 && moved_ms))) {
        phase = 3;
        send_some(NMSG / 2, NMSG);
        send_text(&w.dialler, "end", 1);
    }
    finish_when_done();
}

static void run_scenario(int which, const char *mode, unsigned guard_ms)
{
    char extra[512];

    memset(es, 0, sizeof(es));
    circuit_id = 0;
    scenario = which;
    phase = killed = sent_after = 0;
    kill_ms = moved_ms = held_ms = silence_due = down_ms = 0;
    held = NULL;
    snprintf(svc_mp, sizeof(svc_mp), "%s", mode);
    snprintf(svc_routers, sizeof(svc_routers), "%s",
             which == 8 ? "[\"@ra\", \"@rb\", \"@rd\"]" : "");
    world_init(4, 1);
    snprintf(extra, sizeof(extra),
             ", \"links\": [{\"a\": \"rb\", \"b\": \"rd\", \"rtt_us\": 100, \"up\": true},"
             " {\"a\": \"rc\", \"b\": \"rd\", \"rtt_us\": 100, \"up\": true}]");
    world_map(0, 0x6, NULL, extra); /* ra dials rb and rc */
    world_map(1, 0x8, NULL, NULL);  /* rb dials rd */
    world_map(2, 0x8, NULL, NULL);  /* rc dials rd */
    world_map(3, 0x0, NULL, NULL);
    w.poll_cb = mp_poll;
    world_run(guard_ms);
    expect_all();
}

static void test_failover_link_killed(void **state)
{
    run_scenario(0, "", 15000);
    assert_true(killed == 1 || killed == 2);
    assert_int_equal(w.r[0].reroutes, 1);
    assert_true(es[0].retransmits >= 1); /* the dialler was told */
    assert_true(es[1].retransmits >= 1); /* and the host */
    /* after the move, payload crossed the other transit */
    assert_true(w.r[3 - killed].frames_fwd > fwd_base[3 - killed]);
    assert_true(moved_ms - kill_ms < 200);
}

static void test_failover_blackhole(void **state)
{
    run_scenario(1, "failover", 15000);
    assert_int_equal(w.r[0].reroutes, 1);
    /* silence is noticed after 750 ms and the circuit moves at once */
    assert_true(moved_ms - kill_ms >= 700);
    assert_true(moved_ms - kill_ms < 1500);
    print_message("blackhole: circuit moved after %llu ms\n",
                  (unsigned long long)(moved_ms - kill_ms));
}

static void test_split(void **state)
{
    run_scenario(2, "split", 15000);
    /* both transits carried payload, neither all of it */
    uint64_t b = w.r[1].frames_fwd - fwd_base[1], c = w.r[2].frames_fwd - fwd_base[2];
    assert_true(b >= 1);
    assert_true(c >= 1);
    assert_int_equal(w.r[0].reroutes, 0);
}

static void test_redundant(void **state)
{
    run_scenario(3, "redundant", 15000);
    /* every payload frame from phase 2 on crossed both transits */
    uint64_t b = w.r[1].frames_fwd - fwd_base[1], c = w.r[2].frames_fwd - fwd_base[2];
    assert_true(b >= NMSG + 1);
    assert_true(c >= NMSG + 1);
    assert_true(es[1].dups >= NMSG); /* the host dropped the second copies */
}

/* Split wants three legs, but the only other way crosses rc, which a
 * service-router policy keeps web off: the circuit runs on one leg over rb. */
static void test_split_policy(void **state)
{
    run_scenario(8, "split", 15000);
    assert_int_equal(w.r[2].frames_fwd, 0);
    assert_true(w.r[1].frames_fwd - fwd_base[1] >= NMSG);
    assert_int_equal(w.r[0].reroutes, 0);
}

/* The host's answer and its close: the egress sends the close on both legs,
 * and the one on the idle standby leg must not end the circuit at the
 * ingress before the answer on the active leg has arrived. */
static void test_failover_close_follows_data(void **state)
{
    run_scenario(4, "failover", 15000);
    assert_int_equal(w.dialler.closes, 1);
    assert_int_equal(w.dialler.close_err, 0);
    assert_int_equal(w.r[0].reroutes, 0);
}

/* An orderly close of a transit's link (EOF) moves the circuit like any
 * dead link: LINK_LEG_DOWN from the transit, not EDGE_CLOSE. */
static void test_failover_link_eof(void **state)
{
    run_scenario(5, "failover", 15000);
    assert_int_equal(w.r[0].reroutes, 1);
    assert_int_equal(w.dialler.closes, 0);
    assert_true(es[0].retransmits >= 1);
    assert_true(moved_ms - kill_ms < 500);
}

/* A silent link is declared down at its deadline (last frame + 750 ms), not
 * at the next tick after it. */
static void test_blackhole_on_time(void **state)
{
    run_scenario(6, "failover", 15000);
    assert_int_equal(w.r[0].reroutes, 1);
    assert_true(down_ms >= silence_due);
    print_message("blackhole: link down %llu ms after its deadline\n",
                  (unsigned long long)(down_ms - silence_due));
    assert_true(down_ms - silence_due < 70); /* the poll runs every 10 ms */
}

/* A leg over its high watermark is skipped, not waited for. */
static void test_redundant_full_leg(void **state)
{
    run_scenario(7, "redundant", 15000);
    assert_int_equal(w.r[0].reroutes, 0);
}

static void test_split_full_leg(void **state)
{
    run_scenario(7, "split", 15000);
    assert_int_equal(w.r[0].reroutes, 0);
}

/* ---- metrics over real HTTP ---- */

static struct {
    uv_tcp_t tcp;
    uv_connect_t cr;
    uv_write_t wr;
    char got[8192];
    size_t len;
    const char *req;
    int eof;
} hc;

static void hc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init(hc.got + hc.len, (unsigned)(sizeof(hc.got) - 1 - hc.len));
}

static void hc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        hc.len += (size_t)n;
        hc.got[hc.len] = '\0';
        return;
    }
    if (n < 0) {
        hc.eof = 1;
        uv_close((uv_handle_t *)&hc.tcp, NULL);
        world_stop();
    }
}

static void hc_connected(uv_connect_t *cr, int status)
{
    uv_buf_t b = uv_buf_init((char *)hc.req, (unsigned)strlen(hc.req));

    assert_int_equal(status, 0);
    assert_int_equal(uv_write(&hc.wr, (uv_stream_t *)&hc.tcp, &b, 1, NULL), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&hc.tcp, hc_alloc, hc_read), 0);
}

static void http_get(const char *req)
{
    struct sockaddr_storage ss;

    memset(&hc, 0, sizeof(hc));
    hc.req = req;
    world_init(1, 1);
    w.r[0].frames_fwd = 42;
    w.r[0].reroutes = 3;
    assert_int_equal(rt_metrics_listen(&w.r[0], "127.0.0.1:0"), 0);
    assert_non_null(rt_metrics_addr(&w.r[0]));
    assert_int_equal(pr_addr_resolve(rt_metrics_addr(&w.r[0]), &ss), 0);
    uv_tcp_init(&w.loop, &hc.tcp);
    assert_int_equal(uv_tcp_connect(&hc.cr, &hc.tcp, (struct sockaddr *)&ss, hc_connected), 0);
    world_run(5000);
    assert_true(hc.eof); /* one request per connection */
}

static void test_metrics_http(void **state)
{
    http_get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(hc.got, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(hc.got, "\nweft_router_links_up 0\n"));
    assert_non_null(strstr(hc.got, "\nweft_router_frames_forwarded_total 42\n"));
    assert_non_null(strstr(hc.got, "\nweft_router_reroutes_total 3\n"));
    assert_non_null(strstr(hc.got, "# TYPE weft_router_circuits gauge"));
    http_get("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(hc.got, "HTTP/1.1 404"));
    http_get("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(strstr(hc.got, "HTTP/1.1 405"));
    http_get("NOT HTTP AT ALL\r\n\r\n");
    assert_non_null(strstr(hc.got, "HTTP/1.1 400"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_link_killed),
        cmocka_unit_test(test_failover_blackhole),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_redundant),
        cmocka_unit_test(test_split_policy),
        cmocka_unit_test(test_failover_close_follows_data),
        cmocka_unit_test(test_failover_link_eof),
        cmocka_unit_test(test_blackhole_on_time),
        cmocka_unit_test(test_redundant_full_leg),
        cmocka_unit_test(test_split_full_leg),
        cmocka_unit_test(test_metrics_http),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
