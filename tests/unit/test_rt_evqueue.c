/* The router's queue of security events and its file (router/evqueue.c):
 * the line parser's edge cases, events kept until acknowledged and sent
 * again after a reconnect, a full queue keeping its oldest, the file written
 * ahead and read back by the next run in order, truncated once everything
 * is acknowledged, compacted, repaired after a crash in the middle of a
 * write, and bounded in bytes. Real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "proto/log.h"
#include "router/evqueue.h"
#include "weft/errors.h"

typedef struct {
    uv_loop_t loop;
    char dir[64], path[128];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pr_log_init("router", PR_LOG_ERROR + 1);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    strcpy(f->dir, "/tmp/weft-test-evq.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, RT_EVQ_FILE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];

    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no live handles */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- the parser ---- */

typedef struct {
    int n, stop_at;
    char eid[8][RT_EVQ_EID_CAP];
} seen;

static int on_line(void *arg, const char *text, size_t len, const char *eid)
{
    seen *s = arg;

    assert_true(len > 0 && text[0] == '{' && text[len - 1] == '}');
    if (s->stop_at && s->n == s->stop_at)
        return WEFT_ECANCELED;
    if (s->n < 8)
        snprintf(s->eid[s->n], RT_EVQ_EID_CAP, "%s", eid);
    s->n++;
    return 0;
}

static size_t parse(const char *buf, seen *s, size_t *bad, int *cut)
{
    memset(s, 0, sizeof(*s));
    return rt_evq_parse(buf, strlen(buf), on_line, s, bad, cut);
}

#define EV(eid) "{\"kind\":\"rate\",\"identity\":\"d\",\"eid\":\"" eid "\"}"

static void test_parse_edges(void **state)
{
    static const struct {
        const char *in;
        int events, cut;
        size_t bad, whole; /* whole: SIZE_MAX means strlen(in) */
    } cases[] = {
        {"", 0, 0, 0, 0},
        {"\n\n\r\n", 0, 0, 0, SIZE_MAX}, /* blank lines: nothing, no harm */
        {EV("a-1") "\n", 1, 0, 0, SIZE_MAX},
        {EV("a-1") "\r\n" EV("a-2") "\n", 2, 0, 0, SIZE_MAX}, /* CRLF */
        {EV("a-1") "\ngarbage\n" EV("a-2") "\n", 2, 0, 1, SIZE_MAX},
        {EV("a-1"), 1, 0, 0, SIZE_MAX}, /* whole, newline lost */
        {EV("a-1") "\n{\"kind\":\"rate\",\"eid\":\"a-", 1, 1, 0, sizeof(EV("a-1"))}, /* cut */
        {EV("a-1") "\n{", 1, 1, 0, sizeof(EV("a-1"))},
        {"[1]\n\"s\"\nnull\n{}\n", 0, 0, 4, SIZE_MAX}, /* not objects, no kind */
        {"{\"kind\":\"rate\"}\n", 0, 0, 1, SIZE_MAX},  /* no eid */
        {"{\"kind\":1,\"eid\":\"a-1\"}\n", 0, 0, 1, SIZE_MAX},
        {"{\"kind\":\"rate\",\"eid\":\"\"}\n", 0, 0, 1, SIZE_MAX},
        {"{\"kind\":\"rate\",\"eid\":\"a b\"}\n", 0, 0, 1, SIZE_MAX},
        {"{\"kind\":\"rate\",\"eid\":\"a\\\"\"}\n", 0, 0, 1, SIZE_MAX},
        {"{\"kind\":\"rate\",\"eid\":7}\n", 0, 0, 1, SIZE_MAX},
        {"{\"kind\":\"rate\",\"kind\":\"x\",\"eid\":\"a-1\"}\n", 0, 0, 1, SIZE_MAX}, /* dup key */
        {EV("a-1") " trailing\n", 0, 0, 1, SIZE_MAX},
    };
    size_t bad, whole;
    seen s;
    int cut;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        whole = parse(cases[i].in, &s, &bad, &cut);
        assert_int_equal(s.n, cases[i].events);
        assert_int_equal(bad, cases[i].bad);
        assert_int_equal(cut, cases[i].cut);
        assert_int_equal(whole, cases[i].whole == SIZE_MAX ? strlen(cases[i].in) : cases[i].whole);
    }
    parse(EV("a-1") "\n" EV("b.2:x_") "\n", &s, &bad, &cut);
    assert_string_equal(s.eid[0], "a-1");
    assert_string_equal(s.eid[1], "b.2:x_");
}

