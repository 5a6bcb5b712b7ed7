/* The SQLite store, on real files in a private temporary directory. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "controller/store.h"
#include "weft/errors.h"

/* The schema version this binary migrates to (one per migration script). */
#define STORE_VERSION 5

struct fx {
    char dir[64];
    char path[128];
    ctl_store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/weft-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/weft.db", f->dir);
    if (ctl_store_open(f->path, &f->s) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    struct fx *f = *state;
    char p[160];

    ctl_store_close(f->s);
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Reads one integer with a separate raw connection, as another process would. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static json_t *ident(const char *id, const char *name, const char *role)
{
    json_t *o = json_pack("{s:s, s:s, s:[]}", "id", id, "name", name, "roles");

    assert_non_null(o);
    if (role != NULL)
        json_array_append_new(json_object_get(o, "roles"), json_string(role));
    return o;
}

static int create_ident(ctl_store *s, const char *id, const char *name, const char *role)
{
    json_t *o = ident(id, name, role);
    int rc = ctl_store_create(s, "identities", o);

    json_decref(o);
    return rc;
}

static void assert_rfc3339(json_t *v)
{
    int y, mo, d, h, mi, sec, n = 0;

    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), 20);
    assert_int_equal(sscanf(json_string_value(v), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h,
                            &mi, &sec, &n),
                     6);
    assert_int_equal(n, 20);
    assert_true(y >= 2024);
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    assert_non_null(v);
    return v;
}

/* ---- open and migrations ----------------------------------------------- */

