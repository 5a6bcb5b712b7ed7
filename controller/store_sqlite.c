/* The controller's store on SQLite (see controller/store.h and docs/store.md).
 *
 * Every record lives in a table with one column per documented field, plus a
 * `doc` column holding any other fields as a JSON object, so that the API can
 * grow a field without a migration. Statements are generated once from the
 * static field tables below (never from user values), prepared on first use
 * and kept for the life of the handle. The controller runs the store on one
 * thread, so the handle is opened without SQLite's mutexes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "controller/store.h"
#include "proto/log.h"
#include "weft/errors.h"

/* ---- schema ------------------------------------------------------------ */

/* Adds the roles in NEW's column col to role_index. */
#define ROLE_INS(table, col)                                                  \
    " INSERT OR IGNORE INTO role_index(coll, role, id)"                       \
    " SELECT '" table "', value, NEW.id FROM json_each(NEW." col ");"

/* Keeps role_index in step with table's role columns (cols) on every write. */
#define ROLE_TRIGGERS(table, cols, inserts)                                   \
    "CREATE TRIGGER " table "_roles_ins AFTER INSERT ON " table " BEGIN"      \
    inserts " END;"                                                           \
    "CREATE TRIGGER " table "_roles_upd AFTER UPDATE OF id, " cols " ON "     \
    table " BEGIN"                                                            \
    " DELETE FROM role_index WHERE coll = '" table "' AND id = OLD.id;"       \
    inserts " END;"                                                           \
    "CREATE TRIGGER " table "_roles_del AFTER DELETE ON " table " BEGIN"      \
    " DELETE FROM role_index WHERE coll = '" table "' AND id = OLD.id; END;"

