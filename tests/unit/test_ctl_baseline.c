/* Anomaly baselines kept by the controller (controller/baseline.c): merging
 * the routers' increments, every malformed batch, storing a batch once on a
 * real SQLite store (a batch sent again is not counted twice, across a
 * reopen too), and the "base" claim of service tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/baseline.h"
#include "controller/store.h"
#include "weft/errors.h"

#define NEAR(a, b) assert_true((a) - (b) < 1e-9 && (b) - (a) < 1e-9)

static ctl_baseline_inc inc_of(int64_t w, double d, double s)
{
    ctl_baseline_inc inc;

    memset(&inc, 0, sizeof(inc));
    snprintf(inc.id, sizeof(inc.id), "i1");
    inc.windows = w;
    inc.dials = d;
    inc.svcs = s;
    return inc;
}

/* The router's own EWMA, one window at a time (router/enforce.c). */
static double ewma_steps(double avg, int had, double v, int n)
{
    for (int i = 0; i < n; i++, had++)
        avg += (had == 0 ? 1.0 : CTL_BASELINE_ALPHA) * (v - avg);
    return avg;
}

static void test_merge_windows(void **state)
{
    ctl_baseline b;
    ctl_baseline_inc inc = inc_of(2, 6, 2);

    (void)state;
    memset(&b, 0, sizeof(b));
    ctl_baseline_merge(&b, &inc); /* the first windows set the baseline */
    assert_int_equal(b.windows, 2);
    NEAR(b.dials, 3.0);
    NEAR(b.svcs, 1.0);
    inc = inc_of(1, 13, 1);
    ctl_baseline_merge(&b, &inc);
    NEAR(b.dials, 3.0 + 0.2 * (13.0 - 3.0));
    /* Three alike windows in one report are three steps of the router's EWMA. */
    inc = inc_of(3, 3 * 9.0, 0);
    ctl_baseline_merge(&b, &inc);
    NEAR(b.dials, ewma_steps(5.0, 3, 9.0, 3));
    assert_int_equal(b.windows, 6);
    /* Quiet windows decay; on an empty baseline they do nothing. */
    memset(&inc, 0, sizeof(inc));
    inc.quiet = 2;
    ctl_baseline_merge(&b, &inc);
    NEAR(b.dials, ewma_steps(5.0, 3, 9.0, 3) * 0.8 * 0.8);
    memset(&b, 0, sizeof(b));
    ctl_baseline_merge(&b, &inc);
    assert_int_equal(b.windows, 0);
    NEAR(b.dials, 0.0);
}

static void test_merge_rest(void **state)
{
    ctl_baseline b;
    ctl_baseline_inc inc;

    (void)state;
    memset(&b, 0, sizeof(b));
    memset(&inc, 0, sizeof(inc));
    inc.circuits = 4;
    inc.bytes = 4000;
    inc.hours = (1u << 8) | (1u << 9);
    inc.first_s = 2000;
    ctl_baseline_merge(&b, &inc);
    assert_int_equal(b.circuits, 4);
    NEAR(b.bytes, 1000.0);
    inc.circuits = 1;
    inc.bytes = 6000;
    inc.hours = (1u << 20) | 0xff000000u; /* bits past the 24 hours are dropped */
    inc.first_s = 1000;                   /* an earlier first dial wins */
    ctl_baseline_merge(&b, &inc);
    NEAR(b.bytes, 1000.0 + 0.2 * 5000.0);
    assert_int_equal(b.hours, (1u << 8) | (1u << 9) | (1u << 20));
    assert_int_equal(b.first_s, 1000);
    inc.first_s = 3000;
    ctl_baseline_merge(&b, &inc);
    assert_int_equal(b.first_s, 1000);
    /* Counts stop at the maximum instead of wrapping. */
    b.windows = CTL_BASELINE_COUNT_MAX - 1;
    inc = inc_of(5, 5, 5);
    ctl_baseline_merge(&b, &inc);
    assert_int_equal(b.windows, CTL_BASELINE_COUNT_MAX);
}

/* ---- parsing ---- */

static int parse(const char *text, int *head_ok)
{
    ctl_baseline_batch b;
    char err[256] = "";
    int rc = ctl_baseline_parse((const uint8_t *)text, strlen(text), &b, head_ok, err, sizeof(err));

    if (rc < 0) {
        assert_true(err[0] != '\0'); /* a sentence says what is wrong */
        assert_null(b.inc);
    }
    ctl_baseline_batch_free(&b);
    return rc;
}