static void migrates_an_empty_file(void **state)
{
    struct fx *f = *state;

    assert_int_equal(ctl_store_schema_version(f->s), STORE_VERSION);
    assert_int_equal(raw_int(f->path, "SELECT value FROM meta WHERE key = 'schema_version'"),
                     STORE_VERSION);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                      " AND name IN ('identities', 'services', 'policies',"
                                      " 'routers', 'tokens', 'settings', 'meta')"),
                     7);
    /* WAL is a property of the file, visible to any connection. */
    assert_int_equal(raw_int(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static void reopening_keeps_data(void **state)
{
    struct fx *f = *state;
    json_t *got = NULL;
    char *v = NULL;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", "sensors"), 0);
    assert_int_equal(ctl_store_setting_set(f->s, "network", "acme"), 0);
    ctl_store_close(f->s);
    f->s = NULL;
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
    assert_int_equal(ctl_store_schema_version(f->s), STORE_VERSION);
    assert_int_equal(ctl_store_get(f->s, "identities", "alpha", &got), 0);
    assert_string_equal(str(got, "id"), "id-1");
    assert_int_equal(ctl_store_setting_get(f->s, "network", &v), 0);
    assert_string_equal(v, "acme");
    free(v);
    json_decref(got);
}

static void refuses_a_newer_schema(void **state)
{
    struct fx *f = *state;
    ctl_store *s2 = NULL;

    ctl_store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    assert_int_equal(ctl_store_open(f->path, &s2), WEFT_EVERSION);
    assert_null(s2);
    /* Refusing must not touch the file. */
    assert_int_equal(raw_int(f->path, "SELECT value FROM meta WHERE key = 'schema_version'"), 99);
    raw_exec(f->path, "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
}

static void open_reports_an_unwritable_path(void **state)
{
    ctl_store *s = NULL;

    assert_int_equal(ctl_store_open("/nonexistent-dir/weft.db", &s), WEFT_ESTORE);
    assert_null(s);
    assert_int_equal(ctl_store_open(NULL, &s), WEFT_EINVAL);
}

static void open_refuses_a_file_that_is_not_a_store(void **state)
{
    struct fx *f = *state;
    char path[160];
    ctl_store *s = NULL;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/junk.db", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++)
        fputs("this is not an SQLite database file ", fp);
    fclose(fp);
    assert_int_equal(ctl_store_open(path, &s), WEFT_ESTORE);
    assert_null(s);
    unlink(path);
}

/* Two handles on one file (a second controller process, a backup tool) see
 * each other's committed writes; the second open does not migrate again. */
static void two_handles_share_one_file(void **state)
{
    struct fx *f = *state;
    ctl_store *s2 = NULL;
    json_t *got = NULL;

    assert_int_equal(ctl_store_open(f->path, &s2), 0);
    assert_int_equal(ctl_store_schema_version(s2), STORE_VERSION);
    assert_int_equal(create_ident(s2, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "alpha", &got), 0);
    json_decref(got);
    assert_int_equal(create_ident(f->s, "id-2", "alpha", NULL), WEFT_EEXISTS);
    assert_int_equal(ctl_store_delete(f->s, "identities", "id-1"), 0);
    assert_int_equal(ctl_store_get(s2, "identities", "id-1", &got), WEFT_ENOTFOUND);
    ctl_store_close(s2);
}

/* ---- records ----------------------------------------------------------- */

static void create_then_get_by_id_and_name(void **state)
{
    struct fx *f = *state;
    json_t *in = json_pack("{s:s, s:s, s:[s,s], s:s, s:s, s:b, s:s}", "id", "id-7", "name",
                           "gw-7", "roles", "gw", "eu", "binding", "imei", "imei",
                           "356938035643809", "admin", 1, "note", "rack 4");
    json_t *a = NULL, *b = NULL;

    assert_int_equal(ctl_store_create(f->s, "identities", in), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-7", &a), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "gw-7", &b), 0);
    assert_true(json_equal(a, b));
    assert_string_equal(str(a, "name"), "gw-7");
    assert_string_equal(str(a, "binding"), "imei");
    assert_true(json_is_true(json_object_get(a, "admin")));
    assert_true(json_is_false(json_object_get(a, "disabled")));
    assert_true(json_is_false(json_object_get(a, "enrolled")));
    assert_true(json_is_null(json_object_get(a, "iccid")));
    assert_true(json_equal(json_object_get(a, "roles"), json_object_get(in, "roles")));
    assert_string_equal(str(a, "note"), "rack 4"); /* extra fields survive */
    assert_rfc3339(json_object_get(a, "created_at"));
    assert_rfc3339(json_object_get(a, "updated_at"));
    assert_int_equal(ctl_store_get(f->s, "identities", "nobody", &b), WEFT_ENOTFOUND);
    json_decref(in);
    json_decref(a);
    json_decref(b);
}

static void defaults_fill_absent_fields(void **state)
{
    struct fx *f = *state;
    json_t *p = json_pack("{s:s, s:s, s:s}", "id", "p1", "name", "pol", "type", "dial");
    json_t *r = json_pack("{s:s, s:s}", "id", "r1", "name", "edge-eu");
    json_t *got = NULL;

    assert_int_equal(ctl_store_create(f->s, "policies", p), 0);
    assert_int_equal(ctl_store_get(f->s, "policies", "p1", &got), 0);
    assert_string_equal(str(got, "semantic"), "AnyOf");
    assert_int_equal(json_array_size(json_object_get(got, "identity_roles")), 0);
    assert_true(json_is_array(json_object_get(got, "service_roles")));
    json_decref(got);
    assert_int_equal(ctl_store_create(f->s, "routers", r), 0);
    assert_int_equal(ctl_store_get(f->s, "routers", "edge-eu", &got), 0);
    assert_true(json_is_false(json_object_get(got, "enrolled")));
    assert_true(json_is_null(json_object_get(got, "edge_listen")));
    json_decref(got);
    json_decref(p);
    json_decref(r);
}

static void duplicates_are_refused(void **state)
{
    struct fx *f = *state;
    json_t *svc = json_pack("{s:s, s:s}", "id", "id-2", "name", "alpha");

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(create_ident(f->s, "id-2", "alpha", NULL), WEFT_EEXISTS);
    assert_int_equal(create_ident(f->s, "id-1", "beta", NULL), WEFT_EEXISTS);
    /* Names are unique per collection only. */
    assert_int_equal(ctl_store_create(f->s, "services", svc), 0);
    json_decref(svc);
}

static void invalid_records_are_refused(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "{\"id\": \"x\"}",
        "{\"name\": \"x\"}",
        "{\"id\": \"\", \"name\": \"x\"}",
        "{\"id\": \"x\", \"name\": \"x\", \"admin\": \"yes\"}",
        "{\"id\": \"x\", \"name\": \"x\", \"roles\": \"a\"}",
        "{\"id\": \"x\", \"name\": \"x\", \"roles\": [1]}",
        "{\"id\": \"x\", \"name\": \"x\", \"binding\": \"loose\"}",
        "{\"id\": \"x\", \"name\": \"x\", \"imei\": 35693}",
        "{\"id\": \"x\\u0000y\", \"name\": \"x\"}",
    };
    json_t *pol = json_pack("{s:s, s:s}", "id", "p", "name", "p"); /* no type */
    json_t *items = NULL;
    int64_t total = -1;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *o = json_loads(bad[i], JSON_ALLOW_NUL, NULL);
        assert_non_null(o);
        assert_int_equal(ctl_store_create(f->s, "identities", o), WEFT_EINVAL);
        json_decref(o);
    }
    assert_int_equal(ctl_store_create(f->s, "policies", pol), WEFT_EINVAL);
    assert_int_equal(ctl_store_create(f->s, "widgets", pol), WEFT_EINVAL);
    assert_int_equal(ctl_store_get(f->s, "widgets", "p", &items), WEFT_EINVAL);
    assert_int_equal(ctl_store_list(f->s, "widgets", NULL, &items, &total), WEFT_EINVAL);
    assert_int_equal(ctl_store_delete(f->s, "widgets", "p"), WEFT_EINVAL);
    assert_int_equal(ctl_store_list(f->s, "identities", NULL, &items, &total), 0);
    assert_int_equal(total, 0);
    json_decref(items);
    json_decref(pol);
}

static void update_merges(void **state)
{
    struct fx *f = *state;
    json_t *in = json_pack("{s:s, s:s, s:[s], s:s, s:s}", "id", "id-1", "name", "alpha", "roles",
                           "a", "iccid", "8944", "note", "x");
    json_t *patch = json_pack("{s:s, s:b, s:n, s:s}", "name", "alpha2", "disabled", 1, "note",
                              "extra", "y");
    json_t *got = NULL, *bad;

    assert_int_equal(ctl_store_create(f->s, "identities", in), 0);
    assert_int_equal(create_ident(f->s, "id-2", "taken", NULL), 0);
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", patch), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-1", &got), 0);
    assert_string_equal(str(got, "name"), "alpha2");
    assert_true(json_is_true(json_object_get(got, "disabled")));
    assert_string_equal(str(got, "iccid"), "8944"); /* untouched fields kept */
    assert_int_equal(json_array_size(json_object_get(got, "roles")), 1);
    assert_null(json_object_get(got, "note")); /* null removes an extra field */
    assert_string_equal(str(got, "extra"), "y");
    assert_true(strcmp(str(got, "updated_at"), str(got, "created_at")) >= 0);
    json_decref(got);

    bad = json_pack("{s:s}", "name", "taken");
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", bad), WEFT_EEXISTS);
    json_decref(bad);
    bad = json_pack("{s:s}", "id", "id-9");
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", bad), WEFT_EINVAL);
    json_decref(bad);
    bad = json_pack("{s:n}", "name");
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", bad), WEFT_EINVAL);
    assert_int_equal(ctl_store_update(f->s, "identities", "nope", patch), WEFT_ENOTFOUND);
    /* Failed updates changed nothing. */
    assert_int_equal(ctl_store_get(f->s, "identities", "alpha2", &got), 0);
    json_decref(got);
    json_decref(bad);
    json_decref(in);
    json_decref(patch);
}

