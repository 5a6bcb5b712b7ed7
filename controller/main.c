/* weft-controller: init a network, run the REST API, print the route table.
 * Exit codes: 0 ok, 1 error (with a sentence on stderr saying what to do),
 * 2 usage. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "controller/circuits.h"
#include "controller/events.h"
#include "controller/control.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "controller/netmap.h"
#include "proto/addr.h"
#include "proto/idfile.h"
#include "proto/log.h"
#include "proto/tls.h"
#include "weft/errors.h"

static const char usage_main[] =
    "usage: weft-controller COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  init    create a new network (CA, server certificate, store, admin identity)\n"
    "  run     serve the REST API\n"
    "  routes  print the REST API's route table\n"
    "  ca      rotate the issuing intermediate CA ('ca rotate --dir DIR')\n"
    "\n"
    "Run 'weft-controller COMMAND --help' for a command's options.\n";

static const char usage_init[] =
    "usage: weft-controller init --dir DIR [--listen HOST:PORT] [--advertise HOST:PORT] [--name "
    "NAME]\n"
    "                            [--control-listen HOST:PORT]\n"
    "\n"
    "Creates a new weft network in DIR (created 0700; must not hold a network yet).\n"
    "  --dir DIR             data directory\n"
    "  --listen HOST:PORT    address the API listens on (default 127.0.0.1:1280)\n"
    "  --advertise HOST:PORT address devices and the CLI use to reach the controller,\n"
    "                        put in enrolment tokens (default: the listen address;\n"
    "                        needed when listening on 0.0.0.0 or ::)\n"
    "  --name NAME           network name and trust domain, [a-z0-9-] (default weft)\n"
    "  --control-listen HOST:PORT\n"
    "                        address routers' control channel connects to\n"
    "                        (default 127.0.0.1:1281)\n"
    "  --cert-ttl DURATION   lifetime of identity and router certificates, e.g. 30d,\n"
    "                        12h or 3600 (seconds); default 30d, at least 1h\n"
    "  --ca-passphrase-file FILE\n"
    "                        encrypt ca.key with the passphrase in FILE (or set\n"
    "                        WEFT_CA_PASSPHRASE); run then needs the same passphrase\n";

static const char usage_run[] =
    "usage: weft-controller run --dir DIR [--log-level debug|info|warn|error]\n"
    "                           [--metrics-listen HOST:PORT] [--ca-passphrase-file FILE]\n"
    "\n"
    "Serves the REST API and the routers' control channel of the network in DIR\n"
    "until SIGINT or SIGTERM.\n"
    "  --metrics-listen HOST:PORT\n"
    "                        also serve Prometheus metrics, plain HTTP GET /metrics,\n"
    "                        on HOST:PORT (keep it on a local or private address)\n"
    "  --ca-passphrase-file FILE\n"
    "                        passphrase of an encrypted ca.key (or WEFT_CA_PASSPHRASE)\n";

static const char usage_routes[] =
    "usage: weft-controller routes\n"
    "\n"
    "Prints the REST API's routes, one 'METHOD PATH-TEMPLATE' per line.\n";

/* ---- loading the controller ---- */

/* ---- run ---- */

typedef struct {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    ctl_http_server *http;
    ctl_control *control;
    ctl *c;
    int stopping;
    int pending; /* servers still stopping */
} runner;

