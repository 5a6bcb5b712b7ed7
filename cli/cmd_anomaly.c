/* weft anomaly ...: the network-wide anomaly-detection settings every router
 * gets from the map (show, set, reset), and the baseline the controller keeps
 * for an identity (baseline, forget; docs/policies.md "Anomaly detection"). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/units.h"
#include "proto/anomaly.h"

enum { V_DURATION, V_COUNT, V_NUMBER, V_BYTES };

/* Command-line options, in the order of pr_anom_keys. */
static const struct {
    const char *opt;
    int kind;
} opts[PR_ANOM_NKEYS] = {
    [PR_ANOM_K_WINDOW_S] = {"window", V_DURATION},
    [PR_ANOM_K_LEARN] = {"learn", V_COUNT},
    [PR_ANOM_K_FACTOR] = {"factor", V_NUMBER},
    [PR_ANOM_K_BYTES_FACTOR] = {"bytes-factor", V_NUMBER},
    [PR_ANOM_K_MIN_BYTES] = {"min-bytes", V_BYTES},
    [PR_ANOM_K_HOURS_LEARN_S] = {"hours-learn", V_DURATION},
};

static int parse_value(int kind, const char *s, double *out)
{
    long long ll;
    long l;
    char *end;

    switch (kind) {
    case V_DURATION:
        if (cli_parse_duration(s, &ll) < 0)
            return -1;
        *out = (double)ll;
        return 0;
    case V_BYTES:
        if (cli_parse_bytes(s, &ll) < 0)
            return -1;
        *out = (double)ll;
        return 0;
    case V_COUNT:
        if (cli_parse_uint(s, 1000000000L, &l) < 0)
            return -1;
        *out = (double)l;
        return 0;
    default:
        errno = 0;
        *out = strtod(s, &end);
        return errno || end == s || *end != '\0' || !isfinite(*out) ? -1 : 0;
    }
}

/* "window", "window_s", "bytes-factor" or "bytes_factor": the key's index. */
static int key_of(const char *name)
{
    for (int k = 0; k < PR_ANOM_NKEYS; k++)
        if (strcmp(name, opts[k].opt) == 0 || strcmp(name, pr_anom_keys[k].name) == 0)
            return k;
    return -1;
}

static void print_settings(const json_t *data)
{
    for (int k = 0; k < PR_ANOM_NKEYS; k++) {
        const json_t *v = json_object_get(data, pr_anom_keys[k].name);
        if (json_is_number(v))
            printf("%-14s %g\n", pr_anom_keys[k].name, json_number_value(v));
        else
            printf("%-14s - (each router's router.json, else %g)\n", pr_anom_keys[k].name,
                   pr_anom_keys[k].dflt);
    }
}

static int show_reply(cli_ctx *c, int rc, json_t *resp)
{
    if (rc == CLI_OK && !c->json)
        print_settings(json_object_get(resp, "data"));
    json_decref(resp);
    return rc;
}

static int anomaly_show(cli_ctx *c, const cli_args *a)
{
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/v1/settings/anomaly", NULL, &resp);

    (void)a;
    return show_reply(c, rc, resp);
}

static int anomaly_set(cli_ctx *c, const cli_args *a)
{
    json_t *body = json_object(), *resp = NULL;
    const char *s;
    double v;
    int rc;

    for (int k = 0; body && k < PR_ANOM_NKEYS; k++) {
        if ((s = cli_opt_get(a, opts[k].opt)) == NULL)
            continue;
        if (parse_value(opts[k].kind, s, &v) < 0) {
            json_decref(body);
            return cli_usage_error(c, "--%s: \"%s\" is not a %s", opts[k].opt, s,
                                   opts[k].kind == V_DURATION ? "duration (60s, 5m, 7d)"
                                   : opts[k].kind == V_BYTES  ? "size (65536, 64KiB, 1MB)"
                                                              : "number");
        }
        json_object_set_new(body, pr_anom_keys[k].name,
                            opts[k].kind == V_NUMBER ? json_real(v) : json_integer((json_int_t)v));
    }
    if (json_object_size(body) == 0) {
        json_decref(body);
        return cli_usage_error(c, "nothing to set: give at least one of --window, --learn, "
                                  "--factor, --bytes-factor, --min-bytes, --hours-learn");
    }
    rc = cli_call(c, "PATCH", "/v1/settings/anomaly", body, &resp);
    json_decref(body);
    return show_reply(c, rc, resp);
}

