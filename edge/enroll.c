/* weft-edge enroll: reads the token (text, file or stdin), runs the
 * enrolment and writes the identity file with mode 0600. The output file is
 * checked before the token is spent, so a typo in --out never wastes it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edge/edge.h"
#include "proto/enroll.h"
#include "proto/jwt.h"
#include "weft/errors.h"

#define TOKEN_FILE_MAX (PR_JWT_MAX + 1024) /* a token plus white space */

typedef struct {
    const char *token_arg;
    const char *out;
    const char *imei;
    const char *iccid;
    int force;
    long timeout_ms;
} enroll_opts;

static int read_stdin(char **out)
{
    size_t len = 0;
    char *buf = malloc(TOKEN_FILE_MAX + 1);
    if (buf == NULL)
        return edge_fail("out of memory");
    while (len < TOKEN_FILE_MAX) {
        size_t n = fread(buf + len, 1, TOKEN_FILE_MAX - len, stdin);
        if (n == 0)
            break;
        len += n;
    }
    if (ferror(stdin) || (len == TOKEN_FILE_MAX && fgetc(stdin) != EOF)) {
        free(buf);
        return edge_fail("cannot read the token from stdin (error, or more than %d bytes); "
                         "pass the token file instead",
                         TOKEN_FILE_MAX);
    }
    buf[len] = '\0';
    *out = buf;
    return EDGE_OK;
}

/* A JWT is three base64url parts; anything else on the command line is a path. */
static int looks_like_jwt(const char *s)
{
    int dots = 0;
    for (; *s; s++) {
        if (*s == '.')
            dots++;
        else if (!(*s == '-' || *s == '_' || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
                   (*s >= 'A' && *s <= 'Z')))
            return 0;
    }
    return dots == 2;
}

static int load_token(const char *arg, char **out)
{
    struct stat st;
    size_t len;
    if (strcmp(arg, "-") == 0)
        return read_stdin(out);
    if (stat(arg, &st) != 0 && looks_like_jwt(arg)) {
        if ((*out = strdup(arg)) == NULL)
            return edge_fail("out of memory");
        return EDGE_OK;
    }
    if (stat(arg, &st) != 0)
        return edge_fail("TOKEN \"%.40s\" is neither a token nor a readable file (%s); pass the "
                         "token text or the path of the file the administrator gave you",
                         arg, strerror(errno));
    int rc = pr_read_file(arg, TOKEN_FILE_MAX, out, &len);
    if (rc == WEFT_ETOOBIG)
        return edge_fail("token file %s is too large to hold a token; check the path", arg);
    if (rc < 0)
        return edge_fail("cannot read token file %s: %s; check its permissions", arg,
                         weft_strerror(rc));
    return EDGE_OK;
}

static int parse_opts(const edge_cmd *cmd, int argc, char **argv, enroll_opts *o)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"imei", required_argument, NULL, 'I'},
                                         {"iccid", required_argument, NULL, 'C'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    int ch;
    char *end;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            edge_print_cmd_help(stdout, cmd);
            return -1;
        case 'o':
            o->out = optarg;
            break;
        case 'I':
            o->imei = optarg;
            break;
        case 'C':
            o->iccid = optarg;
            break;
        case 'f':
            o->force = 1;
            break;
        case 't':
            o->timeout_ms = strtol(optarg, &end, 10);
            if (*end != '\0' || o->timeout_ms <= 0 || o->timeout_ms > 3600000)
                return edge_usage_error(cmd, "--timeout wants milliseconds, not \"%s\"", optarg);
            break;
        case ':':
            return edge_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        default:
            return edge_usage_error(cmd, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return edge_usage_error(cmd, "missing TOKEN");
    if (optind + 1 < argc)
        return edge_usage_error(cmd, "unexpected argument \"%s\"", argv[optind + 1]);
    o->token_arg = argv[optind];
    if (o->out == NULL || o->out[0] == '\0')
        return edge_usage_error(cmd, "missing --out ID_FILE");
    return EDGE_OK;
}

static int check_hw_id(const edge_cmd *cmd, const char *what, const char *v)
{
    size_t n = strspn(v, "0123456789ABCDEFabcdef-");
    if (v[n] != '\0' || n == 0 || n > 64)
        return edge_usage_error(cmd, "--%s wants 1 to 64 digits, not \"%s\"", what, v);
    return EDGE_OK;
}

void edge_enroll_busy(unsigned attempt, unsigned tries, unsigned retry_after_s, unsigned wait_ms,
                      void *data)
{
    char ra[32] = "";

    (void)data;
    if (retry_after_s)
        snprintf(ra, sizeof(ra), ", Retry-After %u s", retry_after_s);
    fprintf(stderr,
            "weft-edge: the controller is busy admitting enrolments (HTTP 429%s); the token is "
            "not spent; retrying in %u.%u s (attempt %u of %u)\n",
            ra, wait_ms / 1000, wait_ms % 1000 / 100, attempt + 1, tries);
    fflush(stderr);
}

static int do_enroll(const enroll_opts *o, char *token)
{
    char err[768] = "";
    pr_idfile id;
    pr_enroll_req req = {.token = token,
                         .imei = o->imei,
                         .iccid = o->iccid,
                         .timeout_ms = (int)o->timeout_ms,
                         .busy = {.on_busy = edge_enroll_busy}};
    int rc = pr_enroll(&req, &id, err, sizeof(err));
    if (rc < 0)
        return edge_fail("%s", err[0] ? err : weft_strerror(rc));
    rc = pr_idfile_save(o->out, &id);
    if (rc < 0) {
        edge_fail("enrolled, but cannot write the identity file %s: %s; the token is spent: ask "
                  "the administrator for a new one and use a writable --out",
                  o->out, weft_strerror(rc));
    } else {
        printf("enrolled %s %s (id %s) in network %s; identity written to %s\n", id.kind, id.name,
               id.id, id.network, o->out);
    }
    pr_idfile_free(&id);
    return rc < 0 ? EDGE_ERR : EDGE_OK;
}

int edge_cmd_enroll(const edge_cmd *cmd, int argc, char **argv)
{
    enroll_opts o = {0};
    char *token = NULL;
    struct stat st;
    int rc = parse_opts(cmd, argc, argv, &o);
    if (rc != EDGE_OK)
        return rc < 0 ? EDGE_OK : rc; /* -1: help was printed */
    if ((o.imei && (rc = check_hw_id(cmd, "imei", o.imei)) != EDGE_OK) ||
        (o.iccid && (rc = check_hw_id(cmd, "iccid", o.iccid)) != EDGE_OK))
        return rc;
    if (!o.force && stat(o.out, &st) == 0)
        return edge_fail("%s already exists; choose another --out, or add --force to replace "
                         "it",
                         o.out);
    if ((rc = load_token(o.token_arg, &token)) != EDGE_OK)
        return rc;
    rc = do_enroll(&o, token);
    free(token);
    return rc;
}
