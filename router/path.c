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
    const rt_path *avoid; /* paths to keep away from, as how says */
    size_t navoid;
    int how;
} graph;

/* Is id an interior router of p? */
static int interior(const rt_path *p, const char *id)
{
    for (size_t i = 1; i + 1 < p->n; i++)
        if (strcmp(p->hop[i], id) == 0)
            return 1;
    return 0;
}

static int has_link(const rt_path *p, const char *a, const char *b)
{
    for (size_t i = 0; i + 1 < p->n; i++)
        if ((strcmp(p->hop[i], a) == 0 && strcmp(p->hop[i + 1], b) == 0) ||
            (strcmp(p->hop[i], b) == 0 && strcmp(p->hop[i + 1], a) == 0))
            return 1;
    return 0;
}

/* The cost of crossing a -> b under the avoidance rules; 0: forbidden. */
static uint64_t edge_cost(const graph *g, const char *a, const char *b, uint64_t cost)
{
    cost = cost ? cost : 1;
    for (size_t i = 0; i < g->navoid; i++) {
        const rt_path *p = &g->avoid[i];
        if (g->how == RT_DISJ_NODE && interior(p, b))
            return 0;
        if (g->how != RT_DISJ_ANY && has_link(p, a, b))
            return 0;
    }
    return cost;
}

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
        uint64_t c = edge_cost(g, g->name[u], other, edges[i].cost);
        if (c == 0)
            continue;
        int v = node(g, other);
        uint64_t d = g->dist[u] + c;
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
    return rt_path_compute_avoid(edges, n, src, dst, NULL, 0, RT_DISJ_ANY, out);
}

int rt_path_compute_avoid(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                          const rt_path *avoid, size_t navoid, int how, rt_path *out)
{
    static graph g; /* one event loop: never re-entered */
    int s, d, u;

    if (strcmp(src, dst) == 0 || strlen(src) >= RT_ID_CAP || strlen(dst) >= RT_ID_CAP)
        return WEFT_EINVAL;
    g.n = 0;
    g.avoid = avoid;
    g.navoid = navoid;
    g.how = how;
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

static int same_path(const rt_path *a, const rt_path *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->hop[i], b->hop[i]) != 0)
            return 0;
    return 1;
}

static int known(const rt_path *p, const rt_path *found, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (same_path(p, &found[i]))
            return 1;
    return 0;
}

/* The cheapest path not found yet that leaves out one link of a found path
 * (the spur step of Yen's k-shortest paths, one level deep). */
static int next_any(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                    rt_path *out, size_t found)
{
    rt_path best, p, cut = {.n = 2};
    int have = 0;

    for (size_t i = 0; i < found; i++) {
        for (size_t j = 0; j + 1 < out[i].n; j++) {
            snprintf(cut.hop[0], sizeof(cut.hop[0]), "%s", out[i].hop[j]);
            snprintf(cut.hop[1], sizeof(cut.hop[1]), "%s", out[i].hop[j + 1]);
            if (rt_path_compute_avoid(edges, n, src, dst, &cut, 1, RT_DISJ_EDGE, &p) < 0 ||
                known(&p, out, found) || (have && p.cost >= best.cost))
                continue;
            best = p;
            have = 1;
        }
    }
    if (have)
        out[found] = best;
    return have;
}

/* The next path at level how, or 0 when there is none new. */
static int next_path(const rt_path_edge *edges, size_t n, const char *src, const char *dst,
                     rt_path *out, size_t found, int how)
{
    rt_path p;

    if (how == RT_DISJ_ANY)
        return found > 0 && next_any(edges, n, src, dst, out, found);
    if (rt_path_compute_avoid(edges, n, src, dst, out, found, how, &p) < 0 || known(&p, out, found))
        return 0;
    out[found] = p;
    return 1;
}

size_t rt_path_k(const rt_path_edge *edges, size_t n, const char *src, const char *dst, size_t k,
                 rt_path *out, int *level)
{
    size_t found = 0;

    for (int how = RT_DISJ_NODE; how <= RT_DISJ_ANY; how++) {
        while (found < k && next_path(edges, n, src, dst, out, found, how)) {
            if (level)
                level[found] = found == 0 ? RT_DISJ_NODE : how;
            found++;
        }
    }
    return found;
}

int rt_path_shares_node(const rt_path *a, const rt_path *b)
{
    for (size_t i = 1; i + 1 < a->n; i++)
        if (interior(b, a->hop[i]))
            return 1;
    return 0;
}

int rt_path_shares_edge(const rt_path *a, const rt_path *b)
{
    for (size_t i = 0; i + 1 < a->n; i++)
        if (has_link(b, a->hop[i], a->hop[i + 1]))
            return 1;
    return 0;
}

uint64_t rt_link_cost(uint64_t srtt_us, uint64_t queued_bytes)
{
    return (srtt_us ? srtt_us : 1) + queued_bytes / RT_QUEUE_BYTES_PER_US;
}

uint64_t rt_path_cost(const rt_path_edge *edges, size_t n, const rt_path *p)
{
    uint64_t sum = 0;

    for (size_t i = 0; i + 1 < p->n; i++) {
        uint64_t best = UINT64_MAX;
        for (size_t j = 0; j < n; j++) {
            int match = (strcmp(edges[j].a, p->hop[i]) == 0 && strcmp(edges[j].b, p->hop[i + 1]) == 0) ||
                        (strcmp(edges[j].b, p->hop[i]) == 0 && strcmp(edges[j].a, p->hop[i + 1]) == 0);
            uint64_t c = edges[j].cost ? edges[j].cost : 1;
            if (match && c < best)
                best = c;
        }
        if (best == UINT64_MAX)
            return UINT64_MAX;
        sum += best;
    }
    return sum;
}

int rt_hyst_update(rt_hyst *h, uint64_t cur_cost, uint64_t best_cost, uint64_t now_ms)
{
    int better = best_cost < cur_cost && cur_cost - best_cost >= RT_HYST_MIN_US &&
                 (cur_cost == UINT64_MAX || (cur_cost - best_cost) * 100 >= cur_cost * RT_HYST_PCT);

    if (!better) {
        h->since_ms = 0;
        return 0;
    }
    if (h->since_ms == 0) {
        h->since_ms = now_ms ? now_ms : 1;
        return 0;
    }
    if (now_ms - h->since_ms < RT_HYST_HOLD_MS)
        return 0;
    h->since_ms = 0;
    return 1;
}

size_t rt_stripe_pick(const uint64_t *weight, int64_t *credit, size_t n)
{
    int64_t total = 0;
    size_t best = 0;

    for (size_t i = 0; i < n; i++) {
        int64_t wi = weight[i] ? (int64_t)(weight[i] > INT32_MAX ? INT32_MAX : weight[i]) : 1;
        credit[i] += wi;
        total += wi;
        if (credit[i] > credit[best])
            best = i;
    }
    credit[best] -= total;
    return best;
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