static void test_parse_limits(void **state)
{
    size_t pad = RT_EVQ_LINE_MAX, bad, whole, n;
    char *buf = malloc(pad + 256), eid[RT_EVQ_EID_CAP + 1];
    seen s = {0};
    int cut;

    (void)state;
    assert_non_null(buf);
    /* A line longer than any event is skipped, whatever it holds. */
    n = (size_t)snprintf(buf, pad + 256, "{\"kind\":\"rate\",\"eid\":\"a-1\",\"msg\":\"%0*d\"}\n",
                         (int)pad, 0);
    whole = rt_evq_parse(buf, n, on_line, &s, &bad, &cut);
    assert_int_equal(s.n, 0);
    assert_int_equal(bad, 1);
    assert_int_equal(whole, n);
    /* A NUL byte inside a line: not JSON text. */
    memcpy(buf, EV("a-1") "\n", sizeof(EV("a-1")) + 1);
    buf[5] = '\0';
    memset(&s, 0, sizeof(s));
    rt_evq_parse(buf, sizeof(EV("a-1")), on_line, &s, &bad, &cut);
    assert_int_equal(s.n, 0);
    assert_int_equal(bad, 1);
    /* Ids: 63 characters are fine, 64 are not. */
    memset(eid, 'x', RT_EVQ_EID_CAP);
    eid[RT_EVQ_EID_CAP - 1] = '\0';
    assert_true(rt_evq_eid_valid(eid));
    eid[RT_EVQ_EID_CAP - 1] = 'x';
    eid[RT_EVQ_EID_CAP] = '\0';
    assert_false(rt_evq_eid_valid(eid));
    assert_false(rt_evq_eid_valid(NULL));
    assert_false(rt_evq_eid_valid("a/b"));
    /* The callback stops the walk. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    n = (size_t)snprintf(buf, pad, "%s\n%s\n", EV("a-1"), EV("a-2"));
    rt_evq_parse(buf, n, on_line, &s, &bad, &cut);
    assert_int_equal(s.n, 1);
    free(buf);
}

/* ---- the queue ---- */

static json_t *event(int i)
{
    return json_pack("{s:s, s:s, s:i}", "kind", "rate", "identity", "dev1", "count", i);
}

static void add(rt_evq *q, int i, int want)
{
    json_t *ev = event(i);

    assert_int_equal(rt_evq_add(q, ev), want);
    json_decref(ev);
}

static json_t *next_sent(rt_evq *q)
{
    size_t len;
    const char *t = rt_evq_next(q, &len);
    json_t *j;

    assert_non_null(t);
    j = json_loadb(t, len, 0, NULL);
    assert_non_null(j);
    rt_evq_sent(q);
    return j;
}

static int ack(rt_evq *q, const char *eid)
{
    char body[RT_EVQ_EID_CAP + 256];

    snprintf(body, sizeof(body), "{\"eid\":\"%.200s\"}", eid);
    return rt_evq_ack(q, (const uint8_t *)body, strlen(body));
}

static void test_memory_queue(void **state)
{
    fx *f = *state;
    rt_evq *q;
    json_t *e[3];
    char eid[3][RT_EVQ_EID_CAP];
    size_t len;

    assert_int_equal(rt_evq_new(&f->loop, NULL, 3, &q), 0);
    for (int i = 0; i < 3; i++)
        add(q, i, 0);
    add(q, 3, WEFT_ENOBUFS); /* full: the oldest are kept */
    assert_int_equal(rt_evq_dropped(q), 1);
    for (int i = 0; i < 3; i++) {
        e[i] = next_sent(q);
        assert_int_equal(json_integer_value(json_object_get(e[i], "count")), i);
        assert_true(json_integer_value(json_object_get(e[i], "at")) > 0);
        snprintf(eid[i], sizeof(eid[i]), "%s", json_string_value(json_object_get(e[i], "eid")));
        json_decref(e[i]);
    }
    assert_null(rt_evq_next(q, &len));
    assert_string_not_equal(eid[0], eid[1]);
    /* Acknowledgements: bad ones change nothing; out of order, the head waits. */
    assert_int_equal(rt_evq_ack(q, (const uint8_t *)"{", 1), WEFT_EPROTO);
    assert_int_equal(rt_evq_ack(q, (const uint8_t *)"[]", 2), WEFT_EPROTO);
    assert_int_equal(ack(q, "x y"), WEFT_EPROTO);
    assert_int_equal(ack(q, "nobody-1"), WEFT_ENOTFOUND);
    assert_int_equal(ack(q, eid[1]), 0);
    assert_int_equal(rt_evq_len(q), 3);
    /* The channel closes: what was not acknowledged goes out again, in order. */
    rt_evq_rewind(q);
    assert_int_equal(rt_evq_unsent(q), 2);
    e[0] = next_sent(q);
    assert_string_equal(json_string_value(json_object_get(e[0], "eid")), eid[0]);
    json_decref(e[0]);
    e[2] = next_sent(q); /* eid[1] is stored: skipped */
    assert_string_equal(json_string_value(json_object_get(e[2], "eid")), eid[2]);
    json_decref(e[2]);
    assert_int_equal(ack(q, eid[0]), 0);
    assert_int_equal(rt_evq_len(q), 1);
    assert_int_equal(ack(q, eid[2]), 0);
    assert_int_equal(rt_evq_len(q), 0);
    add(q, 4, 0); /* room again */
    rt_evq_close(q);
}

static size_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (size_t)st.st_size : SIZE_MAX;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, RT_EVQ_FILE_MAX + 1);
    size_t n;

    assert_non_null(fp);
    assert_non_null(buf);
    n = fread(buf, 1, RT_EVQ_FILE_MAX, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    fclose(fp);
}

