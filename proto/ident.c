/* Identity URIs (SPIFFE form) carried in certificate URI SANs.
 *
 * The parser is strict on purpose: the URI decides what a peer is allowed to
 * be (edge, router or controller), so anything but the exact forms in
 * proto/ident.h is refused rather than normalised. */
#include "proto/ident.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "weft/errors.h"

#define SCHEME     "spiffe://"
#define NEW_ID_LEN 12

static const struct {
    int kind;
    const char *seg;
} kinds[] = {
    {PR_IDENT_IDENTITY, "identity"},
    {PR_IDENT_ROUTER, "router"},
    {PR_IDENT_CONTROLLER, "controller"},
};

static const char *kind_segment(int kind)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == kind)
            return kinds[i].seg;
    return NULL;
}

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* [a-z0-9-], 1..PR_ID_MAX bytes, looking at no more than n bytes of s. */
static int valid_span(const char *s, size_t n)
{
    if (n == 0 || n > PR_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i]))
            return 0;
    return 1;
}

int pr_ident_valid_id(const char *s)
{
    if (s == NULL)
        return 0;
    return valid_span(s, strnlen(s, PR_ID_MAX + 1));
}

/* A trust domain is one or more dot-separated labels, each a valid id, at most
 * PR_TRUST_DOMAIN_MAX bytes in all ("acme", "acme.example"). */
static int valid_td(const char *s, size_t n)
{
    size_t start = 0;

    if (n == 0 || n > PR_TRUST_DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!valid_span(s + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

int pr_ident_format(int kind, const char *trust_domain, const char *id, char *out, size_t cap)
{
    const char *seg = kind_segment(kind);
    int n;

    if (seg == NULL || trust_domain == NULL || out == NULL ||
        !valid_td(trust_domain, strnlen(trust_domain, PR_TRUST_DOMAIN_MAX + 1)) ||
        !pr_ident_valid_id(id))
        return WEFT_EINVAL;
    n = snprintf(out, cap, SCHEME "%s/%s/%s", trust_domain, seg, id);
    if (n < 0 || (size_t)n >= cap)
        return WEFT_ETOOBIG;
    return 0;
}

static int copy_out(const char *s, size_t n, char *out, size_t cap)
{
    if (out == NULL)
        return 0;
    if (n + 1 > cap)
        return WEFT_ETOOBIG;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* Splits "<kind>/<id>" after the trust domain; the id may hold no '/'. */
static int parse_path(const char *p, int *kind, const char **id)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].seg);
        if (strncmp(p, kinds[i].seg, n) == 0 && p[n] == '/') {
            *kind = kinds[i].kind;
            *id = p + n + 1;
            return pr_ident_valid_id(*id) ? 0 : WEFT_EINVAL;
        }
    }
    return WEFT_EINVAL;
}

int pr_ident_parse(const char *uri, int *kind, char *trust_domain, size_t td_cap, char *id,
                   size_t id_cap)
{
    const char *td, *slash, *idp;
    int k, rc;

    if (uri == NULL || strnlen(uri, PR_URI_MAX + 1) > PR_URI_MAX)
        return WEFT_EINVAL;
    if (strncmp(uri, SCHEME, strlen(SCHEME)) != 0)
        return WEFT_EINVAL;
    td = uri + strlen(SCHEME);
    slash = strchr(td, '/');
    if (slash == NULL || !valid_td(td, (size_t)(slash - td)))
        return WEFT_EINVAL;
    if (parse_path(slash + 1, &k, &idp) < 0)
        return WEFT_EINVAL;
    rc = copy_out(td, (size_t)(slash - td), trust_domain, td_cap);
    if (rc == 0)
        rc = copy_out(idp, strlen(idp), id, id_cap);
    if (rc == 0 && kind != NULL)
        *kind = k;
    return rc;
}

void pr_ident_new_id(char *out, size_t cap)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = NEW_ID_LEN;

    if (out == NULL || cap == 0)
        return;
    /* Ids name identities in certificates: never hand out a guessable one. */
    if (sodium_init() < 0)
        abort();
    if (n > cap - 1)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[randombytes_uniform((uint32_t)(sizeof(alphabet) - 1))];
    out[n] = '\0';
}
