/* Security events waiting for the controller, and their file (evqueue.h).
 * The file always holds the queue's events in order, possibly after events
 * already acknowledged: it is truncated when the queue empties, and written
 * again from the queue when acknowledged lines make up most of it. Writes are
 * whole lines with O_APPEND, so a process killed keeps every line written (the
 * page cache outlives it); the sync every RT_EVQ_SYNC_MS bounds what a power
 * loss takes. A line cut short by a crash is skipped at the next start. */
#include "router/evqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "proto/idfile.h"
#include "proto/log.h"
#include "weft/errors.h"

/* Acknowledged lines are rewritten away once they pass this and the rest. */
#define COMPACT_MIN (1u << 20)

typedef struct {
    char *text; /* JSON, no newline */
    size_t len;
    char eid[RT_EVQ_EID_CAP];
    int acked;
    int spilled; /* its line is in the file */
} ent;

struct rt_evq {
    uv_timer_t timer;
    int fd;    /* -1: memory only */
    int dirty; /* written since the last sync */
    int spill_warned, full_warned;
    char path[4096];
    ent *ring;
    size_t cap, head, len, sent;
    size_t live_bytes; /* the queue's lines in the file (spilled events) */
    size_t file_bytes; /* the file's length */
    uint64_t dropped, seq;
    char boot[17];
};

/* ---- parsing the file ---- */

