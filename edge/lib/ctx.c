/* The weft_ctx: identity, session data from the controller (fetched on a
 * worker thread, refreshed before tokens expire), listeners, request
 * timeouts, deferred callbacks and teardown. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge/lib/weft_int.h"
#include "proto/httpc.h"
#include "proto/log.h"

#define FETCH_RETRY_MAX_MS 60000

typedef struct {
    weft_ctx *ctx;
    pr_httpc_cfg cfg;
    pr_http_resp resp;
    int rc;
    char path[512]; /* /v1/edge/session with the hardware ids: 63 bytes each, encoded */
    char err[256];
} fetch_job;

uint64_t weft__now(const weft_ctx *ctx)
{
    return uv_now(ctx->loop);
}

uint32_t weft__req_id(weft_ctx *ctx)
{
    if (++ctx->next_req == 0)
        ctx->next_req = 1;
    return ctx->next_req;
}

/* ---- listeners ---- */

weft_listener *weft__listener_by_req(weft_ctx *ctx, uint32_t req)
{
    weft_listener *l;
    int i;

    for (l = ctx->listeners; l; l = l->next)
        for (i = 0; i < WEFT_SESS_MAX; i++)
            if (l->req_id[i] == req && req != 0)
                return l;
    return NULL;
}

weft_listener *weft__listener_by_service(weft_ctx *ctx, const char *service)
{
    weft_listener *l;

    for (l = ctx->listeners; l; l = l->next)
        if (strcmp(l->service, service) == 0)
            return l;
    return NULL;
}

static void listener_unlink(weft_ctx *ctx, weft_listener *l)
{
    weft_listener **p;

    for (p = &ctx->listeners; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            return;
        }
}

/* A listener that cannot be bound: the application hears it once, with
 * why (msg, NULL: nothing said) in weft_last_error_msg. */
static void listener_lost(weft_ctx *ctx, weft_listener *l, int err, const char *msg)
{
    listener_unlink(ctx, l);
    snprintf(ctx->last_err, sizeof(ctx->last_err), "%s", msg ? msg : "");
    if (l->cb)
        l->cb(ctx, l->service, err, l->data);
    ctx->last_err[0] = '\0';
    free(l);
}

static int bind_send(weft_ctx *ctx, weft_rsess *s, weft_listener *l)
{
    const weft_svc *svc = weft__sessdata_find(&ctx->sd, l->service);
    size_t len;
    int r;

    if (svc == NULL || svc->bind_token == NULL)
        return svc ? WEFT_ENOPOLICY : WEFT_ENOTFOUND;
    l->req_id[s->slot] = weft__req_id(ctx);
    if (!l->ever_bound)
        l->deadline = weft__now(ctx) + WEFT_REQ_TIMEOUT_MS;
    if ((r = weft__msg_bind(ctx->fbuf, PR_FRAME_MAX, l->req_id[s->slot], svc->bind_token,
                            l->service, &len)) < 0)
        return r;
    weft__send(s, len);
    return 0;
}

/* Every listener is bound on every ready session: a host must be reachable
 * via either of its routers. */
static void binds_send(weft_ctx *ctx)
{
    weft_listener *l, *next;
    weft_rsess *s;
    int i, r;

    for (i = 0; i < ctx->nsess && ctx->have_sd; i++) {
        s = &ctx->sess[i];
        for (l = ctx->listeners; l && weft__rsess_ready(s); l = next) {
            next = l->next;
            if (!l->bound[i] && l->req_id[i] == 0 && (r = bind_send(ctx, s, l)) < 0) {
                pr_warn("edge_bind_failed", "service=%s err=%s", l->service, weft_err_name(r));
                listener_lost(ctx, l, r, NULL);
            }
        }
    }
}

static int listener_slot(const weft_listener *l, uint32_t req)
{
    int i;

    for (i = 0; i < WEFT_SESS_MAX; i++)
        if (l->req_id[i] == req)
            return i;
    return 0;
}

