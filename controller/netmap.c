/* The network map (netmap.h). Each kind is a JSON object keyed by id so that
 * a full map and a delta are both plain walks; a change is computed by
 * comparing the object a record yields now with the one the map holds. */
#include "controller/netmap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/controller.h"
#include "controller/policy.h"
#include "proto/log.h"
#include "weft/errors.h"

#define TERM_ID_MAX 64
#define LINKS_PER_REPORT_MAX 4096
#define RTT_US_MAX 60000000 /* a minute: anything longer is not a measurement */
/* A measurement change smaller than this is not worth a delta to every router. */
#define RTT_STEP_PCT 10
#define RTT_STEP_MIN_US 100
#define QUEUE_STEP_MIN 65536
/* Deleted identities stay revoked until their last certificate expires: the
 * ids and those times survive a restart in this store setting. */
#define DELETED_KEY "map.deleted_identities"
#define GRANT_ID_MAX 160

struct ctl_netmap {
    ctl_store *store;
    uint64_t version;
    char signing_key[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                               sodium_base64_VARIANT_ORIGINAL)];
    json_t *routers, *services, *terms, *revoked; /* id -> object (revoked: id -> true) */
    json_t *owners; /* terminator id -> owner pointer as an integer */
    json_t *online; /* router id -> true */
    json_t *reports; /* router id -> {peer id -> {"rtt_us","up","queue"}}: its last report */
    json_t *live;    /* link id -> link object as measured now (views) */
    json_t *links;   /* link id -> link object as published in the map */
    json_t *deleted; /* identity id -> Unix time its revocation may end */
    json_t *grants;  /* "identity|service|act" -> grant_revoked object */
    json_t *pols;    /* router and service-router policies, while objects are built */
    json_t *anomaly; /* network-wide anomaly settings, or NULL (routers use their own) */
    int64_t revoke_ttl;
    ctl_netmap_delta_cb cb;
    void *cb_arg;
};

/* ---- building objects from records ---- */

static void copy_field(json_t *dst, const json_t *rec, const char *key)
{
    json_t *v = json_object_get(rec, key);

    if (json_is_string(v))
        json_object_set(dst, key, v);
}

/* ---- router policies (docs/policies.md) ---- */

static int is_type(const json_t *p, const char *type)
{
    return strcmp(json_string_value(json_object_get(p, "type")) ?: "", type) == 0;
}

/* Loads what router and service objects are built from; ctx_drop after. */
static int ctx_load(ctl_netmap *m)
{
    json_t *all = NULL, *p;
    size_t i;
    int rc;

    if ((rc = ctl_list_all(m->store, "policies", &all)) < 0)
        return rc;
    m->pols = json_array();
    json_array_foreach(all, i, p)
    {
        if (is_type(p, "router") || is_type(p, "service-router"))
            json_array_append(m->pols, p);
    }
    json_decref(all);
    return 0;
}

static void ctx_drop(ctl_netmap *m)
{
    json_decref(m->pols);
    m->pols = NULL;
}

/* A router knows identities and routers by id only: "@name" becomes "@id". */
static json_t *resolve_sel(ctl_netmap *m, const char *coll, const char *sel)
{
    json_t *rec = NULL, *out;

    if (sel[0] != '@' || ctl_store_get(m->store, coll, sel + 1, &rec) < 0)
        return json_string(sel);
    out = json_sprintf("@%s", json_string_value(json_object_get(rec, "id")) ?: sel + 1);
    json_decref(rec);
    return out;
}

/* A policy's selectors (key) as routers read them: AnyOf adds each one,
 * AllOf one entry joining them with '&'. */
static void add_sels(ctl_netmap *m, const json_t *p, const char *key, const char *coll,
                     json_t *arr)
{
    const json_t *sels = json_object_get(p, key), *v;
    char buf[1024] = "";
    size_t i, off = 0;

    if (strcmp(json_string_value(json_object_get(p, "semantic")) ?: "", "AllOf") != 0) {
        json_array_foreach(sels, i, v)
            json_array_append_new(arr, resolve_sel(m, coll, json_string_value(v) ?: ""));
        return;
    }
    json_array_foreach(sels, i, v)
    {
        json_t *r = resolve_sel(m, coll, json_string_value(v) ?: "");
        int n = snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? "&" : "",
                         json_string_value(r) ?: "");
        json_decref(r);
        if (n < 0 || (size_t)n >= sizeof(buf) - off)
            return; /* too long for a router to take: the entry selects nothing */
        off += (size_t)n;
    }
    if (off > 0)
        json_array_append_new(arr, json_string(buf));
}

/* "restricted": the identities some router policy selects; "allow": those
 * a policy selecting this router lets in. Absent with no router policy. */
