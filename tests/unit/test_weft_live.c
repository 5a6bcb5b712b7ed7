/* libweft's router liveness settings and deadlines (edge/lib/liveness.c):
 * defaults, bounds and their messages, the busy deadlines across round
 * trips from loopback to a slow cellular link, and what counts as traffic.
 * The deadlines at work, on a real loop, are in test_weft_conn.c (a silent
 * router: relay_resume_after_silence and the tests after it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "edge/lib/weft_int.h"

static void defaults(void **state)
{
    weft_options opt = {0};
    weft_live lv;
    char err[200] = "x";

    assert_int_equal(weft__live_settings(NULL, &lv, err, sizeof(err)), 0);
    assert_int_equal(lv.keepalive_ms, 5000);
    assert_int_equal(lv.idle_dead_ms, 45000);
    assert_int_equal(lv.dead_after_ms, 1500);
    assert_int_equal(lv.dead_max_ms, 10000);
    assert_int_equal(weft_options_check(&opt, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(weft_options_check(NULL, NULL, 0), 0);
}

/* A longer keepalive takes a longer idle deadline along (three pings); a
 * short idle deadline caps the busy one. */
static void derived_defaults(void **state)
{
    weft_options opt = {.keepalive_ms = 60000};
    weft_live lv;

    assert_int_equal(weft__live_settings(&opt, &lv, NULL, 0), 0);
    assert_int_equal(lv.idle_dead_ms, 180000);
    opt = (weft_options){.keepalive_ms = 1000, .idle_dead_ms = 3000};
    assert_int_equal(weft__live_settings(&opt, &lv, NULL, 0), 0);
    assert_int_equal(lv.dead_after_ms, 1500);
    assert_int_equal(lv.dead_max_ms, 3000);
    opt = (weft_options){.dead_after_ms = 20000};
    assert_int_equal(weft__live_settings(&opt, &lv, NULL, 0), 0);
    assert_int_equal(lv.dead_max_ms, 20000);
}

static void refused(const weft_options *opt, const char *want)
{
    weft_live lv = {1, 2, 3, 4};
    char err[200];

    assert_int_equal(weft__live_settings(opt, &lv, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, want));
    assert_int_equal(lv.keepalive_ms, 1); /* untouched */
    assert_int_equal(weft_options_check(opt, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, want));
    assert_int_equal(weft_options_check(opt, err, 1), WEFT_EINVAL); /* truncated, terminated */
    assert_string_equal(err, "");
}

static void bounds(void **state)
{
    refused(&(weft_options){.keepalive_ms = 999}, "keepalive_ms must be 1000 to 600000 (got 999)");
    refused(&(weft_options){.keepalive_ms = 600001}, "keepalive_ms must be 1000 to 600000");
    refused(&(weft_options){.keepalive_ms = 20000, .idle_dead_ms = 30000},
            "idle_dead_ms must be two keepalives (40000) to 3600000 (got 30000)");
    refused(&(weft_options){.idle_dead_ms = 3600001}, "idle_dead_ms must be");
    refused(&(weft_options){.dead_after_ms = 999}, "dead_after_ms must be 1000 to 60000 (got 999)");
    refused(&(weft_options){.dead_after_ms = 60001}, "dead_after_ms must be 1000 to 60000");
    refused(&(weft_options){.keepalive_ms = 1000, .idle_dead_ms = 2000, .dead_after_ms = 3000},
            "dead_after_ms (3000) must not exceed idle_dead_ms (2000)");
    refused(&(weft_options){.dead_after_ms = 2000, .dead_max_ms = 1999},
            "dead_max_ms must be dead_after_ms (2000) to idle_dead_ms (45000) (got 1999)");
    refused(&(weft_options){.dead_max_ms = 45001}, "dead_max_ms must be");
}

static void deadlines_at(uint64_t srtt_us, unsigned want_probe, unsigned want_dead)
{
    weft_live lv;
    unsigned probe = 0, dead = 0;

    assert_int_equal(weft__live_settings(NULL, &lv, NULL, 0), 0);
    weft__live_deadlines(&lv, srtt_us, &probe, &dead);
    assert_int_equal(probe, want_probe);
    assert_int_equal(dead, want_dead);
}

