/* The router's copy of the network map (docs/dataplane.md "Control channel
 * and the network map"): routers, services, terminators, revoked identities
 * and the controller's token-signing key, at a version. Full maps replace the
 * copy; deltas apply only on top of their base version, all or nothing. */
#ifndef RT_MAP_H
#define RT_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sodium.h>

#include "proto/anomaly.h"

#define RT_ID_CAP 65
#define RT_NAME_CAP 129
#define RT_ADDR_CAP 272 /* "tcp:" + host + port */
#define RT_SEL_CAP 1024 /* a joined selector list */
#define RT_SVC_SEL_CAP 256

/* Every element starts with its id so that one look-up serves all kinds. */
typedef struct {
    char id[RT_ID_CAP];
    char name[RT_NAME_CAP];
    char edge_listen[RT_ADDR_CAP];
    char link_listen[RT_ADDR_CAP];
    int online;
    int online_known; /* "online" was in the map (it is absent in older maps) */
    /* Router policies (docs/policies.md), selector lists joined by ','; an
     * AllOf entry joins its selectors by '&'. policed: "restricted" was in
     * the map (some router policy exists); then an identity that matches
     * restricted may use this router only when it matches allow. */
    char roles[RT_SEL_CAP]; /* this router's roles, for services' "routers" */
    char allow[RT_SEL_CAP];
    char restricted[RT_SEL_CAP];
    int policed;
} rt_map_router;

typedef struct {
    char id[RT_ID_CAP];
    char name[RT_NAME_CAP];
    char intercept[RT_ADDR_CAP];
    char host[RT_ADDR_CAP];
    char hosted_by[RT_NAME_CAP]; /* router id or name, or "" */
    char multipath[16];          /* "failover" (also when absent), "split" or "redundant" */
    /* Service-router policies: the routers that may carry it, as router
     * selectors ("#role", "@id", "a&b") joined by ','; routers_set 0: all. */
    char routers[RT_SVC_SEL_CAP];
    int routers_set;
} rt_map_service;

typedef struct {
    char id[RT_ID_CAP];
    char service[RT_ID_CAP];
    char router[RT_ID_CAP];
    char identity[RT_ID_CAP];
} rt_map_term;

typedef struct {
    char id[RT_ID_CAP];
} rt_map_revoked;

/* A withdrawn grant (docs/dataplane.md "Withdrawn grants"): identity may no
 * longer act ("dial"|"bind") on service (an id) with tokens issued at or
 * before at; until is when the last of those tokens expires. cause says why
 * in a few words (the policy), "" when the controller did not say. */
#define RT_GRANT_ID_CAP 160
#define RT_GRANT_CAUSE_CAP 128
typedef struct {
    char id[RT_GRANT_ID_CAP]; /* "identity|service|act" */
    char identity[RT_ID_CAP];
    char service[RT_ID_CAP];
    char act[8];
    long long at, until;
    char cause[RT_GRANT_CAUSE_CAP];
} rt_map_grant;

/* A link between two routers as the controller reports it; id is "a|b" with
 * a < b so that either direction names the same link. */
#define RT_LINK_ID_CAP (2 * RT_ID_CAP)
typedef struct {
    char id[RT_LINK_ID_CAP];
    char a[RT_ID_CAP];
    char b[RT_ID_CAP];
    uint64_t rtt_us;
    int up;
} rt_map_link;

/* Elements in an array, indexed by id in an open-addressing hash table
 * (slot = element index + 1; 0 empty; RT_VEC_TOMB a deleted slot), so that
 * a 100,000-entry map applies in linear time and look-ups are O(1). */
#define RT_VEC_TOMB ((size_t)-1)
typedef struct {
    void *v;
    size_t n, cap, esz;
    size_t *idx;
    size_t icap, iused; /* slots (power of two, or 0) and slots not empty (with tombstones) */
} rt_vec;

typedef struct {
    uint64_t version; /* 0: no map yet */
    int have_key;
    uint8_t signing_key[crypto_sign_PUBLICKEYBYTES];
    rt_vec routers, services, terms, revoked, links, grants;
    /* Network-wide anomaly settings, the map's "anomaly" object (absent in a
     * full map: none; a delta replaces them, or clears them with null). */
    pr_anom_set anomaly;
} rt_map;

void rt_map_init(rt_map *m);
void rt_map_free(rt_map *m);

/* Replaces the map with a CTL_MAP_FULL body. On error the map is unchanged
 * and err says what was wrong. */
int rt_map_apply_full(rt_map *m, const char *json, size_t len, char *err, size_t errcap);
/* Applies a CTL_MAP_DELTA body. WEFT_ECONFLICT when base is not our version
 * (the caller asks for a full map again); WEFT_EPROTO / WEFT_EJSON for a bad
 * delta. Either all ops apply or none. */
int rt_map_apply_delta(rt_map *m, const char *json, size_t len, char *err, size_t errcap);

const rt_map_router *rt_map_router_get(const rt_map *m, const char *id);
const rt_map_service *rt_map_service_get(const rt_map *m, const char *id);
const rt_map_service *rt_map_service_by_name(const rt_map *m, const char *name);
const rt_map_term *rt_map_term_get(const rt_map *m, const char *id);
int rt_map_is_revoked(const rt_map *m, const char *identity_id);
/* 1 when a token of identity for act on service_id issued at iat is no
 * longer good (a withdrawn grant), at Unix time now. */
int rt_map_grant_withdrawn(const rt_map *m, const char *identity, const char *service_id,
                           const char *act, long long iat, long long now);
/* The withdrawn grant of identity for act on service_id, or NULL. */
const rt_map_grant *rt_map_grant_get(const rt_map *m, const char *identity, const char *service_id,
                                     const char *act);
/* 1 when the selector list (as in rt_map_router) selects a record with this
 * id and roles (a ','-joined list); roles NULL: not known, and a "#role"
 * selector then counts as a match (the caller decides later). */
int rt_sel_match(const char *list, const char *id, const char *roles);
/* 1 when identity (roles joined by ',', NULL when not known yet) may use
 * router router_id under the map's router policies; with roles NULL only a
 * refusal that cannot depend on the roles is made. */
int rt_map_identity_allowed(const rt_map *m, const char *router_id, const char *identity,
                            const char *roles);
/* 1 when svc may be carried by router router_id (service-router policies). */
int rt_map_service_router_ok(const rt_map *m, const rt_map_service *svc, const char *router_id);
/* The i-th terminator of service_id (0, 1, ...), or NULL past the last. */
const rt_map_term *rt_map_term_of(const rt_map *m, const char *service_id, size_t i);
/* Reads anomaly settings (proto/anomaly.h) from the keys "<prefix><name>" of
 * o (NULL or not an object: none). A key of the wrong type or out of range is
 * left out and named in *bad (the first one; may be NULL): WEFT_EINVAL, with
 * the good keys read all the same. */
int rt_anom_set_from_json(const json_t *o, const char *prefix, pr_anom_set *out, const char **bad);
size_t rt_map_count(const rt_vec *v);
const void *rt_map_at(const rt_vec *v, size_t i);

#endif
