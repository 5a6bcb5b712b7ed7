/* weft-entry: the containers' entrypoint. Images are FROM scratch (no shell), so
 * the first-start logic lives here: init or enrol once, then exec the daemon so
 * it is PID 1 and gets SIGTERM itself.
 *
 *   weft-entry controller        init $WEFT_DIR if it holds no network, then run
 *   weft-entry router            enrol with $WEFT_ENROLL_TOKEN[_FILE] once, then run
 *   weft-entry edge              enrol $WEFT_IDENTITY_FILE once, then run
 *   weft-entry bootstrap FILE    run each line of FILE as a `weft` command, once
 *
 * Exit codes: 0 ok, 1 error (a sentence on stderr says what to do), 2 usage,
 * 143 stopped by SIGTERM before the daemon started. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS     48
#define LINE_MAX_LEN 2048

static volatile sig_atomic_t stopping;
static pid_t child;

static void on_term(int sig)
{
    stopping = 1;
    if (child > 0)
        kill(child, sig);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && v[0] ? v : dflt;
}

static void bin_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", env_or("WEFT_BIN_DIR", "/usr/bin"), name);
}

static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* Seconds to keep retrying a step whose peer may not be up yet. */
static time_t wait_limit(void)
{
    long s = strtol(env_or("WEFT_WAIT", "180"), NULL, 10);

    return time(NULL) + (s > 0 && s < 86400 ? s : 180);
}

/* Runs argv to completion; returns its exit status, or -1 if it could not run. */
static int run(char *const argv[])
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "weft-entry: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    child = pid;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs argv until it exits 0, every 2 s until the wait limit; 0 or the last status. */
static int run_retrying(char *const argv[], const char *what)
{
    time_t limit = wait_limit();
    int rc;

    for (;;) {
        rc = run(argv);
        if (rc == 0 || stopping || time(NULL) >= limit)
            return rc;
        fprintf(stderr, "weft-entry: %s failed (exit %d); retrying in 2 s\n", what, rc);
        sleep(2);
    }
}

/* Adds "--opt value" when the environment variable is set. */
static void add_opt(char **argv, int *n, const char *opt, const char *env)
{
    const char *v = getenv(env);

    if (v && v[0] && *n + 2 < MAX_ARGS) {
        argv[(*n)++] = (char *)opt;
        argv[(*n)++] = (char *)v;
    }
}

static int exec_daemon(char **argv)
{
    execv(argv[0], argv);
    fprintf(stderr, "weft-entry: cannot run %s: %s; is the image complete?\n", argv[0],
            strerror(errno));
    return 1;
}

static int controller(void)
{
    const char *dir = env_or("WEFT_DIR", "/var/lib/weft");
    char bin[256], cfg[4096];
    char *argv[MAX_ARGS] = {0};
    int n = 0;

    bin_path(bin, sizeof(bin), "weft-controller");
    snprintf(cfg, sizeof(cfg), "%s/controller.json", dir);
    if (!exists(cfg)) {
        argv[n++] = bin;
        argv[n++] = "init";
        argv[n++] = "--dir";
        argv[n++] = (char *)dir;
        add_opt(argv, &n, "--listen", "WEFT_LISTEN");
        add_opt(argv, &n, "--advertise", "WEFT_ADVERTISE");
        add_opt(argv, &n, "--control-listen", "WEFT_CONTROL_LISTEN");
        add_opt(argv, &n, "--name", "WEFT_NAME");
        fprintf(stderr, "weft-entry: %s holds no network; initialising it\n", dir);
        if (run(argv) != 0) {
            fprintf(stderr,
                    "weft-entry: init of %s failed; check the WEFT_* settings and that "
                    "the volume is writable by uid %d\n",
                    dir, (int)getuid());
            return 1;
        }
    }
    memset(argv, 0, sizeof(argv));
    n = 0;
    argv[n++] = bin;
    argv[n++] = "run";
    argv[n++] = "--dir";
    argv[n++] = (char *)dir;
    add_opt(argv, &n, "--log-level", "WEFT_LOG_LEVEL");
    return exec_daemon(argv);
}

/* The token from $WEFT_ENROLL_TOKEN, else the path in $WEFT_ENROLL_TOKEN_FILE, which
 * may appear later (a bootstrap job writes it): waits for it up to the wait limit. */
static const char *token_arg(void)
{
    const char *tok = getenv("WEFT_ENROLL_TOKEN"), *file = getenv("WEFT_ENROLL_TOKEN_FILE");
    time_t limit = wait_limit();

    if (tok && tok[0])
        return tok;
    if (!file || !file[0]) {
        fprintf(stderr, "weft-entry: not enrolled and no token; set WEFT_ENROLL_TOKEN or "
                        "WEFT_ENROLL_TOKEN_FILE\n");
        return NULL;
    }
    while (!exists(file) && !stopping && time(NULL) < limit)
        sleep(1);
    if (!exists(file)) {
        fprintf(stderr, "weft-entry: token file %s did not appear; check the bootstrap job\n",
                file);
        return NULL;
    }
    return file;
}