static void router_allow(ctl_netmap *m, const json_t *rec, json_t *o)
{
    json_t *restricted = json_array(), *allow = json_array(), *p;
    size_t i;

    json_array_foreach(m->pols, i, p)
    {
        if (!is_type(p, "router"))
            continue;
        add_sels(m, p, "identity_roles", "identities", restricted);
        if (ctl_policy_selects(json_object_get(p, "router_roles"),
                               json_string_value(json_object_get(p, "semantic")), rec))
            add_sels(m, p, "identity_roles", "identities", allow);
    }
    if (json_array_size(restricted) > 0) {
        json_object_set(o, "restricted", restricted);
        json_object_set(o, "allow", allow);
    }
    json_decref(restricted);
    json_decref(allow);
}

/* "routers": selectors of the routers that may carry the service, when a
 * service-router policy selects it (absent: every router). Routers match them
 * against the roles of the map's router objects. */
static void service_routers(ctl_netmap *m, const json_t *rec, json_t *o)
{
    json_t *sels = NULL, *p;
    size_t i;

    json_array_foreach(m->pols, i, p)
    {
        if (!is_type(p, "service-router") ||
            !ctl_policy_selects(json_object_get(p, "service_roles"),
                                json_string_value(json_object_get(p, "semantic")), rec))
            continue;
        if (sels == NULL)
            sels = json_array();
        add_sels(m, p, "router_roles", "routers", sels);
    }
    if (sels)
        json_object_set_new(o, "routers", sels);
}

static json_t *router_obj(ctl_netmap *m, const json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *o;

    if (id == NULL || !json_is_true(json_object_get(rec, "enrolled")))
        return NULL;
    o = json_pack("{s:s, s:b}", "id", id, "online", ctl_netmap_router_is_online(m, id));
    copy_field(o, rec, "name");
    copy_field(o, rec, "edge_listen");
    copy_field(o, rec, "link_listen");
    if (json_array_size(json_object_get(rec, "roles")) > 0)
        json_object_set(o, "roles", json_object_get(rec, "roles"));
    router_allow(m, rec, o);
    return o;
}

static json_t *service_obj(ctl_netmap *m, const json_t *rec)
{
    json_t *o = json_object();

    service_routers(m, rec, o);
    copy_field(o, rec, "id");
    copy_field(o, rec, "name");
    copy_field(o, rec, "intercept");
    copy_field(o, rec, "host");
    copy_field(o, rec, "hosted_by");
    copy_field(o, rec, "multipath");
    return o;
}

/* ---- deltas ---- */

/* A delta of ops, and of the top-level keys of root (may be NULL; stolen)
 * such as "anomaly"; nothing when both are empty. */
static int emit_root(ctl_netmap *m, json_t *ops, json_t *root)
{
    json_t *d;
    char *text;

    if (json_array_size(ops) == 0 && json_object_size(root) == 0) {
        json_decref(ops);
        json_decref(root);
        return 0;
    }
    m->version++;
    d = json_pack("{s:I, s:I, s:o}", "version", (json_int_t)m->version, "base",
                  (json_int_t)(m->version - 1), "ops", ops);
    if (d && root)
        json_object_update_missing(d, root);
    json_decref(root);
    text = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (text == NULL)
        return WEFT_ENOMEM;
    pr_debug("map_delta", "version=%llu ops=%zu", (unsigned long long)m->version,
             json_array_size(ops));
    if (m->cb)
        m->cb(m->cb_arg, text, strlen(text));
    free(text);
    return 0;
}

static int emit(ctl_netmap *m, json_t *ops)
{
    return emit_root(m, ops, NULL);
}

static void add_op(json_t *ops, const char *op, const char *kind, json_t *obj)
{
    json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", op, "kind", kind, "obj", obj));
}

/* Makes set[id] = obj (NULL: absent) and records the op when it changes. */
static void update(json_t *set, const char *kind, const char *id, json_t *obj, json_t *ops)
{
    json_t *cur = json_object_get(set, id);

    if (obj == NULL) {
        if (cur != NULL) {
            add_op(ops, "del", kind, json_pack("{s:s}", "id", id));
            json_object_del(set, id);
        }
        return;
    }
    if (cur != NULL && json_equal(cur, obj)) {
        json_decref(obj);
        return;
    }
    /* Revocations travel as {"id"} objects in deltas, bare ids in full maps. */
    add_op(ops, "put", kind,
           strcmp(kind, "revoked") == 0 ? json_pack("{s:s}", "id", id) : json_incref(obj));
    json_object_set_new(set, id, obj);
}

/* The map object a record yields now, NULL when it has no place in the map. */
static json_t *obj_for(ctl_netmap *m, const char *coll, const json_t *rec)
{
    if (rec == NULL)
        return NULL;
    if (strcmp(coll, "routers") == 0)
        return router_obj(m, rec);
    if (strcmp(coll, "services") == 0)
        return service_obj(m, rec);
    return json_is_true(json_object_get(rec, "disabled")) ? json_true() : NULL;
}