/* Migration i brings the schema from version i to i + 1, in one transaction.
 * Append only: never edit a migration that has shipped. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE identities ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(roles) = 'array'),"
    " binding TEXT NOT NULL DEFAULT 'none'"
    "  CHECK (binding IN ('none', 'exact', 'iccid', 'imei')),"
    " imei TEXT,"
    " iccid TEXT,"
    " admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),"
    " disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    " enrolled INTEGER NOT NULL DEFAULT 0 CHECK (enrolled IN (0, 1)),"
    " cert_fingerprint TEXT,"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX identities_name ON identities(name);"
    "CREATE TABLE services ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(roles) = 'array'),"
    " intercept TEXT,"
    " host TEXT,"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX services_name ON services(name);"
    "CREATE TABLE policies ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " type TEXT NOT NULL CHECK (type IN ('dial', 'bind')),"
    " semantic TEXT NOT NULL DEFAULT 'AnyOf' CHECK (semantic IN ('AnyOf', 'AllOf')),"
    " identity_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(identity_roles) = 'array'),"
    " service_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(service_roles) = 'array'),"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX policies_name ON policies(name);"
    "CREATE TABLE routers ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(roles) = 'array'),"
    " enrolled INTEGER NOT NULL DEFAULT 0 CHECK (enrolled IN (0, 1)),"
    " edge_listen TEXT,"
    " link_listen TEXT,"
    " cert_fingerprint TEXT,"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX routers_name ON routers(name);"
    "CREATE TABLE tokens ("
    " jti TEXT PRIMARY KEY NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('identity', 'router')),"
    " subject_id TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used_at INTEGER,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX tokens_subject ON tokens(subject_id, created_at);"
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL);"
    /* Which records carry which role, kept by triggers from the JSON arrays:
     * a role filter is then an index lookup, not a json_each over every row
     * (100 ms at 100k identities, against 1 ms). */
    "CREATE TABLE role_index ("
    " coll TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " PRIMARY KEY (coll, role, id)) WITHOUT ROWID;"
    "CREATE INDEX role_index_id ON role_index(coll, id);"
    ROLE_TRIGGERS("identities", "roles", ROLE_INS("identities", "roles"))
    ROLE_TRIGGERS("services", "roles", ROLE_INS("services", "roles"))
    ROLE_TRIGGERS("policies", "identity_roles, service_roles",
                  ROLE_INS("policies", "identity_roles") ROLE_INS("policies", "service_roles"))
    ROLE_TRIGGERS("routers", "roles", ROLE_INS("routers", "roles")),
    /* 2: bring-your-own CAs and tier-2 credentials (docs/bootstrap.md). A
     * credential's contents are one secretbox (`box`), never a column of its
     * own; deleting an identity deletes the credentials attached to it. */
    "CREATE TABLE cas ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(roles) = 'array'),"
    " cert TEXT,"
    " fingerprint TEXT,"
    " verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),"
    " challenge TEXT,"
    " auto_enroll INTEGER NOT NULL DEFAULT 0 CHECK (auto_enroll IN (0, 1)),"
    " name_template TEXT,"
    " disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    " crl TEXT,"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX cas_name ON cas(name);"
    "CREATE TABLE credentials ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " identity_id TEXT,"
    " roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(roles) = 'array'),"
    " files TEXT NOT NULL DEFAULT '[]' CHECK (json_type(files) = 'array'),"
    " box TEXT,"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX credentials_name ON credentials(name);"
    "CREATE INDEX credentials_identity ON credentials(identity_id);"
    "CREATE TRIGGER identities_credentials_del AFTER DELETE ON identities BEGIN"
    " DELETE FROM credentials WHERE identity_id = OLD.id; END;"
    ROLE_TRIGGERS("cas", "roles", ROLE_INS("cas", "roles"))
    ROLE_TRIGGERS("credentials", "roles", ROLE_INS("credentials", "roles")),
    /* 3: behaviour policies (docs/policies.md). SQLite cannot change a CHECK,
     * so the table is rebuilt; limits and actions live in doc. */
    "CREATE TABLE policies_v3 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " type TEXT NOT NULL CHECK (type IN ('dial', 'bind', 'behaviour')),"
    " semantic TEXT NOT NULL DEFAULT 'AnyOf' CHECK (semantic IN ('AnyOf', 'AllOf')),"
    " identity_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(identity_roles) = 'array'),"
    " service_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(service_roles) = 'array'),"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "INSERT INTO policies_v3 SELECT id, name, type, semantic, identity_roles, service_roles,"
    " doc, created_at, updated_at FROM policies;"
    "DROP TABLE policies;"
    "ALTER TABLE policies_v3 RENAME TO policies;"
    "CREATE UNIQUE INDEX policies_name ON policies(name);"
    "DELETE FROM role_index WHERE coll = 'policies';"
    "INSERT OR IGNORE INTO role_index(coll, role, id) SELECT 'policies', j.value, p.id"
    " FROM policies p, json_each(p.identity_roles) j;"
    "INSERT OR IGNORE INTO role_index(coll, role, id) SELECT 'policies', j.value, p.id"
    " FROM policies p, json_each(p.service_roles) j;"
    ROLE_TRIGGERS("policies", "identity_roles, service_roles",
                  ROLE_INS("policies", "identity_roles") ROLE_INS("policies", "service_roles")),
    /* 4: router and service-router policies (docs/policies.md); router_roles
     * lives in doc. The table is rebuilt for the CHECK, as in 3. */
    "CREATE TABLE policies_v4 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " type TEXT NOT NULL CHECK (type IN ('dial', 'bind', 'behaviour', 'router',"
    " 'service-router')),"
    " semantic TEXT NOT NULL DEFAULT 'AnyOf' CHECK (semantic IN ('AnyOf', 'AllOf')),"
    " identity_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(identity_roles) = 'array'),"
    " service_roles TEXT NOT NULL DEFAULT '[]' CHECK (json_type(service_roles) = 'array'),"
    " doc TEXT NOT NULL DEFAULT '{}' CHECK (json_type(doc) = 'object'),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "INSERT INTO policies_v4 SELECT id, name, type, semantic, identity_roles, service_roles,"
    " doc, created_at, updated_at FROM policies;"
    "DROP TABLE policies;"
    "ALTER TABLE policies_v4 RENAME TO policies;"
    "CREATE UNIQUE INDEX policies_name ON policies(name);"
    "DELETE FROM role_index WHERE coll = 'policies';"
    "INSERT OR IGNORE INTO role_index(coll, role, id) SELECT 'policies', j.value, p.id"
    " FROM policies p, json_each(p.identity_roles) j;"
    "INSERT OR IGNORE INTO role_index(coll, role, id) SELECT 'policies', j.value, p.id"
    " FROM policies p, json_each(p.service_roles) j;"
    ROLE_TRIGGERS("policies", "identity_roles, service_roles",
                  ROLE_INS("policies", "identity_roles") ROLE_INS("policies", "service_roles")),
    /* 5: anomaly baselines kept per identity, merged from the routers' reports
     * (docs/policies.md "Anomaly detection"), and per router the last report
     * stored, so that a report sent again is not counted twice. Both go with
     * their identity or router. IF NOT EXISTS: the script also runs on a file
     * whose version was set back. */
    "CREATE TABLE IF NOT EXISTS baselines ("
    " identity_id TEXT PRIMARY KEY NOT NULL REFERENCES identities(id) ON DELETE CASCADE,"
    " windows INTEGER NOT NULL DEFAULT 0 CHECK (windows >= 0),"
    " dials REAL NOT NULL DEFAULT 0 CHECK (dials >= 0),"
    " svcs REAL NOT NULL DEFAULT 0 CHECK (svcs >= 0),"
    " circuits INTEGER NOT NULL DEFAULT 0 CHECK (circuits >= 0),"
    " bytes REAL NOT NULL DEFAULT 0 CHECK (bytes >= 0),"
    " hours INTEGER NOT NULL DEFAULT 0 CHECK (hours BETWEEN 0 AND 16777215),"
    " first_s INTEGER NOT NULL DEFAULT 0 CHECK (first_s >= 0),"
    " updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS baseline_marks ("
    " router_id TEXT PRIMARY KEY NOT NULL REFERENCES routers(id) ON DELETE CASCADE,"
    " boot TEXT NOT NULL,"
    " seq INTEGER NOT NULL CHECK (seq >= 0),"
    " updated_at INTEGER NOT NULL) WITHOUT ROWID;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum ftype { F_TEXT, F_BOOL, F_ARRAY };

struct field {
    const char *name; /* column name and JSON key */
    enum ftype type;
    const char *dflt; /* F_TEXT value for absent or null, else SQL NULL */
};

/* Fields 0 and 1 are always id and name. */
static const struct field identity_fields[] = {
    {"id", F_TEXT, NULL},        {"name", F_TEXT, NULL},     {"roles", F_ARRAY, NULL},
    {"binding", F_TEXT, "none"}, {"imei", F_TEXT, NULL},     {"iccid", F_TEXT, NULL},
    {"admin", F_BOOL, NULL},     {"disabled", F_BOOL, NULL}, {"enrolled", F_BOOL, NULL},
    {"cert_fingerprint", F_TEXT, NULL},
};
static const struct field service_fields[] = {
    {"id", F_TEXT, NULL},        {"name", F_TEXT, NULL}, {"roles", F_ARRAY, NULL},
    {"intercept", F_TEXT, NULL}, {"host", F_TEXT, NULL},
};
static const struct field policy_fields[] = {
    {"id", F_TEXT, NULL},
    {"name", F_TEXT, NULL},
    {"type", F_TEXT, NULL},
    {"semantic", F_TEXT, "AnyOf"},
    {"identity_roles", F_ARRAY, NULL},
    {"service_roles", F_ARRAY, NULL},
};
static const struct field router_fields[] = {
    {"id", F_TEXT, NULL},          {"name", F_TEXT, NULL},        {"roles", F_ARRAY, NULL},
    {"enrolled", F_BOOL, NULL},    {"edge_listen", F_TEXT, NULL}, {"link_listen", F_TEXT, NULL},
    {"cert_fingerprint", F_TEXT, NULL},
};

static const struct field ca_fields[] = {
    {"id", F_TEXT, NULL},          {"name", F_TEXT, NULL},          {"roles", F_ARRAY, NULL},
    {"cert", F_TEXT, NULL},        {"fingerprint", F_TEXT, NULL},   {"verified", F_BOOL, NULL},
    {"challenge", F_TEXT, NULL},   {"auto_enroll", F_BOOL, NULL},   {"name_template", F_TEXT, NULL},
    {"disabled", F_BOOL, NULL},    {"crl", F_TEXT, NULL},
};
static const struct field credential_fields[] = {
    {"id", F_TEXT, NULL},    {"name", F_TEXT, NULL}, {"identity_id", F_TEXT, NULL},
    {"roles", F_ARRAY, NULL}, {"files", F_ARRAY, NULL}, {"box", F_TEXT, NULL},
};

#define NFIELDS(a) (sizeof(a) / sizeof(a[0]))

struct coll {
    const char *name; /* the collection's API name, also its table */
    const struct field *fields;
    size_t nfields;
    const char *token_kind;   /* the enrolment token kind naming these, or NULL */
};

static const struct coll colls[] = {
    {"identities", identity_fields, NFIELDS(identity_fields), "identity"},
    {"services", service_fields, NFIELDS(service_fields), NULL},
    {"policies", policy_fields, NFIELDS(policy_fields), NULL},
    {"routers", router_fields, NFIELDS(router_fields), "router"},
    {"cas", ca_fields, NFIELDS(ca_fields), NULL},
    {"credentials", credential_fields, NFIELDS(credential_fields), NULL},
};

#define NCOLLS ((int)NFIELDS(colls))

/* Per-collection statements, generated from the field tables. */
enum { ST_INSERT, ST_GET_ID, ST_GET_NAME, ST_UPDATE, ST_DELETE, ST_NFIXED };
/* List statements: name filter (none, exact, prefix) x role filter (no, yes). */
enum { NAME_ANY, NAME_EXACT, NAME_PREFIX };
#define N_VARIANTS 6

/* Fixed statements over tokens and settings. */
enum { TS_INSERT, TS_GET, TS_USE, TS_PENDING, TS_DEL_SUBJECT, SET_GET, SET_PUT, SET_VERSION,
       GET_VERSION, BL_GET, BL_PUT, BL_MARK_GET, BL_MARK_PUT, BL_DEL, TS_N };
static const char *const misc_sql[TS_N] = {
    [TS_INSERT] = "INSERT INTO tokens(jti, kind, subject_id, expires_at, used_at, created_at)"
                  " VALUES(?1, ?2, ?3, ?4, NULL, ?5)",
    [TS_GET] = "SELECT kind, subject_id, expires_at, used_at FROM tokens WHERE jti = ?1",
    [TS_USE] = "UPDATE tokens SET used_at = ?2 WHERE jti = ?1 AND used_at IS NULL",
    [TS_PENDING] = "SELECT jti, kind, subject_id, expires_at, created_at FROM tokens"
                   " WHERE subject_id = ?1 AND used_at IS NULL"
                   " ORDER BY created_at DESC, rowid DESC LIMIT 1",
    [TS_DEL_SUBJECT] = "DELETE FROM tokens WHERE kind = ?1 AND subject_id = ?2",
    [SET_GET] = "SELECT value FROM settings WHERE key = ?1",
    [SET_PUT] = "INSERT INTO settings(key, value) VALUES(?1, ?2)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [SET_VERSION] = "INSERT INTO meta(key, value) VALUES('schema_version', ?1)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [GET_VERSION] = "SELECT value FROM meta WHERE key = 'schema_version'",
    [BL_GET] = "SELECT windows, dials, svcs, circuits, bytes, hours, first_s, updated_at"
               " FROM baselines WHERE identity_id = ?1",
    /* An identity deleted since the router learnt it is skipped, not an error. */
    [BL_PUT] = "INSERT INTO baselines(identity_id, windows, dials, svcs, circuits, bytes, hours,"
               " first_s, updated_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9"
               " WHERE EXISTS (SELECT 1 FROM identities WHERE id = ?1)"
               " ON CONFLICT(identity_id) DO UPDATE SET windows = excluded.windows,"
               " dials = excluded.dials, svcs = excluded.svcs, circuits = excluded.circuits,"
               " bytes = excluded.bytes, hours = excluded.hours, first_s = excluded.first_s,"
               " updated_at = excluded.updated_at",
    [BL_MARK_GET] = "SELECT boot, seq FROM baseline_marks WHERE router_id = ?1",
    [BL_MARK_PUT] = "INSERT INTO baseline_marks(router_id, boot, seq, updated_at)"
                    " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM routers WHERE id = ?1)"
                    " ON CONFLICT(router_id) DO UPDATE SET boot = excluded.boot,"
                    " seq = excluded.seq, updated_at = excluded.updated_at",
    [BL_DEL] = "DELETE FROM baselines WHERE identity_id = ?1",
};

struct ctl_store {
    sqlite3 *db;
    char *path;
    int version;
    int batch; /* inside ctl_store_batch_begin: writes nest as savepoints */
    sqlite3_stmt *fixed[NCOLLS][ST_NFIXED];
    sqlite3_stmt *list[NCOLLS][N_VARIANTS][2]; /* [..][..][0] page, [1] count */
    sqlite3_stmt *misc[TS_N];
};

/* ---- errors ------------------------------------------------------------ */

static const char *hint_for(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return "the disk holding the data directory is full: free space, then retry";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
        return "make the data directory and weft.db* writable by the controller's user";
    case SQLITE_IOERR:
        return "I/O error under the data directory: check the disk and the kernel log";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process holds the store's write lock: run one controller per data "
               "directory";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "the store file is damaged or not a weft store: restore the data directory "
               "from a backup";
    case SQLITE_NOMEM:
        return "out of memory: give the controller more memory";
    default:
        return "unexpected SQLite error: report it with this line";
    }
}

/* Maps a SQLite result to a weft code; logs what an operator must fix. */
static int store_err(ctl_store *s, int rc, const char *op)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return WEFT_EEXISTS;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        pr_debug("store_rejected", "op=%s err=%s", op, pr_log_q(sqlite3_errmsg(s->db)));
        return WEFT_EINVAL;
    default:
        break;
    }
    pr_error("store_error", "op=%s path=%s code=%d err=%s hint=%s", op, pr_log_q(s->path), rc,
             pr_log_q(sqlite3_errmsg(s->db)), pr_log_q(hint_for(rc)));
    return (rc & 0xff) == SQLITE_NOMEM ? WEFT_ENOMEM : WEFT_ESTORE;
}

