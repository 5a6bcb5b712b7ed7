/* Anomaly baselines kept by the controller (baseline.h): parsing the
 * routers' batches, merging increments, storing them once per batch, and the
 * "base" claim of service tokens. */
#include "controller/baseline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/behaviour.h"
#include "proto/errf.h"
#include "proto/jsonnum.h"
#include "proto/log.h"
#include "weft/errors.h"

/* ---- merging ---- */

/* (1 - alpha)^n; past a few hundred windows nothing of the old value is left. */
static double kept(int64_t n)
{
    double k = 1.0;

    for (int64_t i = 0; i < n && i < 256; i++)
        k *= 1.0 - CTL_BASELINE_ALPHA;
    return k;
}

static int64_t add_count(int64_t a, int64_t b)
{
    return a + b > CTL_BASELINE_COUNT_MAX ? CTL_BASELINE_COUNT_MAX : a + b;
}

/* n samples of mean into an EWMA that has seen had samples. */
static void ewma_add(double *avg, int64_t had, double mean, int64_t n)
{
    if (had == 0)
        *avg = mean;
    else
        *avg += (1.0 - kept(n)) * (mean - *avg);
}

void ctl_baseline_merge(ctl_baseline *b, const ctl_baseline_inc *inc)
{
    if (inc->windows > 0) {
        ewma_add(&b->dials, b->windows, inc->dials / (double)inc->windows, inc->windows);
        ewma_add(&b->svcs, b->windows, inc->svcs / (double)inc->windows, inc->windows);
        b->windows = add_count(b->windows, inc->windows);
    }
    if (inc->quiet > 0 && b->windows > 0) {
        b->dials *= kept(inc->quiet);
        b->svcs *= kept(inc->quiet);
    }
    if (inc->circuits > 0) {
        ewma_add(&b->bytes, b->circuits, inc->bytes / (double)inc->circuits, inc->circuits);
        b->circuits = add_count(b->circuits, inc->circuits);
    }
    b->hours |= inc->hours & CTL_BASELINE_HOURS;
    if (inc->first_s > 0 && (b->first_s == 0 || inc->first_s < b->first_s))
        b->first_s = inc->first_s;
}

/* ---- batches ---- */

static int get_sum(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 ||
        json_number_value(v) > CTL_BASELINE_VALUE_MAX)
        return WEFT_EPROTO;
    *out = json_number_value(v);
    return 0;
}

static int parse_inc(const json_t *e, ctl_baseline_inc *inc)
{
    const char *id = json_string_value(json_object_get(e, "id"));
    int64_t h;

    memset(inc, 0, sizeof(*inc));
    if (!json_is_object(e) || id == NULL || id[0] == '\0' || strlen(id) > PR_ID_MAX)
        return WEFT_EPROTO;
    memcpy(inc->id, id, strlen(id) + 1);
    if (pr_json_uint(e, "w", CTL_BASELINE_COUNT_MAX, &inc->windows) < 0 ||
        pr_json_uint(e, "q", CTL_BASELINE_COUNT_MAX, &inc->quiet) < 0 ||
        pr_json_uint(e, "c", CTL_BASELINE_COUNT_MAX, &inc->circuits) < 0 ||
        pr_json_uint(e, "h", CTL_BASELINE_HOURS, &h) < 0 ||
        pr_json_uint(e, "t", 1LL << 40, &inc->first_s) < 0 || get_sum(e, "d", &inc->dials) < 0 ||
        get_sum(e, "s", &inc->svcs) < 0 || get_sum(e, "b", &inc->bytes) < 0)
        return WEFT_EPROTO;
    inc->hours = (uint32_t)h;
    return 0;
}

int ctl_baseline_boot_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > CTL_BASELINE_BOOT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

static int parse_head(const json_t *root, ctl_baseline_batch *out, char *err, size_t errcap)
{
    const char *boot = json_string_value(json_object_get(root, "boot"));
    const json_t *seq = json_object_get(root, "seq");

    if (!json_is_object(root))
        return pr_errf(err, errcap, WEFT_EJSON, "a baseline batch is a JSON object");
    if (!ctl_baseline_boot_ok(boot))
        return pr_errf(err, errcap, WEFT_EPROTO, "\"boot\" is not 1..64 letters and digits");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        return pr_errf(err, errcap, WEFT_EPROTO, "\"seq\" is not a positive integer");
    memcpy(out->boot, boot, strlen(boot) + 1);
    out->seq = (int64_t)json_integer_value(seq);
    return 0;
}