void weft__bind_answer(weft_ctx *ctx, weft_listener *l, const weft_msg *m)
{
    int r = m->err ? m->err : WEFT_EREFUSED, slot = listener_slot(l, m->req_id);

    l->req_id[slot] = 0;
    if (m->type != PR_EDGE_BIND_OK && weft__refusal_kind(m) == WEFT_REFUSAL_ROUTER) {
        weft__rsess_refused(&ctx->sess[slot], m); /* bound again at the next router */
        return;
    }
    if (m->type != PR_EDGE_BIND_OK) {
        pr_error("edge_bind_refused", "service=%s err=%s msg=%s hint=%s", l->service,
                 weft_err_name(r), pr_log_q(m->err_msg),
                 pr_log_q("check the identity's bind policy for this service"));
        return listener_lost(ctx, l, r, m->err_msg);
    }
    l->bound[slot] = 1;
    snprintf(l->terminator, sizeof(l->terminator), "%s", m->terminator);
    pr_info("edge_bound", "service=%s terminator=%s router=%s", l->service, l->terminator,
            ctx->sess[slot].addr);
    if (!l->ever_bound) {
        l->ever_bound = 1;
        if (l->cb)
            l->cb(ctx, l->service, 0, l->data);
    }
}

int weft_listen(weft_ctx *ctx, const char *service, weft_listen_cb cb, weft_accept_cb accept_cb,
                void *data)
{
    const weft_svc *svc = NULL;
    weft_listener *l;

    if (ctx == NULL || service == NULL || accept_cb == NULL || strlen(service) >= WEFT_NAME_MAX)
        return WEFT_EINVAL;
    if (ctx->freeing)
        return WEFT_ECANCELED;
    if (weft__listener_by_service(ctx, service))
        return WEFT_EEXISTS;
    if (ctx->have_sd && (svc = weft__sessdata_find(&ctx->sd, service)) == NULL)
        return WEFT_ENOTFOUND;
    if (ctx->have_sd && svc->bind_token == NULL)
        return WEFT_ENOPOLICY;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return WEFT_ENOMEM;
    snprintf(l->service, sizeof(l->service), "%s", service);
    l->cb = cb;
    l->accept_cb = accept_cb;
    l->data = data;
    l->deadline = weft__now(ctx) + WEFT_REQ_TIMEOUT_MS;
    l->next = ctx->listeners;
    ctx->listeners = l;
    binds_send(ctx);
    return 0;
}

/* EDGE_UNBIND at every router where l is bound. */
static void unbind_all(weft_ctx *ctx, weft_listener *l)
{
    size_t len;
    int i;

    for (i = 0; i < WEFT_SESS_MAX; i++)
        if (l->bound[i] && weft__rsess_ready(&ctx->sess[i]) &&
            weft__msg_unbind(ctx->fbuf, PR_FRAME_MAX, weft__req_id(ctx), l->service, &len) == 0)
            weft__send(&ctx->sess[i], len);
}

int weft_unlisten(weft_ctx *ctx, const char *service)
{
    weft_listener *l;

    if (ctx == NULL || service == NULL)
        return WEFT_EINVAL;
    if ((l = weft__listener_by_service(ctx, service)) == NULL)
        return WEFT_ENOTFOUND;
    unbind_all(ctx, l);
    listener_unlink(ctx, l);
    free(l);
    return 0;
}

static void services_changed(weft_ctx *ctx);

/* The session data's bind token of service, gone: the router refuses it
 * now. 1 when there was one. */
static int bind_token_drop(weft_ctx *ctx, const char *service)
{
    weft_svc *svc = (weft_svc *)weft__sessdata_find(&ctx->sd, service);

    if (svc == NULL || svc->bind_token == NULL)
        return 0;
    free(svc->bind_token);
    svc->bind_token = NULL;
    return 1;
}

/* A bind withdrawn by a policy: the token in hand is dropped (nothing binds
 * with it again), the listener is lost as a refused bind is (the callback
 * gets the error, weft_last_error_msg the router's reason), the application
 * sees the service no longer bindable, and new session data is asked for at
 * once; a bind policy granting the service again comes with a later fetch
 * (every refresh_s at most), and the application listens again. */
