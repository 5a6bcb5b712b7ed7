/* Intermediate CAs (docs/bootstrap.md): the root (ca.pem) signs an
 * intermediate, the intermediate signs every leaf, and each leaf travels with
 * its intermediate (identity files, enrolment and renewal answers, TLS
 * handshakes). Every verifier trusts the root only, so leaves of the previous
 * intermediate and of the new one both verify while they overlap, and the
 * root fingerprint pinned in tokens and factory images never changes.
 *
 * DIR/intermediates.json lists them:
 *   {"active":"intermediate-2","intermediates":[
 *     {"name":"intermediate-1","created":T,"not_after":T,"retired":T},
 *     {"name":"intermediate-2","created":T,"not_after":T}]}
 * with DIR/<name>.pem (0644) and DIR/<name>.key (0600, encrypted like ca.key).
 * A data directory without that file is an older one: the root signs leaves.
 * Once intermediates exist, `run` never reads ca.key: the root key is needed
 * only by `ca rotate` and may be kept offline in between. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "controller/controller.h"
#include "proto/idfile.h"
#include "proto/log.h"
#include "weft/errors.h"

#define LIST_MAX        (256 * 1024)
#define MIN_LIFETIME    (365LL * 86400)
#define NAME_PREFIX     "intermediate-"
#define NAME_CAP        48

static int file_path(char *out, size_t cap, const char *dir, const char *name, const char *ext)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, name, ext);

    return n < 0 || (size_t)n >= cap ? WEFT_EINVAL : 0;
}

/* The list, or NULL with 0 when the directory has none yet. */
static int list_load(const char *dir, json_t **out, char *err, size_t errcap)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    if ((rc = file_path(path, sizeof(path), dir, CTL_INTERMEDIATES_FILE, "")) < 0)
        return rc;
    if ((rc = pr_read_file(path, LIST_MAX, &text, &len)) == WEFT_ENOTFOUND ||
        (rc < 0 && access(path, F_OK) != 0))
        return 0;
    if (rc < 0) {
        ctl_errf(err, errcap, "cannot read %s (%s)", path, weft_strerror(rc));
        return rc;
    }
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (!json_is_object(*out) || !json_is_string(json_object_get(*out, "active")) ||
        !json_is_array(json_object_get(*out, "intermediates"))) {
        json_decref(*out);
        *out = NULL;
        ctl_errf(err, errcap, "%s is damaged; restore it from a backup", path);
        return WEFT_EJSON;
    }
    return 0;
}

static int list_save(const char *dir, json_t *list)
{
    char path[PATH_MAX];
    char *text;
    int rc;

    if ((rc = file_path(path, sizeof(path), dir, CTL_INTERMEDIATES_FILE, "")) < 0)
        return rc;
    if ((text = json_dumps(list, JSON_INDENT(2))) == NULL)
        return WEFT_ENOMEM;
    rc = pr_write_file_secure(path, text, strlen(text));
    free(text);
    return rc;
}

/* The number after "intermediate-" of the newest entry, 0 if none. */
static long last_number(json_t *list)
{
    json_t *items = json_object_get(list, "intermediates"), *it;
    size_t i;
    long max = 0;

    json_array_foreach(items, i, it) {
        const char *n = json_string_value(json_object_get(it, "name"));
        long v;

        if (n && strncmp(n, NAME_PREFIX, strlen(NAME_PREFIX)) == 0 &&
            (v = strtol(n + strlen(NAME_PREFIX), NULL, 10)) > max)
            max = v;
    }
    return max;
}

/* Retires the active intermediate: nothing signs with it again, so its key
 * goes; its certificate stays, for the record and for offline checks. */
static void retire_active(const char *dir, json_t *list, int64_t now)
{
    const char *active = json_string_value(json_object_get(list, "active"));
    json_t *items = json_object_get(list, "intermediates"), *it;
    char path[PATH_MAX];
    size_t i;

    if (active == NULL)
        return;
    json_array_foreach(items, i, it) {
        if (strcmp(json_string_value(json_object_get(it, "name")) ?: "", active) == 0)
            json_object_set_new(it, "retired", json_integer(now));
    }
    if (file_path(path, sizeof(path), dir, active, ".key") == 0 && unlink(path) < 0 &&
        errno != ENOENT)
        pr_warn("ca_key_unlink_failed", "path=%s hint=%s", pr_log_q(path),
                pr_log_q("remove the retired intermediate key by hand"));
}

