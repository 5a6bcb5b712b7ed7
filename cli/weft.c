/* weft: the administration CLI. Finds the command from the words on the
 * command line, checks its options and arguments, then runs it against the
 * controller's REST API. Exit status: 0 ok, 1 error, 2 usage error. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_events.h"
#include "cli/cmd_mesh.h"

#define WEFT_VERSION_STRING "0.1.0"

static int cmd_version(cli_ctx *c, const cli_args *a);

static const cli_cmd top_cmds[] = {
    {NULL, "version", "", "show the CLI's and the controller's versions", NULL, "", 0, 0,
     cmd_version},
    {NULL, "mesh", "", "show the routers and the links between them, with latencies", NULL, "",
     0, 0, cli_mesh_run},
    {NULL, "events", CLI_EVENTS_ARGS,
     "security and audit events (violations, binding mismatches, quarantines)", CLI_EVENTS_HELP,
     "follow after limit", 0, 0, cli_events_run},
    {0},
};

typedef struct {
    const char *name;
    const cli_cmd *cmds;
    const char *summary;
} cmd_group;

static const cmd_group groups[] = {
    {"identity", cli_identity_cmds, "identities: devices, applications and administrators"},
    {"service", cli_service_cmds, "services that identities dial or bind"},
    {"policy", cli_policy_cmds, "who may dial or bind which services"},
    {"router", cli_router_cmds, "routers of the fabric"},
    {"ca", cli_ca_cmds, "manufacturing CAs whose device certificates may enrol"},
    {"credential", cli_credential_cmds, "enterprise credentials delivered to devices (tier 2)"},
    {"link", cli_link_cmds, "links between routers, as the routers report them"},
    {"circuit", cli_circuit_cmds, "circuits through the fabric, as the routers report them"},
    {"webhook", cli_webhook_cmds, "where security alerts are posted"},
    {"anomaly", cli_anomaly_cmds, "anomaly detection: network-wide settings, identities' baselines"},
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

static const char global_help[] =
    "Global options (before or after the command words):\n"
    "  --controller URL   controller to talk to (env WEFT_CONTROLLER; default: the\n"
    "                     \"controller\" field of the identity file)\n"
    "  --identity FILE    admin identity file (env WEFT_IDENTITY)\n"
    "  --json             print the API's JSON instead of tables\n"
    "  --timeout MS       give up on the controller after MS milliseconds (default 15000)\n"
    "  --help, -h         show help\n";

static void print_usage_line(FILE *f, const cli_cmd *cmd)
{
    fprintf(f, "usage: weft %s%s%s%s%s\n", cmd->group ? cmd->group : "", cmd->group ? " " : "",
            cmd->verb, cmd->args[0] ? " " : "", cmd->args);
}

void cli_print_cmd_help(FILE *f, const cli_cmd *cmd)
{
    print_usage_line(f, cmd);
    fprintf(f, "\n%c%s.\n", toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
    if (cmd->help != NULL)
        fprintf(f, "\nOptions:\n%s", cmd->help);
    fprintf(f, "\n%s", global_help);
}

static void print_group_help(FILE *f, const cmd_group *g)
{
    fprintf(f, "usage: weft %s COMMAND [options]\n\n%s\n\nCommands:\n", g->name, g->summary);
    for (const cli_cmd *c = g->cmds; c->verb; c++)
        fprintf(f, "  %-8s %s\n", c->verb, c->summary);
    fprintf(f, "\nRun 'weft %s COMMAND --help' for a command's options.\n", g->name);
}

static void print_top_help(FILE *f)
{
    fprintf(f, "usage: weft [--controller URL] [--identity FILE] [--json] COMMAND ...\n\n"
               "Administers a weft network through its controller.\n\nCommands:\n");
    for (size_t i = 0; i < NGROUPS; i++)
        fprintf(f, "  %-9s %s\n", groups[i].name, groups[i].summary);
    for (const cli_cmd *c = top_cmds; c->verb; c++)
        fprintf(f, "  %-9s %s\n", c->verb, c->summary);
    fprintf(f, "\n%s\nRun 'weft COMMAND --help' for more. See docs/cli.md.\n", global_help);
}

int cli_usage_error(const cli_ctx *c, const char *fmt, ...)
{
    va_list ap;
    fputs("weft: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c != NULL && c->cmd != NULL) {
        print_usage_line(stderr, c->cmd);
        fprintf(stderr, "Run 'weft %s%s%s --help' for more.\n", c->cmd->group ? c->cmd->group : "",
                c->cmd->group ? " " : "", c->cmd->verb);
    } else {
        fputs("usage: weft [--controller URL] [--identity FILE] [--json] COMMAND ...\n"
              "Run 'weft --help' for the commands.\n",
              stderr);
    }
    return CLI_USAGE;
}

static const cmd_group *find_group(const char *name)
{
    for (size_t i = 0; i < NGROUPS; i++)
        if (strcmp(groups[i].name, name) == 0)
            return &groups[i];
    return NULL;
}

static const cli_cmd *find_cmd(const cli_cmd *cmds, const char *verb)
{
    for (const cli_cmd *c = cmds; c->verb; c++)
        if (strcmp(c->verb, verb) == 0)
            return c;
    return NULL;
}

/* 1 if name is one of the space-separated words in list. */
static int word_in(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return 1;
    return 0;
}

/* The first word of the usage arguments ("NAME", "ID|NAME") for messages. */
static void first_arg_name(const cli_cmd *cmd, char *out, size_t cap)
{
    size_t len = strcspn(cmd->args, " [");
    if (len == 0 || len >= cap)
        len = 0;
    memcpy(out, len ? cmd->args : "argument", len ? len : 9);
    out[len ? len : 8] = '\0';
}

