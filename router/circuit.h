/* The forwarding table: circuit id -> two ends. End 0 is the dialler's side,
 * end 1 the host's. An end is an edge session or a router-hosted service;
 * each end sits in a list owned by its peer, so that a session that drops
 * finds its circuits without scanning the table. */
#ifndef RT_CIRCUIT_H
#define RT_CIRCUIT_H

#include <stddef.h>
#include <stdint.h>

#include "router/map.h"

enum rt_end_kind { RT_END_NONE = 0, RT_END_EDGE, RT_END_HOSTED, RT_END_LINK };
enum rt_circ_state { RT_CIRC_DIALING = 1, RT_CIRC_OPEN };

typedef struct rt_circuit rt_circuit;
typedef struct rt_end rt_end;

struct rt_end {
    int kind;
    void *peer;        /* rt_sess *, rt_hosted * or rt_link * */
    rt_circuit *circ;
    struct rt_end_list *list; /* the peer's list of its ends */
    rt_end *next, *prev;
};

typedef struct rt_end_list {
    rt_end *head;
} rt_end_list;

struct rt_circuit {
    uint64_t id;
    int state;
    rt_end end[2];
    uint32_t req_id; /* the dialler's request, answered when the host replies */
    char service[RT_NAME_CAP];
    char dialler[RT_ID_CAP]; /* identity ids, for logs */
    char host[RT_NAME_CAP]; /* identity id, or "router:ID" when hosted here */
    rt_circuit *hnext; /* hash chain */
    /* Pending dials of this router's own diallers, oldest first (one fixed
     * timeout, so appending keeps the list sorted by deadline). */
    uint64_t dial_deadline; /* loop time in ms */
    int dial_tracked;
    rt_circuit *dnext, *dprev;
};

typedef struct {
    rt_circuit **b;
    size_t nb; /* power of two */
    size_t n;
    rt_circuit *dial_head, *dial_tail;
} rt_circuits;

int rt_circuits_init(rt_circuits *t);
/* Frees every circuit (ends are unlinked; peers are not touched). */
void rt_circuits_free(rt_circuits *t);
/* A new zeroed circuit with a fresh random id (non-zero, unique), in the table. */
int rt_circuits_new(rt_circuits *t, rt_circuit **out);
/* Inserts a circuit with a given id (set up by another router); WEFT_EXISTS if taken. */
int rt_circuits_add(rt_circuits *t, uint64_t id, rt_circuit **out);
rt_circuit *rt_circuits_get(const rt_circuits *t, uint64_t id);
/* Unlinks both ends and frees the circuit. */
void rt_circuits_del(rt_circuits *t, rt_circuit *c);

/* Pending-dial list: track appends (deadline must not be before the tail's),
 * untrack is a no-op for an untracked circuit; rt_circuits_del untracks. */
void rt_circuits_dial_track(rt_circuits *t, rt_circuit *c, uint64_t deadline);
void rt_circuits_dial_untrack(rt_circuits *t, rt_circuit *c);

void rt_circuit_attach(rt_circuit *c, int side, int kind, void *peer, rt_end_list *list);
/* Which end peer is (0 or 1), or -1 if neither. */
int rt_circuit_side(const rt_circuit *c, const void *peer);

#endif