static json_t *set_for(ctl_netmap *m, const char *coll, const char **kind)
{
    if (strcmp(coll, "routers") == 0) {
        *kind = "router";
        return m->routers;
    }
    if (strcmp(coll, "services") == 0) {
        *kind = "service";
        return m->services;
    }
    if (strcmp(coll, "identities") == 0) {
        *kind = "revoked";
        return m->revoked;
    }
    return NULL;
}

static void links_of_router(ctl_netmap *m, const char *router_id, json_t *ops);
static int term_str(const json_t *t, const char *key, int required);
static void refs_to_service(ctl_netmap *m, const char *service_id, json_t *ops);
static void refs_to_router(ctl_netmap *m, const char *router_id, json_t *ops);

/* ---- deleted identities ---- */

static void deleted_save(ctl_netmap *m)
{
    char *text = json_dumps(m->deleted, JSON_COMPACT);
    int rc = text ? ctl_store_setting_set(m->store, DELETED_KEY, text) : WEFT_ENOMEM;

    if (rc < 0)
        pr_error("map_deleted_save", "err=%s hint=%s", weft_strerror(rc),
                 pr_log_q("deleted identities stay revoked until a restart; check the store"));
    free(text);
}

/* Forgets deletions whose certificates have all expired (ops: also lift
 * their revocations in the delta being made). */
static void deleted_prune(ctl_netmap *m, int64_t now, json_t *ops)
{
    const char *id;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(m->deleted, tmp, id, v)
    {
        if (json_integer_value(v) > now)
            continue;
        if (ops)
            update(m->revoked, "revoked", id, NULL, ops);
        json_object_del(m->deleted, id);
    }
}

static int deleted_ops(ctl_netmap *m, const char *id, json_t *ops)
{
    int64_t now = time(NULL);

    if (json_object_get(m->deleted, id) == NULL) {
        deleted_prune(m, now, ops);
        json_object_set_new(m->deleted, id, json_integer(now + m->revoke_ttl));
        deleted_save(m);
        pr_info("identity_deleted_revoked", "identity=%s until=%lld", id,
                (long long)(now + m->revoke_ttl));
    }
    update(m->revoked, "revoked", id, json_true(), ops);
    return 0;
}

static int deleted_load(ctl_netmap *m)
{
    json_t *saved, *v;
    const char *id;
    int rc = ctl_store_setting_object(m->store, DELETED_KEY, &saved);

    if (rc == WEFT_ENOTFOUND)
        return 0;
    if (rc == WEFT_EJSON) {
        pr_warn("map_deleted_load", "hint=%s",
                pr_log_q("the list of deleted identities is unreadable; it is ignored"));
        return 0;
    }
    if (rc < 0)
        return rc;
    json_object_foreach(saved, id, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= (int64_t)time(NULL))
            continue;
        json_object_set(m->deleted, id, v);
        json_object_set_new(m->revoked, id, json_true());
    }
    json_decref(saved);
    return 0;
}

void ctl_netmap_set_revoke_ttl(ctl_netmap *m, int64_t seconds)
{
    if (m && seconds > 0)
        m->revoke_ttl = seconds;
}

/* ---- withdrawn grants ---- */

static int grant_op(ctl_netmap *m, const json_t *pair, const char *act, int64_t at, int64_t until,
                    const char *cause, json_t *ops)
{
    const char *identity = json_string_value(json_object_get(pair, "identity"));
    const char *service = json_string_value(json_object_get(pair, "service"));
    char key[GRANT_ID_MAX];
    json_t *obj;

    if (!identity || !service ||
        (size_t)snprintf(key, sizeof(key), "%s|%s|%s", identity, service, act) >= sizeof(key))
        return WEFT_EINVAL;
    obj = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", key, "identity", identity, "service",
                    service, "act", act, "at", (json_int_t)at, "until", (json_int_t)until);
    if (obj == NULL)
        return WEFT_ENOMEM;
    if (cause && cause[0])
        json_object_set_new(obj, "cause", json_stringn(cause, strnlen(cause, CTL_GRANT_CAUSE_MAX)));
    json_object_set(m->grants, key, obj);
    add_op(ops, "put", "grant_revoked", obj);
    return 0;
}

