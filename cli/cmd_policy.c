/* weft policy ...: who may dial or bind what. Role lists are comma-separated
 * references: "role" or "#role" (everything with that role), "@name" (one
 * identity or service by name or id) or "#all"; they go to the controller as
 * written, which resolves them. */
#include <string.h>

#include "cli/cli.h"
#include "cli/units.h"

static const cli_col policy_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"TYPE", "type"},
    {"SEMANTIC", "semantic"},
    {"IDENTITIES", "identity_roles"},
    {"SERVICES", "service_roles"},
    {"ROUTERS", "router_roles"},
    {"ACTIONS", "actions"},
};

static int ref_list(cli_ctx *c, const cli_args *a, const char *opt, json_t **out)
{
    char err[256];
    size_t i;
    json_t *v;
    if (cli_opt_list(a, opt, out, err, sizeof(err)) < 0)
        return cli_usage_error(c, "%s", err);
    json_array_foreach(*out, i, v)
    {
        const char *s = json_string_value(v);
        if (((s[0] == '#' || s[0] == '@') && s[1] == '\0') || strpbrk(s, " \t\r\n") != NULL) {
            int rc =
                cli_usage_error(c, "--%s item \"%s\" must be ROLE, #ROLE, @NAME or #all", opt, s);
            json_decref(*out);
            *out = NULL;
            return rc;
        }
    }
    return CLI_OK;
}

static int check_choice(cli_ctx *c, const cli_args *a, const char *opt, const char *one,
                        const char *two)
{
    const char *v = cli_opt_get(a, opt);
    if (v != NULL && strcmp(v, one) != 0 && strcmp(v, two) != 0)
        return cli_usage_error(c, "--%s must be %s or %s, not \"%s\"", opt, one, two, v);
    return CLI_OK;
}

/* One quantity option of a behaviour policy into body[key]. */
static int quantity(cli_ctx *c, const cli_args *a, const char *opt, const char *key,
                    int (*parse)(const char *, long long *), const char *form, json_t *body)
{
    long long v;
    if (!cli_opt_has(a, opt))
        return CLI_OK;
    if (parse(cli_opt_get(a, opt), &v) < 0)
        return cli_usage_error(c, "--%s must look like %s, not \"%s\"", opt, form,
                               cli_opt_get(a, opt));
    json_object_set_new(body, key, json_integer(v));
    return CLI_OK;
}

static int parse_count(const char *s, long long *v)
{
    long n;
    if (cli_parse_uint(s, 1000000, &n) < 0 || n < 1)
        return -1;
    *v = n;
    return 0;
}

/* The limits and actions of a behaviour policy (docs/policies.md). */
static int behaviour_body(cli_ctx *c, const cli_args *a, json_t *body)
{
    json_t *acts = NULL;
    int rc;
    if (cli_opt_has(a, "time"))
        json_object_set_new(body, "time", json_string(cli_opt_get(a, "time")));
    if ((rc = quantity(c, a, "conn-rate", "conn_rate", cli_parse_rate, "10/min", body)) ||
        (rc = quantity(c, a, "bandwidth", "bandwidth", cli_parse_bandwidth, "1MB/s", body)) ||
        (rc = quantity(c, a, "quota", "quota", cli_parse_quota, "100MB/day", body)) ||
        (rc = quantity(c, a, "max-circuits", "max_circuits", parse_count, "a count (1..1000000)",
                       body)))
        return rc;
    if (cli_opt_has(a, "action")) {
        char err[256];
        size_t i;
        json_t *v;
        if (cli_opt_list(a, "action", &acts, err, sizeof(err)) < 0)
            return cli_usage_error(c, "%s", err);
        json_array_foreach(acts, i, v)
        {
            const char *s = json_string_value(v);
            if (strcmp(s, "block") && strcmp(s, "log") && strcmp(s, "alert") && strcmp(s, "remove")) {
                json_decref(acts);
                return cli_usage_error(c, "--action items are block, log, alert or remove, not "
                                          "\"%s\"", s);
            }
        }
        json_object_set_new(body, "actions", acts);
    }
    return CLI_OK;
}

/* What create requires for each type: --identities, --services, --routers. */
static int required(cli_ctx *c, const cli_args *a, const char *type)
{
    int rt = strcmp(type, "router") == 0, srt = strcmp(type, "service-router") == 0;
    int beh = strcmp(type, "behaviour") == 0;

    if (!srt && !cli_opt_has(a, "identities"))
        return cli_usage_error(c, "missing --identities");
    if (!rt && !beh && !cli_opt_has(a, "services"))
        return cli_usage_error(c, "missing --services");
    if ((rt || srt) && !cli_opt_has(a, "routers"))
        return cli_usage_error(c, "missing --routers (the routers the policy allows)");
    if (beh && !cli_opt_has(a, "action"))
        return cli_usage_error(c, "missing --action (block, log, alert, remove)");
    return CLI_OK;
}

static int check_type(cli_ctx *c, const char *type)
{
    static const char *const types[] = {"dial", "bind", "behaviour", "router", "service-router"};

    for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return CLI_OK;
    if (type == NULL)
        return CLI_OK;
    return cli_usage_error(c, "--type must be dial or bind, or behaviour, router or service-router, "
                              "not \"%s\"",
                           type);
}

/* A reference list option into body[key]. */
static int refs_opt(cli_ctx *c, const cli_args *a, const char *opt, const char *key, json_t *body)
{
    json_t *v = NULL;
    int rc;

    if (!cli_opt_has(a, opt))
        return CLI_OK;
    if ((rc = ref_list(c, a, opt, &v)) != CLI_OK)
        return rc;
    json_object_set_new(body, key, v);
    return CLI_OK;
}

