/* weft ca ...: enterprise (manufacturing) CAs: create, verify (proof of
 * possession of the CA key), list, show, update, disable, enable, delete.
 * See docs/bootstrap.md. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli/cli.h"
#include "proto/pki.h"
#include "weft/errors.h"

#define PEM_MAX (512 * 1024)

static const cli_col ca_cols[] = {
    {"ID", "id"},         {"NAME", "name"},         {"VERIFIED", "verified"},
    {"AUTO_ENROLL", "auto_enroll"}, {"ROLES", "roles"}, {"DISABLED", "disabled"},
};

static int read_pem(const char *opt, const char *path, char **out)
{
    size_t len = 0;
    int rc = pr_read_file(path, PEM_MAX, out, &len);

    if (rc < 0)
        return cli_fail("cannot read --%s %s: %s", opt, path, weft_strerror(rc));
    return CLI_OK;
}

/* --roles R1,R2 or --role R (repeatable), both accepted. */
static int roles_arg(cli_ctx *c, const cli_args *a, json_t **roles)
{
    char err[256];
    json_t *more = NULL;
    int rc = cli_roles_arg(c, a, roles);

    if (rc != CLI_OK)
        return rc;
    if (cli_opt_list(a, "roles", &more, err, sizeof(err)) < 0) {
        json_decref(*roles);
        *roles = NULL;
        return cli_usage_error(c, "%s", err);
    }
    json_array_extend(*roles, more);
    json_decref(more);
    return CLI_OK;
}

static int add_common(cli_ctx *c, const cli_args *a, json_t *body)
{
    const char *tmpl = cli_opt_get(a, "identity-name-template");
    const char *crl = cli_opt_get(a, "crl");
    json_t *roles = NULL;
    char *pem = NULL;
    int rc = roles_arg(c, a, &roles);

    if (rc != CLI_OK)
        return rc;
    if (json_array_size(roles) > 0)
        json_object_set_new(body, "roles", roles);
    else
        json_decref(roles);
    if (tmpl)
        json_object_set_new(body, "name_template", json_string(tmpl));
    if (crl && (rc = read_pem("crl", crl, &pem)) != CLI_OK)
        return rc;
    if (pem)
        json_object_set_new(body, "crl", json_string(pem));
    free(pem);
    return CLI_OK;
}

static void print_next(cli_ctx *c, const json_t *resp, const char *name)
{
    const json_t *d = json_object_get(resp, "data");

    if (c->json)
        return;
    printf("registered CA %s (id %s, sha256 %s)\n", name, cli_str(d, "id"),
           cli_str(d, "fingerprint"));
    printf("not usable until verified: weft ca verify %s --key CA.key\n"
           "  (or sign a certificate with CN=%s with the CA and use --cert VERIFY.pem)\n",
           name, cli_str(d, "challenge"));
}

static int ca_create(cli_ctx *c, const cli_args *a)
{
    const char *cert = cli_opt_get(a, "cert");
    json_t *body = NULL, *resp = NULL;
    char *pem = NULL;
    int rc;

    if (cert == NULL)
        return cli_usage_error(c, "--cert CA.pem is required");
    if ((rc = read_pem("cert", cert, &pem)) != CLI_OK)
        return rc;
    body = json_pack("{s:s, s:s, s:b}", "name", a->pos[0], "cert", pem, "auto_enroll",
                     cli_opt_has(a, "auto-enroll"));
    free(pem);
    if (body == NULL)
        return cli_usage_error(c, "NAME must be UTF-8 text");
    if ((rc = add_common(c, a, body)) == CLI_OK &&
        (rc = cli_call(c, "POST", "/v1/cas", body, &resp)) == CLI_OK)
        print_next(c, resp, a->pos[0]);
    json_decref(body);
    json_decref(resp);
    return rc;
}

/* A short-lived certificate with CN = challenge, signed by the CA key: the
 * key never leaves this machine, only the proof does. */
static int sign_challenge(const char *ca_pem, const char *key_path, const char *challenge,
                          char **out)
{
    pr_ca ca = {.cert_pem = (char *)ca_pem, .key_pem = NULL};
    pr_cert_req req = {.cn = challenge, .usage = PR_CERT_CLIENT,
                       .not_after = (int64_t)time(NULL) + 3600};
    char *key = NULL, *vkey = NULL;
    int rc = read_pem("key", key_path, &key);

    if (rc != CLI_OK)
        return rc;
    ca.key_pem = key;
    rc = pr_ca_issue(&ca, &req, out, &vkey);
    sodium_memzero(key, strlen(key));
    free(key);
    free(vkey);
    if (rc < 0)
        return cli_fail("cannot sign the challenge with %s (%s): it must be the CA's private "
                        "key, unencrypted PEM",
                        key_path, weft_strerror(rc));
    return CLI_OK;
}

static int verify_cert(cli_ctx *c, const cli_args *a, char **vcert)
{
    char path[1024];
    json_t *resp = NULL, *d;
    int rc;

    if (cli_opt_get(a, "cert"))
        return read_pem("cert", cli_opt_get(a, "cert"), vcert);
    if (cli_ref_path("cas", a->pos[0], "", path, sizeof(path)) < 0)
        return cli_usage_error(c, "NAME is too long");
    if ((rc = cli_call(c, "GET", path, NULL, &resp)) != CLI_OK)
        return rc;
    d = json_object_get(resp, "data");
    if (json_object_get(d, "challenge") == NULL || json_is_null(json_object_get(d, "challenge")))
        rc = cli_fail("CA %s has no pending challenge: it is already verified", a->pos[0]);
    else
        rc = sign_challenge(cli_str(d, "cert"), cli_opt_get(a, "key"), cli_str(d, "challenge"),
                            vcert);
    json_decref(resp);
    return rc;
}