int ctl_netmap_grants_revoke(ctl_netmap *m, const json_t *pairs, const char *act, int64_t at,
                             int64_t until, const char *cause)
{
    const char *k;
    json_t *ops, *v;
    void *tmp;
    size_t i;
    int rc;

    if (m == NULL || !json_is_array(pairs) || act == NULL ||
        (strcmp(act, "dial") != 0 && strcmp(act, "bind") != 0))
        return WEFT_EINVAL;
    /* Entries whose tokens have all expired tell routers nothing any more. */
    json_object_foreach_safe(m->grants, tmp, k, v)
    {
        if (json_integer_value(json_object_get(v, "until")) <= at)
            json_object_del(m->grants, k);
    }
    if ((ops = json_array()) == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(pairs, i, v)
    {
        if ((rc = grant_op(m, v, act, at, until, cause, ops)) < 0) {
            json_decref(ops);
            return rc;
        }
    }
    return emit(m, ops);
}

/* Re-reads one record and records the ops it causes, leftover references
 * included, so that a change and its consequences travel in one delta. */
static int touch_ops(ctl_netmap *m, const char *coll, const char *id, json_t *ops)
{
    const char *kind;
    json_t *set, *rec = NULL, *obj;
    int rc, had;

    if ((set = set_for(m, coll, &kind)) == NULL)
        return 0;
    rc = ctl_store_get(m->store, coll, id, &rec);
    if (rc < 0 && rc != WEFT_ENOTFOUND)
        return rc;
    /* A deleted identity's certificate is still valid: it stays revoked. */
    if (rc == WEFT_ENOTFOUND && strcmp(coll, "identities") == 0)
        return deleted_ops(m, id, ops);
    /* The store also finds records by name: only the record with this id counts. */
    if (rec && strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) != 0) {
        json_decref(rec);
        rec = NULL;
    }
    had = json_object_get(set, id) != NULL;
    obj = obj_for(m, coll, rec);
    update(set, kind, id, obj, ops);
    json_decref(rec);
    if (had && obj == NULL && strcmp(kind, "service") == 0)
        refs_to_service(m, id, ops);
    if (had && obj == NULL && strcmp(kind, "router") == 0)
        refs_to_router(m, id, ops);
    return 0;
}

/* A policy or a router's roles change what every router and service object
 * says about router policies: all are rebuilt (a delta carries the changes). */
static int refresh_coll(ctl_netmap *m, const char *coll, json_t *ops)
{
    json_t *items = NULL, *rec;
    const char *kind, *id;
    json_t *set = set_for(m, coll, &kind);
    size_t i;
    int rc = ctl_list_all(m->store, coll, &items);

    if (rc < 0)
        return rc;
    json_array_foreach(items, i, rec)
    {
        id = json_string_value(json_object_get(rec, "id"));
        if (id && json_object_get(set, id) != NULL)
            update(set, kind, id, obj_for(m, coll, rec), ops);
    }
    json_decref(items);
    return 0;
}

int ctl_netmap_touch(ctl_netmap *m, const char *coll, const char *id)
{
    int all = strcmp(coll, "policies") == 0 || strcmp(coll, "routers") == 0;
    json_t *ops;
    int rc;

    if (m == NULL || id == NULL)
        return 0;
    if ((ops = json_array()) == NULL)
        return WEFT_ENOMEM;
    if ((rc = ctx_load(m)) < 0 || (rc = touch_ops(m, coll, id, ops)) < 0 ||
        (all && ((rc = refresh_coll(m, "routers", ops)) < 0 ||
                 (rc = refresh_coll(m, "services", ops)) < 0))) {
        ctx_drop(m);
        json_decref(ops);
        return rc;
    }
    ctx_drop(m);
    return emit(m, ops);
}

/* ---- routers online ---- */

int ctl_netmap_router_is_online(const ctl_netmap *m, const char *router_id)
{
    return m && router_id && json_object_get(m->online, router_id) != NULL;
}

int ctl_netmap_router_online(ctl_netmap *m, const char *router_id, int online)
{
    json_t *ops;
    int rc;

    if (m == NULL || router_id == NULL)
        return WEFT_EINVAL;
    if ((ops = json_array()) == NULL)
        return WEFT_ENOMEM;
    if (online) {
        json_object_set_new(m->online, router_id, json_true());
    } else {
        /* What it said about its links no longer holds: they go down with it. */
        json_object_del(m->online, router_id);
        json_object_del(m->reports, router_id);
    }
    rc = ctx_load(m);
    if (rc == 0)
        rc = touch_ops(m, "routers", router_id, ops);
    ctx_drop(m);
    if (rc < 0) {
        json_decref(ops);
        return rc;
    }
    links_of_router(m, router_id, ops);
    return emit(m, ops);
}

/* ---- leftover references ---- */

/* Terminators of a deleted service go with it. */
static void refs_to_service(ctl_netmap *m, const char *service_id, json_t *ops)
{
    json_t *ids = json_array(), *v;
    const char *id;
    size_t i;

    json_object_foreach(m->terms, id, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "service")) ?: "", service_id) == 0)
            json_array_append_new(ids, json_string(id));
    }
    json_array_foreach(ids, i, v)
    {
        json_object_del(m->owners, json_string_value(v));
        update(m->terms, "terminator", json_string_value(v), NULL, ops);
    }
    json_decref(ids);
}