void weft__bind_withdrawn(weft_ctx *ctx, weft_rsess *s, const weft_msg *m)
{
    weft_listener *l = weft__listener_by_service(ctx, m->service);
    int err = m->err ? m->err : WEFT_EDENIED;

    if (!bind_token_drop(ctx, m->service) && l == NULL) {
        pr_debug("edge_unbind_stale", "service=%s router=%s", m->service, s->addr);
        return; /* the other router's notice of the same withdrawal */
    }
    pr_warn("edge_bind_withdrawn", "service=%s router=%s terminator=%s err=%s msg=%s hint=%s",
            m->service, s->addr, m->terminator[0] ? m->terminator : "-", weft_err_name(err),
            pr_log_q(m->err_msg),
            pr_log_q("this identity may no longer host the service and dials to it fail; to "
                     "host it again, an administrator grants it with a bind policy (weft policy "
                     "create NAME --type bind), and the edge binds at its next session-data "
                     "refresh"));
    if (l != NULL) {
        l->bound[s->slot] = 0;
        unbind_all(ctx, l); /* the other router's terminator goes too */
        listener_lost(ctx, l, err, m->err_msg);
    }
    services_changed(ctx);
    weft__refresh_soon(ctx);
}

static void listeners_tick(weft_ctx *ctx, uint64_t now)
{
    weft_listener *l, *next;

    for (l = ctx->listeners; l; l = next) {
        next = l->next;
        if (l->ever_bound || l->deadline > now)
            continue;
        pr_warn("edge_bind_timeout", "service=%s err=%s hint=%s", l->service,
                weft_err_name(ctx->sd_err ? ctx->sd_err : WEFT_ETIMEDOUT),
                pr_log_q(ctx->sd_err ? ctx->sd_err_msg
                                     : "no answer from the router; is the router reachable?"));
        listener_lost(ctx, l, ctx->sd_err ? ctx->sd_err : WEFT_ETIMEDOUT,
                      ctx->sd_err ? ctx->sd_err_msg : NULL);
    }
}

/* ---- the router session going up and down ---- */

void weft__session_up(weft_ctx *ctx, weft_rsess *s)
{
    binds_send(ctx);
    weft__dials_send(ctx);
    weft__conns_pump(ctx, s);
}

/* Dials in flight on s go out again at once on the other session if it is
 * ready (weft__conns_session_lost), else when a session comes up. */
void weft__session_down(weft_ctx *ctx, weft_rsess *s)
{
    weft_listener *l;

    for (l = ctx->listeners; l; l = l->next) {
        l->bound[s->slot] = 0;
        l->req_id[s->slot] = 0;
    }
    weft__conns_session_lost(ctx, s);
}

/* ---- session data ---- */

static void start_fetch(weft_ctx *ctx);
static void identity_swap(weft_ctx *ctx);

static void on_refresh(uv_timer_t *t)
{
    start_fetch(t->data);
}

/* A busy controller's Retry-After is waited out, jittered, without doubling
 * the backoff (docs/dataplane.md "Admission refusals"). */
static void fetch_retry(weft_ctx *ctx)
{
    unsigned d = ctx->fetch_backoff_ms, wait = d / 2 + randombytes_uniform(d / 2 + 1);

    if (ctx->fetch_hint_ms) {
        wait = weft__hint_delay(ctx->fetch_hint_ms, wait);
        ctx->fetch_hint_ms = 0;
    } else {
        ctx->fetch_backoff_ms = d * 2 > FETCH_RETRY_MAX_MS ? FETCH_RETRY_MAX_MS : d * 2;
    }
    uv_timer_start(&ctx->refresh, on_refresh, wait, 0);
}

/* ---- services for the application ---- */

static void svc_view(const weft_svc *v, weft_service *out)
{
    *out = (weft_service){v->name, v->intercept, v->host, v->dial && v->dial_token != NULL,
                          v->bind && v->bind_token != NULL};
}

static int services_list(weft_ctx *ctx, weft_services_cb cb, void *data)
{
    weft_service *v = calloc(ctx->sd.nsvcs + 1, sizeof(*v));

    if (v == NULL)
        return WEFT_ENOMEM;
    for (size_t i = 0; i < ctx->sd.nsvcs; i++)
        svc_view(&ctx->sd.svcs[i], &v[i]);
    cb(ctx, v, ctx->sd.nsvcs, data);
    free(v);
    return 0;
}