/* dead = 8 srtt within [1.5 s, 10 s]; probe = 4 srtt + 100 ms within
 * [1 s, 2/3 dead]: at least a third of the dead deadline is left for the
 * probe's answer, however slow the link. */
static void deadlines(void **state)
{
    deadlines_at(0, 1000, 1500);           /* not measured yet */
    deadlines_at(120, 1000, 1500);         /* loopback */
    deadlines_at(50000, 1000, 1500);       /* 50 ms */
    deadlines_at(200000, 1000, 1600);      /* 200 ms */
    deadlines_at(500000, 2100, 4000);      /* a loaded cellular link */
    deadlines_at(1000000, 4100, 8000);     /* 1 s */
    deadlines_at(2000000, 6666, 10000);    /* 2 s: capped */
    deadlines_at(UINT64_MAX, 6666, 10000); /* no overflow */
    for (uint64_t us = 0; us < 5000000; us += 7919) {
        weft_live lv;
        unsigned p, d;

        assert_int_equal(weft__live_settings(NULL, &lv, NULL, 0), 0);
        weft__live_deadlines(&lv, us, &p, &d);
        assert_true(d >= 1500 && d <= 10000 && p >= 1000 && 3 * p <= 2 * d);
        assert_true(d - p >= (us / 1000) * 5 / 2 || d == 10000);
    }
}

static void deadlines_settings(void **state)
{
    weft_options opt = {.dead_after_ms = 3000, .dead_max_ms = 4000};
    weft_live lv;
    unsigned p, d;

    assert_int_equal(weft__live_settings(&opt, &lv, NULL, 0), 0);
    weft__live_deadlines(&lv, 100, &p, &d);
    assert_int_equal(p, 2000);
    assert_int_equal(d, 3000);
    weft__live_deadlines(&lv, 1000000, &p, &d);
    assert_int_equal(p, 2666);
    assert_int_equal(d, 4000);
}

/* What counts as traffic: bytes not yet acknowledged, requests awaiting an
 * answer on this session, payload received lately; nothing else. */
static void traffic(void **state)
{
    weft_ctx ctx;
    weft_conn c;
    weft_listener l;
    weft_rsess *s = &ctx.sess[1];

    memset(&ctx, 0, sizeof(ctx));
    memset(&c, 0, sizeof(c));
    memset(&l, 0, sizeof(l));
    assert_int_equal(weft__live_settings(NULL, &ctx.live, NULL, 0), 0);
    s->ctx = &ctx;
    s->slot = 1;
    assert_null(weft__live_busy(s, 100000));
    ctx.conns = &c;
    c.sess = s;
    c.state = CS_OPEN;
    assert_null(weft__live_busy(s, 100000)); /* an open circuit, all acknowledged */
    c.rtxq.n = 3;
    assert_string_equal(weft__live_busy(s, 100000), "unacked");
    c.sess = &ctx.sess[0];
    assert_null(weft__live_busy(s, 100000)); /* another session's */
    c.sess = s;
    c.rtxq.n = 0;
    c.resume_req = 7;
    assert_string_equal(weft__live_busy(s, 100000), "request");
    c.resume_req = 0;
    c.state = CS_DIALING;
    assert_string_equal(weft__live_busy(s, 100000), "request");
    c.state = CS_OPEN;
    ctx.listeners = &l;
    l.req_id[0] = 5;
    assert_null(weft__live_busy(s, 100000)); /* a bind on the other session */
    l.req_id[1] = 6;
    assert_string_equal(weft__live_busy(s, 100000), "request");
    l.req_id[1] = 0;
    /* received lately: until 500 ms past the dead deadline (2 s) */
    s->payload_at = 100000;
    assert_string_equal(weft__live_busy(s, 100000), "receiving");
    assert_string_equal(weft__live_busy(s, 101999), "receiving");
    assert_null(weft__live_busy(s, 102000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(derived_defaults),
        cmocka_unit_test(bounds),
        cmocka_unit_test(deadlines),
        cmocka_unit_test(deadlines_settings),
        cmocka_unit_test(traffic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
