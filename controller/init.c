/* weft-controller init: a new network in a fresh data directory. The root CA,
 * the controller's server certificate, the token signing key, the store and
 * the first admin identity file, each written 0600 (certificates 0644). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "controller/controller.h"
#include "controller/credentials.h"
#include "proto/addr.h"
#include "proto/idfile.h"
#include "proto/ident.h"
#include "weft/errors.h"

#define SERVER_CERT_DAYS (5 * 365)
#define ADMIN_CERT_DAYS  (2 * 365)

typedef struct {
    ctl_config cfg;
    pr_ca ca;    /* the root */
    ctl *iss;    /* issues the server and admin certificates: intermediate-1 */
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    int made_dir;
    const char *ca_passphrase; /* NULL: ca.key in clear */
    char *err;
    size_t errcap;
} init_state;

int ctl_signing_key_save(const char *path, const unsigned char sk[crypto_sign_SECRETKEYBYTES])
{
    char hex[crypto_sign_SECRETKEYBYTES * 2 + 2];
    int rc;

    sodium_bin2hex(hex, sizeof(hex) - 1, sk, crypto_sign_SECRETKEYBYTES);
    strcat(hex, "\n");
    rc = pr_write_file_secure(path, hex, strlen(hex));
    sodium_memzero(hex, sizeof(hex));
    return rc;
}

int ctl_signing_key_load(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES])
{
    char *text = NULL;
    size_t len = 0, bin_len = 0;
    int rc;

    if ((rc = pr_read_file(path, 4096, &text, &len)) < 0)
        return rc;
    rc = WEFT_ECRYPTO;
    if (sodium_hex2bin(sk, crypto_sign_SECRETKEYBYTES, text, len, " \r\n", &bin_len, NULL) == 0 &&
        bin_len == crypto_sign_SECRETKEYBYTES)
        rc = 0;
    sodium_memzero(text, len);
    free(text);
    return rc;
}

static int fail(init_state *st, int rc, const char *what)
{
    ctl_errf(st->err, st->errcap, "%s: %s", what, weft_strerror(rc));
    return rc;
}

/* mkdir -p of everything above path (the data directory itself is made 0700). */
static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* Refuses a directory that already holds any part of a network. */
static int prepare_dir(init_state *st, const char *dir)
{
    /* Every file init writes: a failed init removes them, so none may pre-exist. */
    static const char *const markers[] = {CTL_CONFIG_FILE, "weft.db",    "ca.pem",
                                          "ca.key",        "server.pem", "server.key",
                                          "signing.key",   "admin.json", "secrets.key",
                                          CTL_INTERMEDIATES_FILE, "intermediate-1.pem",
                                          "intermediate-1.key", NULL};
    char abs[PATH_MAX], p[PATH_MAX + 32];

    if (mkdir_parents(dir) < 0) {
        ctl_errf(st->err, st->errcap, "cannot create the parents of %s: %s", dir, strerror(errno));
        return WEFT_EIO;
    }
    if (mkdir(dir, 0700) == 0) {
        st->made_dir = 1;
    } else if (errno != EEXIST) {
        ctl_errf(st->err, st->errcap,
                 "cannot create %s: %s; check that its parent exists and is writable", dir,
                 strerror(errno));
        return WEFT_EIO;
    }
    if (realpath(dir, abs) == NULL) {
        ctl_errf(st->err, st->errcap, "cannot resolve %s: %s", dir, strerror(errno));
        return WEFT_EIO;
    }
    for (int i = 0; !st->made_dir && markers[i]; i++) {
        snprintf(p, sizeof(p), "%s/%s", abs, markers[i]);
        if (access(p, F_OK) == 0) {
            ctl_errf(
                st->err, st->errcap,
                "%s already holds a weft network (%s exists); refusing to overwrite it. "
                "Use another --dir, or remove the directory first if you really mean to start over",
                dir, markers[i]);
            return WEFT_EEXISTS;
        }
    }
    if (chmod(abs, 0700) < 0) {
        ctl_errf(st->err, st->errcap, "cannot chmod %s: %s", abs, strerror(errno));
        return WEFT_EIO;
    }
    return ctl_config_defaults(&st->cfg, abs);
}