static int write_new(const char *dir, const char *name, const pr_ca *ica, const char *passphrase)
{
    char path[PATH_MAX];
    int rc;

    if ((rc = file_path(path, sizeof(path), dir, name, ".key")) < 0 ||
        (rc = ctl_cakey_save(path, ica->key_pem, passphrase)) < 0)
        return rc;
    if ((rc = file_path(path, sizeof(path), dir, name, ".pem")) < 0 ||
        (rc = pr_write_file_secure(path, ica->cert_pem, strlen(ica->cert_pem))) < 0)
        return rc;
    return chmod(path, 0644) < 0 ? WEFT_EIO : 0;
}

static int record_new(json_t *list, const char *name, int64_t now, int64_t not_after)
{
    json_t *e = json_pack("{s:s, s:I, s:I}", "name", name, "created", (json_int_t)now,
                          "not_after", (json_int_t)not_after);

    if (e == NULL || json_array_append_new(json_object_get(list, "intermediates"), e) < 0)
        return WEFT_ENOMEM;
    return json_object_set_new(list, "active", json_string(name)) < 0 ? WEFT_ENOMEM : 0;
}

int ctl_ca_rotate(const char *dir, const char *network, const pr_ca *root, const char *passphrase,
                  int64_t cert_validity, char *name, size_t namecap, pr_ca *keep, char *err,
                  size_t errcap)
{
    int64_t now = time(NULL), life = 2 * cert_validity, not_after = 0;
    char cn[160];
    json_t *list = NULL;
    pr_ca ica = {0};
    int rc;

    if ((rc = list_load(dir, &list, err, errcap)) < 0)
        return rc;
    if (list == NULL &&
        (list = json_pack("{s:s, s:[]}", "active", "", "intermediates")) == NULL)
        return WEFT_ENOMEM;
    snprintf(name, namecap, NAME_PREFIX "%ld", last_number(list) + 1);
    snprintf(cn, sizeof(cn), "%s Intermediate CA %ld", network, last_number(list) + 1);
    /* Long enough to outlive every leaf it signs by a wide margin. */
    if (life < MIN_LIFETIME)
        life = MIN_LIFETIME;
    if ((rc = pr_ca_create_intermediate(root, cn, now + life, &ica)) < 0 ||
        (rc = pr_pki_cert_not_after(ica.cert_pem, &not_after)) < 0) {
        ctl_errf(err, errcap, "cannot make the intermediate (%s); is ca.key the key of ca.pem?",
                 weft_strerror(rc));
        goto out;
    }
    if ((rc = write_new(dir, name, &ica, passphrase)) < 0) {
        ctl_errf(err, errcap, "cannot write %s/%s.pem and .key (%s)", dir, name,
                 weft_strerror(rc));
        goto out;
    }
    retire_active(dir, list, now);
    if ((rc = record_new(list, name, now, not_after)) < 0 || (rc = list_save(dir, list)) < 0)
        ctl_errf(err, errcap, "cannot write %s/%s (%s)", dir, CTL_INTERMEDIATES_FILE,
                 weft_strerror(rc));
    if (rc == 0 && keep != NULL) {
        *keep = ica; /* handed over */
        ica = (pr_ca){0};
    }
out:
    if (ica.key_pem)
        sodium_memzero(ica.key_pem, strlen(ica.key_pem));
    pr_ca_free(&ica);
    json_decref(list);
    return rc;
}

/* ---- the running controller's issuer ---- */

static int strdup_ca(pr_ca *dst, const char *cert, const char *key)
{
    dst->cert_pem = strdup(cert);
    dst->key_pem = strdup(key);
    return dst->cert_pem && dst->key_pem ? 0 : WEFT_ENOMEM;
}

