/* pki: CA creation, issuing, CSR signing and verification with real OpenSSL
 * objects; fingerprints cross-checked against the openssl command line. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proto/pki.h"
#include "weft/errors.h"

#define URI "spiffe://acme.test/identity/dev-1"

static pr_ca g_ca;

static int setup(void **state)
{
    (void)state;
    return pr_ca_create("acme", &g_ca) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pr_ca_free(&g_ca);
    return 0;
}

static X509 *parse_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    BIO_free(b);
    assert_non_null(x);
    return x;
}

static pr_cert_req client_req(void)
{
    pr_cert_req r = {
        .cn = "dev-1", .uri = URI, .usage = PR_CERT_CLIENT,
        .not_after = (int64_t)time(NULL) + 86400,
    };
    return r;
}

static char *cat2(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);

    assert_non_null(s);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void test_ca_create(void **state)
{
    X509 *x = parse_cert(g_ca.cert_pem);
    char cn[128];
    int64_t na = 0;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0, 1);
    assert_string_equal(cn, "acme Root CA");
    assert_int_equal(X509_check_ca(x), 1);
    assert_int_equal(X509_get_pathlen(x), 1);
    assert_true((X509_get_key_usage(x) & KU_KEY_CERT_SIGN) != 0);
    assert_true((X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) == 0);
    assert_non_null(X509_get0_subject_key_id(x));
    assert_int_equal(X509_get_version(x), 2);
    assert_int_equal(pr_pki_key_matches(g_ca.cert_pem, g_ca.key_pem), 1);
    assert_int_equal(pr_pki_verify(g_ca.cert_pem, g_ca.cert_pem), 0);
    assert_int_equal(pr_pki_cert_not_after(g_ca.cert_pem, &na), 0);
    assert_true(na > now + 9LL * 365 * 86400 && na < now + 11LL * 365 * 86400);
    X509_free(x);
}

static void test_ca_create_rejects_bad_args(void **state)
{
    pr_ca ca;

    (void)state;
    assert_int_equal(pr_ca_create("", &ca), WEFT_EINVAL);
    assert_int_equal(pr_ca_create(NULL, &ca), WEFT_EINVAL);
    pr_ca_free(NULL);
}

static void test_issue_and_verify(void **state)
{
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;
    char uri[256];
    int64_t na = 0;
    X509 *x;

    (void)state;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), 0);
    assert_int_equal(pr_pki_key_matches(cert, key), 1);
    assert_int_equal(pr_pki_key_matches(cert, g_ca.key_pem), 0);
    assert_int_equal(pr_pki_cert_uri(cert, uri, sizeof(uri)), 0);
    assert_string_equal(uri, URI);
    assert_int_equal(pr_pki_cert_not_after(cert, &na), 0);
    assert_int_equal(na, r.not_after);

    x = parse_cert(cert);
    assert_int_equal(X509_check_ca(x), 0);
    assert_true((X509_get_extended_key_usage(x) & XKU_SSL_CLIENT) != 0);
    assert_true((X509_get_extended_key_usage(x) & XKU_SSL_SERVER) == 0);
    assert_true((X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) != 0);
    assert_true((X509_get_key_usage(x) & KU_KEY_CERT_SIGN) == 0);
    assert_non_null(X509_get0_authority_key_id(x));
    X509_free(x);
    free(cert);
    free(key);
}

static void test_uri_buffer_too_small(void **state)
{
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;
    char small[8];

    (void)state;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_cert_uri(cert, small, sizeof(small)), WEFT_ETOOBIG);
    assert_int_equal(pr_pki_cert_uri(g_ca.cert_pem, small, sizeof(small)), WEFT_ENOTFOUND);
    free(cert);
    free(key);
}

static void test_server_cert_sans(void **state)
{
    const char *dns[] = {"localhost", "ctl.acme.test", NULL};
    const char *ips[] = {"127.0.0.1", "::1", NULL};
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;
    X509 *x;

    (void)state;
    r.uri = NULL;
    r.dns = dns;
    r.ips = ips;
    r.usage = PR_CERT_BOTH;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), 0);
    x = parse_cert(cert);
    assert_int_equal(X509_check_host(x, "ctl.acme.test", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "evil.test", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 0);
    assert_true((X509_get_extended_key_usage(x) & (XKU_SSL_CLIENT | XKU_SSL_SERVER)) ==
                (XKU_SSL_CLIENT | XKU_SSL_SERVER));
    X509_free(x);
    free(cert);
    free(key);
}

static void test_issue_rejects_bad_requests(void **state)
{
    const char *bad_ips[] = {"not-an-ip", NULL};
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;

    (void)state;
    r.ips = bad_ips;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), WEFT_EINVAL);
    r = client_req();
    r.not_before = r.not_after;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), WEFT_EINVAL);
    r = client_req();
    r.usage = 7;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), WEFT_EINVAL);
    r = client_req();
    r.cn = NULL;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), WEFT_EINVAL);
    assert_null(cert);
    assert_null(key);
}

static void test_sign_csr(void **state)
{
    pr_cert_req r = client_req();
    char *key = NULL, *csr = NULL, *cert = NULL;
    char serial[33], cn[64];
    char *bnhex;
    X509 *x;
    BIGNUM *bn;

    (void)state;
    assert_int_equal(pr_pki_keygen(&key), 0);
    assert_non_null(strstr(key, "BEGIN PRIVATE KEY"));
    /* The CSR asks for a different CN: the CA's request wins. */
    assert_int_equal(pr_pki_csr(key, "please-make-me-admin", &csr), 0);
    assert_int_equal(pr_ca_sign_csr(&g_ca, csr, &r, &cert, serial), 0);
    assert_int_equal(strlen(serial), 32);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), 0);
    assert_int_equal(pr_pki_key_matches(cert, key), 1);

    x = parse_cert(cert);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "dev-1");
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) >= 120 && BN_num_bits(bn) <= 127);
    bnhex = BN_bn2hex(bn);
    assert_int_equal(strcasecmp(bnhex, serial), 0);
    OPENSSL_free(bnhex);
    BN_free(bn);
    X509_free(x);
    free(cert);
    free(csr);
    free(key);
}