int weft_services(weft_ctx *ctx, weft_services_cb cb, void *data)
{
    if (ctx == NULL || cb == NULL)
        return WEFT_EINVAL;
    if (!ctx->have_sd)
        return WEFT_EAGAIN;
    return services_list(ctx, cb, data);
}

void weft_set_services_cb(weft_ctx *ctx, weft_services_cb cb, void *data)
{
    if (ctx == NULL)
        return;
    ctx->svcs_cb = cb;
    ctx->svcs_data = data;
    ctx->svcs_told = 0;
    if (cb && ctx->have_sd) /* what is known already, at once */
        services_changed(ctx);
}

/* What the application sees of the services, summed: tokens are renewed at
 * every refresh, which is no change to it. */
static void services_sum(const weft_ctx *ctx, uint8_t sum[32])
{
    crypto_generichash_state st;
    weft_service v;
    uint8_t flags[2];

    crypto_generichash_init(&st, NULL, 0, 32);
    for (size_t i = 0; i < ctx->sd.nsvcs; i++) {
        svc_view(&ctx->sd.svcs[i], &v);
        flags[0] = (uint8_t)v.dial;
        flags[1] = (uint8_t)v.bind;
        crypto_generichash_update(&st, (const uint8_t *)v.name, strlen(v.name) + 1);
        crypto_generichash_update(&st, (const uint8_t *)v.intercept, strlen(v.intercept) + 1);
        crypto_generichash_update(&st, (const uint8_t *)v.host, strlen(v.host) + 1);
        crypto_generichash_update(&st, flags, sizeof(flags));
    }
    crypto_generichash_final(&st, sum, 32);
}

static void services_changed(weft_ctx *ctx)
{
    uint8_t sum[32];

    if (ctx->svcs_cb == NULL)
        return;
    services_sum(ctx, sum);
    if (ctx->svcs_told && memcmp(sum, ctx->svcs_sum, sizeof(sum)) == 0)
        return;
    memcpy(ctx->svcs_sum, sum, sizeof(sum));
    ctx->svcs_told = 1;
    if (services_list(ctx, ctx->svcs_cb, ctx->svcs_data) < 0)
        ctx->svcs_told = 0; /* told at the next refresh */
}

static void sessdata_use(weft_ctx *ctx, weft_sessdata *sd)
{
    unsigned next;

    weft__sessdata_free(&ctx->sd);
    ctx->sd = *sd;
    ctx->have_sd = 1;
    ctx->sd_err = 0;
    ctx->told_no_router = 0;
    next = weft__sessdata_next_refresh(&ctx->sd, (int64_t)time(NULL), ctx->refresh_s);
    pr_info("edge_session_data", "services=%zu routers=%zu next_refresh_s=%u", ctx->sd.nsvcs,
            ctx->sd.nrouters, next);
    if (!ctx->offline)
        uv_timer_start(&ctx->refresh, on_refresh, (uint64_t)next * 1000, 0);
    weft__rsess_start(ctx);
    weft__session_up(ctx, NULL); /* dials and binds that waited for tokens */
    services_changed(ctx);
}

/* 403: the controller will not serve this identity until an administrator
 * acts (disabled, or hardware ids that are not the bound ones): said once
 * clearly, kept for the dials and listeners waiting, asked again in a minute. */
static int fetch_denied(weft_ctx *ctx, const pr_http_resp *resp)
{
    json_t *root = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int binding = code != NULL && strcmp(code, "binding_mismatch") == 0;

    ctx->sd_err = binding ? WEFT_EBINDING : WEFT_EDISABLED;
    snprintf(ctx->sd_err_msg, sizeof(ctx->sd_err_msg),
             "the controller refused the session data: %s (%s, HTTP 403)",
             msg ? msg : "no reason given", code ? code : "forbidden");
    if (binding)
        pr_error("edge_binding_mismatch", "imei=%s iccid=%s msg=%s retry_within_s=%u hint=%s",
                 ctx->imei[0] ? ctx->imei : "-", ctx->iccid[0] ? ctx->iccid : "-",
                 pr_log_q(msg ? msg : ""), WEFT_DENIED_RETRY_MS / 1000,
                 pr_log_q("the controller holds other hardware ids for this identity: check "
                          "--imei/--iccid, or have an administrator run weft identity rebind"));
    else
        pr_error("edge_session_refused", "status=403 code=%s msg=%s retry_within_s=%u hint=%s",
                 code ? code : "-", pr_log_q(msg ? msg : ""), WEFT_DENIED_RETRY_MS / 1000,
                 pr_log_q("the identity is disabled or unknown; ask an administrator"));
    json_decref(root);
    ctx->fetch_backoff_ms = WEFT_DENIED_RETRY_MS;
    ctx->fetch_not_before = weft__now(ctx) + WEFT_DENIED_RETRY_MS / 2;
    return ctx->sd_err;
}