/* ---- small helpers ----------------------------------------------------- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static json_t *time_json(int64_t t)
{
    char buf[32];
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return NULL;
    return json_string(buf);
}

static const struct coll *find_coll(const char *name)
{
    for (int i = 0; name != NULL && i < NCOLLS; i++)
        if (strcmp(colls[i].name, name) == 0)
            return &colls[i];
    return NULL;
}

static const struct coll *coll_for_kind(const char *kind)
{
    for (int i = 0; kind != NULL && i < NCOLLS; i++)
        if (colls[i].token_kind != NULL && strcmp(colls[i].token_kind, kind) == 0)
            return &colls[i];
    return NULL;
}

static int nonempty(const char *v)
{
    return v != NULL && v[0] != '\0';
}

/* Resets a statement for reuse and drops its bindings (and their copies). */
static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows. */
static int step_done(ctl_store *s, sqlite3_stmt *st, const char *op)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : store_err(s, rc, op);

    done(st);
    return ret;
}

static int exec(ctl_store *s, const char *sql, const char *op)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_err(s, rc, op);
}

static int bind_text(ctl_store *s, sqlite3_stmt *st, int idx, const char *v, size_t len)
{
    int rc;

    if (len > INT32_MAX)
        return WEFT_ETOOBIG;
    rc = sqlite3_bind_text(st, idx, v, (int)len, SQLITE_TRANSIENT);
    return rc == SQLITE_OK ? 0 : store_err(s, rc, "bind");
}

static int bind_str(ctl_store *s, sqlite3_stmt *st, int idx, const char *v)
{
    return bind_text(s, st, idx, v, strlen(v));
}

static int bind_i64(ctl_store *s, sqlite3_stmt *st, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(st, idx, v);
    return rc == SQLITE_OK ? 0 : store_err(s, rc, "bind");
}

/* ---- transactions ------------------------------------------------------ */

/* Writes take the write lock at once (IMMEDIATE), so that a read-then-write
 * never fails half way with SQLITE_BUSY; inside a batch they nest as
 * savepoints, so one failed write undoes only itself. */
static int tx_begin(ctl_store *s)
{
    return exec(s, s->batch ? "SAVEPOINT op" : "BEGIN IMMEDIATE", "begin");
}

