/* The forwarding table: circuit id -> two ends. End 0 is the dialler's side,
 * end 1 the host's. An end is an edge session or a router-hosted service;
 * each end sits in a list owned by its peer, so that a session that drops
 * finds its circuits without scanning the table. */
#ifndef RT_CIRCUIT_H
#define RT_CIRCUIT_H

#include <stddef.h>
#include <stdint.h>

#include "router/map.h"
#include "router/path.h"

#define RT_UPDATE_MS 10000 /* circuit events: an "update" at most this often per circuit */
#define RT_LEGS_MAX 3 /* paths one circuit holds at once: the active one and standby or split ones */

enum rt_end_kind { RT_END_NONE = 0, RT_END_EDGE, RT_END_HOSTED, RT_END_LINK };
enum rt_circ_state { RT_CIRC_DIALING = 1, RT_CIRC_OPEN };
/* What this router is to the circuit: both ends here, or which part of a path. */
enum rt_circ_role { RT_ROLE_LOCAL = 0, RT_ROLE_INGRESS, RT_ROLE_TRANSIT, RT_ROLE_EGRESS,
                   RT_ROLE_RESUME /* anchor: a new path waiting for the far edge's answer */ };
/* The service's "multipath" in the map, decided by the ingress router. */
enum rt_mp_mode { RT_MP_FAILOVER = 0, RT_MP_SPLIT, RT_MP_REDUNDANT };

typedef struct rt_circuit rt_circuit;
typedef struct rt_end rt_end;

struct rt_end {
    int kind;
    void *peer;        /* rt_sess *, rt_hosted * or rt_link * */
    rt_circuit *circ;
    struct rt_end_list *list; /* the peer's list of its ends */
    rt_end *next, *prev;
    int side; /* 0: towards the dialler, 1: towards the host */
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
    char service_id[RT_ID_CAP]; /* ingress: the dial token's service and issue time, */
    long long token_iat;        /* matched against withdrawn grants (grants.c) */
    char host[RT_NAME_CAP]; /* identity id, or "router:ID" when hosted here */
    rt_circuit *hnext; /* hash chain */
    /* Pending dials of this router's own diallers, oldest first (one fixed
     * timeout, so appending keeps the list sorted by deadline). */
    uint64_t dial_deadline; /* loop time in ms */
    int dial_tracked;
    rt_circuit *dnext, *dprev;
    /* Mesh circuits. At the ingress router the host side (1), at the egress
     * router the dialler side (0) may be several legs over links: leg 0 is
     * end[leg_side] (the active one), leg k is spare[k - 1]. */
    int role, mode;
    int leg_side; /* -1: one end per side */
    rt_end spare[RT_LEGS_MAX - 1];
    struct rt_leg {
        rt_path path;      /* ingress first; known at the ingress and egress routers */
        uint64_t cost;     /* path cost at the last upkeep (striping weights) */
        int64_t credit;    /* striping state */
        uint64_t frames;   /* payload frames sent on this leg */
    } leg[RT_LEGS_MAX];
    char ingress[RT_ID_CAP], egress[RT_ID_CAP];
    uint64_t bytes_up, bytes_down; /* payload and ack bytes from the dialler / from the host */
    uint64_t reroutes;
    uint64_t orphan_at; /* egress: loop ms when the last leg went (0: has legs) */
    /* EDGE_CLOSE came on one leg of several: the far router sends it on every
     * leg behind that leg's frames, so the circuit ends when the last leg has
     * brought it (loop ms of the first; 0: open). */
    uint64_t closing_at;
    int close_err;
    char close_msg[160];
    rt_hyst hyst;       /* ingress: smart rerouting */
    uint64_t event_ms;  /* loop ms of the last "open" or "update" event (0: none) */
    /* Re-homing (resume.c): at the new router, a resume waiting for its answer. */
    int resuming;
    uint8_t nonce[16];   /* anchor: the last accepted resume's nonce (no replays); new router: */
    uint8_t mac[32];     /* the pending resume's proof, sent again along another path when a */
    uint64_t resume_ack; /* service-router policy refuses the first one */
    int resume_tries;
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
/* Inserts another entry with an id that may be taken: a transit router on two
 * edge-disjoint legs of one circuit holds one entry per leg. */
int rt_circuits_add_leg(rt_circuits *t, uint64_t id, rt_circuit **out);
/* The entry of circuit id that has peer as one of its ends (or legs). */
rt_circuit *rt_circuits_find(const rt_circuits *t, uint64_t id, const void *peer);
/* The entry of circuit id with the given role, or NULL. */
rt_circuit *rt_circuits_find_role(const rt_circuits *t, uint64_t id, int role);
/* Calls fn for every circuit; fn may delete the circuit it is given. */
void rt_circuits_each(rt_circuits *t, void (*fn)(void *arg, rt_circuit *c), void *arg);
/* Unlinks both ends and frees the circuit. */
void rt_circuits_del(rt_circuits *t, rt_circuit *c);

/* Pending-dial list: track appends (deadline must not be before the tail's),
 * untrack is a no-op for an untracked circuit; rt_circuits_del untracks. */
void rt_circuits_dial_track(rt_circuits *t, rt_circuit *c, uint64_t deadline);
void rt_circuits_dial_untrack(rt_circuits *t, rt_circuit *c);

void rt_circuit_attach(rt_circuit *c, int side, int kind, void *peer, rt_end_list *list);
/* Which end peer is (0 or 1; a leg counts for its side), or -1 if neither. */
int rt_circuit_side(const rt_circuit *c, const void *peer);
/* The end (or leg) whose peer is peer, or NULL. */
rt_end *rt_circuit_end_of(rt_circuit *c, const void *peer);

/* ---- legs ---- */
rt_end *rt_circuit_leg(rt_circuit *c, int k);
int rt_circuit_nlegs(const rt_circuit *c);
/* The leg index of peer, or -1. */
int rt_circuit_leg_of(const rt_circuit *c, const void *peer);
/* Attaches link as leg k (replacing what was there). */
void rt_circuit_attach_leg(rt_circuit *c, int k, void *link, rt_end_list *list);
/* Adds a leg over a link after the others; its index, or WEFT_ENOBUFS. */
int rt_circuit_leg_add(rt_circuit *c, void *link, rt_end_list *list, const rt_path *p);
/* Drops leg k; later legs move down one place. */
void rt_circuit_leg_drop(rt_circuit *c, int k);
/* Makes leg k the active one (swaps it with leg 0). */
void rt_circuit_leg_promote(rt_circuit *c, int k);

#endif
