/* The network map (controller/netmap.c) over a real SQLite store: the full
 * map, one delta per change with consecutive versions, revocations,
 * terminators and their owners, routers online, links joined from both ends'
 * reports, references left by deletions. Every map and delta is also applied
 * to the router's own map code (router/map.c): what the controller sends is
 * what a router reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/netmap.h"
#include "controller/store.h"
#include "router/map.h"
#include "weft/errors.h"

typedef struct {
    char dir[64];
    char path[128];
    ctl_store *s;
    ctl_netmap *m;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    json_t *deltas;
    rt_map rm; /* a router's copy, fed every delta */
} fx;

static void on_delta(void *arg, const char *json, size_t len)
{
    fx *f = arg;
    json_t *d = json_loadb(json, len, 0, NULL);
    char err[256] = "";

    assert_non_null(d);
    json_array_append_new(f->deltas, d);
    if (f->rm.version != 0 && rt_map_apply_delta(&f->rm, json, len, err, sizeof(err)) != 0)
        fail_msg("the router refuses the delta %.*s: %s", (int)len, json, err);
}

static void create(fx *f, const char *coll, const char *fmt, ...)
{
    va_list ap;
    json_t *o;

    va_start(ap, fmt);
    o = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    assert_non_null(o);
    assert_int_equal(ctl_store_create(f->s, coll, o), 0);
    json_decref(o);
}

static int update(fx *f, const char *coll, const char *id, json_t *fields)
{
    int rc = ctl_store_update(f->s, coll, id, fields);

    json_decref(fields);
    return rc;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/weft-netmap-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/weft.db", f->dir);
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
    crypto_sign_keypair(f->pk, f->sk);
    create(f, "routers", "{s:s, s:s, s:b, s:s, s:s}", "id", "r1", "name", "router1", "enrolled", 1,
           "edge_listen", "127.0.0.1:3022", "link_listen", "127.0.0.1:4022");
    create(f, "routers", "{s:s, s:s, s:b}", "id", "r2", "name", "pending", "enrolled", 0);
    create(f, "services", "{s:s, s:s, s:s}", "id", "s1", "name", "web", "host", "tcp:h:80");
    create(f, "identities", "{s:s, s:s, s:b}", "id", "i1", "name", "alice", "disabled", 0);
    create(f, "identities", "{s:s, s:s, s:b}", "id", "i2", "name", "mallory", "disabled", 1);
    assert_int_equal(ctl_netmap_new(f->s, f->pk, &f->m), 0);
    f->deltas = json_array();
    ctl_netmap_set_delta_cb(f->m, on_delta, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];

    ctl_netmap_free(f->m);
    rt_map_free(&f->rm);
    ctl_store_close(f->s);
    json_decref(f->deltas);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static json_t *full(fx *f)
{
    char *text = NULL;
    size_t len = 0;
    json_t *j;

    assert_int_equal(ctl_netmap_full(f->m, &text, &len), 0);
    j = json_loadb(text, len, 0, NULL);
    free(text);
    assert_non_null(j);
    return j;
}

/* The only op of delta i: "op kind id". */
static const char *op_of(fx *f, size_t i, char *buf, size_t cap)
{
    json_t *d = json_array_get(f->deltas, i), *ops = json_object_get(d, "ops"), *o;

    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "version")),
                     json_integer_value(json_object_get(d, "base")) + 1);
    assert_int_equal(json_array_size(ops), 1);
    o = json_array_get(ops, 0);
    snprintf(buf, cap, "%s %s %s", json_string_value(json_object_get(o, "op")),
             json_string_value(json_object_get(o, "kind")),
             json_string_value(json_object_get(json_object_get(o, "obj"), "id")));
    return buf;
}

