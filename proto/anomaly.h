/* Anomaly-detection settings (docs/policies.md "Anomaly detection"): one
 * table of keys, ranges and defaults for every place that reads them. The
 * controller keeps network-wide values (/v1/settings/anomaly) and publishes
 * them in the map's "anomaly" object under these names; a router falls back,
 * key by key, to router.json's "anomaly_<name>" and then to the default. */
#ifndef PR_ANOMALY_H
#define PR_ANOMALY_H

#define PR_ANOM_WINDOW_S      10
#define PR_ANOM_LEARN         3
#define PR_ANOM_FACTOR        4.0
#define PR_ANOM_BYTES_FACTOR  10.0
#define PR_ANOM_MIN_BYTES     65536.0
#define PR_ANOM_HOURS_LEARN_S (7 * 86400)

enum pr_anom_key {
    PR_ANOM_K_WINDOW_S,      /* the dial-rate window, seconds */
    PR_ANOM_K_LEARN,         /* windows (and circuits) learnt before judging */
    PR_ANOM_K_FACTOR,        /* dials or services over this times the baseline */
    PR_ANOM_K_BYTES_FACTOR,  /* a circuit's bytes over this times the baseline */
    PR_ANOM_K_MIN_BYTES,     /* and over this many bytes */
    PR_ANOM_K_HOURS_LEARN_S, /* how long the hours of activity are learnt */
    PR_ANOM_NKEYS
};

typedef struct {
    const char *name;
    double lo, hi; /* inclusive */
    double dflt;
} pr_anom_key_desc;

/* Header-only: GCC's -Wunused-const-variable=1 leaves tables in headers alone. */
static const pr_anom_key_desc pr_anom_keys[PR_ANOM_NKEYS] = {
    [PR_ANOM_K_WINDOW_S] = {"window_s", 1, 86400, PR_ANOM_WINDOW_S},
    [PR_ANOM_K_LEARN] = {"learn", 1, 1000000, PR_ANOM_LEARN},
    [PR_ANOM_K_FACTOR] = {"factor", 1, 1e6, PR_ANOM_FACTOR},
    [PR_ANOM_K_BYTES_FACTOR] = {"bytes_factor", 1, 1e6, PR_ANOM_BYTES_FACTOR},
    [PR_ANOM_K_MIN_BYTES] = {"min_bytes", 0, 1e15, PR_ANOM_MIN_BYTES},
    [PR_ANOM_K_HOURS_LEARN_S] = {"hours_learn_s", 0, 1e9, PR_ANOM_HOURS_LEARN_S},
};

/* Some of the settings: bit k of have is set when v[k] was given. */
typedef struct {
    unsigned have;
    double v[PR_ANOM_NKEYS];
} pr_anom_set;

#endif
