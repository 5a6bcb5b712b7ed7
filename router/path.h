/* Path computation over the router graph: least-cost paths (Dijkstra) from
 * this router to another, cost = smoothed round-trip time of each link plus a
 * term for the bytes queued on it; k paths as disjoint as the graph allows;
 * the hysteresis that keeps circuits from flapping between paths; and the
 * weighted choice of a path per frame when a circuit is split. Pure functions
 * over an edge list, so that they are tested without a network. */
#ifndef RT_PATH_H
#define RT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "router/map.h"

#define RT_PATH_MAX 8    /* routers on a path, ends included */
#define RT_GRAPH_MAX 256 /* routers a graph may name */

/* An undirected edge between routers a and b. */
typedef struct {
    const char *a, *b;
    uint64_t cost; /* > 0 */
} rt_path_edge;

typedef struct {
    char hop[RT_PATH_MAX][RT_ID_CAP]; /* hop[0] = source, hop[n-1] = destination */
    size_t n;
    uint64_t cost;
} rt_path;

/* The least-cost path from src to dst over edges. WEFT_ENOTFOUND when dst is
 * unreachable, WEFT_ETOOBIG when the graph names more than RT_GRAPH_MAX routers
 * or the path would exceed RT_PATH_MAX routers. Ties go to the path found
 * first, so the answer is deterministic for a given edge list. */
int rt_path_compute(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                    rt_path *out);

/* How disjoint a path found by rt_path_k is from the ones before it. */
enum rt_disjoint {
    RT_DISJ_NODE = 1, /* shares no router but the two ends */
    RT_DISJ_EDGE,     /* shares routers but no link */
    RT_DISJ_ANY,      /* shares links (rt_path_k: the cheapest other path) */
};

/* The least-cost path avoiding the paths in avoid[0..navoid) as how says:
 * RT_DISJ_NODE excludes their interior routers and their links, RT_DISJ_EDGE
 * their links, RT_DISJ_ANY nothing. */
int rt_path_compute_avoid(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                          const rt_path *avoid, size_t navoid, int how, rt_path *out);

/* Up to k distinct paths from src to dst, cheapest first: node-disjoint ones
 * while there are, then edge-disjoint, then any other. level[i] (may be NULL)
 * says how disjoint out[i] is from out[0..i). Returns how many were found
 * (0 when dst is unreachable). */
size_t rt_path_k(const rt_path_edge *edges, size_t n, const char *src, const char *dst, size_t k,
                 rt_path *out, int *level);

/* Do the two paths share a router other than their ends, or a link? */
int rt_path_shares_node(const rt_path *a, const rt_path *b);
int rt_path_shares_edge(const rt_path *a, const rt_path *b);

/* Cost of a link: its smoothed RTT (at least 1 us) plus the time its queue
 * takes to drain at RT_QUEUE_BYTES_PER_US. */
#define RT_QUEUE_BYTES_PER_US 12 /* ~100 Mbit/s: a queue is worth as much as its drain time */
uint64_t rt_link_cost(uint64_t srtt_us, uint64_t queued_bytes);

/* Cost of path p over edges; UINT64_MAX when one of its links is missing. */
uint64_t rt_path_cost(const rt_path_edge *edges, size_t n, const rt_path *p);

/* Hysteresis for moving a circuit: a better path must be at least
 * RT_HYST_PCT percent and RT_HYST_MIN_US cheaper than the current one, and stay
 * so for RT_HYST_HOLD_MS. */
#define RT_HYST_PCT     30
#define RT_HYST_MIN_US  2000
#define RT_HYST_HOLD_MS 3000
typedef struct {
    uint64_t since_ms; /* when the better path was first seen; 0: none */
} rt_hyst;

/* Feeds one observation; 1 when the circuit should move now (the state then
 * resets, so the next move needs another full hold). */
int rt_hyst_update(rt_hyst *h, uint64_t cur_cost, uint64_t best_cost, uint64_t now_ms);

/* Smooth weighted round robin (as nginx): the path for the next frame of a
 * split circuit. weight[i] > 0; credit[] is the caller's state, zeroed at
 * first. Over any window the share of path i tends to weight[i] / sum. */
size_t rt_stripe_pick(const uint64_t *weight, int64_t *credit, size_t n);

/* Encodes a path as "id,id,..." into out; WEFT_ETOOBIG if cap is too small. */
int rt_path_format(const rt_path *p, char *out, size_t cap);
/* Parses "id,id,..." (no empty ids, no repeated ids, 2..RT_PATH_MAX routers). */
int rt_path_parse(const char *s, rt_path *p);

#endif
