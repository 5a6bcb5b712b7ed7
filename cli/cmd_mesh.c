/* The fabric as the routers report it: weft link list, weft circuit list and
 * weft mesh (GET /v1/links, /v1/circuits, /v1/mesh). Latencies print in
 * milliseconds, byte counts in binary units, routers by name. */
#include "cli/cmd_mesh.h"

#include <stdlib.h>
#include <string.h>

static void fmt_rtt(char *out, size_t cap, const json_t *link)
{
    json_int_t us = json_integer_value(json_object_get(link, "rtt_us"));

    if (us <= 0)
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.1f ms", (double)us / 1000.0);
}

static void fmt_bytes(char *out, size_t cap, json_int_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%lld B", (long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

/* The name of router id from a list of routers, else the id itself. */
static const char *router_name(const json_t *routers, const char *id)
{
    const json_t *r;
    size_t i;

    json_array_foreach(routers, i, r)
    {
        if (strcmp(cli_str(r, "id"), id) == 0 && cli_str(r, "name")[0])
            return cli_str(r, "name");
    }
    return id;
}

static const char *end_name(const json_t *link, const char *end)
{
    char key[8];
    const char *n;

    snprintf(key, sizeof(key), "%s_name", end);
    n = cli_str(link, key);
    return n[0] ? n : cli_str(link, end);
}

/* A link's ends by name, the smaller first: people read names, not ids. */
static void ends(const json_t *routers, const json_t *link, const char **x, const char **y)
{
    const char *a = routers ? router_name(routers, cli_str(link, "a")) : end_name(link, "a");
    const char *b = routers ? router_name(routers, cli_str(link, "b")) : end_name(link, "b");
    int swap = strcmp(a, b) > 0;

    *x = swap ? b : a;
    *y = swap ? a : b;
}

/* ---- weft link list ---- */

static int link_list(cli_ctx *c, const cli_args *a)
{
    static const cli_col cols[] = {{"A", "a"}, {"B", "b"}, {"STATE", "state"},
                                   {"RTT", "rtt"}, {"QUEUE", "queue"}};
    json_t *resp = NULL, *rows = NULL, *l;
    char rtt[32], q[32];
    const char *x, *y;
    size_t i;
    int rc;

    (void)a;
    if ((rc = cli_call(c, "GET", "/v1/links", NULL, &resp)) != CLI_OK || c->json)
        goto out;
    rows = json_array();
    json_array_foreach(json_object_get(resp, "data"), i, l)
    {
        fmt_rtt(rtt, sizeof(rtt), l);
        fmt_bytes(q, sizeof(q), json_integer_value(json_object_get(l, "queue")));
        ends(NULL, l, &x, &y);
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s}", "a", x, "b", y, "state",
                                              json_is_true(json_object_get(l, "up")) ? "up" : "down",
                                              "rtt", rtt, "queue", q));
    }
    cli_table_print(stdout, cols, sizeof(cols) / sizeof(cols[0]), rows);
out:
    json_decref(rows);
    json_decref(resp);
    return rc;
}

const cli_cmd cli_link_cmds[] = {
    {"link", "list", "", "list router links: state, round-trip time, queued bytes", NULL, "", 0,
     0, link_list},
    {0},
};

/* ---- weft circuit list ---- */

static char *path_text(const json_t *routers, const json_t *path)
{
    size_t i, len = 0;
    const json_t *r;
    char *out = NULL, *n;

    json_array_foreach(path, i, r)
    {
        const char *name = router_name(routers, json_string_value(r) ?: "?");
        if ((n = realloc(out, len + strlen(name) + 8)) == NULL)
            break;
        out = n;
        len += (size_t)sprintf(out + len, "%s%s", i ? " > " : "", name);
    }
    return out ? out : strdup("-");
}

static json_t *circuit_row(const json_t *routers, const json_t *ci)
{
    char up[32], down[32], rtt[32];
    char *path = path_text(routers, json_object_get(ci, "path"));
    json_t *row;

    fmt_bytes(up, sizeof(up), json_integer_value(json_object_get(ci, "bytes_up")));
    fmt_bytes(down, sizeof(down), json_integer_value(json_object_get(ci, "bytes_down")));
    fmt_rtt(rtt, sizeof(rtt), ci);
    row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", cli_str(ci, "id"), "state",
                    cli_str(ci, "state"), "service", cli_str(ci, "service"), "path",
                    path ? path : "-", "up", up, "down", down, "rtt", rtt, "opened",
                    cli_str(ci, "opened_at"));
    free(path);
    return row;
}

