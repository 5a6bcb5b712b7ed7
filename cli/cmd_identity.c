/* weft identity ...: create (with its enrolment token), list, show, update,
 * disable, enable, delete. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_col identity_cols[] = {
    {"ID", "id"},           {"NAME", "name"},         {"ROLES", "roles"},
    {"BINDING", "binding"}, {"ENROLLED", "enrolled"}, {"DISABLED", "disabled"},
};

static int valid_binding(const char *b)
{
    static const char *const ok[] = {"none", "exact", "iccid", "imei"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(b, ok[i]) == 0)
            return 1;
    return 0;
}

static int build_create(cli_ctx *c, const cli_args *a, json_t **out)
{
    const char *binding = cli_opt_get(a, "binding");
    const char *ttl = cli_opt_get(a, "token-ttl");
    json_t *roles = NULL;
    long ttl_s = 0;
    if (binding != NULL && !valid_binding(binding))
        return cli_usage_error(c, "--binding must be none, exact, iccid or imei, not \"%s\"",
                               binding);
    if (ttl != NULL && (cli_parse_uint(ttl, 10L * 365 * 86400, &ttl_s) < 0 || ttl_s == 0))
        return cli_usage_error(c, "--token-ttl wants seconds (1 to 315360000), not \"%s\"", ttl);
    int rc = cli_roles_arg(c, a, &roles);
    if (rc != CLI_OK)
        return rc;
    *out = json_pack("{s:s, s:o, s:s}", "name", a->pos[0], "roles", roles, "binding",
                     binding ? binding : "none");
    if (*out == NULL)
        return cli_usage_error(c, "NAME must be UTF-8 text");
    if (cli_opt_has(a, "admin"))
        json_object_set_new(*out, "admin", json_true());
    if (ttl != NULL)
        json_object_set_new(*out, "token_ttl", json_integer(ttl_s));
    if (cli_opt_get(a, "tz") != NULL)
        json_object_set_new(*out, "tz", json_string(cli_opt_get(a, "tz")));
    if (cli_opt_get(a, "ca") != NULL)
        json_object_set_new(*out, "ca", json_string(cli_opt_get(a, "ca")));
    return CLI_OK;
}

static int identity_create(cli_ctx *c, const cli_args *a)
{
    json_t *body = NULL, *resp = NULL;
    int rc = build_create(c, a, &body);
    if (rc == CLI_OK)
        rc = cli_call(c, "POST", "/v1/identities", body, &resp);
    if (rc == CLI_OK)
        rc = cli_write_token(c, resp, "identity", cli_opt_get(a, "out"));
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int identity_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "identities", identity_cols,
                            sizeof(identity_cols) / sizeof(identity_cols[0]));
}

static int identity_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "identities");
}

static int identity_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "identities", "identity");
}

/* POSTs to /v1/identities/{ref}/{action}, or PATCHes when body is given. */
static int identity_change(cli_ctx *c, const cli_args *a, const char *action, json_t *body,
                           const char *done)
{
    char path[1024], suffix[32];
    json_t *resp = NULL;
    snprintf(suffix, sizeof(suffix), "%s%s", body ? "" : "/", body ? "" : action);
    if (cli_ref_path("identities", a->pos[0], suffix, path, sizeof(path)) < 0)
        return cli_usage_error(c, "the id or name is too long");
    int rc = cli_call(c, body ? "PATCH" : "POST", path, body, &resp);
    if (rc == CLI_OK && !c->json) {
        const json_t *d = json_object_get(resp, "data");
        printf("%s identity %s (id %s)\n", done, json_is_object(d) ? cli_str(d, "name") : a->pos[0],
               json_is_object(d) ? cli_str(d, "id") : "?");
    }
    json_decref(resp);
    return rc;
}

static int identity_disable(cli_ctx *c, const cli_args *a)
{
    return identity_change(c, a, "disable", NULL, "disabled");
}

static int identity_enable(cli_ctx *c, const cli_args *a)
{
    return identity_change(c, a, "enable", NULL, "enabled");
}

static int identity_rebind(cli_ctx *c, const cli_args *a)
{
    return identity_change(c, a, "rebind", NULL, "reset the device binding of");
}

static int identity_update(cli_ctx *c, const cli_args *a)
{
    const char *tz = cli_opt_get(a, "tz");
    json_t *roles = NULL, *body = json_object();
    int rc = CLI_OK;
    if (!cli_opt_has(a, "role") && tz == NULL) {
        json_decref(body);
        return cli_usage_error(c, "nothing to change: give --role R (repeat it for several "
                                  "roles; --role '' is not allowed) or --tz ZONE");
    }
    if (cli_opt_has(a, "role") && (rc = cli_roles_arg(c, a, &roles)) == CLI_OK)
        json_object_set_new(body, "roles", roles);
    if (tz != NULL) /* "none": back to UTC */
        json_object_set_new(body, "tz", strcmp(tz, "none") ? json_string(tz) : json_null());
    if (rc == CLI_OK)
        rc = identity_change(c, a, NULL, body, "updated");
    json_decref(body);
    return rc;
}

const cli_cmd cli_identity_cmds[] = {
    {"identity", "create",
     "NAME [--role R]... [--binding none|exact|iccid|imei] [--admin] [--token-ttl SECONDS] "
     "[--ca CA] [--tz ZONE] [--out TOKEN_FILE]",
     "create an identity and its one-time enrolment token",
     "  --role R           give the identity role R (repeat, or R1,R2)\n"
     "  --binding MODE     hardware binding: none (default), exact (IMEI and ICCID),\n"
     "                     iccid (SIM first) or imei (modem first)\n"
     "  --admin            an administrator (may use this CLI once enrolled)\n"
     "  --token-ttl SECS   enrolment token lifetime (controller default)\n"
     "  --ca CA            the device must also enrol with a factory certificate from\n"
     "                     registered CA CA (weft-edge enroll TOKEN --cert --key)\n"
     "  --tz ZONE          the device's time zone (IANA, e.g. Europe/Paris): its hours of\n"
     "                     activity are learnt in it (anomaly detection); default UTC\n"
     "  --out TOKEN_FILE   write the token to TOKEN_FILE (mode 0600) instead of stdout\n",
     "role binding admin token-ttl out ca tz", 1, 1, identity_create},
    {"identity", "list", "[--limit N] [--offset N] [--name FILTER] [--role R]", "list identities",
     CLI_LIST_HELP "  --role R           only identities with role R\n", "limit offset name role",
     0, 0, identity_list},
    {"identity", "show", CLI_REF_ARG, "show one identity", NULL, "", 1, 1, identity_show},
    {"identity", "update", CLI_REF_ARG " [--role R]... [--tz ZONE|none]",
     "replace an identity's roles, or set its time zone",
     "  --role R           the new roles (repeat, or R1,R2)\n"
     "  --tz ZONE          its time zone (IANA, e.g. Europe/Paris); none: UTC\n",
     "role tz", 1, 1, identity_update},
    {"identity", "disable", CLI_REF_ARG, "disable an identity: its sessions end within a second",
     NULL, "", 1, 1, identity_disable},
    {"identity", "enable", CLI_REF_ARG, "enable a disabled identity", NULL, "", 1, 1,
     identity_enable},
    {"identity", "delete", CLI_REF_ARG, "delete an identity", NULL, "", 1, 1, identity_delete},
    {"identity", "rebind", CLI_REF_ARG,
     "forget the hardware ids bound to an identity: the next session binds afresh", NULL, "", 1,
     1, identity_rebind},
    {0},
};