static void test_serials_differ(void **state)
{
    pr_cert_req r = client_req();
    char *key = NULL, *csr = NULL, *c1 = NULL, *c2 = NULL;
    char s1[33], s2[33];

    (void)state;
    assert_int_equal(pr_pki_keygen(&key), 0);
    assert_int_equal(pr_pki_csr(key, "x", &csr), 0);
    assert_int_equal(pr_ca_sign_csr(&g_ca, csr, &r, &c1, s1), 0);
    assert_int_equal(pr_ca_sign_csr(&g_ca, csr, &r, &c2, s2), 0);
    assert_string_not_equal(s1, s2);
    free(c1);
    free(c2);
    free(csr);
    free(key);
}

/* A CSR carrying someone else's public key, signed with the attacker's key. */
static char *forged_csr(void)
{
    EVP_PKEY *mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *victim = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509_REQ *r = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_int_equal(X509_REQ_set_pubkey(r, victim), 1);
    assert_true(X509_REQ_sign(r, mine, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
    n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)n);
    BIO_free(b);
    X509_REQ_free(r);
    EVP_PKEY_free(mine);
    EVP_PKEY_free(victim);
    return out;
}

static void test_csr_bad_signature(void **state)
{
    pr_cert_req r = client_req();
    char *csr = forged_csr();
    char *cert = NULL;
    char serial[33];

    (void)state;
    assert_int_equal(pr_ca_sign_csr(&g_ca, csr, &r, &cert, serial), WEFT_ECERT);
    assert_null(cert);
    assert_int_equal(pr_ca_sign_csr(&g_ca, "garbage", &r, &cert, serial), WEFT_ECERT);
    assert_int_equal(pr_ca_sign_csr(&g_ca, g_ca.cert_pem, &r, &cert, serial), WEFT_ECERT);
    free(csr);
}

static void test_csr_non_p256_key_refused(void **state)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIO *b = BIO_new(BIO_s_mem());
    pr_cert_req r = client_req();
    char *key, *data, *csr = NULL, *cert = NULL;
    long n;

    (void)state;
    assert_int_equal(PEM_write_bio_PrivateKey(b, rsa, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(b, &data);
    key = strndup(data, (size_t)n);
    assert_int_equal(pr_pki_csr(key, "rsa", &csr), 0);
    assert_int_equal(pr_ca_sign_csr(&g_ca, csr, &r, &cert, NULL), WEFT_ECERT);
    free(csr);
    free(key);
    BIO_free(b);
    EVP_PKEY_free(rsa);
}

static void test_expired_and_not_yet_valid(void **state)
{
    int64_t now = (int64_t)time(NULL);
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;

    (void)state;
    r.not_before = now - 7200;
    r.not_after = now - 3600;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), WEFT_ECERTEXPIRED);
    free(cert);
    free(key);

    r.not_before = now + 3600;
    r.not_after = now + 7200;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), WEFT_ECERTEXPIRED);
    free(cert);
    free(key);
}

