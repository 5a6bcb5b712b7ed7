/* libweft edge messages: what the encoders write decodes to the same values,
 * payload frames built in place are valid frames, and the decoder refuses
 * every message that lacks what its type needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge/lib/msg.h"
#include "weft/errors.h"

static uint8_t buf[PR_FRAME_MAX];
static weft_msg m;

static int decode(size_t len)
{
    pr_frame f;
    size_t used;
    int r = pr_frame_decode(buf, len, &f, &used);

    if (r < 0)
        return r;
    assert_int_equal(used, len);
    return weft__msg_decode(&f, &m);
}

static void hello_carries_hardware_ids(void **state)
{
    size_t len;
    pr_frame f;

    assert_int_equal(
        weft__msg_hello(buf, sizeof(buf), "356938035643809", "8944500102198304826", &len), 0);
    assert_int_equal(pr_frame_decode(buf, len, &f, &len), 0);
    assert_int_equal(f.type, PR_EDGE_HELLO);
    char s[64];
    assert_int_equal(pr_frame_str(&f, PR_H_HW_IMEI, s, sizeof(s)), 0);
    assert_string_equal(s, "356938035643809");
    assert_int_equal(pr_frame_str(&f, PR_H_HW_ICCID, s, sizeof(s)), 0);
    assert_string_equal(s, "8944500102198304826");
    /* No ids: no headers, rather than empty ones. */
    assert_int_equal(weft__msg_hello(buf, sizeof(buf), NULL, "", &len), 0);
    assert_int_equal(pr_frame_decode(buf, len, &f, &len), 0);
    assert_null(pr_frame_header(&f, PR_H_HW_IMEI));
    assert_null(pr_frame_header(&f, PR_H_HW_ICCID));
}