static int router(void)
{
    const char *dir = env_or("WEFT_DIR", "/var/lib/weft"), *tok;
    char bin[256], id[4096];
    char *argv[MAX_ARGS] = {0};
    int n = 0;

    bin_path(bin, sizeof(bin), "weft-router");
    snprintf(id, sizeof(id), "%s/identity.json", dir);
    if (!exists(id)) {
        if (!(tok = token_arg()))
            return 1;
        char *en[] = {bin,
                      "enroll",
                      (char *)tok,
                      "--dir",
                      (char *)dir,
                      "--edge-listen",
                      (char *)env_or("WEFT_EDGE_LISTEN", "0.0.0.0:3022"),
                      "--link-listen",
                      (char *)env_or("WEFT_LINK_LISTEN", "0.0.0.0:4022"),
                      NULL};
        if (run_retrying(en, "router enrolment") != 0)
            return stopping ? 143 : 1;
    }
    argv[n++] = bin;
    argv[n++] = "run";
    argv[n++] = "--dir";
    argv[n++] = (char *)dir;
    add_opt(argv, &n, "--log-level", "WEFT_LOG_LEVEL");
    return exec_daemon(argv);
}

static int edge(void)
{
    const char *id = env_or("WEFT_IDENTITY_FILE", "/var/lib/weft/identity.json"), *tok;
    char bin[256];
    char *argv[MAX_ARGS] = {0};
    int n = 0;

    bin_path(bin, sizeof(bin), "weft-edge");
    if (!exists(id)) {
        if (!(tok = token_arg()))
            return 1;
        char *en[] = {bin, "enroll", (char *)tok, "--out", (char *)id, NULL};
        if (run_retrying(en, "edge enrolment") != 0)
            return stopping ? 143 : 1;
    }
    argv[n++] = bin;
    argv[n++] = "run";
    argv[n++] = "--identity";
    argv[n++] = (char *)id;
    add_opt(argv, &n, "--log-level", "WEFT_LOG_LEVEL");
    add_opt(argv, &n, "--refresh", "WEFT_REFRESH");
    return exec_daemon(argv);
}

/* Splits line into argv after argv[0] (whitespace-separated, no quoting). */
static int split(char *line, char **argv, int n)
{
    for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w;
         w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n + 1 >= MAX_ARGS)
            return -1;
        argv[n++] = w;
    }
    argv[n] = NULL;
    return n;
}

/* One weft command per line; the first is retried until the controller answers. */
static int bootstrap_lines(FILE *f, const char *plan, char *bin)
{
    char line[LINE_MAX_LEN];
    char *argv[MAX_ARGS];
    int lineno = 0, first = 1;

    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "weft-entry: %s:%d is too long\n", plan, lineno);
            return 1;
        }
        argv[0] = bin;
        int n = split(line, argv, 1);
        if (n < 0) {
            fprintf(stderr, "weft-entry: %s:%d has too many words\n", plan, lineno);
            return 1;
        }
        if (n == 1 || argv[1][0] == '#')
            continue;
        int rc = first ? run_retrying(argv, "the first bootstrap command") : run(argv);
        first = 0;
        if (rc != 0 || stopping) {
            fprintf(stderr, "weft-entry: %s:%d failed (exit %d); see the message above\n", plan,
                    lineno, rc);
            return stopping ? 143 : 1;
        }
    }
    return 0;
}

static int bootstrap(const char *plan)
{
    const char *marker = env_or("WEFT_BOOTSTRAP_MARKER", "/tokens/.bootstrapped");
    const char *admin = env_or("WEFT_IDENTITY", "/var/lib/weft/admin.json");
    time_t limit = wait_limit();
    char bin[256];
    FILE *f, *m;
    int rc;

    if (exists(marker)) {
        fprintf(stderr, "weft-entry: already bootstrapped (%s exists)\n", marker);
        return 0;
    }
    while (!exists(admin) && !stopping && time(NULL) < limit)
        sleep(1);
    if (!exists(admin)) {
        fprintf(stderr, "weft-entry: admin identity %s did not appear; is the controller up?\n",
                admin);
        return 1;
    }
    if (!(f = fopen(plan, "r"))) {
        fprintf(stderr, "weft-entry: cannot open %s: %s\n", plan, strerror(errno));
        return 1;
    }
    bin_path(bin, sizeof(bin), "weft");
    rc = bootstrap_lines(f, plan, bin);
    fclose(f);
    if (rc != 0)
        return rc;
    if (!(m = fopen(marker, "w")) || fclose(m) != 0) {
        fprintf(stderr, "weft-entry: cannot write %s: %s\n", marker, strerror(errno));
        return 1;
    }
    fprintf(stderr, "weft-entry: bootstrap done\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_term};

    /* As PID 1 a default-handled SIGTERM is ignored; stop at once instead. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc == 2 && strcmp(argv[1], "controller") == 0)
        return controller();
    if (argc == 2 && strcmp(argv[1], "router") == 0)
        return router();
    if (argc == 2 && strcmp(argv[1], "edge") == 0)
        return edge();
    if (argc == 3 && strcmp(argv[1], "bootstrap") == 0)
        return bootstrap(argv[2]);
    fprintf(stderr, "usage: weft-entry controller|router|edge|bootstrap PLAN_FILE\n"
                    "Configured by WEFT_* environment variables: see docs/deploy.md\n");
    return 2;
}