/* Services hosted by a deleted router are hosted by none; its links and
 * reports go. The store is cleared too, or the next touch would bring the
 * reference back. */
static void refs_to_router(ctl_netmap *m, const char *router_id, json_t *ops)
{
    json_t *ids = json_array(), *v, *fields = json_pack("{s:n}", "hosted_by");
    const char *id;
    size_t i;

    json_object_foreach(m->services, id, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "hosted_by")) ?: "", router_id) == 0)
            json_array_append_new(ids, json_string(id));
    }
    json_array_foreach(ids, i, v)
    {
        const char *sid = json_string_value(v);
        int rc = ctl_store_update(m->store, "services", sid, fields);
        if (rc < 0)
            pr_warn("hosted_by_not_cleared", "service=%s err=%s hint=%s", sid, weft_err_name(rc),
                    pr_log_q("set the service's hosted_by again with weft service update"));
        touch_ops(m, "services", sid, ops);
    }
    json_decref(ids);
    json_decref(fields);
    json_object_del(m->online, router_id);
    json_object_del(m->reports, router_id);
    links_of_router(m, router_id, ops);
}

/* ---- links ---- */

static void link_id(const char *x, const char *y, char *out, size_t cap, const char **a,
                    const char **b)
{
    *a = strcmp(x, y) < 0 ? x : y;
    *b = *a == x ? y : x;
    snprintf(out, cap, "%s|%s", *a, *b);
}

/* What router from said about its link to router to, or NULL. */
static json_t *said(const ctl_netmap *m, const char *from, const char *to)
{
    return json_object_get(json_object_get(m->reports, from), to);
}

static json_int_t ival(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* Both routers' reports joined: the mean RTT of those measured, the deeper
 * queue, and up only when both are online and both say up. NULL when no
 * router reports the link, or one end is not in the map. */
static json_t *link_combine(const ctl_netmap *m, const char *a, const char *b, const char *id)
{
    json_t *x = said(m, a, b), *y = said(m, b, a);
    json_int_t rx = ival(x, "rtt_us"), ry = ival(y, "rtt_us"), rtt, q;
    int up;

    if ((x == NULL && y == NULL) || json_object_get(m->routers, a) == NULL ||
        json_object_get(m->routers, b) == NULL)
        return NULL;
    rtt = rx > 0 && ry > 0 ? (rx + ry) / 2 : (rx > ry ? rx : ry);
    q = ival(x, "queue") > ival(y, "queue") ? ival(x, "queue") : ival(y, "queue");
    up = x && y && json_is_true(json_object_get(x, "up")) && json_is_true(json_object_get(y, "up")) &&
         ctl_netmap_router_is_online(m, a) && ctl_netmap_router_is_online(m, b);
    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:I}", "id", id, "a", a, "b", b, "rtt_us", rtt,
                     "up", up, "queue", q);
}

static int big_step(json_int_t old, json_int_t now, json_int_t pct, json_int_t min)
{
    json_int_t d = now > old ? now - old : old - now;

    return d >= min && d * 100 >= old * pct;
}

/* Whether a measured link differs enough from the published one to publish. */
static int link_significant(const json_t *pub, const json_t *now)
{
    return pub == NULL ||
           json_is_true(json_object_get(pub, "up")) != json_is_true(json_object_get(now, "up")) ||
           big_step(ival(pub, "rtt_us"), ival(now, "rtt_us"), RTT_STEP_PCT, RTT_STEP_MIN_US) ||
           big_step(ival(pub, "queue"), ival(now, "queue"), 50, QUEUE_STEP_MIN) ||
           (ival(pub, "queue") == 0) != (ival(now, "queue") == 0);
}

/* Recomputes the link between x and y and records the op it needs. A
 * removed link's del carries a and b too: routers name links by the pair. */
static void link_refresh(ctl_netmap *m, const char *x, const char *y, json_t *ops)
{
    char id[2 * TERM_ID_MAX + 2];
    const char *a, *b;
    json_t *now;

    link_id(x, y, id, sizeof(id), &a, &b);
    if ((now = link_combine(m, a, b, id)) == NULL) {
        json_object_del(m->live, id);
        if (json_object_get(m->links, id) != NULL) {
            add_op(ops, "del", "link", json_pack("{s:s, s:s, s:s}", "id", id, "a", a, "b", b));
            json_object_del(m->links, id);
        }
        return;
    }
    json_object_set(m->live, id, now);
    if (!link_significant(json_object_get(m->links, id), now)) {
        json_decref(now);
        return;
    }
    add_op(ops, "put", "link", json_incref(now));
    json_object_set_new(m->links, id, now);
}

