/* controller.json: the controller's configuration, written by init and read by
 * run. File paths in it are relative to the data directory so that the
 * directory can be moved or restored from a backup elsewhere. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/admit.h"
#include "controller/controller.h"
#include "proto/addr.h"
#include "controller/store.h"
#include "proto/idfile.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

#define CONFIG_MAX (64 * 1024)

static const struct {
    const char *key;
    const char *file;
    size_t off;
} files[] = {
    {"ca_cert", "ca.pem", offsetof(ctl_config, ca_cert)},
    {"ca_key", "ca.key", offsetof(ctl_config, ca_key)},
    {"server_cert", "server.pem", offsetof(ctl_config, server_cert)},
    {"server_key", "server.key", offsetof(ctl_config, server_key)},
    {"signing_key", "signing.key", offsetof(ctl_config, signing_key)},
    {"db", "weft.db", offsetof(ctl_config, db)},
    {"admin", "admin.json", offsetof(ctl_config, admin)},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

void ctl_errf(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static int set_path(ctl_config *cfg, size_t i, const char *rel)
{
    char tmp[PATH_MAX];
    int n;

    if (rel[0] == '/')
        n = snprintf(tmp, sizeof(tmp), "%s", rel);
    else
        n = snprintf(tmp, sizeof(tmp), "%s/%s", cfg->dir, rel);
    if (n < 0 || n >= PATH_MAX)
        return WEFT_EINVAL;
    memcpy((char *)cfg + files[i].off, tmp, (size_t)n + 1);
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap)
        return WEFT_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

int ctl_config_defaults(ctl_config *cfg, const char *dir)
{
    memset(cfg, 0, sizeof(*cfg));
    if (copy_str(cfg->dir, sizeof(cfg->dir), dir) < 0)
        return WEFT_EINVAL;
    strcpy(cfg->name, "weft");
    strcpy(cfg->log_level, "info");
    cfg->token_ttl = CTL_TOKEN_TTL_DEFAULT;
    cfg->cert_validity = CTL_CERT_VALIDITY_DEFAULT;
    cfg->service_token_ttl = CTL_SVC_TOKEN_TTL_DEFAULT;
    ctl_admit_config_defaults(cfg);
    for (size_t i = 0; i < NFILES; i++)
        if (set_path(cfg, i, files[i].file) < 0)
            return WEFT_EINVAL;
    if (ctl_config_set_addrs(cfg, "127.0.0.1:1280", NULL, NULL, 0) < 0)
        return WEFT_EINVAL;
    return ctl_config_set_control(cfg, CTL_CONTROL_LISTEN, NULL, 0);
}

static int is_any_addr(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0';
}

int ctl_config_set_addrs(ctl_config *cfg, const char *listen, const char *advertise, char *err,
                         size_t errcap)
{
    char host[256];
    unsigned port;

    if (pr_addr_split(listen, host, sizeof(host), &port) < 0 || port == 0 || port > 65535) {
        if (err)
            ctl_errf(err, errcap, "invalid listen address '%s': expected HOST:PORT", listen);
        return WEFT_EADDR;
    }
    if (copy_str(cfg->listen, sizeof(cfg->listen), listen) < 0)
        return WEFT_EINVAL;
    if (advertise == NULL) {
        /* A wildcard address is no URL a device can dial: default to loopback
         * and let the operator say --advertise for anything else. */
        if (is_any_addr(host))
            snprintf(cfg->advertise, sizeof(cfg->advertise), "127.0.0.1:%u", port);
        else
            snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", listen);
    } else {
        if (pr_addr_split(advertise, host, sizeof(host), &port) < 0 || port == 0 || port > 65535 ||
            is_any_addr(host)) {
            if (err)
                ctl_errf(
                    err, errcap,
                    "invalid advertise address '%s': expected HOST:PORT that devices can reach",
                    advertise);
            return WEFT_EADDR;
        }
        if (copy_str(cfg->advertise, sizeof(cfg->advertise), advertise) < 0)
            return WEFT_EINVAL;
    }
    snprintf(cfg->url, sizeof(cfg->url), "https://%s", cfg->advertise);
    /* The control address follows the advertised host when it listens on a wildcard. */
    return cfg->control_listen[0] ? ctl_config_set_control(cfg, cfg->control_listen, err, errcap)
                                  : 0;
}

