/* The identity's anomaly baseline on the router side (baseline.h): the
 * token's "base" claim in, batches of increments out to the controller, each
 * kept until the controller says it is stored. */
#include "router/baseline.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "proto/msg.h"
#include "router/enforce.h"
#include "router/router.h"
#include "weft/errors.h"

/* ---- the "base" claim ---- */

/* An integer key in [lo, hi]; absent: 0. */
static int claim_int(const json_t *o, const char *key, long long lo, long long hi, long long *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return WEFT_EPROTO;
    *out = (long long)json_integer_value(v);
    return 0;
}

/* A finite number in [0, hi]; absent: 0. */
static int claim_num(const json_t *o, const char *key, double hi, double *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0 ||
        json_number_value(v) > hi)
        return WEFT_EPROTO;
    *out = json_number_value(v);
    return 0;
}

int rt_base_from_claim(const json_t *claim, rt_base *out)
{
    long long w, c, h, t, z;
    rt_base b;

    memset(out, 0, sizeof(*out));
    if (claim == NULL)
        return 0;
    memset(&b, 0, sizeof(b));
    if (!json_is_object(claim) || claim_int(claim, "w", 0, RT_BASE_COUNT_MAX, &w) < 0 ||
        claim_num(claim, "d", RT_BASE_VALUE_MAX, &b.avg_dials) < 0 ||
        claim_num(claim, "s", RT_BASE_VALUE_MAX, &b.avg_svcs) < 0 ||
        claim_int(claim, "c", 0, RT_BASE_COUNT_MAX, &c) < 0 ||
        claim_num(claim, "b", RT_BASE_VALUE_MAX, &b.avg_bytes) < 0 ||
        claim_int(claim, "h", 0, RT_BASE_HOURS_MASK, &h) < 0 ||
        claim_int(claim, "t", 0, 1LL << 40, &t) < 0 || claim_int(claim, "z", -86399, 86399, &z) < 0)
        return WEFT_EPROTO;
    b.have = 1;
    b.windows = (unsigned)w;
    b.circuits = (unsigned)c;
    b.hours = (uint32_t)h;
    b.first_s = t;
    b.tz_off = (long)z;
    *out = b;
    return 0;
}

json_t *rt_base_inc_json(const rt_base_inc *inc)
{
    json_t *o = json_pack("{s:s}", "id", inc->id);

    if (o == NULL)
        return NULL;
#define PUT_INT(k, v)                                                                              \
    if (v)                                                                                         \
        json_object_set_new(o, k, json_integer((json_int_t)(v)));
#define PUT_NUM(k, v)                                                                              \
    if (v > 0)                                                                                     \
        json_object_set_new(o, k, json_real(v));
    PUT_INT("w", inc->windows)
    PUT_INT("q", inc->quiet)
    PUT_NUM("d", inc->dials)
    PUT_NUM("s", inc->svcs)
    PUT_INT("c", inc->circuits)
    PUT_NUM("b", inc->bytes)
    PUT_INT("h", inc->hours)
    PUT_INT("t", inc->first_s)
#undef PUT_INT
#undef PUT_NUM
    return o;
}

/* ---- reports ---- */

typedef struct {
    uint64_t seq;
    char *text;
} batch;

struct rt_baseline {
    char boot[33]; /* this process's reports: the controller keeps the last seq per boot */
    uint64_t seq;  /* the last batch made */
    batch q[RT_BASE_INFLIGHT];
    size_t head, len;
    uint64_t flush_ms, sent_ms; /* when batches were last made, and last sent */
    uint64_t acked;
};

int rt_baseline_new(rt_baseline **out)
{
    unsigned char rnd[16];

    if ((*out = calloc(1, sizeof(**out))) == NULL)
        return WEFT_ENOMEM;
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex((*out)->boot, sizeof((*out)->boot), rnd, sizeof(rnd));
    return 0;
}

static batch *at(rt_baseline *b, size_t i)
{
    return &b->q[(b->head + i) % RT_BASE_INFLIGHT];
}

void rt_baseline_free(rt_baseline *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->len; i++)
        free(at(b, i)->text);
    free(b);
}

size_t rt_baseline_waiting(const rt_baseline *b)
{
    return b ? b->len : 0;
}

uint64_t rt_baseline_acked_total(const rt_baseline *b)
{
    return b ? b->acked : 0;
}

const char *rt_baseline_boot(const rt_baseline *b)
{
    return b ? b->boot : "";
}

/* One batch of at most RT_BASE_BATCH_IDS identities' increments, or NULL
 * when none has any (or memory ran out: they are then lost, and logged). */
static char *make_batch(rt_enforce *e, rt_baseline *b, size_t *n)
{
    json_t *ids = json_array(), *root;
    rt_base_inc inc;
    char *text;

    *n = 0;
    while (ids && *n < RT_BASE_BATCH_IDS && rt_enforce_take(e, &inc) == 1) {
        json_array_append_new(ids, rt_base_inc_json(&inc));
        (*n)++;
    }
    if (ids == NULL || *n == 0) {
        json_decref(ids);
        return NULL;
    }
    root =
        json_pack("{s:s, s:I, s:o}", "boot", b->boot, "seq", (json_int_t)(b->seq + 1), "ids", ids);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        pr_warn("baseline_lost", "identities=%zu hint=%s", *n,
                pr_log_q("out of memory; these increments are learnt again"));
    else
        b->seq++;
    return text;
}

