/* weft credential ...: tier-2 credentials (the enterprise's own CA bundles,
 * client certificates, other secrets) attached to an identity or to a role,
 * delivered to enrolled devices over their authenticated session. Contents
 * are sent once, at create; nothing ever shows them back. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "weft/errors.h"

#define FILE_MAX (512 * 1024)

static const cli_col cred_cols[] = {
    {"ID", "id"},       {"NAME", "name"},   {"IDENTITY", "identity_id"},
    {"ROLES", "roles"}, {"FILES", "files"},
};

/* --file KEY=PATH: the file's bytes, base64, under KEY. */
static int add_file(cli_ctx *c, json_t *files, const char *spec)
{
    const char *eq = strchr(spec, '=');
    char key[80], *data = NULL, *b64;
    size_t len = 0, blen;
    int rc;

    if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(key) || eq[1] == '\0')
        return cli_usage_error(c, "--file wants KEY=PATH, not \"%s\"", spec);
    memcpy(key, spec, (size_t)(eq - spec));
    key[eq - spec] = '\0';
    if ((rc = pr_read_file(eq + 1, FILE_MAX, &data, &len)) < 0)
        return cli_fail("cannot read %s: %s", eq + 1, weft_strerror(rc));
    blen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if ((b64 = malloc(blen)) == NULL) {
        free(data);
        return cli_fail("out of memory");
    }
    sodium_bin2base64(b64, blen, (unsigned char *)data, len, sodium_base64_VARIANT_ORIGINAL);
    json_object_set_new(files, key, json_string(b64));
    sodium_memzero(data, len);
    sodium_memzero(b64, blen);
    free(data);
    free(b64);
    return CLI_OK;
}

static int build(cli_ctx *c, const cli_args *a, json_t *body)
{
    const char *who = cli_opt_get(a, "for-identity"), *spec;
    json_t *files = json_object(), *roles = NULL;
    int i = 0, rc = CLI_OK;

    if ((rc = cli_roles_arg(c, a, &roles)) != CLI_OK) {
        json_decref(files);
        return rc;
    }
    if ((who != NULL) == (json_array_size(roles) > 0))
        rc = cli_usage_error(c, "give --for-identity ID|NAME or --role R (one of them)");
    while (rc == CLI_OK && (spec = cli_opt_next(a, "file", &i)) != NULL)
        rc = add_file(c, files, spec);
    if (rc == CLI_OK && json_object_size(files) == 0)
        rc = cli_usage_error(c, "give at least one --file KEY=PATH");
    if (who)
        json_object_set_new(body, "identity", json_string(who));
    else
        json_object_set(body, "roles", roles);
    json_object_set(body, "files", files);
    json_decref(roles);
    json_decref(files);
    return rc;
}

static int cred_create(cli_ctx *c, const cli_args *a)
{
    json_t *body = json_pack("{s:s}", "name", a->pos[0]), *resp = NULL;
    int rc = body ? build(c, a, body) : cli_usage_error(c, "NAME must be UTF-8 text");

    if (rc == CLI_OK)
        rc = cli_call(c, "POST", "/v1/credentials", body, &resp);
    if (rc == CLI_OK && !c->json)
        printf("created credential %s (id %s); devices fetch it with weft-edge credentials\n",
               a->pos[0], cli_str(json_object_get(resp, "data"), "id"));
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int cred_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "credentials", cred_cols,
                            sizeof(cred_cols) / sizeof(cred_cols[0]));
}

static int cred_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "credentials");
}

static int cred_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "credentials", "credential");
}

const cli_cmd cli_credential_cmds[] = {
    {"credential", "create", "NAME (--for-identity ID|NAME | --role R...) --file KEY=PATH...",
     "attach the enterprise's files (CA bundle, client certificate, key) to an identity or role",
     "  --for-identity ID  attach to one identity (id or name)\n"
     "  --role R           or to every identity with role R (repeat, or R1,R2)\n"
     "  --file KEY=PATH    a file the device receives as KEY (repeat); stored encrypted\n",
     "for-identity role file", 1, 1, cred_create},
    {"credential", "list", "[--limit N] [--offset N] [--name FILTER]",
     "list credentials (names of their files only, never contents)", CLI_LIST_HELP,
     "limit offset name", 0, 0, cred_list},
    {"credential", "show", CLI_REF_ARG, "show one credential (without its contents)", NULL, "", 1,
     1, cred_show},
    {"credential", "delete", CLI_REF_ARG, "delete a credential", NULL, "", 1, 1, cred_delete},
    {0},
};
