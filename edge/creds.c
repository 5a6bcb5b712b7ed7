/* Tier-2 credentials on the device: fetch, write 0600, prune (edge/creds.h). */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "edge/creds.h"
#include "proto/httpc.h"
#include "proto/idfile.h"
#include "proto/log.h"
#include "weft/errors.h"

#define CRED_FILE_MAX (512 * 1024) /* the controller's limit for all files together */

/* Names come from the controller: checked again here so that none can leave DIR. */
static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n >= EDGE_CRED_NAME_MAX || s[0] == '.')
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int fail(char *err, size_t errlen, int rc, const char *what, const char *name)
{
    snprintf(err, errlen, "%s%s%s", what, name ? " " : "", name ? name : "");
    return rc;
}

static int mkdir_private(const char *path, char *err, size_t errlen)
{
    if ((mkdir(path, 0700) < 0 && errno != EEXIST) || chmod(path, 0700) < 0) {
        snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
        return WEFT_EIO;
    }
    return 0;
}

static int add(edge_creds_result *res, const char *cred, const char *file, const char *path,
               int state)
{
    edge_cred_entry *e;

    if (res->n == res->cap) {
        size_t ncap = res->cap ? res->cap * 2 : 16;
        edge_cred_entry *nv = realloc(res->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return WEFT_ENOMEM;
        res->v = nv;
        res->cap = ncap;
    }
    e = &res->v[res->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->cred, sizeof(e->cred), "%s", cred);
    snprintf(e->file, sizeof(e->file), "%s", file);
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->state = state;
    return 0;
}

/* 1 when path already holds exactly buf (then only its mode is set again). */
static int same_bytes(const char *path, const unsigned char *buf, size_t len)
{
    char *old = NULL;
    size_t olen = 0;
    int same;

    if (pr_read_file(path, CRED_FILE_MAX, &old, &olen) < 0)
        return 0;
    same = olen == len && sodium_memcmp(old, buf, len) == 0;
    sodium_memzero(old, olen);
    free(old);
    return same && chmod(path, 0600) == 0;
}

/* Decodes one file and writes it 0600 (atomically) unless unchanged. */
static int write_one(const char *dir, const char *cred, json_t *file, edge_creds_result *res,
                     char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(file, "name"));
    const char *b64 = json_string_value(json_object_get(file, "content"));
    char path[PATH_MAX];
    unsigned char *buf;
    size_t len, cap, out = 0;
    int rc = 0, n, state = EDGE_CRED_WRITTEN;

    if (!name_ok(name) || b64 == NULL)
        return fail(err, errlen, WEFT_EPROTO, "a file with an unsafe name in credential", cred);
    n = snprintf(path, sizeof(path), "%s/%s/%s", dir, cred, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return fail(err, errlen, WEFT_ETOOBIG, "path too long for credential", cred);
    len = strlen(b64);
    cap = len / 4 * 3 + 3;
    if ((buf = malloc(cap)) == NULL)
        return fail(err, errlen, WEFT_ENOMEM, "out of memory", NULL);
    if (sodium_base642bin(buf, cap, b64, len, "\r\n", &out, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(buf);
        return fail(err, errlen, WEFT_EPROTO, "a file that is not base64 in credential", cred);
    }
    if (same_bytes(path, buf, out))
        state = EDGE_CRED_SAME;
    else if ((rc = pr_write_file_secure(path, buf, out)) < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, weft_strerror(rc));
    sodium_memzero(buf, out);
    free(buf);
    if (state == EDGE_CRED_WRITTEN && rc < 0)
        return rc;
    return add(res, cred, name, path, state);
}

/* 1 when list names a credential called name (files NULL) or, with files,
 * when that credential's file list holds name. */
static int listed(json_t *arr, const char *name)
{
    json_t *v;
    size_t i;

    json_array_foreach(arr, i, v)
    {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

static json_t *cred_files(json_t *list, const char *cred)
{
    json_t *v;
    size_t i;

    json_array_foreach(list, i, v)
    {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n != NULL && strcmp(n, cred) == 0)
            return json_object_get(v, "files");
    }
    return NULL;
}

/* Removes the files of sub (DIR/cred) that files does not list (files NULL:
 * all of them, then the directory). Only names we could have written. */
static int prune_dir(const char *sub, const char *cred, json_t *files, edge_creds_result *res)
{
    DIR *d = opendir(sub);
    struct dirent *de;
    char path[PATH_MAX];
    int n, rc = 0;

    if (d == NULL)
        return 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!name_ok(de->d_name) || (files != NULL && listed(files, de->d_name)))
            continue;
        n = snprintf(path, sizeof(path), "%s/%s", sub, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(path) || unlink(path) < 0)
            continue;
        if (files != NULL)
            rc = add(res, cred, de->d_name, path, EDGE_CRED_REMOVED);
    }
    closedir(d);
    if (rc == 0 && files == NULL && rmdir(sub) == 0)
        rc = add(res, cred, "", sub, EDGE_CRED_REMOVED);
    return rc;
}

static int prune(const char *dir, json_t *list, edge_creds_result *res)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat st;
    char sub[PATH_MAX];
    int n, rc = 0;

    if (d == NULL)
        return 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!name_ok(de->d_name))
            continue;
        n = snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(sub) || lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        rc = prune_dir(sub, de->d_name, cred_files(list, de->d_name), res);
    }
    closedir(d);
    return rc;
}

