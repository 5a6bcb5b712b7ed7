/* Identity files (JSON, mode 0600) and the atomic file writer they share with
 * every other secret the fabric keeps on disk. A write either leaves the old
 * file or the complete new one, even across a power cut. */
#include "proto/idfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/log.h"
#include "proto/pki.h"
#include "weft/errors.h"

#define IDFILE_MAX (64 * 1024) /* three PEMs and a few names: far below this */
#define TMP_TRIES 8

/* ---- files ---- */

static int errno_to_weft(int e)
{
    switch (e) {
    case EACCES:
    case EPERM:
    case EROFS:
        return WEFT_EDENIED;
    case ENOENT:
    case ENOTDIR:
        return WEFT_ENOTFOUND;
    case ENOMEM:
        return WEFT_ENOMEM;
    default:
        return WEFT_EIO;
    }
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno_to_weft(n < 0 ? errno : EIO);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Opens "<path>.tmp-<random>" exclusively with mode 0600. */
static int open_temp(const char *path, char *tmp, size_t cap)
{
    for (int i = 0; i < TMP_TRIES; i++) {
        int n = snprintf(tmp, cap, "%s.tmp-%08x", path, (unsigned)randombytes_random());
        int fd;

        if (n < 0 || (size_t)n >= cap)
            return WEFT_EINVAL;
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return errno_to_weft(errno);
    }
    return WEFT_EEXISTS;
}

/* Makes the rename itself durable. */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : (slash == path ? 1 : (size_t)(slash - path));
    int fd, ret = 0;

    if (n >= sizeof(dir))
        return WEFT_EINVAL;
    memcpy(dir, slash == NULL ? "." : path, n);
    dir[n] = '\0';
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno_to_weft(errno);
    if (fsync(fd) < 0)
        ret = errno_to_weft(errno);
    close(fd);
    return ret;
}

int pr_write_file_secure(const char *path, const void *data, size_t len)
{
    char tmp[4096 + 32];
    int fd, ret;

    if (path == NULL || *path == '\0' || (data == NULL && len > 0))
        return WEFT_EINVAL;
    if ((fd = open_temp(path, tmp, sizeof(tmp))) < 0)
        return fd;
    /* The umask may have widened nothing (0600 is the ceiling), but be explicit. */
    ret = fchmod(fd, 0600) < 0 ? errno_to_weft(errno) : 0;
    if (ret == 0)
        ret = write_all(fd, data, len);
    if (ret == 0 && fsync(fd) < 0)
        ret = errno_to_weft(errno);
    if (close(fd) < 0 && ret == 0)
        ret = errno_to_weft(errno);
    if (ret == 0 && rename(tmp, path) < 0)
        ret = errno_to_weft(errno);
    if (ret < 0) {
        unlink(tmp);
        return ret;
    }
    return sync_dir_of(path);
}

/* Grows buf for a file that is longer than fstat said (it grew, or it lives in a
 * pseudo file system), never past limit bytes. */
static int grow(char **buf, size_t *cap, size_t limit)
{
    size_t ncap = *cap < limit / 2 ? *cap * 2 : limit;
    char *nb;

    if (*cap >= limit)
        return WEFT_ETOOBIG;
    if ((nb = realloc(*buf, ncap + 1)) == NULL)
        return WEFT_ENOMEM;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Reads at most max bytes from fd, which must be a regular file. The buffer is
 * sized from fstat (plus one byte, to notice growth), not from max. */
static int read_fd(int fd, size_t max, char **out, size_t *len)
{
    size_t limit = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;
    struct stat st;
    size_t cap, used = 0;
    char *buf;
    int ret = 0;

    if (fstat(fd, &st) < 0)
        return errno_to_weft(errno);
    if (!S_ISREG(st.st_mode))
        return WEFT_EINVAL;
    if ((uint64_t)st.st_size > max)
        return WEFT_ETOOBIG;
    cap = (size_t)st.st_size + 1;
    if ((buf = malloc(cap + 1)) == NULL)
        return WEFT_ENOMEM;
    for (;;) {
        ssize_t n;

        if (used == cap && (ret = grow(&buf, &cap, limit)) < 0)
            break;
        n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? errno_to_weft(errno) : 0;
            break;
        }
        used += (size_t)n;
    }
    if (ret == 0 && used > max)
        ret = WEFT_ETOOBIG;
    if (ret < 0) {
        free(buf);
        return ret;
    }
    buf[used] = '\0';
    *out = buf;
    if (len != NULL)
        *len = used;
    return 0;
}