/* ---- list -------------------------------------------------------------- */

static void assert_names(json_t *items, const char *const *names, size_t n)
{
    assert_int_equal(json_array_size(items), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(str(json_array_get(items, i), "name"), names[i]);
}

static void list_pages_filters_and_counts(void **state)
{
    struct fx *f = *state;
    char id[32], name[32];
    json_t *items = NULL;
    int64_t total = -1;
    ctl_list_opts o = {.limit = 3, .offset = 2};

    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        snprintf(name, sizeof(name), "dev-%02d", 9 - i); /* insert out of order */
        assert_int_equal(create_ident(f->s, id, name, i % 2 ? "odd" : "even"), 0);
    }
    assert_int_equal(create_ident(f->s, "x1", "dew", NULL), 0);
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 11);
    assert_names(items, (const char *const[]){"dev-02", "dev-03", "dev-04"}, 3);
    json_decref(items);

    o = (ctl_list_opts){.name = "dev-0*", .role = "odd", .limit = 2};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 5);
    assert_names(items, (const char *const[]){"dev-00", "dev-02"}, 2);
    json_decref(items);

    o = (ctl_list_opts){.name = "dew"};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 1);
    json_decref(items);

    o = (ctl_list_opts){.name = "*", .offset = 100};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 11);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
}