static int circuit_query(cli_ctx *c, const cli_args *a, char *q, size_t cap)
{
    const char *lim = cli_opt_get(a, "limit"), *off = cli_opt_get(a, "offset");
    const char *st = cli_opt_get(a, "state");
    long n;

    if ((lim && cli_parse_uint(lim, 1000, &n) < 0) || (off && cli_parse_uint(off, 1000000000L, &n) < 0))
        return cli_usage_error(c, "--limit and --offset want numbers (limit at most 1000)");
    if (st && strcmp(st, "open") != 0 && strcmp(st, "closed") != 0)
        return cli_usage_error(c, "--state must be open or closed, not \"%s\"", st);
    snprintf(q, cap, "/v1/circuits?limit=%s&offset=%s%s%s", lim ? lim : "100", off ? off : "0",
             st ? "&state=" : "", st ? st : "");
    return CLI_OK;
}

static int circuit_list(cli_ctx *c, const cli_args *a)
{
    static const cli_col cols[] = {{"ID", "id"},     {"STATE", "state"}, {"SERVICE", "service"},
                                   {"PATH", "path"}, {"UP", "up"},       {"DOWN", "down"},
                                   {"RTT", "rtt"},   {"OPENED", "opened"}};
    json_t *resp = NULL, *mesh = NULL, *rows = NULL, *ci, *routers;
    char path[128];
    size_t i;
    int rc;

    if ((rc = circuit_query(c, a, path, sizeof(path))) != CLI_OK ||
        (rc = cli_call(c, "GET", path, NULL, &resp)) != CLI_OK || c->json)
        goto out;
    /* Router names for the paths; without them the ids still say it all. */
    if (cli_call(c, "GET", "/v1/mesh", NULL, &mesh) != CLI_OK)
        mesh = NULL;
    routers = json_object_get(json_object_get(mesh, "data"), "routers");
    rows = json_array();
    json_array_foreach(json_object_get(resp, "data"), i, ci)
        json_array_append_new(rows, circuit_row(routers, ci));
    json_object_set(resp, "data", rows); /* meta stays: the table says what is left out */
    rc = cli_list_print(c, resp, cols, sizeof(cols) / sizeof(cols[0]));
out:
    json_decref(rows);
    json_decref(mesh);
    json_decref(resp);
    return rc;
}

const cli_cmd cli_circuit_cmds[] = {
    {"circuit", "list", "[--state open|closed] [--limit N] [--offset N]",
     "list circuits the routers reported, newest first: path, bytes, RTT",
     "  --state S          only open or only closed circuits\n"
     "  --limit N          at most N circuits (default 100, at most 1000)\n"
     "  --offset N         skip the first N circuits\n",
     "state limit offset", 0, 0, circuit_list},
    {0},
};

/* ---- weft mesh ---- */

static size_t widest(const json_t *routers)
{
    const json_t *r;
    size_t i, w = 0;

    json_array_foreach(routers, i, r)
    {
        size_t n = strlen(router_name(routers, cli_str(r, "id")));
        w = n > w ? n : w;
    }
    return w;
}

static int has_link(const json_t *links, const char *id)
{
    const json_t *l;
    size_t i;

    json_array_foreach(links, i, l)
    {
        if (strcmp(cli_str(l, "a"), id) == 0 || strcmp(cli_str(l, "b"), id) == 0)
            return 1;
    }
    return 0;
}

static void print_mesh(const json_t *data)
{
    const json_t *routers = json_object_get(data, "routers"), *links = json_object_get(data, "links");
    const json_t *r, *l;
    size_t i, online = 0, up = 0, w = widest(routers);
    const char *x, *y;
    char mid[48];

    json_array_foreach(routers, i, r) online += json_is_true(json_object_get(r, "online"));
    json_array_foreach(links, i, l) up += json_is_true(json_object_get(l, "up"));
    printf("%zu routers (%zu online), %zu links (%zu up), map version %lld\n",
           json_array_size(routers), online, json_array_size(links), up,
           (long long)json_integer_value(json_object_get(data, "map_version")));
    json_array_foreach(links, i, l)
    {
        if (json_is_true(json_object_get(l, "up")))
            fmt_rtt(mid, sizeof(mid), l);
        else
            snprintf(mid, sizeof(mid), "down");
        ends(routers, l, &x, &y);
        printf("  %-*s ── %-8s ── %s\n", (int)w, x, mid, y);
    }
    json_array_foreach(routers, i, r)
    {
        if (!has_link(links, cli_str(r, "id")))
            printf("  %-*s    (no links)\n", (int)w, router_name(routers, cli_str(r, "id")));
    }
    json_array_foreach(routers, i, r)
    {
        if (!json_is_true(json_object_get(r, "online")))
            printf("  offline: %s\n", router_name(routers, cli_str(r, "id")));
    }
}

int cli_mesh_run(cli_ctx *c, const cli_args *a)
{
    json_t *resp = NULL;
    int rc;

    (void)a;
    if ((rc = cli_call(c, "GET", "/v1/mesh", NULL, &resp)) == CLI_OK && !c->json) {
        if (!json_is_object(json_object_get(resp, "data")))
            rc = cli_fail("the controller's answer has no \"data\" object; check that "
                          "--controller points to a weft controller");
        else
            print_mesh(json_object_get(resp, "data"));
    }
    json_decref(resp);
    return rc;
}
