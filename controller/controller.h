/* weft-controller internals shared by its own files (not a public interface):
 * configuration, the running controller's state, the API router and the
 * helpers every handler uses to validate requests and answer them. */
#ifndef CTL_CONTROLLER_H
#define CTL_CONTROLLER_H

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>

#include "controller/http.h"
#include "controller/store.h"
#include "proto/bucket.h"
#include "proto/pki.h"

#define CTL_VERSION               "0.1.0"
#define CTL_API_VERSION           1
#define CTL_NAME_MAX              128
#define CTL_ROLE_MAX              64
#define CTL_ROLES_MAX             64
#define CTL_TOKEN_TTL_DEFAULT     86400
#define CTL_TOKEN_TTL_MAX         2592000
#define CTL_CERT_VALIDITY_DEFAULT (30 * 86400)
#define CTL_ENROLL_AUD            "weft-enroll"
#define CTL_SVC_TOKEN_AUD         "weft-service"
#define CTL_SVC_TOKEN_TTL_DEFAULT (15 * 60)
#define CTL_SVC_TOKEN_TTL_MAX     86400
#define CTL_CONTROL_LISTEN        "127.0.0.1:1281"
#define CTL_EDGE_REFRESH_S        60

/* Formats an error message (truncating quietly: messages are for people). */
void ctl_errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- config.c: controller.json ---- */
typedef struct {
    char dir[PATH_MAX];
    char name[65];       /* network name = trust domain */
    char listen[256];    /* HOST:PORT the API listens on */
    char advertise[256]; /* HOST:PORT others reach us at (put in tokens) */
    char url[300];       /* https://<advertise> */
    char control_listen[256]; /* HOST:PORT the control channel listens on */
    char control[256];        /* HOST:PORT routers dial (advertise-aware) */
    int64_t service_token_ttl; /* lifetime of service tokens, seconds */
    char log_level[16];
    int64_t token_ttl;     /* default enrolment token lifetime, seconds */
    int64_t cert_validity; /* lifetime of certificates issued at enrolment, seconds */
    int64_t admit_enroll_rate, admit_enroll_burst;   /* per second (admit.h); rate 0: none */
    int64_t admit_session_rate, admit_session_burst; /* GET /v1/edge/session, the same */
    /* Absolute paths of the files in dir. */
    char ca_cert[PATH_MAX];
    char ca_key[PATH_MAX];
    char server_cert[PATH_MAX];
    char server_key[PATH_MAX];
    char signing_key[PATH_MAX];
    char db[PATH_MAX];
    char admin[PATH_MAX];
} ctl_config;

#define CTL_CONFIG_FILE "controller.json"

/* Fills defaults for dir (name "weft", listen 127.0.0.1:1280, relative file names). */
int ctl_config_defaults(ctl_config *cfg, const char *dir);
/* Sets listen/advertise/url; an unspecified advertise derives from listen. */
int ctl_config_set_addrs(ctl_config *cfg, const char *listen, const char *advertise, char *err,
                         size_t errcap);
/* Sets control_listen and the control address routers dial: a wildcard host
 * is replaced by the advertised host. Call after ctl_config_set_addrs. */
int ctl_config_set_control(ctl_config *cfg, const char *control_listen, char *err, size_t errcap);
int ctl_config_load(ctl_config *cfg, const char *dir, char *err, size_t errcap);
int ctl_config_save(const ctl_config *cfg);

/* ---- init.c ---- */
typedef struct {
    const char *dir;
    const char *listen;    /* NULL: default */
    const char *advertise; /* NULL: derived from listen */
    const char *name;      /* NULL: "weft" */
    const char *ca_passphrase; /* NULL: ca.key in clear (0600); else encrypted with it */
    int64_t cert_ttl;          /* lifetime of issued certificates, seconds; 0: default */
} ctl_init_opts;

int ctl_init(const ctl_init_opts *o, FILE *out, char *err, size_t errcap);
/* The Ed25519 token signing key: 128 hex characters (libsodium secret key), 0600. */
int ctl_signing_key_load(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES]);
int ctl_signing_key_save(const char *path, const unsigned char sk[crypto_sign_SECRETKEYBYTES]);

/* ---- the running controller ---- */
struct ctl_netmap;
struct ctl_control;
struct ctl_circuits;
struct ctl_metrics;

