/* Tier-2 credentials: the secretbox at rest, the admin API (/v1/credentials:
 * create, list, show, delete; contents never shown back) and delivery to the
 * edge over its authenticated session (GET /v1/edge/credentials). */
#include "controller/credentials.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/ident.h"
#include "proto/idfile.h"
#include "proto/log.h"
#include "weft/errors.h"

#define FILES_MAX      32
#define FILE_NAME_MAX  64
#define CONTENT_MAX    (512 * 1024) /* decoded bytes, all files together */

/* ---- the key and the box ---- */

static void key_path(const char *dir, char *out, size_t cap)
{
    /* A data directory path near PATH_MAX is refused by init long before this. */
    if ((size_t)snprintf(out, cap, "%.*s/%s", (int)(cap - sizeof(CTL_SECRETS_KEY_FILE) - 2), dir,
                         CTL_SECRETS_KEY_FILE) >= cap)
        out[0] = '\0';
}

int ctl_secrets_key_create(const char *dir)
{
    unsigned char key[crypto_secretbox_KEYBYTES];
    char hex[sizeof(key) * 2 + 2], path[PATH_MAX];
    int rc;

    key_path(dir, path, sizeof(path));
    if (access(path, F_OK) == 0)
        return 0;
    crypto_secretbox_keygen(key);
    sodium_bin2hex(hex, sizeof(hex) - 1, key, sizeof(key));
    strcat(hex, "\n");
    rc = pr_write_file_secure(path, hex, strlen(hex));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(hex, sizeof(hex));
    return rc;
}

int ctl_secrets_key_load(ctl *c)
{
    char path[PATH_MAX], *text = NULL;
    size_t len = 0, bin = 0;
    int rc;

    if (c->secrets_loaded)
        return 0;
    key_path(c->cfg.dir, path, sizeof(path));
    if ((rc = ctl_secrets_key_create(c->cfg.dir)) < 0 ||
        (rc = pr_read_file(path, 1024, &text, &len)) < 0) {
        pr_error("secrets_key", "path=%s err=%s hint=%s", pr_log_q(path), weft_err_name(rc),
                 pr_log_q("make the data directory writable, or restore secrets.key"));
        return rc;
    }
    rc = sodium_hex2bin(c->secrets_key, sizeof(c->secrets_key), text, len, " \r\n", &bin, NULL) ==
                 0 && bin == sizeof(c->secrets_key)
             ? 0
             : WEFT_ECRYPTO;
    sodium_memzero(text, len);
    free(text);
    c->secrets_loaded = rc == 0;
    return rc;
}

