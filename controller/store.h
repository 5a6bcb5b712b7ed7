/* The controller's store: every SQL statement lives behind this interface, so
 * that a PostgreSQL implementation is a second file, not a rewrite.
 * The default implementation is SQLite (store_sqlite.c): WAL mode,
 * synchronous=FULL (a write the API acknowledged survives kill -9 and power
 * loss), foreign keys on, versioned migrations in the meta table.
 *
 * Records cross this interface as jansson objects shaped like the REST API's
 * JSON (docs/api/openapi.yaml), so handlers pass them through. Collections:
 *   "identities": id, name, roles[], binding ("none"|"exact"|"iccid"|"imei"),
 *                 imei, iccid, admin (bool), disabled (bool), enrolled (bool),
 *                 cert_fingerprint, created_at, updated_at
 *   "services":   id, name, roles[], intercept ("tcp:HOST:PORT"), host, created_at, updated_at
 *   "policies":   id, name, type ("dial"|"bind"), semantic ("AnyOf"|"AllOf"),
 *                 identity_roles[], service_roles[], created_at, updated_at
 *   "routers":    id, name, roles[], enrolled (bool), edge_listen, link_listen,
 *                 cert_fingerprint, created_at, updated_at
 * Timestamps are RFC 3339 UTC strings. Names are unique per collection. */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <jansson.h>
#include <stdint.h>

typedef struct ctl_store ctl_store;

/* Opens (creating and migrating as needed) the store at path. WEFT_EVERSION when
 * the file's schema is newer than this binary knows (it is left untouched). */
int ctl_store_open(const char *path, ctl_store **out);
void ctl_store_close(ctl_store *s); /* NULL is a no-op */
int ctl_store_schema_version(ctl_store *s);

typedef struct {
    int limit;        /* 1..1000; 0 = 100 */
    int offset;       /* >= 0 */
    const char *name; /* NULL, or a filter: exact name, or a prefix ending in '*' */
    const char *role; /* NULL, or only records carrying this role */
} ctl_list_opts;

/* obj must carry "id" and "name"; the store sets created_at/updated_at.
 * WEFT_EEXISTS when the name or id is taken. */
int ctl_store_create(ctl_store *s, const char *coll, json_t *obj);
/* By id, or by name when no id matches. *out is a new reference. WEFT_ENOTFOUND. */
int ctl_store_get(ctl_store *s, const char *coll, const char *id_or_name, json_t **out);
/* *items is a new array reference; *total counts all matches ignoring paging. */
int ctl_store_list(ctl_store *s, const char *coll, const ctl_list_opts *o, json_t **items,
                   int64_t *total);
/* Merges fields into the record with this id (updated_at refreshed). */
int ctl_store_update(ctl_store *s, const char *coll, const char *id, json_t *fields);
int ctl_store_delete(ctl_store *s, const char *coll, const char *id);

/* Enrolment tokens (one-time): kind "identity" or "router". */
/* WEFT_ENOTFOUND when the subject does not exist; WEFT_EEXISTS for a jti reused.
 * expires_at is Unix seconds. Deleting the subject deletes its tokens. */
int ctl_store_token_add(ctl_store *s, const char *jti, const char *kind, const char *subject_id,
                        int64_t expires_at);
/* In one transaction: the token exists for this subject, is unused and unexpired
 * at now, and the subject exists, is not disabled and is not enrolled; marks the
 * token used and merges `enrolled_fields` (e.g. enrolled, cert_fingerprint,
 * imei, iccid) into the subject. Errors: WEFT_ETOKEN (unknown), WEFT_ETOKENUSED,
 * WEFT_ETOKENEXPIRED, WEFT_EDISABLED, WEFT_ENOTFOUND, WEFT_ECONFLICT (already enrolled). */
int ctl_store_token_consume(ctl_store *s, const char *jti, const char *kind,
                            const char *subject_id, int64_t now, json_t *enrolled_fields);
/* The newest unused enrolment token of a subject (for "show"), or WEFT_ENOTFOUND:
 * {"jti", "kind", "subject_id", "expires_at" (Unix seconds, as given to
 * token_add, possibly past), "created_at" (RFC 3339)}. */
int ctl_store_token_pending(ctl_store *s, const char *subject_id, json_t **out);

/* Small key/value settings (controller signing key id, network name, ...). */
int ctl_store_setting_get(ctl_store *s, const char *key, char **value);
int ctl_store_setting_set(ctl_store *s, const char *key, const char *value);
/* A setting holding a JSON object: *out (a new reference); WEFT_ENOTFOUND
 * when there is none, WEFT_EJSON when it is not a JSON object (*out NULL). */
int ctl_store_setting_object(ctl_store *s, const char *key, json_t **out);

/* Anomaly baselines (docs/policies.md "Anomaly detection"), one per
 * identity: {"windows", "dials", "svcs", "circuits", "bytes", "hours",
 * "first_s", "updated_at"} (dials, svcs and bytes are averages; hours a
 * 24-bit mask). WEFT_ENOTFOUND when none was stored. Deleting the identity
 * deletes it. */
int ctl_store_baseline_get(ctl_store *s, const char *identity_id, json_t **out);
/* Forgets identity_id's baseline (`weft anomaly forget`): it is learnt
 * afresh. 0, or WEFT_ENOTFOUND when none was stored. */
int ctl_store_baseline_delete(ctl_store *s, const char *identity_id);
/* The last report of router_id stored: its boot id ("" none) and seq (0). */
int ctl_store_baseline_mark(ctl_store *s, const char *router_id, char *boot, size_t cap,
                            int64_t *seq);
/* In one transaction (durable when it returns 0): each baseline of the
 * object {identity id -> baseline as above, without updated_at} replaces the
 * stored one (an identity that does not exist is skipped), and router_id's
 * mark becomes (boot, seq). */
int ctl_store_baseline_put(ctl_store *s, const char *router_id, const char *boot, int64_t seq,
                           const json_t *baselines);

/* Groups the writes that follow into one transaction, committed (commit != 0)
 * or rolled back by batch_end: for bulk imports, where one fsync per record
 * is too slow. A write that fails inside a batch is undone alone and the
 * batch goes on. Nothing is durable before batch_end returns 0. */
int ctl_store_batch_begin(ctl_store *s);
int ctl_store_batch_end(ctl_store *s, int commit);

#endif
