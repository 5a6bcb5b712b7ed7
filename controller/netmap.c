/* The network map (netmap.h). Each kind is a JSON object keyed by id so that
 * a full map and a delta are both plain walks; a change is computed by
 * comparing the object a record yields now with the one the map holds. */
#include "controller/netmap.h"

#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "proto/log.h"
#include "weft/errors.h"

#define TERM_ID_MAX 64

struct ctl_netmap {
    ctl_store *store;
    uint64_t version;
    char signing_key[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                               sodium_base64_VARIANT_ORIGINAL)];
    json_t *routers, *services, *terms, *revoked; /* id -> object (revoked: id -> true) */
    json_t *owners; /* terminator id -> owner pointer as an integer */
    json_t *online; /* router id -> true */
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

static json_t *router_obj(const ctl_netmap *m, const json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *o;

    if (id == NULL || !json_is_true(json_object_get(rec, "enrolled")))
        return NULL;
    o = json_pack("{s:s, s:b}", "id", id, "online", ctl_netmap_router_is_online(m, id));
    copy_field(o, rec, "name");
    copy_field(o, rec, "edge_listen");
    copy_field(o, rec, "link_listen");
    return o;
}

static json_t *service_obj(const json_t *rec)
{
    json_t *o = json_object();

    copy_field(o, rec, "id");
    copy_field(o, rec, "name");
    copy_field(o, rec, "intercept");
    copy_field(o, rec, "host");
    copy_field(o, rec, "hosted_by");
    return o;
}

/* ---- deltas ---- */

static int emit(ctl_netmap *m, json_t *ops)
{
    json_t *d;
    char *text;

    if (json_array_size(ops) == 0) {
        json_decref(ops);
        return 0;
    }
    m->version++;
    d = json_pack("{s:I, s:I, s:o}", "version", (json_int_t)m->version, "base",
                  (json_int_t)(m->version - 1), "ops", ops);
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
        return service_obj(rec);
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

int ctl_netmap_touch(ctl_netmap *m, const char *coll, const char *id)
{
    const char *kind;
    json_t *set, *rec = NULL, *ops;
    int rc;

    if (m == NULL || id == NULL || (set = set_for(m, coll, &kind)) == NULL)
        return 0;
    rc = ctl_store_get(m->store, coll, id, &rec);
    if (rc < 0 && rc != WEFT_ENOTFOUND)
        return rc;
    /* The store also finds records by name: only the record with this id counts. */
    if (rec && strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) != 0) {
        json_decref(rec);
        rec = NULL;
    }
    if ((ops = json_array()) == NULL) {
        json_decref(rec);
        return WEFT_ENOMEM;
    }
    update(set, kind, id, obj_for(m, coll, rec), ops);
    json_decref(rec);
    return emit(m, ops);
}

/* ---- routers online ---- */

int ctl_netmap_router_is_online(const ctl_netmap *m, const char *router_id)
{
    return m && router_id && json_object_get(m->online, router_id) != NULL;
}

int ctl_netmap_router_online(ctl_netmap *m, const char *router_id, int online)
{
    if (m == NULL || router_id == NULL)
        return WEFT_EINVAL;
    if (online)
        json_object_set_new(m->online, router_id, json_true());
    else
        json_object_del(m->online, router_id);
    return ctl_netmap_touch(m, "routers", router_id);
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
    json_t *root = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o}", "version", (json_int_t)m->version,
                             "signing_key", m->signing_key, "routers", values(m->routers),
                             "services", values(m->services), "terminators", values(m->terms),
                             "revoked", keys(m->revoked));

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
    if (!m->routers || !m->services || !m->terms || !m->revoked || !m->owners || !m->online)
        goto out;
    if ((rc = load(m, "routers")) < 0 || (rc = load(m, "services")) < 0 ||
        (rc = load(m, "identities")) < 0)
        goto out;
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
    free(m);
}
