/* Circuit table: a chained hash on the (random) circuit id, grown by doubling
 * so chains stay short. Allocation is per circuit, never per frame. */
#include "router/circuit.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/errors.h"

#define INITIAL_BUCKETS 1024

static size_t slot(const rt_circuits *t, uint64_t id)
{
    /* Ids are random, but mix anyway: a peer router may choose them one day. */
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)(id & (t->nb - 1));
}

int rt_circuits_init(rt_circuits *t)
{
    t->nb = INITIAL_BUCKETS;
    t->n = 0;
    t->dial_head = t->dial_tail = NULL;
    t->b = calloc(t->nb, sizeof(*t->b));
    return t->b ? 0 : WEFT_ENOMEM;
}

static void unlink_end(rt_end *e)
{
    if (e->list == NULL)
        return;
    if (e->list->head == e)
        e->list->head = e->next;
    if (e->prev)
        e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->next = e->prev = NULL;
    e->list = NULL;
}

void rt_circuits_free(rt_circuits *t)
{
    for (size_t i = 0; t->b && i < t->nb; i++) {
        rt_circuit *c = t->b[i], *n;
        for (; c; c = n) {
            n = c->hnext;
            unlink_end(&c->end[0]);
            unlink_end(&c->end[1]);
            for (int k = 0; k < RT_LEGS_MAX - 1; k++)
                unlink_end(&c->spare[k]);
            free(c);
        }
    }
    free(t->b);
    t->b = NULL;
    t->n = t->nb = 0;
    t->dial_head = t->dial_tail = NULL;
}

static void grow(rt_circuits *t)
{
    size_t nb = t->nb * 2;
    rt_circuit **b = calloc(nb, sizeof(*b));
    rt_circuits nt = {.b = b, .nb = nb, .n = t->n};

    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nb; i++) {
        rt_circuit *c = t->b[i], *n;
        for (; c; c = n) {
            size_t s = slot(&nt, c->id);
            n = c->hnext;
            c->hnext = b[s];
            b[s] = c;
        }
    }
    free(t->b);
    *t = nt;
}

rt_circuit *rt_circuits_get(const rt_circuits *t, uint64_t id)
{
    rt_circuit *c = t->b[slot(t, id)];

    while (c && c->id != id)
        c = c->hnext;
    return c;
}

static int insert(rt_circuits *t, uint64_t id, rt_circuit **out)
{
    rt_circuit *c;
    size_t s;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return WEFT_ENOMEM;
    if (t->n >= t->nb * 2)
        grow(t);
    c->id = id;
    s = slot(t, id);
    c->hnext = t->b[s];
    t->b[s] = c;
    t->n++;
    c->end[0].circ = c->end[1].circ = c;
    c->end[1].side = 1;
    c->leg_side = -1;
    for (int k = 0; k < RT_LEGS_MAX - 1; k++)
        c->spare[k].circ = c;
    *out = c;
    return 0;
}

int rt_circuits_add(rt_circuits *t, uint64_t id, rt_circuit **out)
{
    if (id == 0)
        return WEFT_EINVAL;
    if (rt_circuits_get(t, id))
        return WEFT_EEXISTS;
    return insert(t, id, out);
}

int rt_circuits_add_leg(rt_circuits *t, uint64_t id, rt_circuit **out)
{
    return id == 0 ? WEFT_EINVAL : insert(t, id, out);
}

rt_circuit *rt_circuits_find(const rt_circuits *t, uint64_t id, const void *peer)
{
    for (rt_circuit *c = t->b[slot(t, id)]; c; c = c->hnext)
        if (c->id == id && rt_circuit_side(c, peer) >= 0)
            return c;
    return NULL;
}

rt_circuit *rt_circuits_find_role(const rt_circuits *t, uint64_t id, int role)
{
    for (rt_circuit *c = t->b[slot(t, id)]; c; c = c->hnext)
        if (c->id == id && c->role == role)
            return c;
    return NULL;
}

void rt_circuits_each(rt_circuits *t, void (*fn)(void *arg, rt_circuit *c), void *arg)
{
    for (size_t i = 0; i < t->nb; i++) {
        rt_circuit *c = t->b[i], *n;
        for (; c; c = n) {
            n = c->hnext;
            fn(arg, c);
        }
    }
}

int rt_circuits_new(rt_circuits *t, rt_circuit **out)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t id;
        randombytes_buf(&id, sizeof(id));
        int rc = rt_circuits_add(t, id, out);
        if (rc != WEFT_EEXISTS && rc != WEFT_EINVAL)
            return rc;
    }
    return WEFT_EEXISTS;
}

void rt_circuits_dial_track(rt_circuits *t, rt_circuit *c, uint64_t deadline)
{
    if (c->dial_tracked)
        return;
    c->dial_tracked = 1;
    c->dial_deadline = deadline;
    c->dnext = NULL;
    c->dprev = t->dial_tail;
    if (t->dial_tail)
        t->dial_tail->dnext = c;
    else
        t->dial_head = c;
    t->dial_tail = c;
}

void rt_circuits_dial_untrack(rt_circuits *t, rt_circuit *c)
{
    if (!c->dial_tracked)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        t->dial_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        t->dial_tail = c->dprev;
    c->dnext = c->dprev = NULL;
    c->dial_tracked = 0;
}