static int write_public(const char *path, const char *pem)
{
    int rc = pr_write_file_secure(path, pem, strlen(pem));

    if (rc == 0 && chmod(path, 0644) < 0)
        rc = WEFT_EIO;
    return rc;
}

static int is_ip(const char *host)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Adds host to the DNS or IP SAN list unless it is a wildcard or already there. */
static void add_san(const char *host, const char **dns, int *nd, const char **ips, int *ni)
{
    const char **list = is_ip(host) ? ips : dns;
    int *n = is_ip(host) ? ni : nd;

    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        return;
    for (int i = 0; i < *n; i++)
        if (strcmp(list[i], host) == 0)
            return;
    list[(*n)++] = host;
}

static int make_server_cert(init_state *st)
{
    char lhost[256], ahost[256], uri[PR_URI_MAX], cn[96];
    const char *dns[4] = {"localhost"}, *ips[5] = {"127.0.0.1", "::1"};
    int nd = 1, ni = 2, rc;
    unsigned port;
    char *cert = NULL, *key = NULL;
    pr_cert_req req = {0};

    if (pr_addr_split(st->cfg.listen, lhost, sizeof(lhost), &port) < 0 ||
        pr_addr_split(st->cfg.advertise, ahost, sizeof(ahost), &port) < 0)
        return fail(st, WEFT_EADDR, "listen address");
    add_san(lhost, dns, &nd, ips, &ni);
    add_san(ahost, dns, &nd, ips, &ni);
    if ((rc = pr_ident_format(PR_IDENT_CONTROLLER, st->cfg.name, st->cfg.name, uri, sizeof(uri))) <
        0)
        return fail(st, rc, "controller identity");
    snprintf(cn, sizeof(cn), "%s controller", st->cfg.name);
    req = (pr_cert_req){.cn = cn,
                        .uri = uri,
                        .dns = dns,
                        .ips = ips,
                        .usage = PR_CERT_BOTH,
                        .not_after = time(NULL) + SERVER_CERT_DAYS * 86400LL};
    if ((rc = ctl_ca_issue(st->iss, &req, &cert, &key)) < 0) {
        fail(st, rc, "issuing the server certificate");
        goto out;
    }
    if ((rc = write_public(st->cfg.server_cert, cert)) < 0 ||
        (rc = pr_write_file_secure(st->cfg.server_key, key, strlen(key))) < 0)
        fail(st, rc, "writing server.pem/server.key");
out:
    free(cert);
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    return rc;
}

/* The root signs intermediate-1, which issues every leaf from the start
 * (ca_rotate.c); the root key is then needed only to rotate. */
static int make_intermediate(init_state *st)
{
    char name[48];
    int rc;

    if ((st->iss = calloc(1, sizeof(*st->iss))) == NULL)
        return fail(st, WEFT_ENOMEM, "creating the intermediate CA");
    st->iss->cfg = st->cfg;
    if ((rc = ctl_ca_rotate(st->cfg.dir, st->cfg.name, &st->ca, st->ca_passphrase,
                            st->cfg.cert_validity, name, sizeof(name), &st->iss->issuer, st->err,
                            st->errcap)) < 0)
        return rc;
    st->iss->issuer_is_intermediate = 1;
    if ((rc = pr_pki_cert_not_after(st->iss->issuer.cert_pem, &st->iss->issuer_not_after)) < 0)
        return fail(st, rc, "reading the intermediate CA");
    return 0;
}

static int make_ca_and_keys(init_state *st)
{
    int rc;

    if ((rc = pr_ca_create(st->cfg.name, &st->ca)) < 0)
        return fail(st, rc, "creating the network CA");
    if ((rc = write_public(st->cfg.ca_cert, st->ca.cert_pem)) < 0 ||
        (rc = ctl_cakey_save(st->cfg.ca_key, st->ca.key_pem, st->ca_passphrase)) < 0)
        return fail(st, rc, "writing ca.pem/ca.key");
    if ((rc = make_intermediate(st)) < 0)
        return rc;
    if ((rc = ctl_secrets_key_create(st->cfg.dir)) < 0)
        return fail(st, rc, "writing secrets.key");
    if ((rc = make_server_cert(st)) < 0)
        return rc;
    {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES];

        crypto_sign_keypair(pk, st->sk);
    }
    if ((rc = ctl_signing_key_save(st->cfg.signing_key, st->sk)) < 0)
        return fail(st, rc, "writing signing.key");
    return 0;
}