/* Commits when rc is 0, else rolls back; returns rc or the commit's error. */
static int tx_end(ctl_store *s, int rc)
{
    if (rc == 0) {
        rc = exec(s, s->batch ? "RELEASE op" : "COMMIT", "commit");
        if (rc == 0)
            return 0;
    }
    if (s->batch)
        sqlite3_exec(s->db, "ROLLBACK TO op; RELEASE op", NULL, NULL, NULL);
    else if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int ctl_store_batch_begin(ctl_store *s)
{
    int rc;

    if (s == NULL || s->batch)
        return WEFT_EINVAL;
    if ((rc = exec(s, "BEGIN IMMEDIATE", "batch_begin")) == 0)
        s->batch = 1;
    return rc;
}

int ctl_store_batch_end(ctl_store *s, int commit)
{
    int rc = 0;

    if (s == NULL || !s->batch)
        return WEFT_EINVAL;
    s->batch = 0;
    if (commit && (rc = exec(s, "COMMIT", "batch_commit")) == 0)
        return 0;
    /* A failed COMMIT may leave the transaction open: end it either way. */
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- statement generation and cache ------------------------------------ */

struct sbuf {
    char buf[2048];
    size_t len;
    int overflow;
};

static void __attribute__((format(printf, 2, 3))) sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->buf + b->len, sizeof(b->buf) - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(b->buf) - b->len)
        b->overflow = 1;
    else
        b->len += (size_t)n;
}

/* "id, name, ..., doc, created_at, updated_at": the order row_to_json reads. */
static void sb_select(struct sbuf *b, const struct coll *c)
{
    sb_add(b, "SELECT ");
    for (size_t i = 0; i < c->nfields; i++)
        sb_add(b, "%s, ", c->fields[i].name);
    sb_add(b, "doc, created_at, updated_at FROM %s", c->name);
}

/* Parameters: ?1..?n the fields, ?n+1 doc, ?n+2 updated_at, ?n+3 created_at. */
static void sb_insert(struct sbuf *b, const struct coll *c)
{
    sb_add(b, "INSERT INTO %s(", c->name);
    for (size_t i = 0; i < c->nfields; i++)
        sb_add(b, "%s, ", c->fields[i].name);
    sb_add(b, "doc, updated_at, created_at) VALUES(");
    for (size_t i = 0; i < c->nfields + 3; i++)
        sb_add(b, i ? ", ?%zu" : "?%zu", i + 1);
    sb_add(b, ")");
}

/* Same parameter numbering as sb_insert, without created_at. */
static void sb_update(struct sbuf *b, const struct coll *c)
{
    sb_add(b, "UPDATE %s SET ", c->name);
    for (size_t i = 1; i < c->nfields; i++)
        sb_add(b, "%s = ?%zu, ", c->fields[i].name, i + 1);
    sb_add(b, "doc = ?%zu, updated_at = ?%zu WHERE id = ?1", c->nfields + 1, c->nfields + 2);
}

static void fixed_sql(struct sbuf *b, const struct coll *c, int which)
{
    switch (which) {
    case ST_INSERT:
        sb_insert(b, c);
        break;
    case ST_GET_ID:
        sb_select(b, c);
        sb_add(b, " WHERE id = ?1");
        break;
    case ST_GET_NAME:
        sb_select(b, c);
        sb_add(b, " WHERE name = ?1");
        break;
    case ST_UPDATE:
        sb_update(b, c);
        break;
    default:
        sb_add(b, "DELETE FROM %s WHERE id = ?1", c->name);
        break;
    }
}

/* The list filters as named parameters, so one binder serves every variant. */
static void list_sql(struct sbuf *b, const struct coll *c, int variant, int count)
{
    int name_mode = variant / 2, role = variant % 2;

    if (count)
        sb_add(b, "SELECT count(*) FROM %s", c->name);
    else
        sb_select(b, c);
    sb_add(b, " WHERE 1");
    if (name_mode == NAME_EXACT)
        sb_add(b, " AND name = :name");
    else if (name_mode == NAME_PREFIX)
        sb_add(b, " AND name >= :lo AND name < :hi");
    if (role)
        sb_add(b, " AND id IN (SELECT id FROM role_index WHERE coll = '%s' AND role = :role)",
               c->name);
    if (!count)
        sb_add(b, " ORDER BY name LIMIT :limit OFFSET :offset");
}

static sqlite3_stmt *prepare(ctl_store *s, sqlite3_stmt **slot, const char *sql)
{
    int rc;

    if (*slot != NULL)
        return *slot;
    rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    if (rc != SQLITE_OK) {
        store_err(s, rc, "prepare");
        *slot = NULL;
    }
    return *slot;
}

static sqlite3_stmt *fixed_stmt(ctl_store *s, const struct coll *c, int which)
{
    struct sbuf b = {.len = 0};
    sqlite3_stmt **slot = &s->fixed[c - colls][which];

    if (*slot != NULL)
        return *slot;
    fixed_sql(&b, c, which);
    return b.overflow ? NULL : prepare(s, slot, b.buf);
}

static sqlite3_stmt *list_stmt(ctl_store *s, const struct coll *c, int variant, int count)
{
    struct sbuf b = {.len = 0};
    sqlite3_stmt **slot = &s->list[c - colls][variant][count];

    if (*slot != NULL)
        return *slot;
    list_sql(&b, c, variant, count);
    return b.overflow ? NULL : prepare(s, slot, b.buf);
}

static sqlite3_stmt *misc_stmt(ctl_store *s, int which)
{
    return prepare(s, &s->misc[which], misc_sql[which]);
}

/* ---- rows <-> JSON ----------------------------------------------------- */

static json_t *column_json(const struct field *f, sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    json_t *v;

    switch (f->type) {
    case F_BOOL:
        return json_boolean(sqlite3_column_int(st, col) != 0);
    case F_ARRAY:
        v = text != NULL ? json_loadb(text, len, 0, NULL) : json_array();
        if (v != NULL && !json_is_array(v)) {
            json_decref(v);
            v = NULL;
        }
        return v;
    default:
        return text != NULL ? json_stringn(text, len) : json_null();
    }
}

/* Builds the API object for the current row of a sb_select statement. */
static int row_to_json(ctl_store *s, const struct coll *c, sqlite3_stmt *st, json_t **out)
{
    int n = (int)c->nfields, rc = WEFT_ESTORE;
    const char *doc = (const char *)sqlite3_column_text(st, n);
    json_t *o = doc ? json_loadb(doc, (size_t)sqlite3_column_bytes(st, n), 0, NULL) : NULL;

    if (!json_is_object(o))
        goto out;
    for (int i = 0; i < n; i++)
        if (json_object_set_new(o, c->fields[i].name, column_json(&c->fields[i], st, i)) < 0)
            goto out;
    if (json_object_set_new(o, "created_at", time_json(sqlite3_column_int64(st, n + 1))) < 0 ||
        json_object_set_new(o, "updated_at", time_json(sqlite3_column_int64(st, n + 2))) < 0)
        goto out;
    *out = o;
    o = NULL;
    rc = 0;
out:
    if (rc < 0)
        pr_error("store_bad_row", "coll=%s path=%s hint=%s", c->name, pr_log_q(s->path),
                 pr_log_q("a stored record is not valid JSON: restore the data directory "
                          "from a backup"));
    json_decref(o);
    return rc;
}

static int is_field(const struct coll *c, const char *key)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (strcmp(c->fields[i].name, key) == 0)
            return 1;
    return strcmp(key, "created_at") == 0 || strcmp(key, "updated_at") == 0;
}

