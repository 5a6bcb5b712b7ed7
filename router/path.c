/* Dijkstra on small graphs: an O(V^2) scan beats a heap below a few hundred
 * routers and allocates nothing. */
#include "router/path.h"

#include <stdio.h>
#include <string.h>

#include "weft/errors.h"

typedef struct {
    const char *name[RT_GRAPH_MAX];
    size_t n;
    uint64_t dist[RT_GRAPH_MAX];
    int prev[RT_GRAPH_MAX];
    int done[RT_GRAPH_MAX];
} graph;

static int node(graph *g, const char *id)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->name[i], id) == 0)
            return (int)i;
    if (g->n == RT_GRAPH_MAX)
        return WEFT_ETOOBIG;
    g->name[g->n] = id;
    g->dist[g->n] = UINT64_MAX;
    g->prev[g->n] = -1;
    g->done[g->n] = 0;
    return (int)g->n++;
}

static int closest(const graph *g)
{
    int best = -1;

    for (size_t i = 0; i < g->n; i++)
        if (!g->done[i] && g->dist[i] != UINT64_MAX && (best < 0 || g->dist[i] < g->dist[best]))
            best = (int)i;
    return best;
}

static void relax(graph *g, const rt_path_edge *edges, size_t n, int u)
{
    for (size_t i = 0; i < n; i++) {
        const char *other = NULL;
        if (strcmp(edges[i].a, g->name[u]) == 0)
            other = edges[i].b;
        else if (strcmp(edges[i].b, g->name[u]) == 0)
            other = edges[i].a;
        if (other == NULL)
            continue;
        int v = node(g, other);
        uint64_t d = g->dist[u] + (edges[i].cost ? edges[i].cost : 1);
        if (v >= 0 && !g->done[v] && d < g->dist[v]) {
            g->dist[v] = d;
            g->prev[v] = u;
        }
    }
}

static int walk_back(const graph *g, int s, int d, rt_path *out)
{
    int chain[RT_PATH_MAX], k = 0;

    for (int v = d; v >= 0; v = g->prev[v]) {
        if (k == RT_PATH_MAX)
            return WEFT_ETOOBIG;
        chain[k++] = v;
        if (v == s)
            break;
    }
    out->n = (size_t)k;
    out->cost = g->dist[d];
    for (int i = 0; i < k; i++)
        snprintf(out->hop[i], sizeof(out->hop[i]), "%s", g->name[chain[k - 1 - i]]);
    return 0;
}

int rt_path_compute(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                    rt_path *out)
{
    static graph g; /* one event loop: never re-entered */
    int s, d, u;

    if (strcmp(src, dst) == 0 || strlen(src) >= RT_ID_CAP || strlen(dst) >= RT_ID_CAP)
        return WEFT_EINVAL;
    g.n = 0;
    if ((s = node(&g, src)) < 0)
        return s;
    g.dist[s] = 0;
    while ((u = closest(&g)) >= 0) {
        g.done[u] = 1;
        if (strcmp(g.name[u], dst) == 0)
            break;
        relax(&g, edges, n, u);
    }
    for (d = 0; d < (int)g.n && strcmp(g.name[d], dst) != 0; d++)
        ;
    if (d == (int)g.n || !g.done[d])
        return WEFT_ENOTFOUND;
    return walk_back(&g, s, d, out);
}

int rt_path_format(const rt_path *p, char *out, size_t cap)
{
    size_t off = 0;

    for (size_t i = 0; i < p->n; i++) {
        int k = snprintf(out + off, cap - off, "%s%s", i ? "," : "", p->hop[i]);
        if (k < 0 || (size_t)k >= cap - off)
            return WEFT_ETOOBIG;
        off += (size_t)k;
    }
    return 0;
}

int rt_path_parse(const char *s, rt_path *p)
{
    const char *c = s;

    p->n = 0;
    p->cost = 0;
    for (;;) {
        const char *e = strchr(c, ',');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || len >= RT_ID_CAP || p->n == RT_PATH_MAX)
            return WEFT_EPROTO;
        memcpy(p->hop[p->n], c, len);
        p->hop[p->n][len] = '\0';
        for (size_t i = 0; i < p->n; i++)
            if (strcmp(p->hop[i], p->hop[p->n]) == 0)
                return WEFT_EPROTO;
        p->n++;
        if (e == NULL)
            break;
        c = e + 1;
    }
    return p->n >= 2 ? 0 : WEFT_EPROTO;
}
