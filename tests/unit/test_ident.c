/* Identity URIs: format/parse round trips, strict refusal of anything else,
 * and fresh ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proto/ident.h"
#include "weft/errors.h"

static void format_and_parse(void **state)
{
    static const struct {
        int kind;
        const char *td, *id, *uri;
    } cases[] = {
        {PR_IDENT_IDENTITY, "acme", "dev-0042", "spiffe://acme/identity/dev-0042"},
        {PR_IDENT_ROUTER, "acme.example", "r1", "spiffe://acme.example/router/r1"},
        {PR_IDENT_CONTROLLER, "weft", "ctl", "spiffe://weft/controller/ctl"},
    };
    char uri[PR_URI_MAX], td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    int kind;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(pr_ident_format(cases[i].kind, cases[i].td, cases[i].id, uri, sizeof(uri)),
                         0);
        assert_string_equal(uri, cases[i].uri);
        kind = 0;
        assert_int_equal(pr_ident_parse(uri, &kind, td, sizeof(td), id, sizeof(id)), 0);
        assert_int_equal(kind, cases[i].kind);
        assert_string_equal(td, cases[i].td);
        assert_string_equal(id, cases[i].id);
    }
    /* Outputs are optional: parse can be used to validate only. */
    assert_int_equal(pr_ident_parse("spiffe://a/router/b", NULL, NULL, 0, NULL, 0), 0);
}

static void longest_fits(void **state)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1], uri[PR_URI_MAX];
    char ptd[PR_TRUST_DOMAIN_MAX + 1], pid[PR_ID_MAX + 1];
    int kind;

    memset(td, 'a', PR_TRUST_DOMAIN_MAX);
    td[PR_TRUST_DOMAIN_MAX] = '\0';
    memset(id, '9', PR_ID_MAX);
    id[PR_ID_MAX] = '\0';
    assert_int_equal(pr_ident_format(PR_IDENT_CONTROLLER, td, id, uri, sizeof(uri)), 0);
    assert_int_equal(pr_ident_parse(uri, &kind, ptd, sizeof(ptd), pid, sizeof(pid)), 0);
    assert_string_equal(pid, id);
    /* Output buffers one byte short are refused, not cut. */
    assert_int_equal(pr_ident_parse(uri, &kind, ptd, PR_TRUST_DOMAIN_MAX, pid, sizeof(pid)),
                     WEFT_ETOOBIG);
    assert_int_equal(pr_ident_parse(uri, &kind, ptd, sizeof(ptd), pid, PR_ID_MAX), WEFT_ETOOBIG);
    assert_int_equal(pr_ident_format(PR_IDENT_CONTROLLER, td, id, uri, 20), WEFT_ETOOBIG);
}

static void format_refuses_bad_parts(void **state)
{
    char uri[PR_URI_MAX], longid[PR_ID_MAX + 2];

    memset(longid, 'a', PR_ID_MAX + 1);
    longid[PR_ID_MAX + 1] = '\0';
    assert_int_equal(pr_ident_format(0, "acme", "x", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(4, "acme", "x", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "acme", "X", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "acme", "", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "acme", "a/b", uri, sizeof(uri)),
                     WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "acme", longid, uri, sizeof(uri)),
                     WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "ac..me", "x", uri, sizeof(uri)),
                     WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, longid, "x", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, NULL, "x", uri, sizeof(uri)), WEFT_EINVAL);
    assert_int_equal(pr_ident_format(PR_IDENT_ROUTER, "acme", NULL, uri, sizeof(uri)), WEFT_EINVAL);
}