/* Adds the options that were given to body; create requires those its type needs. */
static int build_body(cli_ctx *c, const cli_args *a, int create, json_t *body)
{
    const char *type = cli_opt_get(a, "type");
    int rc;
    if (create && type == NULL)
        return cli_usage_error(c, "missing --type");
    if ((rc = check_type(c, type)) != CLI_OK || (create && (rc = required(c, a, type)) != CLI_OK))
        return rc;
    if ((rc = check_choice(c, a, "semantic", "AnyOf", "AllOf")) != CLI_OK ||
        (rc = behaviour_body(c, a, body)) != CLI_OK)
        return rc;
    if (create)
        json_object_set_new(body, "name", json_string(a->pos[0]));
    if (cli_opt_has(a, "type"))
        json_object_set_new(body, "type", json_string(cli_opt_get(a, "type")));
    if (create || cli_opt_has(a, "semantic"))
        json_object_set_new(
            body, "semantic",
            json_string(cli_opt_has(a, "semantic") ? cli_opt_get(a, "semantic") : "AnyOf"));
    if ((rc = refs_opt(c, a, "identities", "identity_roles", body)) != CLI_OK ||
        (rc = refs_opt(c, a, "services", "service_roles", body)) != CLI_OK ||
        (rc = refs_opt(c, a, "routers", "router_roles", body)) != CLI_OK)
        return rc;
    if (create && json_object_get(body, "name") == NULL)
        return cli_usage_error(c, "NAME must be UTF-8 text");
    return CLI_OK;
}

static int policy_write(cli_ctx *c, const cli_args *a, int create)
{
    char path[1024];
    json_t *resp = NULL, *body = json_object();
    int rc = body ? build_body(c, a, create, body) : cli_fail("out of memory");
    if (rc == CLI_OK && !create && json_object_size(body) == 0)
        rc = cli_usage_error(c, "nothing to change: give --type, --semantic, --identities, "
                                "--services or --routers");
    if (rc == CLI_OK && !create &&
        cli_ref_path("policies", a->pos[0], NULL, path, sizeof(path)) < 0)
        rc = cli_usage_error(c, "the id or name is too long");
    if (rc == CLI_OK)
        rc = cli_call(c, create ? "POST" : "PATCH", create ? "/v1/policies" : path, body, &resp);
    if (rc == CLI_OK && !c->json) {
        const json_t *d = json_object_get(resp, "data");
        printf("%s policy %s (id %s)\n", create ? "created" : "updated",
               json_is_object(d) ? cli_str(d, "name") : a->pos[0],
               json_is_object(d) ? cli_str(d, "id") : "?");
    }
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int policy_create(cli_ctx *c, const cli_args *a)
{
    return policy_write(c, a, 1);
}

static int policy_update(cli_ctx *c, const cli_args *a)
{
    return policy_write(c, a, 0);
}

static int policy_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "policies", policy_cols,
                            sizeof(policy_cols) / sizeof(policy_cols[0]));
}

static int policy_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "policies");
}

static int policy_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "policies", "policy");
}

#define POLICY_HELP                                                                                \
    "  --type dial|bind   dial: use the services; bind: host them\n"                               \
    "  --identities REFS  who: comma-separated ROLE, #ROLE, @NAME or #all\n"                       \
    "  --services REFS    what: comma-separated ROLE, #ROLE, @NAME or #all\n"                      \
    "  --semantic S       AnyOf (default: any listed role matches) or AllOf (all must)\n"       \
    "Router policies (--type router: --identities, --routers; --type service-router:\n"         \
    "--services, --routers): which routers the identities may use, or may carry the\n"         \
    "services; with none, every router. They only restrict what they select.\n"                \
    "  --routers REFS     comma-separated ROLE, #ROLE, @NAME or #all (routers)\n"               \
    "Behaviour policies (--type behaviour; --services optional, default every service):\n"     \
    "  --time W           allowed hours, HH:MM-HH:MM[@Zone], e.g. 08:00-18:00@Europe/Paris\n"   \
    "  --conn-rate R      new circuits, e.g. 10/min or 1/s\n"                                    \
    "  --bandwidth B      bytes per second from the identity, e.g. 1MB/s or 512KiB/s\n"          \
    "  --quota Q          bytes per day from the identity, e.g. 100MB/day\n"                     \
    "  --max-circuits N   circuits open at once\n"                                               \
    "  --action A         on violation: block,log,alert,remove (any of them)\n"

const cli_cmd cli_policy_cmds[] = {
    {"policy", "create",
     "NAME --type dial|bind|behaviour|router|service-router [--identities ROLES] "
     "[--services ROLES] [--routers ROLES] "
     "[--semantic AnyOf|AllOf] [--time 08:00-18:00@Europe/Paris] [--conn-rate 10/min] "
     "[--bandwidth 1MB/s] [--quota 100MB/day] [--max-circuits N] [--action block,log,alert,remove]",
     "create a policy", POLICY_HELP,
     "type identities services routers semantic time conn-rate bandwidth quota max-circuits "
     "action", 1, 1,
     policy_create},
    {"policy", "list", "[--limit N] [--offset N] [--name FILTER]", "list policies", CLI_LIST_HELP,
     "limit offset name", 0, 0, policy_list},
    {"policy", "show", CLI_REF_ARG, "show one policy", NULL, "", 1, 1, policy_show},
    {"policy", "update",
     CLI_REF_ARG " [--type TYPE] [--identities ROLES] [--services ROLES] [--routers ROLES] "
     "[--semantic S]",
     "change a policy (given fields only)", POLICY_HELP,
     "type identities services routers semantic time conn-rate bandwidth quota max-circuits "
     "action", 1, 1,
     policy_update},
    {"policy", "delete", CLI_REF_ARG, "delete a policy", NULL, "", 1, 1, policy_delete},
    {0},
};