int pr_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd, ret;

    if (path == NULL || out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
        return errno_to_weft(errno);
    ret = read_fd(fd, max, out, len);
    close(fd);
    return ret;
}

/* ---- identity files ---- */

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static const char *remedy(const char *kind)
{
    if (strcmp(kind, "router") == 0)
        return "re-enrol the router";
    if (strcmp(kind, "admin") == 0)
        return "issue a new admin identity";
    return "re-enrol the device";
}

static int kind_known(const char *kind)
{
    return strcmp(kind, "identity") == 0 || strcmp(kind, "router") == 0 || strcmp(kind, "admin") == 0;
}

/* A required string field; "what" is left for the error message. */
static int get_str(const json_t *root, const char *field, const char **s, size_t *n, const char **what)
{
    const json_t *v = json_object_get(root, field);

    if (v == NULL) {
        *what = "missing";
        return WEFT_EINVAL;
    }
    if (!json_is_string(v)) {
        *what = "is not a string";
        return WEFT_EINVAL;
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (*n == 0) {
        *what = "is empty";
        return WEFT_EINVAL;
    }
    return 0;
}

typedef struct {
    const char *field;
    size_t off; /* offset of a char[] in pr_idfile, or of a char * for PEMs */
    size_t cap; /* 0 for PEMs (heap) */
} field_desc;

static const field_desc fields[] = {
    {"kind", offsetof(pr_idfile, kind), sizeof(((pr_idfile *)0)->kind)},
    {"id", offsetof(pr_idfile, id), sizeof(((pr_idfile *)0)->id)},
    {"name", offsetof(pr_idfile, name), sizeof(((pr_idfile *)0)->name)},
    {"network", offsetof(pr_idfile, network), sizeof(((pr_idfile *)0)->network)},
    {"controller", offsetof(pr_idfile, controller), sizeof(((pr_idfile *)0)->controller)},
    {"cert", offsetof(pr_idfile, cert_pem), 0},
    {"key", offsetof(pr_idfile, key_pem), 0},
    {"ca", offsetof(pr_idfile, ca_pem), 0},
};

static int copy_field(const json_t *root, const field_desc *f, pr_idfile *out, const char **what)
{
    const char *s = NULL;
    size_t n = 0;
    char *dst;
    int ret;

    if ((ret = get_str(root, f->field, &s, &n, what)) < 0)
        return ret;
    if (f->cap > 0) {
        if (n >= f->cap) {
            *what = "is too long";
            return WEFT_EINVAL;
        }
        memcpy((char *)out + f->off, s, n + 1);
        return 0;
    }
    if ((dst = malloc(n + 1)) == NULL) {
        *what = "cannot be held in memory";
        return WEFT_ENOMEM;
    }
    memcpy(dst, s, n + 1);
    *(char **)((char *)out + f->off) = dst;
    return 0;
}

static int check_version(const json_t *root, char *err, size_t errcap)
{
    const json_t *v = json_object_get(root, "version");

    if (v == NULL) {
        set_err(err, errcap, "field 'version' missing; re-enrol");
        return WEFT_EINVAL;
    }
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        set_err(err, errcap, "field 'version' is not 1; this weft release reads version 1 files only, "
                             "re-enrol or upgrade weft");
        return WEFT_EVERSION;
    }
    return 0;
}

static int copy_fields(const json_t *root, pr_idfile *out, char *err, size_t errcap)
{
    const char *what = "";
    int ret;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if ((ret = copy_field(root, &fields[i], out, &what)) < 0) {
            set_err(err, errcap, "field '%s' %s; %s", fields[i].field, what,
                    i == 0 ? "re-enrol" : remedy(out->kind));
            return ret;
        }
        if (i == 0 && !kind_known(out->kind)) {
            set_err(err, errcap, "field 'kind' must be identity, router or admin; re-enrol");
            return WEFT_EINVAL;
        }
    }
    return 0;
}

/* The PEMs must parse, and the key must be the certificate's. */
static int check_keys(const pr_idfile *id, char *err, size_t errcap)
{
    char fp[65];
    int m;

    if (pr_pki_fingerprint(id->cert_pem, fp) < 0) {
        set_err(err, errcap, "field 'cert' is not a PEM certificate; %s", remedy(id->kind));
        return WEFT_ECERT;
    }
    if (pr_pki_fingerprint(id->ca_pem, fp) < 0) {
        set_err(err, errcap, "field 'ca' is not a PEM certificate; %s", remedy(id->kind));
        return WEFT_ECERT;
    }
    if ((m = pr_pki_key_matches(id->cert_pem, id->key_pem)) != 1) {
        set_err(err, errcap, "field 'key' %s; %s",
                m == 0 ? "is not the private key of 'cert'" : "is not a PEM private key", remedy(id->kind));
        return WEFT_ECERT;
    }
    return 0;
}

