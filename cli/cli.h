/* weft CLI internals: argument parsing (args.c), the controller client
 * (client.c), output formatting (table.c) and one file per resource
 * (cmd_*.c). Every command returns the process exit status:
 * 0 success, 1 error (already reported on stderr), 2 usage error. */
#ifndef WEFT_CLI_H
#define WEFT_CLI_H

#include <jansson.h>
#include <stdio.h>

#include "proto/idfile.h"

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

#define CLI_MAX_POS  8
#define CLI_MAX_OPTS 64

typedef struct {
    const char *name;  /* without the leading "--" */
    const char *value; /* NULL for flags */
} cli_opt;

typedef struct {
    const char *pos[CLI_MAX_POS];
    int npos;
    cli_opt opts[CLI_MAX_OPTS];
    int nopts;
} cli_args;

struct cli_ctx;

typedef struct cli_cmd {
    const char *group;    /* "identity", or NULL for top-level commands */
    const char *verb;     /* "create" */
    const char *args;     /* usage after the words: "NAME [--role R]..." */
    const char *summary;  /* one line for the command list */
    const char *help;     /* option descriptions, or NULL */
    const char *opts;     /* allowed command options, space separated: "role binding out" */
    int min_pos, max_pos; /* positional arguments after the command words */
    int (*run)(struct cli_ctx *c, const cli_args *a);
} cli_cmd;

typedef struct cli_ctx {
    const cli_cmd *cmd;
    const char *controller;    /* --controller / WEFT_CONTROLLER, or NULL */
    const char *identity_path; /* --identity / WEFT_IDENTITY, or NULL */
    int json;
    int timeout_ms;
    pr_idfile id;
    int loaded;
    char base_url[256];
} cli_ctx;

/* ---- args.c ---- */
/* Splits argv into words and options; options may appear anywhere.
 * On a usage error writes a sentence into err and returns -1. */
int cli_args_parse(int argc, char **argv, cli_args *a, char *err, size_t errcap);
const char *cli_opt_get(const cli_args *a, const char *name);
int cli_opt_has(const cli_args *a, const char *name);
/* Iterates over the values of a repeatable option: *i starts at 0. */
const char *cli_opt_next(const cli_args *a, const char *name, int *i);
/* 1 if the option is global (valid on every command). */
int cli_opt_global(const char *name);
/* Collects every value of a repeatable option, also split at commas, into a
 * JSON array of strings; empty items are a usage error. */
int cli_opt_list(const cli_args *a, const char *name, json_t **out, char *err, size_t errcap);
int cli_parse_uint(const char *s, long max, long *out);

/* ---- weft.c ---- */
int cli_usage_error(const cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_print_cmd_help(FILE *f, const cli_cmd *cmd);

/* ---- client.c ---- */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Loads the admin identity and works out the controller URL (prints why not). */
int cli_connect(cli_ctx *c);
void cli_disconnect(cli_ctx *c);
/* One API call. body may be NULL. On HTTP errors prints the API's message and
 * returns CLI_ERR. With --json the raw response body goes to stdout.
 * *out is the parsed body (NULL for 204); the caller decrefs it. */
int cli_call(cli_ctx *c, const char *method, const char *path, json_t *body, json_t **out);
/* Percent-encodes s for use as one path segment or query value. */
int cli_url_escape(const char *s, char *out, size_t cap);
/* "/v1/<coll>/<escaped ref><suffix>" */
int cli_ref_path(const char *coll, const char *ref, const char *suffix, char *out, size_t cap);

/* ---- table.c ---- */
typedef struct {
    const char *header;
    const char *key;
} cli_col;

/* Display text of a JSON value (arrays comma-joined, booleans yes/no, null "-"),
 * control characters replaced; malloc'd. */
char *cli_json_text(const json_t *v);
void cli_table_print(FILE *f, const cli_col *cols, size_t ncols, const json_t *rows);
/* "key: value" lines, aligned, in the object's order. */
void cli_object_print(FILE *f, const json_t *obj);
/* Prints a list response ({"data":[...],"meta":{...}}) as a table. */
int cli_list_print(const cli_ctx *c, const json_t *resp, const cli_col *cols, size_t ncols);
/* Prints {"data":{...}} as key: value lines. */
int cli_show_print(const cli_ctx *c, const json_t *resp);
const char *cli_str(const json_t *obj, const char *key); /* "" when missing */

/* ---- shared command helpers ---- */
int cli_generic_list(cli_ctx *c, const cli_args *a, const char *coll, const cli_col *cols,
                     size_t ncols);
int cli_generic_show(cli_ctx *c, const cli_args *a, const char *coll);
int cli_generic_delete(cli_ctx *c, const cli_args *a, const char *coll, const char *what);
int cli_write_token(cli_ctx *c, const json_t *resp, const char *what, const char *out_path);

#define CLI_REF_ARG "ID|NAME"
#define CLI_LIST_HELP                                                                              \
    "  --limit N          at most N records (controller default 100)\n"                            \
    "  --offset N         skip the first N records\n"                                              \
    "  --name FILTER      exact name, or a prefix ending in '*'\n"
/* Roles given with --role: plain names, repeated or comma-separated. */
int cli_roles_arg(cli_ctx *c, const cli_args *a, json_t **roles);

/* ---- cmd_*.c: command tables ---- */
extern const cli_cmd cli_identity_cmds[];
extern const cli_cmd cli_service_cmds[];
extern const cli_cmd cli_policy_cmds[];
extern const cli_cmd cli_router_cmds[];
extern const cli_cmd cli_ca_cmds[];
extern const cli_cmd cli_credential_cmds[];
extern const cli_cmd cli_anomaly_cmds[];

#endif
