/* Path computation over the router graph: least-cost paths (Dijkstra) from
 * this router to another, cost = smoothed round-trip time of each link. Pure
 * functions over an edge list, so that they are tested without a network. */
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

/* Encodes a path as "id,id,..." into out; WEFT_ETOOBIG if cap is too small. */
int rt_path_format(const rt_path *p, char *out, size_t cap);
/* Parses "id,id,..." (no empty ids, no repeated ids, 2..RT_PATH_MAX routers). */
int rt_path_parse(const char *s, rt_path *p);

#endif
