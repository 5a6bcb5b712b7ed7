/* Token buckets in front of the two calls a reconnecting fleet makes at once:
 * enrolment and session data. A refusal is cheap (no store access, no
 * signature) and tells the client when to come back. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "controller/admit.h"
#include "proto/log.h"
#include "weft/errors.h"

static const struct {
    const char *key;
    size_t off;
} keys[] = {
    {"admit_enroll_rate", offsetof(ctl_config, admit_enroll_rate)},
    {"admit_enroll_burst", offsetof(ctl_config, admit_enroll_burst)},
    {"admit_session_rate", offsetof(ctl_config, admit_session_rate)},
    {"admit_session_burst", offsetof(ctl_config, admit_session_burst)},
};
static const int64_t defaults[] = {CTL_ADMIT_ENROLL_RATE, CTL_ADMIT_ENROLL_BURST,
                                   CTL_ADMIT_SESSION_RATE, CTL_ADMIT_SESSION_BURST};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define FIELD(cfg, i) ((int64_t *)((char *)(cfg) + keys[i].off))

void ctl_admit_config_defaults(ctl_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        *FIELD(cfg, i) = defaults[i];
}

int ctl_admit_config_load(ctl_config *cfg, const json_t *root, char *err, size_t errcap)
{
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *v = json_object_get(root, keys[i].key);
        if (v == NULL)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 1000000) {
            ctl_errf(err, errcap, "%s: \"%s\" must be an integer in 0..1000000 (per second; "
                     "0: no limit)", CTL_CONFIG_FILE, keys[i].key);
            return WEFT_EINVAL;
        }
        *FIELD(cfg, i) = json_integer_value(v);
    }
    return 0;
}

void ctl_admit_config_save(const ctl_config *cfg, json_t *root)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (*FIELD(cfg, i) != defaults[i])
            json_object_set_new(root, keys[i].key, json_integer(*FIELD((ctl_config *)cfg, i)));
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Buckets start on the first call, from the configuration then in force. */
static void ensure_init(ctl *c)
{
    const ctl_config *g = &c->cfg;

    if (c->admit_on)
        return;
    pr_bucket_init(&c->admit_enroll, (double)g->admit_enroll_rate, (double)g->admit_enroll_burst,
                   now_ms());
    pr_bucket_init(&c->admit_session, (double)g->admit_session_rate,
                   (double)g->admit_session_burst, now_ms());
    c->admit_on = 1;
}

int ctl_admit_route(ctl_call *call, const char *method, const char *path)
{
    pr_bucket *b;
    const char *what;
    uint32_t retry_ms;
    unsigned secs;

    if (strcmp(method, "POST") == 0 &&
        (strcmp(path, "/v1/enroll") == 0 || strcmp(path, "/v1/enroll/factory") == 0)) {
        b = &call->c->admit_enroll;
        what = "enrolments";
    } else if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/edge/session") == 0) {
        b = &call->c->admit_session;
        what = "session requests";
    } else
        return 0;
    ensure_init(call->c);
    if (pr_bucket_take(b, now_ms(), &retry_ms) == 0)
        return 0;
    secs = (retry_ms + 999) / 1000; /* Retry-After counts whole seconds */
    call->req->retry_after_s = secs ? secs : 1;
    pr_debug("admit_busy", "path=%s peer=%s retry_after_s=%u", path, call->req->peer_addr,
             call->req->retry_after_s);
    ctl_reply_error(call, 429, "busy",
                    "the controller is busy with %s; retry after %u s (Retry-After), with jitter",
                    what, call->req->retry_after_s);
    return 1;
}

size_t ctl_admit_metrics(const ctl *c, char *buf, size_t cap)
{
    int n = snprintf(
        buf, cap,
        "# HELP weft_controller_admitted_total Enrolments and session requests admitted.\n"
        "# TYPE weft_controller_admitted_total counter\n"
        "weft_controller_admitted_total{kind=\"enroll\"} %llu\n"
        "weft_controller_admitted_total{kind=\"session\"} %llu\n"
        "# HELP weft_controller_refused_total Enrolments and session requests refused over the "
        "admission rate (429).\n# TYPE weft_controller_refused_total counter\n"
        "weft_controller_refused_total{kind=\"enroll\"} %llu\n"
        "weft_controller_refused_total{kind=\"session\"} %llu\n",
        (unsigned long long)c->admit_enroll.admitted, (unsigned long long)c->admit_session.admitted,
        (unsigned long long)c->admit_enroll.refused, (unsigned long long)c->admit_session.refused);

    return n < 0 ? 0 : ((size_t)n >= cap ? 0 : (size_t)n);
}