int ctl_config_set_control(ctl_config *cfg, const char *control_listen, char *err, size_t errcap)
{
    char host[256], ahost[200];
    unsigned port, aport;
    int n;

    if (pr_addr_split(control_listen, host, sizeof(host), &port) < 0 || port == 0 ||
        port > 65535 || pr_addr_split(cfg->advertise, ahost, sizeof(ahost), &aport) < 0) {
        if (err)
            ctl_errf(err, errcap, "invalid control listen address '%s': expected HOST:PORT",
                     control_listen);
        return WEFT_EADDR;
    }
    if (control_listen != cfg->control_listen &&
        copy_str(cfg->control_listen, sizeof(cfg->control_listen), control_listen) < 0)
        return WEFT_EINVAL;
    if (!is_any_addr(host))
        n = snprintf(cfg->control, sizeof(cfg->control), "%s", control_listen);
    else
        n = snprintf(cfg->control, sizeof(cfg->control), strchr(ahost, ':') ? "[%s]:%u" : "%s:%u",
                     ahost, port);
    return n > 0 && (size_t)n < sizeof(cfg->control) ? 0 : WEFT_EINVAL;
}

static int get_str(json_t *o, const char *key, char *dst, size_t cap, char *err, size_t errcap)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL)
        return 0; /* keep the default */
    if (!json_is_string(v) || copy_str(dst, cap, json_string_value(v)) < 0) {
        ctl_errf(err, errcap, "%s: \"%s\" must be a string of at most %zu bytes", CTL_CONFIG_FILE,
                 key, cap - 1);
        return WEFT_EINVAL;
    }
    return 0;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *dst, char *err,
                   size_t errcap)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        ctl_errf(err, errcap, "%s: \"%s\" must be an integer in %lld..%lld", CTL_CONFIG_FILE, key,
                 (long long)min, (long long)max);
        return WEFT_EINVAL;
    }
    *dst = json_integer_value(v);
    return 0;
}

static int load_paths(ctl_config *cfg, json_t *paths, char *err, size_t errcap)
{
    for (size_t i = 0; i < NFILES; i++) {
        json_t *v = json_object_get(paths, files[i].key);
        const char *rel = files[i].file;

        if (v != NULL && !json_is_string(v)) {
            ctl_errf(err, errcap, "%s: paths.%s must be a string", CTL_CONFIG_FILE, files[i].key);
            return WEFT_EINVAL;
        }
        if (v != NULL)
            rel = json_string_value(v);
        if (set_path(cfg, i, rel) < 0) {
            ctl_errf(err, errcap, "%s: paths.%s is too long", CTL_CONFIG_FILE, files[i].key);
            return WEFT_EINVAL;
        }
    }
    return 0;
}