static int fetch_result(weft_ctx *ctx, fetch_job *j)
{
    weft_sessdata sd;
    char err[256];
    int r;

    if (j->rc < 0) {
        pr_warn("edge_session_fetch_failed", "err=%s why=%s", weft_err_name(j->rc),
                pr_log_q(j->err));
        return j->rc;
    }
    if (j->resp.status == 429) {
        /* No Retry-After: a second, the least the controller ever asks. */
        ctx->fetch_hint_ms = (j->resp.retry_after_s ? j->resp.retry_after_s : 1) * 1000u;
        ctx->fetch_not_before = weft__now(ctx) + ctx->fetch_hint_ms;
        pr_warn("edge_controller_busy", "status=429 retry_ms=%u hint=%s",
                (unsigned)ctx->fetch_hint_ms,
                pr_log_q("admission refusal: the controller is busy; asking for session data "
                         "again after Retry-After"));
        return WEFT_EBUSY;
    }
    if (j->resp.status == 403)
        return fetch_denied(ctx, &j->resp);
    if (j->resp.status != 200) {
        pr_error("edge_session_refused", "status=%d hint=%s", j->resp.status,
                 pr_log_q("the controller refused the session request"));
        return WEFT_EHTTP;
    }
    if ((r = weft__sessdata_parse(j->resp.body, j->resp.body_len, &sd, err, sizeof(err))) < 0) {
        pr_error("edge_session_bad", "err=%s why=%s", weft_err_name(r), pr_log_q(err));
        return r;
    }
    ctx->fetch_backoff_ms = WEFT_BACKOFF_MIN_MS;
    sessdata_use(ctx, &sd);
    return 0;
}

static void fetch_work(uv_work_t *w)
{
    fetch_job *j = w->data;
    char url[300];

    snprintf(url, sizeof(url), "%s", j->ctx->id.controller);
    j->rc = pr_https_request(url, &j->cfg, "GET", j->path, NULL, 0, NULL, &j->resp, j->err,
                             sizeof(j->err));
}

/* The hardware ids EDGE_HELLO reports go with the request too, so that the
 * controller checks the device binding (docs/policies.md "Device binding"). */
static int session_path(const weft_ctx *ctx, char *path, size_t cap)
{
    int r = 0;

    snprintf(path, cap, "/v1/edge/session");
    if (ctx->imei[0] != '\0')
        r = pr_http_query_add(path, cap, "imei", ctx->imei);
    if (r == 0 && ctx->iccid[0] != '\0')
        r = pr_http_query_add(path, cap, "iccid", ctx->iccid);
    return r;
}

/* A failed fetch leaves the old session data: what waited for the new one
 * (dials, sessions with no router) is decided with it. */
static void fetch_failed(weft_ctx *ctx)
{
    fetch_retry(ctx);
    if (ctx->have_sd)
        weft__rsess_start(ctx);
    weft__dials_send(ctx);
}

static void fetch_done(uv_work_t *w, int status)
{
    fetch_job *j = w->data;
    weft_ctx *ctx = j->ctx;
    int again = ctx->refetch;

    ctx->job = NULL;
    ctx->refetch = 0;
    ctx->urgent = again; /* a refusal heard meanwhile is answered by one more fetch */
    if (status == 0 && !ctx->freeing && fetch_result(ctx, j) < 0)
        fetch_failed(ctx);
    pr_http_resp_free(&j->resp);
    free(j);
    identity_swap(ctx); /* a reload that waited for the fetch to let go of the old one */
    if (again && !ctx->freeing)
        weft__refresh_soon(ctx);
    weft__maybe_finish(ctx);
}

