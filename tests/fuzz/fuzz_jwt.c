/* Fuzzes token parsing: verification with a fixed key, and the unverified
 * decode a device uses before it holds the controller's key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jwt.h"

/* The seed corpus is signed with the key from this seed, so that the fuzzer
 * starts from tokens that pass the signature check. */
static const unsigned char seed[crypto_sign_SEEDBYTES] = "weft-fuzz-jwt-fixed-key-seed-32";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    static int ready;
    json_t *claims = NULL;
    char *tok;

    if (!ready) {
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(pk, sk, seed);
        ready = 1;
    }
    if ((tok = malloc(size + 1)) == NULL)
        return 0;
    memcpy(tok, data, size);
    tok[size] = '\0';
    if (pr_jwt_verify(tok, pk, &claims) == 0) {
        (void)pr_jwt_check_exp(claims, 0);
        json_decref(claims);
    }
    claims = NULL;
    if (pr_jwt_decode_unverified(tok, &claims) == 0) {
        /* Whatever decodes must re-encode and sign. */
        char *again = NULL;

        if (pr_jwt_sign(claims, sk, &again) == 0)
            free(again);
        json_decref(claims);
    }
    free(tok);
    return 0;
}