static void test_full(void **state)
{
    fx *f = *state;
    json_t *m = full(f), *r;
    unsigned char key[64];
    size_t n = 0;

    assert_int_equal(json_integer_value(json_object_get(m, "version")), 1);
    /* Only enrolled routers are in the map. */
    assert_int_equal(json_array_size(json_object_get(m, "routers")), 1);
    r = json_array_get(json_object_get(m, "routers"), 0);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "r1");
    assert_string_equal(json_string_value(json_object_get(r, "edge_listen")), "127.0.0.1:3022");
    assert_true(json_is_false(json_object_get(r, "online")));
    assert_int_equal(json_array_size(json_object_get(m, "services")), 1);
    assert_int_equal(json_array_size(json_object_get(m, "terminators")), 0);
    assert_int_equal(json_array_size(json_object_get(m, "revoked")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "revoked"), 0)), "i2");
    const char *k = json_string_value(json_object_get(m, "signing_key"));
    assert_int_equal(sodium_base642bin(key, sizeof(key), k, strlen(k), NULL, &n, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(n, 32);
    assert_memory_equal(key, f->pk, 32);
    json_decref(m);
}

static void test_identity_changes(void **state)
{
    fx *f = *state;
    char b[128];

    assert_int_equal(update(f, "identities", "i1", json_pack("{s:b}", "disabled", 1)),
                     0);
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i1"), 0);
    assert_string_equal(op_of(f, 0, b, sizeof(b)), "put revoked i1");
    assert_int_equal(ctl_netmap_version(f->m), 2);
    /* Touching without a change emits nothing. */
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i1"), 0);
    assert_int_equal(json_array_size(f->deltas), 1);
    assert_int_equal(update(f, "identities", "i1", json_pack("{s:b}", "disabled", 0)),
                     0);
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i1"), 0);
    assert_string_equal(op_of(f, 1, b, sizeof(b)), "del revoked i1");
    /* The store finds records by name too; a name is not an id. */
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "alice"), 0);
    assert_int_equal(json_array_size(f->deltas), 2);
    /* Deleting an identity keeps it revoked: its certificate is still valid. */
    assert_int_equal(ctl_store_delete(f->s, "identities", "i2"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i2"), 0);
    assert_int_equal(json_array_size(f->deltas), 2); /* it was revoked already: no change */
    assert_int_equal(ctl_store_delete(f->s, "identities", "i1"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i1"), 0);
    assert_string_equal(op_of(f, 2, b, sizeof(b)), "put revoked i1");
    assert_int_equal(ctl_netmap_version(f->m), 4);
    json_t *m = full(f);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 4);
    assert_int_equal(json_array_size(json_object_get(m, "revoked")), 2);
    json_decref(m);
    /* ... also after a restart, until the last certificate has expired. */
    ctl_netmap_free(f->m);
    assert_int_equal(ctl_netmap_new(f->s, f->pk, &f->m), 0);
    ctl_netmap_set_delta_cb(f->m, on_delta, f);
    m = full(f);
    assert_int_equal(json_array_size(json_object_get(m, "revoked")), 2);
    json_decref(m);
    assert_int_equal(ctl_store_setting_set(f->s, "map.deleted_identities",
                                           "{\"i1\": 1, \"i2\": 4102444800}"),
                     0);
    ctl_netmap_free(f->m);
    assert_int_equal(ctl_netmap_new(f->s, f->pk, &f->m), 0);
    ctl_netmap_set_delta_cb(f->m, on_delta, f);
    m = full(f);
    assert_int_equal(json_array_size(json_object_get(m, "revoked")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "revoked"), 0)), "i2");
    json_decref(m);
}