static void test_parse_good(void **state)
{
    const char *text = "{\"boot\":\"ab12\",\"seq\":3,\"ids\":[{\"id\":\"i1\",\"w\":2,\"q\":1,"
                       "\"d\":6.5,\"s\":2,\"c\":3,\"b\":300,\"h\":256,\"t\":1767225600,"
                       "\"later\":true},{\"id\":\"i2\"}]}";
    ctl_baseline_batch b;
    char err[128];
    int head_ok;

    (void)state;
    assert_int_equal(
        ctl_baseline_parse((const uint8_t *)text, strlen(text), &b, &head_ok, err, sizeof(err)), 0);
    assert_string_equal(b.boot, "ab12");
    assert_int_equal(b.seq, 3);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.inc[0].id, "i1");
    assert_int_equal(b.inc[0].windows, 2);
    assert_int_equal(b.inc[0].quiet, 1);
    NEAR(b.inc[0].dials, 6.5);
    assert_int_equal(b.inc[0].circuits, 3);
    assert_int_equal(b.inc[0].hours, 256);
    assert_int_equal(b.inc[0].first_s, 1767225600);
    assert_int_equal(b.inc[1].windows, 0); /* absent keys are 0 */
    ctl_baseline_batch_free(&b);
    assert_int_equal(parse("{\"boot\":\"b\",\"seq\":1,\"ids\":[]}", &head_ok), 0);
}

static void test_parse_bad(void **state)
{
    static const char *const bad_head[] = {
        "",
        "not json",
        "[1,2]",
        "\"x\"",
        "{}",
        "{\"seq\":1,\"ids\":[]}",                        /* no boot */
        "{\"boot\":\"\",\"seq\":1,\"ids\":[]}",          /* empty boot */
        "{\"boot\":7,\"seq\":1,\"ids\":[]}",             /* boot not a string */
        "{\"boot\":\"a-b\",\"seq\":1,\"ids\":[]}",       /* boot not letters and digits */
        "{\"boot\":\"a\\u0000b\",\"seq\":1,\"ids\":[]}", /* a NUL inside */
        "{\"boot\":\"b\",\"ids\":[]}",                   /* no seq */
        "{\"boot\":\"b\",\"seq\":0,\"ids\":[]}",         /* seq not positive */
        "{\"boot\":\"b\",\"seq\":-4,\"ids\":[]}",
        "{\"boot\":\"b\",\"seq\":\"1\",\"ids\":[]}",
        "{\"boot\":\"b\",\"seq\":1.5,\"ids\":[]}",
        "{\"boot\":\"b\",\"boot\":\"c\",\"seq\":1,\"ids\":[]}", /* duplicate keys */
    };
    static const char *const bad_ids[] = {
        "",                         /* no ids */
        ",\"ids\":{}",              /* not an array */
        ",\"ids\":[1]",             /* entry not an object */
        ",\"ids\":[{}]",            /* no id */
        ",\"ids\":[{\"id\":\"\"}]", /* empty id */
        ",\"ids\":[{\"id\":5}]",
        ",\"ids\":[{\"id\":\"i\",\"w\":-1}]", /* negative count */
        ",\"ids\":[{\"id\":\"i\",\"w\":\"2\"}]",
        ",\"ids\":[{\"id\":\"i\",\"w\":1.5}]",
        ",\"ids\":[{\"id\":\"i\",\"w\":1000000001}]",
        ",\"ids\":[{\"id\":\"i\",\"q\":-2}]",
        ",\"ids\":[{\"id\":\"i\",\"c\":true}]",
        ",\"ids\":[{\"id\":\"i\",\"h\":16777216}]", /* past 24 hours */
        ",\"ids\":[{\"id\":\"i\",\"h\":-1}]",
        ",\"ids\":[{\"id\":\"i\",\"t\":-5}]",
        ",\"ids\":[{\"id\":\"i\",\"t\":1099511627777}]",
        ",\"ids\":[{\"id\":\"i\",\"d\":-0.5}]",
        ",\"ids\":[{\"id\":\"i\",\"d\":\"6\"}]",
        ",\"ids\":[{\"id\":\"i\",\"s\":null}]",
        ",\"ids\":[{\"id\":\"i\",\"b\":1e16}]",
        ",\"ids\":[{\"id\":\"i\"},{\"id\":\"j\",\"w\":-1}]", /* a bad second entry */
    };
    char text[512], id[80];
    int head_ok;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_head) / sizeof(bad_head[0]); i++) {
        head_ok = 1;
        if (parse(bad_head[i], &head_ok) >= 0)
            fail_msg("accepted %s", bad_head[i]);
        assert_int_equal(head_ok, 0);
    }
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        snprintf(text, sizeof(text), "{\"boot\":\"b\",\"seq\":1%s}", bad_ids[i]);
        if (parse(text, &head_ok) >= 0)
            fail_msg("accepted %s", text);
        assert_int_equal(head_ok, 1); /* acknowledged and dropped */
    }
    /* A boot of 65 characters, an id of 65. */
    memset(id, 'a', 65);
    id[65] = '\0';
    snprintf(text, sizeof(text), "{\"boot\":\"%s\",\"seq\":1,\"ids\":[]}", id);
    assert_true(parse(text, &head_ok) < 0);
    snprintf(text, sizeof(text), "{\"boot\":\"b\",\"seq\":1,\"ids\":[{\"id\":\"%s\"}]}", id);
    assert_true(parse(text, &head_ok) < 0);
    id[64] = '\0';
    snprintf(text, sizeof(text), "{\"boot\":\"%s\",\"seq\":1,\"ids\":[{\"id\":\"%s\"}]}", id, id);
    assert_int_equal(parse(text, &head_ok), 0);
}