typedef struct {
    ctl_config cfg;
    ctl_store *store;
    pr_ca ca;        /* the root: the trust anchor (key absent once intermediates issue) */
    pr_ca issuer;    /* signs leaves: the active intermediate, or the root (older data dirs) */
    int64_t issuer_not_after; /* leaves never outlive their issuer */
    int issuer_is_intermediate; /* leaves then carry the intermediate after them */
    char ca_fp[65];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    struct ctl_netmap *map;         /* NULL when no control channel runs */
    struct ctl_control *control;    /* the control channel server, or NULL */
    struct ctl_circuits *circuits;  /* circuits the routers reported, or NULL */
    struct ctl_metrics *metrics;    /* request counters, or NULL (metrics.h) */
    struct ctl_events *events;      /* security events and webhooks, or NULL (events.h) */
    unsigned char secrets_key[crypto_secretbox_KEYBYTES]; /* tier-2 credentials at rest */
    int secrets_loaded;
    pr_bucket admit_enroll, admit_session; /* admission control (admit.h) */
    int admit_on;
} ctl;

/* Reads a PEM file; err says what to do when it cannot. */
int ctl_read_pem(const char *path, char **out, char *err, size_t errcap);
/* Loads keys, certificates and the store for cfg (config.c). */
int ctl_open(ctl *c, const ctl_config *cfg, char *err, size_t errcap);
void ctl_close(ctl *c);

/* ---- api.c: routing and helpers ---- */
typedef struct {
    ctl *c;
    ctl_http_req *req;
    const char *param; /* the {id} path segment, or NULL */
    json_t *admin;     /* the authenticated admin's record, or NULL */
    int answered;      /* set by every ctl_reply* so a missed answer is caught */
} ctl_call;

typedef void (*ctl_route_fn)(ctl_call *call);

/* The http layer's handler: req->server_data is the ctl. */
void ctl_api_handle(ctl_http_req *req);
/* Prints "METHOD PATH-TEMPLATE" per route. */
void ctl_api_print_routes(FILE *out);

/* Answers with body (reference stolen; NULL: empty body). */
void ctl_reply(ctl_call *call, int status, json_t *body);
void ctl_reply_data(ctl_call *call, int status, json_t *data);
void ctl_reply_raw(ctl_call *call, int status, const char *content_type, const char *body,
                   size_t len);
