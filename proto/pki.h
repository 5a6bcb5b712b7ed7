/* X.509 functions shared by the controller (CA side) and the devices and routers
 * (key and CSR side). OpenSSL 3; keys are ECDSA P-256. All PEM outputs are
 * malloc'd NUL-terminated strings the caller frees. */
#ifndef PR_PKI_H
#define PR_PKI_H

#include <stddef.h>
#include <stdint.h>

/* A new P-256 private key, PEM (PKCS#8). */
int pr_pki_keygen(char **key_pem);
/* A CSR for key_pem with subject CN=cn (no SANs: the CA decides them). */
int pr_pki_csr(const char *key_pem, const char *cn, char **csr_pem);
/* SHA-256 of the DER of the first certificate in cert_pem, lower-case hex (65 bytes). */
int pr_pki_fingerprint(const char *cert_pem, char hex[65]);
/* URI SAN of the first certificate in cert_pem, into out. */
int pr_pki_cert_uri(const char *cert_pem, char *out, size_t cap);
/* notAfter of the first certificate, as Unix time. */
int pr_pki_cert_not_after(const char *cert_pem, int64_t *out);
/* Verifies cert_pem against ca_pem (chain, validity period, key usage):
 * 0, WEFT_EUNTRUSTED, WEFT_ECERTEXPIRED or WEFT_ECERT. */
int pr_pki_verify(const char *cert_pem, const char *ca_pem);
/* A parsed set of trust anchors, for checking many certificates against one
 * CA without parsing it each time (the circuit set-up path). */
typedef struct pr_pki_verifier pr_pki_verifier;

int pr_pki_verifier_new(const char *ca_pem, pr_pki_verifier **out);
void pr_pki_verifier_free(pr_pki_verifier *v); /* NULL is a no-op */
/* Checks cert_pem (leaf first, then intermediates) as pr_pki_verify does. On
 * success copies the leaf's URI SAN into uri (if not NULL; WEFT_ENOTFOUND when it
 * has none) and, if leaf_out is not NULL, returns the parsed leaf (an X509 *
 * the caller releases with X509_free). */
int pr_pki_verifier_check(pr_pki_verifier *v, const char *cert_pem, char *uri, size_t uri_cap,
                          void **leaf_out);
/* 1 if key_pem is the private key of the first certificate in cert_pem. */
int pr_pki_key_matches(const char *cert_pem, const char *key_pem);

/* ---- CA side (used by the controller) ---- */
typedef struct {
    char *cert_pem;
    char *key_pem;
} pr_ca;

/* Creates a self-signed root (CN=<name> Root CA, 10 years, pathlen 1). */
int pr_ca_create(const char *name, pr_ca *out);
void pr_ca_free(pr_ca *ca);

enum pr_cert_usage { PR_CERT_CLIENT = 1, PR_CERT_SERVER = 2, PR_CERT_BOTH = 3 };

typedef struct {
    const char *cn;        /* subject CN */
    const char *uri;       /* URI SAN (spiffe://...) */
    const char *const *dns; /* NULL-terminated DNS SANs, may be NULL */
    const char *const *ips; /* NULL-terminated IP SANs, may be NULL */
    int usage;             /* pr_cert_usage */
    int64_t not_before;    /* Unix time; 0 = now - 5 min (clock skew) */
    int64_t not_after;     /* Unix time */
} pr_cert_req;

/* Signs csr_pem (signature verified first; its subject and extensions are
 * ignored, the request's are used) with the CA; random 128-bit serial. */
int pr_ca_sign_csr(const pr_ca *ca, const char *csr_pem, const pr_cert_req *req, char **cert_pem,
                   char serial_hex[33]);
/* Makes a key and certificate in one go (controller server cert, admin identity). */
int pr_ca_issue(const pr_ca *ca, const pr_cert_req *req, char **cert_pem, char **key_pem);
/* Makes an intermediate CA signed by root: a new P-256 key, CN=cn, CA:TRUE
 * pathlen 0, keyCertSign and cRLSign, valid until not_after (capped at the
 * root's own notAfter). It issues leaves with pr_ca_sign_csr and pr_ca_issue;
 * those leaves verify against the root when sent with it (leaf first). */
int pr_ca_create_intermediate(const pr_ca *root, const char *cn, int64_t not_after, pr_ca *out);

#endif