static int string_array(json_t *v)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return 0;
    json_array_foreach (v, i, e)
        if (!json_is_string(e))
            return 0;
    return 1;
}

static int bind_json(ctl_store *s, sqlite3_stmt *st, int idx, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    int rc;

    if (text == NULL)
        return WEFT_ENOMEM;
    rc = bind_str(s, st, idx, text);
    free(text);
    return rc;
}

/* Binds one field; absent and null mean the field's default. */
static int bind_field(ctl_store *s, sqlite3_stmt *st, int idx, const struct field *f, json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        if (f->type == F_BOOL)
            return bind_i64(s, st, idx, 0);
        if (f->type == F_ARRAY)
            return bind_str(s, st, idx, "[]");
        return f->dflt ? bind_str(s, st, idx, f->dflt) : 0; /* unbound is NULL */
    }
    switch (f->type) {
    case F_BOOL:
        return json_is_boolean(v) ? bind_i64(s, st, idx, json_is_true(v)) : WEFT_EINVAL;
    case F_ARRAY:
        return string_array(v) ? bind_json(s, st, idx, v) : WEFT_EINVAL;
    default:
        if (!json_is_string(v))
            return WEFT_EINVAL;
        return bind_text(s, st, idx, json_string_value(v), json_string_length(v));
    }
}

/* Binds the fields that are not columns as one JSON object, nulls dropped. */
static int bind_doc(ctl_store *s, const struct coll *c, sqlite3_stmt *st, int idx, json_t *obj)
{
    json_t *doc = json_object(), *v;
    const char *key;
    int rc = WEFT_ENOMEM;

    if (doc == NULL)
        return WEFT_ENOMEM;
    json_object_foreach (obj, key, v)
        if (!is_field(c, key) && !json_is_null(v) && json_object_set(doc, key, v) < 0)
            goto out;
    rc = bind_json(s, st, idx, doc);
out:
    json_decref(doc);
    return rc;
}

/* id and name must be non-empty strings without NUL: they are lookup keys. */
static int check_keys(json_t *obj)
{
    static const char *const keys[] = {"id", "name"};

    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return WEFT_EINVAL;
    }
    return 0;
}

/* Binds a whole record for ST_INSERT or ST_UPDATE (see sb_insert). */
static int bind_record(ctl_store *s, const struct coll *c, sqlite3_stmt *st, json_t *obj)
{
    int n = (int)c->nfields, rc;

    if ((rc = check_keys(obj)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        const struct field *f = &c->fields[i];
        if ((rc = bind_field(s, st, i + 1, f, json_object_get(obj, f->name))) < 0)
            return rc;
    }
    if ((rc = bind_doc(s, c, st, n + 1, obj)) < 0)
        return rc;
    return bind_i64(s, st, n + 2, now_s());
}

/* ---- records ----------------------------------------------------------- */

static int get_by(ctl_store *s, const struct coll *c, int which, const char *key, json_t **out)
{
    sqlite3_stmt *st = fixed_stmt(s, c, which);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, key)) == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = row_to_json(s, c, st, out);
        else
            rc = step == SQLITE_DONE ? WEFT_ENOTFOUND : store_err(s, step, "get");
    }
    done(st);
    return rc;
}

int ctl_store_create(ctl_store *s, const char *coll, json_t *obj)
{
    const struct coll *c = find_coll(coll);
    sqlite3_stmt *st;
    int rc;

    if (s == NULL || c == NULL || !json_is_object(obj))
        return WEFT_EINVAL;
    if ((st = fixed_stmt(s, c, ST_INSERT)) == NULL)
        return WEFT_ESTORE;
    rc = bind_record(s, c, st, obj);
    if (rc == 0)
        rc = bind_i64(s, st, (int)c->nfields + 3, now_s());
    /* One statement outside a batch is its own durable transaction; inside
     * one, a failed INSERT is undone alone by SQLite's statement rollback. */
    if (rc == 0)
        return step_done(s, st, "create");
    done(st);
    return rc;
}

int ctl_store_get(ctl_store *s, const char *coll, const char *id_or_name, json_t **out)
{
    const struct coll *c = find_coll(coll);
    int rc;

    if (s == NULL || c == NULL || id_or_name == NULL || out == NULL)
        return WEFT_EINVAL;
    rc = get_by(s, c, ST_GET_ID, id_or_name, out);
    if (rc == WEFT_ENOTFOUND)
        rc = get_by(s, c, ST_GET_NAME, id_or_name, out);
    return rc;
}

/* Merges fields into cur (the stored record with this id) and writes it. */
static int merge_write(ctl_store *s, const struct coll *c, const char *id, json_t *cur,
                       json_t *fields)
{
    json_t *fid = json_object_get(fields, "id");
    sqlite3_stmt *st;
    int rc;

    if (fid != NULL && (!json_is_string(fid) || strcmp(json_string_value(fid), id) != 0))
        return WEFT_EINVAL; /* ids are permanent: certificates name them */
    if (json_object_update(cur, fields) < 0)
        return WEFT_ENOMEM;
    if ((st = fixed_stmt(s, c, ST_UPDATE)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_record(s, c, st, cur)) == 0)
        return step_done(s, st, "update");
    done(st);
    return rc;
}

int ctl_store_update(ctl_store *s, const char *coll, const char *id, json_t *fields)
{
    const struct coll *c = find_coll(coll);
    json_t *cur = NULL;
    int rc;

    if (s == NULL || c == NULL || id == NULL || !json_is_object(fields))
        return WEFT_EINVAL;
    if ((rc = tx_begin(s)) < 0)
        return rc;
    rc = get_by(s, c, ST_GET_ID, id, &cur);
    if (rc == 0)
        rc = merge_write(s, c, id, cur, fields);
    json_decref(cur);
    return tx_end(s, rc);
}

static int delete_tokens(ctl_store *s, const char *kind, const char *subject_id)
{
    sqlite3_stmt *st = misc_stmt(s, TS_DEL_SUBJECT);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, kind)) == 0 && (rc = bind_str(s, st, 2, subject_id)) == 0)
        return step_done(s, st, "delete_tokens");
    done(st);
    return rc;
}

static int delete_row(ctl_store *s, const struct coll *c, const char *id)
{
    sqlite3_stmt *st = fixed_stmt(s, c, ST_DELETE);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, id)) < 0) {
        done(st);
        return rc;
    }
    if ((rc = step_done(s, st, "delete")) < 0)
        return rc;
    return sqlite3_changes(s->db) == 0 ? WEFT_ENOTFOUND : 0;
}

int ctl_store_delete(ctl_store *s, const char *coll, const char *id)
{
    const struct coll *c = find_coll(coll);
    int rc;

    if (s == NULL || c == NULL || id == NULL)
        return WEFT_EINVAL;
    if ((rc = tx_begin(s)) < 0)
        return rc;
    rc = delete_row(s, c, id);
    /* tokens.subject_id names a row in identities or routers, which no
     * foreign key can express: remove them in the same transaction. */
    if (rc == 0 && c->token_kind != NULL)
        rc = delete_tokens(s, c->token_kind, id);
    return tx_end(s, rc);
}