static void parse_is_strict(void **state)
{
    static const char *const bad[] = {
        "",
        "spiffe://",
        "spiffe://acme",
        "spiffe://acme/",
        "spiffe://acme/identity",
        "spiffe://acme/identity/",
        "spiffe://acme/identity/a/b",
        "spiffe://acme/identity/a/",
        "spiffe://acme/identity//a",
        "spiffe://acme//identity/a",
        "spiffe://acme/identities/a",
        "spiffe://acme/Identity/a",
        "spiffe://acme/service/a",
        "spiffe://acme/identity/A",
        "spiffe://acme/identity/a_b",
        "spiffe://acme/identity/a.b",
        "spiffe://acme/identity/a?x=1",
        "spiffe://acme/identity/a#f",
        "spiffe://acme/identity/a%41",
        "spiffe://acme/identity/a b",
        "spiffe:///identity/a",
        "spiffe://ACME/identity/a",
        "spiffe://acme:443/identity/a",
        "spiffe://user@acme/identity/a",
        "spiffe://.acme/identity/a",
        "spiffe://acme./identity/a",
        "spiffe://ac..me/identity/a",
        "SPIFFE://acme/identity/a",
        "https://acme/identity/a",
        "spiffe:/acme/identity/a",
        " spiffe://acme/identity/a",
    };
    char longuri[400];
    int kind;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pr_ident_parse(bad[i], &kind, NULL, 0, NULL, 0), WEFT_EINVAL);
    assert_int_equal(pr_ident_parse(NULL, &kind, NULL, 0, NULL, 0), WEFT_EINVAL);

    /* Id one longer than allowed. */
    strcpy(longuri, "spiffe://a/identity/");
    memset(longuri + strlen(longuri), 'b', PR_ID_MAX + 1);
    longuri[20 + PR_ID_MAX + 1] = '\0';
    assert_int_equal(pr_ident_parse(longuri, &kind, NULL, 0, NULL, 0), WEFT_EINVAL);
    longuri[20 + PR_ID_MAX] = '\0';
    assert_int_equal(pr_ident_parse(longuri, &kind, NULL, 0, NULL, 0), 0);

    /* Trust domain one longer than allowed. */
    strcpy(longuri, "spiffe://");
    memset(longuri + 9, 'c', PR_TRUST_DOMAIN_MAX + 1);
    strcpy(longuri + 9 + PR_TRUST_DOMAIN_MAX + 1, "/router/r");
    assert_int_equal(pr_ident_parse(longuri, &kind, NULL, 0, NULL, 0), WEFT_EINVAL);

    /* Longer than any valid URI: refused without scanning further. */
    memset(longuri, 'a', sizeof(longuri) - 1);
    longuri[sizeof(longuri) - 1] = '\0';
    assert_int_equal(pr_ident_parse(longuri, &kind, NULL, 0, NULL, 0), WEFT_EINVAL);
}

static void valid_id(void **state)
{
    assert_true(pr_ident_valid_id("abc-123"));
    assert_true(pr_ident_valid_id("-"));
    assert_false(pr_ident_valid_id(""));
    assert_false(pr_ident_valid_id(NULL));
    assert_false(pr_ident_valid_id("Abc"));
    assert_false(pr_ident_valid_id("a.b"));
    assert_false(pr_ident_valid_id("a\xc3\xa9"));
}

static void new_ids(void **state)
{
    char ids[64][13];
    char small[5];

    for (int i = 0; i < 64; i++) {
        memset(ids[i], 'X', sizeof(ids[i]));
        pr_ident_new_id(ids[i], sizeof(ids[i]));
        assert_int_equal(strlen(ids[i]), 12);
        assert_true(pr_ident_valid_id(ids[i]));
        assert_null(strchr(ids[i], '-'));
        /* 36^12 possibilities: a repeat here means the generator is broken. */
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    /* A short buffer still gets a terminated string. */
    pr_ident_new_id(small, sizeof(small));
    assert_int_equal(strlen(small), 4);
    pr_ident_new_id(small, 0);
    pr_ident_new_id(NULL, 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_and_parse),
        cmocka_unit_test(longest_fits),
        cmocka_unit_test(format_refuses_bad_parts),
        cmocka_unit_test(parse_is_strict),
        cmocka_unit_test(valid_id),
        cmocka_unit_test(new_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
