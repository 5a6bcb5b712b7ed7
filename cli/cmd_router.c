/* weft router ...: create (with its enrolment token), list, show, delete. */
#include "cli/cli.h"

static const cli_col router_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"ROLES", "roles"},
    {"ENROLLED", "enrolled"},
    {"ONLINE", "online"},
    {"EDGE_LISTEN", "edge_listen"},
    {"LINK_LISTEN", "link_listen"},
};

static int router_create(cli_ctx *c, const cli_args *a)
{
    json_t *resp = NULL;
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    int rc = body ? CLI_OK : cli_usage_error(c, "NAME must be UTF-8 text");
    if (rc == CLI_OK && cli_opt_has(a, "role")) {
        json_t *roles = NULL;
        if ((rc = cli_roles_arg(c, a, &roles)) == CLI_OK)
            json_object_set_new(body, "roles", roles);
    }
    if (rc == CLI_OK)
        rc = cli_call(c, "POST", "/v1/routers", body, &resp);
    if (rc == CLI_OK)
        rc = cli_write_token(c, resp, "router", cli_opt_get(a, "out"));
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int router_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "routers", router_cols,
                            sizeof(router_cols) / sizeof(router_cols[0]));
}

static int router_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "routers");
}

static int router_update(cli_ctx *c, const cli_args *a)
{
    char path[1024];
    json_t *roles = NULL, *body, *resp = NULL;
    int rc;
    if (!cli_opt_has(a, "role"))
        return cli_usage_error(c, "nothing to change: give --role R (repeat it for several roles)");
    if ((rc = cli_roles_arg(c, a, &roles)) != CLI_OK)
        return rc;
    if (cli_ref_path("routers", a->pos[0], NULL, path, sizeof(path)) < 0) {
        json_decref(roles);
        return cli_usage_error(c, "the id or name is too long");
    }
    body = json_pack("{s:o}", "roles", roles);
    rc = cli_call(c, "PATCH", path, body, &resp);
    if (rc == CLI_OK && !c->json) {
        const json_t *d = json_object_get(resp, "data");
        printf("updated router %s (id %s)\n", json_is_object(d) ? cli_str(d, "name") : a->pos[0],
               json_is_object(d) ? cli_str(d, "id") : "?");
    }
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int router_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "routers", "router");
}

const cli_cmd cli_router_cmds[] = {
    {"router", "create", "NAME [--role R]... [--out TOKEN_FILE]",
     "create a router and its one-time enrolment token",
     "  --role R           give the router role R (repeat, or R1,R2)\n"
     "  --out TOKEN_FILE   write the token to TOKEN_FILE (mode 0600) instead of stdout\n",
     "role out", 1, 1, router_create},
    {"router", "list", "[--limit N] [--offset N] [--name FILTER]", "list routers", CLI_LIST_HELP,
     "limit offset name", 0, 0, router_list},
    {"router", "show", CLI_REF_ARG, "show one router", NULL, "", 1, 1, router_show},
    {"router", "update", CLI_REF_ARG " --role R...", "replace a router's roles",
     "  --role R           the new roles (repeat, or R1,R2)\n", "role", 1, 1, router_update},
    {"router", "delete", CLI_REF_ARG, "delete a router", NULL, "", 1, 1, router_delete},
    {0},
};