/* Withdrawn grants: one delta for every pair, kept in full maps, applied by a router. */
static void test_grants(void **state)
{
    fx *f = *state;
    json_t *pairs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "identity", "i1", "service", "s1",
                              "identity", "i3", "service", "s1");
    json_t *m, *ops, *g;
    char *text = NULL, err[256] = "";
    size_t len = 0;

    assert_int_equal(ctl_netmap_full(f->m, &text, &len), 0);
    assert_int_equal(rt_map_apply_full(&f->rm, text, len, err, sizeof(err)), 0);
    free(text);
    assert_int_equal(ctl_netmap_grants_revoke(f->m, pairs, "dial", 1000, 1900, NULL), 0);
    ops = json_object_get(json_array_get(f->deltas, 0), "ops");
    assert_int_equal(json_array_size(ops), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 0), "kind")),
                        "grant_revoked");
    assert_true(rt_map_grant_withdrawn(&f->rm, "i3", "s1", "dial", 999, 1500));
    assert_false(rt_map_grant_withdrawn(&f->rm, "i3", "s1", "bind", 999, 1500));
    m = full(f);
    g = json_object_get(m, "grants_revoked");
    assert_int_equal(json_array_size(g), 2);
    json_decref(m);
    /* A later withdrawal forgets entries whose tokens have all expired. */
    json_array_remove(pairs, 1);
    assert_int_equal(ctl_netmap_grants_revoke(f->m, pairs, "bind", 5000, 5900,
                                              "bind policy \"b\" deleted or changed"),
                     0);
    m = full(f);
    g = json_object_get(m, "grants_revoked");
    assert_int_equal(json_array_size(g), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(g, 0), "cause")),
                        "bind policy \"b\" deleted or changed");
    json_decref(m);
    /* The router keeps the cause for the hosting edge it tells. */
    assert_string_equal(rt_map_grant_get(&f->rm, "i1", "s1", "bind")->cause,
                        "bind policy \"b\" deleted or changed");
    assert_int_equal(ctl_netmap_grants_revoke(f->m, pairs, "host", 1, 2, NULL), WEFT_EINVAL);
    json_decref(pairs);
}

static void test_services_routers(void **state)
{
    fx *f = *state;
    char b[128];

    create(f, "services", "{s:s, s:s, s:s}", "id", "s2", "name", "db", "hosted_by", "r1");
    assert_int_equal(ctl_netmap_touch(f->m, "services", "s2"), 0);
    assert_string_equal(op_of(f, 0, b, sizeof(b)), "put service s2");
    json_t *obj = json_object_get(json_array_get(json_object_get(json_array_get(f->deltas, 0), "ops"), 0), "obj");
    assert_string_equal(json_string_value(json_object_get(obj, "hosted_by")), "r1");
    assert_string_equal(json_string_value(json_object_get(obj, "name")), "db");
    assert_int_equal(ctl_store_delete(f->s, "services", "s2"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "services", "s2"), 0);
    assert_string_equal(op_of(f, 1, b, sizeof(b)), "del service s2");
    /* A router enters the map when it enrols, and goes online with its channel. */
    assert_int_equal(update(f, "routers", "r2",
                                      json_pack("{s:b, s:s}", "enrolled", 1, "edge_listen", "e:1")),
                     0);
    assert_int_equal(ctl_netmap_touch(f->m, "routers", "r2"), 0);
    assert_string_equal(op_of(f, 2, b, sizeof(b)), "put router r2");
    assert_int_equal(ctl_netmap_router_online(f->m, "r2", 1), 0);
    assert_string_equal(op_of(f, 3, b, sizeof(b)), "put router r2");
    assert_true(ctl_netmap_router_is_online(f->m, "r2"));
    assert_false(ctl_netmap_router_is_online(f->m, "r1"));
    assert_int_equal(ctl_netmap_router_online(f->m, "r2", 0), 0);
    assert_string_equal(op_of(f, 4, b, sizeof(b)), "put router r2");
    assert_int_equal(ctl_netmap_version(f->m), 6);
    /* Other collections do not change the map. */
    assert_int_equal(ctl_netmap_touch(f->m, "policies", "p1"), 0);
    assert_int_equal(json_array_size(f->deltas), 5);
}

/* Router policies reach the map's router and service objects, a policy
 * change re-publishes them in one delta, and a router's copy answers from
 * them (docs/policies.md "Router policies"). */
