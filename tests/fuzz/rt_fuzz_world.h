/* What the router fuzz targets share: one router without sockets, a network CA,
 * a map with service "web" (id s1), a bind token for app1 and a dial token for
 * dev1 signed with the map's key, dev1's certificate and a signed kx key, and
 * readers for the fuzzer's input. Included by one target each (all static). */
#ifndef RT_FUZZ_WORLD_H
#define RT_FUZZ_WORLD_H

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "proto/e2e.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "proto/msg.h"
#include "proto/pki.h"
#include "router/admit.h"
#include "router/router.h"
#include "weft/errors.h"

static rt_router r;
static pr_idfile id;
static uv_loop_t loop;
static char *bind_tok, *dial_tok, *dev_cert, *dev_key;
static uint8_t kx_pk[PR_E2E_KX_BYTES], kx_sig[PR_E2E_SIG_MAX];
static size_t kx_sig_len;
static uint8_t fbuf[PR_FRAME_MAX];

static char *token(const uint8_t *sk, const char *sub, const char *act)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "aud", "weft-service", "net",
                          "net", "sub", sub, "svc", "s1", "svc_name", "web", "act", act, "exp",
                          (json_int_t)time(NULL) + 86400);
    char *t = NULL;

    if (c == NULL || pr_jwt_sign(c, sk, &t) < 0)
        abort();
    json_decref(c);
    return t;
}

static void setup_map(const uint8_t *pk, const char *routers_json)
{
    char b64[64], map[1024], err[128];

    sodium_bin2base64(b64, sizeof(b64), pk, crypto_sign_PUBLICKEYBYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(map, sizeof(map),
             "{\"version\": 1, \"signing_key\": \"%s\", \"routers\": %s,"
             " \"services\": [{\"id\": \"s1\", \"name\": \"web\"}]}",
             b64, routers_json);
    if (rt_map_apply_full(&r.map, map, strlen(map), err, sizeof(err)) < 0)
        abort();
}

/* The router is router_id; routers_json is the map's router list. */
static void world_setup(const char *router_id, const char *routers_json)
{
    static pr_ca ca;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char uri[128];
    pr_cert_req rreq = {
        .cn = "r", .uri = uri, .usage = PR_CERT_BOTH, .not_after = (int64_t)time(NULL) + 86400};
    pr_cert_req dreq = {.cn = "d",
                        .uri = "spiffe://net/identity/dev1",
                        .usage = PR_CERT_CLIENT,
                        .not_after = (int64_t)time(NULL) + 86400};
    pr_e2e_kx kx;

    snprintf(uri, sizeof(uri), "spiffe://net/router/%s", router_id);
    pr_log_init("router", PR_LOG_ERROR + 1);
    if (sodium_init() < 0 || uv_loop_init(&loop) < 0 || pr_ca_create("net", &ca) < 0 ||
        pr_ca_issue(&ca, &rreq, &id.cert_pem, &id.key_pem) < 0 ||
        pr_ca_issue(&ca, &dreq, &dev_cert, &dev_key) < 0)
        abort();
    snprintf(id.kind, sizeof(id.kind), "router");
    snprintf(id.id, sizeof(id.id), "%s", router_id);
    snprintf(id.network, sizeof(id.network), "net");
    id.ca_pem = ca.cert_pem;
    if (rt_router_init(&r, &loop, &id) < 0 || pr_e2e_kx_new(&kx) < 0)
        abort();
    /* Every run says hello again and loop time stands still: the admission
     * limit (fuzzed by nothing here) would refuse the set-up after 200 runs. */
    rt_admit_config(&r, 0, 0);
    crypto_sign_keypair(pk, sk);
    setup_map(pk, routers_json);
    bind_tok = token(sk, "app1", "bind");
    dial_tok = token(sk, "dev1", "dial");
    memcpy(kx_pk, kx.pk, sizeof(kx_pk));
    if (pr_e2e_sign(dev_key, PR_E2E_DIALLER, kx.pk, "web", kx_sig, &kx_sig_len) < 0)
        abort();
}

/* ---- the fuzzer's input ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t take(input *in)
{
    uint8_t b = 0;

    if (in->n) {
        b = *in->p++;
        in->n--;
    }
    return b;
}

static uint64_t take64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take(in);
    return v;
}

/* dev1's dial fields, each present or not by a bit (bit 3: a cut signature). */
static void add_dial_fields(pr_enc *e, uint8_t bits)
{
    if (bits & 1)
        pr_enc_bytes(e, PR_H_KX_PK, kx_pk, sizeof(kx_pk));
    if (bits & 2)
        pr_enc_bytes(e, PR_H_KX_SIG, kx_sig, (bits & 8) ? 1 : kx_sig_len);
    if (bits & 4)
        pr_enc_str(e, PR_H_PEER_CERT, dev_cert);
}

#endif