void rt_circuits_del(rt_circuits *t, rt_circuit *c)
{
    rt_circuit **p = &t->b[slot(t, c->id)];

    rt_circuits_dial_untrack(t, c);

    unlink_end(&c->end[0]);
    unlink_end(&c->end[1]);
    for (int k = 0; k < RT_LEGS_MAX - 1; k++)
        unlink_end(&c->spare[k]);
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p) {
        *p = c->hnext;
        t->n--;
    }
    free(c);
}

static void attach(rt_end *e, int side, int kind, void *peer, rt_end_list *list)
{
    unlink_end(e);
    e->side = side;
    e->kind = kind;
    e->list = list;
    e->peer = peer;
    e->prev = NULL;
    e->next = list->head;
    if (list->head)
        list->head->prev = e;
    list->head = e;
}

void rt_circuit_attach(rt_circuit *c, int side, int kind, void *peer, rt_end_list *list)
{
    attach(&c->end[side], side, kind, peer, list);
}

void rt_circuit_attach_leg(rt_circuit *c, int k, void *link, rt_end_list *list)
{
    attach(rt_circuit_leg(c, k), c->leg_side, RT_END_LINK, link, list);
}

int rt_circuit_side(const rt_circuit *c, const void *peer)
{
    if (c->end[0].kind != RT_END_NONE && c->end[0].peer == peer)
        return 0;
    if (c->end[1].kind != RT_END_NONE && c->end[1].peer == peer)
        return 1;
    for (int k = 0; c->leg_side >= 0 && k < RT_LEGS_MAX - 1; k++)
        if (c->spare[k].kind != RT_END_NONE && c->spare[k].peer == peer)
            return c->leg_side;
    return -1;
}

rt_end *rt_circuit_end_of(rt_circuit *c, const void *peer)
{
    int k;

    if (c->leg_side >= 0 && (k = rt_circuit_leg_of(c, peer)) >= 0)
        return rt_circuit_leg(c, k);
    for (int i = 0; i < 2; i++)
        if (c->end[i].kind != RT_END_NONE && c->end[i].peer == peer)
            return &c->end[i];
    return NULL;
}

/* ---- legs ---- */

rt_end *rt_circuit_leg(rt_circuit *c, int k)
{
    return k == 0 ? &c->end[c->leg_side] : &c->spare[k - 1];
}

int rt_circuit_nlegs(const rt_circuit *c)
{
    int n = 0;

    if (c->leg_side < 0)
        return 0;
    for (int k = 0; k < RT_LEGS_MAX; k++)
        if (rt_circuit_leg((rt_circuit *)c, k)->kind == RT_END_LINK)
            n = k + 1;
    return n;
}

int rt_circuit_leg_of(const rt_circuit *c, const void *peer)
{
    for (int k = 0; c->leg_side >= 0 && k < RT_LEGS_MAX; k++) {
        const rt_end *e = rt_circuit_leg((rt_circuit *)c, k);
        if (e->kind == RT_END_LINK && e->peer == peer)
            return k;
    }
    return -1;
}

static void clear_end(rt_end *e)
{
    unlink_end(e);
    e->kind = RT_END_NONE;
    e->peer = NULL;
}

/* Moves leg from onto leg to (which is empty), with its meta data. */
static void leg_move(rt_circuit *c, int to, int from)
{
    rt_end *f = rt_circuit_leg(c, from);
    void *peer = f->peer;
    rt_end_list *list = f->list;

    c->leg[to] = c->leg[from];
    memset(&c->leg[from], 0, sizeof(c->leg[from]));
    clear_end(f);
    if (peer)
        rt_circuit_attach_leg(c, to, peer, list);
}

int rt_circuit_leg_add(rt_circuit *c, void *link, rt_end_list *list, const rt_path *p)
{
    int k = rt_circuit_nlegs(c);

    if (k >= RT_LEGS_MAX)
        return WEFT_ENOBUFS;
    memset(&c->leg[k], 0, sizeof(c->leg[k]));
    if (p)
        c->leg[k].path = *p;
    rt_circuit_attach_leg(c, k, link, list);
    return k;
}

void rt_circuit_leg_drop(rt_circuit *c, int k)
{
    int n = rt_circuit_nlegs(c);

    clear_end(rt_circuit_leg(c, k));
    memset(&c->leg[k], 0, sizeof(c->leg[k]));
    for (int i = k + 1; i < n; i++)
        leg_move(c, i - 1, i);
}

void rt_circuit_leg_promote(rt_circuit *c, int k)
{
    rt_end *a = rt_circuit_leg(c, 0), *b = rt_circuit_leg(c, k);
    void *pa = a->kind == RT_END_LINK ? a->peer : NULL, *pb = b->peer;
    rt_end_list *la = a->list, *lb = b->list;
    struct rt_leg m = c->leg[0];

    if (k == 0 || b->kind != RT_END_LINK)
        return;
    c->leg[0] = c->leg[k];
    c->leg[k] = m;
    rt_circuit_attach_leg(c, 0, pb, lb);
    if (pa)
        rt_circuit_attach_leg(c, k, pa, la);
    else
        clear_end(b);
}