static void test_router_policies(void **state)
{
    fx *f = *state;
    char err[256] = "", *text = NULL;
    size_t len = 0;
    const rt_map_service *web;

    create(f, "routers", "{s:s, s:s, s:b, s:[s]}", "id", "r3", "name", "router3", "enrolled", 1,
           "roles", "eu");
    assert_int_equal(ctl_netmap_touch(f->m, "routers", "r3"), 0);
    create(f, "policies", "{s:s, s:s, s:s, s:s, s:[s,s], s:[], s:[s]}", "id", "p1", "name", "fleet",
           "type", "router", "semantic", "AnyOf", "identity_roles", "#fleet", "@alice",
           "service_roles", "router_roles", "@router1");
    create(f, "policies", "{s:s, s:s, s:s, s:s, s:[], s:[s], s:[s]}", "id", "p2", "name", "web-eu",
           "type", "service-router", "semantic", "AnyOf", "identity_roles", "service_roles",
           "@web", "router_roles", "#eu");
    assert_int_equal(ctl_netmap_touch(f->m, "policies", "p2"), 0);
    assert_int_equal(ctl_netmap_full(f->m, &text, &len), 0);
    assert_int_equal(rt_map_apply_full(&f->rm, text, len, err, sizeof(err)), 0);
    free(text);
    /* alice is restricted by name (@i1 in the map) to router1. */
    assert_true(rt_map_identity_allowed(&f->rm, "r1", "i1", NULL));
    assert_false(rt_map_identity_allowed(&f->rm, "r3", "i1", NULL));
    assert_false(rt_map_identity_allowed(&f->rm, "r3", "i7", "#fleet"));
    assert_true(rt_map_identity_allowed(&f->rm, "r3", "i7", "#ops"));
    web = rt_map_service_get(&f->rm, "s1");
    assert_non_null(web);
    assert_true(rt_map_service_router_ok(&f->rm, web, "r3"));
    assert_false(rt_map_service_router_ok(&f->rm, web, "r1"));
    /* A router gaining the role carries the service; the delta says so. */
    assert_int_equal(update(f, "routers", "r1", json_pack("{s:[s]}", "roles", "eu")), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "routers", "r1"), 0);
    web = rt_map_service_get(&f->rm, "s1");
    assert_true(rt_map_service_router_ok(&f->rm, web, "r1"));
    /* Deleting the router policy frees alice at once (one delta, both routers). */
    assert_int_equal(ctl_store_delete(f->s, "policies", "p1"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "policies", "p1"), 0);
    assert_true(rt_map_identity_allowed(&f->rm, "r3", "i1", "#fleet"));
    assert_int_equal(ctl_netmap_version(f->m), f->rm.version);
}

static void test_terminators(void **state)
{
    fx *f = *state;
    int a, b2;
    char b[128];
    json_t *t1 = json_pack("{s:s, s:s, s:s, s:s}", "id", "t1", "service", "s1", "router", "r1",
                           "identity", "i1");
    json_t *t2 = json_pack("{s:s, s:s, s:s}", "id", "t2", "service", "s1", "router", "r1");
    json_t *bad = json_pack("{s:s, s:s, s:s}", "id", "t3", "service", "nosuch", "router", "r1");
    json_t *other = json_pack("{s:s, s:s, s:s}", "id", "t1", "service", "s1", "router", "r9");

    assert_int_equal(ctl_netmap_term_put(f->m, &a, t1), 0);
    assert_string_equal(op_of(f, 0, b, sizeof(b)), "put terminator t1");
    assert_int_equal(ctl_netmap_term_put(f->m, &a, t2), 0);
    assert_int_equal(ctl_netmap_term_put(f->m, &a, bad), WEFT_ENOTFOUND);
    assert_int_equal(ctl_netmap_term_put(f->m, &a, json_object_get(t1, "id")), WEFT_EINVAL);
    /* Another router cannot take or remove a terminator it does not hold. */
    assert_int_equal(ctl_netmap_term_put(f->m, &b2, other), WEFT_EDENIED);
    assert_int_equal(ctl_netmap_term_del(f->m, &b2, "t1"), WEFT_EDENIED);
    /* The same router on a new connection takes it over. */
    assert_int_equal(ctl_netmap_term_put(f->m, &b2, t1), 0);
    assert_int_equal(json_array_size(f->deltas), 2); /* unchanged object: no delta */
    json_t *m = full(f);
    assert_int_equal(json_array_size(json_object_get(m, "terminators")), 2);
    json_decref(m);
    /* Dropping owner a removes only what a still owns, in one delta. */
    ctl_netmap_terms_drop(f->m, &a);
    assert_string_equal(op_of(f, 2, b, sizeof(b)), "del terminator t2");
    assert_int_equal(ctl_netmap_term_del(f->m, &b2, "t1"), 0);
    assert_string_equal(op_of(f, 3, b, sizeof(b)), "del terminator t1");
    assert_int_equal(ctl_netmap_term_del(f->m, &b2, "t1"), 0); /* idempotent */
    ctl_netmap_terms_drop(f->m, &b2);                          /* nothing left: no delta */
    assert_int_equal(json_array_size(f->deltas), 4);
    assert_int_equal(ctl_netmap_version(f->m), 5);
    json_decref(t1);
    json_decref(t2);
    json_decref(bad);
    json_decref(other);
}

