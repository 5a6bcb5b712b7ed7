/* Device/router side of enrolment (tier 1), shared by weft-edge and weft-router:
 * read the one-time token, fetch the controller's CA and pin it by the token's
 * SHA-256 fingerprint, make a key pair locally (the private key never leaves
 * this process), post a CSR with the token over the verified channel, and
 * return a complete identity file. See docs/enrollment.md. */
#ifndef PR_ENROLL_H
#define PR_ENROLL_H

#include <jansson.h>
#include <stddef.h>

#include "proto/httpc.h"
#include "proto/idfile.h"

typedef struct {
    const char *token;   /* the JWT text (surrounding white space is ignored) */
    const char *imei;    /* optional hardware ids for device binding */
    const char *iccid;
    json_t *extra;       /* optional fields merged into the request (router listen addresses) */
    int timeout_ms;
    /* Optional factory certificate (PEM chain, leaf first) and its key, for an
     * identity the administrator bound to a factory CA: the CSR is signed with
     * the key (proto/proof.h) and both are sent; the key never leaves. */
    const char *factory_cert_pem;
    const char *factory_key_pem;
    /* A controller over its enrolment rate (HTTP 429) is asked again after its
     * Retry-After (proto/httpc.h); zeroes are the defaults, on_busy reports
     * each wait. The token is not spent by a 429. */
    pr_httpc_busy busy;
} pr_enroll_req;

/* On success *out holds the new identity (caller saves it with pr_idfile_save).
 * On failure err says what happened and what to do. */
int pr_enroll(const pr_enroll_req *req, pr_idfile *out, char *err, size_t errcap);

#endif
