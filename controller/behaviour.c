/* Behaviour policies and device binding: which limits apply to an identity
 * on a service, as the "lim" claim of its service tokens, and what its
 * reported hardware ids mean for its binding (docs/policies.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/behaviour.h"
#include "controller/policy.h"
#include "weft/errors.h"

#define ZONE_MAX 64

static const char *const act_names[] = {"block", "log", "alert", "remove"};

int ctl_behaviour_actions(const json_t *arr, unsigned *bits)
{
    const json_t *v;
    size_t i, k;

    *bits = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 4)
        return WEFT_EINVAL;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        for (k = 0; s && k < 4 && strcmp(s, act_names[k]) != 0; k++)
            ;
        if (s == NULL || k == 4)
            return WEFT_EINVAL;
        *bits |= 1u << k;
    }
    return 0;
}

static json_t *actions_json(unsigned bits)
{
    json_t *a = json_array();

    for (size_t k = 0; k < 4; k++)
        if (bits & (1u << k))
            json_array_append_new(a, json_string(act_names[k]));
    return a;
}

static int parse_hhmm(const char *s, int *min)
{
    if (!(s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' &&
          s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9'))
        return WEFT_EINVAL;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || (h == 24 && m != 0))
        return WEFT_EINVAL;
    *min = h * 60 + m;
    return 0;
}

/* A zone name is a path under the zone database: refuse anything that could
 * climb out of it, then read the file's magic (a directory such as
 * "Europe" opens too, but is no zone). */