static int write_all(const char *dir, json_t *list, edge_creds_result *res, char *err,
                     size_t errlen)
{
    json_t *cred, *file;
    size_t i, j;
    char sub[PATH_MAX];
    int n, rc = mkdir_private(dir, err, errlen);

    json_array_foreach(list, i, cred)
    {
        const char *name = json_string_value(json_object_get(cred, "name"));
        if (rc < 0)
            break;
        if (!name_ok(name))
            return fail(err, errlen, WEFT_EPROTO, "a credential has an unsafe name", NULL);
        n = snprintf(sub, sizeof(sub), "%s/%s", dir, name);
        if (n < 0 || (size_t)n >= sizeof(sub))
            return fail(err, errlen, WEFT_ETOOBIG, "path too long for credential", name);
        if ((rc = mkdir_private(sub, err, errlen)) < 0)
            break;
        json_array_foreach(json_object_get(cred, "files"), j, file)
        {
            if ((rc = write_one(dir, name, file, res, err, errlen)) < 0)
                break;
        }
    }
    /* Only after every listed file is in place: a failure removes nothing. */
    if (rc == 0)
        rc = prune(dir, list, res);
    return rc;
}

int edge_creds_sync(const char *idpath, const char *dir, int timeout_ms, edge_creds_result *res,
                    char *err, size_t errlen)
{
    pr_idfile id = {0};
    pr_http_resp r = {0};
    pr_httpc_cfg cfg = {0};
    json_t *body = NULL;
    int rc;

    if ((rc = pr_idfile_load(idpath, &id, err, errlen)) < 0)
        return rc;
    cfg = (pr_httpc_cfg){.ca_pem = id.ca_pem, .cert_pem = id.cert_pem, .key_pem = id.key_pem,
                         .timeout_ms = timeout_ms};
    rc = pr_https_request(id.controller, &cfg, "GET", "/v1/edge/credentials", NULL, 0, NULL, &r,
                          err, errlen);
    if (rc < 0)
        goto out;
    body = json_loadb(r.body, r.body_len, 0, NULL);
    if (r.status != 200 || !json_is_array(json_object_get(body, "data"))) {
        const char *m = json_string_value(
            json_object_get(json_object_get(body, "error"), "message"));
        snprintf(err, errlen, "the controller refused (HTTP %d): %s", r.status,
                 m ? m : "no reason");
        rc = WEFT_EDENIED;
        goto out;
    }
    rc = write_all(dir, json_object_get(body, "data"), res, err, errlen);
out:
    if (r.body)
        sodium_memzero(r.body, r.body_len);
    json_decref(body);
    pr_http_resp_free(&r);
    pr_idfile_free(&id);
    return rc;
}

void edge_creds_result_free(edge_creds_result *res)
{
    free(res->v);
    memset(res, 0, sizeof(*res));
}

