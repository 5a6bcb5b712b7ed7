/* proto/e2e: signed kx keys checked against a real CA, key agreement, and
 * secretstream round trips with tampering and truncation detected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/e2e.h"
#include "proto/pki.h"
#include "weft/errors.h"

static pr_ca ca, other_ca;
static char *dial_cert, *dial_key, *host_cert, *host_key, *rogue_cert, *rogue_key;

static void issue(const pr_ca *c, const char *uri, char **cert, char **key)
{
    pr_cert_req req = {.cn = "t", .uri = uri, .usage = PR_CERT_BOTH,
                       .not_after = (int64_t)time(NULL) + 3600};
    assert_int_equal(pr_ca_issue(c, &req, cert, key), 0);
}

static int setup(void **state)
{
    assert_int_equal(pr_ca_create("net", &ca), 0);
    assert_int_equal(pr_ca_create("other", &other_ca), 0);
    issue(&ca, "spiffe://net/identity/dialler", &dial_cert, &dial_key);
    issue(&ca, "spiffe://net/identity/host", &host_cert, &host_key);
    issue(&other_ca, "spiffe://net/identity/dialler", &rogue_cert, &rogue_key);
    return 0;
}

static int teardown(void **state)
{
    free(dial_cert), free(dial_key), free(host_cert), free(host_key);
    free(rogue_cert), free(rogue_key);
    pr_ca_free(&ca);
    pr_ca_free(&other_ca);
    return 0;
}

typedef struct {
    pr_e2e_keys d, h; /* dialler's and host's keys */
} pair;

static void handshake(pair *p)
{
    pr_e2e_kx dk, hk;
    uint8_t dsig[PR_E2E_SIG_MAX], hsig[PR_E2E_SIG_MAX];
    size_t dlen, hlen;
    char uri[200];

    assert_int_equal(pr_e2e_kx_new(&dk), 0);
    assert_int_equal(pr_e2e_kx_new(&hk), 0);
    assert_int_equal(pr_e2e_sign(dial_key, PR_E2E_DIALLER, dk.pk, "web", dsig, &dlen), 0);
    assert_int_equal(pr_e2e_sign(host_key, PR_E2E_HOST, hk.pk, "web", hsig, &hlen), 0);
    assert_int_equal(pr_e2e_verify_peer(dial_cert, strlen(dial_cert), ca.cert_pem,
                                        PR_E2E_DIALLER, dk.pk, "web", dsig, dlen, uri,
                                        sizeof(uri)), 0);
    assert_string_equal(uri, "spiffe://net/identity/dialler");
    assert_int_equal(pr_e2e_verify_peer(host_cert, strlen(host_cert), ca.cert_pem, PR_E2E_HOST,
                                        hk.pk, "web", hsig, hlen, NULL, 0), 0);
    assert_int_equal(pr_e2e_keys_derive(PR_E2E_DIALLER, &dk, hk.pk, &p->d), 0);
    assert_int_equal(pr_e2e_keys_derive(PR_E2E_HOST, &hk, dk.pk, &p->h), 0);
    assert_memory_equal(p->d.tx, p->h.rx, PR_E2E_KEY_BYTES);
    assert_memory_equal(p->d.rx, p->h.tx, PR_E2E_KEY_BYTES);
    pr_e2e_kx_wipe(&dk);
    pr_e2e_kx_wipe(&hk);
}

static void test_signatures(void **state)
{
    pr_e2e_kx k;
    uint8_t sig[PR_E2E_SIG_MAX];
    size_t n;
    pair p;

    handshake(&p);
    assert_int_equal(pr_e2e_kx_new(&k), 0);
    assert_int_equal(pr_e2e_sign(dial_key, PR_E2E_DIALLER, k.pk, "web", sig, &n), 0);
    /* another service, another role, another key, another signer, another CA */
    assert_int_equal(pr_e2e_verify_peer(dial_cert, strlen(dial_cert), ca.cert_pem,
                                        PR_E2E_DIALLER, k.pk, "db", sig, n, NULL, 0),
                     WEFT_ECRYPTO);
    assert_int_equal(pr_e2e_verify_peer(dial_cert, strlen(dial_cert), ca.cert_pem, PR_E2E_HOST,
                                        k.pk, "web", sig, n, NULL, 0), WEFT_ECRYPTO);
    k.pk[0] ^= 1;
    assert_int_equal(pr_e2e_verify_peer(dial_cert, strlen(dial_cert), ca.cert_pem,
                                        PR_E2E_DIALLER, k.pk, "web", sig, n, NULL, 0),
                     WEFT_ECRYPTO);
    k.pk[0] ^= 1;
    assert_int_equal(pr_e2e_verify_peer(host_cert, strlen(host_cert), ca.cert_pem,
                                        PR_E2E_DIALLER, k.pk, "web", sig, n, NULL, 0),
                     WEFT_ECRYPTO);
    assert_int_equal(pr_e2e_sign(rogue_key, PR_E2E_DIALLER, k.pk, "web", sig, &n), 0);
    assert_int_equal(pr_e2e_verify_peer(rogue_cert, strlen(rogue_cert), ca.cert_pem,
                                        PR_E2E_DIALLER, k.pk, "web", sig, n, NULL, 0),
                     WEFT_EUNTRUSTED);
    assert_true(pr_e2e_verify_peer("junk", 4, ca.cert_pem, PR_E2E_DIALLER, k.pk, "web", sig, n,
                                   NULL, 0) < 0);
}

