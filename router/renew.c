/* Certificate renewal of a running router: see router/renew.h. */
#include "router/renew.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "proto/pki.h"
#include "proto/renew.h"
#include "proto/tls.h"
#include "weft/errors.h"

/* One check on the worker thread. It touches only its own fields: the loop
 * reads them in renew_done once the work is over. */
struct rt_renew_job {
    rt_renew *rn;
    char path[4096];
    int64_t before_s;
    int rc; /* 1 renewed (fresh loaded), 0 not due, < 0 error */
    char err[512];
    pr_idfile *fresh;
};

/* ---- swapping the TLS contexts ---- */

static int same_router(const pr_idfile *a, const pr_idfile *b)
{
    return strcmp(b->kind, "router") == 0 && strcmp(a->id, b->id) == 0 &&
           strcmp(a->network, b->network) == 0;
}

int rt_router_reload(rt_router *r, const pr_idfile *id)
{
    pr_tls_cfg srv = {.server = 1, .ca_pem = id->ca_pem, .cert_pem = id->cert_pem,
                      .key_pem = id->key_pem, .require_peer_cert = 1};
    pr_tls_cfg cli = {.ca_pem = id->ca_pem, .cert_pem = id->cert_pem, .key_pem = id->key_pem};
    pr_tls_ctx *edge = NULL, *lsrv = NULL, *lcli = NULL;
    int ret = WEFT_EINVAL;

    if (!same_router(r->id, id))
        goto out;
    if ((ret = pr_tls_ctx_new(&srv, &edge)) < 0 || (ret = pr_tls_ctx_new(&srv, &lsrv)) < 0 ||
        (ret = pr_tls_ctx_new(&cli, &lcli)) < 0 || (ret = rt_control_reload(r, id)) < 0)
        goto out;
    /* Live connections hold their own reference to the old contexts. */
    pr_tls_ctx_free(r->edge_ctx);
    pr_tls_ctx_free(r->link_srv_ctx);
    pr_tls_ctx_free(r->link_cli_ctx);
    r->edge_ctx = edge;
    r->link_srv_ctx = lsrv;
    r->link_cli_ctx = lcli;
    r->id = id;
    return 0;
out:
    pr_tls_ctx_free(edge);
    pr_tls_ctx_free(lsrv);
    pr_tls_ctx_free(lcli);
    return ret;
}

/* Takes fresh (heap): it becomes the router's identity, or is freed. */
static int use_identity(rt_renew *rn, pr_idfile *fresh, const char *why)
{
    char fp[65] = "?";
    int64_t na = 0;
    int rc = rt_router_reload(rn->r, fresh);

    if (rc < 0) {
        pr_error("router_reload_failed", "path=%s err=%s hint=%s", pr_log_q(rn->path),
                 weft_err_name(rc),
                 pr_log_q(rc == WEFT_EINVAL ? "the file holds another router or network; put "
                                              "this router's identity back"
                                            : "the running certificate stays; check the file"));
        pr_idfile_free(fresh);
        free(fresh);
        return rc;
    }
    if (rn->owned) {
        pr_idfile_free(rn->owned);
        free(rn->owned);
    }
    rn->owned = fresh;
    rn->reloads++;
    pr_pki_fingerprint(fresh->cert_pem, fp);
    pr_pki_cert_not_after(fresh->cert_pem, &na);
    pr_info("router_identity_reloaded", "why=%s fingerprint=%s not_after=%lld", why, fp,
            (long long)na);
    return 0;
}

int rt_renew_reload(rt_renew *rn)
{
    char err[512] = "";
    pr_idfile *fresh = calloc(1, sizeof(*fresh));
    int rc;

    if (fresh == NULL)
        return WEFT_ENOMEM;
    if ((rc = pr_idfile_load(rn->path, fresh, err, sizeof(err))) < 0) {
        pr_error("router_reload_failed", "path=%s err=%s why=%s hint=%s", pr_log_q(rn->path),
                 weft_err_name(rc), pr_log_q(err),
                 pr_log_q("the running certificate stays; fix the file and send SIGHUP again"));
        free(fresh);
        return rc;
    }
    return use_identity(rn, fresh, "sighup");
}

