/* The network map routers forward by (docs/dataplane.md "Control channel and
 * the network map"): routers, services, live terminators and revoked
 * identities, at a version. Built from the store at start, then kept current
 * record by record: every change bumps the version by one and is handed to
 * the delta callback as a CTL_MAP_DELTA body whose base is the version before.
 * Terminators are in memory only, each owned by the control connection of the
 * router that reported it; so are links, made of the routers' link reports.
 * Deleting a service removes its terminators, deleting a router clears the
 * hosted_by of its services (in the store too) and removes its links, each in
 * the same delta as the deletion. */
#ifndef CTL_NETMAP_H
#define CTL_NETMAP_H

#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/store.h"

typedef struct ctl_netmap ctl_netmap;

/* Called with each delta (JSON text, len bytes), synchronously, in order. */
typedef void (*ctl_netmap_delta_cb)(void *arg, const char *json, size_t len);

/* Builds the map from the store at version 1; pk is the token-signing key. */
int ctl_netmap_new(ctl_store *s, const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
                   ctl_netmap **out);
void ctl_netmap_free(ctl_netmap *m); /* NULL is a no-op */
void ctl_netmap_set_delta_cb(ctl_netmap *m, ctl_netmap_delta_cb cb, void *arg);
uint64_t ctl_netmap_version(const ctl_netmap *m);

/* The CTL_MAP_FULL body; *json is malloc'd. */
int ctl_netmap_full(ctl_netmap *m, char **json, size_t *len);

/* Re-reads one record of coll ("identities", "services" or "routers") by id
 * and emits a delta when the map changed (a deleted record is removed).
 * Other collections are ignored. */
int ctl_netmap_touch(ctl_netmap *m, const char *coll, const char *id);

/* A deleted identity stays in "revoked" (its certificate is still valid)
 * for this long after the deletion: the longest certificate lifetime
 * (default CTL_CERT_VALIDITY_DEFAULT). Kept across restarts in the store. */
void ctl_netmap_set_revoke_ttl(ctl_netmap *m, int64_t seconds);

/* Each pair {"identity", "service" (ids)} lost the right to act
 * ("dial"|"bind") at Unix time at: one delta with a "grant_revoked" put op
 * {id, identity, service, act, at, until, cause} per pair; routers close the
 * pair's circuits and refuse its tokens issued at or before at. until is when
 * every such token has expired (the entry is then dropped). cause (NULL:
 * none) says why in a few words for the edges told (at most
 * CTL_GRANT_CAUSE_MAX bytes, cut). Full maps carry the live entries in
 * "grants_revoked". */
#define CTL_GRANT_CAUSE_MAX 127
int ctl_netmap_grants_revoke(ctl_netmap *m, const json_t *pairs, const char *act, int64_t at,
                             int64_t until, const char *cause);

/* A router's control connection came up or went down. */
int ctl_netmap_router_online(ctl_netmap *m, const char *router_id, int online);
int ctl_netmap_router_is_online(const ctl_netmap *m, const char *router_id);

/* A router's CTL_LINK_REPORT body {"links":[{"peer","rtt_us","up","queue"}]}
 * replaces what it said before; the map's links (one per router pair, a < b)
 * join both ends' reports: RTT the mean of those measured, queue the deeper,
 * up only when both routers are online and both say up. A change is published
 * in a delta ("link" ops) when up flips, the RTT moves by 10 % and 100 us or
 * the queue fills or empties; views see every measurement. A router going
 * offline takes its report with it, so its links go down. WEFT_EINVAL for a
 * malformed report, WEFT_ENOTFOUND for a router not in the map. */
int ctl_netmap_link_report(ctl_netmap *m, const char *router_id, const json_t *report);
/* Views (new arrays sorted by id): links as measured now
 * ({"id","a","b","rtt_us","up","queue"}) and the map's routers. */
json_t *ctl_netmap_links(const ctl_netmap *m);
json_t *ctl_netmap_routers(const ctl_netmap *m);
size_t ctl_netmap_online_count(const ctl_netmap *m);
size_t ctl_netmap_links_up(const ctl_netmap *m);

/* Network-wide anomaly settings (docs/policies.md "Anomaly detection"): an
 * object of proto/anomaly.h keys, saved in the store setting
 * CTL_ANOMALY_SETTING (read at start). Full maps carry it as "anomaly"; a
 * change is a delta with no ops and "anomaly" (null: none, routers use their
 * router.json). The caller saves; settings NULL or empty: none. */
#define CTL_ANOMALY_SETTING "anomaly"
int ctl_netmap_set_anomaly(ctl_netmap *m, const json_t *settings);
const json_t *ctl_netmap_anomaly(const ctl_netmap *m); /* borrowed, NULL: none */

/* Terminators reported by a router (CTL_TERM_ADD / CTL_TERM_REMOVE bodies:
 * id, service, identity, router). owner is the connection that reported it;
 * WEFT_EINVAL for a malformed body, WEFT_ENOTFOUND for an unknown service,
 * WEFT_EDENIED for a terminator id another owner holds. */
int ctl_netmap_term_put(ctl_netmap *m, const void *owner, const json_t *term);
int ctl_netmap_term_del(ctl_netmap *m, const void *owner, const char *id);
/* Removes every terminator of owner in one delta (its connection closed). */
void ctl_netmap_terms_drop(ctl_netmap *m, const void *owner);

#endif
