/* The CLI's side of the REST API: mTLS with the admin identity, JSON in and
 * out, and the API's error bodies turned into one line for the operator. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/httpc.h"
#include "weft/errors.h"

#define CLI_MAX_RESP (16 * 1024 * 1024)

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("weft: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERR;
}

static int set_base_url(cli_ctx *c, const char *url)
{
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--; /* "https://h:1280/" and "https://h:1280" are the same controller */
    if (len == 0 || len >= sizeof(c->base_url))
        return cli_fail("controller URL \"%s\" is empty or too long; pass --controller "
                        "https://HOST:PORT",
                        url);
    if (strncmp(url, "https://", 8) != 0)
        return cli_fail("controller URL \"%s\" must start with https://; pass --controller "
                        "https://HOST:PORT",
                        url);
    memcpy(c->base_url, url, len);
    c->base_url[len] = '\0';
    return CLI_OK;
}

int cli_connect(cli_ctx *c)
{
    char err[512];
    if (c->loaded)
        return CLI_OK;
    if (c->identity_path == NULL || c->identity_path[0] == '\0')
        return cli_fail("no admin identity file given; pass --identity FILE or set "
                        "WEFT_IDENTITY (weft-controller init writes one)");
    int rc = pr_idfile_load(c->identity_path, &c->id, err, sizeof(err));
    /* pr_idfile_load's sentence names the file and says what to do; keep ours for when not. */
    if (rc < 0 && strchr(err, ';') != NULL && strstr(err, c->identity_path) != NULL)
        return cli_fail("%s", err);
    if (rc < 0)
        return cli_fail("cannot use identity file %s: %s; check the path or pass "
                        "--identity FILE",
                        c->identity_path, err[0] ? err : weft_strerror(rc));
    c->loaded = 1;
    const char *url = c->controller && c->controller[0] ? c->controller : c->id.controller;
    if (url[0] == '\0')
        return cli_fail("identity file %s names no controller; pass --controller "
                        "https://HOST:PORT or set WEFT_CONTROLLER",
                        c->identity_path);
    return set_base_url(c, url);
}

void cli_disconnect(cli_ctx *c)
{
    if (c->loaded)
        pr_idfile_free(&c->id);
    c->loaded = 0;
}

/* Prints {"error":{"code","message"}} as one line, or a generic one. */
static int api_error(const pr_http_resp *r)
{
    json_t *root = json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    if (msg != NULL)
        cli_fail("%s (%s, HTTP %d)", msg, code ? code : "error", r->status);
    else
        cli_fail("the controller answered HTTP %d without an error message; check the "
                 "controller's log",
                 r->status);
    json_decref(root);
    return CLI_ERR;
}

static int parse_body(cli_ctx *c, const pr_http_resp *r, json_t **out)
{
    json_error_t jerr;
    *out = NULL;
    if (r->status == 204 || r->body_len == 0)
        return CLI_OK;
    *out = json_loadb(r->body, r->body_len, 0, &jerr);
    if (*out == NULL)
        return cli_fail("the controller sent malformed JSON (HTTP %d: %s); check that "
                        "--controller points to a weft controller",
                        r->status, jerr.text);
    if (c->json) {
        fwrite(r->body, 1, r->body_len, stdout);
        if (r->body[r->body_len - 1] != '\n')
            fputc('\n', stdout);
    }
    return CLI_OK;
}

int cli_call(cli_ctx *c, const char *method, const char *path, json_t *body, json_t **out)
{
    char err[512] = "";
    char *text = NULL;
    pr_http_resp r;
    int rc = cli_connect(c);
    memset(&r, 0, sizeof(r));
    *out = NULL;
    if (rc != CLI_OK)
        return rc;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
        return cli_fail("out of memory");
    pr_httpc_cfg cfg = {.ca_pem = c->id.ca_pem,
                        .cert_pem = c->id.cert_pem,
                        .key_pem = c->id.key_pem,
                        .timeout_ms = c->timeout_ms};
    rc = pr_https_request(c->base_url, &cfg, method, path, text, text ? strlen(text) : 0,
                          text ? "application/json" : NULL, &r, err, sizeof(err));
    if (rc < 0) {
        rc = cli_fail("%s", err[0] ? err : weft_strerror(rc));
    } else if (r.status >= 400 || r.status < 200) {
        rc = api_error(&r);
    } else {
        rc = parse_body(c, &r, out);
    }
    free(text);
    pr_http_resp_free(&r);
    return rc;
}

int cli_url_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL;
        if (n + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    if (n >= cap)
        return -1;
    out[n] = '\0';
    return 0;
}

int cli_ref_path(const char *coll, const char *ref, const char *suffix, char *out, size_t cap)
{
    char esc[512];
    if (cli_url_escape(ref, esc, sizeof(esc)) < 0)
        return -1;
    int n = snprintf(out, cap, "/v1/%s/%s%s", coll, esc, suffix ? suffix : "");
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}