size_t rt_baseline_flush(rt_baseline *b, rt_enforce *e, uint64_t now_ms, rt_baseline_send_fn send,
                         void *arg)
{
    size_t made = 0, n, ids = 0;
    char *text;

    if (b->flush_ms != 0 && now_ms - b->flush_ms < RT_BASE_FLUSH_MS)
        return 0;
    b->flush_ms = now_ms ? now_ms : 1;
    while (made < RT_BASE_PER_FLUSH && b->len < RT_BASE_INFLIGHT &&
           (text = make_batch(e, b, &n)) != NULL) {
        batch *q = at(b, b->len++);
        q->seq = b->seq;
        q->text = text;
        send(arg, q->text);
        b->sent_ms = now_ms;
        made++;
        ids += n;
    }
    if (made)
        pr_debug("baseline_sent", "batches=%zu identities=%zu seq=%llu waiting=%zu", made, ids,
                 (unsigned long long)b->seq, b->len);
    return made;
}

size_t rt_baseline_final(rt_baseline *b, rt_enforce *e, rt_baseline_send_fn send, void *arg)
{
    size_t made = 0, n, ids = 0;
    char *text;

    while ((text = make_batch(e, b, &n)) != NULL) {
        if (send(arg, text) == 0) {
            made++;
            ids += n;
        }
        free(text);
    }
    if (made)
        pr_info("baseline_final", "batches=%zu identities=%zu seq=%llu", made, ids,
                (unsigned long long)b->seq);
    return made;
}

size_t rt_baseline_send_waiting(rt_baseline *b, uint64_t now_ms, rt_baseline_send_fn send,
                                void *arg)
{
    size_t i;

    for (i = 0; i < b->len && send(arg, at(b, i)->text) == 0; i++)
        ;
    if (b->len)
        b->sent_ms = now_ms;
    if (i)
        pr_info("baseline_resent", "batches=%zu from_seq=%llu", i,
                (unsigned long long)at(b, 0)->seq);
    return i;
}

int rt_baseline_overdue(const rt_baseline *b, uint64_t now_ms)
{
    return b->len > 0 && now_ms - b->sent_ms >= RT_BASE_RESEND_MS;
}

size_t rt_baseline_ack(rt_baseline *b, const uint8_t *body, size_t len)
{
    json_t *ack = json_loadb((const char *)body, len, 0, NULL);
    const char *boot = json_string_value(json_object_get(ack, "boot"));
    json_t *seq = json_object_get(ack, "seq");
    size_t done = 0;

    /* Another process's, or malformed: nothing of ours is acknowledged. */
    while (boot && strcmp(boot, b->boot) == 0 && json_is_integer(seq) && b->len > 0 &&
           json_integer_value(seq) > 0 && at(b, 0)->seq <= (uint64_t)json_integer_value(seq)) {
        free(at(b, 0)->text);
        at(b, 0)->text = NULL;
        b->head = (b->head + 1) % RT_BASE_INFLIGHT;
        b->len--;
        done++;
    }
    b->acked += done;
    if (done)
        pr_debug("baseline_acked", "seq=%lld batches=%zu waiting=%zu",
                 (long long)json_integer_value(seq), done, b->len);
    json_decref(ack);
    return done;
}

/* ---- glue with the router ---- */

static int to_control(void *arg, const char *text)
{
    return rt_control_send(arg, PR_CTL_BASELINE, text);
}

void rt_baseline_tick(rt_router *r)
{
    rt_baseline *b = rt_enforce_reports(r->enforce);
    uint64_t now = uv_now(r->loop);

    if (b == NULL || !rt_control_is_open(r))
        return;
    if (rt_baseline_overdue(b, now))
        rt_baseline_send_waiting(b, now, to_control, r);
    rt_baseline_flush(b, r->enforce, now, to_control, r);
}

void rt_baseline_resend(rt_router *r)
{
    rt_baseline *b = rt_enforce_reports(r->enforce);

    if (b)
        rt_baseline_send_waiting(b, uv_now(r->loop), to_control, r);
}

void rt_baseline_acked(rt_router *r, const uint8_t *body, size_t len)
{
    rt_baseline *b = rt_enforce_reports(r->enforce);

    if (b)
        rt_baseline_ack(b, body, len);
}

void rt_baseline_stop(rt_router *r)
{
    rt_baseline *b = rt_enforce_reports(r->enforce);

    if (b && rt_control_is_open(r))
        rt_baseline_final(b, r->enforce, to_control, r);
}

int rt_baseline_forget(rt_enforce *e, const uint8_t *body, size_t len)
{
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *ids = json_object_get(root, "identities"), *v;
    int rc = WEFT_EPROTO;
    size_t i;

    if (!json_is_array(ids) || json_array_size(ids) > RT_BASE_FORGET_MAX)
        goto out;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= RT_ID_CAP)
            goto out;
    }
    json_array_foreach(ids, i, v)
    {
        rt_enforce_base_forget(e, json_string_value(v));
    }
    rc = (int)json_array_size(ids);
out:
    json_decref(root);
    return rc;
}

void rt_baseline_reset_frame(rt_router *r, const uint8_t *body, size_t len)
{
    int rc = rt_baseline_forget(r->enforce, body, len);

    if (rc < 0)
        pr_warn("baseline_reset_rejected", "bytes=%zu hint=%s", len,
                pr_log_q("CTL_BASELINE_RESET must be {\"identities\": [...]}, at most 1024 ids"));
    else
        pr_info("baseline_reset", "identities=%d", rc);
}
