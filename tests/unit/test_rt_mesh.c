/* Routers linked over real TLS on 127.0.0.1: a circuit set up across three
 * routers (ra - rb - rc, rb in transit) carries end-to-end encrypted payload
 * intact both ways and closes end to end; a link that goes silent for three
 * heartbeats is declared down and its circuits close at both edges; a dial
 * the host never answers fails after 10 s and the late answer is refused. */
#define _GNU_SOURCE /* memmem */
#include "test_rt_world.h"

static char term_id[RT_ID_CAP];
static uint64_t t_mark;

static void timeout_dialler(client *c, const pr_frame *f);

/* ---- three routers, transit through rb ---- */

static void put_term(int i, const char *router)
{
    char delta[512], err[256];

    snprintf(delta, sizeof(delta),
             "{\"version\": 2, \"base\": 1, \"ops\": [{\"op\": \"put\", \"kind\": \"terminator\","
             " \"obj\": {\"id\": \"%s\", \"service\": \"s1\", \"router\": \"%s\","
             " \"identity\": \"app1\"}}]}", term_id, router);
    assert_int_equal(rt_map_apply_delta(&w.r[i].map, delta, strlen(delta), err, sizeof(err)), 0);
}

static void maybe_done_exchange(void)
{
    if (w.host.got_final && w.dialler.got_final && w.host.sent_final && w.dialler.sent_final &&
        w.dialler.closes == 0 && !w.done && w.dialler.circuit) {
        c_send_close(&w.dialler);
        w.dialler.circuit = 0;
    }
}

static void hop_host(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_bind(c, "app1");
        break;
    case PR_EDGE_BIND_OK:
        assert_int_equal(pr_frame_str(f, PR_H_TERMINATOR, term_id, sizeof(term_id)), 0);
        put_term(0, "rc");
        break;
    case PR_EDGE_DIAL:
        /* every router on the path holds the circuit */
        for (int i = 0; i < 3; i++)
            assert_int_equal(w.r[i].circuits.n, 1);
        c_answer_dial(c, f);
        c_stream(c, "reply from the host", 1);
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        maybe_done_exchange();
        break;
    case PR_EDGE_CLOSE:
        assert_int_equal(c->close_err, 0);
        world_stop();
        break;
    default:
        break;
    }
}

static void hop_dialler(client *c, const pr_frame *f)
{
    uint32_t req;

    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_dial(c, "dev1", 7);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u32(f, PR_H_REQ_ID, &req), 0);
        assert_int_equal(req, 7);
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        assert_int_equal(c->circuit, w.host.circuit);
        c_peer_keys(c, f, PR_E2E_DIALLER, "spiffe://net/identity/app1");
        c_stream(c, "hello from the dialler", 1);
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        maybe_done_exchange();
        break;
    default:
        break;
    }
}

/* Once the term is in ra's map and both links are up, the dialler comes. */
static void hop_poll(void)
{
    if (w.dialler.conn || term_id[0] == '\0' || rt_link_to(&w.r[0], "rb") == NULL ||
        rt_link_to(&w.r[1], "rc") == NULL)
        return;
    assert_null(rt_link_to(&w.r[0], "rc")); /* ra does not know rc's link address */
    c_connect(&w.dialler, &w.r[0], &dcred, hop_dialler);
}

static void test_three_routers(void **state)
{
    const char *links = ", \"links\": [{\"a\": \"rc\", \"b\": \"rb\", \"rtt_us\": 300, \"up\": true},"
                        " {\"a\": \"ra\", \"b\": \"rc\", \"rtt_us\": 1, \"up\": false}]";

    term_id[0] = '\0';
    world_init(3, 1);
    world_map(0, 0x3, NULL, links); /* ra dials rb only */
    world_map(1, 0x7, NULL, NULL);  /* rb dials rc */
    world_map(2, 0x7, NULL, NULL);
    w.r[1].on_forward = on_tap;     /* transit */
    w.poll_cb = hop_poll;
    c_connect(&w.host, &w.r[2], &hcred, hop_host);
    world_run(15000);
    assert_int_equal(w.host.errors + w.dialler.errors, 0);
    assert_int_equal(w.host.got_len, strlen("hello from the dialler"));
    assert_memory_equal(w.host.got, "hello from the dialler", w.host.got_len);
    assert_int_equal(w.dialler.got_len, strlen("reply from the host"));
    assert_memory_equal(w.dialler.got, "reply from the host", w.dialler.got_len);
    assert_int_equal(w.host.closes, 1);
    /* the transit router forwarded every payload frame, byte for byte */
    assert_int_equal(w.ntap, w.host.nsent + w.dialler.nsent);
    for (int i = 0; i < w.ntap; i++) {
        assert_true(sent_by_someone(w.tap[i], w.tap_len[i]));
        assert_null(memmem(w.tap[i], w.tap_len[i], "hello", 5));
    }
}

/* ---- a link goes silent ---- */

static void dead_host(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_bind(c, "app1");
        break;
    case PR_EDGE_BIND_OK:
        assert_int_equal(pr_frame_str(f, PR_H_TERMINATOR, term_id, sizeof(term_id)), 0);
        put_term(0, "rb");
        break;
    case PR_EDGE_DIAL:
        c_answer_dial(c, f);
        c_stream(c, "reply", 0);
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        break;
    default:
        break;
    }
}

static void dead_dialler(client *c, const pr_frame *f)
{
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        c_dial(c, "dev1", 3);
        break;
    case PR_EDGE_DIAL_OK:
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
        c_peer_keys(c, f, PR_E2E_DIALLER, "spiffe://net/identity/app1");
        c_stream(c, "hello", 0);
        break;
    case PR_PAYLOAD_DATA:
        c_on_payload(c, f);
        break;
    default:
        break;
    }
}