/* ---- list -------------------------------------------------------------- */

struct filter {
    int variant;
    int empty;   /* the filter can match nothing: skip the query */
    char *hi;    /* NAME_PREFIX: the first string past the prefix */
    size_t plen; /* NAME_PREFIX: prefix length */
};

/* "abc*" selects names in [abc, abd): a range on the name index, in which %
 * and _ are ordinary characters, so nothing needs escaping. */
static int parse_name(const char *name, struct filter *f)
{
    size_t len = strlen(name);

    if (len == 0 || name[len - 1] != '*')
        return NAME_EXACT;
    f->plen = len - 1;
    if (f->plen == 0)
        return NAME_ANY; /* "*" matches every name */
    if ((unsigned char)name[f->plen - 1] == 0xff) {
        f->empty = 1; /* no valid UTF-8 name contains 0xff */
        return NAME_PREFIX;
    }
    if ((f->hi = malloc(f->plen)) == NULL)
        return -1;
    memcpy(f->hi, name, f->plen);
    f->hi[f->plen - 1]++;
    return NAME_PREFIX;
}

static int bind_named(ctl_store *s, sqlite3_stmt *st, const char *param, const char *v,
                      size_t len)
{
    int idx = sqlite3_bind_parameter_index(st, param);
    return idx > 0 ? bind_text(s, st, idx, v, len) : 0;
}

static int bind_filter(ctl_store *s, sqlite3_stmt *st, const ctl_list_opts *o,
                       const struct filter *f)
{
    int rc = 0;

    if (o->name != NULL && f->variant / 2 == NAME_EXACT)
        rc = bind_named(s, st, ":name", o->name, strlen(o->name));
    if (rc == 0 && f->variant / 2 == NAME_PREFIX) {
        if ((rc = bind_named(s, st, ":lo", o->name, f->plen)) == 0)
            rc = bind_named(s, st, ":hi", f->hi, f->plen);
    }
    if (rc == 0 && o->role != NULL)
        rc = bind_named(s, st, ":role", o->role, strlen(o->role));
    return rc;
}

static int list_page(ctl_store *s, const struct coll *c, const ctl_list_opts *o,
                     const struct filter *f, json_t *items)
{
    sqlite3_stmt *st = list_stmt(s, c, f->variant, 0);
    int rc, step;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_filter(s, st, o, f)) < 0 ||
        (rc = bind_i64(s, st, sqlite3_bind_parameter_index(st, ":limit"), o->limit)) < 0 ||
        (rc = bind_i64(s, st, sqlite3_bind_parameter_index(st, ":offset"), o->offset)) < 0)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *rec = NULL;
        if ((rc = row_to_json(s, c, st, &rec)) < 0)
            goto out;
        if (json_array_append_new(items, rec) < 0) {
            rc = WEFT_ENOMEM;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = store_err(s, step, "list");
out:
    done(st);
    return rc;
}

static int list_count(ctl_store *s, const struct coll *c, const ctl_list_opts *o,
                      const struct filter *f, int64_t *total)
{
    sqlite3_stmt *st = list_stmt(s, c, f->variant, 1);
    int rc, step;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_filter(s, st, o, f)) == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            *total = sqlite3_column_int64(st, 0);
        else
            rc = store_err(s, step, "count");
    }
    done(st);
    return rc;
}

/* Normalises the options (limit 0 means 100) and picks the statement. */
static int list_opts(const ctl_list_opts *in, ctl_list_opts *o, struct filter *f)
{
    int name_mode = NAME_ANY;

    *o = in ? *in : (ctl_list_opts){0};
    if (o->limit == 0)
        o->limit = 100;
    if (o->limit < 1 || o->limit > 1000 || o->offset < 0)
        return WEFT_EINVAL;
    if (o->name != NULL && (name_mode = parse_name(o->name, f)) < 0)
        return WEFT_ENOMEM;
    f->variant = name_mode * 2 + (o->role != NULL);
    return 0;
}

int ctl_store_list(ctl_store *s, const char *coll, const ctl_list_opts *opts, json_t **items,
                   int64_t *total)
{
    const struct coll *c = find_coll(coll);
    struct filter f = {0};
    ctl_list_opts o;
    json_t *arr = NULL;
    int rc;

    if (s == NULL || c == NULL || items == NULL || total == NULL)
        return WEFT_EINVAL;
    if ((rc = list_opts(opts, &o, &f)) < 0)
        goto out;
    if ((arr = json_array()) == NULL) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    *total = 0;
    if (!f.empty) {
        /* One read transaction, so that total and the page agree. */
        if ((rc = exec(s, "SAVEPOINT list", "list")) < 0)
            goto out;
        rc = list_page(s, c, &o, &f, arr);
        if (rc == 0)
            rc = list_count(s, c, &o, &f, total);
        sqlite3_exec(s->db, "RELEASE list", NULL, NULL, NULL);
    }
    if (rc == 0) {
        *items = arr;
        arr = NULL;
    }
out:
    json_decref(arr);
    free(f.hi);
    return rc;
}

/* ---- enrolment tokens -------------------------------------------------- */

int ctl_store_token_add(ctl_store *s, const char *jti, const char *kind, const char *subject_id,
                        int64_t expires_at)
{
    const struct coll *c = coll_for_kind(kind);
    sqlite3_stmt *st;
    json_t *subj = NULL;
    int rc;

    if (s == NULL || c == NULL || !nonempty(jti) || !nonempty(subject_id))
        return WEFT_EINVAL;
    if ((st = misc_stmt(s, TS_INSERT)) == NULL)
        return WEFT_ESTORE;
    if ((rc = tx_begin(s)) < 0)
        return rc;
    rc = get_by(s, c, ST_GET_ID, subject_id, &subj);
    json_decref(subj);
    if (rc == 0 && (rc = bind_str(s, st, 1, jti)) == 0 && (rc = bind_str(s, st, 2, kind)) == 0 &&
        (rc = bind_str(s, st, 3, subject_id)) == 0 && (rc = bind_i64(s, st, 4, expires_at)) == 0 &&
        (rc = bind_i64(s, st, 5, now_s())) == 0)
        rc = step_done(s, st, "token_add");
    done(st);
    return tx_end(s, rc);
}

/* The token exists for this kind and subject, is unused and unexpired. */
static int check_token(ctl_store *s, const char *jti, const char *kind, const char *subject_id,
                       int64_t now)
{
    sqlite3_stmt *st = misc_stmt(s, TS_GET);
    int rc, step;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, jti)) < 0)
        goto out;
    step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? WEFT_ETOKEN : store_err(s, step, "token_get");
        goto out;
    }
    if (strcmp((const char *)sqlite3_column_text(st, 0), kind) != 0 ||
        strcmp((const char *)sqlite3_column_text(st, 1), subject_id) != 0)
        rc = WEFT_ETOKEN; /* a token for someone else is no token for this one */
    else if (sqlite3_column_type(st, 3) != SQLITE_NULL)
        rc = WEFT_ETOKENUSED;
    else if (now >= sqlite3_column_int64(st, 2))
        rc = WEFT_ETOKENEXPIRED;