void ctl_reply_error(ctl_call *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a store error to an answer naming what (e.g. "identity"). */
void ctl_reply_store_error(ctl_call *call, int rc, const char *what, const char *key);

/* Parses the request body as a JSON object whose keys are all in allowed
 * (NULL-terminated). On failure it has answered and returns < 0. */
int ctl_body(ctl_call *call, const char *const *allowed, json_t **out);
/* Field readers: 0 absent (and !required), 1 present, < 0 answered. */
int ctl_field_str(ctl_call *call, json_t *body, const char *key, int required, const char **out);
int ctl_field_name(ctl_call *call, json_t *body, const char *key, int required, const char **out);
int ctl_field_roles(ctl_call *call, json_t *body, const char *key, json_t **out);
int ctl_field_bool(ctl_call *call, json_t *body, const char *key, int *out);
int ctl_field_enum(ctl_call *call, json_t *body, const char *key, const char *const *values,
                   const char **out);

int ctl_valid_name(const char *s);
int ctl_valid_role(const char *s);

/* Generic collection handlers. */
void ctl_list(ctl_call *call, const char *coll);
/* Loads the record named by call->param; on failure answered, returns < 0. */
int ctl_load(ctl_call *call, const char *coll, const char *what, json_t **out);
void ctl_get(ctl_call *call, const char *coll, const char *what);
/* Creates rec (stolen) and answers 201 with the stored record. */
void ctl_create_reply(ctl_call *call, const char *coll, const char *what, json_t *rec);
void ctl_delete(ctl_call *call, const char *coll, const char *what);
/* Applies fields to the record rec and answers with the updated record. */
void ctl_update_reply(ctl_call *call, const char *coll, const char *what, json_t *rec,
                      json_t *fields);

/* Validates a request body into fields: only what is present, plus defaults
 * when creating. On failure it has answered and returns < 0. */
typedef int (*ctl_parse_fn)(ctl_call *call, json_t *body, int creating, json_t *fields);
/* POST to a collection: the body (checked against allowed) is parsed, given a
 * fresh id, stored and answered 201. */
void ctl_create_parsed(ctl_call *call, const char *coll, const char *what,
                       const char *const *allowed, ctl_parse_fn parse);
/* PATCH of the record named by call->param: parsed and applied, answered. Returns
 * 0 once an update was attempted, with the record as it was before (*before) and
 * the fields applied (*fields), new references the caller releases; < 0 (and
 * nothing to release) when the request was refused before that. */
int ctl_patch_parsed(ctl_call *call, const char *coll, const char *what,
                     const char *const *allowed, ctl_parse_fn parse, json_t **before,
                     json_t **fields);

void ctl_rfc3339(int64_t t, char out[32]);
/* Every record of coll, paging through the store; *items is a new array. */
int ctl_list_all(ctl_store *s, const char *coll, json_t **items);
/* Tells the network map that record id of coll changed (no-op without a map). */
void ctl_map_touch(ctl *c, const char *coll, const char *id);
/* Adds "online" (control channel up) to a router record when a map runs. */
void ctl_router_status_attach(ctl *c, json_t *rec);

/* ---- svctoken.c: service tokens (docs/dataplane.md) ---- */
/* Signs a token letting identity_id act ("dial"|"bind") on service (a service
 * record); *tok is malloc'd, *exp (may be NULL) its expiry in Unix seconds. */
int ctl_svctoken_issue(const ctl *c, const char *identity_id, const json_t *service,
                       const char *act, int64_t now, char **tok, int64_t *exp);

/* ---- handlers ---- */
void ctl_api_identities_list(ctl_call *call);
void ctl_api_identities_create(ctl_call *call);
void ctl_api_identities_get(ctl_call *call);
void ctl_api_identities_patch(ctl_call *call);
void ctl_api_identities_delete(ctl_call *call);
void ctl_api_identities_disable(ctl_call *call);
void ctl_api_identities_enable(ctl_call *call);

void ctl_api_services_list(ctl_call *call);
void ctl_api_services_create(ctl_call *call);
void ctl_api_services_get(ctl_call *call);
void ctl_api_services_patch(ctl_call *call);
void ctl_api_services_delete(ctl_call *call);

void ctl_api_policies_list(ctl_call *call);
void ctl_api_policies_create(ctl_call *call);
void ctl_api_policies_get(ctl_call *call);
void ctl_api_policies_patch(ctl_call *call);
void ctl_api_policies_delete(ctl_call *call);

void ctl_api_routers_list(ctl_call *call);
void ctl_api_routers_create(ctl_call *call);
void ctl_api_routers_get(ctl_call *call);
void ctl_api_routers_patch(ctl_call *call);
void ctl_api_routers_delete(ctl_call *call);

/* ---- api_settings.c: anomaly settings and baselines (docs/policies.md) ---- */
void ctl_api_anomaly_get(ctl_call *call);
void ctl_api_anomaly_patch(ctl_call *call);
void ctl_api_anomaly_delete(ctl_call *call);
void ctl_api_identities_baseline(ctl_call *call);
void ctl_api_identities_baseline_delete(ctl_call *call);

/* ---- api_mesh.c: links, circuits, the mesh (docs/operations.md) ---- */
void ctl_api_links_list(ctl_call *call);
void ctl_api_circuits_list(ctl_call *call);
void ctl_api_mesh_get(ctl_call *call);

/* ---- api_edge.c ---- */
void ctl_api_edge_session(ctl_call *call);

/* ---- enroll.c ---- */
void ctl_api_enroll_ca(ctl_call *call);
void ctl_api_enroll(ctl_call *call);
/* Issues a one-time enrolment token for subject (kind "identity"|"router"),
 * records it, and returns {"token","expires_at"} in *out. ttl 0: default. */
int ctl_token_issue(ctl *c, const char *kind, const char *subject_id, int64_t ttl, json_t **out);
/* Creates rec (stolen; an identity or router), issues its enrolment token and
 * answers 201 {"data":record,"enrollment":{"token","expires_at"}}. */
void ctl_create_enrollable(ctl_call *call, const char *coll, const char *kind, json_t *rec,
                           int64_t ttl);
/* Reads the optional "ca" field of an identity's creation body (a
 * registered CA's name or id) into rec's "factory_ca": the identity must then
 * enrol with a factory certificate from that CA as well as its token.
 * 0 absent, 1 set, < 0 answered. */
int ctl_identity_factory_ca(ctl_call *call, json_t *body, json_t *rec);
/* Adds "enrollment":{"expires_at","used"} to rec when a token is pending. */
void ctl_token_pending_attach(ctl *c, json_t *rec);

/* ---- cakey.c: the CA key at rest (docs/bootstrap.md) ---- */
#define CTL_CA_PASSPHRASE_ENV      "WEFT_CA_PASSPHRASE"
#define CTL_CA_PASSPHRASE_FILE_ENV "WEFT_CA_PASSPHRASE_FILE"
/* Writes key_pem 0600: in clear when passphrase is NULL, else as encrypted
 * PKCS#8 (AES-256-CBC, PBKDF2-HMAC-SHA256). */
int ctl_cakey_save(const char *path, const char *key_pem, const char *passphrase);
/* Reads the CA key; an encrypted one is opened with the passphrase from
 * WEFT_CA_PASSPHRASE or the file named by WEFT_CA_PASSPHRASE_FILE.
 * *key_pem is the clear PEM (malloc'd; the caller wipes and frees it). */
int ctl_cakey_load(const char *path, char **key_pem, char *err, size_t errcap);
/* The first line of a passphrase file (trailing CR/LF dropped), malloc'd. */
int ctl_passphrase_read(const char *path, char **out, char *err, size_t errcap);
/* The CA passphrase from WEFT_CA_PASSPHRASE or WEFT_CA_PASSPHRASE_FILE, malloc'd. */
int ctl_cakey_passphrase(char **out, char *err, size_t errcap);
/* 1 if the key file at path is an encrypted PEM. */
int ctl_cakey_encrypted(const char *path);

/* ---- ca_rotate.c: intermediates (docs/bootstrap.md) ---- */
#define CTL_INTERMEDIATES_FILE "intermediates.json"
/* Makes a new intermediate signed by root (cert and key in memory), writes
 * DIR/intermediate-N.pem and .key (the key encrypted under passphrase unless
 * NULL) and makes it the active issuer in DIR/intermediates.json; the
 * previous one is kept listed (retired) and its key removed. name receives
 * "intermediate-N"; keep (may be NULL) receives the new intermediate's
 * certificate and clear key (free with pr_ca_free after wiping the key). */
int ctl_ca_rotate(const char *dir, const char *network, const pr_ca *root, const char *passphrase,
                  int64_t cert_validity, char *name, size_t namecap, pr_ca *keep, char *err,
                  size_t errcap);
/* Loads the active intermediate of c->cfg.dir into c->issuer; a data
 * directory without intermediates issues with the root (its key loaded). */
int ctl_issuer_load(ctl *c, char *err, size_t errcap);
void ctl_issuer_free(ctl *c);
/* Signs csr with the active issuer; *cert_pem is the leaf then its
 * intermediate (PEM chain), the leaf's notAfter capped at the issuer's. */
int ctl_ca_sign(const ctl *c, const char *csr_pem, const pr_cert_req *req, char **cert_pem,
                char serial_hex[33]);
/* pr_ca_issue with the active issuer; *cert_pem is a chain as above. */
int ctl_ca_issue(const ctl *c, const pr_cert_req *req, char **cert_pem, char **key_pem);
/* weft-controller ca SUBCOMMAND ...: argv[0] is "ca". */
int ctl_cmd_ca(int argc, char **argv);

/* ---- api_cas.c, devcert.c, enroll_factory.c, renew.c, credentials.c ---- */
void ctl_api_cas_list(ctl_call *call);
void ctl_api_cas_create(ctl_call *call);
void ctl_api_cas_get(ctl_call *call);
void ctl_api_cas_patch(ctl_call *call);
void ctl_api_cas_delete(ctl_call *call);
void ctl_api_cas_verify(ctl_call *call);
void ctl_api_cas_disable(ctl_call *call);
void ctl_api_cas_enable(ctl_call *call);
void ctl_api_enroll_factory(ctl_call *call);
/* Checks a factory certificate chain (PEM, leaf first) against the registered
 * CAs (verified, enabled, CRL) and the proof of possession of its key over
 * csr (proto/proof.h). On success *ca is the CA's record and fp the factory
 * certificate's fingerprint; on failure it has answered and returns < 0. */
int ctl_factory_check(ctl_call *call, const char *chain, const char *csr, const char *sig,
                      json_t **ca, char fp[65]);
void ctl_api_renew(ctl_call *call);
/* The record of the identity or router whose certificate the caller
 * presented (want: PR_IDENT_IDENTITY, PR_IDENT_ROUTER, or 0 for either),
 * refusing disabled identities. On failure it has answered and returns < 0. */
int ctl_peer_subject(ctl_call *call, int want, int *kind, json_t **rec);
void ctl_api_credentials_list(ctl_call *call);
void ctl_api_credentials_create(ctl_call *call);
void ctl_api_credentials_get(ctl_call *call);
void ctl_api_credentials_delete(ctl_call *call);
void ctl_api_edge_credentials(ctl_call *call);

#endif