static void list_prefix_treats_wildcards_literally(void **state)
{
    struct fx *f = *state;
    json_t *items = NULL;
    int64_t total = -1;
    ctl_list_opts o = {.name = "a_*"};

    assert_int_equal(create_ident(f->s, "1", "a_c", NULL), 0);
    assert_int_equal(create_ident(f->s, "2", "abc", NULL), 0);
    assert_int_equal(create_ident(f->s, "3", "a%c", NULL), 0);
    assert_int_equal(create_ident(f->s, "4", "A_C", NULL), 0);
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 1);
    assert_names(items, (const char *const[]){"a_c"}, 1);
    json_decref(items);

    o = (ctl_list_opts){.name = "a%*"};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_names(items, (const char *const[]){"a%c"}, 1);
    json_decref(items);

    o = (ctl_list_opts){.name = "a\xff*"};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, 0);
    json_decref(items);
}

static void list_rejects_bad_paging(void **state)
{
    struct fx *f = *state;
    json_t *items = NULL;
    int64_t total = -1;
    ctl_list_opts o[] = {{.limit = -1}, {.limit = 1001}, {.offset = -1}};

    for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
        assert_int_equal(ctl_store_list(f->s, "identities", &o[i], &items, &total), WEFT_EINVAL);
    o[0] = (ctl_list_opts){.limit = 1000};
    assert_int_equal(ctl_store_list(f->s, "identities", &o[0], &items, &total), 0);
    json_decref(items);
}

static void policy_role_filter_searches_both_sides(void **state)
{
    struct fx *f = *state;
    json_t *p1 = json_pack("{s:s, s:s, s:s, s:[s], s:[s]}", "id", "p1", "name", "p1", "type",
                           "dial", "identity_roles", "ops", "service_roles", "db");
    json_t *p2 = json_pack("{s:s, s:s, s:s, s:[s], s:[s]}", "id", "p2", "name", "p2", "type",
                           "bind", "identity_roles", "db", "service_roles", "web");
    json_t *items = NULL;
    int64_t total = -1;
    ctl_list_opts o = {.role = "db"};

    assert_int_equal(ctl_store_create(f->s, "policies", p1), 0);
    assert_int_equal(ctl_store_create(f->s, "policies", p2), 0);
    assert_int_equal(ctl_store_list(f->s, "policies", &o, &items, &total), 0);
    assert_int_equal(total, 2);
    json_decref(items);
    o.role = "web";
    assert_int_equal(ctl_store_list(f->s, "policies", &o, &items, &total), 0);
    assert_names(items, (const char *const[]){"p2"}, 1);
    json_decref(items);
    json_decref(p1);
    json_decref(p2);
}

/* The role index follows every write, whichever way the roles change. */
static void role_filter_follows_updates_and_deletes(void **state)
{
    struct fx *f = *state;
    json_t *items = NULL, *patch = json_pack("{s:[s]}", "roles", "new");
    int64_t total = -1;
    ctl_list_opts old = {.role = "old"}, neu = {.role = "new"};

    assert_int_equal(create_ident(f->s, "id-1", "alpha", "old"), 0);
    assert_int_equal(create_ident(f->s, "id-2", "beta", "old"), 0);
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", patch), 0);
    assert_int_equal(ctl_store_list(f->s, "identities", &old, &items, &total), 0);
    assert_names(items, (const char *const[]){"beta"}, 1);
    json_decref(items);
    assert_int_equal(ctl_store_list(f->s, "identities", &neu, &items, &total), 0);
    assert_names(items, (const char *const[]){"alpha"}, 1);
    json_decref(items);
    assert_int_equal(ctl_store_delete(f->s, "identities", "id-2"), 0);
    assert_int_equal(ctl_store_list(f->s, "identities", &old, &items, &total), 0);
    assert_int_equal(total, 0);
    json_decref(items);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM role_index"), 1);
    json_decref(patch);
}

/* ---- delete and tokens ------------------------------------------------- */

static void delete_removes_the_subject_and_its_tokens(void **state)
{
    struct fx *f = *state;
    json_t *r = json_pack("{s:s, s:s}", "id", "id-1", "name", "router-1");
    json_t *got = NULL;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_create(f->s, "routers", r), 0); /* same id, other kind */
    assert_int_equal(ctl_store_token_add(f->s, "jti-1", "identity", "id-1", 2000000000), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-2", "identity", "id-1", 2000000000), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-3", "router", "id-1", 2000000000), 0);
    assert_int_equal(ctl_store_delete(f->s, "identities", "id-1"), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-1", &got), WEFT_ENOTFOUND);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tokens WHERE kind = 'identity'"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tokens WHERE kind = 'router'"), 1);
    assert_int_equal(ctl_store_delete(f->s, "identities", "id-1"), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_token_add(f->s, "jti-4", "identity", "id-1", 2000000000),
                     WEFT_ENOTFOUND);
    json_decref(r);
}

