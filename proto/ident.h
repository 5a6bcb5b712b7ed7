/* Identity URIs carried in certificate URI SANs:
 *   spiffe://<trust-domain>/identity/<id>     an edge or admin identity
 *   spiffe://<trust-domain>/router/<id>       a router
 *   spiffe://<trust-domain>/controller/<name> the controller
 * Ids are [a-z0-9-] only, 1..64 chars; the trust domain is the network name. */
#ifndef PR_IDENT_H
#define PR_IDENT_H

#include <stddef.h>

enum pr_ident_kind { PR_IDENT_IDENTITY = 1, PR_IDENT_ROUTER, PR_IDENT_CONTROLLER };

#define PR_ID_MAX           64
#define PR_TRUST_DOMAIN_MAX 64
#define PR_URI_MAX          192

int pr_ident_format(int kind, const char *trust_domain, const char *id, char *out, size_t cap);
/* Parses a URI; WEFT_EINVAL if it is not of the forms above. */
int pr_ident_parse(const char *uri, int *kind, char *trust_domain, size_t td_cap, char *id,
                   size_t id_cap);
/* 1 if s is a valid id or trust-domain label. */
int pr_ident_valid_id(const char *s);
/* Fills out (cap >= 13) with a fresh random 12-char id [a-z0-9]. */
void pr_ident_new_id(char *out, size_t cap);

#endif
