/* Admission of new edge sessions: one token per EDGE_HELLO. Refused edges are
 * told how long to wait (PR_H_RETRY_MS, widened so that a crowd refused in the
 * same instant is spread over the next second) and libweft backs off at
 * least that long with jitter, so a reconnect storm drains at the rate. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/log.h"
#include "proto/msg.h"
#include "router/admit.h"
#include "weft/errors.h"

static void ensure_init(rt_router *r)
{
    if (!r->admit_on) {
        pr_bucket_init(&r->admit, RT_ADMIT_RATE, RT_ADMIT_BURST, uv_now(r->loop));
        r->admit_on = 1;
    }
}

void rt_admit_config(rt_router *r, double rate, double burst)
{
    pr_bucket_init(&r->admit, rate, burst, uv_now(r->loop));
    r->admit_on = 1;
}

static int number(const json_t *conf, const char *key, const char *arg, double def, double *out)
{
    const json_t *v = conf ? json_object_get(conf, key) : NULL;
    char *end;

    *out = def;
    if (arg) {
        errno = 0;
        *out = strtod(arg, &end);
        if (errno != 0 || end == arg || *end != '\0')
            return WEFT_EINVAL;
    } else if (v) {
        if (!json_is_number(v))
            return WEFT_EINVAL;
        *out = json_number_value(v);
    }
    return *out >= 0 && *out <= 1e6 ? 0 : WEFT_EINVAL;
}

int rt_admit_setup(rt_router *r, const json_t *conf, const char *rate, const char *burst)
{
    double rt, bu;

    if (number(conf, "admit_rate", rate, RT_ADMIT_RATE, &rt) < 0 ||
        number(conf, "admit_burst", burst, rt == RT_ADMIT_RATE ? RT_ADMIT_BURST : 0, &bu) < 0)
        return WEFT_EINVAL;
    rt_admit_config(r, rt, bu);
    pr_info("admission", "sessions_per_s=%g burst=%g", rt, r->admit.burst);
    return 0;
}

/* The hint: a place in a virtual queue of refused devices, one slot per
 * token, so a crowd refused in the same instant comes back spread at the
 * rate instead of all at once. The queue is capped (RT_ADMIT_QUEUE_MS ahead)
 * so that devices that never return cannot push the others far away. */
static uint32_t hint_ms(rt_router *r, uint32_t wait)
{
    uint64_t now = uv_now(r->loop), slot = now + wait, step;

    step = (uint64_t)(1000.0 / r->admit.rate);
    if (step == 0)
        step = 1;
    if (r->admit_next_ms > slot)
        slot = r->admit_next_ms;
    if (slot > now + RT_ADMIT_QUEUE_MS)
        slot = now + RT_ADMIT_QUEUE_MS;
    r->admit_next_ms = slot + step;
    return (uint32_t)(slot - now) + randombytes_uniform((uint32_t)step + 1);
}

int rt_admit_hello(rt_sess *s)
{
    rt_router *r = s->r;
    uint32_t wait, retry;
    char msg[128];
    pr_enc e;
    size_t n;

    ensure_init(r);
    if (pr_bucket_take(&r->admit, uv_now(r->loop), &wait) == 0)
        return 0;
    retry = hint_ms(r, wait);
    snprintf(msg, sizeof(msg), "router busy admitting sessions; reconnect after %u ms", retry);
    pr_debug("session_busy", "sess=%llu identity=%s retry_ms=%u", (unsigned long long)s->num,
             s->identity, retry);
    pr_enc_init(&e, r->txbuf, PR_FRAME_MAX, PR_EDGE_ERROR, 0);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_EBUSY);
    pr_enc_str(&e, PR_H_ERR_MSG, msg);
    pr_enc_u32(&e, PR_H_RETRY_MS, retry);
    if (pr_enc_finish(&e, NULL, 0, &n) == 0)
        rt_sess_send(s, r->txbuf, n);
    rt_sess_kill(s, WEFT_EBUSY, NULL);
    return 1;
}
