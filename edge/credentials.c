/* weft-edge credentials, renew, and enroll with a factory certificate: the
 * device side of docs/bootstrap.md.
 *   credentials: fetch the tier-2 credentials attached to this identity (or
 *     its roles) over its authenticated session, write each file 0600 under
 *     DIR/<credential>/ (directories 0700), print one path per file;
 *   renew: renew the certificate when a third of its life remains (or now,
 *     with --force) and rewrite the identity file atomically;
 *   enroll --cert --key: enrol with a factory certificate, no token. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "edge/creds.h"
#include "edge/edge.h"
#include "proto/enroll.h"
#include "proto/enroll_factory.h"
#include "proto/httpc.h"
#include "proto/idfile.h"
#include "proto/pki.h"
#include "proto/renew.h"
#include "weft/errors.h"

#define PEM_MAX (256 * 1024)

/* Prints the path of each file (the path the local application uses) and
 * of each file or credential removed because the controller no longer lists it. */
static int fetch(const char *idpath, const char *dir, int timeout_ms)
{
    edge_creds_result res = {0};
    char err[768] = "";
    size_t i;
    int rc = edge_creds_sync(idpath, dir, timeout_ms, &res, err, sizeof(err));

    for (i = 0; rc == 0 && i < res.n; i++) {
        const edge_cred_entry *e = &res.v[i];
        if (e->state != EDGE_CRED_REMOVED)
            printf("credential %s file %s %s\n", e->cred, e->file, e->path);
        else if (e->file[0] != '\0')
            printf("removed credential %s file %s %s\n", e->cred, e->file, e->path);
        else
            printf("removed credential %s %s\n", e->cred, e->path);
    }
    edge_creds_result_free(&res);
    return rc < 0 ? edge_fail("%s", err[0] ? err : weft_strerror(rc)) : EDGE_OK;
}

static int parse_timeout(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end != '\0' || v <= 0 || v > 3600000)
        return -1;
    *out = (int)v;
    return 0;
}

int edge_cmd_credentials(const edge_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"identity", required_argument, NULL, 'i'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *idpath = NULL, *dir = NULL;
    int ch, timeout_ms = 0;

    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            edge_print_cmd_help(stdout, cmd);
            return EDGE_OK;
        } else if (ch == 'i') {
            idpath = optarg;
        } else if (ch == 'd') {
            dir = optarg;
        } else if (ch == 't' && parse_timeout(optarg, &timeout_ms) == 0) {
            continue;
        } else {
            return edge_usage_error(cmd, "bad option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return edge_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (idpath == NULL || dir == NULL)
        return edge_usage_error(cmd, "--identity ID_FILE and --dir DIR are required");
    return fetch(idpath, dir, timeout_ms);
}

/* ---- renew ---- */

static void print_validity(const char *idpath, const char *what)
{
    char err[256];
    pr_idfile id = {0};
    int64_t na = 0;
    char when[32] = "?";
    time_t t;
    struct tm tm;

    if (pr_idfile_load(idpath, &id, err, sizeof(err)) == 0 &&
        pr_pki_cert_not_after(id.cert_pem, &na) == 0 && (t = (time_t)na, gmtime_r(&t, &tm)))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s %s (id %s): certificate valid until %s\n", what, idpath, id.id, when);
    pr_idfile_free(&id);
}

int edge_cmd_renew(const edge_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"identity", required_argument, NULL, 'i'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *idpath = NULL;
    char err[768] = "";
    int ch, force = 0, timeout_ms = 0, rc;

    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            edge_print_cmd_help(stdout, cmd);
            return EDGE_OK;
        } else if (ch == 'i') {
            idpath = optarg;
        } else if (ch == 'f') {
            force = 1;
        } else if (ch == 't' && parse_timeout(optarg, &timeout_ms) == 0) {
            continue;
        } else {
            return edge_usage_error(cmd, "bad option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc || idpath == NULL)
        return edge_usage_error(cmd, "--identity ID_FILE is required");
    if ((rc = pr_renew_if_due(idpath, force, timeout_ms, err, sizeof(err))) < 0)
        return edge_fail("%s", err);
    print_validity(idpath, rc == 1 ? "renewed" : "not due yet:");
    return EDGE_OK;
}

/* ---- enroll with a factory certificate ---- */

typedef struct {
    const char *cert, *key, *controller, *fp, *out, *imei, *iccid;
    const char *token; /* a token as well: an identity bound to a factory CA */
    int force, timeout_ms;
} factory_opts;

static int factory_parse(const edge_cmd *cmd, int argc, char **argv, factory_opts *o)
{
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},       {"key", required_argument, NULL, 'k'},
        {"controller", required_argument, NULL, 'u'}, {"ca-fingerprint", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},        {"imei", required_argument, NULL, 'I'},
        {"iccid", required_argument, NULL, 'C'},      {"force", no_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},    {0}};
    const char **slot[] = {['c'] = &o->cert, ['k'] = &o->key, ['u'] = &o->controller,
                           ['p'] = &o->fp,   ['o'] = &o->out, ['I'] = &o->imei,
                           ['C'] = &o->iccid};
    int ch;

    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (ch == 'f')
            o->force = 1;
        else if (ch == 't' && parse_timeout(optarg, &o->timeout_ms) == 0)
            continue;
        else if (ch > 0 && ch < (int)(sizeof(slot) / sizeof(slot[0])) && slot[ch] != NULL)
            *slot[ch] = optarg;
        else
            return edge_usage_error(cmd, "bad option or missing value: %s", argv[optind - 1]);
    }
    if (optind + 1 < argc)
        return edge_usage_error(cmd, "unexpected argument \"%s\"", argv[optind + 1]);
    if (optind < argc)
        o->token = argv[optind];
    if (o->token && (!o->cert || !o->key || !o->out))
        return edge_usage_error(cmd, "with a token and --cert, also give --key and --out");
    if (!o->token && (!o->cert || !o->key || !o->controller || !o->fp || !o->out))
        return edge_usage_error(cmd, "with --cert, also give --key, --controller, "
                                     "--ca-fingerprint and --out");
    return EDGE_OK;
}

