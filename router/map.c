/* The network map: JSON (jansson) into arrays with a hash index by id
 * (SipHash, libsodium's crypto_shorthash, with a per-process random key so
 * that ids chosen by anyone cannot pile up in one chain). */
#include "router/map.h"

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errf.h"
#include "weft/errors.h"

typedef int (*parse_fn)(const json_t *o, void *out, int del, char *err, size_t errcap);

typedef struct {
    const char *name;  /* "kind" in deltas */
    const char *array; /* key in full maps */
    size_t vec_off;    /* offset of the rt_vec in rt_map */
    size_t esz;
    parse_fn parse;
} kind_desc;

typedef union {
    rt_map_router r;
    rt_map_service s;
    rt_map_term t;
    rt_map_revoked x;
    rt_map_link l;
    rt_map_grant g;
} any_elem;

typedef struct {
    int del;
    const kind_desc *kind;
    any_elem e;
} delta_op;

/* ---- element vectors ---- */

static void vec_init(rt_vec *v, size_t esz)
{
    memset(v, 0, sizeof(*v));
    v->esz = esz;
}

static void vec_free(rt_vec *v)
{
    free(v->v);
    free(v->idx);
}

static const char *vec_id(const rt_vec *v, size_t i)
{
    return (const char *)v->v + i * v->esz; /* every element starts with its id */
}

static size_t id_hash(const char *id)
{
    static unsigned char key[crypto_shorthash_KEYBYTES];
    static int keyed;
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t x;

    if (!keyed) {
        randombytes_buf(key, sizeof(key));
        keyed = 1;
    }
    crypto_shorthash(h, (const unsigned char *)id, strlen(id), key);
    memcpy(&x, h, sizeof(x));
    return (size_t)x;
}

/* The slot holding id, or (with want_free) the first free slot on its probe
 * sequence; SIZE_MAX when neither exists (the table is empty). */
static size_t slot_of(const rt_vec *v, const char *id, int want_free)
{
    size_t mask = v->icap - 1, free_at = SIZE_MAX;

    if (v->icap == 0)
        return SIZE_MAX;
    for (size_t s = id_hash(id) & mask, k = 0; k < v->icap; s = (s + 1) & mask, k++) {
        size_t e = v->idx[s];
        if (e == 0)
            return want_free ? (free_at != SIZE_MAX ? free_at : s) : SIZE_MAX;
        if (e == RT_VEC_TOMB) {
            if (free_at == SIZE_MAX)
                free_at = s;
        } else if (strcmp(vec_id(v, e - 1), id) == 0) {
            return s;
        }
    }
    return want_free ? free_at : SIZE_MAX;
}

/* Rebuilt at twice the live count (at least 16 slots): tombstones go. */
static int index_rebuild(rt_vec *v, size_t want)
{
    size_t cap = 16, *old = v->idx;

    while (cap < 2 * want)
        cap *= 2;
    if ((v->idx = calloc(cap, sizeof(*v->idx))) == NULL) {
        v->idx = old;
        return WEFT_ENOMEM;
    }
    free(old);
    v->icap = cap;
    v->iused = v->n;
    for (size_t i = 0; i < v->n; i++)
        v->idx[slot_of(v, vec_id(v, i), 1)] = i + 1;
    return 0;
}

static long vec_find(const rt_vec *v, const char *id)
{
    size_t s = slot_of(v, id, 0);

    return s == SIZE_MAX ? -1 : (long)(v->idx[s] - 1);
}