static int load_fields(ctl_config *cfg, json_t *root, char *err, size_t errcap)
{
    char listen[256], advertise[256] = "", control[256];
    json_t *enr = json_object_get(root, "enrollment");
    int rc;

    strcpy(listen, cfg->listen);
    strcpy(control, cfg->control_listen);
    if ((rc = get_str(root, "name", cfg->name, sizeof(cfg->name), err, errcap)) < 0 ||
        (rc = get_str(root, "listen", listen, sizeof(listen), err, errcap)) < 0 ||
        (rc = get_str(root, "advertise", advertise, sizeof(advertise), err, errcap)) < 0 ||
        (rc = get_str(root, "log_level", cfg->log_level, sizeof(cfg->log_level), err, errcap)) < 0 ||
        (rc = get_str(root, "control_listen", control, sizeof(control), err, errcap)) < 0 ||
        (rc = get_int(root, "service_token_ttl", 60, CTL_SVC_TOKEN_TTL_MAX,
                      &cfg->service_token_ttl, err, errcap)) < 0 ||
        (rc = ctl_admit_config_load(cfg, root, err, errcap)) < 0)
        return rc;
    if (!pr_ident_valid_id(cfg->name)) {
        ctl_errf(err, errcap, "%s: name '%s' is not a valid network name ([a-z0-9-], 1..64)",
                 CTL_CONFIG_FILE, cfg->name);
        return WEFT_EINVAL;
    }
    if (pr_log_level_parse(cfg->log_level) < 0) {
        ctl_errf(err, errcap, "%s: log_level must be debug, info, warn or error", CTL_CONFIG_FILE);
        return WEFT_EINVAL;
    }
    if ((rc = ctl_config_set_addrs(cfg, listen, advertise[0] ? advertise : NULL, err, errcap)) < 0 ||
        (rc = ctl_config_set_control(cfg, control, err, errcap)) < 0)
        return rc;
    if (json_is_object(enr) &&
        ((rc = get_int(enr, "token_ttl", 1, CTL_TOKEN_TTL_MAX, &cfg->token_ttl, err, errcap)) < 0 ||
         (rc = get_int(enr, "cert_validity", 3600, 10LL * 365 * 86400, &cfg->cert_validity, err,
                       errcap)) < 0))
        return rc;
    return load_paths(cfg, json_object_get(root, "paths"), err, errcap);
}

int ctl_config_load(ctl_config *cfg, const char *dir, char *err, size_t errcap)
{
    char path[PATH_MAX], abs[PATH_MAX];
    char *text = NULL;
    size_t len;
    json_t *root = NULL;
    json_error_t jerr;
    int rc;

    if (realpath(dir, abs) == NULL) {
        ctl_errf(err, errcap,
                 "cannot open data directory %s; create it with 'weft-controller init --dir %s'",
                 dir, dir);
        return WEFT_ENOTFOUND;
    }
    if ((rc = ctl_config_defaults(cfg, abs)) < 0)
        goto out;
    if (snprintf(path, sizeof(path), "%s/%s", abs, CTL_CONFIG_FILE) >= (int)sizeof(path)) {
        ctl_errf(err, errcap, "data directory path %s is too long", abs);
        rc = WEFT_EINVAL;
        goto out;
    }
    if ((rc = pr_read_file(path, CONFIG_MAX, &text, &len)) < 0) {
        ctl_errf(
            err, errcap,
            "cannot read %s (%s); is %s a weft-controller data directory (weft-controller init)?",
            path, weft_strerror(rc), dir);
        goto out;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        ctl_errf(err, errcap, "%s: line %d: %s; fix the file or restore it from a backup", path,
                 jerr.line, root ? "not a JSON object" : jerr.text);
        rc = WEFT_EJSON;
        goto out;
    }
    rc = load_fields(cfg, root, err, errcap);
out:
    json_decref(root);
    free(text);
    return rc;
}

static const char *rel_path(const ctl_config *cfg, const char *abs)
{
    size_t n = strlen(cfg->dir);

    if (strncmp(abs, cfg->dir, n) == 0 && abs[n] == '/')
        return abs + n + 1;
    return abs;
}

