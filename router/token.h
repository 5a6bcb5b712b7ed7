/* Service-token checks (docs/dataplane.md "Service tokens"): offline, with
 * the controller's key from the network map. */
#ifndef RT_TOKEN_H
#define RT_TOKEN_H

#include "router/enforce.h"
#include "router/map.h"

typedef struct {
    char service_id[RT_ID_CAP];
    char service_name[RT_NAME_CAP];
    long long exp;
    long long iat; /* issued at (0: absent): withdrawn grants refuse tokens issued before */
    rt_limits lim; /* "lim" claim: behaviour limits (docs/policies.md) */
    rt_hwbind hw;  /* "hw" claim: the device binding */
    char roles[RT_SEL_CAP]; /* "roles" claim as "#a,#b" (router policies) */
    int roles_known;        /* the claim was there */
} rt_token_info;

/* Checks token for identity_id (from the session's certificate) doing act
 * ("dial" or "bind") on service (a name) in network. Returns 0 and fills info,
 * or WEFT_ETOKEN, WEFT_ETOKENEXPIRED, WEFT_EDENIED, WEFT_EDISABLED or
 * WEFT_ENOTFOUND with a sentence in err that says what is wrong. */
int rt_token_check(const rt_map *m, const char *network, const char *token,
                   const char *identity_id, const char *act, const char *service, long long now,
                   rt_token_info *info, char *err, size_t errcap);

#endif
