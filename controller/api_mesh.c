/* GET /v1/links, /v1/circuits and /v1/mesh: the operator's view of the
 * fabric as the routers report it (docs/operations.md). Nothing here is
 * stored: links and circuits live in memory and start empty after a restart
 * until the routers report again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/circuits.h"
#include "controller/controller.h"
#include "controller/netmap.h"
#include "weft/errors.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

/* 0 absent, 1 read, < 0 answered with 400. */
static int query_num(ctl_call *call, const char *key, long max, long *out)
{
    char buf[32], *end;
    long v;

    if (ctl_http_query(call->req, key, buf, sizeof(buf)) == NULL)
        return 0;
    errno = 0;
    v = strtol(buf, &end, 10);
    if (buf[0] == '\0' || *end != '\0' || errno != 0 || v < 0 || v > max) {
        ctl_reply_error(call, 400, "bad_request",
                        "query parameter '%s' must be an integer in 0..%ld", key, max);
        return WEFT_EINVAL;
    }
    *out = v;
    return 1;
}

/* Adds a_name and b_name so that people need not look ids up. */
static void name_ends(const json_t *routers, json_t *links)
{
    json_t *l, *r;
    size_t i, j;

    json_array_foreach(links, i, l)
    {
        json_array_foreach(routers, j, r)
        {
            const char *id = json_string_value(json_object_get(r, "id")) ?: "";
            json_t *name = json_object_get(r, "name");
            if (!json_is_string(name))
                continue;
            if (strcmp(id, json_string_value(json_object_get(l, "a")) ?: "") == 0)
                json_object_set(l, "a_name", name);
            if (strcmp(id, json_string_value(json_object_get(l, "b")) ?: "") == 0)
                json_object_set(l, "b_name", name);
        }
    }
}

static json_t *links_named(ctl *c, json_t **routers_out)
{
    json_t *routers = c->map ? ctl_netmap_routers(c->map) : json_array();
    json_t *links = c->map ? ctl_netmap_links(c->map) : json_array();

    if (routers && links)
        name_ends(routers, links);
    if (routers_out)
        *routers_out = routers;
    else
        json_decref(routers);
    return links;
}

void ctl_api_links_list(ctl_call *call)
{
    json_t *links = links_named(call->c, NULL);

    if (links == NULL) {
        ctl_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I}}", "data", links, "meta", "total",
                        (json_int_t)json_array_size(links)));
}

void ctl_api_circuits_list(ctl_call *call)
{
    long limit = PAGE_DEFAULT, offset = 0;
    char state[16];
    const char *st = ctl_http_query(call->req, "state", state, sizeof(state));
    json_t *items = NULL;
    size_t total = 0;

    if (query_num(call, "limit", PAGE_MAX, &limit) < 0 ||
        query_num(call, "offset", 1000000000L, &offset) < 0)
        return;
    if (limit < 1) {
        ctl_reply_error(call, 400, "bad_request", "query parameter 'limit' must be 1..%d",
                        PAGE_MAX);
        return;
    }
    if (st && strcmp(st, "open") != 0 && strcmp(st, "closed") != 0) {
        ctl_reply_error(call, 400, "bad_request",
                        "query parameter 'state' must be 'open' or 'closed'");
        return;
    }
    if (ctl_circuits_list(call->c->circuits, st, (size_t)offset, (size_t)limit, &items, &total) <
        0) {
        ctl_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I, s:i, s:i, s:I}}", "data", items, "meta", "total",
                        (json_int_t)total, "limit", (int)limit, "offset", (int)offset, "open",
                        (json_int_t)ctl_circuits_open_count(call->c->circuits)));
}

/* Routers with their online state and every link between them: what
 * `weft mesh` draws. */
void ctl_api_mesh_get(ctl_call *call)
{
    json_t *routers = NULL, *links = links_named(call->c, &routers), *r;
    size_t i;

    if (links == NULL || routers == NULL) {
        json_decref(links);
        json_decref(routers);
        ctl_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    json_array_foreach(routers, i, r)
    {
        /* Operators read names; listen addresses are in GET /v1/routers. */
        json_object_del(r, "edge_listen");
        json_object_del(r, "link_listen");
    }
    ctl_reply_data(call, 200,
                   json_pack("{s:I, s:o, s:o}", "map_version",
                             (json_int_t)(call->c->map ? ctl_netmap_version(call->c->map) : 0),
                             "routers", routers, "links", links));
}