int ctl_behaviour_zone_valid(const char *zone)
{
    char path[128], magic[4];
    size_t n;

    if (zone == NULL)
        return 0;
    if (strcmp(zone, "UTC") == 0)
        return 1;
    if (zone[0] == '\0' || zone[0] == '/' || strstr(zone, "..") || strlen(zone) >= ZONE_MAX)
        return 0;
    for (const char *p = zone; *p; p++)
        if (!(*p == '/' || *p == '_' || *p == '-' || *p == '+' || (*p >= 'A' && *p <= 'Z') ||
              (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    n = fread(magic, 1, sizeof(magic), f);
    fclose(f);
    return n == sizeof(magic) && memcmp(magic, "TZif", 4) == 0;
}

int ctl_behaviour_parse_window(const char *s, int *from_min, int *to_min, char *zone,
                               size_t zonecap)
{
    const char *at = s ? strchr(s, '@') : NULL;

    if (s == NULL || strlen(s) < 11 || s[5] != '-' || parse_hhmm(s, from_min) < 0 ||
        parse_hhmm(s + 6, to_min) < 0 || (s[11] != '\0' && s[11] != '@'))
        return WEFT_EINVAL;
    if (*from_min == *to_min)
        return WEFT_EINVAL; /* an empty (or whole-day) window says nothing useful */
    if (at == NULL) {
        snprintf(zone, zonecap, "UTC");
        return 0;
    }
    if (at != s + 11 || !ctl_behaviour_zone_valid(at + 1) || strlen(at + 1) >= zonecap)
        return WEFT_EINVAL;
    snprintf(zone, zonecap, "%s", at + 1);
    return 0;
}

/* The controller runs on one thread, so TZ may be switched for the call; it is
 * restored before returning. */
int ctl_behaviour_zone_offset(const char *zone, int64_t t, long *off_s)
{
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    time_t tt = (time_t)t;
    struct tm tm;
    int rc = 0;

    setenv("TZ", zone, 1);
    tzset();
    if (localtime_r(&tt, &tm) == NULL)
        rc = WEFT_EINVAL;
    else
        *off_s = tm.tm_gmtoff;
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);
    return rc;
}

static int field_count(const json_t *body, const char *key, int64_t max, json_t *fields,
                       char *err, size_t errcap)
{
    const json_t *v = json_object_get(body, key);

    if (v == NULL)
        return 0;
    if (json_is_null(v)) {
        json_object_set_new(fields, key, json_null());
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
        snprintf(err, errcap, "field '%s' must be an integer in 1..%lld", key, (long long)max);
        return WEFT_EINVAL;
    }
    json_object_set(fields, key, (json_t *)v);
    return 1;
}

static int field_window(const json_t *body, json_t *fields, char *err, size_t errcap)
{
    const json_t *v = json_object_get(body, "time");
    char zone[ZONE_MAX];
    int a, b;

    if (v == NULL)
        return 0;
    if (json_is_null(v)) {
        json_object_set_new(fields, "time", json_null());
        return 0;
    }
    if (!json_is_string(v) ||
        ctl_behaviour_parse_window(json_string_value(v), &a, &b, zone, sizeof(zone)) < 0) {
        snprintf(err, errcap,
                 "field 'time' must be \"HH:MM-HH:MM\" or \"HH:MM-HH:MM@Zone\" with a zone of "
                 "the system's zone database, e.g. \"08:00-18:00@Europe/Paris\"");
        return WEFT_EINVAL;
    }
    json_object_set(fields, "time", (json_t *)v);
    return 1;
}

int ctl_behaviour_fields(const json_t *body, int creating, json_t *fields, char *err,
                         size_t errcap)
{
    const json_t *acts = json_object_get(body, "actions");
    unsigned bits;
    int n = 0, rc;

    if ((rc = field_window(body, fields, err, errcap)) < 0)
        return rc;
    n += rc;
    static const struct { const char *key; int64_t max; } counts[] = {
        {"conn_rate", 1000000}, {"bandwidth", INT64_C(1) << 40},
        {"quota", INT64_C(1) << 50}, {"max_circuits", 1000000}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if ((rc = field_count(body, counts[i].key, counts[i].max, fields, err, errcap)) < 0)
            return rc;
        n += rc;
    }
    if (acts != NULL && ctl_behaviour_actions(acts, &bits) < 0) {
        snprintf(err, errcap, "field 'actions' must be a non-empty array of \"block\", \"log\", "
                              "\"alert\" and \"remove\"");
        return WEFT_EINVAL;
    }
    if (acts != NULL)
        json_object_set(fields, "actions", (json_t *)acts);
    if (creating && acts == NULL) {
        snprintf(err, errcap, "a behaviour policy needs 'actions' (block, log, alert, remove)");
        return WEFT_EINVAL;
    }
    (void)n; /* a policy with actions and no limit still restricts destinations */
    return 0;
}

/* ---- limits for a token ---- */

static int is_behaviour(const json_t *p)
{
    const char *t = json_string_value(json_object_get(p, "type"));
    return t && strcmp(t, "behaviour") == 0;
}

static int applies(const json_t *p, const json_t *identity, const json_t *service)
{
    const char *sem = json_string_value(json_object_get(p, "semantic"));
    const json_t *svc_sels = json_object_get(p, "service_roles");

    if (!is_behaviour(p) || !ctl_policy_selects(json_object_get(p, "identity_roles"), sem,
                                                identity))
        return 0;
    if (service == NULL || json_array_size(svc_sels) == 0)
        return 1;
    return ctl_policy_selects(svc_sels, sem, service);
}

static void take_min(json_t *lim, const char *claim, const json_t *p, const char *key)
{
    const json_t *v = json_object_get(p, key), *cur = json_object_get(lim, claim);

    if (!json_is_integer(v))
        return;
    if (cur == NULL || json_integer_value(v) < json_integer_value(cur))
        json_object_set_new(lim, claim, json_integer(json_integer_value(v)));
}

/* "win": [from minute, to minute, UTC offset in seconds now] */
static void add_window(json_t *lim, const json_t *p, int64_t now)
{
    const char *w = json_string_value(json_object_get(p, "time"));
    char zone[ZONE_MAX];
    long off = 0;
    int a, b;

    if (w == NULL || json_object_get(lim, "win") != NULL ||
        ctl_behaviour_parse_window(w, &a, &b, zone, sizeof(zone)) < 0 ||
        ctl_behaviour_zone_offset(zone, now, &off) < 0)
        return;
    json_object_set_new(lim, "win", json_pack("[i, i, I]", a, b, (json_int_t)off));
}

/* Policies sorted by name so that "the first window" does not depend on the
 * store's order. */
static int by_name(const void *a, const void *b)
{
    const json_t *const *x = a, *const *y = b;
    const char *n1 = json_string_value(json_object_get(*x, "name"));
    const char *n2 = json_string_value(json_object_get(*y, "name"));
    return strcmp(n1 ? n1 : "", n2 ? n2 : "");
}

json_t *ctl_behaviour_limits(const json_t *policies, const json_t *identity,
                             const json_t *service, int64_t now)
{
    size_t n = json_array_size(policies), k = 0, i;
    const json_t **sel = n ? calloc(n, sizeof(*sel)) : NULL;
    json_t *lim = NULL, *p, *names;
    unsigned acts = 0, bits;

    if (sel == NULL)
        return NULL;
    json_array_foreach(policies, i, p)
        if (applies(p, identity, service))
            sel[k++] = p;
    if (k == 0)
        goto out;
    qsort(sel, k, sizeof(*sel), by_name);
    lim = json_object();
    names = json_array();
    for (i = 0; i < k; i++) {
        take_min(lim, "rate", sel[i], "conn_rate");
        take_min(lim, "bw", sel[i], "bandwidth");
        take_min(lim, "quota", sel[i], "quota");
        take_min(lim, "maxc", sel[i], "max_circuits");
        add_window(lim, sel[i], now);
        if (ctl_behaviour_actions(json_object_get(sel[i], "actions"), &bits) == 0)
            acts |= bits;
        json_array_append(names, json_object_get(sel[i], "name"));
    }
    json_object_set_new(lim, "act", actions_json(acts));
    json_object_set_new(lim, "pol", names);
out:
    free(sel);
    return lim;
}

unsigned ctl_behaviour_identity_actions(const json_t *policies, const json_t *identity)
{
    unsigned acts = 0, bits;
    const json_t *p;
    size_t i;

    json_array_foreach(policies, i, p)
        if (applies(p, identity, NULL) &&
            ctl_behaviour_actions(json_object_get(p, "actions"), &bits) == 0)
            acts |= bits;
    return acts;
}

/* ---- device binding ---- */

static const char *str_or_empty(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The id that is the identity (must match) and the one that may change (flagged). */
static void binding_roles(const char *mode, const char **fixed, const char **flagged)
{
    *fixed = *flagged = NULL;
    if (strcmp(mode, "iccid") == 0) {
        *fixed = "iccid";
        *flagged = "imei";
    } else if (strcmp(mode, "imei") == 0) {
        *fixed = "imei";
        *flagged = "iccid";
    }
}

static void set_if_new(json_t **update, const char *key, const char *seen, const char *known)
{
    if (seen[0] == '\0' || strcmp(seen, known) == 0)
        return;
    if (*update == NULL)
        *update = json_object();
    json_object_set_new(*update, key, json_string(seen));
}

int ctl_binding_check(const json_t *identity, const char *imei, const char *iccid,
                      json_t **update, char *why, size_t whycap, int *flag)
{
    const char *mode = str_or_empty(identity, "binding"), *fixed, *flagged;
    const char *k_imei = str_or_empty(identity, "imei"), *k_iccid = str_or_empty(identity, "iccid");

    *update = NULL;
    *flag = 0;
    if (mode[0] == '\0' || strcmp(mode, "none") == 0)
        return 0;
    if (strcmp(mode, "exact") == 0) {
        if ((k_imei[0] && strcmp(imei, k_imei) != 0) || (k_iccid[0] && strcmp(iccid, k_iccid) != 0)) {
            snprintf(why, whycap,
                     "hardware ids (IMEI %s, ICCID %s) do not match the pair bound to this "
                     "identity; if the device or SIM was replaced on purpose, run 'weft identity "
                     "rebind'",
                     imei[0] ? imei : "none", iccid[0] ? iccid : "none");
            return WEFT_EDENIED;
        }
        set_if_new(update, "imei", imei, k_imei);
        set_if_new(update, "iccid", iccid, k_iccid);
        return 0;
    }
    binding_roles(mode, &fixed, &flagged);
    if (fixed == NULL)
        return 0;
    const char *seen_fixed = strcmp(fixed, "imei") == 0 ? imei : iccid;
    const char *seen_flag = strcmp(fixed, "imei") == 0 ? iccid : imei;
    const char *known_fixed = strcmp(fixed, "imei") == 0 ? k_imei : k_iccid;
    const char *known_flag = strcmp(fixed, "imei") == 0 ? k_iccid : k_imei;
    if (known_fixed[0] && strcmp(seen_fixed, known_fixed) != 0) {
        snprintf(why, whycap,
                 "the %s reported (%s) is not the one bound to this identity; run 'weft identity "
                 "rebind' if it changed on purpose",
                 fixed, seen_fixed[0] ? seen_fixed : "none");
        return WEFT_EDENIED;
    }
    if (known_flag[0] && seen_flag[0] && strcmp(seen_flag, known_flag) != 0) {
        *flag = 1;
        snprintf(why, whycap, "%s changed from %s to %s", flagged, known_flag, seen_flag);
    }
    set_if_new(update, fixed, seen_fixed, known_fixed);
    set_if_new(update, flagged, seen_flag, known_flag);
    return 0;
}

json_t *ctl_binding_claim(const json_t *identity)
{
    const char *mode = str_or_empty(identity, "binding");
    json_t *hw;

    if (mode[0] == '\0' || strcmp(mode, "none") == 0)
        return NULL;
    hw = json_pack("{s:s}", "mode", mode);
    if (hw && str_or_empty(identity, "imei")[0])
        json_object_set(hw, "imei", json_object_get(identity, "imei"));
    if (hw && str_or_empty(identity, "iccid")[0])
        json_object_set(hw, "iccid", json_object_get(identity, "iccid"));
    return hw;
}