/* ---- links ---- */

/* The router's copy starts from the full map now and follows every delta. */
static void router_follows(fx *f)
{
    char *text = NULL, err[256] = "";
    size_t len = 0;

    assert_int_equal(ctl_netmap_full(f->m, &text, &len), 0);
    rt_map_init(&f->rm);
    if (rt_map_apply_full(&f->rm, text, len, err, sizeof(err)) != 0)
        fail_msg("the router refuses the full map: %s", err);
    free(text);
}

static void two_routers_online(fx *f)
{
    assert_int_equal(update(f, "routers", "r2", json_pack("{s:b}", "enrolled", 1)), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "routers", "r2"), 0);
    assert_int_equal(ctl_netmap_router_online(f->m, "r1", 1), 0);
    assert_int_equal(ctl_netmap_router_online(f->m, "r2", 1), 0);
    json_array_clear(f->deltas);
}

static int report(fx *f, const char *router, const char *fmt, ...)
{
    va_list ap;
    json_t *r;
    int rc;

    va_start(ap, fmt);
    r = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    rc = ctl_netmap_link_report(f->m, router, r);
    json_decref(r);
    return rc;
}

static int one_link(fx *f, const char *router, const char *peer, int rtt, int up, int queue)
{
    return report(f, router, "{s:[{s:s, s:i, s:b, s:i}]}", "links", "peer", peer, "rtt_us", rtt,
                  "up", up, "queue", queue);
}

/* The only op of the last delta, as "op kind id up rtt". */
static const char *last_link_op(fx *f, char *buf, size_t cap)
{
    size_t n = json_array_size(f->deltas);
    json_t *ops = json_object_get(json_array_get(f->deltas, n - 1), "ops");
    json_t *o = json_array_get(ops, 0), *obj = json_object_get(o, "obj");

    assert_true(n > 0);
    assert_int_equal(json_array_size(ops), 1);
    snprintf(buf, cap, "%s %s %s %s %lld", json_string_value(json_object_get(o, "op")),
             json_string_value(json_object_get(o, "kind")),
             json_string_value(json_object_get(obj, "id")),
             json_is_true(json_object_get(obj, "up")) ? "up" : "down",
             (long long)json_integer_value(json_object_get(obj, "rtt_us")));
    return buf;
}

static const rt_map_link *router_link(fx *f)
{
    return rt_map_count(&f->rm.links) == 1 ? rt_map_at(&f->rm.links, 0) : NULL;
}

static void test_links_merge(void **state)
{
    fx *f = *state;
    char b[160];

    two_routers_online(f);
    router_follows(f);
    /* One end alone: in the map, but not up. */
    assert_int_equal(one_link(f, "r2", "r1", 400, 1, 0), 0);
    assert_string_equal(last_link_op(f, b, sizeof(b)), "put link r1|r2 down 400");
    /* Both ends up: up, mean RTT, deeper queue. */
    assert_int_equal(one_link(f, "r1", "r2", 600, 1, 70000), 0);
    assert_string_equal(last_link_op(f, b, sizeof(b)), "put link r1|r2 up 500");
    assert_non_null(router_link(f));
    assert_true(router_link(f)->up);
    assert_int_equal(router_link(f)->rtt_us, 500);
    json_t *links = ctl_netmap_links(f->m);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(links, 0), "queue")), 70000);
    json_decref(links);
    assert_int_equal(ctl_netmap_links_up(f->m), 1);
    /* A small change is seen by views but not sent to every router. */
    size_t nd = json_array_size(f->deltas);
    assert_int_equal(one_link(f, "r1", "r2", 620, 1, 70000), 0);
    assert_int_equal(json_array_size(f->deltas), nd);
    links = ctl_netmap_links(f->m);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(links, 0), "rtt_us")), 510);
    json_decref(links);
    /* A large one is. */
    assert_int_equal(one_link(f, "r1", "r2", 2000, 1, 70000), 0);
    assert_string_equal(last_link_op(f, b, sizeof(b)), "put link r1|r2 up 1200");
    /* One end says down: down. */
    assert_int_equal(one_link(f, "r2", "r1", 400, 0, 0), 0);
    assert_string_equal(last_link_op(f, b, sizeof(b)), "put link r1|r2 down 1200");
    assert_false(router_link(f)->up);
    assert_int_equal(ctl_netmap_links_up(f->m), 0);
}

