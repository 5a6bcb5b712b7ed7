/* weft-edge: the device agent. Subcommands live in a table; adding one is a
 * function and a row. Exit status: 0 ok, 1 error, 2 usage error. */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/edge.h"
#include "proto/log.h"

#define WEFT_EDGE_VERSION "0.1.0"

static int cmd_version(const edge_cmd *cmd, int argc, char **argv);
static int cmd_run(const edge_cmd *cmd, int argc, char **argv);
static int cmd_enroll(const edge_cmd *cmd, int argc, char **argv);

static const edge_cmd cmds[] = {
    {"enroll",
     "(TOKEN [--cert FACTORY.pem --key FACTORY.key] |\n"
     "       --cert FACTORY.pem --key FACTORY.key --controller URL --ca-fingerprint HEX)\n"
     "       --out ID_FILE [--imei IMEI] [--iccid ICCID] [--force] [--timeout MS]",
     "enrol this device with a one-time token or a factory certificate",
     "  TOKEN              the token text, a file holding it, or - for stdin\n"
     "  --cert FACTORY.pem a certificate from a manufacturing CA registered with the\n"
     "                     controller (with --key, its key; no token needed, or with\n"
     "                     a token for an identity created with weft identity --ca)\n"
     "  --controller URL   https://HOST:PORT of the controller (with --cert)\n"
     "  --ca-fingerprint HEX SHA-256 of the network CA, to pin it (with --cert)\n"
     "  --out ID_FILE      where to write the identity file (mode 0600)\n"
     "  --imei IMEI        the modem's IMEI, for hardware binding\n"
     "  --iccid ICCID      the SIM's ICCID, for hardware binding\n"
     "  --force            replace ID_FILE if it exists\n"
     "  --timeout MS       give up on the controller after MS milliseconds (default 15000)\n",
     cmd_enroll},
    {"run",
     "--identity ID_FILE [--log-level L] [--imei IMEI] [--iccid ICCID] [--refresh S]\n"
     "       [--credentials-dir DIR] [--keepalive-ms MS] [--idle-dead-ms MS]\n"
     "       [--dead-after-ms MS] [--dead-max-ms MS]",
     "connect to the network: intercept the services it may dial, host those it may bind",
     "  --identity ID_FILE the identity file written by enroll\n"
     "  --log-level L      debug, info, warn or error (default info)\n"
     "  --imei IMEI        the modem's IMEI, when the identity is bound to hardware\n"
     "  --iccid ICCID      the SIM's ICCID, when the identity is bound to hardware\n"
     "  --refresh S        fetch services at least every S seconds (default 60)\n"
     "  --credentials-dir DIR keep the enterprise credentials in DIR/CREDENTIAL/FILE\n"
     "                     (0600), fetched at start and every refresh\n"
     "  --keepalive-ms MS  ping each router every MS (default 5000; 1000 to 600000)\n"
     "  --idle-dead-ms MS  drop a session carrying nothing after MS without a byte from\n"
     "                     its router (default 45000; two keepalives to 3600000)\n"
     "  --dead-after-ms MS drop a session carrying traffic after MS of silence (or 8\n"
     "                     round trips when longer) once the other router answered a\n"
     "                     probe: its circuits move there (default 1500; 1000 to 60000)\n"
     "  --dead-max-ms MS   however long the round trip, no later than MS (default\n"
     "                     10000; --dead-after-ms to --idle-dead-ms)\n",
     cmd_run},
    {"credentials", "--identity ID_FILE --dir DIR [--timeout MS]",
     "fetch the enterprise credentials for this identity; write each file 0600 under DIR",
     "  --identity ID_FILE the identity file written by enroll\n"
     "  --dir DIR          where to write them: DIR/CREDENTIAL/FILE (directories 0700)\n",
     edge_cmd_credentials},
    {"renew", "--identity ID_FILE [--force] [--timeout MS]",
     "renew the certificate when a third of its life remains (new key, same identity)",
     "  --identity ID_FILE the identity file, rewritten atomically when renewed\n"
     "  --force            renew now, whatever is left\n",
     edge_cmd_renew},
    {"version", "", "print the version", NULL, cmd_version},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

void edge_print_cmd_help(FILE *f, const edge_cmd *cmd)
{
    fprintf(f, "usage: weft-edge %s%s%s\n\n%c%s.\n", cmd->name, cmd->usage[0] ? " " : "",
            cmd->usage, toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
    if (cmd->help != NULL)
        fprintf(f, "\nOptions:\n%s", cmd->help);
    fprintf(f, "  --help, -h         show this help\n");
}

static void print_help(FILE *f)
{
    fprintf(f, "usage: weft-edge COMMAND [options]\n\nThe weft device agent.\n\nCommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\nRun 'weft-edge COMMAND --help' for a command's options.\n");
}

int edge_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("weft-edge: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EDGE_ERR;
}

int edge_usage_error(const edge_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("weft-edge: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd != NULL)
        fprintf(stderr, "usage: weft-edge %s %s\nRun 'weft-edge %s --help' for more.\n", cmd->name,
                cmd->usage, cmd->name);
    else
        fprintf(stderr, "usage: weft-edge COMMAND [options]\nRun 'weft-edge --help' for the "
                        "commands.\n");
    return EDGE_USAGE;
}

/* Only --help: for commands without options. */
static int no_options(const edge_cmd *cmd, int argc, char **argv, int *help)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            *help = 1;
        else
            return edge_usage_error(cmd, "unexpected argument \"%s\"", argv[i]);
    }
    return EDGE_OK;
}

static int cmd_version(const edge_cmd *cmd, int argc, char **argv)
{
    int help = 0, rc = no_options(cmd, argc, argv, &help);
    if (rc != EDGE_OK)
        return rc;
    if (help)
        edge_print_cmd_help(stdout, cmd);
    else
        printf("weft-edge %s\n", WEFT_EDGE_VERSION);
    return EDGE_OK;
}

/* A factory certificate (--cert) replaces the token. */
static int cmd_enroll(const edge_cmd *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--cert") == 0 || strncmp(argv[i], "--cert=", 7) == 0)
            return edge_cmd_enroll_factory(cmd, argc, argv);
    return edge_cmd_enroll(cmd, argc, argv);
}

static int parse_refresh(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || *end != '\0' || v < 1 || v > 86400)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Milliseconds: 1 to 3600000 here; libweft checks the bounds of each. */
static int parse_ms(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || *end != '\0' || s[0] == '-' || v < 1 || v > 3600000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* libweft names the options as weft_options does (dead_after_ms); the flags
 * are the same names with dashes (--dead-after-ms). */
static void flag_names(const char *in, char *out, size_t cap)
{
    size_t o = 0, n;

    while (*in != '\0' && o + 1 < cap) {
        n = strspn(in, "abcdefghijklmnopqrstuvwxyz_");
        if (n > 0 && memchr(in, '_', n) != NULL && o + n + 3 < cap) {
            out[o++] = '-';
            out[o++] = '-';
            for (size_t i = 0; i < n; i++)
                out[o++] = in[i] == '_' ? '-' : in[i];
            in += n;
            continue;
        }
        for (n = n ? n : 1; n > 0 && *in != '\0' && o + 1 < cap; n--)
            out[o++] = *in++;
    }
    out[o] = '\0';
}

static int check_liveness(const edge_cmd *cmd, const edge_agent_cfg *cfg)
{
    weft_options opt = {.keepalive_ms = cfg->keepalive_ms,
                        .idle_dead_ms = cfg->idle_dead_ms,
                        .dead_after_ms = cfg->dead_after_ms,
                        .dead_max_ms = cfg->dead_max_ms};
    char err[256], msg[320];

    if (weft_options_check(&opt, err, sizeof(err)) == 0)
        return EDGE_OK;
    flag_names(err, msg, sizeof(msg));
    return edge_usage_error(cmd, "%s", msg);
}

static int run_flag_ms(const edge_cmd *cmd, int ch, const char *arg, edge_agent_cfg *cfg)
{
    static const char *const names[] = {"--keepalive-ms", "--idle-dead-ms", "--dead-after-ms",
                                        "--dead-max-ms"};
    unsigned *dst[] = {&cfg->keepalive_ms, &cfg->idle_dead_ms, &cfg->dead_after_ms,
                       &cfg->dead_max_ms};
    int i = ch - 'K';

    if (parse_ms(arg, dst[i]) < 0)
        return edge_usage_error(cmd, "%s must be a number of milliseconds, 1 to 3600000", names[i]);
    return EDGE_OK;
}

/* Runs until SIGINT or SIGTERM; logs go to stderr. */
static int run_agent(const edge_agent_cfg *cfg, int level)
{
    int r;

    pr_log_init("edge", level);
    if ((r = edge_agent_run(cfg)) < 0)
        return edge_fail("cannot start: %s", weft_strerror(r));
    return EDGE_OK;
}

static int cmd_run(const edge_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"identity", required_argument, NULL, 'i'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"imei", required_argument, NULL, 'm'},
                                         {"iccid", required_argument, NULL, 'c'},
                                         {"refresh", required_argument, NULL, 'r'},
                                         {"credentials-dir", required_argument, NULL, 'd'},
                                         {"keepalive-ms", required_argument, NULL, 'K'},
                                         {"idle-dead-ms", required_argument, NULL, 'L'},
                                         {"dead-after-ms", required_argument, NULL, 'M'},
                                         {"dead-max-ms", required_argument, NULL, 'N'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    edge_agent_cfg cfg = {0};
    int ch, rc, level = PR_LOG_INFO;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            edge_print_cmd_help(stdout, cmd);
            return EDGE_OK;
        } else if (ch == 'i') {
            cfg.identity = optarg;
        } else if (ch == 'm') {
            cfg.imei = optarg;
        } else if (ch == 'c') {
            cfg.iccid = optarg;
        } else if (ch == 'd') {
            cfg.creds_dir = optarg;
        } else if (ch == 'r') {
            if (parse_refresh(optarg, &cfg.refresh_s) < 0)
                return edge_usage_error(cmd, "--refresh must be a number of seconds, 1 to 86400");
        } else if (ch == 'l') {
            if ((level = pr_log_level_parse(optarg)) < 0)
                return edge_usage_error(cmd, "--log-level must be debug, info, warn or error");
        } else if (ch >= 'K' && ch <= 'N') {
            if ((rc = run_flag_ms(cmd, ch, optarg, &cfg)) != EDGE_OK)
                return rc;
        } else {
            return edge_usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return edge_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (cfg.identity == NULL)
        return edge_usage_error(cmd, "missing --identity ID_FILE");
    if ((rc = check_liveness(cmd, &cfg)) != EDGE_OK)
        return rc;
    return run_agent(&cfg, level);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return edge_usage_error(NULL, "missing command");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return EDGE_OK;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return cmds[i].run(&cmds[i], argc - 1, argv + 1);
    if (name[0] == '-')
        return edge_usage_error(NULL, "unknown option %s (options go after the command)", name);
    return edge_usage_error(NULL, "unknown command \"%s\"", name);
}