static void on_server_stopped(void *arg)
{
    runner *r = arg;

    if (--r->pending > 0)
        return;
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    runner *r = h->data;

    if (r->stopping)
        return;
    r->stopping = 1;
    pr_info("shutdown", "signal=%s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    r->pending = 4;
    ctl_events_stop(r->c->events, on_server_stopped, r);
    ctl_metrics_stop(r->c->metrics, on_server_stopped, r);
    ctl_control_stop(r->control, on_server_stopped, r);
    ctl_http_server_stop(r->http, on_server_stopped, r);
}

static int make_tls(const ctl_config *cfg, const ctl *c, pr_tls_ctx **out, char *err, size_t errcap)
{
    char *cert = NULL, *key = NULL;
    int rc;

    if ((rc = ctl_read_pem(cfg->server_cert, &cert, err, errcap)) < 0 ||
        (rc = ctl_read_pem(cfg->server_key, &key, err, errcap)) < 0)
        goto out;
    /* Client certificates are asked for but optional: a device enrolling has none yet;
     * admin routes check for one themselves. */
    pr_tls_cfg tc = {.server = 1, .ca_pem = c->ca.cert_pem, .cert_pem = cert, .key_pem = key};
    if ((rc = pr_tls_ctx_new(&tc, out)) < 0)
        ctl_errf(err, errcap, "cannot set up TLS with %s (%s); check the certificate and key",
                 cfg->server_cert, weft_strerror(rc));
out:
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    free(cert);
    return rc;
}

/* The circuit view and the metrics counters, and the metrics server when asked for. */
static int start_views(uv_loop_t *loop, ctl *c, const char *metrics_listen, char *err,
                       size_t errcap)
{
    int rc;

    if ((rc = ctl_circuits_new(0, &c->circuits)) < 0 || (rc = ctl_metrics_new(&c->metrics)) < 0) {
        ctl_errf(err, errcap, "out of memory");
        return rc;
    }
    if ((rc = ctl_events_open(loop, c->cfg.dir, &c->events)) < 0) {
        ctl_errf(err, errcap, "cannot open the event store in %s; check its permissions",
                 c->cfg.dir);
        return rc;
    }
    if (metrics_listen && (rc = ctl_metrics_start(loop, c, metrics_listen)) < 0)
        ctl_errf(err, errcap,
                 "cannot serve metrics on %s (%s); is the port taken? Choose another "
                 "--metrics-listen",
                 metrics_listen, weft_strerror(rc));
    return rc;
}

static void free_views(ctl *c)
{
    ctl_events_close(c->events);
    c->events = NULL;
    ctl_circuits_free(c->circuits);
    c->circuits = NULL;
    ctl_metrics_free(c->metrics);
    c->metrics = NULL;
}

static int serve(ctl *c, pr_tls_ctx *tls, const char *metrics_listen, char *err, size_t errcap)
{
    runner r = {.c = c};
    int rc;

    uv_loop_init(&r.loop);
    if ((rc = start_views(&r.loop, c, metrics_listen, err, errcap)) < 0) {
        ctl_metrics_stop(c->metrics, NULL, NULL);
        goto out;
    }
    if ((rc = ctl_netmap_new(c->store, c->pk, &c->map)) < 0) {
        ctl_errf(err, errcap, "cannot build the network map from %s (%s); check the store",
                 c->cfg.db, weft_strerror(rc));
        goto out;
    }
    /* Renewal issues certificates of this lifetime at most: a deleted
     * identity's last one is expired by then. */
    ctl_netmap_set_revoke_ttl(c->map, c->cfg.cert_validity);
    rc = ctl_control_start(&r.loop, c, c->cfg.control_listen, &r.control);
    if (rc < 0) {
        ctl_errf(err, errcap,
                 "cannot listen for routers on %s (%s); is another controller running, or is "
                 "the port taken? Change 'control_listen' in %s/%s",
                 c->cfg.control_listen, weft_strerror(rc), c->cfg.dir, CTL_CONFIG_FILE);
        ctl_metrics_stop(c->metrics, NULL, NULL);
        goto out;
    }
    rc = ctl_http_server_start(&r.loop, tls, c->cfg.listen, ctl_api_handle, c, &r.http);
    if (rc < 0) {
        ctl_control_stop(r.control, NULL, NULL);
        ctl_metrics_stop(c->metrics, NULL, NULL);
        ctl_errf(err, errcap,
                 "cannot listen on %s (%s); is another controller running, or is the "
                 "port taken? Change 'listen' in %s/%s",
                 c->cfg.listen, weft_strerror(rc), c->cfg.dir, CTL_CONFIG_FILE);
        goto out;
    }
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    pr_info("listening", "addr=%s url=%s control=%s network=%s version=%s", c->cfg.listen,
            c->cfg.url, c->cfg.control, c->cfg.name, CTL_VERSION);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    pr_info("stopped", "network=%s", c->cfg.name);
out:
    uv_run(&r.loop, UV_RUN_NOWAIT); /* let pending close callbacks run */
    if (uv_loop_close(&r.loop) != 0)
        pr_warn("loop_busy", "hint=%s", pr_log_q("handles left open at exit"));
    ctl_netmap_free(c->map);
    c->map = NULL;
    free_views(c);
    return rc;
}

static int run(const char *dir, const char *level, const char *metrics_listen)
{
    char err[1024] = "";
    ctl_config cfg;
    ctl c;
    pr_tls_ctx *tls = NULL;
    int rc, lvl;

    if ((rc = ctl_config_load(&cfg, dir, err, sizeof(err))) < 0)
        goto fail;
    lvl = pr_log_level_parse(level ? level : cfg.log_level);
    if (lvl < 0) {
        fprintf(stderr, "weft-controller: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    pr_log_init("controller", lvl);
    if ((rc = ctl_open(&c, &cfg, err, sizeof(err))) < 0 ||
        (rc = make_tls(&cfg, &c, &tls, err, sizeof(err))) < 0 ||
        (rc = serve(&c, tls, metrics_listen, err, sizeof(err))) < 0) {
        pr_tls_ctx_free(tls);
        ctl_close(&c);
        goto fail;
    }
    pr_tls_ctx_free(tls);
    ctl_close(&c);
    return 0;
fail:
    fprintf(stderr, "weft-controller: %s\n", err[0] ? err : weft_strerror(rc));
    return 1;
}

/* ---- command line ---- */

/* Checked before init writes anything, so a typo leaves no half-made network. */
static int check_control(const char *control, char *err, size_t errcap)
{
    ctl_config cfg;

    if (ctl_config_defaults(&cfg, "/") < 0)
        return WEFT_EINVAL;
    return ctl_config_set_control(&cfg, control, err, errcap);
}

/* init writes the default control address; --control-listen replaces it. */
static int save_control(const char *dir, const char *control, char *err, size_t errcap)
{
    ctl_config cfg;
    int rc;

    if ((rc = ctl_config_load(&cfg, dir, err, errcap)) < 0 ||
        (rc = ctl_config_set_control(&cfg, control, err, errcap)) < 0)
        return rc;
    if ((rc = ctl_config_save(&cfg)) < 0)
        ctl_errf(err, errcap, "cannot write %s/%s (%s)", dir, CTL_CONFIG_FILE,
                 weft_strerror(rc));
    return rc;
}

/* "30d", "12h", "90m" or seconds; at least an hour, at most ten years. */
static int parse_ttl(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    long long unit = 1;

    if (end == s || v <= 0)
        return -1;
    if (*end == 'd')
        unit = 86400;
    else if (*end == 'h')
        unit = 3600;
    else if (*end == 'm')
        unit = 60;
    else if (*end != '\0' && *end != 's')
        return -1;
    if (*end != '\0' && end[1] != '\0')
        return -1;
    if (v > 10LL * 365 * 86400 / unit || v * unit < 3600)
        return -1;
    *out = v * unit;
    return 0;
}

/* init's passphrase: --ca-passphrase-file, else WEFT_CA_PASSPHRASE, else none. */
static int init_passphrase(const char *file, char **out, char *err, size_t errcap)
{
    const char *env = getenv(CTL_CA_PASSPHRASE_ENV);

    *out = NULL;
    if (file != NULL)
        return ctl_passphrase_read(file, out, err, errcap);
    if (env != NULL && env[0] != '\0' && (*out = strdup(env)) == NULL)
        return WEFT_ENOMEM;
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"advertise", required_argument, 0, 'a'},
                                         {"name", required_argument, 0, 'n'},
                                         {"control-listen", required_argument, 0, 'c'},
                                         {"cert-ttl", required_argument, 0, 'T'},
                                         {"ca-passphrase-file", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    ctl_init_opts o = {0};
    const char *control = NULL, *passfile = NULL;
    char *pass = NULL;
    int rc;
    char err[1024] = "";
    int ch;

    while ((ch = getopt_long(argc, argv, "d:l:a:n:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o.dir = optarg;
            break;
        case 'l':
            o.listen = optarg;
            break;
        case 'a':
            o.advertise = optarg;
            break;
        case 'n':
            o.name = optarg;
            break;
        case 'c':
            control = optarg;
            break;
        case 'T':
            if (parse_ttl(optarg, &o.cert_ttl) < 0) {
                fputs("weft-controller init: --cert-ttl wants a duration from 1h to 3650d, "
                      "e.g. 30d\n",
                      stderr);
                return 2;
            }
            break;
        case 'P':
            passfile = optarg;
            break;
        case 'h':
            fputs(usage_init, stdout);
            return 0;
        default:
            fputs(usage_init, stderr);
            return 2;
        }
    }
    if (o.dir == NULL || optind != argc) {
        fputs(o.dir ? "weft-controller init: unexpected argument\n"
                    : "weft-controller init: --dir DIR is required\n",
              stderr);
        fputs(usage_init, stderr);
        return 2;
    }
    pr_log_init("controller", PR_LOG_WARN);
    if (control && check_control(control, err, sizeof(err)) < 0) {
        fprintf(stderr, "weft-controller init: %s\n", err);
        return 2;
    }
    if (init_passphrase(passfile, &pass, err, sizeof(err)) < 0) {
        fprintf(stderr, "weft-controller init: %s\n", err);
        return 1;
    }
    o.ca_passphrase = pass;
    rc = ctl_init(&o, stdout, err, sizeof(err)) < 0 ||
         (control && save_control(o.dir, control, err, sizeof(err)) < 0);
    if (pass)
        sodium_memzero(pass, strlen(pass));
    free(pass);
    if (rc) {
        fprintf(stderr, "weft-controller init: %s\n", err);
        return 1;
    }
    return 0;
}

static int check_addr(const char *addr)
{
    struct sockaddr_storage ss;

    return pr_addr_resolve(addr, &ss);
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"log-level", required_argument, 0, 'L'},
                                         {"metrics-listen", required_argument, 0, 'M'},
                                         {"ca-passphrase-file", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *level = NULL, *metrics = NULL;
    int ch;

    while ((ch = getopt_long(argc, argv, "d:L:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            dir = optarg;
            break;
        case 'L':
            level = optarg;
            break;
        case 'M':
            metrics = optarg;
            break;
        case 'P':
            /* Read when ca.key turns out to be encrypted (controller/cakey.c). */
            setenv(CTL_CA_PASSPHRASE_FILE_ENV, optarg, 1);
            break;
        case 'h':
            fputs(usage_run, stdout);
            return 0;
        default:
            fputs(usage_run, stderr);
            return 2;
        }
    }
    if (dir == NULL || optind != argc) {
        fputs(dir ? "weft-controller run: unexpected argument\n"
                  : "weft-controller run: --dir DIR is required\n",
              stderr);
        fputs(usage_run, stderr);
        return 2;
    }
    if (level && pr_log_level_parse(level) < 0) {
        fputs("weft-controller run: --log-level must be debug, info, warn or error\n", stderr);
        return 2;
    }
    if (metrics && check_addr(metrics) < 0) {
        fprintf(stderr, "weft-controller run: --metrics-listen wants HOST:PORT, not '%s'\n",
                metrics);
        return 2;
    }
    return run(dir, level, metrics);
}

static int cmd_routes(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_routes, stdout);
        return 0;
    }
    if (argc != 1) {
        fputs(usage_routes, stderr);
        return 2;
    }
    ctl_api_print_routes(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("weft-controller %s\n", CTL_VERSION);
        return 0;
    }
    if (sodium_init() < 0) {
        fputs("weft-controller: libsodium failed to initialise\n", stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "routes") == 0)
        return cmd_routes(argc - 1, argv + 1);
    if (strcmp(argv[1], "ca") == 0)
        return ctl_cmd_ca(argc - 1, argv + 1);
    fprintf(stderr, "weft-controller: unknown command '%s'\n", argv[1]);
    fputs(usage_main, stderr);
    return 2;
}
