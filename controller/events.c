/* Security and audit events: stored in events.db, appended to events.jsonl,
 * counted, alerted to webhooks, and quarantines carried out (events.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "controller/behaviour.h"
#include "controller/events.h"
#include "proto/httpc.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

static const char *const kinds[] = {"rate",        "bandwidth", "quota",   "max_circuits", "time",
                                    "destination", "binding",   "anomaly", "quarantine",   "enable",
                                    "rebind",      "webhook",   "other"};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

typedef struct job job;
struct job {
    ctl_events *e;
    uv_work_t work;
    uv_timer_t timer;
    int timer_on;
    char *name, *url, *ca, *body; /* ca NULL: the system trust store */
    size_t len;
    int tries, rc;
    char err[512];
    job *next, *prev;
};

struct ctl_events {
    sqlite3 *db;
    FILE *log;
    uv_loop_t *loop;
    int stopping;
    uint64_t count[NKINDS];
    uint64_t hooks_sent, hooks_failed;
    job *jobs;
    unsigned closing;
    void (*stop_cb)(void *);
    void *stop_arg;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " identity TEXT,"
    " doc TEXT NOT NULL CHECK (json_type(doc) = 'object'),"
    " eid TEXT);" /* "ROUTER/EID" of a router's event: each is stored once */
    "CREATE INDEX IF NOT EXISTS events_identity ON events(identity, id);"
    "CREATE TABLE IF NOT EXISTS webhooks ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE,"
    " url TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " ca TEXT);"; /* PEM trust anchors of an https:// target, or NULL */

/* A store made before webhooks had their own CA gains the column. */
static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, "SELECT ca FROM webhooks LIMIT 0", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_finalize(st);
        return SQLITE_OK;
    }
    return sqlite3_exec(db, "ALTER TABLE webhooks ADD COLUMN ca TEXT", NULL, NULL, NULL);
}

/* A store made before routers' events had ids gains the column, and the
 * index that keeps an event sent twice (a router restarted before it heard
 * the acknowledgement) to one row. */
static int event_ids(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, "SELECT eid FROM events LIMIT 0", -1, &st, NULL) != SQLITE_OK &&
        sqlite3_exec(db, "ALTER TABLE events ADD COLUMN eid TEXT", NULL, NULL, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_finalize(st);
    return sqlite3_exec(db,
                        "CREATE UNIQUE INDEX IF NOT EXISTS events_eid ON events(eid) "
                        "WHERE eid IS NOT NULL",
                        NULL, NULL, NULL);
}

static int db_fail(ctl_events *e, const char *op)
{
    pr_error("events_store_error", "op=%s err=%s hint=%s", op, pr_log_q(sqlite3_errmsg(e->db)),
             pr_log_q("check that the data directory is writable and the disk not full"));
    return WEFT_ESTORE;
}