static void token_add_checks_its_inputs(void **state)
{
    struct fx *f = *state;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-1", "identity", "id-1", 2000000000), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-1", "identity", "id-1", 2000000000),
                     WEFT_EEXISTS);
    assert_int_equal(ctl_store_token_add(f->s, "jti-2", "service", "id-1", 2000000000),
                     WEFT_EINVAL);
    assert_int_equal(ctl_store_token_add(f->s, "", "identity", "id-1", 2000000000), WEFT_EINVAL);
}

static void token_pending_is_the_newest_unused(void **state)
{
    struct fx *f = *state;
    json_t *tok = NULL;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_token_pending(f->s, "id-1", &tok), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_token_add(f->s, "jti-a", "identity", "id-1", 2000000000), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-b", "identity", "id-1", 2000000001), 0);
    assert_int_equal(ctl_store_token_pending(f->s, "id-1", &tok), 0);
    assert_string_equal(str(tok, "jti"), "jti-b");
    assert_string_equal(str(tok, "kind"), "identity");
    assert_string_equal(str(tok, "subject_id"), "id-1");
    assert_int_equal(json_integer_value(json_object_get(tok, "expires_at")), 2000000001);
    assert_rfc3339(json_object_get(tok, "created_at"));
    json_decref(tok);
}

static void consume_enrols_once(void **state)
{
    struct fx *f = *state;
    int64_t now = time(NULL);
    json_t *fields = json_pack("{s:b, s:s, s:s}", "enrolled", 1, "cert_fingerprint", "ab12",
                               "imei", "356938035643809");
    json_t *got = NULL;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-1", "identity", "id-1", now + 3600), 0);
    assert_int_equal(ctl_store_token_consume(f->s, "jti-1", "identity", "id-1", now, fields), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-1", &got), 0);
    assert_true(json_is_true(json_object_get(got, "enrolled")));
    assert_string_equal(str(got, "cert_fingerprint"), "ab12");
    assert_string_equal(str(got, "imei"), "356938035643809");
    json_decref(got);
    assert_int_equal(raw_int(f->path, "SELECT used_at FROM tokens WHERE jti = 'jti-1'"), now);
    assert_int_equal(ctl_store_token_pending(f->s, "id-1", &got), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_token_consume(f->s, "jti-1", "identity", "id-1", now, fields),
                     WEFT_ETOKENUSED);
    json_decref(fields);
}

static void consume_refuses_bad_tokens(void **state)
{
    struct fx *f = *state;
    int64_t now = time(NULL);
    json_t *fields = json_pack("{s:b}", "enrolled", 1);

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(create_ident(f->s, "id-2", "beta", NULL), 0);
    assert_int_equal(ctl_store_token_add(f->s, "old", "identity", "id-1", now - 1), 0);
    assert_int_equal(ctl_store_token_add(f->s, "edge", "identity", "id-1", now), 0);
    assert_int_equal(ctl_store_token_add(f->s, "good", "identity", "id-1", now + 60), 0);
    assert_int_equal(ctl_store_token_consume(f->s, "old", "identity", "id-1", now, fields),
                     WEFT_ETOKENEXPIRED);
    assert_int_equal(ctl_store_token_consume(f->s, "edge", "identity", "id-1", now, fields),
                     WEFT_ETOKENEXPIRED);
    assert_int_equal(ctl_store_token_consume(f->s, "nope", "identity", "id-1", now, fields),
                     WEFT_ETOKEN);
    assert_int_equal(ctl_store_token_consume(f->s, "good", "identity", "id-2", now, fields),
                     WEFT_ETOKEN);
    assert_int_equal(ctl_store_token_consume(f->s, "good", "router", "id-1", now, fields),
                     WEFT_ETOKEN);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tokens WHERE used_at IS NOT NULL"),
                     0);
    json_decref(fields);
}