/* Every link that has router_id at one end. */
static void links_of_router(ctl_netmap *m, const char *router_id, json_t *ops)
{
    json_t *peers = json_array(), *v;
    const char *id;
    size_t i;

    json_object_foreach(m->live, id, v)
    {
        const char *a = json_string_value(json_object_get(v, "a"));
        const char *b = json_string_value(json_object_get(v, "b"));
        if (a && b && strcmp(a, router_id) == 0)
            json_array_append_new(peers, json_string(b));
        else if (a && b && strcmp(b, router_id) == 0)
            json_array_append_new(peers, json_string(a));
    }
    json_array_foreach(peers, i, v) link_refresh(m, router_id, json_string_value(v), ops);
    json_decref(peers);
}

/* One entry of a CTL_LINK_REPORT, checked: {"rtt_us","up","queue"}, or NULL. */
static json_t *report_entry(const char *router_id, const json_t *e, const char **peer)
{
    const json_t *rtt = json_object_get(e, "rtt_us"), *q = json_object_get(e, "queue");

    *peer = json_string_value(json_object_get(e, "peer"));
    if (!json_is_object(e) || !term_str(e, "peer", 1) || strcmp(*peer, router_id) == 0 ||
        strchr(*peer, '|') != NULL || (rtt && !json_is_integer(rtt)) ||
        json_integer_value(rtt) < 0 || json_integer_value(rtt) > RTT_US_MAX ||
        (q && !json_is_integer(q)) || json_integer_value(q) < 0 ||
        !json_is_boolean(json_object_get(e, "up")))
        return NULL;
    return json_pack("{s:I, s:b, s:I}", "rtt_us", json_integer_value(rtt), "up",
                     json_is_true(json_object_get(e, "up")), "queue", json_integer_value(q));
}

/* The report as {peer -> entry}; peers not in the map are left out (a link
 * to a router deleted a moment ago). WEFT_EINVAL when malformed. */