static int check_args(cli_ctx *c, const cli_args *a, int words)
{
    const cli_cmd *cmd = c->cmd;
    char name[64];
    for (int i = 0; i < a->nopts; i++)
        if (!cli_opt_global(a->opts[i].name) && !word_in(cmd->opts, a->opts[i].name))
            return cli_usage_error(c, "option --%s does not apply to this command",
                                   a->opts[i].name);
    int n = a->npos - words;
    if (n < cmd->min_pos) {
        first_arg_name(cmd, name, sizeof(name));
        return cli_usage_error(c, "missing %s", name);
    }
    if (n > cmd->max_pos)
        return cli_usage_error(c, "unexpected argument \"%s\"", a->pos[words + cmd->max_pos]);
    for (int i = words; i < a->npos; i++)
        if (a->pos[i][0] == '\0')
            return cli_usage_error(c, "empty argument");
    return CLI_OK;
}

static int setup_ctx(cli_ctx *c, const cli_args *a)
{
    const char *t = cli_opt_get(a, "timeout");
    long ms = 0;
    c->controller = cli_opt_get(a, "controller");
    if (c->controller == NULL)
        c->controller = getenv("WEFT_CONTROLLER");
    c->identity_path = cli_opt_get(a, "identity");
    if (c->identity_path == NULL)
        c->identity_path = getenv("WEFT_IDENTITY");
    c->json = cli_opt_has(a, "json");
    if (t != NULL && (cli_parse_uint(t, 3600 * 1000, &ms) < 0 || ms == 0))
        return cli_usage_error(c, "--timeout wants milliseconds between 1 and 3600000, not \"%s\"",
                               t);
    c->timeout_ms = (int)ms;
    return CLI_OK;
}

/* Runs the command named by a->pos[0..words). */
static int run_cmd(cli_ctx *c, const cli_args *a, const cli_cmd *cmd, int words)
{
    cli_args shifted = *a;
    c->cmd = cmd;
    if (cli_opt_has(a, "help")) {
        cli_print_cmd_help(stdout, cmd);
        return CLI_OK;
    }
    int rc = check_args(c, a, words);
    if (rc == CLI_OK)
        rc = setup_ctx(c, a);
    if (rc != CLI_OK)
        return rc;
    /* Commands see only their own arguments. */
    memmove(shifted.pos, a->pos + words, sizeof(shifted.pos[0]) * (size_t)(a->npos - words));
    shifted.npos = a->npos - words;
    return cmd->run(c, &shifted);
}

static int dispatch(cli_ctx *c, const cli_args *a)
{
    int help = cli_opt_has(a, "help");
    if (a->npos == 0) {
        if (help) {
            print_top_help(stdout);
            return CLI_OK;
        }
        return cli_usage_error(c, "missing command");
    }
    const cli_cmd *top = find_cmd(top_cmds, a->pos[0]);
    if (top != NULL)
        return run_cmd(c, a, top, 1);
    const cmd_group *g = find_group(a->pos[0]);
    if (g == NULL)
        return cli_usage_error(c, "unknown command \"%s\"", a->pos[0]);
    if (a->npos == 1 && help) {
        print_group_help(stdout, g);
        return CLI_OK;
    }
    const cli_cmd *cmd = a->npos > 1 ? find_cmd(g->cmds, a->pos[1]) : NULL;
    if (cmd == NULL) {
        if (a->npos == 1)
            fprintf(stderr, "weft: missing %s command\n", g->name);
        else
            fprintf(stderr, "weft: unknown command \"%s %s\"\n", g->name, a->pos[1]);
        print_group_help(stderr, g);
        return CLI_USAGE;
    }
    return run_cmd(c, a, cmd, 2);
}

int main(int argc, char **argv)
{
    cli_args a;
    cli_ctx c;
    char err[256];
    memset(&c, 0, sizeof(c));
    if (cli_args_parse(argc, argv, &a, err, sizeof(err)) < 0)
        return cli_usage_error(&c, "%s", err);
    /* "weft help identity create" is "weft identity create --help". */
    if (a.npos > 0 && strcmp(a.pos[0], "help") == 0) {
        memmove(a.pos, a.pos + 1, sizeof(a.pos[0]) * (size_t)(a.npos - 1));
        a.npos--;
        if (a.nopts < CLI_MAX_OPTS)
            a.opts[a.nopts++] = (cli_opt){"help", NULL};
    }
    int rc = dispatch(&c, &a);
    cli_disconnect(&c);
    if (fflush(stdout) != 0 && rc == CLI_OK)
        rc = cli_fail("cannot write the output; check the disk or the pipe");
    return rc;
}

static int cmd_version(cli_ctx *c, const cli_args *a)
{
    json_t *resp = NULL;
    if (!c->json)
        printf("weft %s\n", WEFT_VERSION_STRING);
    if (c->identity_path == NULL && c->controller == NULL && !c->json)
        return CLI_OK; /* nothing to ask: only the local version */
    int rc = cli_call(c, "GET", "/v1/version", NULL, &resp);
    if (rc == CLI_OK && !c->json) {
        json_t *d = json_object_get(resp, "data");
        const json_t *obj = json_is_object(d) ? d : resp;
        printf("controller %s: ", c->base_url);
        char *s = cli_json_text(json_object_get(obj, "version"));
        printf("%s\n", s ? s : "?");
        free(s);
    }
    json_decref(resp);
    return rc;
}