void weft__refresh_soon(weft_ctx *ctx)
{
    uint64_t now = weft__now(ctx), at = ctx->urgent_at ? ctx->urgent_at + WEFT_URGENT_MS : now;

    if (ctx->offline || ctx->freeing)
        return;
    ctx->urgent = 1;
    if (ctx->job != NULL) {
        ctx->refetch = 1; /* what is in flight may predate the refusal */
        return;
    }
    if (at < ctx->fetch_not_before)
        at = ctx->fetch_not_before;
    uv_timer_start(&ctx->refresh, on_refresh, at > now ? at - now : 0, 0);
}

/* ---- identity reload ---- */

static void identity_swap(weft_ctx *ctx)
{
    if (!ctx->have_next || ctx->job)
        return;
    pr_tls_ctx_free(ctx->tls); /* sessions open on it hold their own reference */
    pr_idfile_free(&ctx->id);
    ctx->tls = ctx->tls_next;
    ctx->id = ctx->id_next;
    ctx->tls_next = NULL;
    memset(&ctx->id_next, 0, sizeof(ctx->id_next));
    ctx->have_next = 0;
    pr_info("edge_identity_reloaded", "identity=%s file=%s", ctx->id.id, pr_log_q(ctx->id_path));
}

int weft_reload_identity(weft_ctx *ctx)
{
    pr_tls_cfg cfg = {0};
    pr_idfile id;
    pr_tls_ctx *tls;
    char err[256];
    int r;

    if (ctx == NULL)
        return WEFT_EINVAL;
    if (ctx->freeing)
        return WEFT_ECANCELED;
    if ((r = pr_idfile_load(ctx->id_path, &id, err, sizeof(err))) < 0) {
        pr_error("edge_identity_reload_failed", "file=%s err=%s why=%s hint=%s",
                 pr_log_q(ctx->id_path), weft_err_name(r), pr_log_q(err),
                 pr_log_q("the identity in use stays; check the file weft-edge renew wrote"));
        return r;
    }
    if (strcmp(id.id, ctx->id.id) != 0 || strcmp(id.network, ctx->id.network) != 0) {
        pr_error("edge_identity_reload_failed", "file=%s err=EINVAL hint=%s",
                 pr_log_q(ctx->id_path), pr_log_q("the file now holds another identity; restart"));
        pr_idfile_free(&id);
        return WEFT_EINVAL;
    }
    cfg = (pr_tls_cfg){.ca_pem = id.ca_pem, .cert_pem = id.cert_pem, .key_pem = id.key_pem};
    if ((r = pr_tls_ctx_new(&cfg, &tls)) < 0) {
        pr_idfile_free(&id);
        return r;
    }
    if (ctx->have_next) {
        pr_tls_ctx_free(ctx->tls_next);
        pr_idfile_free(&ctx->id_next);
    }
    ctx->tls_next = tls;
    ctx->id_next = id;
    ctx->have_next = 1;
    identity_swap(ctx);
    return 0;
}

static void start_fetch(weft_ctx *ctx)
{
    fetch_job *j;

    if (ctx->job || ctx->freeing || ctx->offline)
        return;
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        fetch_retry(ctx);
        return;
    }
    j->ctx = ctx;
    j->cfg = (pr_httpc_cfg){
        .ca_pem = ctx->id.ca_pem, .cert_pem = ctx->id.cert_pem, .key_pem = ctx->id.key_pem};
    if (session_path(ctx, j->path, sizeof(j->path)) < 0) { /* cannot be: ids are 63 bytes */
        free(j);
        return;
    }
    if (ctx->urgent)
        ctx->urgent_at = weft__now(ctx);
    ctx->work.data = j;
    if (uv_queue_work(ctx->loop, &ctx->work, fetch_work, fetch_done) < 0) {
        free(j);
        fetch_retry(ctx);
        return;
    }
    ctx->job = j;
}

/* ---- timers and deferred callbacks ---- */

static void on_tick(uv_timer_t *t)
{
    weft_ctx *ctx = t->data;

    weft__conns_tick(ctx, weft__now(ctx));
    listeners_tick(ctx, weft__now(ctx));
    weft__probes_tick(ctx);
    weft__avoid_tick(ctx);
    weft__live_tick(ctx);
}