/* Older data directories: the root key is loaded and signs leaves itself. */
static int load_root_issuer(ctl *c, char *err, size_t errcap)
{
    int rc;

    if ((rc = ctl_cakey_load(c->cfg.ca_key, &c->ca.key_pem, err, errcap)) < 0)
        return rc;
    if ((rc = strdup_ca(&c->issuer, c->ca.cert_pem, c->ca.key_pem)) < 0 ||
        (rc = pr_pki_cert_not_after(c->ca.cert_pem, &c->issuer_not_after)) < 0)
        ctl_errf(err, errcap, "cannot load the CA (%s)", weft_strerror(rc));
    c->issuer_is_intermediate = 0;
    return rc;
}

static int check_intermediate(ctl *c, const char *name, char *err, size_t errcap)
{
    int rc = pr_pki_verify(c->issuer.cert_pem, c->ca.cert_pem);

    if (rc < 0) {
        ctl_errf(err, errcap,
                 "%s.pem does not verify against ca.pem (%s); restore both from the same backup",
                 name, weft_strerror(rc));
        return rc;
    }
    if (pr_pki_key_matches(c->issuer.cert_pem, c->issuer.key_pem) != 1) {
        ctl_errf(err, errcap, "%s.key is not the key of %s.pem; restore it from a backup", name,
                 name);
        return WEFT_ECERT;
    }
    return pr_pki_cert_not_after(c->issuer.cert_pem, &c->issuer_not_after);
}

static void warn_if_ageing(const ctl *c, const char *name)
{
    char when[32];

    if (c->issuer_not_after - (int64_t)time(NULL) > 2 * c->cfg.cert_validity)
        return;
    ctl_rfc3339(c->issuer_not_after, when);
    pr_warn("intermediate_expiring", "name=%s not_after=%s hint=%s", name, when,
            pr_log_q("run 'weft-controller ca rotate --dir DIR' and restart"));
}

int ctl_issuer_load(ctl *c, char *err, size_t errcap)
{
    char path[PATH_MAX];
    const char *name;
    json_t *list = NULL;
    int rc;

    if ((rc = list_load(c->cfg.dir, &list, err, errcap)) < 0)
        return rc;
    if (list == NULL)
        return load_root_issuer(c, err, errcap);
    name = json_string_value(json_object_get(list, "active"));
    if ((rc = file_path(path, sizeof(path), c->cfg.dir, name, ".pem")) < 0 ||
        (rc = ctl_read_pem(path, &c->issuer.cert_pem, err, errcap)) < 0)
        goto out;
    if ((rc = file_path(path, sizeof(path), c->cfg.dir, name, ".key")) < 0 ||
        (rc = ctl_cakey_load(path, &c->issuer.key_pem, err, errcap)) < 0)
        goto out;
    if ((rc = check_intermediate(c, name, err, errcap)) < 0)
        goto out;
    c->issuer_is_intermediate = 1;
    warn_if_ageing(c, name);
out:
    json_decref(list);
    return rc;
}

void ctl_issuer_free(ctl *c)
{
    if (c->issuer.key_pem)
        sodium_memzero(c->issuer.key_pem, strlen(c->issuer.key_pem));
    pr_ca_free(&c->issuer);
}

/* leaf + "\n"? + intermediate, replacing *leaf. */
static int chain_append(char **leaf, const char *intermediate)
{
    size_t a = strlen(*leaf), b = strlen(intermediate);
    int nl = a > 0 && (*leaf)[a - 1] != '\n';
    char *s = malloc(a + (size_t)nl + b + 1);

    if (s == NULL)
        return WEFT_ENOMEM;
    memcpy(s, *leaf, a);
    if (nl)
        s[a] = '\n';
    memcpy(s + a + nl, intermediate, b + 1);
    free(*leaf);
    *leaf = s;
    return 0;
}

static pr_cert_req capped(const ctl *c, const pr_cert_req *req)
{
    pr_cert_req r = *req;

    if (c->issuer_not_after > 0 && r.not_after > c->issuer_not_after)
        r.not_after = c->issuer_not_after;
    return r;
}

static int finish_chain(const ctl *c, int rc, char **cert_pem)
{
    if (rc < 0 || !c->issuer_is_intermediate)
        return rc;
    if ((rc = chain_append(cert_pem, c->issuer.cert_pem)) < 0) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
    return rc;
}

