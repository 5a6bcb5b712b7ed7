/* weft events [--follow]: security and audit events (policy violations,
 * binding mismatches, quarantines), and weft webhook ...: where alerts are
 * posted, and the CA an https:// target is verified with. docs/policies.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_events.h"
#include "proto/httpc.h"
#include "weft/errors.h"

#define FOLLOW_POLL_US 500000

static void print_event(const cli_ctx *c, const json_t *ev)
{
    char *text;

    if (c->json) {
        if ((text = json_dumps(ev, JSON_COMPACT)) != NULL)
            printf("%s\n", text);
        free(text);
        return;
    }
    char *acts = cli_json_text(json_object_get(ev, "actions"));
    char *msg = cli_json_text(json_object_get(ev, "msg"));
    printf("%-6lld %-20s %-12s %-14s %-12s %-18s %s\n",
           (long long)json_integer_value(json_object_get(ev, "id")), cli_str(ev, "ts"),
           cli_str(ev, "kind"), cli_str(ev, "identity"), cli_str(ev, "service"),
           acts ? acts : "-", msg ? msg : "");
    free(acts);
    free(msg);
}

/* One page of events after *after; prints them and moves *after on. */
static int fetch(cli_ctx *c, long long *after, long limit, size_t *n)
{
    char path[128];
    json_t *resp = NULL, *ev;
    int json = c->json, rc;
    size_t i;

    snprintf(path, sizeof(path), "/v1/events?after=%lld&limit=%ld", *after, limit);
    c->json = 0; /* JSON lines are printed here, one event each */
    rc = cli_call(c, "GET", path, NULL, &resp);
    c->json = json;
    *n = 0;
    if (rc != CLI_OK)
        return rc;
    json_array_foreach(json_object_get(resp, "data"), i, ev)
    {
        print_event(c, ev);
        *after = json_integer_value(json_object_get(ev, "id"));
        (*n)++;
    }
    fflush(stdout);
    json_decref(resp);
    return CLI_OK;
}