/* A token for an identity the administrator bound to a factory CA: the
 * token's own controller and CA fingerprint are used, and the CSR is signed
 * with the factory key as well. TOKEN is the text or a file holding it. */
static int token_run(const factory_opts *o, const char *cert, const char *key)
{
    char err[768] = "", *tok = NULL;
    size_t len = 0;
    struct stat st;
    pr_idfile id = {0};
    pr_enroll_req req = {.imei = o->imei,
                         .iccid = o->iccid,
                         .timeout_ms = o->timeout_ms,
                         .factory_cert_pem = cert,
                         .factory_key_pem = key,
                         .busy = {.on_busy = edge_enroll_busy}};
    int rc;

    if (stat(o->token, &st) == 0 && pr_read_file(o->token, PEM_MAX, &tok, &len) < 0)
        return edge_fail("cannot read the token file %s", o->token);
    req.token = tok ? tok : o->token;
    if ((rc = pr_enroll(&req, &id, err, sizeof(err))) < 0)
        edge_fail("%s", err[0] ? err : weft_strerror(rc));
    else if ((rc = pr_idfile_save(o->out, &id)) < 0)
        edge_fail("enrolled, but cannot write %s: %s; the token is spent: ask the "
                       "administrator for a new one", o->out, weft_strerror(rc));
    else
        printf("enrolled %s %s (id %s) in network %s; identity written to %s\n", id.kind,
               id.name, id.id, id.network, o->out);
    pr_idfile_free(&id);
    if (tok)
        sodium_memzero(tok, len);
    free(tok);
    return rc < 0 ? EDGE_ERR : EDGE_OK;
}

static int factory_run(const factory_opts *o, const char *cert, const char *key)
{
    char err[768] = "";
    pr_idfile id = {0};
    pr_factory_req req = {.controller = o->controller,
                          .ca_fp = o->fp,
                          .cert_pem = cert,
                          .key_pem = key,
                          .imei = o->imei,
                          .iccid = o->iccid,
                          .timeout_ms = o->timeout_ms,
                          .busy = {.on_busy = edge_enroll_busy}};
    int rc = pr_enroll_factory(&req, &id, err, sizeof(err));

    if (rc < 0)
        return edge_fail("%s", err[0] ? err : weft_strerror(rc));
    if ((rc = pr_idfile_save(o->out, &id)) < 0)
        edge_fail("enrolled, but cannot write %s: %s; the administrator deletes identity %s "
                  "before this certificate can enrol again",
                  o->out, weft_strerror(rc), id.id);
    else
        printf("enrolled %s %s (id %s) in network %s; identity written to %s\n", id.kind,
               id.name, id.id, id.network, o->out);
    pr_idfile_free(&id);
    return rc < 0 ? EDGE_ERR : EDGE_OK;
}

int edge_cmd_enroll_factory(const edge_cmd *cmd, int argc, char **argv)
{
    factory_opts o = {0};
    char *cert = NULL, *key = NULL;
    size_t len = 0;
    struct stat st;
    int rc = factory_parse(cmd, argc, argv, &o);

    if (rc != EDGE_OK)
        return rc;
    if (!o.force && stat(o.out, &st) == 0)
        return edge_fail("%s already exists; choose another --out, or add --force", o.out);
    if (pr_read_file(o.cert, PEM_MAX, &cert, &len) < 0)
        rc = edge_fail("cannot read --cert %s", o.cert);
    else if (pr_read_file(o.key, PEM_MAX, &key, &len) < 0)
        rc = edge_fail("cannot read --key %s", o.key);
    else
        rc = o.token ? token_run(&o, cert, key) : factory_run(&o, cert, key);
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    free(cert);
    return rc;
}