static void on_idle(uv_idle_t *h);

void weft__mark_dirty(weft_conn *c)
{
    weft_ctx *ctx = c->ctx;

    if (c->dirty)
        return;
    c->dirty = 1;
    c->dnext = ctx->dirty;
    ctx->dirty = c;
    uv_idle_start(&ctx->idle, on_idle);
}

static void on_idle(uv_idle_t *h)
{
    weft_ctx *ctx = h->data;
    weft_conn *c;

    while ((c = ctx->dirty) != NULL) {
        ctx->dirty = c->dnext;
        c->dirty = 0;
        weft__conn_flush(c);
    }
    uv_idle_stop(&ctx->idle);
    weft__maybe_finish(ctx);
}

/* ---- init and teardown ---- */

static int ctx_alloc(const char *identity_file, const weft_options *opt, weft_ctx **out)
{
    weft_ctx *ctx = calloc(1, sizeof(*ctx));
    char err[256];
    int r = WEFT_ENOMEM;

    if (ctx == NULL)
        return WEFT_ENOMEM;
    if ((r = weft__live_settings(opt, &ctx->live, err, sizeof(err))) < 0) {
        pr_error("edge_bad_options", "err=%s why=%s", weft_err_name(r), pr_log_q(err));
        free(ctx);
        return r;
    }
    if (strlen(identity_file) >= sizeof(ctx->id_path)) {
        free(ctx);
        return WEFT_ETOOBIG;
    }
    memcpy(ctx->id_path, identity_file, strlen(identity_file) + 1);
    if ((r = pr_idfile_load(identity_file, &ctx->id, err, sizeof(err))) < 0) {
        pr_error("edge_identity", "file=%s err=%s why=%s hint=%s", pr_log_q(identity_file),
                 weft_err_name(r), pr_log_q(err), pr_log_q("enrol with weft-edge enroll first"));
        free(ctx);
        return r;
    }
    if (opt) {
        snprintf(ctx->imei, sizeof(ctx->imei), "%s", opt->imei ? opt->imei : "");
        snprintf(ctx->iccid, sizeof(ctx->iccid), "%s", opt->iccid ? opt->iccid : "");
    }
    ctx->refresh_s = opt && opt->refresh_s ? opt->refresh_s : 60;
    ctx->window = opt && opt->window ? opt->window : WEFT_WINDOW_DEFAULT;
    ctx->probe_every_ms = WEFT_PROBE_EVERY_MS;
    ctx->resume = 1;
    if (ctx->window < WEFT_WINDOW_MIN)
        ctx->window = WEFT_WINDOW_MIN;
    if (ctx->window > WEFT_WINDOW_MAX)
        ctx->window = WEFT_WINDOW_MAX;
    *out = ctx;
    return 0;
}

static int ctx_buffers(weft_ctx *ctx)
{
    pr_tls_cfg cfg = {
        .ca_pem = ctx->id.ca_pem, .cert_pem = ctx->id.cert_pem, .key_pem = ctx->id.key_pem};
    int r;

    if ((r = pr_tls_ctx_new(&cfg, &ctx->tls)) < 0)
        return r;
    if ((ctx->fbuf = malloc(PR_FRAME_MAX)) == NULL ||
        (ctx->pbuf = malloc(PR_FRAME_MAX_BODY)) == NULL)
        return WEFT_ENOMEM;
    if ((r = pr_reader_init(&ctx->sess[0].rd)) < 0)
        return r;
    return pr_reader_init(&ctx->sess[1].rd);
}

static void ctx_release(weft_ctx *ctx)
{
    weft__sessdata_free(&ctx->sd);
    pr_reader_free(&ctx->sess[0].rd);
    pr_reader_free(&ctx->sess[1].rd);
    pr_tls_ctx_free(ctx->tls);
    pr_idfile_free(&ctx->id);
    if (ctx->have_next) {
        pr_tls_ctx_free(ctx->tls_next);
        pr_idfile_free(&ctx->id_next);
    }
    free(ctx->fbuf);
    free(ctx->pbuf);
    sodium_memzero(ctx, sizeof(*ctx));
    free(ctx);
}