static void dial_round_trip(void **state)
{
    uint8_t pk[WEFT_E2E_PK_LEN], sig[70];
    weft_dial_msg d = {
        7,           0x1122334455667788ull,
        NULL,        "telemetry",
        pk,          sig,
        sizeof(sig), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"};
    size_t len;

    memset(pk, 0xab, sizeof(pk));
    memset(sig, 0x30, sizeof(sig));
    /* The router's forward to the host: circuit, no req id, no token. */
    d.req_id = 0;
    assert_int_equal(weft__msg_dial(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.type, PR_EDGE_DIAL);
    assert_false(m.has_req);
    assert_int_equal(m.circuit, 0x1122334455667788ull);
    assert_string_equal(m.service, "telemetry");
    assert_memory_equal(m.kx_pk, pk, sizeof(pk));
    assert_int_equal(m.sig_len, sizeof(sig));
    assert_string_equal(m.cert, d.cert);
    /* The relayed answer to the dialler: req id and circuit. */
    d.req_id = 7;
    assert_int_equal(weft__msg_dial_ok(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.type, PR_EDGE_DIAL_OK);
    assert_true(m.has_req);
    assert_int_equal(m.req_id, 7);
    assert_int_equal(m.circuit, d.circuit);
    assert_int_equal(m.rwnd, 0); /* not announced */
}

/* The receive window rides in the dial and its answer; absent is 0 (the
 * caller's default), out of range is malformed. */
static void dial_announces_its_window(void **state)
{
    uint8_t pk[WEFT_E2E_PK_LEN] = {0}, sig[8] = {0};
    weft_dial_msg d = {7, 9, NULL, "svc", pk, sig, sizeof(sig), "cert", 256 * 1024};
    size_t len;

    assert_int_equal(weft__msg_dial(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.rwnd, 256 * 1024);
    d.rwnd = 2u << 20;
    assert_int_equal(weft__msg_dial_ok(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.rwnd, 2u << 20);
    d.rwnd = WEFT_RWND_MIN - 1;
    assert_int_equal(weft__msg_dial_ok(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    d.rwnd = WEFT_RWND_MAX + 1;
    assert_int_equal(weft__msg_dial(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
}

static void dial_without_what_it_needs(void **state)
{
    uint8_t pk[WEFT_E2E_PK_LEN] = {0}, sig[WEFT_E2E_SIG_MAX + 1] = {0};
    weft_dial_msg d = {0, 9, NULL, "svc", pk, sig, 8, "cert"};
    size_t len;
    pr_enc e;

    /* A DIAL for the host without a circuit. */
    d.circuit = 0;
    assert_int_equal(weft__msg_dial(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    /* A DIAL_OK without its req id cannot be matched to a dial. */
    d.circuit = 9;
    assert_int_equal(weft__msg_dial_ok(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    /* An oversized signature. */
    d.req_id = 1;
    d.sig_len = sizeof(sig);
    assert_int_equal(weft__msg_dial_ok(buf, sizeof(buf), &d, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    /* A kx key of the wrong length. */
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_DIAL_OK, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 1);
    pr_enc_u64(&e, PR_H_CIRCUIT, 9);
    pr_enc_bytes(&e, PR_H_KX_PK, pk, 31);
    pr_enc_bytes(&e, PR_H_KX_SIG, sig, 8);
    pr_enc_str(&e, PR_H_PEER_CERT, "cert");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
}

static void errors_cross_as_codes(void **state)
{
    size_t len;
    pr_enc e;

    assert_int_equal(weft__msg_dial_fail(buf, sizeof(buf), 5, WEFT_ENOPOLICY, "no policy", &len),
                     0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.err, WEFT_ENOPOLICY);
    assert_string_equal(m.err_msg, "no policy");
    assert_int_equal(m.circuit, 5);
    /* A code outside the table must not read as success or as errno. */
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_ERROR, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 3);
    pr_enc_u32(&e, PR_H_ERR, 12);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.err, WEFT_EPROTO);
    /* EDGE_CLOSE with error 0 is a plain close. */
    assert_int_equal(weft__msg_close(buf, sizeof(buf), 5, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.type, PR_EDGE_CLOSE);
    assert_int_equal(m.err, 0);
}

/* The router's EDGE_UNBIND (a bind withdrawn by a policy): the service is
 * required; the terminator, code and reason come along; a reason longer
 * than an edge keeps, or a service name of the wrong type, is malformed. */
static void unbind_from_the_router(void **state)
{
    char longmsg[WEFT_ERRMSG_MAX + 1];
    size_t len;
    pr_enc e;

    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    pr_enc_str(&e, PR_H_TERMINATOR, "t1");
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_EDENIED);
    pr_enc_str(&e, PR_H_ERR_MSG, "a policy change withdrew it (bind policy \"b\" deleted)");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.type, PR_EDGE_UNBIND);
    assert_string_equal(m.service, "web");
    assert_string_equal(m.terminator, "t1");
    assert_int_equal(m.err, WEFT_EDENIED);
    assert_false(m.has_req);
    /* Without a code: decoded, the library takes it for EDENIED. */
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.err, 0);
    /* No service, an empty one, one of the wrong type, a reason too long. */
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_str(&e, PR_H_TERMINATOR, "t1");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_str(&e, PR_H_SERVICE, "");
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_u32(&e, PR_H_SERVICE, 7);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    memset(longmsg, 'x', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_UNBIND, 0);
    pr_enc_str(&e, PR_H_SERVICE, "web");
    pr_enc_str(&e, PR_H_ERR_MSG, longmsg);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    /* The edge's own EDGE_UNBIND (request id, service) still decodes. */
    assert_int_equal(weft__msg_unbind(buf, sizeof(buf), 9, "web", &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.req_id, 9);
}

static void payload_in_place(void **state)
{
    size_t off, len;

    assert_int_equal(weft__msg_payload_begin(buf, sizeof(buf), 42, 3, PR_PF_FIN, &off), 0);
    memset(buf + off, 0x5a, PR_FRAME_MAX_BODY);
    len = weft__msg_payload_end(buf, off, PR_FRAME_MAX_BODY);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.type, PR_PAYLOAD_DATA);
    assert_int_equal(m.flags, PR_PF_FIN);
    assert_int_equal(m.circuit, 42);
    assert_int_equal(m.seq, 3);
    assert_int_equal(m.body_len, PR_FRAME_MAX_BODY);
    assert_int_equal(m.body[0], 0x5a);
    /* Too small a buffer is refused before anything is written past it. */
    assert_int_equal(weft__msg_payload_begin(buf, WEFT_PAYLOAD_HDR_MAX - 1, 42, 3, 0, &off),
                     WEFT_ETOOBIG);
}

static void ack_and_payload_need_their_numbers(void **state)
{
    size_t len;
    pr_enc e;

    assert_int_equal(weft__msg_ack(buf, sizeof(buf), 42, 1 << 20, 0, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.window, 1 << 20);
    assert_false(m.has_ack_seq);
    assert_int_equal(weft__msg_ack(buf, sizeof(buf), 42, 1 << 20, 1, 0, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_true(m.has_ack_seq);
    assert_int_equal(m.ack_seq, 0);
    assert_int_equal(weft__msg_ack(buf, sizeof(buf), 42, 7, 1, 1234567, &len), 0);
    assert_int_equal(decode(len), 0);
    assert_int_equal(m.ack_seq, 1234567);
    assert_int_equal(m.window, 7);
    pr_enc_init(&e, buf, sizeof(buf), PR_ACK_WINDOW, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, 42);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    pr_enc_init(&e, buf, sizeof(buf), PR_PAYLOAD_DATA, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, 42);
    assert_int_equal(pr_enc_finish(&e, "x", 1, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
    /* A header of the wrong type is malformed, not absent. */
    pr_enc_init(&e, buf, sizeof(buf), PR_EDGE_CLOSE, 0);
    pr_enc_u32(&e, PR_H_CIRCUIT, 42);
    assert_int_equal(pr_enc_finish(&e, NULL, 0, &len), 0);
    assert_int_equal(decode(len), WEFT_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_carries_hardware_ids),
        cmocka_unit_test(dial_round_trip),
        cmocka_unit_test(dial_without_what_it_needs),
        cmocka_unit_test(dial_announces_its_window),
        cmocka_unit_test(errors_cross_as_codes),
        cmocka_unit_test(unbind_from_the_router),
        cmocka_unit_test(payload_in_place),
        cmocka_unit_test(ack_and_payload_need_their_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