static void consume_refuses_a_disabled_subject_and_changes_nothing(void **state)
{
    struct fx *f = *state;
    int64_t now = time(NULL);
    json_t *fields = json_pack("{s:b, s:s}", "enrolled", 1, "cert_fingerprint", "ab12");
    json_t *off = json_pack("{s:b}", "disabled", 1);
    json_t *before = NULL, *after = NULL, *tok = NULL;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_update(f->s, "identities", "id-1", off), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-1", "identity", "id-1", now + 60), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-1", &before), 0);
    assert_int_equal(ctl_store_token_consume(f->s, "jti-1", "identity", "id-1", now, fields),
                     WEFT_EDISABLED);
    assert_int_equal(ctl_store_get(f->s, "identities", "id-1", &after), 0);
    assert_true(json_equal(before, after));
    assert_int_equal(ctl_store_token_pending(f->s, "id-1", &tok), 0);
    assert_string_equal(str(tok, "jti"), "jti-1");
    assert_int_equal(raw_int(f->path, "SELECT used_at IS NULL FROM tokens WHERE jti = 'jti-1'"),
                     1);
    json_decref(tok);
    json_decref(before);
    json_decref(after);
    json_decref(fields);
    json_decref(off);
}

static void consume_refuses_an_enrolled_subject(void **state)
{
    struct fx *f = *state;
    int64_t now = time(NULL);
    json_t *r = json_pack("{s:s, s:s, s:b}", "id", "r1", "name", "router-1", "enrolled", 1);
    json_t *fields = json_pack("{s:s}", "cert_fingerprint", "cd34");

    assert_int_equal(ctl_store_create(f->s, "routers", r), 0);
    assert_int_equal(ctl_store_token_add(f->s, "jti-r", "router", "r1", now + 60), 0);
    assert_int_equal(ctl_store_token_consume(f->s, "jti-r", "router", "r1", now, fields),
                     WEFT_ECONFLICT);
    assert_int_equal(raw_int(f->path, "SELECT used_at IS NULL FROM tokens WHERE jti = 'jti-r'"),
                     1);
    json_decref(r);
    json_decref(fields);
}

/* ---- settings ---------------------------------------------------------- */

static void settings_round_trip(void **state)
{
    struct fx *f = *state;
    char *v = NULL;

    assert_int_equal(ctl_store_setting_get(f->s, "network", &v), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_setting_set(f->s, "network", "acme"), 0);
    assert_int_equal(ctl_store_setting_set(f->s, "network", "acme-2"), 0);
    assert_int_equal(ctl_store_setting_get(f->s, "network", &v), 0);
    assert_string_equal(v, "acme-2");
    free(v);
}

/* ---- durability -------------------------------------------------------- */

/* A create that returned 0 survives the process being killed at once. */
static void acknowledged_create_survives_sigkill(void **state)
{
    struct fx *f = *state;
    int fds[2], status = 0;
    char c = 0;
    json_t *got = NULL;
    pid_t pid;

    ctl_store_close(f->s);
    f->s = NULL;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ctl_store *s = NULL;
        close(fds[0]);
        if (ctl_store_open(f->path, &s) != 0 || create_ident(s, "id-k", "killed", NULL) != 0)
            _exit(1);
        if (write(fds[1], "k", 1) != 1)
            _exit(1);
        for (int i = 0; i < 100; i++) /* bounded: the parent kills us long before */
            sleep(1);
        _exit(2);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "killed", &got), 0);
    json_decref(got);
}

/* ---- batches and scale ------------------------------------------------- */

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void batch_rolls_back_or_commits(void **state)
{
    struct fx *f = *state;
    json_t *items = NULL;
    int64_t total = -1;

    assert_int_equal(ctl_store_batch_begin(f->s), 0);
    assert_int_equal(ctl_store_batch_begin(f->s), WEFT_EINVAL);
    assert_int_equal(create_ident(f->s, "a", "a", NULL), 0);
    assert_int_equal(ctl_store_batch_end(f->s, 0), 0);
    assert_int_equal(ctl_store_get(f->s, "identities", "a", &items), WEFT_ENOTFOUND);

    assert_int_equal(ctl_store_batch_begin(f->s), 0);
    assert_int_equal(create_ident(f->s, "a", "a", NULL), 0);
    assert_int_equal(create_ident(f->s, "b", "a", NULL), WEFT_EEXISTS); /* undone alone */
    assert_int_equal(ctl_store_token_add(f->s, "t", "identity", "zz", 2000000000),
                     WEFT_ENOTFOUND);
    assert_int_equal(create_ident(f->s, "c", "c", NULL), 0);
    assert_int_equal(ctl_store_batch_end(f->s, 1), 0);
    assert_int_equal(ctl_store_list(f->s, "identities", NULL, &items, &total), 0);
    assert_int_equal(total, 2);
    json_decref(items);
    assert_int_equal(ctl_store_batch_end(f->s, 1), WEFT_EINVAL);
}

