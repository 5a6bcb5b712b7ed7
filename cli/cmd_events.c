/* weft events [--follow]: security and audit events (policy violations,
 * binding mismatches, quarantines), and weft webhook ...: where alerts are
 * posted. docs/policies.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_events.h"

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

static int webhook_create(cli_ctx *c, const cli_args *a)
{
    const char *url = cli_opt_get(a, "url");
    json_t *resp = NULL, *body;
    int rc;

    if (url == NULL)
        return cli_usage_error(c, "missing --url");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return cli_usage_error(c, "--url must be http://HOST:PORT/PATH or https://HOST:PORT/PATH");
    body = json_pack("{s:s, s:s}", "name", a->pos[0], "url", url);
    rc = body ? cli_call(c, "POST", "/v1/webhooks", body, &resp) : cli_fail("out of memory");
    if (rc == CLI_OK && !c->json) {
        const json_t *d = json_object_get(resp, "data");
        printf("created webhook %s (id %s) -> %s\n", cli_str(d, "name"), cli_str(d, "id"),
               cli_str(d, "url"));
    }
    json_decref(body);
    json_decref(resp);
    return rc;
}

static const cli_col webhook_cols[] = {{"ID", "id"}, {"NAME", "name"}, {"URL", "url"},
                                       {"CREATED", "created_at"}};

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

const cli_cmd cli_webhook_cmds[] = {
    {"webhook", "create", "NAME --url URL", "post alerts to URL (JSON, with retries)",
     "  --url URL          http://HOST:PORT/PATH\n", "url", 1, 1, webhook_create},
    {"webhook", "list", "", "list webhook targets", NULL, "", 0, 0, webhook_list},
    {"webhook", "delete", CLI_REF_ARG, "delete a webhook target", NULL, "", 1, 1, webhook_delete},
    {0},
};
