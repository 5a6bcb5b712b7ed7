/* Service-token checks with real Ed25519 keys and real JWTs: each refusal
 * gives its own code and a sentence naming what is wrong. */
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

#include "proto/jwt.h"
#include "router/token.h"
#include "weft/errors.h"

static unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
static unsigned char other_pk[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];
static rt_map map;

static int setup(void **state)
{
    char b64[64], json[512], err[128];

    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(other_pk, other_sk);
    sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
    snprintf(json, sizeof(json),
             "{\"version\": 1, \"signing_key\": \"%s\", \"services\": ["
             "{\"id\": \"s1\", \"name\": \"web\"}, {\"id\": \"s2\", \"name\": \"db\"}],"
             " \"revoked\": [\"gone\"]}", b64);
    rt_map_init(&map);
    assert_int_equal(rt_map_apply_full(&map, json, strlen(json), err, sizeof(err)), 0);
    return 0;
}

static int teardown(void **state)
{
    rt_map_free(&map);
    return 0;
}

static char *token(const unsigned char *key, const char *aud, const char *net, const char *sub,
                   const char *svc, const char *svc_name, const char *act, long long exp)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "aud", aud,
                          "iss", "https://127.0.0.1:1280", "net", net, "sub", sub, "svc", svc,
                          "svc_name", svc_name, "act", act, "iat", (json_int_t)time(NULL),
                          "exp", (json_int_t)exp, "jti", "n1");
    char *t = NULL;

    assert_int_equal(pr_jwt_sign(c, key, &t), 0);
    json_decref(c);
    return t;
}

static int check(char *tok, const char *identity, const char *act, const char *service,
                 char *err)
{
    rt_token_info info;
    int rc = rt_token_check(&map, "net", tok, identity, act, service, (long long)time(NULL),
                            &info, err, 256);

    if (rc == 0)
        assert_string_equal(info.service_id, service[0] == 'w' ? "s1" : "s2");
    free(tok);
    return rc;
}

#define LATER ((long long)time(NULL) + 600)

static void test_valid(void **state)
{
    char err[256];

    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s1", "web", "dial", LATER),
                           "i1", "dial", "web", err), 0);
    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s2", "db", "bind", LATER),
                           "i1", "bind", "db", err), 0);
}

static void test_refusals(void **state)
{
    char err[256];

    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s1", "web", "dial",
                                 (long long)time(NULL) - 1), "i1", "dial", "web", err),
                     WEFT_ETOKENEXPIRED);
    assert_non_null(strstr(err, "token expired"));
    assert_non_null(strstr(err, "reachable"));

    assert_int_equal(check(token(sk, "weft-service", "net", "i2", "s1", "web", "dial", LATER),
                           "i1", "dial", "web", err), WEFT_EDENIED);
    assert_non_null(strstr(err, "another identity"));

    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s2", "db", "dial", LATER),
                           "i1", "dial", "web", err), WEFT_EDENIED);
    assert_non_null(strstr(err, "token is for service db, not web"));

    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s1", "web", "bind", LATER),
                           "i1", "dial", "web", err), WEFT_EDENIED);
    assert_non_null(strstr(err, "for bind, not dial"));

    assert_int_equal(check(token(other_sk, "weft-service", "net", "i1", "s1", "web", "dial",
                                 LATER), "i1", "dial", "web", err), WEFT_ETOKEN);
    assert_non_null(strstr(err, "signature"));

    assert_int_equal(check(token(sk, "weft-service", "net", "gone", "s1", "web", "dial", LATER),
                           "gone", "dial", "web", err), WEFT_EDISABLED);
    assert_non_null(strstr(err, "identity revoked"));

    assert_int_equal(check(token(sk, "weft-enroll", "net", "i1", "s1", "web", "dial", LATER),
                           "i1", "dial", "web", err), WEFT_ETOKEN);
    assert_int_equal(check(token(sk, "weft-service", "net2", "i1", "s1", "web", "dial", LATER),
                           "i1", "dial", "web", err), WEFT_ETOKEN);
    assert_non_null(strstr(err, "network"));
    /* A service re-created under the same name has a new id. */
    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s9", "web", "dial", LATER),
                           "i1", "dial", "web", err), WEFT_EDENIED);
    assert_int_equal(check(token(sk, "weft-service", "net", "i1", "s9", "x", "dial", LATER),
                           "i1", "dial", "x", err), WEFT_ENOTFOUND);
    assert_int_equal(check(strdup("a.b.c"), "i1", "dial", "web", err), WEFT_ETOKEN);
}

static void test_no_key(void **state)
{
    rt_map empty;
    rt_token_info info;
    char err[256];
    char *t = token(sk, "weft-service", "net", "i1", "s1", "web", "dial", LATER);

    rt_map_init(&empty);
    assert_int_equal(rt_token_check(&empty, "net", t, "i1", "dial", "web", (long long)time(NULL),
                                    &info, err, sizeof(err)), WEFT_ETOKEN);
    assert_non_null(strstr(err, "no token key"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_no_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