/* Paging deep into a large collection stays index-driven. The full 100k run
 * is the store benchmark's job (tests/bench); this keeps the unit suite fast. */
static void list_stays_fast_with_many_records(void **state)
{
    struct fx *f = *state;
    enum { N = 20000 };
    char id[32], name[32];
    struct timespec t0;
    json_t *items = NULL;
    int64_t total = -1;
    double ms;

    assert_int_equal(ctl_store_batch_begin(f->s), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "id-%06d", i);
        snprintf(name, sizeof(name), "dev-%06d", i);
        assert_int_equal(create_ident(f->s, id, name, i % 100 == 0 ? "rare" : "common"), 0);
    }
    assert_int_equal(ctl_store_batch_end(f->s, 1), 0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    ctl_list_opts o = {.limit = 100, .offset = N - 150};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    ms = ms_since(&t0);
    assert_int_equal(total, N);
    assert_string_equal(str(json_array_get(items, 0), "name"), "dev-019850");
    json_decref(items);
    print_message("deep page of %d: %.1f ms\n", N, ms);
    assert_true(ms < 250);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    o = (ctl_list_opts){.name = "dev-0123*", .limit = 10};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    ms = ms_since(&t0);
    assert_int_equal(total, 100);
    json_decref(items);
    print_message("prefix page: %.1f ms\n", ms);
    assert_true(ms < 50);

    o = (ctl_list_opts){.role = "rare", .limit = 1000};
    assert_int_equal(ctl_store_list(f->s, "identities", &o, &items, &total), 0);
    assert_int_equal(total, N / 100);
    assert_int_equal(json_array_size(items), N / 100);
    json_decref(items);
}

/* Each create outside a batch is its own fsync'd transaction: measure them. */
static void durable_creates_are_reasonable(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    char id[32];
    struct timespec t0;
    double ms;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        assert_int_equal(create_ident(f->s, id, id, NULL), 0);
    }
    ms = ms_since(&t0);
    print_message("%d durable creates: %.1f ms (%.2f ms each)\n", N, ms, ms / N);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM identities"), N);
}

/* ---- anomaly baselines ------------------------------------------------ */

static json_t *base(int64_t windows, double dials, int64_t hours)
{
    json_t *b = json_pack("{s:I, s:f, s:f, s:I, s:f, s:I, s:I}", "windows", (json_int_t)windows,
                          "dials", dials, "svcs", 1.0, "circuits", (json_int_t)2, "bytes", 300.0,
                          "hours", (json_int_t)hours, "first_s", (json_int_t)1000);
    assert_non_null(b);
    return b;
}

/* Baselines and the router's mark are written in one transaction; an
 * identity that does not exist is skipped; both go with their owner. */
static void baselines_and_marks(void **state)
{
    struct fx *f = *state;
    json_t *batch = json_object(), *got = NULL,
           *r = json_pack("{s:s, s:s}", "id", "r-1", "name", "router1");
    char boot[65];
    int64_t seq;

    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    assert_int_equal(ctl_store_create(f->s, "routers", r), 0);
    json_decref(r);
    assert_int_equal(ctl_store_baseline_get(f->s, "id-1", &got), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_baseline_mark(f->s, "r-1", boot, sizeof(boot), &seq), 0);
    assert_string_equal(boot, "");
    assert_int_equal(seq, 0);
    json_object_set_new(batch, "id-1", base(5, 2.5, 0x300));
    json_object_set_new(batch, "gone", base(1, 1, 1));
    assert_int_equal(ctl_store_baseline_put(f->s, "r-1", "b00t", 7, batch), 0);
    assert_int_equal(ctl_store_baseline_get(f->s, "id-1", &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got, "windows")), 5);
    assert_true(json_real_value(json_object_get(got, "dials")) == 2.5);
    assert_int_equal(json_integer_value(json_object_get(got, "hours")), 0x300);
    assert_int_equal(json_integer_value(json_object_get(got, "first_s")), 1000);
    assert_rfc3339(json_object_get(got, "updated_at"));
    json_decref(got);
    assert_int_equal(ctl_store_baseline_get(f->s, "gone", &got), WEFT_ENOTFOUND);
    /* The next batch replaces it; after a reopen both are there. */
    json_object_set_new(batch, "id-1", base(6, 3.0, 0x700));
    assert_int_equal(ctl_store_baseline_put(f->s, "r-1", "b00t", 8, batch), 0);
    ctl_store_close(f->s);
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
    assert_int_equal(ctl_store_baseline_get(f->s, "id-1", &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got, "windows")), 6);
    json_decref(got);
    assert_int_equal(ctl_store_baseline_mark(f->s, "r-1", boot, sizeof(boot), &seq), 0);
    assert_string_equal(boot, "b00t");
    assert_int_equal(seq, 8);
    /* A value the schema refuses rolls the whole batch back, mark included. */
    json_object_set_new(batch, "id-1", base(-1, 3.0, 0x700));
    assert_int_equal(ctl_store_baseline_put(f->s, "r-1", "b00t", 9, batch), WEFT_EINVAL);
    assert_int_equal(ctl_store_baseline_mark(f->s, "r-1", boot, sizeof(boot), &seq), 0);
    assert_int_equal(seq, 8);
    assert_int_equal(ctl_store_baseline_put(f->s, "r-1", "b", 1, NULL), WEFT_EINVAL);
    /* Deleting the identity and the router deletes theirs. */
    assert_int_equal(ctl_store_delete(f->s, "identities", "id-1"), 0);
    assert_int_equal(ctl_store_baseline_get(f->s, "id-1", &got), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_delete(f->s, "routers", "r-1"), 0);
    assert_int_equal(ctl_store_baseline_mark(f->s, "r-1", boot, sizeof(boot), &seq), 0);
    assert_int_equal(seq, 0);
    json_decref(batch);
}