static int record_admin(init_state *st, ctl_store *store, const char *id, const char *cert)
{
    char fp[65];
    json_t *rec;
    int rc;

    if ((rc = pr_pki_fingerprint(cert, fp)) < 0)
        return fail(st, rc, "admin certificate fingerprint");
    rec = json_pack("{s:s, s:s, s:[], s:s, s:b, s:b, s:b, s:s}", "id", id, "name", "admin", "roles",
                    "binding", "none", "admin", 1, "disabled", 0, "enrolled", 1, "cert_fingerprint",
                    fp);
    if (rec == NULL)
        return fail(st, WEFT_ENOMEM, "admin record");
    rc = ctl_store_create(store, "identities", rec);
    json_decref(rec);
    return rc < 0 ? fail(st, rc, "recording the admin identity in weft.db") : 0;
}

static int make_admin(init_state *st, ctl_store *store)
{
    char id[PR_ID_MAX + 1], uri[PR_URI_MAX];
    pr_idfile idf = {0};
    pr_cert_req req = {0};
    int rc;

    pr_ident_new_id(id, sizeof(id));
    if ((rc = pr_ident_format(PR_IDENT_IDENTITY, st->cfg.name, id, uri, sizeof(uri))) < 0)
        return fail(st, rc, "admin identity");
    req = (pr_cert_req){.cn = "admin",
                        .uri = uri,
                        .usage = PR_CERT_CLIENT,
                        .not_after = time(NULL) + ADMIN_CERT_DAYS * 86400LL};
    if ((rc = ctl_ca_issue(st->iss, &req, &idf.cert_pem, &idf.key_pem)) < 0) {
        fail(st, rc, "issuing the admin certificate");
        goto out;
    }
    if ((rc = record_admin(st, store, id, idf.cert_pem)) < 0)
        goto out;
    strcpy(idf.kind, "admin");
    snprintf(idf.id, sizeof(idf.id), "%s", id);
    strcpy(idf.name, "admin");
    snprintf(idf.network, sizeof(idf.network), "%s", st->cfg.name);
    if (snprintf(idf.controller, sizeof(idf.controller), "%s", st->cfg.url) >=
        (int)sizeof(idf.controller))
        rc = fail(st, WEFT_EINVAL, "controller URL too long for an identity file");
    else if ((idf.ca_pem = strdup(st->ca.cert_pem)) == NULL)
        rc = fail(st, WEFT_ENOMEM, "admin identity");
    else if ((rc = pr_idfile_save(st->cfg.admin, &idf)) < 0)
        fail(st, rc, "writing admin.json");
out:
    pr_idfile_free(&idf);
    return rc;
}

static int make_store(init_state *st)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char pkhex[crypto_sign_PUBLICKEYBYTES * 2 + 1], fp[65];
    ctl_store *store = NULL;
    int rc;

    if ((rc = ctl_store_open(st->cfg.db, &store)) < 0)
        return fail(st, rc, "creating weft.db");
    crypto_sign_ed25519_sk_to_pk(pk, st->sk);
    sodium_bin2hex(pkhex, sizeof(pkhex), pk, sizeof(pk));
    if ((rc = pr_pki_fingerprint(st->ca.cert_pem, fp)) < 0 ||
        (rc = ctl_store_setting_set(store, "network", st->cfg.name)) < 0 ||
        (rc = ctl_store_setting_set(store, "signing_public_key", pkhex)) < 0 ||
        (rc = ctl_store_setting_set(store, "ca_fingerprint", fp)) < 0) {
        fail(st, rc, "writing settings to weft.db");
        goto out;
    }
    rc = make_admin(st, store);
