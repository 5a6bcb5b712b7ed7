/* Quantities on the command line of behaviour policies: "10/min",
 * "1MB/s", "100MB/day" (decimal K M G T, binary Ki Mi Gi Ti; a bare number is
 * per minute, bytes per second, bytes per day). */
#ifndef WEFT_CLI_UNITS_H
#define WEFT_CLI_UNITS_H

/* Each returns 0 and the value, or -1 when s is not of the form. */
int cli_parse_rate(const char *s, long long *per_min);
int cli_parse_bandwidth(const char *s, long long *bytes_per_s);
int cli_parse_quota(const char *s, long long *bytes_per_day);
/* Anomaly settings: "0" or a size as above ("64KiB"), and a duration "N[s|m|h|d]"
 * (a bare number is seconds; 0 allowed). */
int cli_parse_bytes(const char *s, long long *bytes);
int cli_parse_duration(const char *s, long long *seconds);

#endif