/* A store left at version 4 gains the baseline tables on open. */
static void migrates_from_version_4(void **state)
{
    struct fx *f = *state;
    json_t *batch = json_object(), *got = NULL;

    ctl_store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, "DROP TABLE baselines; DROP TABLE baseline_marks;"
                      "UPDATE meta SET value = 4 WHERE key = 'schema_version'");
    assert_int_equal(ctl_store_open(f->path, &f->s), 0);
    assert_int_equal(ctl_store_schema_version(f->s), STORE_VERSION);
    assert_int_equal(create_ident(f->s, "id-1", "alpha", NULL), 0);
    json_object_set_new(batch, "id-1", base(3, 1.0, 1));
    assert_int_equal(ctl_store_baseline_put(f->s, "r-none", "b", 1, batch), 0);
    assert_int_equal(ctl_store_baseline_get(f->s, "id-1", &got), 0);
    json_decref(got);
    json_decref(batch);
}

static void setting_objects(void **state)
{
    struct fx *f = *state;
    json_t *o = NULL;

    assert_int_equal(ctl_store_setting_object(f->s, "k", &o), WEFT_ENOTFOUND);
    assert_int_equal(ctl_store_setting_set(f->s, "k", "[1]"), 0);
    assert_int_equal(ctl_store_setting_object(f->s, "k", &o), WEFT_EJSON);
    assert_null(o);
    assert_int_equal(ctl_store_setting_set(f->s, "k", "{\"a\":1}"), 0);
    assert_int_equal(ctl_store_setting_object(f->s, "k", &o), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "a")), 1);
    json_decref(o);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(migrates_an_empty_file),
        T(reopening_keeps_data),
        T(refuses_a_newer_schema),
        cmocka_unit_test(open_reports_an_unwritable_path),
        T(open_refuses_a_file_that_is_not_a_store),
        T(two_handles_share_one_file),
        T(create_then_get_by_id_and_name),
        T(defaults_fill_absent_fields),
        T(duplicates_are_refused),
        T(invalid_records_are_refused),
        T(update_merges),
        T(list_pages_filters_and_counts),
        T(list_prefix_treats_wildcards_literally),
        T(list_rejects_bad_paging),
        T(policy_role_filter_searches_both_sides),
        T(role_filter_follows_updates_and_deletes),
        T(delete_removes_the_subject_and_its_tokens),
        T(token_add_checks_its_inputs),
        T(token_pending_is_the_newest_unused),
        T(consume_enrols_once),
        T(consume_refuses_bad_tokens),
        T(consume_refuses_a_disabled_subject_and_changes_nothing),
        T(consume_refuses_an_enrolled_subject),
        T(settings_round_trip),
        T(setting_objects),
        T(baselines_and_marks),
        T(migrates_from_version_4),
        T(acknowledged_create_survives_sigkill),
        T(batch_rolls_back_or_commits),
        T(list_stays_fast_with_many_records),
        T(durable_creates_are_reasonable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