static void test_parse_too_many(void **state)
{
    json_t *ids = json_array(), *root;
    char *text;
    int head_ok;

    (void)state;
    for (int i = 0; i <= CTL_BASELINE_IDS_MAX; i++)
        json_array_append_new(ids, json_pack("{s:s}", "id", "i"));
    root = json_pack("{s:s, s:i, s:o}", "boot", "b", "seq", 1, "ids", ids);
    text = json_dumps(root, JSON_COMPACT);
    assert_true(parse(text, &head_ok) < 0);
    free(text);
    json_array_remove(json_object_get(root, "ids"), 0);
    text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(parse(text, &head_ok), 0);
    free(text);
    json_decref(root);
}

/* ---- storing, on a real store ---- */

typedef struct {
    char dir[64], path[128];
    ctl c;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    json_t *o;

    assert_non_null(f);
    strcpy(f->dir, "/tmp/weft-baseline-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/weft.db", f->dir);
    assert_int_equal(ctl_store_open(f->path, &f->c.store), 0);
    o = json_pack("{s:s, s:s, s:s}", "id", "i1", "name", "dev1", "tz", "Asia/Kolkata");
    assert_int_equal(ctl_store_create(f->c.store, "identities", o), 0);
    json_decref(o);
    o = json_pack("{s:s, s:s}", "id", "i2", "name", "dev2");
    assert_int_equal(ctl_store_create(f->c.store, "identities", o), 0);
    json_decref(o);
    o = json_pack("{s:s, s:s, s:b}", "id", "r1", "name", "router1", "enrolled", 1);
    assert_int_equal(ctl_store_create(f->c.store, "routers", o), 0);
    json_decref(o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];

    ctl_store_close(f->c.store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int ingest(fx *f, const char *text, char **ack)
{
    return ctl_baseline_ingest(&f->c, "r1", (const uint8_t *)text, strlen(text), ack);
}

static ctl_baseline stored(fx *f, const char *id)
{
    ctl_baseline b;
    json_t *o = NULL;

    memset(&b, 0, sizeof(b));
    if (ctl_store_baseline_get(f->c.store, id, &o) == 0)
        ctl_baseline_from_json(o, &b);
    json_decref(o);
    return b;
}

static void test_ingest_once(void **state)
{
    fx *f = *state;
    const char *b1 =
        "{\"boot\":\"boot1\",\"seq\":1,\"ids\":[{\"id\":\"i1\",\"w\":3,\"d\":6,\"s\":3,"
        "\"h\":768,\"t\":1000},{\"id\":\"ghost\",\"w\":1}]}";
    char *ack = NULL;
    json_t *a;

    assert_int_equal(ingest(f, b1, &ack), 0);
    a = json_loads(ack, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(a, "boot")), "boot1");
    assert_int_equal(json_integer_value(json_object_get(a, "seq")), 1);
    json_decref(a);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 3);
    NEAR(stored(f, "i1").dials, 2.0);
    assert_int_equal(stored(f, "i1").hours, 768);
    /* An identity that does not exist (deleted since) is skipped. */
    json_t *o = NULL;
    assert_int_equal(ctl_store_baseline_get(f->c.store, "ghost", &o), WEFT_ENOTFOUND);
    /* The same batch again (its acknowledgement was lost): acknowledged, not counted. */
    assert_int_equal(ingest(f, b1, &ack), 0);
    assert_non_null(ack);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 3);
    /* Across a restart of the controller too. */
    ctl_store_close(f->c.store);
    assert_int_equal(ctl_store_open(f->path, &f->c.store), 0);
    assert_int_equal(ingest(f, b1, &ack), 0);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 3);
    /* The next seq counts; a router that restarted (another boot) starts at 1 again. */
    assert_int_equal(ingest(f,
                            "{\"boot\":\"boot1\",\"seq\":2,\"ids\":[{\"id\":\"i1\",\"w\":1,"
                            "\"d\":2}]}",
                            &ack),
                     0);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 4);
    assert_int_equal(ingest(f,
                            "{\"boot\":\"boot2\",\"seq\":1,\"ids\":[{\"id\":\"i1\",\"w\":1,"
                            "\"d\":2},{\"id\":\"i2\",\"c\":2,\"b\":100}]}",
                            &ack),
                     0);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 5);
    assert_int_equal(stored(f, "i2").circuits, 2);
    NEAR(stored(f, "i2").bytes, 50.0);
}