static void dead_poll(void)
{
    rt_link *l;

    if (w.dialler.conn == NULL) {
        if (term_id[0] && rt_link_to(&w.r[0], "rb") && rt_link_to(&w.r[1], "ra"))
            c_connect(&w.dialler, &w.r[0], &dcred, dead_dialler);
        return;
    }
    if (t_mark == 0 && w.host.got_len == 5 && w.dialler.got_len == 5) {
        /* both ways work: now rb stops hearing ra (but ra still hears rb) */
        l = rt_link_to(&w.r[1], "ra");
        assert_non_null(l);
        assert_true(l->srtt_us > 0 && l->srtt_us < 1000000);
        pr_conn_read_stop(l->conn);
        t_mark = uv_now(&w.loop);
        return;
    }
    if (t_mark && w.host.closes && w.dialler.closes) {
        uint64_t dt = uv_now(&w.loop) - t_mark;
        assert_true(dt >= 2000 && dt < 5000);
        world_stop();
    }
}

static void test_link_dies(void **state)
{
    term_id[0] = '\0';
    t_mark = 0;
    world_init(2, 1);
    world_map(0, 0x3, NULL, NULL);
    world_map(1, 0x3, NULL, NULL);
    w.poll_cb = dead_poll;
    c_connect(&w.host, &w.r[1], &hcred, dead_host);
    world_run(15000);
    assert_int_equal(w.host.closes, 1);
    assert_int_equal(w.dialler.closes, 1);
    assert_int_equal(w.host.close_err, (uint32_t)-WEFT_ERESET);
    assert_int_equal(w.dialler.close_err, (uint32_t)-WEFT_ERESET);
}

/* ---- a service bound only at an unreachable router is refused ---- */

static void unreach_dialler(client *c, const pr_frame *f)
{
    if (f->type == PR_EDGE_HELLO_OK)
        c_dial(c, "dev1", 9);
    if (f->type == PR_EDGE_ERROR)
        world_stop();
}

static void test_unreachable(void **state)
{
    world_init(2, 1);
    world_map(0, 0x1, NULL, NULL); /* no link address for rb: no link */
    snprintf(term_id, sizeof(term_id), "t-elsewhere");
    put_term(0, "rb");
    c_connect(&w.dialler, &w.r[0], &dcred, unreach_dialler);
    world_run(5000);
    assert_int_equal(w.dialler.errors, 1);
    assert_int_equal(w.dialler.last_err, (uint32_t)-WEFT_ENOTFOUND);
}

/* ---- a host that never answers: the dial fails after 10 s ---- */

static char timeout_msg[256];

static void silent_host(client *c, const pr_frame *f)
{
    pr_enc e;

    if (f->type == PR_EDGE_HELLO_OK)
        c_bind(c, "app1");
    if (f->type == PR_EDGE_BIND_OK)
        c_connect(&w.dialler, &w.r[0], &dcred, timeout_dialler);
    if (f->type == PR_EDGE_DIAL) /* keep the keys, answer only after the timeout */
        assert_int_equal(pr_frame_u64(f, PR_H_CIRCUIT, &c->circuit), 0);
    if (f->type == PR_EDGE_CLOSE && c->closes == 1) {
        /* the router gave up on us; our late answer must be refused too */
        assert_int_equal(c->close_err, (uint32_t)-WEFT_ETIMEDOUT);
        assert_int_equal(w.r[0].circuits.n, 0);
        assert_int_equal(pr_e2e_kx_new(&c->kx), 0);
        pr_enc_init(&e, cbuf, sizeof(cbuf), PR_EDGE_DIAL_OK, 0);
        pr_enc_u64(&e, PR_H_CIRCUIT, c->circuit);
        c_kx_fields(c, &e, PR_E2E_HOST);
        csend(c, &e, NULL, 0);
    }
    if (f->type == PR_EDGE_CLOSE && c->closes == 2)
        world_stop();
}

static void timeout_dialler(client *c, const pr_frame *f)
{
    uint32_t req = 0;

    if (f->type == PR_EDGE_HELLO_OK) {
        c_dial(c, "dev1", 11);
        t_mark = uv_now(&w.loop);
    }
    if (f->type == PR_EDGE_DIAL_FAIL) {
        assert_int_equal(pr_frame_u32(f, PR_H_REQ_ID, &req), 0);
        assert_int_equal(req, 11);
        assert_int_equal(pr_frame_str(f, PR_H_ERR_MSG, timeout_msg, sizeof(timeout_msg)), 0);
        assert_true(uv_now(&w.loop) - t_mark >= RT_DIAL_TIMEOUT_MS);
        assert_true(uv_now(&w.loop) - t_mark < RT_DIAL_TIMEOUT_MS + 1000);
    }
}

static void test_dial_timeout(void **state)
{
    t_mark = 0;
    world_init(1, 0);
    world_map(0, 0, NULL, NULL);
    c_connect(&w.host, &w.r[0], &hcred, silent_host);
    world_run(14000);
    assert_int_equal(w.dialler.errors, 1);
    assert_int_equal(w.dialler.last_err, (uint32_t)-WEFT_ETIMEDOUT);
    assert_string_equal(timeout_msg, "service web: the hosting edge did not answer in 10 s");
    assert_int_equal(w.host.closes, 2);
    assert_int_equal(w.host.errors, 0); /* the late answer did not cost the host its session */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_routers),
        cmocka_unit_test(test_link_dies),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_dial_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