int ctl_config_save(const ctl_config *cfg)
{
    char path[PATH_MAX];
    json_t *root, *paths;
    char *text = NULL;
    int rc = WEFT_ENOMEM;

    root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:{s:I, s:I}}", "name", cfg->name,
                     "listen", cfg->listen, "advertise", cfg->advertise, "url", cfg->url,
                     "log_level", cfg->log_level, "control_listen", cfg->control_listen,
                     "service_token_ttl", (json_int_t)cfg->service_token_ttl, "enrollment",
                     "token_ttl", (json_int_t)cfg->token_ttl, "cert_validity",
                     (json_int_t)cfg->cert_validity);
    paths = json_object();
    if (root == NULL || paths == NULL)
        goto out;
    ctl_admit_config_save(cfg, root);
    for (size_t i = 0; i < NFILES; i++)
        json_object_set_new(paths, files[i].key,
                            json_string(rel_path(cfg, (const char *)cfg + files[i].off)));
    json_object_set(root, "paths", paths);
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL)
        goto out;
    if (snprintf(path, sizeof(path), "%s/%s", cfg->dir, CTL_CONFIG_FILE) >= (int)sizeof(path)) {
        rc = WEFT_EINVAL;
        goto out;
    }
    rc = pr_write_file_secure(path, text, strlen(text));
out:
    free(text);
    json_decref(paths);
    json_decref(root);
    return rc;
}

/* ---- loading what the configuration names ---- */

#define PEM_MAX (256 * 1024)

int ctl_read_pem(const char *path, char **out, char *err, size_t errcap)
{
    size_t len;
    int rc = pr_read_file(path, PEM_MAX, out, &len);

    if (rc < 0)
        ctl_errf(err, errcap,
                 "cannot read %s (%s); check the data directory or restore it from a backup", path,
                 weft_strerror(rc));
    return rc;
}

/* A configuration pointing at another network's store would hand out tokens
 * nobody can use: refuse to start. */
static int check_network(ctl *c, char *err, size_t errcap)
{
    char *net = NULL;
    int rc = ctl_store_setting_get(c->store, "network", &net);

    if (rc == WEFT_ENOTFOUND)
        return 0;
    if (rc == 0 && strcmp(net, c->cfg.name) != 0) {
        ctl_errf(err, errcap,
                 "%s belongs to network '%s' but %s names '%s'; fix 'name' or 'paths.db'",
                 c->cfg.db, net, CTL_CONFIG_FILE, c->cfg.name);
        rc = WEFT_ECONFLICT;
    }
    free(net);
    return rc;
}

int ctl_open(ctl *c, const ctl_config *cfg, char *err, size_t errcap)
{
    int rc;

    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    if ((rc = ctl_read_pem(cfg->ca_cert, &c->ca.cert_pem, err, errcap)) < 0)
        return rc;
    if ((rc = pr_pki_fingerprint(c->ca.cert_pem, c->ca_fp)) < 0) {
        ctl_errf(err, errcap, "%s is not a PEM certificate; restore it from a backup",
                 cfg->ca_cert);
        return rc;
    }
    /* The active intermediate (ca_rotate.c), or the root key for older directories. */
    if ((rc = ctl_issuer_load(c, err, errcap)) < 0)
        return rc;
    if ((rc = ctl_signing_key_load(cfg->signing_key, c->sk)) < 0) {
        ctl_errf(err, errcap, "cannot load the token signing key %s (%s); restore it from a backup",
                 cfg->signing_key, weft_strerror(rc));
        return rc;
    }
    crypto_sign_ed25519_sk_to_pk(c->pk, c->sk);
    if ((rc = ctl_store_open(cfg->db, &c->store)) == WEFT_EVERSION) {
        ctl_errf(err, errcap, "%s was written by a newer weft-controller; run that version",
                 cfg->db);
        return rc;
    }
    if (rc < 0) {
        ctl_errf(err, errcap,
                 "cannot open the store %s (%s); check its permissions and free disk space",
                 cfg->db, weft_strerror(rc));
        return rc;
    }
    return check_network(c, err, errcap);
}

void ctl_close(ctl *c)
{
    ctl_store_close(c->store);
    c->store = NULL;
    if (c->ca.key_pem)
        sodium_memzero(c->ca.key_pem, strlen(c->ca.key_pem));
    pr_ca_free(&c->ca);
    ctl_issuer_free(c);
    sodium_memzero(c->sk, sizeof(c->sk));
    sodium_memzero(c->secrets_key, sizeof(c->secrets_key));
}
