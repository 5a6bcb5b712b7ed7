/* Service tokens (controller/svctoken.c): the claims docs/dataplane.md lists,
 * checked by verifying the signature as a router would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/controller.h"
#include "proto/jwt.h"
#include "weft/errors.h"

static void setup_ctl(ctl *c, int64_t ttl)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->cfg.name, "tnet");
    strcpy(c->cfg.url, "https://127.0.0.1:1280");
    c->cfg.service_token_ttl = ttl;
    crypto_sign_keypair(c->pk, c->sk);
}

static void test_claims(void **state)
{
    json_t *svc = json_pack("{s:s, s:s}", "id", "svc1", "name", "web"), *claims = NULL;
    char *tok = NULL;
    int64_t exp = 0;
    ctl c;

    (void)state;
    setup_ctl(&c, 0);
    assert_int_equal(ctl_svctoken_issue(&c, "ident1", svc, "dial", 1000000, &tok, &exp), 0);
    assert_int_equal(exp, 1000000 + CTL_SVC_TOKEN_TTL_DEFAULT);
    assert_int_equal(pr_jwt_verify(tok, c.pk, &claims), 0);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")), "weft-service");
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), c.cfg.url);
    assert_string_equal(json_string_value(json_object_get(claims, "net")), "tnet");
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "ident1");
    assert_string_equal(json_string_value(json_object_get(claims, "svc")), "svc1");
    assert_string_equal(json_string_value(json_object_get(claims, "svc_name")), "web");
    assert_string_equal(json_string_value(json_object_get(claims, "act")), "dial");
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), 1000000);
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 1000000 + 900);
    assert_true(json_string_length(json_object_get(claims, "jti")) > 0);
    assert_int_equal(pr_jwt_check_exp(claims, 1000000 + 899), 0);
    assert_int_equal(pr_jwt_check_exp(claims, 1000000 + 900), WEFT_ETOKENEXPIRED);
    json_decref(claims);
    free(tok);
    json_decref(svc);
}

static void test_ttl_jti_and_key(void **state)
{
    json_t *svc = json_pack("{s:s, s:s}", "id", "svc1", "name", "web"), *a = NULL, *b = NULL;
    unsigned char pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
    char *t1 = NULL, *t2 = NULL;
    ctl c;

    (void)state;
    setup_ctl(&c, 120);
    assert_int_equal(ctl_svctoken_issue(&c, "i", svc, "bind", 50, &t1, NULL), 0);
    assert_int_equal(ctl_svctoken_issue(&c, "i", svc, "bind", 50, &t2, NULL), 0);
    assert_int_equal(pr_jwt_verify(t1, c.pk, &a), 0);
    assert_int_equal(pr_jwt_verify(t2, c.pk, &b), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "exp")), 170);
    assert_string_equal(json_string_value(json_object_get(a, "act")), "bind");
    assert_string_not_equal(json_string_value(json_object_get(a, "jti")),
                            json_string_value(json_object_get(b, "jti")));
    /* Another controller's key does not verify it. */
    crypto_sign_keypair(pk2, sk2);
    json_decref(b);
    b = NULL;
    assert_int_equal(pr_jwt_verify(t1, pk2, &b), WEFT_ETOKEN);
    json_decref(a);
    json_decref(b);
    free(t1);
    free(t2);
    json_decref(svc);
}

static void test_bad_input(void **state)
{
    json_t *svc = json_pack("{s:s, s:s}", "id", "svc1", "name", "web");
    json_t *noname = json_pack("{s:s}", "id", "svc1");
    char *tok = (char *)"x";
    ctl c;

    (void)state;
    setup_ctl(&c, 0);
    assert_int_equal(ctl_svctoken_issue(&c, "i", svc, "admin", 1, &tok, NULL), WEFT_EINVAL);
    assert_null(tok);
    assert_int_equal(ctl_svctoken_issue(&c, NULL, svc, "dial", 1, &tok, NULL), WEFT_EINVAL);
    assert_int_equal(ctl_svctoken_issue(&c, "i", noname, "dial", 1, &tok, NULL), WEFT_EINVAL);
    json_decref(svc);
    json_decref(noname);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_ttl_jti_and_key),
        cmocka_unit_test(test_bad_input),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