static void handles_init(uv_loop_t *loop, weft_ctx *ctx)
{
    ctx->loop = loop;
    uv_timer_init(loop, &ctx->refresh);
    uv_timer_init(loop, &ctx->tick);
    uv_idle_init(loop, &ctx->idle);
    uv_timer_init(loop, &ctx->probe_timer);
    ctx->refresh.data = ctx->tick.data = ctx->idle.data = ctx->probe_timer.data = ctx;
    weft__rsess_init(ctx);
    ctx->handles = 4 + WEFT_SESS_MAX;
    ctx->fetch_backoff_ms = WEFT_BACKOFF_MIN_MS;
    uv_timer_start(&ctx->tick, on_tick, WEFT_TICK_MS, WEFT_TICK_MS);
}

static int init_common(uv_loop_t *loop, const char *identity_file, const weft_options *opt,
                       weft_ctx **out)
{
    weft_ctx *ctx = NULL;
    int r;

    if (loop == NULL || identity_file == NULL || out == NULL)
        return WEFT_EINVAL;
    if (sodium_init() < 0)
        return WEFT_ECRYPTO;
    if ((r = ctx_alloc(identity_file, opt, &ctx)) < 0)
        return r;
    if ((r = ctx_buffers(ctx)) < 0) {
        ctx_release(ctx);
        return r;
    }
    handles_init(loop, ctx);
    *out = ctx;
    return 0;
}

int weft_init(uv_loop_t *loop, const char *identity_file, const weft_options *opt, weft_ctx **out)
{
    int r = init_common(loop, identity_file, opt, out);

    if (r == 0)
        start_fetch(*out);
    return r;
}

int weft__init_offline(uv_loop_t *loop, const char *identity_file, const weft_options *opt,
                       const char *session_json, weft_ctx **out)
{
    weft_sessdata sd;
    char err[256];
    int r;

    if (session_json == NULL)
        return WEFT_EINVAL;
    if ((r = weft__sessdata_parse(session_json, strlen(session_json), &sd, err, sizeof(err))) < 0)
        return r;
    if ((r = init_common(loop, identity_file, opt, out)) < 0) {
        weft__sessdata_free(&sd);
        return r;
    }
    (*out)->offline = 1;
    sessdata_use(*out, &sd);
    return 0;
}

int weft__use_session_json(weft_ctx *ctx, const char *session_json)
{
    weft_sessdata sd;
    char err[256];
    int r;

    if (ctx == NULL || session_json == NULL)
        return WEFT_EINVAL;
    if ((r = weft__sessdata_parse(session_json, strlen(session_json), &sd, err, sizeof(err))) < 0)
        return r;
    sessdata_use(ctx, &sd);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    weft_ctx *ctx = h->data;

    if (--ctx->handles == 0)
        ctx_release(ctx);
}

void weft__maybe_finish(weft_ctx *ctx)
{
    if (!ctx->freeing || ctx->conns || ctx->dirty || ctx->job || ctx->probing ||
        !weft__rsess_done(ctx) || uv_is_closing((uv_handle_t *)&ctx->idle))
        return;
    uv_close((uv_handle_t *)&ctx->idle, on_handle_closed);
}

void weft_free(weft_ctx *ctx)
{
    weft_listener *l;

    if (ctx == NULL || ctx->freeing)
        return;
    ctx->freeing = 1;
    weft__conns_cancel_all(ctx);
    while ((l = ctx->listeners) != NULL) {
        ctx->listeners = l->next;
        free(l);
    }
    weft__rsess_stop(ctx);
    weft__probes_stop(ctx);
    uv_close((uv_handle_t *)&ctx->probe_timer, on_handle_closed);
    if (ctx->job)
        uv_cancel((uv_req_t *)&ctx->work);
    uv_close((uv_handle_t *)&ctx->refresh, on_handle_closed);
    uv_close((uv_handle_t *)&ctx->tick, on_handle_closed);
    for (int i = 0; i < WEFT_SESS_MAX; i++) {
        ctx->sess[i].timer.data = ctx; /* its close callback counts ctx handles */
        uv_close((uv_handle_t *)&ctx->sess[i].timer, on_handle_closed);
    }
    weft__maybe_finish(ctx);
}
