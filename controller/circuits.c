/* The circuit view (circuits.h). Records sit in two intrusive lists: every
 * record by creation (newest first) for paging, and closed records by closing
 * time for eviction; a JSON object indexes them by circuit id. */
#include "controller/circuits.h"

#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "proto/ident.h"
#include "weft/errors.h"

#define FIELD_MAX PR_ID_MAX

typedef struct circ {
    char id[FIELD_MAX + 1];
    char service[FIELD_MAX + 1];
    char identity[FIELD_MAX + 1];
    char router[FIELD_MAX + 1];
    json_t *path;
    uint64_t bytes_up, bytes_down, rtt_us;
    int64_t opened_at, closed_at;
    int closed;
    struct circ *prev, *next;   /* all records, newest first */
    struct circ *cprev, *cnext; /* closed records, most recently closed first */
} circ;

struct ctl_circuits {
    size_t max, n, nclosed;
    json_t *index; /* circuit id -> record pointer as an integer */
    circ *head, *tail;
    circ *chead, *ctail;
};

int ctl_circuits_new(size_t max, ctl_circuits **out)
{
    ctl_circuits *v = calloc(1, sizeof(*v));

    *out = NULL;
    if (v == NULL || (v->index = json_object()) == NULL) {
        free(v);
        return WEFT_ENOMEM;
    }
    v->max = max ? max : CTL_CIRCUITS_MAX;
    *out = v;
    return 0;
}

void ctl_circuits_free(ctl_circuits *v)
{
    circ *c, *n;

    if (v == NULL)
        return;
    for (c = v->head; c; c = n) {
        n = c->next;
        json_decref(c->path);
        free(c);
    }
    json_decref(v->index);
    free(v);
}

/* ---- lists ---- */

static void closed_link(ctl_circuits *v, circ *c)
{
    c->cprev = NULL;
    c->cnext = v->chead;
    if (v->chead)
        v->chead->cprev = c;
    v->chead = c;
    if (v->ctail == NULL)
        v->ctail = c;
    v->nclosed++;
}

static void closed_unlink(ctl_circuits *v, circ *c)
{
    if (c->cprev)
        c->cprev->cnext = c->cnext;
    else
        v->chead = c->cnext;
    if (c->cnext)
        c->cnext->cprev = c->cprev;
    else
        v->ctail = c->cprev;
    v->nclosed--;
}

static void forget(ctl_circuits *v, circ *c)
{
    if (c->closed)
        closed_unlink(v, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        v->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        v->tail = c->prev;
    json_object_del(v->index, c->id);
    json_decref(c->path);
    free(c);
    v->n--;
}

static circ *find(const ctl_circuits *v, const char *id)
{
    json_t *p = json_object_get(v->index, id);

    return p ? (circ *)(uintptr_t)json_integer_value(p) : NULL;
}

static circ *add(ctl_circuits *v, const char *id)
{
    circ *c;

    /* Closed circuits are history; open ones are what operators look at now. */
    while (v->n >= v->max && (v->ctail || v->tail))
        forget(v, v->ctail ? v->ctail : v->tail);
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if (json_object_set_new(v->index, c->id, json_integer((json_int_t)(uintptr_t)c)) < 0) {
        free(c);
        return NULL;
    }
    c->next = v->head;
    if (v->head)
        v->head->prev = c;
    v->head = c;
    if (v->tail == NULL)
        v->tail = c;
    v->n++;
    return c;
}

/* ---- events ---- */

static int str_ok(const json_t *v, int required)
{
    if (v == NULL)
        return !required;
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= FIELD_MAX &&
           strlen(json_string_value(v)) == json_string_length(v);
}

static int count_ok(const json_t *v)
{
    return v == NULL || (json_is_integer(v) && json_integer_value(v) >= 0);
}

static int path_ok(const json_t *p)
{
    const json_t *r;
    size_t i;

    if (p == NULL)
        return 1;
    if (!json_is_array(p) || json_array_size(p) > CTL_CIRCUIT_PATH_MAX)
        return 0;
    json_array_foreach(p, i, r) if (!str_ok(r, 1)) return 0;
    return 1;
}

static int event_kind(const json_t *ev)
{
    const char *e = json_string_value(json_object_get(ev, "event"));

    if (e == NULL)
        return -1;
    return strcmp(e, "open") == 0 ? 0 : strcmp(e, "update") == 0 ? 1 : strcmp(e, "close") == 0 ? 2 : -1;
}

static int event_ok(const json_t *ev)
{
    return json_is_object(ev) && event_kind(ev) >= 0 &&
           str_ok(json_object_get(ev, "circuit"), 1) && str_ok(json_object_get(ev, "service"), 0) &&
           str_ok(json_object_get(ev, "identity"), 0) && path_ok(json_object_get(ev, "path")) &&
           count_ok(json_object_get(ev, "bytes_up")) &&
           count_ok(json_object_get(ev, "bytes_down")) && count_ok(json_object_get(ev, "rtt_us"));
}

static void set_str(char *dst, size_t cap, const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));

    if (s)
        snprintf(dst, cap, "%s", s);
}