static void test_other_ca_untrusted(void **state)
{
    pr_ca other, twin;
    pr_cert_req r = client_req();
    char *cert = NULL, *key = NULL;
    char *bundle;

    (void)state;
    assert_int_equal(pr_ca_create("evil", &other), 0);
    /* Same subject name as the real CA: only the key tells them apart. */
    assert_int_equal(pr_ca_create("acme", &twin), 0);
    assert_int_equal(pr_ca_issue(&other, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), WEFT_EUNTRUSTED);
    free(cert);
    free(key);
    assert_int_equal(pr_ca_issue(&twin, &r, &cert, &key), 0);
    assert_int_equal(pr_pki_verify(cert, g_ca.cert_pem), WEFT_EUNTRUSTED);
    assert_int_equal(pr_pki_verify(cert, twin.cert_pem), 0);
    /* A CA bundle trusts every CA in it. */
    bundle = cat2(g_ca.cert_pem, twin.cert_pem);
    assert_int_equal(pr_pki_verify(cert, bundle), 0);
    /* A self-signed certificate is not trusted by another root. */
    assert_int_equal(pr_pki_verify(other.cert_pem, g_ca.cert_pem), WEFT_EUNTRUSTED);
    free(bundle);
    free(cert);
    free(key);
    pr_ca_free(&other);
    pr_ca_free(&twin);
}

/* A leaf (CA:FALSE) used to sign another certificate must not be accepted. */
static void test_leaf_cannot_issue(void **state)
{
    pr_cert_req r = client_req();
    pr_ca fake = {0};
    char *cert = NULL, *key = NULL;
    char *chain;

    (void)state;
    assert_int_equal(pr_ca_issue(&g_ca, &r, &fake.cert_pem, &fake.key_pem), 0);
    assert_int_equal(pr_ca_issue(&fake, &r, &cert, &key), 0);
    chain = cat2(cert, fake.cert_pem);
    assert_int_equal(pr_pki_verify(chain, g_ca.cert_pem), WEFT_ECERT);
    free(chain);
    free(cert);
    free(key);
    pr_ca_free(&fake);
}

static void test_verify_bad_input(void **state)
{
    (void)state;
    assert_int_equal(pr_pki_verify("not a cert", g_ca.cert_pem), WEFT_ECERT);
    assert_int_equal(pr_pki_verify(NULL, g_ca.cert_pem), WEFT_ECERT);
    assert_int_equal(pr_pki_verify(g_ca.cert_pem, "nope"), WEFT_EINVAL);
    assert_int_equal(pr_pki_key_matches("nope", g_ca.key_pem), WEFT_ECERT);
    assert_int_equal(pr_pki_key_matches(g_ca.cert_pem, "nope"), WEFT_EINVAL);
    assert_int_equal(pr_pki_csr("nope", "cn", &(char *){NULL}), WEFT_EINVAL);
}

/* Runs `openssl x509 -fingerprint -sha256` and returns the hex digits, lower case. */
static void openssl_fingerprint(const char *pem, char out[65])
{
    char path[] = "/tmp/weft-test-pki-XXXXXX";
    char cmd[256], line[512];
    int fd = mkstemp(path);
    FILE *p;
    size_t n = 0;
    char *eq;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
    close(fd);
    snprintf(cmd, sizeof(cmd), "openssl x509 -noout -fingerprint -sha256 -in %s", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    unlink(path);
    eq = strchr(line, '=');
    assert_non_null(eq);
    for (char *c = eq + 1; *c != '\0' && *c != '\n'; c++) {
        if (*c == ':')
            continue;
        assert_true(n < 64);
        out[n++] = (char)tolower((unsigned char)*c);
    }
    out[n] = '\0';
}

static void test_fingerprint(void **state)
{
    char a[65], b[65], cli[65];
    char *bundle = cat2(g_ca.cert_pem, "-----BEGIN CERTIFICATE-----\nbroken\n");

    (void)state;
    assert_int_equal(pr_pki_fingerprint(g_ca.cert_pem, a), 0);
    assert_int_equal(strlen(a), 64);
    for (size_t i = 0; i < 64; i++)
        assert_true(isdigit((unsigned char)a[i]) || (a[i] >= 'a' && a[i] <= 'f'));
    assert_int_equal(pr_pki_fingerprint(g_ca.cert_pem, b), 0);
    assert_string_equal(a, b);
    openssl_fingerprint(g_ca.cert_pem, cli);
    assert_string_equal(a, cli);
    /* First-certificate semantics: whatever follows does not matter. */
    assert_int_equal(pr_pki_fingerprint(bundle, b), 0);
    assert_string_equal(a, b);
    assert_int_equal(pr_pki_fingerprint("junk", b), WEFT_ECERT);
    free(bundle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_create),
        cmocka_unit_test(test_ca_create_rejects_bad_args),
        cmocka_unit_test(test_issue_and_verify),
        cmocka_unit_test(test_uri_buffer_too_small),
        cmocka_unit_test(test_server_cert_sans),
        cmocka_unit_test(test_issue_rejects_bad_requests),
        cmocka_unit_test(test_sign_csr),
        cmocka_unit_test(test_serials_differ),
        cmocka_unit_test(test_csr_bad_signature),
        cmocka_unit_test(test_csr_non_p256_key_refused),
        cmocka_unit_test(test_expired_and_not_yet_valid),
        cmocka_unit_test(test_other_ca_untrusted),
        cmocka_unit_test(test_leaf_cannot_issue),
        cmocka_unit_test(test_verify_bad_input),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