int ctl_ca_sign(const ctl *c, const char *csr_pem, const pr_cert_req *req, char **cert_pem,
                char serial_hex[33])
{
    pr_cert_req r;

    if (c == NULL || req == NULL || cert_pem == NULL || c->issuer.key_pem == NULL)
        return WEFT_EINVAL;
    r = capped(c, req);
    return finish_chain(c, pr_ca_sign_csr(&c->issuer, csr_pem, &r, cert_pem, serial_hex),
                        cert_pem);
}

int ctl_ca_issue(const ctl *c, const pr_cert_req *req, char **cert_pem, char **key_pem)
{
    pr_cert_req r;
    int rc;

    if (c == NULL || req == NULL || cert_pem == NULL || c->issuer.key_pem == NULL)
        return WEFT_EINVAL;
    r = capped(c, req);
    rc = finish_chain(c, pr_ca_issue(&c->issuer, &r, cert_pem, key_pem), cert_pem);
    if (rc < 0 && *key_pem) {
        sodium_memzero(*key_pem, strlen(*key_pem));
        free(*key_pem);
        *key_pem = NULL;
    }
    return rc;
}

/* ---- weft-controller ca rotate ---- */

static const char usage_ca[] =
    "usage: weft-controller ca rotate --dir DIR [--ca-passphrase-file FILE]\n"
    "\n"
    "Makes a new intermediate CA signed by the root (ca.pem, ca.key) and makes it\n"
    "the issuer of new certificates. Certificates from the previous intermediate\n"
    "stay valid until they expire (renewal moves every device over); the root,\n"
    "and the fingerprint in tokens and factory images, stay the same.\n"
    "Restart 'weft-controller run' to issue with the new intermediate.\n"
    "  --ca-passphrase-file FILE\n"
    "                        passphrase of an encrypted ca.key (or WEFT_CA_PASSPHRASE);\n"
    "                        the new intermediate key is encrypted with it too\n";

static int rotate_dir(const char *dir, char *err, size_t errcap)
{
    ctl_config cfg;
    pr_ca root = {0};
    char *pass = NULL, name[NAME_CAP];
    int rc;

    if ((rc = ctl_config_load(&cfg, dir, err, errcap)) < 0 ||
        (rc = ctl_read_pem(cfg.ca_cert, &root.cert_pem, err, errcap)) < 0 ||
        (rc = ctl_cakey_load(cfg.ca_key, &root.key_pem, err, errcap)) < 0)
        goto out;
    if (ctl_cakey_encrypted(cfg.ca_key) && (rc = ctl_cakey_passphrase(&pass, err, errcap)) < 0)
        goto out;
    if ((rc = ctl_ca_rotate(cfg.dir, cfg.name, &root, pass, cfg.cert_validity, name, sizeof(name),
                            NULL, err, errcap)) < 0)
        goto out;
    printf("%s is now the issuing intermediate (%s/%s.pem).\n"
           "Certificates issued before stay valid until they expire (at most %lld s).\n"
           "Restart 'weft-controller run --dir %s' to issue with it.\n",
           name, cfg.dir, name, (long long)cfg.cert_validity, dir);
out:
    if (pass)
        sodium_memzero(pass, strlen(pass));
    free(pass);
    if (root.key_pem)
        sodium_memzero(root.key_pem, strlen(root.key_pem));
    pr_ca_free(&root);
    return rc;
}

int ctl_cmd_ca(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"ca-passphrase-file", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL;
    char err[512] = "";
    int ch;

    if (argc < 2 || strcmp(argv[1], "rotate") != 0) {
        fputs(usage_ca, argc >= 2 && (strcmp(argv[1], "--help") == 0) ? stdout : stderr);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "d:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            dir = optarg;
            break;
        case 'P':
            setenv(CTL_CA_PASSPHRASE_FILE_ENV, optarg, 1);
            break;
        case 'h':
            fputs(usage_ca, stdout);
            return 0;
        default:
            fputs(usage_ca, stderr);
            return 2;
        }
    }
    if (dir == NULL || optind != argc - 1) {
        fputs("weft-controller ca rotate: --dir DIR is required\n", stderr);
        fputs(usage_ca, stderr);
        return 2;
    }
    pr_log_init("controller", PR_LOG_WARN);
    if (rotate_dir(dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "weft-controller ca rotate: %s\n", err);
        return 1;
    }
    return 0;
}
