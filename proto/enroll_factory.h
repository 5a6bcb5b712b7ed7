/* Enrolment with a factory certificate (bring-your-own CA, docs/bootstrap.md):
 * a device that left the factory with a certificate and key from a
 * manufacturing CA registered with the controller obtains its network
 * identity without a per-device token. It knows the controller URL and the
 * network CA's fingerprint (from its factory image); it fetches the CA, pins
 * it, makes a new key (never sent), and posts a CSR signed with its factory
 * key (proto/proof.h) over the verified channel. */
#ifndef PR_ENROLL_FACTORY_H
#define PR_ENROLL_FACTORY_H

#include <stddef.h>

#include "proto/httpc.h"
#include "proto/idfile.h"

typedef struct {
    const char *controller; /* https://HOST:PORT */
    const char *ca_fp;      /* SHA-256 of the network CA (hex; ':' separators allowed) */
    const char *cert_pem;   /* factory certificate (leaf first, then intermediates) */
    const char *key_pem;    /* its private key */
    const char *imei, *iccid;
    int timeout_ms;
    pr_httpc_busy busy; /* a 429 (admission control) is waited out and asked again */
} pr_factory_req;

int pr_enroll_factory(const pr_factory_req *req, pr_idfile *out, char *err, size_t errcap);

#endif
