/* Compact JWS with EdDSA (Ed25519). Verification is strict: exactly the
 * algorithm we sign with, canonical base64url, JSON objects without duplicate
 * keys, and the signature checked before any claim is looked at. */
#include "proto/jwt.h"

#include <stdlib.h>
#include <string.h>

#include "weft/errors.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define JSON_OUT (JSON_COMPACT | JSON_SORT_KEYS)

/* The three parts of a token, pointing into the caller's string. */
typedef struct {
    const char *part[3];
    size_t len[3];
    size_t signed_len; /* "<header>.<payload>" */
} jws_parts;

/* ---- encoding ---- */

static char *b64_encode(const unsigned char *bin, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, B64);
    char *s = malloc(cap);

    if (s != NULL)
        sodium_bin2base64(s, cap, bin, len, B64);
    return s;
}

static char *json_b64(const json_t *obj)
{
    char *txt = json_dumps(obj, JSON_OUT);
    char *s;

    if (txt == NULL)
        return NULL;
    s = b64_encode((const unsigned char *)txt, strlen(txt));
    free(txt);
    return s;
}

/* Joins a and b with a dot into a fresh string. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);

    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    s[la] = '.';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static char *header_b64(void)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", "EdDSA", "typ", "JWT");
    char *s = h != NULL ? json_b64(h) : NULL;

    json_decref(h);
    return s;
}

int pr_jwt_sign(const json_t *claims, const unsigned char sk[crypto_sign_SECRETKEYBYTES], char **out)
{
    unsigned char sig[crypto_sign_BYTES];
    char *h = NULL, *p = NULL, *input = NULL, *s = NULL;
    int ret = WEFT_ENOMEM;

    if (claims == NULL || !json_is_object(claims) || sk == NULL || out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (sodium_init() < 0)
        return WEFT_ECRYPTO;
    if ((h = header_b64()) == NULL || (p = json_b64(claims)) == NULL || (input = join(h, p)) == NULL)
        goto out;
    ret = WEFT_ECRYPTO;
    if (crypto_sign_detached(sig, NULL, (const unsigned char *)input, strlen(input), sk) != 0)
        goto out;
    ret = WEFT_ENOMEM;
    if ((s = b64_encode(sig, sizeof(sig))) == NULL || (*out = join(input, s)) == NULL)
        goto out;
    ret = strlen(*out) <= PR_JWT_MAX ? 0 : WEFT_ETOOBIG;
    if (ret < 0) {
        free(*out);
        *out = NULL;
    }
out:
    sodium_memzero(sig, sizeof(sig));
    free(s);
    free(input);
    free(p);
    free(h);
    return ret;
}

/* ---- decoding ---- */

/* Splits tok into exactly three non-empty dot-separated parts. */
static int split(const char *tok, jws_parts *jp)
{
    size_t len, start = 0, n = 0;

    if (tok == NULL)
        return WEFT_ETOKEN;
    len = strnlen(tok, PR_JWT_MAX + 1);
    if (len > PR_JWT_MAX)
        return WEFT_ETOKEN;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && tok[i] != '.')
            continue;
        if (n == 3 || i == start)
            return WEFT_ETOKEN; /* a fourth part, or an empty one */
        jp->part[n] = tok + start;
        jp->len[n++] = i - start;
        start = i + 1;
    }
    if (n != 3)
        return WEFT_ETOKEN;
    jp->signed_len = jp->len[0] + 1 + jp->len[1];
    return 0;
}

/* Decodes exactly n characters of base64url into at most cap bytes. */
static int b64_decode(const char *s, size_t n, unsigned char *bin, size_t cap, size_t *outlen)
{
    if (sodium_base642bin(bin, cap, s, n, NULL, outlen, NULL, B64) != 0)
        return WEFT_ETOKEN;
    return 0;
}

/* Decodes a base64url part holding a JSON object (duplicate keys refused). */
static int decode_object(const char *s, size_t n, json_t **out)
{
    unsigned char *bin = malloc(n + 1);
    size_t blen = 0;
    json_t *j = NULL;
    int ret;

    if (bin == NULL)
        return WEFT_ENOMEM;
    ret = b64_decode(s, n, bin, n + 1, &blen);
    if (ret == 0)
        j = json_loadb((const char *)bin, blen, JSON_REJECT_DUPLICATES, NULL);
    if (ret == 0 && !json_is_object(j))
        ret = WEFT_ETOKEN;
    if (ret == 0)
        *out = j;
    else
        json_decref(j);
    free(bin);
    return ret;
}

/* Only our own header is acceptable: alg EdDSA, typ JWT if present, nothing critical. */
static int check_header(const jws_parts *jp)
{
    json_t *h = NULL;
    const json_t *typ;
    int ret;

    if ((ret = decode_object(jp->part[0], jp->len[0], &h)) < 0)
        return ret;
    typ = json_object_get(h, "typ");
    if (!json_is_string(json_object_get(h, "alg")) ||
        strcmp(json_string_value(json_object_get(h, "alg")), "EdDSA") != 0)
        ret = WEFT_ETOKEN;
    else if (typ != NULL && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0))
        ret = WEFT_ETOKEN;
    else if (json_object_get(h, "crit") != NULL)
        ret = WEFT_ETOKEN;
    json_decref(h);
    return ret;
}

static int decode_sig(const jws_parts *jp, unsigned char sig[crypto_sign_BYTES])
{
    size_t n = 0;

    if (b64_decode(jp->part[2], jp->len[2], sig, crypto_sign_BYTES, &n) < 0 || n != crypto_sign_BYTES)
        return WEFT_ETOKEN;
    return 0;
}

/* Structure, header and signature encoding; the signature itself only if pk is set. */
static int decode(const char *tok, const unsigned char *pk, json_t **claims)
{
    unsigned char sig[crypto_sign_BYTES];
    jws_parts jp;
    int ret;

    if (claims == NULL)
        return WEFT_EINVAL;
    *claims = NULL;
    if (sodium_init() < 0)
        return WEFT_ECRYPTO;
    if ((ret = split(tok, &jp)) < 0 || (ret = check_header(&jp)) < 0 || (ret = decode_sig(&jp, sig)) < 0)
        return ret;
    if (pk != NULL &&
        crypto_sign_verify_detached(sig, (const unsigned char *)tok, jp.signed_len, pk) != 0)
        return WEFT_ETOKEN;
    return decode_object(jp.part[1], jp.len[1], claims);
}

int pr_jwt_verify(const char *tok, const unsigned char pk[crypto_sign_PUBLICKEYBYTES], json_t **claims)
{
    if (pk == NULL)
        return WEFT_EINVAL;
    return decode(tok, pk, claims);
}

int pr_jwt_decode_unverified(const char *tok, json_t **claims)
{
    return decode(tok, NULL, claims);
}

int pr_jwt_check_exp(const json_t *claims, long long now)
{
    const json_t *exp = json_object_get(claims, "exp");

    if (!json_is_integer(exp))
        return WEFT_ETOKEN;
    return json_integer_value(exp) <= now ? WEFT_ETOKENEXPIRED : 0;
}