/* ---- weft-edge run --credentials-dir ----
 * The HTTPS client blocks, so each sync runs on a worker thread; the result
 * is logged on the loop. The runner is freed once its timer is closed and no
 * sync is in flight. */

#define CREDS_TIMEOUT_MS 15000

struct edge_creds_runner {
    uv_loop_t *loop;
    const char *idpath, *dir;
    uv_timer_t timer;
    uv_work_t work;
    int busy, stopping, timer_closed;
    int rc;
    edge_creds_result res;
    char err[768];
};

static void runner_maybe_free(edge_creds_runner *r)
{
    if (r->stopping && r->timer_closed && !r->busy) {
        edge_creds_result_free(&r->res);
        free(r);
    }
}

static void sync_work(uv_work_t *w)
{
    edge_creds_runner *r = w->data;

    r->err[0] = '\0';
    r->rc = edge_creds_sync(r->idpath, r->dir, CREDS_TIMEOUT_MS, &r->res, r->err,
                            sizeof(r->err));
}

/* One line per credential: its directory (the path the application reads)
 * and how many files; info when something changed, debug otherwise. */
static void log_cred(const edge_creds_result *res, size_t i, size_t *next)
{
    const edge_cred_entry *e = &res->v[i];
    size_t j, files = 0, changed = 0, removed = 0;
    char dirpath[PATH_MAX];
    const char *slash;

    for (j = i; j < res->n && strcmp(res->v[j].cred, e->cred) == 0; j++) {
        files += res->v[j].state != EDGE_CRED_REMOVED;
        changed += res->v[j].state == EDGE_CRED_WRITTEN;
        removed += res->v[j].state == EDGE_CRED_REMOVED;
    }
    *next = j;
    snprintf(dirpath, sizeof(dirpath), "%s", e->path);
    if (e->file[0] != '\0' && (slash = strrchr(dirpath, '/')) != NULL)
        dirpath[slash - dirpath] = '\0';
    if (files == 0)
        pr_info("edge_credential_removed", "name=%s path=%s", e->cred, pr_log_q(dirpath));
    else if (changed || removed)
        pr_info("edge_credential", "name=%s path=%s files=%zu changed=%zu removed=%zu", e->cred,
                pr_log_q(dirpath), files, changed, removed);
    else
        pr_debug("edge_credential", "name=%s path=%s files=%zu changed=0", e->cred,
                 pr_log_q(dirpath), files);
}

static void sync_done(uv_work_t *w, int status)
{
    edge_creds_runner *r = w->data;
    size_t i = 0;

    r->busy = 0;
    if (status == 0 && r->rc < 0)
        pr_warn("edge_credentials_failed", "dir=%s err=%s why=%s hint=%s", pr_log_q(r->dir),
                weft_err_name(r->rc), pr_log_q(r->err),
                pr_log_q("the files already there are kept; retried at the next refresh"));
    while (status == 0 && r->rc == 0 && i < r->res.n)
        log_cred(&r->res, i, &i);
    edge_creds_result_free(&r->res);
    runner_maybe_free(r);
}

static void on_timer(uv_timer_t *t)
{
    edge_creds_runner *r = t->data;

    if (r->busy || r->stopping)
        return;
    r->work.data = r;
    if (uv_queue_work(r->loop, &r->work, sync_work, sync_done) == 0)
        r->busy = 1;
}

edge_creds_runner *edge_creds_start(uv_loop_t *loop, const char *idpath, const char *dir,
                                    unsigned period_s)
{
    edge_creds_runner *r = calloc(1, sizeof(*r));
    uint64_t period = (uint64_t)(period_s ? period_s : 60) * 1000;

    if (r == NULL)
        return NULL;
    r->loop = loop;
    r->idpath = idpath;
    r->dir = dir;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, 0, period);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    edge_creds_runner *r = h->data;

    r->timer_closed = 1;
    runner_maybe_free(r);
}

void edge_creds_stop(edge_creds_runner *r)
{
    if (r == NULL || r->stopping)
        return;
    r->stopping = 1;
    if (r->busy)
        uv_cancel((uv_req_t *)&r->work); /* fails when running: sync_done frees */
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
