/* Quantities on the command line: behaviour policies, anomaly settings (units.h). */
#include "cli/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The decimal number s starts with (no sign); *end points past it. */
static int leading_int(const char *s, long long *v, char **end)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *v = strtoll(s, end, 10);
    return errno ? -1 : 0;
}

/* "N[unit]" with N a positive integer; *rest points past the size unit. */
static int parse_size(const char *s, long long *out, const char **rest)
{
    static const struct { const char *u; long long mul; } units[] = {
        {"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30}, {"TiB", 1LL << 40},
        {"Ki", 1LL << 10},  {"Mi", 1LL << 20},  {"Gi", 1LL << 30},  {"Ti", 1LL << 40},
        {"KB", 1000LL},     {"kB", 1000LL},     {"MB", 1000000LL},  {"GB", 1000000000LL},
        {"TB", 1000000000000LL}, {"K", 1000LL}, {"k", 1000LL},      {"M", 1000000LL},
        {"G", 1000000000LL}, {"T", 1000000000000LL}, {"B", 1},
    };
    char *end;
    long long v;

    if (leading_int(s, &v, &end) < 0 || v <= 0)
        return -1;
    *out = v;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t n = strlen(units[i].u);
        if (strncmp(end, units[i].u, n) == 0) {
            if (v > (1LL << 62) / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            end += n;
            break;
        }
    }
    *rest = end;
    return 0;
}

static int one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

int cli_parse_rate(const char *s, long long *per_min)
{
    static const char *const min[] = {"", "/min", "/m", "/minute", NULL};
    static const char *const sec[] = {"/s", "/sec", "/second", NULL};
    char *end;
    long long v;

    if (leading_int(s, &v, &end) < 0 || v <= 0 || v > 1000000)
        return -1;
    if (one_of(end, min)) {
        *per_min = v;
        return 0;
    }
    if (one_of(end, sec) && v <= 1000000 / 60) {
        *per_min = v * 60;
        return 0;
    }
    return -1;
}

int cli_parse_bandwidth(const char *s, long long *bytes_per_s)
{
    static const char *const per[] = {"", "/s", "/sec", NULL};
    const char *rest;

    if (parse_size(s, bytes_per_s, &rest) < 0 || !one_of(rest, per))
        return -1;
    return 0;
}

int cli_parse_bytes(const char *s, long long *bytes)
{
    const char *rest;

    if (s != NULL && strcmp(s, "0") == 0) {
        *bytes = 0;
        return 0;
    }
    return parse_size(s, bytes, &rest) < 0 || *rest != '\0' ? -1 : 0;
}

int cli_parse_duration(const char *s, long long *seconds)
{
    static const struct { const char *u; long long mul; } units[] = {
        {"", 1}, {"s", 1}, {"m", 60}, {"min", 60}, {"h", 3600}, {"d", 86400},
    };
    char *end;
    long long v;

    if (leading_int(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].u) == 0 && v <= (1LL << 40) / units[i].mul) {
            *seconds = v * units[i].mul;
            return 0;
        }
    return -1;
}

int cli_parse_quota(const char *s, long long *bytes_per_day)
{
    static const char *const per[] = {"", "/day", "/d", NULL};
    const char *rest;

    if (parse_size(s, bytes_per_day, &rest) < 0 || !one_of(rest, per))
        return -1;
    return 0;
}
