/* jwt: EdDSA compact JWS. Hostile tokens are built here with a valid Ed25519
 * signature wherever possible, so that each rejection is caused by the check
 * under test and not by the signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "proto/jwt.h"
#include "weft/errors.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define HDR "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}"

static unsigned char g_pk[crypto_sign_PUBLICKEYBYTES], g_sk[crypto_sign_SECRETKEYBYTES];
static unsigned char g_pk2[crypto_sign_PUBLICKEYBYTES], g_sk2[crypto_sign_SECRETKEYBYTES];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    crypto_sign_keypair(g_pk, g_sk);
    crypto_sign_keypair(g_pk2, g_sk2);
    return 0;
}

static char *b64(const void *bin, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, B64);
    char *s = malloc(cap);

    assert_non_null(s);
    sodium_bin2base64(s, cap, bin, len, B64);
    return s;
}

/* "<h>.<p>.<sig>" where sig is a valid Ed25519 signature (siglen bytes of it)
 * over "<h>.<p>" with sk; h and p are used verbatim (already encoded). */
static char *assemble(const char *h, const char *p, const unsigned char *sk, size_t siglen)
{
    unsigned char sig[crypto_sign_BYTES + 8] = {0};
    char input[16384], *s, *out;

    assert_true(snprintf(input, sizeof(input), "%s.%s", h, p) < (int)sizeof(input));
    crypto_sign_detached(sig, NULL, (const unsigned char *)input, strlen(input), sk);
    s = b64(sig, siglen);
    out = malloc(strlen(input) + strlen(s) + 2);
    assert_non_null(out);
    sprintf(out, "%s.%s", input, s);
    free(s);
    return out;
}

/* A token with the given header and payload JSON text, correctly signed with sk. */
static char *make(const char *hdr_json, const char *payload_json, const unsigned char *sk)
{
    char *h = b64(hdr_json, strlen(hdr_json));
    char *p = b64(payload_json, strlen(payload_json));
    char *t = assemble(h, p, sk, crypto_sign_BYTES);

    free(h);
    free(p);
    return t;
}

static void expect_rejected(const char *tok)
{
    json_t *c = (json_t *)1;

    assert_int_equal(pr_jwt_verify(tok, g_pk, &c), WEFT_ETOKEN);
    assert_null(c);
}

static void expect_rejected_both(const char *tok)
{
    json_t *c = (json_t *)1;

    expect_rejected(tok);
    assert_int_equal(pr_jwt_decode_unverified(tok, &c), WEFT_ETOKEN);
    assert_null(c);
}

static void test_round_trip(void **state)
{
    json_t *claims = json_pack("{s:s, s:I, s:s}", "sub", "dev-1", "exp", (json_int_t)time(NULL) + 60,
                               "ca", "ab01");
    json_t *got = NULL;
    char *tok = NULL;

    (void)state;
    assert_int_equal(pr_jwt_sign(claims, g_sk, &tok), 0);
    /* Our header, byte for byte: sorted keys, compact. */
    assert_memory_equal(tok, "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.", 37);
    assert_null(strchr(tok, '='));
    assert_int_equal(pr_jwt_verify(tok, g_pk, &got), 0);
    assert_true(json_equal(claims, got));
    assert_int_equal(pr_jwt_check_exp(got, (long long)time(NULL)), 0);
    json_decref(got);
    got = NULL;
    assert_int_equal(pr_jwt_decode_unverified(tok, &got), 0);
    assert_true(json_equal(claims, got));
    json_decref(got);
    free(tok);
    json_decref(claims);
}

static void test_hand_made_token_accepted(void **state)
{
    char *tok = make("{\"alg\":\"EdDSA\"}", "{\"sub\":\"x\"}", g_sk);
    json_t *c = NULL;

    (void)state;
    assert_int_equal(pr_jwt_verify(tok, g_pk, &c), 0);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "x");
    json_decref(c);
    free(tok);
}