static int report_parse(const ctl_netmap *m, const char *router_id, const json_t *report,
                        json_t **out)
{
    const json_t *arr = json_object_get(report, "links"), *e;
    const char *peer;
    json_t *ent;
    size_t i;

    *out = NULL;
    if (!json_is_array(arr) || json_array_size(arr) > LINKS_PER_REPORT_MAX)
        return WEFT_EINVAL;
    if ((*out = json_object()) == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(arr, i, e)
    {
        if ((ent = report_entry(router_id, e, &peer)) == NULL) {
            json_decref(*out);
            *out = NULL;
            return WEFT_EINVAL;
        }
        if (json_object_get(m->routers, peer) != NULL)
            json_object_set_new(*out, peer, ent);
        else
            json_decref(ent);
    }
    return 0;
}

int ctl_netmap_link_report(ctl_netmap *m, const char *router_id, const json_t *report)
{
    json_t *parsed, *old, *ops, *peers, *v;
    const char *peer;
    int rc;

    if (m == NULL || router_id == NULL || json_object_get(m->routers, router_id) == NULL)
        return WEFT_ENOTFOUND;
    if ((rc = report_parse(m, router_id, report, &parsed)) < 0)
        return rc;
    /* Links it named before and links it names now both may change. */
    old = json_object_get(m->reports, router_id);
    peers = json_object();
    ops = json_array();
    if (peers == NULL || ops == NULL) {
        json_decref(peers);
        json_decref(ops);
        json_decref(parsed);
        return WEFT_ENOMEM;
    }
    json_object_foreach(old, peer, v) json_object_set_new(peers, peer, json_true());
    json_object_foreach(parsed, peer, v) json_object_set_new(peers, peer, json_true());
    json_object_set_new(m->reports, router_id, parsed);
    json_object_foreach(peers, peer, v) link_refresh(m, router_id, peer, ops);
    json_decref(peers);
    return emit(m, ops);
}

static int by_id(const void *x, const void *y)
{
    const json_t *const *a = x, *const *b = y;

    return strcmp(json_string_value(json_object_get(*a, "id")) ?: "",
                  json_string_value(json_object_get(*b, "id")) ?: "");
}

/* Copies of the objects of set sorted by id, so that views list them in a
 * stable order. */
static json_t *sorted_values(const json_t *set)
{
    size_t n = json_object_size(set), i = 0;
    json_t **v = calloc(n ? n : 1, sizeof(*v)), *arr = json_array(), *o;
    const char *key;

    if (v == NULL || arr == NULL) {
        free(v);
        json_decref(arr);
        return NULL;
    }
    json_object_foreach((json_t *)set, key, o) v[i++] = o;
    qsort(v, n, sizeof(*v), by_id);
    /* Copies: callers may decorate them; the map's objects are shared. */
    for (i = 0; i < n; i++)
        json_array_append_new(arr, json_deep_copy(v[i]));
    free(v);
    return arr;
}

json_t *ctl_netmap_links(const ctl_netmap *m)
{
    return sorted_values(m->live);
}

json_t *ctl_netmap_routers(const ctl_netmap *m)
{
    return sorted_values(m->routers);
}

size_t ctl_netmap_online_count(const ctl_netmap *m)
{
    return m ? json_object_size(m->online) : 0;
}

size_t ctl_netmap_links_up(const ctl_netmap *m)
{
    const char *id;
    json_t *v;
    size_t n = 0;

    if (m == NULL)
        return 0;
    json_object_foreach(m->live, id, v) n += json_is_true(json_object_get(v, "up"));
    return n;
}

/* ---- terminators ---- */

static int term_str(const json_t *t, const char *key, int required)
{
    const json_t *v = json_object_get(t, key);

    if (v == NULL)
        return !required;
    return json_is_string(v) && json_string_length(v) > 0 &&
           json_string_length(v) <= TERM_ID_MAX &&
           strlen(json_string_value(v)) == json_string_length(v);
}

static int owned_by_other(const ctl_netmap *m, const void *owner, const char *id)
{
    json_t *o = json_object_get(m->owners, id);

    return o != NULL && (uintptr_t)json_integer_value(o) != (uintptr_t)owner;
}

/* A router that reconnects reports its terminators again on the new
 * connection before the old one has closed: the new connection takes them. */
static int same_router(const ctl_netmap *m, const char *id, const json_t *term)
{
    json_t *cur = json_object_get(m->terms, id);

    return cur != NULL && json_equal(json_object_get(cur, "router"), json_object_get(term, "router"));
}

int ctl_netmap_term_put(ctl_netmap *m, const void *owner, const json_t *term)
{
    const char *id, *svc;
    json_t *obj, *ops;

    if (!json_is_object(term) || !term_str(term, "id", 1) || !term_str(term, "service", 1) ||
        !term_str(term, "router", 1) || !term_str(term, "identity", 0))
        return WEFT_EINVAL;
    id = json_string_value(json_object_get(term, "id"));
    svc = json_string_value(json_object_get(term, "service"));
    if (json_object_get(m->services, svc) == NULL)
        return WEFT_ENOTFOUND;
    if (owned_by_other(m, owner, id) && !same_router(m, id, term))
        return WEFT_EDENIED;
    obj = json_pack("{s:s, s:s, s:O}", "id", id, "service", svc, "router",
                    json_object_get(term, "router"));
    if (obj == NULL || (ops = json_array()) == NULL) {
        json_decref(obj);
        return WEFT_ENOMEM;
    }
    copy_field(obj, term, "identity");
    json_object_set_new(m->owners, id, json_integer((json_int_t)(uintptr_t)owner));
    update(m->terms, "terminator", id, obj, ops);
    return emit(m, ops);
}

int ctl_netmap_term_del(ctl_netmap *m, const void *owner, const char *id)
{
    json_t *ops;

    if (id == NULL)
        return WEFT_EINVAL;
    if (json_object_get(m->owners, id) == NULL)
        return 0; /* already gone: removal is idempotent */
    if (owned_by_other(m, owner, id))
        return WEFT_EDENIED;
    if ((ops = json_array()) == NULL)
        return WEFT_ENOMEM;
    json_object_del(m->owners, id);
    update(m->terms, "terminator", id, NULL, ops);
    return emit(m, ops);
}

void ctl_netmap_terms_drop(ctl_netmap *m, const void *owner)
{
    json_t *ops = json_array(), *v, *ids = json_array();
    const char *id;
    size_t i;

    if (m == NULL || ops == NULL || ids == NULL) {
        json_decref(ops);
        json_decref(ids);
        return;
    }
    json_object_foreach(m->owners, id, v)
    {
        if ((uintptr_t)json_integer_value(v) == (uintptr_t)owner)
            json_array_append_new(ids, json_string(id));
    }
    json_array_foreach(ids, i, v)
    {
        json_object_del(m->owners, json_string_value(v));
        update(m->terms, "terminator", json_string_value(v), NULL, ops);
    }
    json_decref(ids);
    emit(m, ops);
}

/* ---- full map ---- */

static json_t *values(const json_t *set)
{
    json_t *arr = json_array(), *v;
    const char *key;

    json_object_foreach((json_t *)set, key, v) json_array_append(arr, v);
    return arr;
}

static json_t *keys(const json_t *set)
{
    json_t *arr = json_array(), *v;
    const char *key;

    json_object_foreach((json_t *)set, key, v) json_array_append_new(arr, json_string(key));
    return arr;
}

int ctl_netmap_full(ctl_netmap *m, char **json, size_t *len)
{
    json_t *root = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "version",
                             (json_int_t)m->version, "signing_key", m->signing_key, "routers",
                             values(m->routers), "services", values(m->services), "terminators",
                             values(m->terms), "revoked", keys(m->revoked), "links",
                             values(m->links), "grants_revoked", values(m->grants));

    if (root && m->anomaly)
        json_object_set(root, "anomaly", m->anomaly);

    *json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (*json == NULL)
        return WEFT_ENOMEM;
    *len = strlen(*json);
    return 0;
}