int ctl_secrets_seal(ctl *c, const json_t *plain, char **box)
{
    char *text = NULL;
    unsigned char *buf = NULL;
    size_t tlen, blen, b64;
    int rc;

    *box = NULL;
    if ((rc = ctl_secrets_key_load(c)) < 0)
        return rc;
    if ((text = json_dumps(plain, JSON_COMPACT)) == NULL)
        return WEFT_ENOMEM;
    tlen = strlen(text);
    blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + tlen;
    b64 = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
    rc = WEFT_ENOMEM;
    if ((buf = malloc(blen)) == NULL || (*box = malloc(b64)) == NULL)
        goto out;
    randombytes_buf(buf, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(buf + crypto_secretbox_NONCEBYTES, (unsigned char *)text, tlen, buf,
                          c->secrets_key);
    sodium_bin2base64(*box, b64, buf, blen, sodium_base64_VARIANT_ORIGINAL);
    rc = 0;
out:
    sodium_memzero(text, tlen);
    free(text);
    free(buf);
    return rc;
}

int ctl_secrets_open(ctl *c, const char *box, json_t **plain)
{
    size_t len = strlen(box), blen = 0;
    unsigned char *buf = NULL, *pt = NULL;
    int rc;

    *plain = NULL;
    if ((rc = ctl_secrets_key_load(c)) < 0)
        return rc;
    rc = WEFT_ENOMEM;
    if ((buf = malloc(len)) == NULL || (pt = malloc(len + 1)) == NULL)
        goto out;
    rc = WEFT_ECRYPTO;
    if (sodium_base642bin(buf, len, box, len, NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
        goto out;
    if (crypto_secretbox_open_easy(pt, buf + crypto_secretbox_NONCEBYTES,
                                   blen - crypto_secretbox_NONCEBYTES, buf, c->secrets_key) != 0)
        goto out;
    blen -= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
    *plain = json_loadb((char *)pt, blen, 0, NULL);
    rc = *plain ? 0 : WEFT_ECRYPTO;
    sodium_memzero(pt, blen);
out:
    free(pt);
    free(buf);
    return rc;
}

/* ---- admin API ---- */

/* The record as the API shows it: everything but the box. */
static json_t *public_view(json_t *rec)
{
    json_object_del(rec, "box");
    return rec;
}

static int file_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > FILE_NAME_MAX || s[0] == '.')
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Decoded size of standard base64 text, or -1 when it is not base64. */
static long b64_size(const char *b)
{
    size_t len = strlen(b), out = 0;
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    long rc = -1;

    if (buf != NULL && sodium_base642bin(buf, len / 4 * 3 + 3, b, len, "\r\n", &out, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) == 0)
        rc = (long)out;
    if (buf)
        sodium_memzero(buf, len / 4 * 3 + 3);
    free(buf);
    return rc;
}

/* files: {"NAME": "base64 content", ...}; *names is the list of names. */
static int check_files(ctl_call *call, json_t *files, json_t **names)
{
    const char *key;
    json_t *v;
    long total = 0, n;

    *names = NULL;
    if (!json_is_object(files) || json_object_size(files) == 0 ||
        json_object_size(files) > FILES_MAX) {
        ctl_reply_error(call, 400, "bad_request",
                        "field 'files' must be an object of 1..32 entries NAME: base64 content");
        return WEFT_EINVAL;
    }
    json_object_foreach(files, key, v)
    {
        if (!file_name_ok(key) || !json_is_string(v) ||
            (n = b64_size(json_string_value(v))) < 0 || (total += n) > CONTENT_MAX) {
            ctl_reply_error(call, 400, "bad_request",
                            "file '%s': names are 1..64 characters [A-Za-z0-9._-] not starting "
                            "with '.', contents base64, at most 512 KiB in all",
                            key);
            return WEFT_EINVAL;
        }
    }
    if ((*names = json_array()) == NULL)
        return WEFT_ENOMEM;
    json_object_foreach(files, key, v) json_array_append_new(*names, json_string(key));
    return 0;
}

/* --identity names an identity by id or name; the record keeps its id. */
static int target(ctl_call *call, json_t *body, json_t *rec)
{
    const char *ident = NULL;
    json_t *roles = NULL, *irec = NULL;
    int rc;

    if (ctl_field_str(call, body, "identity", 0, &ident) < 0 ||
        ctl_field_roles(call, body, "roles", &roles) < 0)
        return WEFT_EINVAL;
    if ((ident != NULL) == (roles != NULL && json_array_size(roles) > 0)) {
        json_decref(roles);
        ctl_reply_error(call, 400, "bad_request",
                        "give exactly one of 'identity' (id or name) and 'roles' (non-empty)");
        return WEFT_EINVAL;
    }
    if (roles != NULL) {
        json_object_set_new(rec, "roles", roles);
        return 0;
    }
    if ((rc = ctl_store_get(call->c->store, "identities", ident, &irec)) < 0) {
        ctl_reply_store_error(call, rc, "identity", ident);
        return rc;
    }
    json_object_set(rec, "identity_id", json_object_get(irec, "id"));
    json_decref(irec);
    return 0;
}

static int seal_into(ctl_call *call, json_t *files, json_t *rec)
{
    json_t *plain = json_pack("{s:O}", "files", files);
    char *box = NULL;
    int rc = plain ? ctl_secrets_seal(call->c, plain, &box) : WEFT_ENOMEM;

    json_decref(plain);
    if (rc < 0) {
        ctl_reply_error(call, 500, "internal",
                        "cannot encrypt the credential (%s); check secrets.key in the data "
                        "directory",
                        weft_strerror(rc));
        return rc;
    }
    json_object_set_new(rec, "box", json_string(box));
    free(box);
    return 0;
}

static void reply_created(ctl_call *call, json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *stored = NULL;
    int rc = ctl_store_create(call->c->store, "credentials", rec);

    if (rc == 0)
        rc = ctl_store_get(call->c->store, "credentials", id, &stored);
    if (rc < 0) {
        ctl_reply_store_error(call, rc, "credential",
                              json_string_value(json_object_get(rec, "name")));
        return;
    }
    pr_info("created", "kind=credential id=%s name=%s files=%zu", id,
            pr_log_q(json_string_value(json_object_get(rec, "name"))),
            json_array_size(json_object_get(rec, "files")));
    ctl_reply_data(call, 201, public_view(stored));
}

void ctl_api_credentials_create(ctl_call *call)
{
    static const char *const allowed[] = {"name", "identity", "roles", "files", NULL};
    char id[PR_ID_MAX + 1];
    json_t *body = NULL, *rec = NULL, *names = NULL;
    const char *name;

    if (ctl_body(call, allowed, &body) < 0 || ctl_field_name(call, body, "name", 1, &name) < 0 ||
        check_files(call, json_object_get(body, "files"), &names) < 0)
        goto out;
    pr_ident_new_id(id, sizeof(id));
    if ((rec = json_pack("{s:s, s:s, s:O}", "id", id, "name", name, "files", names)) == NULL)
        goto out;
    if (target(call, body, rec) < 0 || seal_into(call, json_object_get(body, "files"), rec) < 0)
        goto out;
    reply_created(call, rec);
out:
    if (!call->answered)
        ctl_reply_error(call, 500, "internal", "out of memory; retry");
    json_decref(names);
    json_decref(rec);
    json_decref(body);
}

static int query_num(ctl_call *call, const char *key, long max, int *out)
{
    char buf[24], *end;
    long v;

    if (ctl_http_query(call->req, key, buf, sizeof(buf)) == NULL)
        return 0;
    v = strtol(buf, &end, 10);
    if (buf[0] == '\0' || *end != '\0' || v < 0 || v > max) {
        ctl_reply_error(call, 400, "bad_request", "query parameter '%s' must be 0..%ld", key,
                        max);
        return WEFT_EINVAL;
    }
    *out = (int)v;
    return 1;
}

void ctl_api_credentials_list(ctl_call *call)
{
    char name[CTL_NAME_MAX + 2];
    ctl_list_opts o = {.limit = 100};
    json_t *items = NULL, *r;
    int64_t total = 0;
    size_t i;
    int rc;

    if (query_num(call, "limit", 1000, &o.limit) < 0 ||
        query_num(call, "offset", 1000000000, &o.offset) < 0)
        return;
    if (o.limit == 0)
        o.limit = 100;
    o.name = ctl_http_query(call->req, "name", name, sizeof(name));
    if ((rc = ctl_store_list(call->c->store, "credentials", &o, &items, &total)) < 0) {
        ctl_reply_store_error(call, rc, "credentials", "");
        return;
    }
    json_array_foreach(items, i, r) public_view(r);
    ctl_reply(call, 200,
              json_pack("{s:o, s:{s:I, s:i, s:i}}", "data", items, "meta", "total",
                        (json_int_t)total, "limit", o.limit, "offset", o.offset));
}

void ctl_api_credentials_get(ctl_call *call)
{
    json_t *rec;

    if (ctl_load(call, "credentials", "credential", &rec) == 0)
        ctl_reply_data(call, 200, public_view(rec));
}

void ctl_api_credentials_delete(ctl_call *call)
{
    ctl_delete(call, "credentials", "credential");
}

/* ---- delivery to the edge ---- */

static int applies(json_t *cred, const char *id, json_t *roles)
{
    json_t *r, *mine;
    size_t i, j;

    if (strcmp(json_string_value(json_object_get(cred, "identity_id")) ?: "", id) == 0)
        return 1;
    json_array_foreach(json_object_get(cred, "roles"), i, r)
    {
        json_array_foreach(roles, j, mine) if (json_equal(r, mine)) return 1;
    }
    return 0;
}

/* {"name", "files": [{"name", "content" (base64)}]} for one credential. */
static int deliverable(ctl_call *call, json_t *cred, json_t **out)
{
    json_t *plain = NULL, *files, *v, *list;
    const char *key;
    int rc = ctl_secrets_open(call->c, json_string_value(json_object_get(cred, "box")) ?: "",
                              &plain);

    if (rc < 0) {
        pr_error("credential_unreadable", "id=%s err=%s hint=%s",
                 json_string_value(json_object_get(cred, "id")), weft_err_name(rc),
                 pr_log_q("secrets.key is not the key this credential was sealed with: restore "
                          "it from the backup, or recreate the credential"));
        return rc;
    }
    files = json_object_get(plain, "files");
    list = json_array();
    json_object_foreach(files, key, v)
        json_array_append_new(list, json_pack("{s:s, s:O}", "name", key, "content", v));
    *out = json_pack("{s:O, s:o}", "name", json_object_get(cred, "name"), "files", list);
    json_decref(plain);
    return *out ? 0 : WEFT_ENOMEM;
}

void ctl_api_edge_credentials(ctl_call *call)
{
    json_t *ident = NULL, *all = NULL, *out = json_array(), *cred, *one;
    const char *id;
    size_t i;
    int kind, rc;

    if (ctl_peer_subject(call, PR_IDENT_IDENTITY, &kind, &ident) < 0)
        goto out;
    id = json_string_value(json_object_get(ident, "id"));
    if ((rc = ctl_list_all(call->c->store, "credentials", &all)) < 0) {
        ctl_reply_store_error(call, rc, "credentials", "");
        goto out;
    }
    json_array_foreach(all, i, cred)
    {
        if (!applies(cred, id, json_object_get(ident, "roles")))
            continue;
        if (deliverable(call, cred, &one) < 0) {
            ctl_reply_error(call, 500, "internal",
                            "a credential cannot be decrypted; the administrator checks the "
                            "controller's log");
            goto out;
        }
        json_array_append_new(out, one);
    }
    pr_info("credentials_delivered", "id=%s count=%zu peer=%s", id, json_array_size(out),
            call->req->peer_addr);
    ctl_reply_data(call, 200, json_incref(out));
out:
    json_decref(out);
    json_decref(all);
    json_decref(ident);
}