static void test_links_offline(void **state)
{
    fx *f = *state;
    char b[160];

    two_routers_online(f);
    router_follows(f);
    assert_int_equal(one_link(f, "r1", "r2", 300, 1, 0), 0);
    assert_int_equal(one_link(f, "r2", "r1", 300, 1, 0), 0);
    assert_true(router_link(f)->up);
    /* r2 goes offline: its router put and its link down, in one delta. */
    assert_int_equal(ctl_netmap_router_online(f->m, "r2", 0), 0);
    json_t *ops = json_object_get(json_array_get(f->deltas, json_array_size(f->deltas) - 1), "ops");
    assert_int_equal(json_array_size(ops), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 1), "kind")), "link");
    assert_false(router_link(f)->up);
    /* r1 stops reporting it too: the link leaves, its del naming both ends. */
    assert_int_equal(report(f, "r1", "{s:[]}", "links"), 0);
    assert_string_equal(last_link_op(f, b, sizeof(b)), "del link r1|r2 down 0");
    json_t *obj = json_object_get(json_array_get(json_object_get(json_array_get(f->deltas,
        json_array_size(f->deltas) - 1), "ops"), 0), "obj");
    assert_string_equal(json_string_value(json_object_get(obj, "a")), "r1");
    assert_string_equal(json_string_value(json_object_get(obj, "b")), "r2");
    assert_null(router_link(f));
    json_t *m = full(f);
    assert_int_equal(json_array_size(json_object_get(m, "links")), 0);
    json_decref(m);
}

static void test_links_bad_reports(void **state)
{
    fx *f = *state;
    size_t nd;

    two_routers_online(f);
    nd = json_array_size(f->deltas);
    assert_int_equal(report(f, "r1", "{s:s}", "links", "no"), WEFT_EINVAL);
    assert_int_equal(report(f, "r1", "{s:[{s:s, s:b}]}", "links", "peer", "r1", "up", 1),
                     WEFT_EINVAL); /* itself */
    assert_int_equal(report(f, "r1", "{s:[{s:s, s:i, s:b}]}", "links", "peer", "r2", "rtt_us", -1,
                            "up", 1),
                     WEFT_EINVAL);
    assert_int_equal(report(f, "r1", "{s:[{s:s, s:s}]}", "links", "peer", "r2", "up", "yes"),
                     WEFT_EINVAL);
    assert_int_equal(one_link(f, "nosuch", "r1", 1, 1, 0), WEFT_ENOTFOUND);
    /* A peer not in the map is left out. */
    assert_int_equal(one_link(f, "r1", "ghost", 100, 1, 0), 0);
    assert_int_equal(json_array_size(f->deltas), nd);
    json_t *links = ctl_netmap_links(f->m);
    assert_int_equal(json_array_size(links), 0);
    json_decref(links);
}

/* ---- references left by deletions ---- */