uint64_t ctl_netmap_version(const ctl_netmap *m)
{
    return m->version;
}

void ctl_netmap_set_delta_cb(ctl_netmap *m, ctl_netmap_delta_cb cb, void *arg)
{
    m->cb = cb;
    m->cb_arg = arg;
}

/* ---- anomaly settings ---- */

static json_t *anomaly_or_null(const json_t *settings)
{
    return json_object_size(settings) > 0 ? json_deep_copy(settings) : NULL;
}

int ctl_netmap_set_anomaly(ctl_netmap *m, const json_t *settings)
{
    json_t *next = anomaly_or_null(settings);

    if (m == NULL)
        return WEFT_EINVAL;
    if (json_equal(next, m->anomaly) || (next == NULL && m->anomaly == NULL)) {
        json_decref(next);
        return 0;
    }
    json_decref(m->anomaly);
    m->anomaly = next;
    return emit_root(m, json_array(), json_pack("{s:O}", "anomaly", next ? next : json_null()));
}

const json_t *ctl_netmap_anomaly(const ctl_netmap *m)
{
    return m ? m->anomaly : NULL;
}

/* The settings as last saved (a store setting of their own). */
static int anomaly_load(ctl_netmap *m)
{
    json_t *saved;
    int rc = ctl_store_setting_object(m->store, CTL_ANOMALY_SETTING, &saved);

    if (rc == WEFT_EJSON)
        pr_warn("map_anomaly_load", "hint=%s",
                pr_log_q("the saved anomaly settings are unreadable; routers use their own "
                         "until 'weft anomaly set'"));
    else if (rc < 0 && rc != WEFT_ENOTFOUND)
        return rc;
    m->anomaly = anomaly_or_null(saved);
    json_decref(saved);
    return 0;
}

/* ---- life cycle ---- */

static int load(ctl_netmap *m, const char *coll)
{
    const char *kind, *id;
    json_t *items = NULL, *rec, *set = set_for(m, coll, &kind), *obj;
    size_t i;
    int rc = ctl_list_all(m->store, coll, &items);

    if (rc < 0)
        return rc;
    json_array_foreach(items, i, rec)
    {
        id = json_string_value(json_object_get(rec, "id"));
        if (id && (obj = obj_for(m, coll, rec)) != NULL)
            json_object_set_new(set, id, obj);
    }
    json_decref(items);
    return 0;
}

int ctl_netmap_new(ctl_store *s, const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
                   ctl_netmap **out)
{
    ctl_netmap *m = calloc(1, sizeof(*m));
    int rc = WEFT_ENOMEM;

    *out = NULL;
    if (m == NULL)
        return rc;
    m->store = s;
    m->version = 1;
    sodium_bin2base64(m->signing_key, sizeof(m->signing_key), pk, crypto_sign_PUBLICKEYBYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    m->routers = json_object();
    m->services = json_object();
    m->terms = json_object();
    m->revoked = json_object();
    m->owners = json_object();
    m->online = json_object();
    m->reports = json_object();
    m->live = json_object();
    m->links = json_object();
    m->deleted = json_object();
    m->grants = json_object();
    m->revoke_ttl = CTL_CERT_VALIDITY_DEFAULT;
    rc = WEFT_ENOMEM;
    if (!m->routers || !m->services || !m->terms || !m->revoked || !m->owners || !m->online ||
        !m->reports || !m->live || !m->links || !m->deleted || !m->grants)
        goto out;
    if ((rc = ctx_load(m)) < 0)
        goto out;
    if ((rc = load(m, "routers")) < 0 || (rc = load(m, "services")) < 0 ||
        (rc = load(m, "identities")) < 0 || (rc = deleted_load(m)) < 0 ||
        (rc = anomaly_load(m)) < 0) {
        ctx_drop(m);
        goto out;
    }
    ctx_drop(m);
    *out = m;
    m = NULL;
out:
    ctl_netmap_free(m);
    return rc;
}

void ctl_netmap_free(ctl_netmap *m)
{
    if (m == NULL)
        return;
    json_decref(m->routers);
    json_decref(m->services);
    json_decref(m->terms);
    json_decref(m->revoked);
    json_decref(m->owners);
    json_decref(m->online);
    json_decref(m->reports);
    json_decref(m->live);
    json_decref(m->links);
    json_decref(m->deleted);
    json_decref(m->grants);
    json_decref(m->anomaly);
    free(m);
}