int pr_idfile_parse(const char *json, size_t len, pr_idfile *out, char *err, size_t errcap)
{
    json_error_t jerr;
    json_t *root;
    int ret;

    if (json == NULL || out == NULL)
        return WEFT_EINVAL;
    memset(out, 0, sizeof(*out));
    set_err(err, errcap, "%s", "");
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        set_err(err, errcap, "not a JSON object (line %d: %s); restore the file or re-enrol",
                root == NULL ? jerr.line : 1, root == NULL ? jerr.text : "top level is not an object");
        json_decref(root);
        return WEFT_EJSON;
    }
    if ((ret = check_version(root, err, errcap)) == 0 && (ret = copy_fields(root, out, err, errcap)) == 0)
        ret = check_keys(out, err, errcap);
    json_decref(root);
    if (ret < 0)
        pr_idfile_free(out);
    return ret;
}

/* Other users must not read our private key, nor swap the file under us. */
static int check_mode(int fd, const char *path, char *err, size_t errcap)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return errno_to_weft(errno);
    if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        set_err(err, errcap,
                "identity file %s is accessible to every user (mode %04o); run chmod 600 %s, "
                "and re-enrol if others may have copied the key",
                path, (unsigned)(st.st_mode & 07777), path);
        return WEFT_EDENIED;
    }
    if ((st.st_mode & (S_IRGRP | S_IWGRP)) != 0)
        pr_warn("idfile_mode", "path=%s mode=%04o hint=%s", pr_log_q(path), (unsigned)(st.st_mode & 07777),
                pr_log_q("the group can read this private key; run chmod 600 on the file"));
    return 0;
}

static int load_text(const char *path, char **text, size_t *len, char *err, size_t errcap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int ret;

    if (fd < 0) {
        int e = errno;

        set_err(err, errcap, "identity file %s: %s; check the path or enrol first", path, strerror(e));
        return errno_to_weft(e);
    }
    if ((ret = check_mode(fd, path, err, errcap)) == 0 && (ret = read_fd(fd, IDFILE_MAX, text, len)) < 0)
        set_err(err, errcap, "identity file %s: %s; pass the identity file written by enrolment", path,
                ret == WEFT_ETOOBIG ? "too large" : weft_strerror(ret));
    close(fd);
    return ret;
}

int pr_idfile_load(const char *path, pr_idfile *out, char *err, size_t errcap)
{
    char msg[512];
    char *text = NULL;
    size_t len = 0;
    int ret;

    if (path == NULL || out == NULL)
        return WEFT_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((ret = load_text(path, &text, &len, err, errcap)) < 0)
        return ret;
    if ((ret = pr_idfile_parse(text, len, out, msg, sizeof(msg))) < 0)
        set_err(err, errcap, "identity file %s: %s", path, msg);
    sodium_memzero(text, len);
    free(text);
    return ret;
}

static int check_for_save(const pr_idfile *id)
{
    if (!kind_known(id->kind) || id->id[0] == '\0' || id->name[0] == '\0' || id->network[0] == '\0' ||
        id->controller[0] == '\0')
        return WEFT_EINVAL;
    if (id->cert_pem == NULL || id->key_pem == NULL || id->ca_pem == NULL)
        return WEFT_EINVAL;
    return 0;
}

int pr_idfile_save(const char *path, const pr_idfile *id)
{
    json_t *root;
    char *text = NULL;
    int ret;

    if (path == NULL || id == NULL || check_for_save(id) < 0)
        return WEFT_EINVAL;
    root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version", 1, "kind", id->kind, "id",
                     id->id, "name", id->name, "network", id->network, "controller", id->controller, "cert",
                     id->cert_pem, "key", id->key_pem, "ca", id->ca_pem);
    if (root == NULL)
        return WEFT_EINVAL; /* json_pack refuses strings that are not UTF-8 */
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL)
        return WEFT_ENOMEM;
    ret = pr_write_file_secure(path, text, strlen(text));
    sodium_memzero(text, strlen(text));
    free(text);
    return ret;
}

void pr_idfile_free(pr_idfile *id)
{
    if (id == NULL)
        return;
    free(id->cert_pem);
    if (id->key_pem != NULL) {
        sodium_memzero(id->key_pem, strlen(id->key_pem));
        free(id->key_pem);
    }
    free(id->ca_pem);
    memset(id, 0, sizeof(*id));
}