static void test_sign_rejects_bad_args(void **state)
{
    json_t *arr = json_array();
    char *tok = NULL;

    (void)state;
    assert_int_equal(pr_jwt_sign(arr, g_sk, &tok), WEFT_EINVAL);
    assert_int_equal(pr_jwt_sign(NULL, g_sk, &tok), WEFT_EINVAL);
    assert_null(tok);
    json_decref(arr);
}

static void test_wrong_key(void **state)
{
    char *tok = make(HDR, "{\"sub\":\"x\"}", g_sk2);
    json_t *c = NULL;

    (void)state;
    expect_rejected(tok);
    /* Structurally fine: a device may read it before it has the key. */
    assert_int_equal(pr_jwt_decode_unverified(tok, &c), 0);
    json_decref(c);
    free(tok);
}

static void test_tampered_payload(void **state)
{
    char *tok = make(HDR, "{\"sub\":\"user\"}", g_sk);
    char *evil = b64("{\"sub\":\"admin\"}", 15);
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    char forged[1024];

    (void)state;
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - tok), tok, evil, dot2);
    expect_rejected(forged);
    free(evil);
    free(tok);
}

static void test_tampered_signature(void **state)
{
    char *tok = make(HDR, "{\"sub\":\"user\"}", g_sk);
    char *sig = strrchr(tok, '.') + 1;

    (void)state;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    expect_rejected(tok);
    free(tok);
}

static void test_bad_headers(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"eddsa\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":7}",
        "{\"alg\":\"EdDSA\",\"typ\":\"JWE\"}",
        "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"],\"b64\":false}",
        "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\"}",
        "[\"EdDSA\"]",
        "\"EdDSA\"",
        "{\"alg\":\"EdDSA\"",
        "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *tok = make(headers[i], "{\"sub\":\"x\"}", g_sk);

        expect_rejected_both(tok);
        free(tok);
    }
}

static void test_alg_none_unsigned(void **state)
{
    char *h = b64("{\"alg\":\"none\"}", 14);
    char *p = b64("{\"sub\":\"admin\"}", 15);
    char tok[256];

    (void)state;
    snprintf(tok, sizeof(tok), "%s.%s.", h, p);
    expect_rejected_both(tok);
    snprintf(tok, sizeof(tok), "%s.%s", h, p);
    expect_rejected_both(tok);
    free(h);
    free(p);
}

static void test_bad_payloads(void **state)
{
    static const char *const payloads[] = {
        "[1,2,3]", "\"sub\"", "42", "null", "{\"a\":1,\"a\":2}", "{\"a\":1} trailing", "{\"a\":\"\\u0000\"}",
        "{\"a\":", "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *tok = make(HDR, payloads[i], g_sk);

        expect_rejected_both(tok);
        free(tok);
    }
}