static int vec_grow(rt_vec *v)
{
    size_t cap = v->cap ? v->cap * 2 : 16;
    void *nv;

    if (v->n < v->cap)
        return 0;
    if ((nv = realloc(v->v, cap * v->esz)) == NULL)
        return WEFT_ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

static int vec_put(rt_vec *v, const void *elem)
{
    long i = vec_find(v, (const char *)elem);
    size_t s;
    int rc;

    if (i >= 0) {
        memcpy((char *)v->v + (size_t)i * v->esz, elem, v->esz);
        return 0;
    }
    if ((rc = vec_grow(v)) < 0)
        return rc;
    /* Load factor at most 3/4, counting tombstones. */
    if (4 * (v->iused + 1) > 3 * v->icap && (rc = index_rebuild(v, v->n + 1)) < 0)
        return rc;
    memcpy((char *)v->v + v->n * v->esz, elem, v->esz);
    s = slot_of(v, (const char *)elem, 1);
    if (v->idx[s] == 0)
        v->iused++;
    v->idx[s] = ++v->n;
    return 0;
}

/* The last element fills the hole, so its slot is pointed at its new place. */
static void vec_del(rt_vec *v, const char *id)
{
    size_t s = slot_of(v, id, 0), i, last;

    if (s == SIZE_MAX)
        return;
    i = v->idx[s] - 1;
    v->idx[s] = RT_VEC_TOMB;
    last = --v->n;
    if (i != last) {
        memcpy((char *)v->v + i * v->esz, (char *)v->v + last * v->esz, v->esz);
        v->idx[slot_of(v, vec_id(v, i), 0)] = i + 1;
    }
}

/* ---- element parsers ---- */

static int get_str(const json_t *o, const char *key, char *out, size_t cap, int required, char *err,
                   size_t errcap)
{
    const json_t *j = json_object_get(o, key);
    const char *s;

    out[0] = '\0';
    if (j == NULL || json_is_null(j)) {
        if (required)
            return pr_errf(err, errcap, WEFT_EPROTO, "map object lacks \"%s\"", key);
        return 0;
    }
    if (!json_is_string(j))
        return pr_errf(err, errcap, WEFT_EPROTO, "map field \"%s\" is not a string", key);
    s = json_string_value(j);
    if (json_string_length(j) >= cap || strlen(s) != json_string_length(j))
        return pr_errf(err, errcap, WEFT_EPROTO, "map field \"%s\" is too long", key);
    memcpy(out, s, json_string_length(j) + 1);
    return 0;
}

#define STR(o, k, field, req) get_str(o, k, field, sizeof(field), (req), err, errcap)

/* An array of strings joined by ',' into out, each prefixed by pre (roles
 * become "#role" so that they compare as selectors). *set (may be NULL) says
 * whether the array was there; null or absent is an empty list. */
static int sel_list(const json_t *o, const char *key, const char *pre, char *out, size_t cap,
                    int *set, char *err, size_t errcap)
{
    const json_t *a = json_object_get(o, key), *v;
    size_t i, off = 0;

    out[0] = '\0';
    if (set)
        *set = json_is_array(a);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return pr_errf(err, errcap, WEFT_EPROTO, "map field \"%s\" is not an array", key);
    json_array_foreach(a, i, v)
    {
        const char *str = json_string_value(v);
        int n;
        if (str == NULL || strchr(str, ',') != NULL)
            return pr_errf(err, errcap, WEFT_EPROTO, "map field \"%s\" has a bad entry", key);
        n = snprintf(out + off, cap - off, "%s%s%s", off ? "," : "", pre, str);
        if (n < 0 || (size_t)n >= cap - off)
            return pr_errf(err, errcap, WEFT_EPROTO, "map field \"%s\" is too long", key);
        off += (size_t)n;
    }
    return 0;
}

static int parse_router(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    rt_map_router *r = out;
    int rc = STR(o, "id", r->id, 1);

    if (rc < 0 || del)
        return rc;
    if ((rc = STR(o, "name", r->name, 0)) < 0 ||
        (rc = STR(o, "edge_listen", r->edge_listen, 0)) < 0 ||
        (rc = STR(o, "link_listen", r->link_listen, 0)) < 0)
        return rc;
    if ((rc = sel_list(o, "roles", "#", r->roles, sizeof(r->roles), NULL, err, errcap)) < 0 ||
        (rc = sel_list(o, "allow", "", r->allow, sizeof(r->allow), NULL, err, errcap)) < 0 ||
        (rc = sel_list(o, "restricted", "", r->restricted, sizeof(r->restricted), &r->policed, err,
                       errcap)) < 0)
        return rc;
    r->online = json_is_true(json_object_get(o, "online"));
    r->online_known = json_is_boolean(json_object_get(o, "online"));
    return 0;
}

static int parse_service(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    rt_map_service *s = out;
    int rc = STR(o, "id", s->id, 1);

    if (rc < 0 || del)
        return rc;
    if ((rc = STR(o, "name", s->name, 1)) < 0 || (rc = STR(o, "intercept", s->intercept, 0)) < 0 ||
        (rc = STR(o, "host", s->host, 0)) < 0 || (rc = STR(o, "hosted_by", s->hosted_by, 0)) < 0)
        return rc;
    if ((rc = sel_list(o, "routers", "", s->routers, sizeof(s->routers), &s->routers_set, err,
                       errcap)) < 0)
        return rc;
    /* Optional and forward-compatible: a mode this router does not know is failover. */
    if (get_str(o, "multipath", s->multipath, sizeof(s->multipath), 0, err, errcap) < 0)
        s->multipath[0] = '\0';
    return 0;
}

static int parse_term(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    rt_map_term *t = out;
    int rc = STR(o, "id", t->id, 1);

    if (rc < 0 || del)
        return rc;
    if ((rc = STR(o, "service", t->service, 1)) < 0 || (rc = STR(o, "router", t->router, 1)) < 0 ||
        (rc = STR(o, "identity", t->identity, 0)) < 0)
        return rc;
    return 0;
}

/* Revocations are bare strings in full maps and {"id": ...} objects in deltas. */
static int parse_revoked(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    rt_map_revoked *x = out;

    if (json_is_string(o)) {
        json_t *tmp = json_pack("{s:O}", "id", (json_t *)o);
        int rc = tmp ? STR(tmp, "id", x->id, 1) : WEFT_ENOMEM;
        json_decref(tmp);
        return rc;
    }
    return STR(o, "id", x->id, 1);
}

/* Links are optional in maps ("links" array, "link" deltas); the id is made here. */
static int parse_link(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    rt_map_link *l = out;
    const json_t *rtt = json_object_get(o, "rtt_us");
    char a[RT_ID_CAP], b[RT_ID_CAP];
    int rc;

    if ((rc = STR(o, "a", a, 1)) < 0 || (rc = STR(o, "b", b, 1)) < 0)
        return rc;
    if (strcmp(a, b) == 0)
        return pr_errf(err, errcap, WEFT_EPROTO, "map link joins router %s to itself", a);
    if (strcmp(a, b) > 0)
        snprintf(l->a, sizeof(l->a), "%s", b), snprintf(l->b, sizeof(l->b), "%s", a);
    else
        snprintf(l->a, sizeof(l->a), "%s", a), snprintf(l->b, sizeof(l->b), "%s", b);
    snprintf(l->id, sizeof(l->id), "%s|%s", l->a, l->b);
    if (del)
        return 0;
    if (rtt && (!json_is_integer(rtt) || json_integer_value(rtt) < 0))
        return pr_errf(err, errcap, WEFT_EPROTO, "map link rtt_us is not a non-negative integer");
    l->rtt_us = rtt ? (uint64_t)json_integer_value(rtt) : 0;
    l->up = json_is_true(json_object_get(o, "up"));
    return 0;
}

static int grant_time(const json_t *o, const char *key, long long *out, char *err, size_t errcap)
{
    const json_t *j = json_object_get(o, key);

    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return pr_errf(err, errcap, WEFT_EPROTO, "map grant_revoked lacks a time \"%s\"", key);
    *out = (long long)json_integer_value(j);
    return 0;
}

static int parse_grant(const json_t *o, void *out, int del, char *err, size_t errcap)
{
    const char *cause = json_string_value(json_object_get(o, "cause"));
    rt_map_grant *g = out;
    int rc;

    if ((rc = STR(o, "identity", g->identity, 1)) < 0 ||
        (rc = STR(o, "service", g->service, 1)) < 0 || (rc = STR(o, "act", g->act, 1)) < 0)
        return rc;
    if (strcmp(g->act, "dial") != 0 && strcmp(g->act, "bind") != 0)
        return pr_errf(err, errcap, WEFT_EPROTO, "map grant_revoked act is neither dial nor bind");
    snprintf(g->id, sizeof(g->id), "%s|%s|%s", g->identity, g->service, g->act);
    if (del)
        return 0;
    if ((rc = grant_time(o, "at", &g->at, err, errcap)) < 0 ||
        (rc = grant_time(o, "until", &g->until, err, errcap)) < 0)
        return rc;
    /* Words for the edges told, cut to fit: never a reason to refuse the entry. */
    snprintf(g->cause, sizeof(g->cause), "%s", cause ? cause : "");
    return 0;
}

static const kind_desc kinds[] = {
    {"router", "routers", offsetof(rt_map, routers), sizeof(rt_map_router), parse_router},
    {"service", "services", offsetof(rt_map, services), sizeof(rt_map_service), parse_service},
    {"terminator", "terminators", offsetof(rt_map, terms), sizeof(rt_map_term), parse_term},
    {"revoked", "revoked", offsetof(rt_map, revoked), sizeof(rt_map_revoked), parse_revoked},
    {"link", "links", offsetof(rt_map, links), sizeof(rt_map_link), parse_link},
    {"grant_revoked", "grants_revoked", offsetof(rt_map, grants), sizeof(rt_map_grant),
     parse_grant},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static rt_vec *vec_of(rt_map *m, const kind_desc *k)
{
    return (rt_vec *)((char *)m + k->vec_off);
}

/* ---- map ---- */

void rt_map_init(rt_map *m)
{
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < NKINDS; i++)
        vec_init(vec_of(m, &kinds[i]), kinds[i].esz);
}

void rt_map_free(rt_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < NKINDS; i++)
        vec_free(vec_of(m, &kinds[i]));
    rt_map_init(m);
}