int ctl_events_open(uv_loop_t *loop, const char *dir, ctl_events **out)
{
    char path[4096];
    ctl_events *e = calloc(1, sizeof(*e));
    int rc = WEFT_ESTORE;

    *out = NULL;
    if (e == NULL)
        return WEFT_ENOMEM;
    e->loop = loop;
    snprintf(path, sizeof(path), "%s/%s", dir, CTL_EVENTS_DB);
    if (sqlite3_open_v2(path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        pr_error("events_open_failed", "path=%s hint=%s", pr_log_q(path),
                 pr_log_q("make the data directory writable by the controller"));
        goto out;
    }
    sqlite3_busy_timeout(e->db, 5000);
    /* Events are an audit trail, not the source of truth: NORMAL keeps them
     * safe across a crash of the process and costs no fsync per event. */
    if (sqlite3_exec(e->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(e->db, schema, NULL, NULL, NULL) != SQLITE_OK || migrate(e->db) != SQLITE_OK) {
        rc = db_fail(e, "schema");
        goto out;
    }
    if (event_ids(e->db) != SQLITE_OK) {
        rc = db_fail(e, "schema");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, CTL_EVENTS_LOG);
    if ((e->log = fopen(path, "a")) == NULL) {
        pr_error("events_log_failed", "path=%s hint=%s", pr_log_q(path),
                 pr_log_q("make the data directory writable by the controller"));
        goto out;
    }
    *out = e;
    return 0;
out:
    ctl_events_close(e);
    return rc;
}

static void job_free(job *j)
{
    ctl_events *e = j->e;

    if (j->prev)
        j->prev->next = j->next;
    else
        e->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    free(j->name);
    free(j->url);
    free(j->ca);
    free(j->body);
    free(j);
}

void ctl_events_close(ctl_events *e)
{
    if (e == NULL)
        return;
    while (e->jobs) {
        pr_warn("webhook_abandoned", "url=%s tries=%d", pr_log_q(e->jobs->url), e->jobs->tries);
        job_free(e->jobs);
    }
    if (e->log)
        fclose(e->log);
    sqlite3_close(e->db);
    free(e);
}

static void stop_done(ctl_events *e)
{
    if (e->closing == 0 && e->stop_cb) {
        void (*cb)(void *) = e->stop_cb;
        e->stop_cb = NULL;
        cb(e->stop_arg);
    }
}

static void timer_closed(uv_handle_t *h)
{
    job *j = h->data;
    ctl_events *e = j->e;

    e->closing--;
    job_free(j);
    stop_done(e);
}

void ctl_events_stop(ctl_events *e, void (*cb)(void *arg), void *arg)
{
    job *j, *next;

    if (e == NULL) {
        if (cb)
            cb(arg);
        return;
    }
    e->stopping = 1;
    e->stop_cb = cb;
    e->stop_arg = arg;
    for (j = e->jobs; j; j = next) {
        next = j->next;
        if (j->timer_on) {
            j->timer_on = 0;
            e->closing++;
            uv_close((uv_handle_t *)&j->timer, timer_closed);
        }
    }
    stop_done(e);
}

/* ---- webhook delivery ---- */

static void job_work(uv_work_t *w)
{
    job *j = w->data;
    ctl_webhook_target t = {.name = j->name, .url = j->url, .ca = j->ca};

    j->rc = ctl_webhook_post(&t, j->body, j->len, CTL_WEBHOOK_TIMEOUT_MS, j->err, sizeof(j->err));
}

/* An alert given up is an event too, so that `weft events` says why the
 * webhook got nothing; "log" only, never "alert", so it cannot loop. */
static void job_given_up(job *j)
{
    json_t *alert = json_loadb(j->body, j->len, 0, NULL), *ev;
    json_int_t id = json_integer_value(json_object_get(alert, "id"));
    char msg[sizeof(j->err) + CTL_NAME_MAX + 64];

    snprintf(msg, sizeof(msg), "alert %lld to webhook %s given up after %d tries: %s",
             (long long)id, j->name, j->tries, j->err);
    ev = json_pack("{s:s, s:s, s:s, s:I, s:i, s:s, s:[s]}", "kind", "webhook", "webhook", j->name,
                   "url", j->url, "event", id, "tries", j->tries, "msg", msg, "actions", "log");
    if (ev)
        ctl_events_emit(NULL, j->e, ev);
    json_decref(ev);
    json_decref(alert);
}

static void job_after(uv_work_t *w, int status);

static void job_retry(uv_timer_t *t)
{
    job *j = t->data;
    if (uv_queue_work(j->e->loop, &j->work, job_work, job_after) < 0) {
        j->e->hooks_failed++;
        j->timer_on = 0;
        j->e->closing++;
        uv_close((uv_handle_t *)&j->timer, timer_closed);
    }
}

static void job_after(uv_work_t *w, int status)
{
    job *j = w->data;
    ctl_events *e = j->e;

    j->tries++;
    if (status == 0 && j->rc == 0) {
        e->hooks_sent++;
        pr_info("webhook_delivered", "name=%s url=%s tries=%d", pr_log_q(j->name),
                pr_log_q(j->url), j->tries);
    } else if (!e->stopping && j->tries < CTL_WEBHOOK_TRIES) {
        pr_warn("webhook_retry", "name=%s url=%s tries=%d err=%s", pr_log_q(j->name),
                pr_log_q(j->url), j->tries, pr_log_q(j->err));
        uv_timer_start(&j->timer, job_retry, (uint64_t)CTL_WEBHOOK_BACKOFF_MS << (j->tries - 1),
                       0);
        return;
    } else {
        e->hooks_failed++;
        pr_error("webhook_failed", "name=%s url=%s tries=%d err=%s hint=%s", pr_log_q(j->name),
                 pr_log_q(j->url), j->tries, pr_log_q(j->err),
                 pr_log_q("check that the webhook target is up and answers 2xx"));
        job_given_up(j);
    }
    j->timer_on = 0;
    e->closing++;
    uv_close((uv_handle_t *)&j->timer, timer_closed);
}

static job *job_new(const char *name, const char *url, const char *ca, const char *body, size_t len)
{
    job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->name = strdup(name);
    j->url = strdup(url);
    j->ca = ca ? strdup(ca) : NULL;
    j->body = malloc(len ? len : 1);
    if (!j->name || !j->url || (ca && !j->ca) || !j->body) {
        free(j->name);
        free(j->url);
        free(j->ca);
        free(j->body);
        free(j);
        return NULL;
    }
    return j;
}

static void deliver(ctl_events *e, const char *name, const char *url, const char *ca,
                    const char *body, size_t len)
{
    job *j = job_new(name, url, ca, body, len);

    if (j == NULL) {
        e->hooks_failed++;
        return;
    }
    memcpy(j->body, body, len);
    j->len = len;
    j->e = e;
    j->work.data = j->timer.data = j;
    uv_timer_init(e->loop, &j->timer);
    j->timer_on = 1;
    j->next = e->jobs;
    if (e->jobs)
        e->jobs->prev = j;
    e->jobs = j;
    if (uv_queue_work(e->loop, &j->work, job_work, job_after) < 0) {
        e->hooks_failed++;
        j->timer_on = 0;
        e->closing++;
        uv_close((uv_handle_t *)&j->timer, timer_closed);
    }
}

static void alert_all(ctl_events *e, const char *text, size_t len)
{
    sqlite3_stmt *st = NULL;

    if (e->loop == NULL || e->stopping)
        return;
    if (sqlite3_prepare_v2(e->db, "SELECT name, url, ca FROM webhooks ORDER BY name", -1, &st,
                           NULL) != SQLITE_OK) {
        db_fail(e, "webhooks");
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        deliver(e, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                text, len);
    sqlite3_finalize(st);
}

/* ---- emit ---- */

static size_t kind_index(const char *k)
{
    size_t i;
    for (i = 0; i < NKINDS - 1 && strcmp(kinds[i], k) != 0; i++)
        ;
    return i;
}

/* The key of a router's event ("ROUTER/EID"), or "" for others. */
static void event_key(const json_t *ev, char *out, size_t cap)
{
    const char *router = json_string_value(json_object_get(ev, "router"));
    const char *eid = json_string_value(json_object_get(ev, "eid"));

    if (router == NULL || eid == NULL || (size_t)snprintf(out, cap, "%s/%s", router, eid) >= cap)
        out[0] = '\0';
}

/* 1 when a router's event with this key is stored already. */
static int event_seen(ctl_events *e, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(e->db, "SELECT 1 FROM events WHERE eid = ?", -1, &st, NULL) != SQLITE_OK)
        return db_fail(e, "lookup");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_fail(e, "lookup");
}

static int store_event(ctl_events *e, json_t *ev, int64_t ts, const char *kind)
{
    const char *ident = json_string_value(json_object_get(ev, "identity"));
    char *doc = json_dumps(ev, JSON_COMPACT), key[CTL_EVENT_KEY_CAP];
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (doc == NULL)
        return WEFT_ENOMEM;
    event_key(ev, key, sizeof(key));
    if (sqlite3_prepare_v2(e->db,
                           "INSERT INTO events(ts, kind, identity, doc, eid) VALUES(?,?,?,?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(e, "insert");
        goto out;
    }
    sqlite3_bind_int64(st, 1, ts);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (ident)
        sqlite3_bind_text(st, 3, ident, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, doc, -1, SQLITE_STATIC);
    if (key[0])
        sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(e, "insert");
    else
        json_object_set_new(ev, "id", json_integer(sqlite3_last_insert_rowid(e->db)));
out:
    sqlite3_finalize(st);
    free(doc);
    return rc;
}

static unsigned event_actions(const json_t *ev)
{
    unsigned bits = 0;
    const json_t *v;
    size_t i;

    json_array_foreach(json_object_get(ev, "actions"), i, v)
    {
        json_t *one = json_pack("[O]", v);
        unsigned b = 0;
        if (one && ctl_behaviour_actions(one, &b) == 0)
            bits |= b;
        json_decref(one);
    }
    return bits;
}

/* The "remove" action: disable the identity; the map's revocation delta then
 * closes its sessions and circuits on every router. */
static void quarantine(ctl *c, ctl_events *e, const char *ident, const json_t *cause)
{
    json_t *rec = NULL, *fields, *ev;

    if (c == NULL || ident == NULL || ctl_store_get(c->store, "identities", ident, &rec) < 0)
        return;
    if (json_is_true(json_object_get(rec, "disabled")) ||
        json_is_true(json_object_get(rec, "admin"))) {
        json_decref(rec);
        return; /* already out, or an administrator (never locked out by a device rule) */
    }
    json_decref(rec);
    fields = json_pack("{s:b, s:s}", "disabled", 1, "quarantined_by", "policy");
    if (fields && ctl_store_update(c->store, "identities", ident, fields) == 0) {
        ctl_map_touch(c, "identities", ident);
        pr_warn("identity_quarantined", "identity=%s cause=%s", ident,
                pr_log_q(json_string_value(json_object_get(cause, "kind"))));
        ev = json_pack("{s:s, s:s, s:O, s:[s,s]}", "kind", "quarantine", "identity", ident,
                       "cause", json_object_get(cause, "id"), "actions", "log", "alert");
        if (ev)
            ctl_events_emit(NULL, e, ev);
        json_decref(ev);
    }
    json_decref(fields);
}

int ctl_events_emit(ctl *c, ctl_events *e, json_t *ev)
{
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    int64_t ts = (int64_t)time(NULL);
    char when[32], *text;
    unsigned acts;
    int rc;

    if (e == NULL || kind == NULL)
        return WEFT_EINVAL;
    ctl_rfc3339(ts, when);
    json_object_set_new(ev, "ts", json_string(when));
    if ((rc = store_event(e, ev, ts, kind)) < 0)
        return rc;
    e->count[kind_index(kind)]++;
    if ((text = json_dumps(ev, JSON_COMPACT)) == NULL)
        return WEFT_ENOMEM;
    fprintf(e->log, "%s\n", text);
    fflush(e->log);
    acts = event_actions(ev);
    pr_info("security_event", "id=%lld kind=%s identity=%s actions=%u",
            (long long)json_integer_value(json_object_get(ev, "id")), kind,
            pr_log_q(json_string_value(json_object_get(ev, "identity"))), acts);
    if (acts & CTL_ACT_ALERT)
        alert_all(e, text, strlen(text));
    free(text);
    if (acts & CTL_ACT_REMOVE)
        quarantine(c, e, json_string_value(json_object_get(ev, "identity")), ev);
    return 0;
}

/* What the controller adds to a router's event: the actions of a destination
 * violation (the router had no token saying them), and the hardware ids of a
 * first use of a binding, recorded so that the binding is fixed from now on. */
static void router_event_context(ctl *c, json_t *ev)
{
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    const char *ident = json_string_value(json_object_get(ev, "identity"));
    json_t *rec = NULL, *pols = NULL, *upd = NULL;
    char why[320];
    int flag;

    if (ctl_store_get(c->store, "identities", ident, &rec) < 0)
        return;
    if (strcmp(kind, "destination") == 0 && json_object_get(ev, "actions") == NULL &&
        ctl_list_all(c->store, "policies", &pols) == 0) {
        unsigned bits = ctl_behaviour_identity_actions(pols, rec) | CTL_ACT_LOG;
        json_t *acts = json_array();
        static const char *const names[] = {"block", "log", "alert", "remove"};
        for (size_t k = 0; k < 4; k++)
            if (bits & (1u << k))
                json_array_append_new(acts, json_string(names[k]));
        json_object_set_new(ev, "actions", acts);
    }
    if (strcmp(kind, "binding") == 0 && json_is_true(json_object_get(ev, "first_use")) &&
        ctl_binding_check(rec, json_string_value(json_object_get(ev, "imei")) ?: "",
                          json_string_value(json_object_get(ev, "iccid")) ?: "", &upd, why,
                          sizeof(why), &flag) == 0 &&
        upd != NULL)
        ctl_store_update(c->store, "identities", ident, upd);
    json_decref(upd);
    json_decref(pols);
    json_decref(rec);
}

/* 1 to 63 characters of [A-Za-z0-9._:-]. */
static int event_id_valid(const char *eid)
{
    size_t n = eid ? strlen(eid) : 0;

    return n > 0 && n < CTL_EVENT_ID_CAP &&
           strspn(eid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* The body's "eid" into eid ("" when absent); WEFT_EJSON when malformed. */
static int event_id(const json_t *ev, char *eid, size_t cap)
{
    const json_t *v = json_object_get(ev, "eid");

    eid[0] = '\0';
    if (v == NULL)
        return 0; /* a router older than event ids */
    if (!event_id_valid(json_string_value(v)) || strlen(json_string_value(v)) >= cap)
        return WEFT_EJSON;
    snprintf(eid, cap, "%s", json_string_value(v));
    return 0;
}

/* Routers are authenticated and name the identity; the controller only
 * checks the shape and marks where the event came from. An event stored
 * already (sent again after a reconnect or a restart) is not emitted twice. */
int ctl_events_from_router(ctl *c, const char *router_id, const uint8_t *body, size_t len,
                           char *eid, size_t eidcap)
{
    json_t *ev = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    char key[CTL_EVENT_KEY_CAP];
    int rc = WEFT_EJSON;

    eid[0] = '\0';
    if (c == NULL || c->events == NULL) {
        json_decref(ev);
        return WEFT_EINVAL;
    }
    if (!json_is_object(ev) || event_id(ev, eid, eidcap) < 0 ||
        !json_is_string(json_object_get(ev, "kind")) ||
        !json_is_string(json_object_get(ev, "identity")) ||
        (json_object_get(ev, "actions") && !json_is_array(json_object_get(ev, "actions"))))
        goto out;
    json_object_del(ev, "id");
    json_object_set_new(ev, "router", json_string(router_id));
    json_object_set_new(ev, "source", json_string("router"));
    event_key(ev, key, sizeof(key));
    if (key[0] && (rc = event_seen(c->events, key)) != 0) {
        if (rc > 0)
            pr_info("event_duplicate", "router=%s eid=%s", router_id, eid);
        goto out;
    }
    router_event_context(c, ev);
    rc = ctl_events_emit(c, c->events, ev);
out:
    json_decref(ev);
    return rc;
}

int ctl_events_list(ctl_events *e, int64_t after, int limit, const char *identity,
                    json_t **out)
{
    sqlite3_stmt *st = NULL;
    const char *sql = identity ? "SELECT id, doc FROM events WHERE id > ? AND identity = ? "
                                 "ORDER BY id LIMIT ?"
                               : "SELECT id, doc FROM events WHERE id > ? ORDER BY id LIMIT ?";
    int n = 1;

    *out = NULL;
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(e, "list");
    sqlite3_bind_int64(st, n++, after);
    if (identity)
        sqlite3_bind_text(st, n++, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, n, limit < 1 || limit > 1000 ? 100 : limit);
    *out = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *ev = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (ev == NULL)
            continue;
        json_object_set_new(ev, "id", json_integer(sqlite3_column_int64(st, 0)));
        json_array_append_new(*out, ev);
    }
    sqlite3_finalize(st);
    return 0;
}

/* ---- webhook targets ---- */

static int valid_url(const char *url)
{
    return url &&
           ((strncmp(url, "http://", 7) == 0 && strlen(url) > 7) ||
            (strncmp(url, "https://", 8) == 0 && strlen(url) > 8)) &&
           strlen(url) < 1024 &&
           strpbrk(url, " \t\r\n") == NULL;
}

/* A CA is for an https:// target only, and must be a bundle httpc loads
 * whole (the API checked it first, to say what is wrong). */
static int valid_target(const char *url, const char *ca)
{
    unsigned n;
    char why[8];

    if (!valid_url(url))
        return 0;
    if (ca == NULL)
        return 1;
    return strncmp(url, "https://", 8) == 0 &&
           pr_httpc_ca_check(ca, strlen(ca), &n, why, sizeof(why)) == 0;
}

static json_t *webhook_json(const char *id, const char *name, const char *url, const char *ca,
                            int64_t created)
{
    char when[32];
    json_t *o;

    ctl_rfc3339(created, when);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "name", name, "url", url, "trust",
                  ca                                 ? "ca"
                  : strncmp(url, "https://", 8) == 0 ? "system"
                                                     : "none",
                  "created_at", when);
    if (o && ca)
        json_object_set_new(o, "ca", json_string(ca));
    return o;
}

static json_t *webhook_row(sqlite3_stmt *st)
{
    return webhook_json((const char *)sqlite3_column_text(st, 0),
                        (const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 2),
                        (const char *)sqlite3_column_text(st, 4), sqlite3_column_int64(st, 3));
}

int ctl_webhook_add(ctl_events *e, const char *name, const char *url, const char *ca, json_t **out)
{
    char id[PR_ID_MAX + 1];
    int64_t now = (int64_t)time(NULL);
    sqlite3_stmt *st = NULL;
    int rc = 0, src;

    *out = NULL;
    if (ca && ca[0] == '\0')
        ca = NULL;
    if (!ctl_valid_name(name) || !valid_target(url, ca))
        return WEFT_EINVAL;
    pr_ident_new_id(id, sizeof(id));
    if (sqlite3_prepare_v2(e->db,
                           "INSERT INTO webhooks(id, name, url, created_at, ca) "
                           "VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(e, "webhook_add");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, url, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (ca)
        sqlite3_bind_text(st, 5, ca, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_CONSTRAINT)
        rc = WEFT_EEXISTS;
    else if (src != SQLITE_DONE)
        rc = db_fail(e, "webhook_add");
    sqlite3_finalize(st);
    if (rc == 0 && (*out = webhook_json(id, name, url, ca, now)) == NULL)
        rc = WEFT_ENOMEM;
    return rc;
}

#define WEBHOOK_COLS "SELECT id, name, url, created_at, ca FROM webhooks "

/* The webhook named id_or_name (by id or name) as JSON, or WEFT_ENOTFOUND. */
static int webhook_get(ctl_events *e, const char *id_or_name, json_t **out)
{
    sqlite3_stmt *st = NULL;
    int rc = WEFT_ENOTFOUND;

    *out = NULL;
    if (sqlite3_prepare_v2(e->db, WEBHOOK_COLS "WHERE id = ?1 OR name = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(e, "webhook_get");
    sqlite3_bind_text(st, 1, id_or_name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = (*out = webhook_row(st)) ? 0 : WEFT_ENOMEM;
    sqlite3_finalize(st);
    return rc;
}

static int webhook_set(ctl_events *e, const char *id, const char *url, const char *ca)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(e->db, "UPDATE webhooks SET url = ?2, ca = ?3 WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(e, "webhook_update");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, url, -1, SQLITE_STATIC);
    if (ca)
        sqlite3_bind_text(st, 3, ca, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(e, "webhook_update");
    sqlite3_finalize(st);
    return rc;
}

int ctl_webhook_update(ctl_events *e, const char *id_or_name, const char *url, const char *ca,
                       json_t **out)
{
    json_t *cur = NULL;
    int rc = webhook_get(e, id_or_name, &cur);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (url == NULL)
        url = json_string_value(json_object_get(cur, "url"));
    if (ca == NULL)
        ca = json_string_value(json_object_get(cur, "ca"));
    else if (ca[0] == '\0')
        ca = NULL;
    if (!valid_target(url, ca))
        rc = WEFT_EINVAL;
    else if ((rc = webhook_set(e, json_string_value(json_object_get(cur, "id")), url, ca)) == 0)
        rc = webhook_get(e, json_string_value(json_object_get(cur, "id")), out);
    json_decref(cur);
    return rc;
}

int ctl_webhook_list(ctl_events *e, json_t **out)
{
    sqlite3_stmt *st = NULL;

    *out = NULL;
    if (sqlite3_prepare_v2(e->db, WEBHOOK_COLS "ORDER BY name", -1, &st, NULL) != SQLITE_OK)
        return db_fail(e, "webhook_list");
    *out = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(*out, webhook_row(st));
    sqlite3_finalize(st);
    return 0;
}

int ctl_webhook_del(ctl_events *e, const char *id_or_name)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(e->db, "DELETE FROM webhooks WHERE id = ?1 OR name = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(e, "webhook_del");
    sqlite3_bind_text(st, 1, id_or_name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(e, "webhook_del");
    else if (sqlite3_changes(e->db) == 0)
        rc = WEFT_ENOTFOUND;
    sqlite3_finalize(st);
    return rc;
}

void ctl_webhook_stats(const ctl_events *e, uint64_t *sent, uint64_t *failed)
{
    *sent = e ? e->hooks_sent : 0;
    *failed = e ? e->hooks_failed : 0;
}

int ctl_events_metrics(const ctl_events *e, char *buf, size_t cap)
{
    size_t off = 0;
    int n;

    if (e == NULL)
        return 0;
    n = snprintf(buf, cap, "# TYPE weft_events_total counter\n");
    for (size_t i = 0; n >= 0 && (size_t)n < cap - off && i < NKINDS; i++) {
        off += (size_t)n;
        n = snprintf(buf + off, cap - off, "weft_events_total{kind=\"%s\"} %llu\n", kinds[i],
                     (unsigned long long)e->count[i]);
    }
    if (n < 0 || (size_t)n >= cap - off)
        return WEFT_EINVAL;
    off += (size_t)n;
    n = snprintf(buf + off, cap - off,
                 "# TYPE weft_webhook_deliveries_total counter\n"
                 "weft_webhook_deliveries_total{result=\"ok\"} %llu\n"
                 "weft_webhook_deliveries_total{result=\"failed\"} %llu\n",
                 (unsigned long long)e->hooks_sent, (unsigned long long)e->hooks_failed);
    if (n < 0 || (size_t)n >= cap - off)
        return WEFT_EINVAL;
    return (int)(off + (size_t)n);
}