static void test_structure(void **state)
{
    char *good = make(HDR, "{\"sub\":\"x\"}", g_sk);
    char buf[1024];
    static const char *const bad[] = {"", ".", "..", "...", "a.b", "a..c", ".b.c", "a.b.", "abc"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected_both(bad[i]);
    snprintf(buf, sizeof(buf), "%s.", good);
    expect_rejected_both(buf);
    snprintf(buf, sizeof(buf), "%s.x", good);
    expect_rejected_both(buf);
    snprintf(buf, sizeof(buf), ".%s", good);
    expect_rejected_both(buf);
    expect_rejected_both(NULL);
    free(good);
}

static void test_bad_base64(void **state)
{
    char *h = b64(HDR, strlen(HDR));
    char *p = b64("{\"sub\":\"x\"}", 11);
    char padded[256], std[256], junk[256];
    char *tok;

    (void)state;
    /* Padding, the standard alphabet and stray characters: each signed correctly. */
    snprintf(padded, sizeof(padded), "%s=", p);
    tok = assemble(h, padded, g_sk, crypto_sign_BYTES);
    expect_rejected_both(tok);
    free(tok);
    snprintf(std, sizeof(std), "%s", p);
    std[0] = '+';
    tok = assemble(h, std, g_sk, crypto_sign_BYTES);
    expect_rejected_both(tok);
    free(tok);
    snprintf(junk, sizeof(junk), "%s!", p);
    tok = assemble(h, junk, g_sk, crypto_sign_BYTES);
    expect_rejected_both(tok);
    free(tok);
    free(h);
    free(p);
}

static void test_signature_length(void **state)
{
    char *h = b64(HDR, strlen(HDR));
    char *p = b64("{\"sub\":\"x\"}", 11);
    json_t *c = NULL;
    char *tok;

    (void)state;
    tok = assemble(h, p, g_sk, crypto_sign_BYTES - 1);
    expect_rejected_both(tok);
    free(tok);
    tok = assemble(h, p, g_sk, crypto_sign_BYTES + 1);
    expect_rejected_both(tok);
    free(tok);
    tok = assemble(h, p, g_sk, crypto_sign_BYTES);
    assert_int_equal(pr_jwt_verify(tok, g_pk, &c), 0);
    json_decref(c);
    free(tok);
    free(h);
    free(p);
}

/* A correctly signed token of exactly len characters (JSON whitespace pads it). */
static char *token_of_length(size_t len)
{
    static const char *const hdrs[] = {HDR, "{\"alg\":\"EdDSA\"}", "{\"alg\":\"EdDSA\", \"typ\":\"JWT\"}"};
    char *payload = malloc(len + 1);

    assert_non_null(payload);
    for (size_t h = 0; h < 3; h++) {
        /* base64url grows 3 bytes to 4 characters: start just below the target. */
        for (size_t n = len * 3 / 4 - 128; n < len; n++) {
            char *tok;

            memset(payload, ' ', n);
            memcpy(payload, "{\"a\":1}", 7);
            payload[n] = '\0';
            tok = make(hdrs[h], payload, g_sk);
            if (strlen(tok) == len) {
                free(payload);
                return tok;
            }
            free(tok);
            if (strlen(payload) * 4 / 3 > len)
                break;
        }
    }
    fail_msg("no token of length %zu", len);
    return NULL;
}

static void test_oversize(void **state)
{
    char *big = malloc(PR_JWT_MAX + 1);
    json_t *claims, *c = NULL;
    char *tok = NULL;

    (void)state;
    memset(big, 'a', PR_JWT_MAX);
    big[PR_JWT_MAX] = '\0';
    claims = json_pack("{s:s}", "blob", big);
    assert_int_equal(pr_jwt_sign(claims, g_sk, &tok), WEFT_ETOOBIG);
    assert_null(tok);
    tok = token_of_length(PR_JWT_MAX);
    assert_int_equal(pr_jwt_verify(tok, g_pk, &c), 0);
    json_decref(c);
    free(tok);
    tok = token_of_length(PR_JWT_MAX + 1);
    expect_rejected_both(tok);
    free(tok);
    json_decref(claims);
    free(big);
}

static void test_check_exp(void **state)
{
    json_t *c = json_pack("{s:I}", "exp", (json_int_t)1000);

    (void)state;
    assert_int_equal(pr_jwt_check_exp(c, 999), 0);
    assert_int_equal(pr_jwt_check_exp(c, 1000), WEFT_ETOKENEXPIRED);
    assert_int_equal(pr_jwt_check_exp(c, 5000), WEFT_ETOKENEXPIRED);
    json_object_set_new(c, "exp", json_string("1000"));
    assert_int_equal(pr_jwt_check_exp(c, 1), WEFT_ETOKEN);
    json_object_set_new(c, "exp", json_real(1000.5));
    assert_int_equal(pr_jwt_check_exp(c, 1), WEFT_ETOKEN);
    json_object_del(c, "exp");
    assert_int_equal(pr_jwt_check_exp(c, 1), WEFT_ETOKEN);
    assert_int_equal(pr_jwt_check_exp(NULL, 1), WEFT_ETOKEN);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hand_made_token_accepted),
        cmocka_unit_test(test_sign_rejects_bad_args),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_alg_none_unsigned),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_signature_length),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_check_exp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
