/* Command-line splitting for weft: words and options in any order
 * ("weft --json identity list" and "weft identity list --json" are the same),
 * "--opt value" or "--opt=value", "--" ends the options. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
    const char *name;
    int has_value;
    int global;
} optdef;

/* Every option any command knows; each command then says which of the
 * non-global ones it accepts. One table keeps arity unambiguous. */
static const optdef optdefs[] = {
    {"controller", 1, 1}, {"identity", 1, 1},  {"json", 0, 1},     {"help", 0, 1},
    {"timeout", 1, 1},    {"role", 1, 0},      {"binding", 1, 0},  {"out", 1, 0},
    {"admin", 0, 0},      {"token-ttl", 1, 0}, {"limit", 1, 0},    {"offset", 1, 0},
    {"name", 1, 0},       {"intercept", 1, 0}, {"host", 1, 0},     {"type", 1, 0},
    {"identities", 1, 0}, {"services", 1, 0},  {"routers", 1, 0},  {"semantic", 1, 0},
    {"hosted-by", 1, 0},
    {"multipath", 1, 0},
    {"cert", 1, 0},       {"key", 1, 0},       {"auto-enroll", 0, 0}, {"roles", 1, 0},
    {"identity-name-template", 1, 0},          {"crl", 1, 0},      {"file", 1, 0},
    {"for-identity", 1, 0},
    {"state", 1, 0},
    {"time", 1, 0},       {"conn-rate", 1, 0}, {"bandwidth", 1, 0}, {"quota", 1, 0},
    {"max-circuits", 1, 0}, {"action", 1, 0},  {"url", 1, 0},      {"follow", 0, 0},
    {"after", 1, 0},      {"ca", 1, 0},        {"tz", 1, 0},       {"window", 1, 0},
    {"learn", 1, 0},      {"factor", 1, 0},    {"bytes-factor", 1, 0}, {"min-bytes", 1, 0},
    {"hours-learn", 1, 0},
    {"no-ca", 0, 0},
};

static const optdef *optdef_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++)
        if (strlen(optdefs[i].name) == len && memcmp(optdefs[i].name, name, len) == 0)
            return &optdefs[i];
    return NULL;
}

int cli_opt_global(const char *name)
{
    const optdef *d = optdef_find(name, strlen(name));
    return d != NULL && d->global;
}

static int usage(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return -1;
}

static int add_opt(cli_args *a, const char *name, const char *value, char *err, size_t errcap)
{
    if (a->nopts >= CLI_MAX_OPTS)
        return usage(err, errcap, "too many options");
    a->opts[a->nopts].name = name;
    a->opts[a->nopts].value = value;
    a->nopts++;
    return 0;
}

/* Handles argv[*i], a "--name[=value]" or "-h"; may consume the next word. */
static int parse_long(int argc, char **argv, int *i, cli_args *a, char *err, size_t errcap)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0)
        return add_opt(a, "help", NULL, err, errcap);
    if (arg[1] != '-')
        return usage(err, errcap, "unknown option %s", arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const optdef *d = optdef_find(name, len);
    if (d == NULL)
        return usage(err, errcap, "unknown option --%.*s", (int)len, name);
    if (!d->has_value) {
        if (eq)
            return usage(err, errcap, "option --%s takes no value", d->name);
        return add_opt(a, d->name, NULL, err, errcap);
    }
    if (eq)
        return add_opt(a, d->name, eq + 1, err, errcap);
    if (*i + 1 >= argc)
        return usage(err, errcap, "option --%s needs a value", d->name);
    (*i)++;
    return add_opt(a, d->name, argv[*i], err, errcap);
}

int cli_args_parse(int argc, char **argv, cli_args *a, char *err, size_t errcap)
{
    int only_words = 0;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_words && strcmp(arg, "--") == 0) {
            only_words = 1;
        } else if (!only_words && arg[0] == '-' && arg[1] != '\0') {
            if (parse_long(argc, argv, &i, a, err, errcap) < 0)
                return -1;
        } else {
            if (a->npos >= CLI_MAX_POS)
                return usage(err, errcap, "too many arguments");
            a->pos[a->npos++] = arg;
        }
    }
    return 0;
}

const char *cli_opt_get(const cli_args *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, name) == 0)
            v = a->opts[i].value; /* the last one wins */
    return v;
}

int cli_opt_has(const cli_args *a, const char *name)
{
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, name) == 0)
            return 1;
    return 0;
}

const char *cli_opt_next(const cli_args *a, const char *name, int *i)
{
    for (; *i < a->nopts; (*i)++) {
        if (strcmp(a->opts[*i].name, name) == 0)
            return a->opts[(*i)++].value;
    }
    return NULL;
}

/* Appends the comma-separated items of s to arr. */
static int split_into(json_t *arr, const char *s, const char *name, char *err, size_t errcap)
{
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (len == 0)
            return usage(err, errcap, "empty item in --%s", name);
        if (json_array_append_new(arr, json_stringn(s, len)) < 0)
            return usage(err, errcap, "invalid text in --%s (not UTF-8?)", name);
        if (comma == NULL)
            return 0;
        s = comma + 1;
    }
}

int cli_opt_list(const cli_args *a, const char *name, json_t **out, char *err, size_t errcap)
{
    json_t *arr = json_array();
    const char *v;
    int i = 0;
    if (arr == NULL)
        return usage(err, errcap, "out of memory");
    while ((v = cli_opt_next(a, name, &i)) != NULL) {
        if (split_into(arr, v, name, err, errcap) < 0) {
            json_decref(arr);
            return -1;
        }
    }
    *out = arr;
    return 0;
}

int cli_parse_uint(const char *s, long max, long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}