/* Written ahead, read back by the next run in order, truncated when acked. */
static void test_file_across_runs(void **state)
{
    fx *f = *state;
    char eid[3][RT_EVQ_EID_CAP], *text;
    rt_evq *q;
    json_t *j;

    assert_int_equal(rt_evq_new(&f->loop, f->dir, 100, &q), 0);
    for (int i = 0; i < 3; i++)
        add(q, i, 0);
    j = next_sent(q); /* sent and never acknowledged: the controller may have it */
    json_decref(j);
    rt_evq_close(q);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    text = slurp(f->path);
    assert_int_equal(strlen(text), file_size(f->path));
    assert_non_null(strstr(text, "\"count\":2"));
    free(text);

    assert_int_equal(rt_evq_new(&f->loop, f->dir, 100, &q), 0);
    assert_int_equal(rt_evq_len(q), 3);
    for (int i = 0; i < 3; i++) {
        j = next_sent(q);
        assert_int_equal(json_integer_value(json_object_get(j, "count")), i);
        snprintf(eid[i], sizeof(eid[i]), "%s", json_string_value(json_object_get(j, "eid")));
        json_decref(j);
    }
    add(q, 3, 0); /* this run's event: another id, after them */
    j = next_sent(q);
    assert_string_not_equal(json_string_value(json_object_get(j, "eid")), eid[0]);
    assert_int_equal(ack(q, json_string_value(json_object_get(j, "eid"))), 0);
    json_decref(j);
    for (int i = 0; i < 3; i++) {
        assert_true(file_size(f->path) > 0);
        assert_int_equal(ack(q, eid[i]), 0);
    }
    assert_int_equal(rt_evq_len(q), 0);
    assert_int_equal(file_size(f->path), 0); /* everything stored: nothing to replay */
    rt_evq_close(q);
}

/* A crash in the middle of a write, and lines that are not events: skipped,
 * the file written again with what was good, later lines whole after them. */