static int parse_ids(const json_t *ids, ctl_baseline_batch *out, char *err, size_t errcap)
{
    const json_t *e;
    size_t i;

    if (!json_is_array(ids) || json_array_size(ids) > CTL_BASELINE_IDS_MAX)
        return pr_errf(err, errcap, WEFT_EPROTO, "\"ids\" is not an array of at most %d entries",
                       CTL_BASELINE_IDS_MAX);
    if ((out->inc = calloc(json_array_size(ids) + 1, sizeof(*out->inc))) == NULL)
        return WEFT_ENOMEM;
    json_array_foreach(ids, i, e)
    {
        if (parse_inc(e, &out->inc[i]) < 0)
            return pr_errf(err, errcap, WEFT_EPROTO,
                           "entry %zu of \"ids\" is malformed (an \"id\" of 1..64 characters; "
                           "w, q, c, h, t non-negative integers in range; d, s, b non-negative "
                           "numbers)",
                           i);
        out->n++;
    }
    return 0;
}

int ctl_baseline_parse(const uint8_t *body, size_t len, ctl_baseline_batch *out, int *head_ok,
                       char *err, size_t errcap)
{
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    int rc;

    memset(out, 0, sizeof(*out));
    *head_ok = 0;
    if (root == NULL)
        return pr_errf(err, errcap, WEFT_EJSON, "a baseline batch is not JSON");
    if ((rc = parse_head(root, out, err, errcap)) == 0) {
        *head_ok = 1;
        rc = parse_ids(json_object_get(root, "ids"), out, err, errcap);
    }
    json_decref(root);
    if (rc < 0) {
        free(out->inc);
        out->inc = NULL;
        out->n = 0;
    }
    return rc;
}

void ctl_baseline_batch_free(ctl_baseline_batch *b)
{
    if (b == NULL)
        return;
    free(b->inc);
    b->inc = NULL;
    b->n = 0;
}

/* ---- store ---- */

void ctl_baseline_from_json(const json_t *o, ctl_baseline *b)
{
    memset(b, 0, sizeof(*b));
    b->windows = (int64_t)json_integer_value(json_object_get(o, "windows"));
    b->dials = json_number_value(json_object_get(o, "dials"));
    b->svcs = json_number_value(json_object_get(o, "svcs"));
    b->circuits = (int64_t)json_integer_value(json_object_get(o, "circuits"));
    b->bytes = json_number_value(json_object_get(o, "bytes"));
    b->hours = (uint32_t)json_integer_value(json_object_get(o, "hours")) & CTL_BASELINE_HOURS;
    b->first_s = (int64_t)json_integer_value(json_object_get(o, "first_s"));
}

json_t *ctl_baseline_to_json(const ctl_baseline *b)
{
    return json_pack("{s:I, s:f, s:f, s:I, s:f, s:I, s:I}", "windows", (json_int_t)b->windows,
                     "dials", b->dials, "svcs", b->svcs, "circuits", (json_int_t)b->circuits,
                     "bytes", b->bytes, "hours", (json_int_t)b->hours, "first_s",
                     (json_int_t)b->first_s);
}

/* The baselines the batch's identities have after it: {id -> baseline}. */
static int merge_batch(ctl *c, const ctl_baseline_batch *batch, json_t *merged)
{
    ctl_baseline b;
    json_t *cur;
    int rc;

    for (size_t i = 0; i < batch->n; i++) {
        const ctl_baseline_inc *inc = &batch->inc[i];
        if ((cur = json_object_get(merged, inc->id)) != NULL) {
            ctl_baseline_from_json(cur, &b);
        } else if ((rc = ctl_store_baseline_get(c->store, inc->id, &cur)) == 0) {
            ctl_baseline_from_json(cur, &b);
            json_decref(cur);
        } else if (rc == WEFT_ENOTFOUND) {
            memset(&b, 0, sizeof(b));
        } else {
            return rc;
        }
        ctl_baseline_merge(&b, inc);
        if ((cur = ctl_baseline_to_json(&b)) == NULL)
            return WEFT_ENOMEM;
        json_object_set_new(merged, inc->id, cur);
    }
    return 0;
}

