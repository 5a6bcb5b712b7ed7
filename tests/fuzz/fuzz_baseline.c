/* Fuzzes the anomaly-baseline parsers (docs/policies.md "Anomaly
 * detection"): the controller's CTL_BASELINE batch parser
 * (controller/baseline.c), and the router's "base" claim and "anomaly"
 * settings readers (router/baseline.c, router/map.c), all on the same input.
 *
 * Checks, beyond "no crash, no read out of bounds":
 *  - whatever a parser accepts is within the documented ranges (ids
 *    NUL-terminated and 1..64 characters, counts and sums bounded, hours in
 *    24 bits, zone offsets under a day, settings in their key's range);
 *  - merging an accepted batch keeps a baseline finite and bounded;
 *  - every accepted entry, written again by the router's own encoder
 *    (rt_base_inc_json), is read back by the controller with the same values:
 *    what routers send is what the controller stores. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller/baseline.h"
#include "router/baseline.h"
#include "router/map.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inc(const ctl_baseline_inc *i)
{
    size_t n = strnlen(i->id, sizeof(i->id));

    if (n == 0 || n > PR_ID_MAX || i->windows < 0 || i->windows > CTL_BASELINE_COUNT_MAX ||
        i->quiet < 0 || i->circuits < 0 || i->hours > CTL_BASELINE_HOURS || i->first_s < 0 ||
        !(i->dials >= 0 && i->dials <= CTL_BASELINE_VALUE_MAX) ||
        !(i->svcs >= 0 && i->svcs <= CTL_BASELINE_VALUE_MAX) ||
        !(i->bytes >= 0 && i->bytes <= CTL_BASELINE_VALUE_MAX))
        abort();
}

/* The router's encoding of the entry, read back by the controller. */
static void round_trip(const ctl_baseline_inc *i)
{
    rt_base_inc r;
    json_t *e, *root;
    ctl_baseline_batch b;
    char *text, err[128];
    int head_ok;

    memset(&r, 0, sizeof(r));
    memcpy(r.id, i->id, strlen(i->id) + 1);
    r.windows = (unsigned)i->windows;
    r.quiet = (unsigned)i->quiet;
    r.circuits = (unsigned)i->circuits;
    r.dials = i->dials;
    r.svcs = i->svcs;
    r.bytes = i->bytes;
    r.hours = i->hours;
    r.first_s = i->first_s;
    if ((e = rt_base_inc_json(&r)) == NULL)
        return;
    root = json_pack("{s:s, s:i, s:[o]}", "boot", "fuzz", "seq", 1, "ids", e);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        return;
    if (ctl_baseline_parse((const uint8_t *)text, strlen(text), &b, &head_ok, err, sizeof(err)) <
            0 ||
        b.n != 1 || strcmp(b.inc[0].id, i->id) != 0 || b.inc[0].windows != i->windows ||
        b.inc[0].quiet != i->quiet || b.inc[0].circuits != i->circuits ||
        b.inc[0].hours != i->hours || b.inc[0].first_s != i->first_s ||
        b.inc[0].dials != i->dials || b.inc[0].svcs != i->svcs || b.inc[0].bytes != i->bytes)
        abort();
    ctl_baseline_batch_free(&b);
    free(text);
}

static void fuzz_batch(const uint8_t *data, size_t size)
{
    ctl_baseline_batch b;
    ctl_baseline m;
    char err[256];
    int head_ok;

    if (ctl_baseline_parse(data, size, &b, &head_ok, err, sizeof(err)) < 0) {
        if (b.inc != NULL || b.n != 0 || memchr(err, '\0', sizeof(err)) == NULL)
            abort();
        return;
    }
    if (b.n > CTL_BASELINE_IDS_MAX || b.seq < 1 || strlen(b.boot) == 0)
        abort();
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < b.n; i++) {
        check_inc(&b.inc[i]);
        round_trip(&b.inc[i]);
        ctl_baseline_merge(&m, &b.inc[i]);
        if (!isfinite(m.dials) || !isfinite(m.svcs) || !isfinite(m.bytes) || m.dials < 0 ||
            m.windows > CTL_BASELINE_COUNT_MAX || m.circuits > CTL_BASELINE_COUNT_MAX ||
            m.hours > CTL_BASELINE_HOURS)
            abort();
    }
    ctl_baseline_batch_free(&b);
}

static void fuzz_claims(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    pr_anom_set set;
    rt_base c;

    if (j == NULL)
        return;
    if (rt_base_from_claim(j, &c) == 0) {
        if (c.have != 1 || c.hours > RT_BASE_HOURS_MASK || c.tz_off <= -86400 ||
            c.tz_off >= 86400 || c.first_s < 0 || !(c.avg_dials >= 0) || !(c.avg_svcs >= 0) ||
            !(c.avg_bytes >= 0) || c.avg_bytes > RT_BASE_VALUE_MAX)
            abort();
    } else if (c.have) {
        abort();
    }
    rt_anom_set_from_json(j, "", &set, NULL);
    for (int k = 0; k < PR_ANOM_NKEYS; k++)
        if ((set.have & (1u << k)) &&
            !(set.v[k] >= pr_anom_keys[k].lo && set.v[k] <= pr_anom_keys[k].hi))
            abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_batch(data, size);
    fuzz_claims(data, size);
    return 0;
}
