/* The identity's services: GET /v1/edge/session on a worker thread (the
 * blocking HTTPS client and getaddrinfo stay off the loop), parsed into
 * edge_svc records with resolved intercept and host addresses.
 *
 * libweft fetches the same document for its tokens but does not expose the
 * intercept and host addresses, so the agent reads them itself. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "proto/addr.h"
#include "proto/httpc.h"
#include "proto/idfile.h"
#include "proto/log.h"

#define FETCH_RETRY_MAX_MS 30000
#define REFRESH_DEFAULT_S  60

typedef struct {
    edge_agent *a;
    int rc;
    char err[256];
    edge_svc *svcs;
    size_t n;
    unsigned refresh_s;
} fetch_job;

int edge_ep_parse(const char *s, edge_ep *ep)
{
    char host[256];
    unsigned port;

    memset(ep, 0, sizeof(*ep));
    if (s == NULL || s[0] == '\0')
        return WEFT_EADDR;
    ep->proto = EDGE_TCP;
    if (strncmp(s, "udp:", 4) == 0)
        ep->proto = EDGE_UDP;
    if (strncmp(s, "udp:", 4) == 0 || strncmp(s, "tcp:", 4) == 0)
        s += 4;
    if (strlen(s) >= sizeof(ep->text) || pr_addr_split(s, host, sizeof(host), &port) < 0 ||
        port == 0)
        return WEFT_EADDR;
    memcpy(ep->text, s, strlen(s) + 1);
    return 0;
}

int edge_ep_resolve(edge_ep *ep)
{
    int r = pr_addr_resolve(ep->text, &ep->sa);

    ep->resolved = r == 0;
    return r;
}

static int copy_field(json_t *o, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));

    out[0] = '\0';
    if (s == NULL)
        return 0;
    if (strlen(s) >= cap)
        return WEFT_ETOOBIG;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int parse_svc(json_t *o, edge_svc *s)
{
    if (!json_is_object(o) || copy_field(o, "name", s->name, sizeof(s->name)) < 0 ||
        s->name[0] == '\0' || copy_field(o, "intercept", s->intercept, sizeof(s->intercept)) < 0 ||
        copy_field(o, "host", s->host, sizeof(s->host)) < 0)
        return WEFT_EJSON;
    s->dial = json_is_true(json_object_get(o, "dial"));
    s->bind = json_is_true(json_object_get(o, "bind"));
    /* A malformed address is reported when the service starts; parse errors
     * leave proto 0, which starts nothing. */
    edge_ep_parse(s->intercept, &s->icpt_ep);
    edge_ep_parse(s->host, &s->host_ep);
    return 0;
}

int edge_svcs_parse(const char *json, size_t len, edge_svc **out, size_t *n, unsigned *refresh_s,
                    char *err, size_t errcap)
{
    json_t *root, *d, *arr;
    json_error_t je;
    edge_svc *v = NULL;
    int ret = WEFT_EJSON;
    size_t i;

    *out = NULL;
    *n = 0;
    if ((root = json_loadb(json, len, 0, &je)) == NULL) {
        snprintf(err, errcap, "session data is not JSON: %s", je.text);
        return WEFT_EJSON;
    }
    d = json_object_get(root, "data") ? json_object_get(root, "data") : root;
    if (!json_is_array(arr = json_object_get(d, "services"))) {
        snprintf(err, errcap, "session data has no services array");
        goto out;
    }
    if ((v = calloc(json_array_size(arr) + 1, sizeof(*v))) == NULL) {
        ret = WEFT_ENOMEM;
        goto out;
    }
    for (i = 0; i < json_array_size(arr); i++)
        if (parse_svc(json_array_get(arr, i), &v[i]) < 0) {
            snprintf(err, errcap, "service %zu of the session data is malformed", i);
            goto out;
        }
    *refresh_s = json_integer_value(json_object_get(d, "refresh_s")) > 0
                     ? (unsigned)json_integer_value(json_object_get(d, "refresh_s"))
                     : REFRESH_DEFAULT_S;
    *out = v;
    *n = i;
    v = NULL;
    ret = 0;
out:
    free(v);
    json_decref(root);
    return ret;
}

