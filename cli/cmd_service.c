/* weft service ...: create, list, show, update, delete. Addresses are
 * PROTO:HOST:PORT ("tcp:10.0.0.5:8080", "tcp:[::1]:22"), checked here so a
 * typo is a usage error, not a service that never works. */
#include <ctype.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/addr.h"

static const cli_col service_cols[] = {
    {"ID", "id"},     {"NAME", "name"}, {"ROLES", "roles"}, {"INTERCEPT", "intercept"},
    {"HOST", "host"},
};

/* Checks PROTO:HOST:PORT and writes it normalised ("tcp:..."). */
static int check_endpoint(cli_ctx *c, const char *opt, const char *s, char *out, size_t cap)
{
    char proto[8], host[256];
    unsigned port = 0;
    size_t plen = strcspn(s, ":");
    if (plen == 0 || plen >= sizeof(proto) || s[plen] != ':')
        goto bad;
    for (size_t i = 0; i < plen; i++)
        proto[i] = (char)tolower((unsigned char)s[i]);
    proto[plen] = '\0';
    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
        goto bad;
    if (pr_addr_split(s + plen + 1, host, sizeof(host), &port) < 0 || host[0] == '\0' ||
        port == 0 || port > 65535)
        goto bad;
    if ((size_t)snprintf(out, cap, "%s:%s", proto, s + plen + 1) >= cap)
        goto bad;
    return CLI_OK;
bad:
    return cli_usage_error(c,
                           "--%s wants PROTO:HOST:PORT with PROTO tcp or udp and PORT "
                           "1-65535 (e.g. tcp:10.0.0.5:8080), not \"%s\"",
                           opt, s);
}

/* Adds the --intercept and --host options that were given to body. */
static int add_endpoints(cli_ctx *c, const cli_args *a, json_t *body)
{
    static const char *const opts[] = {"intercept", "host"};
    char norm[300];
    for (size_t i = 0; i < 2; i++) {
        const char *v = cli_opt_get(a, opts[i]);
        if (v == NULL)
            continue;
        int rc = check_endpoint(c, opts[i], v, norm, sizeof(norm));
        if (rc != CLI_OK)
            return rc;
        json_object_set_new(body, opts[i], json_string(norm));
    }
    /* The controller checks that the router exists; "" clears it. */
    if (cli_opt_get(a, "hosted-by") != NULL)
        json_object_set_new(body, "hosted_by", json_string(cli_opt_get(a, "hosted-by")));
    const char *mp = cli_opt_get(a, "multipath");
    if (mp != NULL) {
        if (strcmp(mp, "failover") != 0 && strcmp(mp, "split") != 0 && strcmp(mp, "redundant") != 0)
            return cli_usage_error(c, "--multipath must be failover, split or redundant");
        json_object_set_new(body, "multipath", json_string(mp));
    }
    return CLI_OK;
}

static int build_body(cli_ctx *c, const cli_args *a, int create, json_t **out)
{
    json_t *roles = NULL;
    int rc;
    *out = json_object();
    if (*out == NULL)
        return cli_fail("out of memory");
    if (create && json_object_set_new(*out, "name", json_string(a->pos[0])) < 0)
        return cli_usage_error(c, "NAME must be UTF-8 text");
    if (create || cli_opt_has(a, "role")) {
        if ((rc = cli_roles_arg(c, a, &roles)) != CLI_OK)
            return rc;
        json_object_set_new(*out, "roles", roles);
    }
    return add_endpoints(c, a, *out);
}

static int service_write(cli_ctx *c, const cli_args *a, int create)
{
    char path[1024];
    json_t *body = NULL, *resp = NULL;
    int rc = build_body(c, a, create, &body);
    if (rc == CLI_OK && !create && json_object_size(body) == 0)
        rc = cli_usage_error(c,
                             "nothing to change: give --role, --intercept, --host, --hosted-by or "
                             "--multipath");
    if (rc == CLI_OK && !create &&
        cli_ref_path("services", a->pos[0], NULL, path, sizeof(path)) < 0)
        rc = cli_usage_error(c, "the id or name is too long");
    if (rc == CLI_OK)
        rc = cli_call(c, create ? "POST" : "PATCH", create ? "/v1/services" : path, body, &resp);
    if (rc == CLI_OK && !c->json) {
        const json_t *d = json_object_get(resp, "data");
        printf("%s service %s (id %s)\n", create ? "created" : "updated",
               json_is_object(d) ? cli_str(d, "name") : a->pos[0],
               json_is_object(d) ? cli_str(d, "id") : "?");
    }
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int service_create(cli_ctx *c, const cli_args *a)
{
    return service_write(c, a, 1);
}

static int service_update(cli_ctx *c, const cli_args *a)
{
    return service_write(c, a, 0);
}

static int service_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "services", service_cols,
                            sizeof(service_cols) / sizeof(service_cols[0]));
}

static int service_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "services");
}

static int service_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "services", "service");
}

#define ENDPOINT_HELP                                                                              \
    "  --role R           give the service role R (repeat, or R1,R2)\n"                            \
    "  --intercept P:H:P  address dialling edges capture, e.g. tcp:db.internal:5432\n"             \
    "  --host P:H:P       address the hosting edge connects to, e.g. tcp:127.0.0.1:5432\n"         \
    "  --hosted-by ROUTER the router (id or name) that connects to --host itself\n"                \
    "  --multipath MODE   failover (default), split or redundant: how routers use several paths\n"

const cli_cmd cli_service_cmds[] = {
    {"service", "create",
     "NAME [--role R]... [--intercept PROTO:HOST:PORT] [--host PROTO:HOST:PORT] "
     "[--hosted-by ROUTER] [--multipath MODE]",
     "create a service", ENDPOINT_HELP, "role intercept host hosted-by multipath", 1, 1,
     service_create},
    {"service", "list", "[--limit N] [--offset N] [--name FILTER] [--role R]", "list services",
     CLI_LIST_HELP "  --role R           only services with role R\n", "limit offset name role", 0,
     0, service_list},
    {"service", "show", CLI_REF_ARG, "show one service", NULL, "", 1, 1, service_show},
    {"service", "update",
     CLI_REF_ARG " [--role R]... [--intercept PROTO:HOST:PORT] [--host PROTO:HOST:PORT] "
                 "[--hosted-by ROUTER] [--multipath MODE]",
     "change a service (given fields only; --role replaces the roles)", ENDPOINT_HELP,
     "role intercept host hosted-by multipath", 1, 1, service_update},
    {"service", "delete", CLI_REF_ARG, "delete a service", NULL, "", 1, 1, service_delete},
    {0},
};