int cli_events_run(cli_ctx *c, const cli_args *a)
{
    long after = 0, limit = 1000;
    long long pos;
    size_t n;
    int rc;

    if (cli_opt_has(a, "after") && cli_parse_uint(cli_opt_get(a, "after"), 0x7fffffffL, &after) < 0)
        return cli_usage_error(c, "--after must be an event id (a number)");
    if (cli_opt_has(a, "limit") &&
        (cli_parse_uint(cli_opt_get(a, "limit"), 1000, &limit) < 0 || limit < 1))
        return cli_usage_error(c, "--limit must be 1..1000");
    pos = after;
    if (!c->json)
        printf("%-6s %-20s %-12s %-14s %-12s %-18s %s\n", "ID", "TS", "KIND", "IDENTITY",
               "SERVICE", "ACTIONS", "MESSAGE");
    do {
        if ((rc = fetch(c, &pos, limit, &n)) != CLI_OK)
            return rc;
    } while (n == (size_t)limit && !cli_opt_has(a, "limit"));
    while (cli_opt_has(a, "follow")) {
        usleep(FOLLOW_POLL_US);
        if ((rc = fetch(c, &pos, 1000, &n)) != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* --ca FILE into body's "ca" (checked here first, so that the sentence names
 * the file), or --no-ca as "" (none). */
static int ca_arg(cli_ctx *c, const cli_args *a, json_t *body)
{
    const char *path = cli_opt_get(a, "ca");
    char *pem = NULL, why[256];
    size_t len = 0;
    unsigned n;
    int rc;

    if (path && cli_opt_has(a, "no-ca"))
        return cli_usage_error(c, "--ca and --no-ca exclude each other");
    if (cli_opt_has(a, "no-ca"))
        return json_object_set_new(body, "ca", json_string("")) == 0 ? CLI_OK
                                                                     : cli_fail("out of memory");
    if (path == NULL)
        return CLI_OK;
    if ((rc = pr_read_file(path, PR_HTTPC_CA_MAX + 1, &pem, &len)) < 0)
        return cli_fail("cannot read --ca %s: %s", path, weft_strerror(rc));
    if (pr_httpc_ca_check(pem, len, &n, why, sizeof(why)) < 0)
        rc = cli_usage_error(c, "--ca %s is not a CA bundle: %s", path, why);
    else
        rc = json_object_set_new(body, "ca", json_string(pem)) == 0 ? CLI_OK
                                                                    : cli_fail("out of memory");
    free(pem);
    return rc;
}

static int check_url(cli_ctx *c, const char *url)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return cli_usage_error(c, "--url must be http://HOST:PORT/PATH or https://HOST:PORT/PATH");
    return CLI_OK;
}

static void print_hook(const json_t *d, const char *verb)
{
    const char *trust = cli_str(d, "trust");

    printf("%s webhook %s (id %s) -> %s%s\n", verb, cli_str(d, "name"), cli_str(d, "id"),
           cli_str(d, "url"),
           strcmp(trust, "ca") == 0       ? ", verified with its own CA"
           : strcmp(trust, "system") == 0 ? ", verified with the system trust store"
                                          : "");
}

static int webhook_create(cli_ctx *c, const cli_args *a)
{
    const char *url = cli_opt_get(a, "url");
    json_t *resp = NULL, *body;
    int rc;

    if (url == NULL)
        return cli_usage_error(c, "missing --url");
    if ((rc = check_url(c, url)) != CLI_OK)
        return rc;
    if ((body = json_pack("{s:s, s:s}", "name", a->pos[0], "url", url)) == NULL)
        return cli_fail("out of memory");
    if ((rc = ca_arg(c, a, body)) == CLI_OK)
        rc = cli_call(c, "POST", "/v1/webhooks", body, &resp);
    if (rc == CLI_OK && !c->json)
        print_hook(json_object_get(resp, "data"), "created");
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int webhook_update(cli_ctx *c, const cli_args *a)
{
    const char *url = cli_opt_get(a, "url");
    json_t *resp = NULL, *body = json_object();
    char path[1024];
    int rc = body ? CLI_OK : cli_fail("out of memory");

    if (rc == CLI_OK && cli_ref_path("webhooks", a->pos[0], NULL, path, sizeof(path)) < 0)
        rc = cli_usage_error(c, "the id or name is too long");
    if (rc == CLI_OK && url && (rc = check_url(c, url)) == CLI_OK)
        json_object_set_new(body, "url", json_string(url));
    if (rc == CLI_OK)
        rc = ca_arg(c, a, body);
    if (rc == CLI_OK && json_object_size(body) == 0)
        rc = cli_usage_error(c, "nothing to update: give --url, --ca FILE or --no-ca");
    if (rc == CLI_OK)
        rc = cli_call(c, "PATCH", path, body, &resp);
    if (rc == CLI_OK && !c->json)
        print_hook(json_object_get(resp, "data"), "updated");
    json_decref(body);
    json_decref(resp);
    return rc;
}

static const cli_col webhook_cols[] = {
    {"ID", "id"}, {"NAME", "name"}, {"URL", "url"}, {"TRUST", "trust"}, {"CREATED", "created_at"}};

static int webhook_list(cli_ctx *c, const cli_args *a)
{
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/v1/webhooks", NULL, &resp);

    (void)a;
    if (rc == CLI_OK && !c->json)
        rc = cli_list_print(c, resp, webhook_cols, sizeof(webhook_cols) / sizeof(webhook_cols[0]));
    json_decref(resp);
    return rc;
}

static int webhook_delete(cli_ctx *c, const cli_args *a)
{
    return cli_generic_delete(c, a, "webhooks", "webhook");
}

#define WEBHOOK_CA_HELP                                                                            \
    "  --ca FILE          PEM certificates of the CA that issued an https:// target's\n"           \
    "                     certificate: the target is verified with these only (default:\n"         \
    "                     the controller's system trust store)\n"

const cli_cmd cli_webhook_cmds[] = {
    {"webhook", "create", "NAME --url URL [--ca FILE]", "post alerts to URL (JSON, with retries)",
     "  --url URL          http://HOST:PORT/PATH or https://HOST:PORT/PATH\n" WEBHOOK_CA_HELP,
     "url ca", 1, 1, webhook_create},
    {"webhook", "update", CLI_REF_ARG " [--url URL] [--ca FILE | --no-ca]",
     "change a webhook's URL or CA",
     "  --url URL          the new URL\n" WEBHOOK_CA_HELP
     "  --no-ca            verify with the system trust store again\n",
     "url ca no-ca", 1, 1, webhook_update},
    {"webhook", "list", "", "list webhook targets", NULL, "", 0, 0, webhook_list},
    {"webhook", "delete", CLI_REF_ARG, "delete a webhook target", NULL, "", 1, 1, webhook_delete},
    {0},
};