static int ca_verify(cli_ctx *c, const cli_args *a)
{
    char path[1024], *vcert = NULL;
    json_t *body = NULL, *resp = NULL;
    int rc;

    if ((cli_opt_get(a, "key") == NULL) == (cli_opt_get(a, "cert") == NULL))
        return cli_usage_error(c, "give --key CA.key or --cert VERIFY.pem (one of them)");
    if (cli_ref_path("cas", a->pos[0], "/verify", path, sizeof(path)) < 0)
        return cli_usage_error(c, "NAME is too long");
    if ((rc = verify_cert(c, a, &vcert)) != CLI_OK)
        return rc;
    body = json_pack("{s:s}", "cert", vcert);
    free(vcert);
    rc = cli_call(c, "POST", path, body, &resp);
    if (rc == CLI_OK && !c->json)
        printf("CA %s verified: devices with its certificates can enrol\n", a->pos[0]);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int ca_update(cli_ctx *c, const cli_args *a)
{
    char path[1024];
    json_t *body = json_object(), *resp = NULL;
    int rc;

    if (cli_ref_path("cas", a->pos[0], "", path, sizeof(path)) < 0)
        rc = cli_usage_error(c, "NAME is too long");
    else if ((rc = add_common(c, a, body)) == CLI_OK && json_object_size(body) == 0)
        rc = cli_usage_error(c, "nothing to update: give --crl, --roles or "
                                "--identity-name-template");
    else if (rc == CLI_OK && (rc = cli_call(c, "PATCH", path, body, &resp)) == CLI_OK)
        rc = cli_show_print(c, resp);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int ca_action(cli_ctx *c, const cli_args *a, const char *action)
{
    char path[1024];
    json_t *resp = NULL;
    int rc;

    if (cli_ref_path("cas", a->pos[0], action, path, sizeof(path)) < 0)
        return cli_usage_error(c, "NAME is too long");
    rc = cli_call(c, "POST", path, NULL, &resp);
    if (rc == CLI_OK && !c->json)
        printf("CA %s %sd\n", a->pos[0], action + 1);
    json_decref(resp);
    return rc;
}

static int ca_disable(cli_ctx *c, const cli_args *a)
{
    return ca_action(c, a, "/disable");
}

static int ca_enable(cli_ctx *c, const cli_args *a)
{
    return ca_action(c, a, "/enable");
}

static int ca_list(cli_ctx *c, const cli_args *a)
{
    return cli_generic_list(c, a, "cas", ca_cols, sizeof(ca_cols) / sizeof(ca_cols[0]));
}

static int ca_show(cli_ctx *c, const cli_args *a)
{
    return cli_generic_show(c, a, "cas");
}

static int ca_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "cas", "CA");
}

#define CA_COMMON_HELP                                                                             \
    "  --roles R1,R2      roles of the identities its devices get (or --role R, repeated)\n"      \
    "  --identity-name-template T\n"                                                               \
    "                     name of auto-enrolled identities: {cn}, {serial}, {fingerprint}\n"       \
    "                     (default {cn})\n"                                                        \
    "  --crl FILE         the CA's revocation list (PEM); revoked devices are refused\n"

const cli_cmd cli_ca_cmds[] = {
    {"ca", "create",
     "NAME --cert CA.pem [--auto-enroll] [--roles R,...] [--identity-name-template T] "
     "[--crl FILE]",
     "register a manufacturing CA (then weft ca verify)",
     "  --cert CA.pem      the CA's certificate (PEM)\n"
     "  --auto-enroll      devices holding its certificates enrol with no identity created "
     "first\n" CA_COMMON_HELP,
     "cert auto-enroll role roles identity-name-template crl", 1, 1, ca_create},
    {"ca", "verify", "NAME (--key CA.key | --cert VERIFY.pem)",
     "prove possession of the CA's key by signing the controller's challenge",
     "  --key CA.key       sign the challenge here with the CA's key (it is never sent)\n"
     "  --cert VERIFY.pem  or send a certificate with CN = the challenge (weft ca show) that\n"
     "                     you signed with the CA elsewhere\n",
     "key cert", 1, 1, ca_verify},
    {"ca", "list", "[--limit N] [--offset N] [--name FILTER]", "list registered CAs",
     CLI_LIST_HELP, "limit offset name", 0, 0, ca_list},
    {"ca", "show", CLI_REF_ARG, "show one CA (with its pending challenge)", NULL, "", 1, 1,
     ca_show},
    {"ca", "update", CLI_REF_ARG " [--crl FILE] [--roles R,...] [--identity-name-template T]",
     "change a CA's CRL, roles or name template", CA_COMMON_HELP,
     "crl role roles identity-name-template", 1, 1, ca_update},
    {"ca", "disable", CLI_REF_ARG, "refuse enrolment with a CA's certificates", NULL, "", 1, 1,
     ca_disable},
    {"ca", "enable", CLI_REF_ARG, "accept a disabled CA again", NULL, "", 1, 1, ca_enable},
    {"ca", "delete", CLI_REF_ARG, "forget a CA", NULL, "", 1, 1, ca_delete},
    {0},
};