static char *ack_text(const ctl_baseline_batch *b)
{
    json_t *o = json_pack("{s:s, s:I}", "boot", b->boot, "seq", (json_int_t)b->seq);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return text;
}

/* 1 when this router's batch of that boot and seq was stored already. */
static int seen(ctl *c, const char *router_id, const ctl_baseline_batch *b, int *rc)
{
    char boot[CTL_BASELINE_BOOT_MAX + 1];
    int64_t seq;

    *rc = ctl_store_baseline_mark(c->store, router_id, boot, sizeof(boot), &seq);
    return *rc == 0 && strcmp(boot, b->boot) == 0 && b->seq <= seq;
}

int ctl_baseline_ingest(ctl *c, const char *router_id, const uint8_t *body, size_t len, char **ack)
{
    ctl_baseline_batch b;
    json_t *merged = NULL;
    char err[256] = "";
    int head_ok, rc = ctl_baseline_parse(body, len, &b, &head_ok, err, sizeof(err));

    *ack = NULL;
    if (rc < 0) {
        pr_warn("baseline_rejected", "router=%s err=%s reason=%s hint=%s", router_id,
                weft_err_name(rc), pr_log_q(err),
                pr_log_q("the batch is dropped; docs/policies.md \"Anomaly detection\""));
        if (head_ok)
            *ack = ack_text(&b);
        return rc;
    }
    if (seen(c, router_id, &b, &rc)) {
        pr_debug("baseline_again", "router=%s seq=%lld", router_id, (long long)b.seq);
    } else if (rc == 0 && (merged = json_object()) != NULL &&
               (rc = merge_batch(c, &b, merged)) == 0 &&
               (rc = ctl_store_baseline_put(c->store, router_id, b.boot, b.seq, merged)) == 0) {
        pr_debug("baseline_stored", "router=%s seq=%lld identities=%zu", router_id,
                 (long long)b.seq, b.n);
    } else if (rc == 0) {
        rc = WEFT_ENOMEM;
    }
    if (rc == 0)
        *ack = ack_text(&b);
    json_decref(merged);
    ctl_baseline_batch_free(&b);
    return rc;
}

/* ---- the "base" claim ---- */

static void claim_put(json_t *o, const char *key, json_t *v, int zero)
{
    if (zero)
        json_decref(v);
    else
        json_object_set_new(o, key, v);
}

json_t *ctl_baseline_claim(ctl *c, const json_t *identity, int64_t now)
{
    const char *id = json_string_value(json_object_get(identity, "id"));
    const char *tz = json_string_value(json_object_get(identity, "tz"));
    json_t *claim = json_object(), *rec = NULL;
    ctl_baseline b;
    long off = 0;

    if (claim == NULL || id == NULL) {
        json_decref(claim);
        return NULL;
    }
    if (ctl_store_baseline_get(c->store, id, &rec) == 0) {
        ctl_baseline_from_json(rec, &b);
        claim_put(claim, "w", json_integer(b.windows), b.windows == 0);
        claim_put(claim, "d", json_real(b.dials), b.windows == 0);
        claim_put(claim, "s", json_real(b.svcs), b.windows == 0);
        claim_put(claim, "c", json_integer(b.circuits), b.circuits == 0);
        claim_put(claim, "b", json_real(b.bytes), b.circuits == 0);
        claim_put(claim, "h", json_integer(b.hours), b.hours == 0);
        claim_put(claim, "t", json_integer(b.first_s), b.first_s == 0);
    }
    json_decref(rec);
    if (tz && ctl_behaviour_zone_offset(tz, now, &off) == 0 && off != 0)
        json_object_set_new(claim, "z", json_integer(off));
    if (json_object_size(claim) == 0) {
        json_decref(claim);
        return NULL;
    }
    return claim;
}