/* Counters only grow: a late update must not undo a newer one. */
static void set_count(uint64_t *dst, const json_t *ev, const char *key, int grow_only)
{
    const json_t *j = json_object_get(ev, key);
    uint64_t n = (uint64_t)json_integer_value(j);

    if (j != NULL && (!grow_only || n > *dst))
        *dst = n;
}

static void apply(circ *c, const char *router_id, const json_t *ev)
{
    json_t *p = json_object_get(ev, "path");

    set_str(c->service, sizeof(c->service), ev, "service");
    set_str(c->identity, sizeof(c->identity), ev, "identity");
    if (c->router[0] == '\0')
        snprintf(c->router, sizeof(c->router), "%s", router_id);
    if (p != NULL) {
        json_decref(c->path);
        c->path = json_deep_copy(p);
    }
    set_count(&c->bytes_up, ev, "bytes_up", 1);
    set_count(&c->bytes_down, ev, "bytes_down", 1);
    set_count(&c->rtt_us, ev, "rtt_us", 0);
}

int ctl_circuits_event(ctl_circuits *v, const char *router_id, const json_t *ev, int64_t now)
{
    const char *id;
    circ *c;
    int kind;

    if (v == NULL || router_id == NULL || !event_ok(ev))
        return WEFT_EINVAL;
    kind = event_kind(ev);
    id = json_string_value(json_object_get(ev, "circuit"));
    if ((c = find(v, id)) == NULL) {
        if ((c = add(v, id)) == NULL)
            return WEFT_ENOMEM;
        c->opened_at = now;
    }
    apply(c, router_id, ev);
    if (kind == 2 && !c->closed) {
        c->closed = 1;
        c->closed_at = now;
        closed_link(v, c);
    }
    return 0;
}

size_t ctl_circuits_count(const ctl_circuits *v)
{
    return v ? v->n : 0;
}

size_t ctl_circuits_open_count(const ctl_circuits *v)
{
    return v ? v->n - v->nclosed : 0;
}

/* ---- views ---- */

static json_t *circ_json(const circ *c)
{
    char opened[32], closed[32];
    json_t *o;

    ctl_rfc3339(c->opened_at, opened);
    ctl_rfc3339(c->closed_at, closed);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s}", "id", c->id, "state",
                  c->closed ? "closed" : "open", "service", c->service, "identity", c->identity,
                  "router", c->router, "path", c->path ? json_incref(c->path) : json_array(), "bytes_up",
                  (json_int_t)c->bytes_up, "bytes_down", (json_int_t)c->bytes_down, "rtt_us",
                  (json_int_t)c->rtt_us, "opened_at", opened);
    if (o && c->closed)
        json_object_set_new(o, "closed_at", json_string(closed));
    return o;
}

int ctl_circuits_list(const ctl_circuits *v, const char *state, size_t offset, size_t limit,
                      json_t **items, size_t *total)
{
    int want = state == NULL ? -1 : strcmp(state, "closed") == 0;

    *total = 0;
    if ((*items = json_array()) == NULL)
        return WEFT_ENOMEM;
    for (const circ *c = v ? v->head : NULL; c; c = c->next) {
        if (want >= 0 && c->closed != want)
            continue;
        if (*total >= offset && *total - offset < limit)
            json_array_append_new(*items, circ_json(c));
        (*total)++;
    }
    return 0;
}