static void test_round_trip(void **state)
{
    static uint8_t msg[PR_E2E_MAX_MSG], ct[PR_E2E_MAX_MSG + PR_E2E_ABYTES], pt[PR_E2E_MAX_MSG];
    uint8_t hdr[PR_E2E_HEADER_BYTES];
    pr_e2e_stream tx, rx;
    size_t n, m;
    int final;
    pair p;

    handshake(&p);
    randombytes_buf(msg, sizeof(msg));
    assert_int_equal(pr_e2e_push_start(&tx, p.d.tx, hdr), 0);
    assert_int_equal(pr_e2e_pull_start(&rx, p.h.rx, hdr, sizeof(hdr)), 0);
    for (size_t len = 1; len <= PR_E2E_MAX_MSG; len *= 4) {
        assert_int_equal(pr_e2e_push(&tx, msg, len, 0, ct, sizeof(ct), &n), 0);
        assert_int_equal(n, len + PR_E2E_ABYTES);
        assert_int_equal(pr_e2e_pull(&rx, ct, n, pt, sizeof(pt), &m, &final), 0);
        assert_int_equal(m, len);
        assert_false(final);
        assert_memory_equal(pt, msg, len);
    }
    assert_int_equal(pr_e2e_push(&tx, msg, PR_E2E_MAX_MSG + 1, 0, ct, sizeof(ct), &n),
                     WEFT_ETOOBIG);
    assert_int_equal(pr_e2e_push(&tx, NULL, 0, 1, ct, sizeof(ct), &n), 0);
    assert_int_equal(pr_e2e_pull(&rx, ct, n, pt, sizeof(pt), &m, &final), 0);
    assert_true(final);
    assert_int_equal(m, 0);
    /* nothing after FINAL, either way */
    assert_int_equal(pr_e2e_push(&tx, msg, 1, 0, ct, sizeof(ct), &n), WEFT_EINVAL);
    assert_int_equal(pr_e2e_pull(&rx, ct, n, pt, sizeof(pt), &m, &final), WEFT_EPROTO);
}

static void test_tamper_and_truncation(void **state)
{
    uint8_t hdr[PR_E2E_HEADER_BYTES], ct[3][64], pt[64];
    size_t n[3], m;
    pr_e2e_stream tx, rx;
    int final;
    pair p;

    handshake(&p);
    assert_int_equal(pr_e2e_push_start(&tx, p.h.tx, hdr), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pr_e2e_push(&tx, (const uint8_t *)"hello", 5, 0, ct[i], 64, &n[i]), 0);
    /* a flipped bit */
    assert_int_equal(pr_e2e_pull_start(&rx, p.d.rx, hdr, sizeof(hdr)), 0);
    ct[0][3] ^= 0x40;
    assert_int_equal(pr_e2e_pull(&rx, ct[0], n[0], pt, sizeof(pt), &m, &final), WEFT_ECRYPTO);
    ct[0][3] ^= 0x40;
    /* a dropped message (reordering) */
    assert_int_equal(pr_e2e_pull_start(&rx, p.d.rx, hdr, sizeof(hdr)), 0);
    assert_int_equal(pr_e2e_pull(&rx, ct[1], n[1], pt, sizeof(pt), &m, &final), WEFT_ECRYPTO);
    /* the wrong key (the dialler's own tx key) */
    assert_int_equal(pr_e2e_pull_start(&rx, p.d.tx, hdr, sizeof(hdr)), 0);
    assert_int_equal(pr_e2e_pull(&rx, ct[0], n[0], pt, sizeof(pt), &m, &final), WEFT_ECRYPTO);
    /* Truncation: every message opens, but without a FINAL one the receiver
     * never sees an end of stream, so a cut-off stream is not mistaken for a
     * complete one; and no frame can be forged into a FINAL. */
    assert_int_equal(pr_e2e_pull_start(&rx, p.d.rx, hdr, sizeof(hdr)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pr_e2e_pull(&rx, ct[i], n[i], pt, sizeof(pt), &m, &final), 0);
        assert_false(final);
    }
    assert_false(rx.finished);
    assert_int_equal(pr_e2e_pull(&rx, ct[2], n[2], pt, sizeof(pt), &m, &final), WEFT_ECRYPTO);
    assert_int_equal(pr_e2e_pull(&rx, ct[0], 3, pt, sizeof(pt), &m, &final), WEFT_EPROTO);
    assert_int_equal(pr_e2e_pull_start(&rx, p.d.rx, hdr, 5), WEFT_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signatures),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tamper_and_truncation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