static void test_ingest_bad(void **state)
{
    fx *f = *state;
    char *ack = NULL;

    /* A bad entry: nothing stored, but acknowledged so that the router drops it. */
    assert_int_equal(ingest(f,
                            "{\"boot\":\"b\",\"seq\":1,\"ids\":[{\"id\":\"i1\",\"w\":1},"
                            "{\"id\":\"i2\",\"w\":-1}]}",
                            &ack),
                     WEFT_EPROTO);
    assert_non_null(ack);
    free(ack);
    assert_int_equal(stored(f, "i1").windows, 0);
    /* No boot or seq: nothing to acknowledge. */
    assert_true(ingest(f, "{\"seq\":1,\"ids\":[]}", &ack) < 0);
    assert_null(ack);
}

/* ---- the "base" claim ---- */

static void test_claim(void **state)
{
    fx *f = *state;
    json_t *ident = json_pack("{s:s}", "id", "i2"), *claim;
    char *ack = NULL;

    assert_null(ctl_baseline_claim(&f->c, ident, 1767225600)); /* nothing learnt, UTC */
    json_object_set_new(ident, "tz", json_string("UTC"));
    assert_null(ctl_baseline_claim(&f->c, ident, 1767225600));
    json_object_set_new(ident, "tz", json_string("Asia/Kolkata"));
    claim = ctl_baseline_claim(&f->c, ident, 1767225600);
    assert_int_equal(json_integer_value(json_object_get(claim, "z")), 5 * 3600 + 1800);
    assert_int_equal(json_object_size(claim), 1);
    json_decref(claim);
    assert_int_equal(ingest(f,
                            "{\"boot\":\"b\",\"seq\":1,\"ids\":[{\"id\":\"i2\",\"w\":4,\"d\":8,"
                            "\"s\":4,\"h\":1,\"t\":99}]}",
                            &ack),
                     0);
    free(ack);
    claim = ctl_baseline_claim(&f->c, ident, 1767225600);
    assert_int_equal(json_integer_value(json_object_get(claim, "w")), 4);
    NEAR(json_number_value(json_object_get(claim, "d")), 2.0);
    NEAR(json_number_value(json_object_get(claim, "s")), 1.0);
    assert_int_equal(json_integer_value(json_object_get(claim, "h")), 1);
    assert_int_equal(json_integer_value(json_object_get(claim, "t")), 99);
    assert_null(json_object_get(claim, "c")); /* no circuits learnt: no key */
    json_decref(claim);
    json_decref(ident);
}

/* An admin forgets a baseline (weft anomaly forget): gone from the store and
 * from the claim, learnt afresh from the next batch, the other one kept. */
static void test_forget(void **state)
{
    fx *f = *state;
    char *ack = NULL;
    json_t *ident = json_pack("{s:s, s:s}", "id", "i2", "name", "dev2");

    assert_int_equal(ingest(f,
                            "{\"boot\":\"b\",\"seq\":1,\"ids\":[{\"id\":\"i1\",\"w\":3,"
                            "\"d\":6},{\"id\":\"i2\",\"w\":5,\"d\":50}]}",
                            &ack),
                     0);
    free(ack);
    assert_int_equal(ctl_store_baseline_delete(f->c.store, "i2"), 0);
    assert_int_equal(stored(f, "i2").windows, 0);
    assert_null(ctl_baseline_claim(&f->c, ident, 1767225600)); /* no "base" any more */
    assert_int_equal(ctl_store_baseline_delete(f->c.store, "i2"), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_baseline_delete(f->c.store, "nobody"), WEFT_ENOTFOUND);
    assert_int_equal(stored(f, "i1").windows, 3);
    assert_int_equal(ingest(f,
                            "{\"boot\":\"b\",\"seq\":2,\"ids\":[{\"id\":\"i2\",\"w\":1,"
                            "\"d\":1}]}",
                            &ack),
                     0);
    free(ack);
    assert_int_equal(stored(f, "i2").windows, 1); /* afresh: 1, not 6 */
    NEAR(stored(f, "i2").dials, 1.0);
    json_decref(ident);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_windows),
        cmocka_unit_test(test_merge_rest),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_too_many),
        cmocka_unit_test_setup_teardown(test_ingest_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