static void test_damaged_file(void **state)
{
    fx *f = *state;
    rt_evq *q;
    json_t *j;
    char *text;

    spit(f->path, EV("old-1") "\nnot json\n" EV("old-2") "\n{\"kind\":\"rate\",\"eid\":\"old-3");
    assert_int_equal(rt_evq_new(&f->loop, f->dir, 100, &q), 0);
    assert_int_equal(rt_evq_len(q), 2);
    text = slurp(f->path);
    assert_string_equal(text, EV("old-1") "\n" EV("old-2") "\n");
    free(text);
    add(q, 7, 0);
    rt_evq_close(q);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(rt_evq_new(&f->loop, f->dir, 100, &q), 0);
    assert_int_equal(rt_evq_len(q), 3);
    j = next_sent(q);
    assert_string_equal(json_string_value(json_object_get(j, "eid")), "old-1");
    json_decref(j);
    rt_evq_close(q);
    /* A last line whole but for its newline is kept, and the newline added. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    spit(f->path, EV("n-1"));
    assert_int_equal(rt_evq_new(&f->loop, f->dir, 100, &q), 0);
    assert_int_equal(rt_evq_len(q), 1);
    text = slurp(f->path);
    assert_string_equal(text, EV("n-1") "\n");
    free(text);
    rt_evq_close(q);
    /* More lines than the queue holds: the oldest are kept. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    spit(f->path, EV("m-1") "\n" EV("m-2") "\n" EV("m-3") "\n");
    assert_int_equal(rt_evq_new(&f->loop, f->dir, 2, &q), 0);
    assert_int_equal(rt_evq_len(q), 2);
    text = slurp(f->path);
    assert_string_equal(text, EV("m-1") "\n" EV("m-2") "\n");
    free(text);
    rt_evq_close(q);
}

static json_t *big_event(int i, size_t pad)
{
    char *msg = malloc(pad + 1);
    json_t *ev;

    assert_non_null(msg);
    memset(msg, 'm', pad);
    msg[pad] = '\0';
    ev = json_pack("{s:s, s:s, s:i, s:s}", "kind", "rate", "identity", "dev1", "count", i, "msg",
                   msg);
    free(msg);
    return ev;
}

/* Acknowledged lines that make up most of a large file are written away
 * (past 1 MiB and the queue's own lines), leaving only the queue's lines. */
static void test_compaction(void **state)
{
    fx *f = *state;
    char eid[200][RT_EVQ_EID_CAP];
    size_t line[200], live = 0, before, now, kept = 0;
    rt_evq *q;

    assert_int_equal(rt_evq_new(&f->loop, f->dir, 1000, &q), 0);
    for (int i = 0; i < 200; i++) {
        json_t *ev = big_event(i, 8000), *j;
        assert_int_equal(rt_evq_add(q, ev), 0);
        json_decref(ev);
        assert_non_null(rt_evq_next(q, &line[i]));
        line[i]++; /* its newline */
        j = next_sent(q);
        snprintf(eid[i], sizeof(eid[i]), "%s", json_string_value(json_object_get(j, "eid")));
        live += line[i];
        json_decref(j);
    }
    assert_int_equal(file_size(f->path), live);
    for (int i = 0; i < 150; i++) {
        before = file_size(f->path);
        assert_int_equal(ack(q, eid[i]), 0);
        live -= line[i];
        if ((now = file_size(f->path)) < before) {
            assert_int_equal(kept, 0); /* once */
            assert_int_equal(now, live);
            assert_true(before - now >= (1u << 20));
            kept = (size_t)(199 - i);
        }
    }
    assert_true(kept >= 50);
    rt_evq_close(q);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(rt_evq_new(&f->loop, f->dir, 1000, &q), 0);
    assert_int_equal(rt_evq_len(q), kept); /* acknowledged since: sent again, stored once */
    rt_evq_close(q);
}

/* The file's byte bound, and an event too large for a line. */
static void test_file_full(void **state)
{
    fx *f = *state;
    size_t n = 0;
    rt_evq *q;
    json_t *ev;
    int rc = 0;

    assert_int_equal(rt_evq_new(&f->loop, f->dir, 5000, &q), 0);
    ev = big_event(0, RT_EVQ_LINE_MAX);
    assert_int_equal(rt_evq_add(q, ev), WEFT_ENOBUFS);
    json_decref(ev);
    while (rc == 0 && n < 5000) {
        ev = big_event((int)n, 16000);
        if ((rc = rt_evq_add(q, ev)) == 0)
            n++;
        json_decref(ev);
    }
    assert_int_equal(rc, WEFT_ENOBUFS);
    assert_true(n > 1000 && n < 1050); /* 16 MiB of 16 KB lines */
    assert_true(file_size(f->path) <= RT_EVQ_FILE_MAX);
    assert_int_equal(rt_evq_dropped(q), 2);
    assert_int_equal(rt_evq_len(q), n);
    rt_evq_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_edges),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test_setup_teardown(test_memory_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_across_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_full, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
