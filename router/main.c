/* weft-router: enroll (one-time token -> DIR/identity.json + DIR/router.json)
 * and run (edge listener, control channel, forwarding). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/enroll.h"
#include "proto/idfile.h"
#include "proto/jwt.h"
#include "proto/log.h"
#include "router/renew.h"
#include "router/admit.h"
#include "router/enforce.h"
#include "router/router.h"
#include "weft/errors.h"

#define CONF_MAX 65536

static const char usage[] =
    "usage: weft-router enroll TOKEN --dir DIR --edge-listen HOST:PORT --link-listen HOST:PORT\n"
    "       weft-router run --dir DIR [--log-level debug|info|warn|error]\n"
    "                       [--metrics-listen HOST:PORT] [--renew-check SECONDS]\n"
    "                       [--renew-before SECONDS] [--admit-rate N] [--admit-burst N]\n"
    "       weft-router version\n";

typedef struct {
    const char *dir, *edge_listen, *link_listen, *log_level, *metrics_listen;
    const char *arg;
    const char *admit_rate, *admit_burst; /* new sessions per second (admit.h); NULL: config */
    long long renew_check, renew_before; /* seconds; 0: the defaults */
} opts;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "weft-router: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static int seconds(const char *s, long long min, long long max, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return WEFT_EINVAL;
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {{"dir", required_argument, NULL, 'd'},
                                       {"edge-listen", required_argument, NULL, 'e'},
                                       {"link-listen", required_argument, NULL, 'l'},
                                       {"log-level", required_argument, NULL, 'L'},
                                       {"metrics-listen", required_argument, NULL, 'm'},
                                       {"renew-check", required_argument, NULL, 'c'},
                                       {"renew-before", required_argument, NULL, 'b'},
                                       {"admit-rate", required_argument, NULL, 'r'},
                                       {"admit-burst", required_argument, NULL, 'B'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    int ch;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o->dir = optarg; break;
        case 'e': o->edge_listen = optarg; break;
        case 'l': o->link_listen = optarg; break;
        case 'L': o->log_level = optarg; break;
        case 'm': o->metrics_listen = optarg; break;
        case 'r': o->admit_rate = optarg; break;
        case 'B': o->admit_burst = optarg; break;
        case 'c':
            if (seconds(optarg, 1, 86400, &o->renew_check) < 0)
                return fail("--renew-check wants seconds from 1 to 86400, not \"%s\"", optarg);
            break;
        case 'b':
            if (seconds(optarg, 1, 10LL * 365 * 86400, &o->renew_before) < 0)
                return fail("--renew-before wants a number of seconds, not \"%s\"", optarg);
            break;
        case 'h': fputs(usage, stdout); exit(0);
        default: return fail("unknown option or missing value: %s\n%s", argv[optind - 1], usage);
        }
    }
    if (optind < argc)
        o->arg = argv[optind++];
    if (optind < argc)
        return fail("unexpected argument \"%s\"\n%s", argv[optind], usage);
    if (o->dir == NULL)
        return fail("missing --dir DIR\n%s", usage);
    return 0;
}

