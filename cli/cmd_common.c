/* What the resource commands share: list, show and delete by id or name, and
 * handing an enrolment token to the operator. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "weft/errors.h"

/* Roles are plain names: the '#' and '@' prefixes belong to policies. */
int cli_roles_arg(cli_ctx *c, const cli_args *a, json_t **roles)
{
    char err[256];
    size_t i;
    json_t *r;
    if (cli_opt_list(a, "role", roles, err, sizeof(err)) < 0)
        return cli_usage_error(c, "%s", err);
    json_array_foreach(*roles, i, r)
    {
        const char *s = json_string_value(r);
        if (s[0] == '#' || s[0] == '@' || strpbrk(s, " \t\r\n") != NULL) {
            int rc =
                cli_usage_error(c, "role \"%s\" must be a plain name (no '#', '@' or spaces)", s);
            json_decref(*roles);
            *roles = NULL;
            return rc;
        }
    }
    return CLI_OK;
}

static int append_query(char *q, size_t cap, const char *key, const char *val)
{
    char esc[512];
    size_t len = strlen(q);
    if (val == NULL)
        return 0;
    if (cli_url_escape(val, esc, sizeof(esc)) < 0)
        return -1;
    int n = snprintf(q + len, cap - len, "%c%s=%s", len ? '&' : '?', key, esc);
    return (n < 0 || (size_t)n >= cap - len) ? -1 : 0;
}

int cli_generic_list(cli_ctx *c, const cli_args *a, const char *coll, const cli_col *cols,
                     size_t ncols)
{
    static const char *const keys[] = {"limit", "offset", "name", "role"};
    char path[1400];
    char q[1200] = "";
    json_t *resp = NULL;
    long n;
    for (size_t i = 0; i < 2; i++) {
        const char *v = cli_opt_get(a, keys[i]);
        if (v != NULL && cli_parse_uint(v, 1000000000L, &n) < 0)
            return cli_usage_error(c, "--%s wants a number, not \"%s\"", keys[i], v);
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (append_query(q, sizeof(q), keys[i], cli_opt_get(a, keys[i])) < 0)
            return cli_usage_error(c, "the filters are too long");
    snprintf(path, sizeof(path), "/v1/%s%s", coll, q);
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc == CLI_OK)
        rc = cli_list_print(c, resp, cols, ncols);
    json_decref(resp);
    return rc;
}

int cli_generic_show(cli_ctx *c, const cli_args *a, const char *coll)
{
    char path[1024];
    json_t *resp = NULL;
    if (cli_ref_path(coll, a->pos[0], NULL, path, sizeof(path)) < 0)
        return cli_usage_error(c, "the id or name is too long");
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc == CLI_OK)
        rc = cli_show_print(c, resp);
    json_decref(resp);
    return rc;
}

int cli_generic_delete(cli_ctx *c, const cli_args *a, const char *coll, const char *what)
{
    char path[1024];
    json_t *resp = NULL;
    if (cli_ref_path(coll, a->pos[0], NULL, path, sizeof(path)) < 0)
        return cli_usage_error(c, "the id or name is too long");
    int rc = cli_call(c, "DELETE", path, NULL, &resp);
    if (rc == CLI_OK && !c->json)
        printf("deleted %s %s\n", what, a->pos[0]);
    json_decref(resp);
    return rc;
}

/* After a create that returned {"data":{...},"enrollment":{"token","expires_at"}}:
 * writes the token to out_path (0600) or prints it alone on stdout, so that
 * TOKEN=$(weft identity create ...) works; the sentence then goes to stderr. */
int cli_write_token(cli_ctx *c, const json_t *resp, const char *what, const char *out_path)
{
    const json_t *data = json_object_get(resp, "data");
    const json_t *enr = json_object_get(resp, "enrollment");
    const char *token = json_string_value(json_object_get(enr, "token"));
    char *exp = cli_json_text(json_object_get(enr, "expires_at"));
    char *name = cli_json_text(json_object_get(data, "name"));
    char *id = cli_json_text(json_object_get(data, "id"));
    char *line = NULL;
    int rc = CLI_ERR;
    if (token == NULL) {
        cli_fail("the controller returned no enrolment token for the new %s; check the "
                 "controller's log",
                 what);
        goto out;
    }
    size_t tlen = strlen(token);
    if ((line = malloc(tlen + 2)) == NULL)
        goto out;
    memcpy(line, token, tlen);
    memcpy(line + tlen, "\n", 2);
    if (out_path != NULL) {
        int err = pr_write_file_secure(out_path, line, tlen + 1);
        if (err < 0) {
            cli_fail("created %s %s but cannot write the token to %s: %s; run 'weft %s delete "
                     "%s' and try again with another --out",
                     what, name ? name : "?", out_path, weft_strerror(err), what,
                     name ? name : "?");
            goto out;
        }
        if (!c->json)
            printf("created %s %s (id %s); enrolment token written to %s (expires %s)\n", what,
                   name ? name : "?", id ? id : "?", out_path, exp ? exp : "?");
    } else if (!c->json) {
        fputs(line, stdout);
        fprintf(stderr, "created %s %s (id %s); enrolment token printed (expires %s)\n", what,
                name ? name : "?", id ? id : "?", exp ? exp : "?");
    }
    rc = CLI_OK;
out:
    free(line);
    free(exp);
    free(name);
    free(id);
    return rc;
}