out:
    done(st);
    return rc;
}

static int use_token(ctl_store *s, const char *jti, int64_t now)
{
    sqlite3_stmt *st = misc_stmt(s, TS_USE);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, jti)) < 0 || (rc = bind_i64(s, st, 2, now)) < 0) {
        done(st);
        return rc;
    }
    if ((rc = step_done(s, st, "token_use")) < 0)
        return rc;
    return sqlite3_changes(s->db) == 1 ? 0 : WEFT_ETOKENUSED;
}

static int check_subject(json_t *subj)
{
    if (json_is_true(json_object_get(subj, "disabled")))
        return WEFT_EDISABLED;
    if (json_is_true(json_object_get(subj, "enrolled")))
        return WEFT_ECONFLICT;
    return 0;
}

int ctl_store_token_consume(ctl_store *s, const char *jti, const char *kind,
                            const char *subject_id, int64_t now, json_t *enrolled_fields)
{
    const struct coll *c = coll_for_kind(kind);
    json_t *subj = NULL;
    int rc;

    if (s == NULL || jti == NULL || kind == NULL || subject_id == NULL ||
        (enrolled_fields != NULL && !json_is_object(enrolled_fields)))
        return WEFT_EINVAL;
    if (c == NULL)
        return WEFT_ETOKEN;
    if ((rc = tx_begin(s)) < 0)
        return rc;
    rc = check_token(s, jti, kind, subject_id, now);
    if (rc == 0)
        rc = get_by(s, c, ST_GET_ID, subject_id, &subj);
    if (rc == 0)
        rc = check_subject(subj);
    if (rc == 0)
        rc = use_token(s, jti, now);
    if (rc == 0 && enrolled_fields != NULL)
        rc = merge_write(s, c, subject_id, subj, enrolled_fields);
    json_decref(subj);
    return tx_end(s, rc);
}

static int pending_json(sqlite3_stmt *st, json_t **out)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:o?}",
                          "jti", (const char *)sqlite3_column_text(st, 0),
                          "kind", (const char *)sqlite3_column_text(st, 1),
                          "subject_id", (const char *)sqlite3_column_text(st, 2),
                          "expires_at", (json_int_t)sqlite3_column_int64(st, 3),
                          "created_at", time_json(sqlite3_column_int64(st, 4)));

    if (o == NULL)
        return WEFT_ENOMEM;
    *out = o;
    return 0;
}

int ctl_store_token_pending(ctl_store *s, const char *subject_id, json_t **out)
{
    sqlite3_stmt *st;
    int rc, step;

    if (s == NULL || subject_id == NULL || out == NULL)
        return WEFT_EINVAL;
    if ((st = misc_stmt(s, TS_PENDING)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, subject_id)) == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = pending_json(st, out);
        else
            rc = step == SQLITE_DONE ? WEFT_ENOTFOUND : store_err(s, step, "token_pending");
    }
    done(st);
    return rc;
}

/* ---- settings ---------------------------------------------------------- */

int ctl_store_setting_get(ctl_store *s, const char *key, char **value)
{
    sqlite3_stmt *st;
    int rc, step;

    if (s == NULL || key == NULL || value == NULL)
        return WEFT_EINVAL;
    if ((st = misc_stmt(s, SET_GET)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, key)) == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *value = strdup((const char *)sqlite3_column_text(st, 0));
            rc = *value ? 0 : WEFT_ENOMEM;
        } else {
            rc = step == SQLITE_DONE ? WEFT_ENOTFOUND : store_err(s, step, "setting_get");
        }
    }
    done(st);
    return rc;
}

int ctl_store_setting_set(ctl_store *s, const char *key, const char *value)
{
    sqlite3_stmt *st;
    int rc;

    if (s == NULL || key == NULL || value == NULL)
        return WEFT_EINVAL;
    if ((st = misc_stmt(s, SET_PUT)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, key)) == 0 && (rc = bind_str(s, st, 2, value)) == 0)
        return step_done(s, st, "setting_set");
    done(st);
    return rc;
}

int ctl_store_setting_object(ctl_store *s, const char *key, json_t **out)
{
    char *text = NULL;
    int rc = ctl_store_setting_get(s, key, &text);

    *out = NULL;
    if (rc < 0)
        return rc;
    *out = json_loads(text, 0, NULL);
    free(text);
    if (json_is_object(*out))
        return 0;
    json_decref(*out);
    *out = NULL;
    return WEFT_EJSON;
}

/* ---- anomaly baselines ------------------------------------------------- */

static int bind_real(ctl_store *s, sqlite3_stmt *st, int idx, double v)
{
    int rc = sqlite3_bind_double(st, idx, v);
    return rc == SQLITE_OK ? 0 : store_err(s, rc, "bind");
}

static json_t *baseline_row(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:f, s:f, s:I, s:f, s:I, s:I, s:o}", "windows",
                     (json_int_t)sqlite3_column_int64(st, 0), "dials", sqlite3_column_double(st, 1),
                     "svcs", sqlite3_column_double(st, 2), "circuits",
                     (json_int_t)sqlite3_column_int64(st, 3), "bytes",
                     sqlite3_column_double(st, 4), "hours", (json_int_t)sqlite3_column_int64(st, 5),
                     "first_s", (json_int_t)sqlite3_column_int64(st, 6), "updated_at",
                     time_json(sqlite3_column_int64(st, 7)));
}

int ctl_store_baseline_get(ctl_store *s, const char *identity_id, json_t **out)
{
    sqlite3_stmt *st;
    int rc, step;

    if (s == NULL || identity_id == NULL || out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if ((st = misc_stmt(s, BL_GET)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, identity_id)) == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = (*out = baseline_row(st)) ? 0 : WEFT_ENOMEM;
        else
            rc = step == SQLITE_DONE ? WEFT_ENOTFOUND : store_err(s, step, "baseline_get");
    }
    done(st);
    return rc;
}

int ctl_store_baseline_delete(ctl_store *s, const char *identity_id)
{
    sqlite3_stmt *st;
    int rc;

    if (s == NULL || identity_id == NULL)
        return WEFT_EINVAL;
    if ((st = misc_stmt(s, BL_DEL)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, identity_id)) < 0) {
        done(st);
        return rc;
    }
    if ((rc = step_done(s, st, "baseline_delete")) < 0)
        return rc;
    return sqlite3_changes(s->db) == 0 ? WEFT_ENOTFOUND : 0;
}

int ctl_store_baseline_mark(ctl_store *s, const char *router_id, char *boot, size_t cap,
                            int64_t *seq)
{
    sqlite3_stmt *st;
    int rc, step;

    if (s == NULL || router_id == NULL || boot == NULL || cap == 0 || seq == NULL)
        return WEFT_EINVAL;
    boot[0] = '\0';
    *seq = 0;
    if ((st = misc_stmt(s, BL_MARK_GET)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, router_id)) == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(boot, cap, "%s", (const char *)sqlite3_column_text(st, 0));
            *seq = sqlite3_column_int64(st, 1);
        } else if (step != SQLITE_DONE) {
            rc = store_err(s, step, "baseline_mark");
        }
    }
    done(st);
    return rc;
}

