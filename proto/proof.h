/* Proof of possession of a factory key (bring-your-own CA, docs/bootstrap.md).
 * A device enrolling with a certificate from a manufacturing CA signs, with
 * that certificate's key, the message
 *     "weft-enroll-factory\n" <network CA fingerprint> "\n" <CSR PEM>
 * The signature binds the new key (in the CSR) to the factory certificate and
 * to this network: replayed, it only yields a certificate for a key the
 * replayer does not hold. Keys: EC (ECDSA, SHA-256), RSA (PKCS#1 v1.5,
 * SHA-256) or Ed25519. The signature travels as standard base64. */
#ifndef PR_PROOF_H
#define PR_PROOF_H

#include <stddef.h>

#define PR_PROOF_MAX 1024 /* base64 characters of a signature, at most */

/* *sig_b64 is malloc'd. WEFT_EINVAL: key_pem is not a private key. */
int pr_proof_sign(const char *key_pem, const char *ca_fp, const char *csr_pem, char **sig_b64);
/* 0 when sig_b64 is the first certificate's key's signature of the message;
 * WEFT_EDENIED when it is not; WEFT_EINVAL for malformed input. */
int pr_proof_check(const char *cert_pem, const char *ca_fp, const char *csr_pem,
                   const char *sig_b64);

#endif
