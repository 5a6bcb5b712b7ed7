/* Certificates from enterprise CAs (bring-your-own CA, docs/bootstrap.md):
 * what the controller reads from a registered CA, a device's factory
 * certificate and a CA's revocation list. OpenSSL 3. */
#ifndef CTL_DEVCERT_H
#define CTL_DEVCERT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char cn[129];     /* subject CN ("" when absent or too long) */
    char serial[129]; /* serial number, lower-case hex */
    int64_t not_after;
} ctl_devcert_info;

/* 1 if the first certificate of pem is a CA certificate (basicConstraints CA:TRUE). */
int ctl_devcert_is_ca(const char *pem);
int ctl_devcert_info_get(const char *cert_pem, ctl_devcert_info *out);
/* Checks a CRL (PEM) is signed by the CA: 0, WEFT_EINVAL (not a CRL) or
 * WEFT_EDENIED (not the CA's). */
int ctl_devcert_crl_check(const char *crl_pem, const char *ca_pem);
/* 1 if the first certificate of cert_pem is listed in crl_pem, 0 if not. */
int ctl_devcert_revoked(const char *cert_pem, const char *crl_pem);

/* ---- api_cas.c ---- */
/* Renders an identity name from a CA's template ({cn}, {serial},
 * {fingerprint}: its first 16 hex digits). WEFT_EINVAL: not a valid name. */
int ctl_ca_render_name(const char *tmpl, const char *cn, const char *serial, const char *fp,
                       char *out, size_t cap);
#endif