out:
    ctl_store_close(store);
    /* Not secret, but the inventory of the network: owner only. */
    if (rc == 0 && chmod(st->cfg.db, 0600) < 0)
        rc = fail(st, WEFT_EIO, "chmod weft.db");
    return rc;
}

/* Removes what a failed init wrote, so that it can simply be run again. */
static void cleanup(init_state *st)
{
    const char *const paths[] = {st->cfg.ca_cert,    st->cfg.ca_key,      st->cfg.server_cert,
                                 st->cfg.server_key, st->cfg.signing_key, st->cfg.admin};
    char p[PATH_MAX + 16];

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (paths[i][0])
            unlink(paths[i]);
    if (st->cfg.dir[0]) {
        static const char *const more[] = {CTL_SECRETS_KEY_FILE, CTL_INTERMEDIATES_FILE,
                                           "intermediate-1.pem", "intermediate-1.key"};

        for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
            snprintf(p, sizeof(p), "%s/%s", st->cfg.dir, more[i]);
            unlink(p);
        }
    }
    if (st->cfg.db[0]) {
        unlink(st->cfg.db);
        snprintf(p, sizeof(p), "%s-wal", st->cfg.db);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", st->cfg.db);
        unlink(p);
    }
    if (st->made_dir)
        rmdir(st->cfg.dir);
}

static void print_next(const init_state *st, FILE *out)
{
    const ctl_config *c = &st->cfg;

    fprintf(out,
            "Created weft network '%s' in %s\n"
            "  ca.pem        network root CA certificate (share it)\n"
            "  ca.key        network root CA private key (0600%s; back it up offline;\n"
            "                only 'weft-controller ca rotate' needs it)\n"
            "  intermediate-1.pem/.key  the intermediate CA issuing certificates\n"
            "  secrets.key   key sealing tier-2 credentials at rest (0600; back it up)\n"
            "  server.pem    controller server certificate, server.key its key (0600)\n"
            "  signing.key   enrolment token signing key (0600)\n"
            "  weft.db       the store (back it up)\n"
            "  controller.json  configuration (listen %s, url %s)\n"
            "  admin.json    admin identity for the weft CLI (0600)\n"
            "\nNext:\n"
            "  weft-controller run --dir %s\n"
            "  export WEFT_IDENTITY=%s\n"
            "  weft identity create my-device --role sensors\n",
            c->name, c->dir, st->ca_passphrase ? ", encrypted" : "", c->listen, c->url, c->dir,
            c->admin);
}

int ctl_init(const ctl_init_opts *o, FILE *out, char *err, size_t errcap)
{
    init_state *st = calloc(1, sizeof(*st));
    const char *name = o->name ? o->name : "weft";
    int rc;

    if (st == NULL)
        return WEFT_ENOMEM;
    st->err = err;
    st->errcap = errcap;
    if (!pr_ident_valid_id(name)) {
        ctl_errf(err, errcap, "invalid network name '%s': use 1..64 characters [a-z0-9-]", name);
        rc = WEFT_EINVAL;
        goto out;
    }
    if ((rc = prepare_dir(st, o->dir)) < 0)
        goto out;
    snprintf(st->cfg.name, sizeof(st->cfg.name), "%s", name);
    st->ca_passphrase = o->ca_passphrase;
    if (o->cert_ttl > 0)
        st->cfg.cert_validity = o->cert_ttl;
    if ((rc = ctl_config_set_addrs(&st->cfg, o->listen ? o->listen : "127.0.0.1:1280", o->advertise,
                                   err, errcap)) < 0)
        goto undo; /* removes the directory if this call made it */
    if ((rc = make_ca_and_keys(st)) < 0 || (rc = make_store(st)) < 0)
        goto undo;
    if ((rc = ctl_config_save(&st->cfg)) < 0) {
        fail(st, rc, "writing controller.json");
        goto undo;
    }
    print_next(st, out);
    goto out;
undo:
    cleanup(st);
out:
    if (st->iss)
        ctl_issuer_free(st->iss);
    free(st->iss);
    pr_ca_free(&st->ca);
    sodium_memzero(st->sk, sizeof(st->sk));
    free(st);
    return rc;
}
