/* The network map (controller/netmap.c) over a real SQLite store: the full
 * map, one delta per change with consecutive versions, revocations,
 * terminators and their owners, routers online. */
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
#include "weft/errors.h"

typedef struct {
    char dir[64];
    char path[128];
    ctl_store *s;
    ctl_netmap *m;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    json_t *deltas;
} fx;

static void on_delta(void *arg, const char *json, size_t len)
{
    fx *f = arg;
    json_t *d = json_loadb(json, len, 0, NULL);

    assert_non_null(d);
    json_array_append_new(f->deltas, d);
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
    /* Deleting a disabled identity lifts its revocation: it has no certificate left to use. */
    assert_int_equal(ctl_store_delete(f->s, "identities", "i2"), 0);
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "i2"), 0);
    assert_string_equal(op_of(f, 2, b, sizeof(b)), "del revoked i2");
    assert_int_equal(ctl_netmap_version(f->m), 4);
    json_t *m = full(f);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 4);
    assert_int_equal(json_array_size(json_object_get(m, "revoked")), 0);
    json_decref(m);
    /* The store finds records by name too; a name is not an id. */
    assert_int_equal(ctl_netmap_touch(f->m, "identities", "alice"), 0);
    assert_int_equal(json_array_size(f->deltas), 3);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_routers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminators, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