int rt_evq_eid_valid(const char *eid)
{
    size_t n = eid ? strlen(eid) : 0;

    return n > 0 && n < RT_EVQ_EID_CAP &&
           strspn(eid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* One line (no newline): 1 and its eid when it is an event, else 0. */
static int line_event(const char *text, size_t len, char eid[RT_EVQ_EID_CAP])
{
    json_t *ev;
    const char *id;
    int ok;

    if (len == 0 || len > RT_EVQ_LINE_MAX)
        return 0;
    if ((ev = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return 0;
    id = json_string_value(json_object_get(ev, "eid"));
    ok = json_is_object(ev) && json_is_string(json_object_get(ev, "kind")) && rt_evq_eid_valid(id);
    if (ok)
        memcpy(eid, id, strlen(id) + 1);
    json_decref(ev);
    return ok;
}

size_t rt_evq_parse(const char *buf, size_t len, rt_evq_line_cb cb, void *arg, size_t *bad,
                    int *cut)
{
    char eid[RT_EVQ_EID_CAP];
    size_t off = 0, whole = 0;

    *bad = 0;
    *cut = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - buf) : len, n = end - off;
        int ok;

        if (n > 0 && buf[off + n - 1] == '\r')
            n--;
        ok = line_event(buf + off, n, eid);
        if (nl == NULL && !ok) {
            *cut = 1; /* a crash in the middle of a write */
            break;
        }
        if (ok && cb(arg, buf + off, n, eid) < 0)
            break;
        if (!ok && n > 0)
            (*bad)++;
        off = nl ? end + 1 : len;
        whole = off;
    }
    return whole;
}

/* ---- the ring ---- */

static ent *at(const rt_evq *q, size_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

static int push(rt_evq *q, char *text, size_t len, const char *eid, int spilled)
{
    ent *e;

    if (q->len == q->cap) {
        free(text);
        return WEFT_ENOBUFS;
    }
    e = at(q, q->len);
    e->text = text;
    e->len = len;
    e->acked = 0;
    e->spilled = spilled;
    snprintf(e->eid, sizeof(e->eid), "%s", eid);
    q->len++;
    if (spilled)
        q->live_bytes += len + 1;
    return 0;
}

static void pop(rt_evq *q)
{
    ent *e = at(q, 0);

    if (e->spilled)
        q->live_bytes -= e->len + 1;
    free(e->text);
    e->text = NULL;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    if (q->sent > 0)
        q->sent--;
}

/* ---- the file ---- */

static void spill_failed(rt_evq *q, const char *op, int err)
{
    if (q->spill_warned++ == 0)
        pr_warn("event_spill_failed", "op=%s file=%s err=%s hint=%s", op, pr_log_q(q->path),
                pr_log_q(strerror(err)),
                pr_log_q("events are kept in memory only until the file can be written: a "
                         "restart before the controller is back loses them; check the disk"));
}

static void on_sync(uv_timer_t *t)
{
    rt_evq *q = t->data;

    if (q->fd >= 0 && q->dirty && fdatasync(q->fd) < 0)
        spill_failed(q, "sync", errno);
    q->dirty = 0;
}

static void written(rt_evq *q)
{
    if (!q->dirty) {
        q->dirty = 1;
        uv_timer_start(&q->timer, on_sync, RT_EVQ_SYNC_MS, 0);
    }
}

/* One line, whole or not at all (a short write is cut back off). */
static int append(rt_evq *q, const char *text, size_t len)
{
    struct iovec v[2] = {{(void *)text, len}, {"\n", 1}};
    ssize_t n;

    if (q->fd < 0)
        return 0;
    do
        n = writev(q->fd, v, 2);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len + 1) {
        spill_failed(q, "write", n < 0 ? errno : ENOSPC);
        if (n > 0 && ftruncate(q->fd, (off_t)q->file_bytes) < 0)
            spill_failed(q, "truncate", errno);
        return WEFT_EIO;
    }
    q->file_bytes += len + 1;
    written(q);
    return 0;
}

static int open_file(rt_evq *q)
{
    q->fd = open(q->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (q->fd < 0) {
        spill_failed(q, "open", errno);
        return WEFT_EIO;
    }
    return 0;
}

/* The file becomes the queue: written aside, synced, renamed over. */
static int rewrite(rt_evq *q)
{
    char *buf = malloc(q->live_bytes + 1);
    size_t off = 0;
    int rc;

    if (q->fd < 0 || buf == NULL) {
        free(buf);
        return q->fd < 0 ? 0 : WEFT_ENOMEM;
    }
    for (size_t i = 0; i < q->len; i++) {
        memcpy(buf + off, at(q, i)->text, at(q, i)->len);
        off += at(q, i)->len;
        buf[off++] = '\n';
    }
    rc = pr_write_file_secure(q->path, buf, off);
    free(buf);
    if (rc < 0) {
        spill_failed(q, "rewrite", EIO);
        return rc;
    }
    for (size_t i = 0; i < q->len; i++)
        at(q, i)->spilled = 1;
    close(q->fd);
    q->file_bytes = q->live_bytes = off;
    return open_file(q);
}

/* Acknowledged lines gone: none left, or few enough to rewrite. */
static void shrink(rt_evq *q)
{
    size_t stale = q->file_bytes - q->live_bytes;

    if (q->fd < 0 || stale == 0)
        return;
    if (q->len == 0) {
        if (ftruncate(q->fd, 0) < 0) {
            spill_failed(q, "truncate", errno);
            return;
        }
        q->file_bytes = 0;
        written(q);
    } else if (stale >= COMPACT_MIN && stale > q->live_bytes) {
        rewrite(q);
    }
}

/* ---- loading what an earlier run left ---- */

static int load_line(void *arg, const char *text, size_t len, const char *eid)
{
    rt_evq *q = arg;
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return WEFT_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    return push(q, copy, len, eid, 1);
}

/* The events an earlier run left; 1 when the file must be written again
 * (lines skipped, a line cut short, or a file not read). */
static int load(rt_evq *q)
{
    size_t len = 0, whole, bad;
    char *buf = NULL;
    int rc = pr_read_file(q->path, RT_EVQ_FILE_MAX + RT_EVQ_LINE_MAX, &buf, &len), cut;

    if (rc == WEFT_ENOTFOUND)
        return 0;
    if (rc < 0) {
        pr_warn("events_pending_unreadable", "file=%s err=%s hint=%s", pr_log_q(q->path),
                weft_err_name(rc),
                pr_log_q("starting with no pending events; the file is replaced"));
        return 1;
    }
    whole = rt_evq_parse(buf, len, load_line, q, &bad, &cut);
    free(buf);
    q->file_bytes = len;
    if (q->len)
        pr_info("events_pending_loaded", "events=%zu file=%s", q->len, pr_log_q(q->path));
    if (!bad && !cut && whole == len && q->live_bytes == len)
        return 0;
    pr_warn("events_pending_damaged", "file=%s skipped_lines=%zu cut_last=%d kept=%zu hint=%s",
            pr_log_q(q->path), bad, cut, q->len,
            pr_log_q("lines that are not whole events (a crash while writing) are dropped; the "
                     "rest are sent to the controller"));
    return 1;
}

int rt_evq_new(uv_loop_t *loop, const char *dir, size_t cap, rt_evq **out)
{
    rt_evq *q = calloc(1, sizeof(*q));
    uint8_t boot[8];

    *out = NULL;
    if (q == NULL || cap == 0 || (q->ring = calloc(cap, sizeof(*q->ring))) == NULL) {
        free(q);
        return WEFT_ENOMEM;
    }
    q->cap = cap;
    q->fd = -1;
    randombytes_buf(boot, sizeof(boot));
    sodium_bin2hex(q->boot, sizeof(q->boot), boot, sizeof(boot));
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    if (dir && dir[0] &&
        (size_t)snprintf(q->path, sizeof(q->path), "%s/%s", dir, RT_EVQ_FILE) < sizeof(q->path)) {
        int repair = load(q);
        if (open_file(q) == 0 && repair)
            rewrite(q);
    }
    *out = q;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    rt_evq *q = h->data;

    while (q->len)
        pop(q);
    free(q->ring);
    free(q);
}

void rt_evq_close(rt_evq *q)
{
    if (q == NULL)
        return;
    if (q->fd >= 0) {
        if (q->dirty && fdatasync(q->fd) < 0)
            spill_failed(q, "sync", errno);
        close(q->fd);
        q->fd = -1;
    }
    uv_close((uv_handle_t *)&q->timer, on_closed);
}

/* ---- adding, sending, acknowledging ---- */

static void full(rt_evq *q, const char *what)
{
    q->dropped++;
    if (q->full_warned++ == 0)
        pr_warn("events_dropped", "queued=%zu full=%s hint=%s", q->len, what,
                pr_log_q("the controller is away and the event queue is full; the oldest events "
                         "are kept, newer ones are dropped (weft_router_events_dropped_total)"));
}

/* The event as queued: a copy with its id and the time it happened. */
static char *event_text(rt_evq *q, const json_t *ev, char eid[RT_EVQ_EID_CAP])
{
    json_t *copy = json_deep_copy(ev);
    char *text;

    if (copy == NULL)
        return NULL;
    snprintf(eid, RT_EVQ_EID_CAP, "%s-%llu", q->boot, (unsigned long long)++q->seq);
    json_object_set_new(copy, "eid", json_string(eid));
    json_object_set_new(copy, "at", json_integer((json_int_t)time(NULL)));
    text = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    return text;
}

/* Room in the file for one more line, once acknowledged lines are gone. */
static int file_room(rt_evq *q, size_t len)
{
    if (q->fd < 0 || q->file_bytes + len + 1 <= RT_EVQ_FILE_MAX)
        return 1;
    if (q->file_bytes > q->live_bytes)
        rewrite(q);
    return q->file_bytes + len + 1 <= RT_EVQ_FILE_MAX;
}

int rt_evq_add(rt_evq *q, const json_t *ev)
{
    char eid[RT_EVQ_EID_CAP], *text;
    size_t len;

    if ((text = event_text(q, ev, eid)) == NULL)
        return WEFT_ENOMEM;
    len = strlen(text);
    if (q->len == q->cap || len > RT_EVQ_LINE_MAX || !file_room(q, len)) {
        full(q, q->len == q->cap ? "events" : len > RT_EVQ_LINE_MAX ? "event_size" : "file");
        free(text);
        return WEFT_ENOBUFS;
    }
    return push(q, text, len, eid, append(q, text, len) == 0 && q->fd >= 0);
}

const char *rt_evq_next(rt_evq *q, size_t *len)
{
    while (q->sent < q->len && at(q, q->sent)->acked)
        q->sent++;
    if (q->sent == q->len)
        return NULL;
    *len = at(q, q->sent)->len;
    return at(q, q->sent)->text;
}

void rt_evq_sent(rt_evq *q)
{
    if (q->sent < q->len)
        q->sent++;
}

void rt_evq_rewind(rt_evq *q)
{
    if (q)
        q->sent = 0;
}

int rt_evq_ack(rt_evq *q, const uint8_t *body, size_t len)
{
    json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *eid = json_string_value(json_object_get(j, "eid"));
    size_t i;
    int rc = WEFT_EPROTO;

    if (!json_is_object(j) || !rt_evq_eid_valid(eid))
        goto out;
    rc = WEFT_ENOTFOUND;
    for (i = 0; i < q->sent; i++)
        if (strcmp(at(q, i)->eid, eid) == 0) {
            at(q, i)->acked = 1;
            rc = 0;
            break;
        }
    while (q->len && at(q, 0)->acked)
        pop(q);
    if (rc == 0) {
        if (q->len == 0)
            q->full_warned = 0; /* the next episode is warned again */
        shrink(q);
    }
out:
    json_decref(j);
    return rc;
}

size_t rt_evq_len(const rt_evq *q)
{
    return q ? q->len : 0;
}

size_t rt_evq_unsent(const rt_evq *q)
{
    size_t n = 0;

    for (size_t i = q ? q->sent : 0; q && i < q->len; i++)
        n += !at(q, i)->acked;
    return n;
}

uint64_t rt_evq_dropped(const rt_evq *q)
{
    return q ? q->dropped : 0;
}