static int64_t num_i64(const json_t *o, const char *key)
{
    return (int64_t)json_number_value(json_object_get(o, key));
}

static int baseline_put_one(ctl_store *s, const char *id, const json_t *b, int64_t now)
{
    sqlite3_stmt *st = misc_stmt(s, BL_PUT);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, id)) == 0 &&
        (rc = bind_i64(s, st, 2, num_i64(b, "windows"))) == 0 &&
        (rc = bind_real(s, st, 3, json_number_value(json_object_get(b, "dials")))) == 0 &&
        (rc = bind_real(s, st, 4, json_number_value(json_object_get(b, "svcs")))) == 0 &&
        (rc = bind_i64(s, st, 5, num_i64(b, "circuits"))) == 0 &&
        (rc = bind_real(s, st, 6, json_number_value(json_object_get(b, "bytes")))) == 0 &&
        (rc = bind_i64(s, st, 7, num_i64(b, "hours"))) == 0 &&
        (rc = bind_i64(s, st, 8, num_i64(b, "first_s"))) == 0 &&
        (rc = bind_i64(s, st, 9, now)) == 0)
        return step_done(s, st, "baseline_put");
    done(st);
    return rc;
}

static int mark_put(ctl_store *s, const char *router_id, const char *boot, int64_t seq,
                    int64_t now)
{
    sqlite3_stmt *st = misc_stmt(s, BL_MARK_PUT);
    int rc;

    if (st == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_str(s, st, 1, router_id)) == 0 && (rc = bind_str(s, st, 2, boot)) == 0 &&
        (rc = bind_i64(s, st, 3, seq)) == 0 && (rc = bind_i64(s, st, 4, now)) == 0)
        return step_done(s, st, "baseline_mark_put");
    done(st);
    return rc;
}

int ctl_store_baseline_put(ctl_store *s, const char *router_id, const char *boot, int64_t seq,
                           const json_t *baselines)
{
    int64_t now = now_s();
    const char *id;
    json_t *b;
    int rc;

    if (s == NULL || router_id == NULL || boot == NULL || seq < 0 || !json_is_object(baselines))
        return WEFT_EINVAL;
    if ((rc = tx_begin(s)) < 0)
        return rc;
    json_object_foreach((json_t *)baselines, id, b)
    {
        if ((rc = baseline_put_one(s, id, b, now)) < 0)
            break;
    }
    if (rc == 0)
        rc = mark_put(s, router_id, boot, seq, now);
    return tx_end(s, rc);
}

/* ---- open, migrate, close ---------------------------------------------- */

static int read_version(ctl_store *s, int *version)
{
    sqlite3_stmt *st = misc_stmt(s, GET_VERSION);
    int step;

    if (st == NULL)
        return WEFT_ESTORE;
    step = sqlite3_step(st);
    *version = step == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    done(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_err(s, step, "schema_version");
}

static int apply_migration(ctl_store *s, int from)
{
    sqlite3_stmt *st;
    int rc;

    if ((rc = exec(s, migrations[from], "migrate")) < 0)
        return rc;
    if ((st = misc_stmt(s, SET_VERSION)) == NULL)
        return WEFT_ESTORE;
    if ((rc = bind_i64(s, st, 1, from + 1)) < 0) {
        done(st);
        return rc;
    }
    if ((rc = step_done(s, st, "migrate")) == 0)
        pr_info("store_migrated", "path=%s from=%d to=%d", pr_log_q(s->path), from, from + 1);
    return rc;
}

/* One step per transaction, re-reading the version under the write lock so
 * that two processes opening a new store at once migrate it once. */
static int migrate_step(ctl_store *s, int *current)
{
    int rc;

    if ((rc = read_version(s, current)) < 0)
        return rc;
    if (*current > SCHEMA_VERSION) {
        pr_error("store_too_new", "path=%s version=%d supported=%d hint=%s", pr_log_q(s->path),
                 *current, SCHEMA_VERSION,
                 pr_log_q("this store was written by a newer weft-controller: run that "
                          "version, or restore a backup made before the upgrade"));
        return WEFT_EVERSION;
    }
    return *current < SCHEMA_VERSION ? apply_migration(s, *current) : 0;
}

static int migrate(ctl_store *s)
{
    int rc, v = 0;

    if ((rc = exec(s, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value)",
                   "meta")) < 0)
        return rc;
    for (int i = 0; i <= SCHEMA_VERSION; i++) {
        if ((rc = tx_begin(s)) < 0)
            return rc;
        if ((rc = tx_end(s, migrate_step(s, &v))) < 0)
            return rc;
        if (v == SCHEMA_VERSION)
            break;
    }
    s->version = v;
    return 0;
}

static int check_wal(ctl_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    const char *mode;

    if (rc != SQLITE_OK)
        return store_err(s, rc, "journal_mode");
    rc = sqlite3_step(st);
    mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (mode == NULL || strcmp(mode, "wal") != 0)
        pr_warn("store_no_wal", "path=%s mode=%s hint=%s", pr_log_q(s->path),
                mode ? mode : "unknown",
                pr_log_q("put the data directory on a local filesystem: writes stay durable "
                         "but readers will block writers"));
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_err(s, rc, "journal_mode");
    sqlite3_finalize(st);
    return rc;
}

/* Durability first: an acknowledged write is on disk (synchronous=FULL). */
static int configure(ctl_store *s)
{
    int rc;

    sqlite3_extended_result_codes(s->db, 1);
    if ((rc = sqlite3_busy_timeout(s->db, 5000)) != SQLITE_OK)
        return store_err(s, rc, "busy_timeout");
    if ((rc = check_wal(s)) < 0)
        return rc;
    return exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", "pragmas");
}

int ctl_store_open(const char *path, ctl_store **out)
{
    ctl_store *s;
    int rc;

    if (path == NULL || out == NULL)
        return WEFT_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        return WEFT_ENOMEM;
    }
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = s->db ? store_err(s, sqlite3_extended_errcode(s->db), "open") : WEFT_ENOMEM;
        goto out;
    }
    if ((rc = configure(s)) < 0 || (rc = migrate(s)) < 0)
        goto out;
    *out = s;
    s = NULL;
out:
    ctl_store_close(s);
    return rc;
}

int ctl_store_schema_version(ctl_store *s)
{
    return s ? s->version : WEFT_EINVAL;
}

static void finalize_all(ctl_store *s)
{
    for (int c = 0; c < NCOLLS; c++) {
        for (int i = 0; i < ST_NFIXED; i++)
            sqlite3_finalize(s->fixed[c][i]);
        for (int v = 0; v < N_VARIANTS; v++)
            for (int k = 0; k < 2; k++)
                sqlite3_finalize(s->list[c][v][k]);
    }
    for (int i = 0; i < TS_N; i++)
        sqlite3_finalize(s->misc[i]);
}

void ctl_store_close(ctl_store *s)
{
    if (s == NULL)
        return;
    if (s->batch)
        ctl_store_batch_end(s, 0);
    finalize_all(s);
    if (s->db != NULL && s->version > 0)
        sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}