/* ---- the periodic check ---- */

/* 1 when fewer than before_s seconds of the certificate in path remain. */
static int ends_within(const char *path, int64_t before_s, char *err, size_t errcap)
{
    pr_idfile id;
    int64_t na = 0;
    int rc;

    if ((rc = pr_idfile_load(path, &id, err, errcap)) < 0)
        return rc;
    rc = pr_pki_cert_not_after(id.cert_pem, &na);
    pr_idfile_free(&id);
    if (rc < 0)
        return rc;
    return na - (int64_t)time(NULL) < before_s;
}

static void renew_work(uv_work_t *w)
{
    rt_renew_job *j = w->data;
    int force = 0;

    if (j->before_s > 0 && (force = ends_within(j->path, j->before_s, j->err, sizeof(j->err))) < 0) {
        j->rc = force;
        return;
    }
    j->rc = pr_renew_if_due(j->path, force, RT_RENEW_TIMEOUT_MS, j->err, sizeof(j->err));
    if (j->rc != 1)
        return;
    /* Loaded here too: file reads stay off the loop. */
    if ((j->fresh = calloc(1, sizeof(*j->fresh))) == NULL) {
        j->rc = WEFT_ENOMEM;
        return;
    }
    if ((j->rc = pr_idfile_load(j->path, j->fresh, j->err, sizeof(j->err))) < 0) {
        free(j->fresh);
        j->fresh = NULL;
        return;
    }
    j->rc = 1;
}

static void renew_done(uv_work_t *w, int status)
{
    rt_renew_job *j = w->data;
    rt_renew *rn = j->rn;

    rn->job = NULL;
    if (status == 0 && j->rc < 0)
        pr_warn("router_renew_failed", "err=%s why=%s hint=%s", weft_err_name(j->rc),
                pr_log_q(j->err),
                pr_log_q("retried at the next check; weft-edge renew --identity "
                         "DIR/identity.json then SIGHUP tries at once"));
    if (status == 0 && j->rc == 0)
        pr_debug("router_renew_not_due", "path=%s", pr_log_q(rn->path));
    if (status == 0 && j->rc == 1 && !rn->stopping) {
        rn->renewals++;
        pr_info("router_renewed", "path=%s count=%llu", pr_log_q(rn->path),
                (unsigned long long)rn->renewals);
        use_identity(rn, j->fresh, "renewed");
        j->fresh = NULL;
    }
    if (j->fresh) {
        pr_idfile_free(j->fresh);
        free(j->fresh);
    }
    free(j);
}

static void on_check(uv_timer_t *t)
{
    rt_renew *rn = t->data;
    rt_renew_job *j;

    if (rn->job != NULL || rn->stopping || (j = calloc(1, sizeof(*j))) == NULL)
        return;
    j->rn = rn;
    j->before_s = rn->before_s;
    snprintf(j->path, sizeof(j->path), "%s", rn->path);
    rn->work.data = j;
    if (uv_queue_work(rn->r->loop, &rn->work, renew_work, renew_done) < 0) {
        free(j);
        return;
    }
    rn->job = j;
}

int rt_renew_start(rt_renew *rn, rt_router *r)
{
    uint64_t every = rn->check_ms ? rn->check_ms : RT_RENEW_CHECK_MS;
    int rc;

    rn->r = r;
    if ((rc = uv_timer_init(r->loop, &rn->timer)) < 0)
        return WEFT_EINVAL;
    rn->timer.data = rn;
    rn->timer_on = 1;
    uv_timer_start(&rn->timer, on_check, 0, every);
    pr_info("router_renew_checks", "every_s=%llu before_s=%lld",
            (unsigned long long)(every / 1000), (long long)rn->before_s);
    return 0;
}

void rt_renew_stop(rt_renew *rn)
{
    rn->stopping = 1;
    if (rn->timer_on && !uv_is_closing((uv_handle_t *)&rn->timer))
        uv_close((uv_handle_t *)&rn->timer, NULL);
}

void rt_renew_free(rt_renew *rn)
{
    if (rn->owned) {
        pr_idfile_free(rn->owned);
        free(rn->owned);
        rn->owned = NULL;
    }
}
