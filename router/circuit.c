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

int rt_circuits_add(rt_circuits *t, uint64_t id, rt_circuit **out)
{
    rt_circuit *c;
    size_t s;

    if (id == 0)
        return WEFT_EINVAL;
    if (rt_circuits_get(t, id))
        return WEFT_EEXISTS;
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
    *out = c;
    return 0;
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
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p) {
        *p = c->hnext;
        t->n--;
    }
    free(c);
}

void rt_circuit_attach(rt_circuit *c, int side, int kind, void *peer, rt_end_list *list)
{
    rt_end *e = &c->end[side];

    unlink_end(e);
    e->kind = kind;
    e->list = list;
    e->peer = peer;
    e->prev = NULL;
    e->next = list->head;
    if (list->head)
        list->head->prev = e;
    list->head = e;
}

int rt_circuit_side(const rt_circuit *c, const void *peer)
{
    if (c->end[0].kind != RT_END_NONE && c->end[0].peer == peer)
        return 0;
    if (c->end[1].kind != RT_END_NONE && c->end[1].peer == peer)
        return 1;
    return -1;
}
