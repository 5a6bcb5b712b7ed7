/* A token bucket (rate per second, burst) for admission control: new edge
 * sessions at the router, enrolments and session tokens at the controller.
 * Time is passed in by the caller (milliseconds of a monotonic clock) so the
 * bucket is deterministic under test. */
#ifndef PR_BUCKET_H
#define PR_BUCKET_H

#include <stdint.h>

typedef struct {
    double rate;     /* tokens per second; 0: unlimited */
    double burst;    /* capacity */
    double tokens;
    uint64_t last_ms;
    uint64_t admitted, refused;
} pr_bucket;

/* rate 0 disables the limit; burst 0 means burst = rate (at least 1). */
void pr_bucket_init(pr_bucket *b, double rate, double burst, uint64_t now_ms);
/* Takes one token: 0 admitted, WEFT_EREFUSED refused (weft/errors.h has no "busy" code); *retry_ms (may be NULL)
 * says when one token will be there again. */
int pr_bucket_take(pr_bucket *b, uint64_t now_ms, uint32_t *retry_ms);

#endif
