/* POST /v1/renew: an identity or router with a valid certificate asks for a
 * new one, for a NEW key (a CSR), with the same identity URI (docs/bootstrap.md).
 * The old certificate stays valid until it expires: sessions and circuits
 * made with it are never cut, and there is nothing to revoke. Disabling an
 * identity is what revokes it, and a disabled identity cannot renew. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/controller.h"
#include "proto/addr.h"
#include "proto/ident.h"
#include "proto/log.h"
#include "weft/errors.h"

#define CSR_MAX (16 * 1024)

static int refuse(ctl_call *call, int status, const char *code, const char *msg)
{
    pr_warn("peer_denied", "peer=%s uri=%s path=%s code=%s", call->req->peer_addr,
            call->req->peer_uri ? pr_log_q(call->req->peer_uri) : "-", pr_log_q(call->req->path),
            code);
    ctl_reply_error(call, status, code, "%s", msg);
    return WEFT_EDENIED;
}

int ctl_peer_subject(ctl_call *call, int want, int *kind, json_t **rec)
{
    char td[PR_TRUST_DOMAIN_MAX + 1], id[PR_ID_MAX + 1];
    const char *uri = call->req->peer_uri;

    *rec = NULL;
    if (uri == NULL)
        return refuse(call, 401, "unauthenticated",
                      "this route needs the certificate of an enrolled identity or router: use "
                      "its identity file");
    if (pr_ident_parse(uri, kind, td, sizeof(td), id, sizeof(id)) < 0 ||
        strcmp(td, call->c->cfg.name) != 0 || (want != 0 && *kind != want) ||
        (*kind != PR_IDENT_IDENTITY && *kind != PR_IDENT_ROUTER) ||
        ctl_store_get(call->c->store, *kind == PR_IDENT_ROUTER ? "routers" : "identities", id,
                      rec) < 0 ||
        strcmp(json_string_value(json_object_get(*rec, "id")) ?: "", id) != 0) {
        json_decref(*rec);
        *rec = NULL;
        return refuse(call, 403, "forbidden",
                      "this certificate is not that of an existing identity or router of this "
                      "network; enrol again");
    }
    if (json_is_true(json_object_get(*rec, "disabled"))) {
        json_decref(*rec);
        *rec = NULL;
        return refuse(call, 403, "disabled",
                      "this identity is disabled (revoked); ask the administrator to enable it");
    }
    return 0;
}

/* Router certificates also serve TLS: they name the hosts routers listen on. */
static void listen_san(const char *addr, char *host, size_t cap, const char **dns, int *nd,
                       const char **ips, int *ni)
{
    unsigned char buf[16];
    unsigned port;

    if (addr == NULL || pr_addr_split(addr, host, cap, &port) < 0 || host[0] == '\0' ||
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        return;
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        ips[(*ni)++] = host;
    else
        dns[(*nd)++] = host;
}

static int issue(ctl_call *call, int kind, json_t *rec, const char *csr, char **cert,
                 int64_t *not_after)
{
    ctl *c = call->c;
    char uri[PR_URI_MAX], serial[33], h1[256], h2[256];
    const char *dns[3] = {0}, *ips[3] = {0};
    int nd = 0, ni = 0, router = kind == PR_IDENT_ROUTER;
    pr_cert_req req;

    snprintf(uri, sizeof(uri), "%s", call->req->peer_uri);
    if (router) {
        listen_san(json_string_value(json_object_get(rec, "edge_listen")), h1, sizeof(h1), dns,
                   &nd, ips, &ni);
        listen_san(json_string_value(json_object_get(rec, "link_listen")), h2, sizeof(h2), dns,
                   &nd, ips, &ni);
    }
    *not_after = time(NULL) + c->cfg.cert_validity;
    req = (pr_cert_req){.cn = json_string_value(json_object_get(rec, "name")),
                        .uri = uri,
                        .dns = nd ? dns : NULL,
                        .ips = ni ? ips : NULL,
                        .usage = router ? PR_CERT_BOTH : PR_CERT_CLIENT,
                        .not_after = *not_after};
    return ctl_ca_sign(c, csr, &req, cert, serial);
}

static void answer(ctl_call *call, int kind, json_t *rec, const char *cert, int64_t not_after)
{
    const char *coll = kind == PR_IDENT_ROUTER ? "routers" : "identities";
    const char *id = json_string_value(json_object_get(rec, "id"));
    char fp[65], when[32];
    json_t *fields;
    int rc;

    if (pr_pki_fingerprint(cert, fp) < 0 ||
        (fields = json_pack("{s:s}", "cert_fingerprint", fp)) == NULL) {
        ctl_reply_error(call, 500, "internal", "cannot record the new certificate; retry");
        return;
    }
    rc = ctl_store_update(call->c->store, coll, id, fields);
    json_decref(fields);
    if (rc < 0) {
        ctl_reply_store_error(call, rc, kind == PR_IDENT_ROUTER ? "router" : "identity", id);
        return;
    }
    ctl_rfc3339(not_after, when);
    pr_info("renewed", "kind=%s id=%s fingerprint=%s not_after=%s peer=%s",
            kind == PR_IDENT_ROUTER ? "router" : "identity", id, fp, when, call->req->peer_addr);
    ctl_reply_data(call, 200,
                   json_pack("{s:s, s:s, s:s, s:s}", "id", id, "cert", cert, "ca",
                             call->c->ca.cert_pem, "not_after", when));
}

void ctl_api_renew(ctl_call *call)
{
    static const char *const allowed[] = {"csr", NULL};
    json_t *body = NULL, *rec = NULL;
    const char *csr;
    char *cert = NULL;
    int64_t not_after = 0;
    int kind = 0, rc;

    if (ctl_peer_subject(call, 0, &kind, &rec) < 0 || ctl_body(call, allowed, &body) < 0 ||
        ctl_field_str(call, body, "csr", 1, &csr) < 0)
        goto out;
    if (strlen(csr) > CSR_MAX || (rc = issue(call, kind, rec, csr, &cert, &not_after)) < 0) {
        ctl_reply_error(call, 400, "bad_csr",
                        "the CSR is not a valid PEM CSR for a P-256 key; generate a new key and "
                        "CSR");
        goto out;
    }
    answer(call, kind, rec, cert, not_after);
out:
    free(cert);
    json_decref(rec);
    json_decref(body);
}
