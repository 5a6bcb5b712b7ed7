#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proto/errf.h"
#include "weft/errors.h"

static void known_codes_have_names_and_messages(void **state)
{
    assert_string_equal(weft_err_name(WEFT_EPROTO), "EPROTO");
    assert_string_equal(weft_strerror(WEFT_ETOKENUSED), "token already used");
    assert_string_equal(weft_err_name(0), "OK");
}

static void unknown_codes_are_safe(void **state)
{
    assert_string_equal(weft_strerror(-1), "unknown error");
    assert_string_equal(weft_err_name(12345), "EUNKNOWN");
}

static void codes_are_unique(void **state)
{
    static const int codes[] = {
#define XX(n, v, m) v,
        WEFT_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
}

static void errf_formats_and_returns_the_code(void **state)
{
    char buf[8];

    assert_int_equal(pr_errf(buf, sizeof(buf), WEFT_EINVAL, "bad %d", 42), WEFT_EINVAL);
    assert_string_equal(buf, "bad 42");
    /* Truncated, still terminated; no buffer at all is allowed. */
    assert_int_equal(pr_errf(buf, sizeof(buf), WEFT_EIO, "%s", "much too long"), WEFT_EIO);
    assert_string_equal(buf, "much to");
    assert_int_equal(pr_errf(NULL, 0, WEFT_EPROTO, "ignored"), WEFT_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_codes_have_names_and_messages),
        cmocka_unit_test(unknown_codes_are_safe),
        cmocka_unit_test(codes_are_unique),
        cmocka_unit_test(errf_formats_and_returns_the_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