/* ---- fetching (worker thread) ---- */

static void resolve_all(fetch_job *j)
{
    size_t i;

    for (i = 0; i < j->n; i++) {
        if (j->svcs[i].dial && j->svcs[i].icpt_ep.proto)
            edge_ep_resolve(&j->svcs[i].icpt_ep);
        if (j->svcs[i].bind && j->svcs[i].host_ep.proto)
            edge_ep_resolve(&j->svcs[i].host_ep);
    }
}

static int fetch_once(fetch_job *j)
{
    pr_idfile id;
    pr_http_resp resp = {0};
    pr_httpc_cfg cfg;
    int r;

    if ((r = pr_idfile_load(j->a->identity, &id, j->err, sizeof(j->err))) < 0)
        return r;
    cfg = (pr_httpc_cfg){.ca_pem = id.ca_pem, .cert_pem = id.cert_pem, .key_pem = id.key_pem};
    r = pr_https_request(id.controller, &cfg, "GET", "/v1/edge/session", NULL, 0, NULL, &resp,
                         j->err, sizeof(j->err));
    if (r == 0 && resp.status != 200) {
        r = resp.status == 403 ? WEFT_EDISABLED : WEFT_EHTTP;
        snprintf(j->err, sizeof(j->err), "the controller answered HTTP %d", resp.status);
    }
    if (r == 0)
        r = edge_svcs_parse(resp.body, resp.body_len, &j->svcs, &j->n, &j->refresh_s, j->err,
                            sizeof(j->err));
    pr_http_resp_free(&resp);
    pr_idfile_free(&id);
    return r;
}

static void fetch_work(uv_work_t *w)
{
    fetch_job *j = w->data;

    if ((j->rc = fetch_once(j)) == 0)
        resolve_all(j);
}

static void on_refresh(uv_timer_t *t)
{
    edge_svcs_fetch(t->data);
}

static void fetch_failed(edge_agent *a, fetch_job *j)
{
    unsigned d = a->backoff_ms;

    pr_warn("edge_services_fetch_failed", "err=%s why=%s retry_ms=%u hint=%s", weft_err_name(j->rc),
            pr_log_q(j->err), d,
            pr_log_q(j->rc == WEFT_EDISABLED ? "the identity is disabled; ask an administrator"
                                             : "check that the controller is reachable"));
    a->backoff_ms = d * 2 > FETCH_RETRY_MAX_MS ? FETCH_RETRY_MAX_MS : d * 2;
    uv_timer_start(&a->refresh, on_refresh, d, 0);
}

static void fetch_done(uv_work_t *w, int status)
{
    fetch_job *j = w->data;
    edge_agent *a = j->a;

    a->job = NULL;
    if (status == 0 && !a->stopping) {
        if (j->rc < 0) {
            fetch_failed(a, j);
        } else {
            a->backoff_ms = 1000;
            /* The sooner of the controller's period and ours, as libweft does,
             * so that both see a new service at about the same time. */
            if (j->refresh_s > a->refresh_s)
                j->refresh_s = a->refresh_s;
            uv_timer_start(&a->refresh, on_refresh, (uint64_t)j->refresh_s * 1000, 0);
            edge_services_update(a, j->svcs, j->n, j->refresh_s);
            j->svcs = NULL;
        }
    }
    free(j->svcs);
    free(j);
}

void edge_svcs_fetch(edge_agent *a)
{
    fetch_job *j;

    if (a->job != NULL || a->stopping)
        return;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return (void)uv_timer_start(&a->refresh, on_refresh, 1000, 0);
    j->a = a;
    a->work.data = j;
    if (uv_queue_work(a->loop, &a->work, fetch_work, fetch_done) < 0) {
        free(j);
        uv_timer_start(&a->refresh, on_refresh, 1000, 0);
        return;
    }
    a->job = j;
}