static void test_leftovers(void **state)
{
    fx *f = *state;
    json_t *t = json_pack("{s:s, s:s, s:s}", "id", "t1", "service", "s1", "router", "r1"), *rec;
    int owner;

    two_routers_online(f);
    assert_int_equal(update(f, "services", "s1", json_pack("{s:s}", "hosted_by", "r2")), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "services", "s1"), 0);
    assert_int_equal(ctl_netmap_term_put(f->m, &owner, t), 0);
    assert_int_equal(one_link(f, "r1", "r2", 100, 1, 0), 0);
    router_follows(f);
    assert_int_equal(rt_map_count(&f->rm.terms), 1);
    /* Deleting r2 clears hosted_by (store and map) and removes its link, in one delta. */
    assert_int_equal(ctl_store_delete(f->s, "routers", "r2"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "routers", "r2"), 0);
    json_t *ops = json_object_get(json_array_get(f->deltas, json_array_size(f->deltas) - 1), "ops");
    assert_int_equal(json_array_size(ops), 3); /* del router, put service, del link */
    assert_int_equal(ctl_store_get(f->s, "services", "s1", &rec), 0);
    assert_null(json_object_get(rec, "hosted_by"));
    json_decref(rec);
    assert_string_equal(rt_map_service_get(&f->rm, "s1")->hosted_by, "");
    assert_int_equal(rt_map_count(&f->rm.links), 0);
    /* Deleting s1 removes its terminator in the same delta. */
    assert_int_equal(ctl_store_delete(f->s, "services", "s1"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "services", "s1"), 0);
    ops = json_object_get(json_array_get(f->deltas, json_array_size(f->deltas) - 1), "ops");
    assert_int_equal(json_array_size(ops), 2);
    assert_int_equal(rt_map_count(&f->rm.terms), 0);
    assert_int_equal(ctl_netmap_term_del(f->m, &owner, "t1"), 0); /* already gone */
    json_decref(t);
}

/* ---- anomaly settings (docs/policies.md "Anomaly detection") ---- */

static void test_anomaly(void **state)
{
    fx *f = *state;
    json_t *m = full(f), *set = json_pack("{s:i, s:f}", "window_s", 60, "factor", 2.5), *d;
    ctl_netmap *again = NULL;

    assert_null(json_object_get(m, "anomaly")); /* none: routers use router.json */
    json_decref(m);
    router_follows(f);
    assert_int_equal(f->rm.anomaly.have, 0);
    /* Set: one delta without ops; the router's copy has the two keys. */
    assert_int_equal(ctl_netmap_set_anomaly(f->m, set), 0);
    assert_int_equal(json_array_size(f->deltas), 1);
    d = json_array_get(f->deltas, 0);
    assert_int_equal(json_array_size(json_object_get(d, "ops")), 0);
    assert_true(json_equal(json_object_get(d, "anomaly"), set));
    assert_int_equal(f->rm.anomaly.have, (1u << PR_ANOM_K_WINDOW_S) | (1u << PR_ANOM_K_FACTOR));
    assert_true(f->rm.anomaly.v[PR_ANOM_K_WINDOW_S] == 60.0);
    assert_true(f->rm.anomaly.v[PR_ANOM_K_FACTOR] == 2.5);
    /* The same again is no delta; the full map carries them. */
    assert_int_equal(ctl_netmap_set_anomaly(f->m, set), 0);
    assert_int_equal(json_array_size(f->deltas), 1);
    m = full(f);
    assert_true(json_equal(json_object_get(m, "anomaly"), set));
    json_decref(m);
    /* A new map reads them from the store's setting. */
    assert_int_equal(ctl_store_setting_set(f->s, CTL_ANOMALY_SETTING, "{\"learn\":7}"), 0);
    assert_int_equal(ctl_netmap_new(f->s, f->pk, &again), 0);
    assert_int_equal(json_integer_value(json_object_get(ctl_netmap_anomaly(again), "learn")), 7);
    ctl_netmap_free(again);
    /* Cleared: "anomaly": null, and the router is back to its own. */
    assert_int_equal(ctl_netmap_set_anomaly(f->m, NULL), 0);
    d = json_array_get(f->deltas, 1);
    assert_true(json_is_null(json_object_get(d, "anomaly")));
    assert_int_equal(f->rm.anomaly.have, 0);
    assert_null(ctl_netmap_anomaly(f->m));
    json_decref(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_routers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_bad_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anomaly, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
