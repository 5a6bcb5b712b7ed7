/* Compact JWS (JWT) with alg EdDSA (Ed25519, libsodium), base64url without
 * padding (sodium_bin2base64), claims as JSON (jansson).
 * Used for enrolment tokens (and, later, service tokens). */
#ifndef PR_JWT_H
#define PR_JWT_H

#include <jansson.h>
#include <sodium.h>

#define PR_JWT_MAX 8192 /* longer tokens are rejected before decoding */

/* Signs claims with an Ed25519 secret key; *out is malloc'd. */
int pr_jwt_sign(const json_t *claims, const unsigned char sk[crypto_sign_SECRETKEYBYTES], char **out);
/* Checks structure, header (alg EdDSA, typ JWT) and signature; on success *claims
 * is a new reference. WEFT_ETOKEN for anything malformed or a bad signature.
 * Expiry is the caller's business (pr_jwt_check_exp). */
int pr_jwt_verify(const char *tok, const unsigned char pk[crypto_sign_PUBLICKEYBYTES], json_t **claims);
/* Decodes the claims without checking the signature: only for a device reading
 * the controller URL and CA fingerprint before it has any key to check with. */
int pr_jwt_decode_unverified(const char *tok, json_t **claims);
/* WEFT_ETOKENEXPIRED if claims.exp <= now, WEFT_ETOKEN if exp is missing. */
int pr_jwt_check_exp(const json_t *claims, long long now);

#endif