static int anomaly_reset(cli_ctx *c, const cli_args *a)
{
    json_t *body, *resp = NULL;
    int rc, k;

    if (a->npos == 0) {
        rc = cli_call(c, "DELETE", "/v1/settings/anomaly", NULL, &resp);
        json_decref(resp);
        if (rc == CLI_OK && !c->json)
            printf("anomaly settings reset: each router uses its router.json or the defaults\n");
        return rc;
    }
    if ((body = json_object()) == NULL)
        return cli_fail("out of memory");
    for (int i = 0; i < a->npos; i++) {
        if ((k = key_of(a->pos[i])) < 0) {
            json_decref(body);
            return cli_usage_error(c,
                                   "unknown setting \"%s\" (window, learn, factor, "
                                   "bytes-factor, min-bytes, hours-learn)",
                                   a->pos[i]);
        }
        json_object_set_new(body, pr_anom_keys[k].name, json_null());
    }
    rc = cli_call(c, "PATCH", "/v1/settings/anomaly", body, &resp);
    json_decref(body);
    return show_reply(c, rc, resp);
}

/* "08-11,14,20" from a 24-bit mask of hours. */
static void hours_text(uint32_t mask, char *out, size_t cap)
{
    size_t off = 0;

    out[0] = '\0';
    for (int h = 0; h < 24; h++) {
        int end = h;
        if (!(mask & (1u << h)))
            continue;
        while (end + 1 < 24 && (mask & (1u << (end + 1))))
            end++;
        off += (size_t)snprintf(out + off, cap - off, end > h ? "%s%02d-%02d" : "%s%02d",
                                off ? "," : "", h, end);
        if (off >= cap)
            return;
        h = end;
    }
    if (off == 0)
        snprintf(out, cap, "none yet");
}

static int anomaly_baseline(cli_ctx *c, const cli_args *a)
{
    char path[1024], hours[128];
    json_t *resp = NULL, *d;
    int rc;

    if (cli_ref_path("identities", a->pos[0], "/baseline", path, sizeof(path)) < 0)
        return cli_usage_error(c, "the id or name is too long");
    if ((rc = cli_call(c, "GET", path, NULL, &resp)) != CLI_OK || c->json) {
        json_decref(resp);
        return rc;
    }
    d = json_object_get(resp, "data");
    hours_text((uint32_t)json_integer_value(json_object_get(d, "hours")), hours, sizeof(hours));
    printf("identity          %s\n", cli_str(d, "identity"));
    printf("windows learnt    %lld (dials %.2f, services %.2f a window)\n",
           (long long)json_integer_value(json_object_get(d, "windows")),
           json_number_value(json_object_get(d, "dials")),
           json_number_value(json_object_get(d, "svcs")));
    printf("circuits learnt   %lld (%.0f bytes a circuit)\n",
           (long long)json_integer_value(json_object_get(d, "circuits")),
           json_number_value(json_object_get(d, "bytes")));
    printf("active hours      %s (%s)\n", hours, cli_str(d, "tz"));
    printf("updated_at        %s\n",
           json_is_string(json_object_get(d, "updated_at")) ? cli_str(d, "updated_at") : "never");
    json_decref(resp);
    return CLI_OK;
}

static int anomaly_forget(cli_ctx *c, const cli_args *a)
{
    char path[1024];
    json_t *resp = NULL;
    int rc;

    if (cli_ref_path("identities", a->pos[0], "/baseline", path, sizeof(path)) < 0)
        return cli_usage_error(c, "the id or name is too long");
    rc = cli_call(c, "DELETE", path, NULL, &resp);
    json_decref(resp);
    if (rc == CLI_OK && !c->json)
        printf("baseline of %s forgotten by the controller and the routers; it is learnt afresh\n",
               a->pos[0]);
    return rc;
}

const cli_cmd cli_anomaly_cmds[] = {
    {"anomaly", "show", "", "show the network-wide anomaly settings routers get from the map", NULL,
     "", 0, 0, anomaly_show},
    {"anomaly", "set",
     "[--window D] [--learn N] [--factor F] [--bytes-factor F] [--min-bytes SIZE] "
     "[--hours-learn D]",
     "set network-wide anomaly settings (every router, with the next map delta)",
     "  --window D         the dial-rate window (60s, 5m; 1 s to 1 day)\n"
     "  --learn N          windows (and circuits) learnt before judging\n"
     "  --factor F         dials or services over F times the baseline are an anomaly\n"
     "  --bytes-factor F   a circuit's bytes over F times the baseline are an anomaly\n"
     "  --min-bytes SIZE   and over SIZE bytes (64KiB, 1MB, 0)\n"
     "  --hours-learn D    how long the hours of activity are learnt (7d; 0: at once)\n",
     "window learn factor bytes-factor min-bytes hours-learn", 0, 0, anomaly_set},
    {"anomaly", "reset", "[SETTING]...",
     "forget network-wide settings (all, or the ones named): routers use their router.json", NULL,
     "", 0, PR_ANOM_NKEYS, anomaly_reset},
    {"anomaly", "baseline", CLI_REF_ARG,
     "show the baseline learnt for an identity (merged from every router)", NULL, "", 1, 1,
     anomaly_baseline},
    {"anomaly", "forget", CLI_REF_ARG,
     "forget the baseline learnt for an identity (controller and routers): it is learnt afresh",
     NULL, "", 1, 1, anomaly_forget},
    {0},
};