static int parse_key(const json_t *root, rt_map *m, char *err, size_t errcap)
{
    const json_t *j = json_object_get(root, "signing_key");
    size_t n = 0;
    const char *s;

    if (j == NULL)
        return 0;
    if (!json_is_string(j))
        return pr_errf(err, errcap, WEFT_EPROTO, "map signing_key is not a string");
    s = json_string_value(j);
    if (sodium_base642bin(m->signing_key, sizeof(m->signing_key), s, strlen(s), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != sizeof(m->signing_key))
        return pr_errf(err, errcap, WEFT_EPROTO,
                       "map signing_key is not a base64 Ed25519 public key");
    m->have_key = 1;
    return 0;
}

int rt_anom_set_from_json(const json_t *o, const char *prefix, pr_anom_set *out, const char **bad)
{
    char key[64];
    int rc = 0;

    memset(out, 0, sizeof(*out));
    for (int k = 0; json_is_object(o) && k < PR_ANOM_NKEYS; k++) {
        const pr_anom_key_desc *d = &pr_anom_keys[k];
        const json_t *v;

        snprintf(key, sizeof(key), "%s%s", prefix, d->name);
        if ((v = json_object_get(o, key)) == NULL)
            continue;
        if (!json_is_number(v) || json_number_value(v) < d->lo || json_number_value(v) > d->hi) {
            if (rc == 0 && bad)
                *bad = d->name;
            rc = WEFT_EINVAL;
            continue;
        }
        out->v[k] = json_number_value(v);
        out->have |= 1u << k;
    }
    return rc;
}

/* The "anomaly" object of a full map or a delta. A bad setting is left out
 * (the router's own applies): the controller checked it, so it comes from a
 * newer controller, and the rest of the map is good. */
static void parse_anomaly(const json_t *root, int delta, rt_map *m)
{
    const json_t *o = json_object_get(root, "anomaly");

    if (o == NULL && delta)
        return;
    rt_anom_set_from_json(o, "", &m->anomaly, NULL);
}

static int parse_version(const json_t *root, const char *key, uint64_t *out, char *err,
                         size_t errcap)
{
    const json_t *j = json_object_get(root, key);

    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return pr_errf(err, errcap, WEFT_EPROTO, "map lacks a non-negative integer \"%s\"", key);
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

static int load_root(const char *json, size_t len, json_t **root, char *err, size_t errcap)
{
    json_error_t je;

    *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (*root == NULL)
        return pr_errf(err, errcap, WEFT_EJSON, "map is not JSON: %s", je.text);
    if (!json_is_object(*root)) {
        json_decref(*root);
        return pr_errf(err, errcap, WEFT_EJSON, "map is not a JSON object");
    }
    return 0;
}

static int parse_array(const json_t *root, const kind_desc *k, rt_map *m, char *err, size_t errcap)
{
    const json_t *arr = json_object_get(root, k->array), *o;
    size_t i;
    any_elem e;
    int rc;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return pr_errf(err, errcap, WEFT_EPROTO, "map \"%s\" is not an array", k->array);
    json_array_foreach(arr, i, o)
    {
        memset(&e, 0, sizeof(e));
        if ((rc = k->parse(o, &e, 0, err, errcap)) < 0 || (rc = vec_put(vec_of(m, k), &e)) < 0)
            return rc;
    }
    return 0;
}

int rt_map_apply_full(rt_map *m, const char *json, size_t len, char *err, size_t errcap)
{
    json_t *root;
    rt_map nm;
    int ret;

    if ((ret = load_root(json, len, &root, err, errcap)) < 0)
        return ret;
    rt_map_init(&nm);
    if ((ret = parse_version(root, "version", &nm.version, err, errcap)) < 0 ||
        (ret = parse_key(root, &nm, err, errcap)) < 0)
        goto out;
    for (size_t i = 0; i < NKINDS; i++)
        if ((ret = parse_array(root, &kinds[i], &nm, err, errcap)) < 0)
            goto out;
    parse_anomaly(root, 0, &nm);
    rt_map_free(m);
    *m = nm;
    rt_map_init(&nm);
out:
    rt_map_free(&nm);
    json_decref(root);
    return ret;
}

static const kind_desc *kind_by_name(const char *name)
{
    for (size_t i = 0; name && i < NKINDS; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

static int parse_op(const json_t *o, delta_op *op, char *err, size_t errcap)
{
    const char *what = json_string_value(json_object_get(o, "op"));
    const json_t *obj = json_object_get(o, "obj");

    if (what == NULL || (strcmp(what, "put") != 0 && strcmp(what, "del") != 0))
        return pr_errf(err, errcap, WEFT_EPROTO, "delta op is neither \"put\" nor \"del\"");
    op->del = what[0] == 'd';
    op->kind = kind_by_name(json_string_value(json_object_get(o, "kind")));
    if (op->kind == NULL)
        return pr_errf(err, errcap, WEFT_EPROTO, "delta op has an unknown kind");
    if (obj == NULL)
        return pr_errf(err, errcap, WEFT_EPROTO, "delta op lacks \"obj\"");
    memset(&op->e, 0, sizeof(op->e));
    return op->kind->parse(obj, &op->e, op->del, err, errcap);
}

/* Every op is parsed before any applies, so a bad delta changes nothing. */
static int parse_ops(const json_t *arr, delta_op **ops, size_t *n, char *err, size_t errcap)
{
    const json_t *o;
    size_t i;
    int rc;

    if (!json_is_array(arr))
        return pr_errf(err, errcap, WEFT_EPROTO, "delta lacks an \"ops\" array");
    *n = json_array_size(arr);
    if ((*ops = calloc(*n ? *n : 1, sizeof(**ops))) == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(arr, i, o) if ((rc = parse_op(o, &(*ops)[i], err, errcap)) < 0) return rc;
    return 0;
}

static int apply_ops(rt_map *m, const delta_op *ops, size_t n)
{
    int rc;

    for (size_t i = 0; i < n; i++) {
        rt_vec *v = vec_of(m, ops[i].kind);
        if (ops[i].del)
            vec_del(v, (const char *)&ops[i].e); /* every element starts with its id */
        else if ((rc = vec_put(v, &ops[i].e)) < 0)
            return rc;
    }
    return 0;
}

int rt_map_apply_delta(rt_map *m, const char *json, size_t len, char *err, size_t errcap)
{
    delta_op *ops = NULL;
    uint64_t version, base;
    json_t *root;
    size_t n = 0;
    rt_map tmpkey;
    int ret;

    if ((ret = load_root(json, len, &root, err, errcap)) < 0)
        return ret;
    if ((ret = parse_version(root, "version", &version, err, errcap)) < 0 ||
        (ret = parse_version(root, "base", &base, err, errcap)) < 0)
        goto out;
    if (m->version == 0 || base != m->version || version <= base) {
        ret = pr_errf(
            err, errcap, WEFT_ECONFLICT, "delta %llu..%llu does not follow our map version %llu",
            (unsigned long long)base, (unsigned long long)version, (unsigned long long)m->version);
        goto out;
    }
    memset(&tmpkey, 0, sizeof(tmpkey));
    if ((ret = parse_key(root, &tmpkey, err, errcap)) < 0 ||
        (ret = parse_ops(json_object_get(root, "ops"), &ops, &n, err, errcap)) < 0 ||
        (ret = apply_ops(m, ops, n)) < 0)
        goto out;
    if (tmpkey.have_key) {
        memcpy(m->signing_key, tmpkey.signing_key, sizeof(m->signing_key));
        m->have_key = 1;
    }
    parse_anomaly(root, 1, m);
    m->version = version;
out:
    free(ops);
    json_decref(root);
    return ret;
}

/* ---- look-ups ---- */

size_t rt_map_count(const rt_vec *v)
{
    return v->n;
}

const void *rt_map_at(const rt_vec *v, size_t i)
{
    return i < v->n ? (const char *)v->v + i * v->esz : NULL;
}

static const void *get(const rt_vec *v, const char *id)
{
    long i = id ? vec_find(v, id) : -1;
    return i < 0 ? NULL : rt_map_at(v, (size_t)i);
}

const rt_map_router *rt_map_router_get(const rt_map *m, const char *id)
{
    return get(&m->routers, id);
}

const rt_map_service *rt_map_service_get(const rt_map *m, const char *id)
{
    return get(&m->services, id);
}

const rt_map_term *rt_map_term_get(const rt_map *m, const char *id)
{
    return get(&m->terms, id);
}

int rt_map_is_revoked(const rt_map *m, const char *identity_id)
{
    return get(&m->revoked, identity_id) != NULL;
}

const rt_map_grant *rt_map_grant_get(const rt_map *m, const char *identity, const char *service_id,
                                     const char *act)
{
    char id[RT_GRANT_ID_CAP];

    if ((size_t)snprintf(id, sizeof(id), "%s|%s|%s", identity, service_id, act) >= sizeof(id))
        return NULL;
    return get(&m->grants, id);
}

int rt_map_grant_withdrawn(const rt_map *m, const char *identity, const char *service_id,
                           const char *act, long long iat, long long now)
{
    const rt_map_grant *g = rt_map_grant_get(m, identity, service_id, act);

    return g != NULL && now < g->until && iat <= g->at;
}

const rt_map_service *rt_map_service_by_name(const rt_map *m, const char *name)
{
    for (size_t i = 0; name && i < m->services.n; i++) {
        const rt_map_service *s = rt_map_at(&m->services, i);
        if (strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

const rt_map_term *rt_map_term_of(const rt_map *m, const char *service_id, size_t i)
{
    for (size_t k = 0; k < m->terms.n; k++) {
        const rt_map_term *t = rt_map_at(&m->terms, k);
        if (strcmp(t->service, service_id) == 0 && i-- == 0)
            return t;
    }
    return NULL;
}

/* ---- router policies ---- */

/* Is item (len bytes) one of the ','-joined entries of list? */
static int in_list(const char *list, const char *item, size_t len)
{
    const char *p = list;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, item, len) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* One selector (len bytes): 1 match, 0 none, 2 unknown (roles not known). */
static int sel_one(const char *sel, size_t len, const char *id, const char *roles)
{
    if (len == 4 && memcmp(sel, "#all", 4) == 0)
        return 1;
    if (len > 1 && sel[0] == '@')
        return strlen(id) == len - 1 && memcmp(sel + 1, id, len - 1) == 0;
    if (len > 1 && sel[0] == '#')
        return roles == NULL ? 2 : in_list(roles, sel, len);
    return 0;
}

/* An entry: selectors joined by '&', all of which must match. */
static int entry_match(const char *e, size_t len, const char *id, const char *roles)
{
    int res = 1;

    while (len > 0) {
        const char *amp = memchr(e, '&', len);
        size_t n = amp ? (size_t)(amp - e) : len;
        int m = sel_one(e, n, id, roles);
        if (m == 0)
            return 0;
        if (m == 2)
            res = 2;
        len -= amp ? n + 1 : n;
        e += amp ? n + 1 : n;
    }
    return res;
}

/* 1 some entry matches, 2 none does but one might, 0 none can. */
static int list_match(const char *list, const char *id, const char *roles)
{
    const char *p = list;
    int res = 0;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int m = entry_match(p, n, id, roles);
        if (m == 1)
            return 1;
        if (m == 2)
            res = 2;
        p = end ? end + 1 : NULL;
    }
    return res;
}

int rt_sel_match(const char *list, const char *id, const char *roles)
{
    return list_match(list, id ? id : "", roles) != 0;
}

int rt_map_identity_allowed(const rt_map *m, const char *router_id, const char *identity,
                            const char *roles)
{
    const rt_map_router *r = rt_map_router_get(m, router_id);

    if (r == NULL || !r->policed || identity == NULL)
        return 1;
    /* Refused only when surely restricted and surely not let in here. */
    return !(list_match(r->restricted, identity, roles) == 1 &&
             list_match(r->allow, identity, roles) == 0);
}

int rt_map_service_router_ok(const rt_map *m, const rt_map_service *svc, const char *router_id)
{
    const rt_map_router *r = rt_map_router_get(m, router_id);

    if (svc == NULL || !svc->routers_set)
        return 1;
    return r != NULL && list_match(svc->routers, r->id, r->roles) == 1;
}