static void path_in(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int load_token(const char *arg, char **tok)
{
    struct stat st;
    size_t len;

    if (stat(arg, &st) != 0) {
        *tok = strdup(arg); /* not a file: the token text itself */
        return *tok ? 0 : WEFT_ENOMEM;
    }
    return pr_read_file(arg, PR_JWT_MAX + 1024, tok, &len);
}

static int save_conf(const char *dir, json_t *conf)
{
    char path[4096], *text = json_dumps(conf, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc;

    if (text == NULL)
        return WEFT_ENOMEM;
    path_in(dir, "router.json", path, sizeof(path));
    rc = pr_write_file_secure(path, text, strlen(text));
    free(text);
    return rc;
}

static int cmd_enroll(const opts *o)
{
    char path[4096], err[768] = "", *tok = NULL;
    pr_idfile id;
    json_t *extra;
    int rc;

    if (!o->arg || !o->edge_listen || !o->link_listen)
        return fail("enroll needs TOKEN, --edge-listen and --link-listen\n%s", usage);
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return fail("cannot create %s: %s", o->dir, strerror(errno));
    if (load_token(o->arg, &tok) < 0)
        return fail("cannot read the token %s; pass the token text or its file", o->arg);
    extra = json_pack("{s:s, s:s}", "edge_listen", o->edge_listen, "link_listen", o->link_listen);
    pr_enroll_req req = {.token = tok, .extra = extra, .timeout_ms = 15000};
    rc = pr_enroll(&req, &id, err, sizeof(err));
    json_decref(extra);
    free(tok);
    if (rc < 0)
        return fail("%s", err[0] ? err : weft_strerror(rc));
    path_in(o->dir, "identity.json", path, sizeof(path));
    rc = pr_idfile_save(path, &id);
    if (rc == 0) {
        json_t *conf = json_pack("{s:s, s:s}", "edge_listen", o->edge_listen, "link_listen",
                                 o->link_listen);
        rc = save_conf(o->dir, conf);
        json_decref(conf);
    }
    if (rc < 0)
        fail("enrolled, but cannot write to %s: %s; the token is spent, ask for a new one",
             o->dir, weft_strerror(rc));
    else
        printf("enrolled router %s (id %s) in network %s; files in %s\n", id.name, id.id,
               id.network, o->dir);
    pr_idfile_free(&id);
    return rc < 0 ? 1 : 0;
}

typedef struct {
    rt_router r;
    rt_renew renew;
    uv_signal_t sigint, sigterm, sighup;
} runner;

static void on_signal(uv_signal_t *s, int signum)
{
    runner *run = s->data;

    pr_info("stopping", "signal=%d", signum);
    uv_close((uv_handle_t *)&run->sigint, NULL);
    uv_close((uv_handle_t *)&run->sigterm, NULL);
    uv_close((uv_handle_t *)&run->sighup, NULL);
    rt_renew_stop(&run->renew);
    rt_router_close(&run->r);
}

/* SIGHUP: the identity file was renewed by someone else (weft-edge renew). */
static void on_hup(uv_signal_t *s, int signum)
{
    runner *run = s->data;

    (void)signum;
    rt_renew_reload(&run->renew);
}

/* The control address: asked of the controller at start, cached for when it is down. */
static int control_addr(const pr_idfile *id, json_t *conf, const char *dir, char *out, size_t cap)
{
    char err[512] = "";
    const char *cached = json_string_value(json_object_get(conf, "control"));

    if (rt_control_discover(id, out, cap, err, sizeof(err)) == 0) {
        if (!cached || strcmp(cached, out) != 0) {
            json_object_set_new(conf, "control", json_string(out));
            save_conf(dir, conf);
        }
        return 0;
    }
    if (cached == NULL) {
        pr_error("control_unknown", "reason=%s hint=%s", pr_log_q(err),
                 pr_log_q("start the controller once so the router can learn its control "
                          "address"));
        return WEFT_ENOTFOUND;
    }
    pr_warn("control_cached", "addr=%s reason=%s", cached, pr_log_q(err));
    snprintf(out, cap, "%s", cached);
    return 0;
}

static int run_loop(pr_idfile *id, json_t *conf, const opts *o)
{
    const char *dir = o->dir, *metrics = o->metrics_listen;
    static runner run;
    const char *edge = json_string_value(json_object_get(conf, "edge_listen"));
    rt_control_cfg cc = {.edge_listen = edge,
                         .link_listen = json_string_value(json_object_get(conf, "link_listen")),
                         .data_dir = dir};
    char ctl_addr[256];
    uv_loop_t *loop = uv_default_loop();
    int rc;

    if (edge == NULL)
        return fail("%s/router.json lacks edge_listen; enrol again or add it", dir);
    if ((rc = control_addr(id, conf, dir, ctl_addr, sizeof(ctl_addr))) < 0)
        return 1;
    cc.control_addr = ctl_addr;
    path_in(dir, "identity.json", run.renew.path, sizeof(run.renew.path));
    run.renew.check_ms = (uint64_t)o->renew_check * 1000;
    run.renew.before_s = o->renew_before;
    if ((rc = rt_router_init(&run.r, loop, id)) < 0)
        return fail("cannot start: %s", weft_strerror(rc));
    if (rt_admit_setup(&run.r, conf, o->admit_rate, o->admit_burst) < 0) {
        rt_router_free(&run.r);
        return fail("--admit-rate and --admit-burst (router.json admit_rate, admit_burst) want a "
                    "number of sessions per second from 0 (no limit) to 1000000");
    }
    if (rt_enforce_setup(&run.r, conf) < 0) {
        rt_router_free(&run.r);
        return fail("%s/router.json has a bad anomaly_* setting (logged above)", dir);
    }
    if ((rc = rt_router_listen_edge(&run.r, edge)) < 0 ||
        (cc.link_listen && cc.link_listen[0] &&
         (rc = rt_router_listen_link(&run.r, cc.link_listen)) < 0) ||
        (metrics && (rc = rt_metrics_listen(&run.r, metrics)) < 0) ||
        (rc = rt_control_start(&run.r, &cc)) < 0 || (rc = rt_renew_start(&run.renew, &run.r)) < 0) {
        rt_router_close(&run.r);
        uv_run(loop, UV_RUN_DEFAULT);
        rt_router_free(&run.r);
        return 1;
    }
    uv_signal_init(loop, &run.sigint);
    uv_signal_init(loop, &run.sigterm);
    uv_signal_init(loop, &run.sighup);
    run.sigint.data = run.sigterm.data = run.sighup.data = &run;
    uv_signal_start(&run.sigint, on_signal, SIGINT);
    uv_signal_start(&run.sigterm, on_signal, SIGTERM);
    uv_signal_start(&run.sighup, on_hup, SIGHUP);
    pr_info("started", "id=%s name=%s network=%s", id->id, pr_log_q(id->name), id->network);
    uv_run(loop, UV_RUN_DEFAULT);
    rt_router_free(&run.r);
    rt_renew_free(&run.renew);
    uv_loop_close(loop);
    return 0;
}

static int cmd_run(const opts *o)
{
    char path[4096], err[512] = "";
    int level = o->log_level ? pr_log_level_parse(o->log_level) : PR_LOG_INFO;
    pr_idfile id;
    json_t *conf;
    int rc;

    if (level < 0)
        return fail("--log-level wants debug, info, warn or error, not \"%s\"", o->log_level);
    pr_log_init("router", level);
    path_in(o->dir, "identity.json", path, sizeof(path));
    if (pr_idfile_load(path, &id, err, sizeof(err)) < 0)
        return fail("%s", err);
    if (strcmp(id.kind, "router") != 0) {
        pr_idfile_free(&id);
        return fail("%s is a %s identity, not a router's; enrol with a router token", path, id.kind);
    }
    path_in(o->dir, "router.json", path, sizeof(path));
    if ((conf = json_load_file(path, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
        pr_idfile_free(&id);
        return fail("cannot read %s; enrol again with weft-router enroll", path);
    }
    rc = run_loop(&id, conf, o);
    json_decref(conf);
    pr_idfile_free(&id);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {0};

    if (argc < 2)
        return fail("missing command\n%s", usage);
    if (strcmp(argv[1], "version") == 0) {
        printf("weft-router %s\n", RT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (parse(argc - 1, argv + 1, &o) != 0)
        return 2;
    if (strcmp(argv[1], "enroll") == 0)
        return cmd_enroll(&o);
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(&o);
    return fail("unknown command \"%s\"\n%s", argv[1], usage);
}
