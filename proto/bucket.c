/* Token bucket: tokens accrue at rate per second up to burst; each admission
 * takes one. Refill is computed from elapsed time, so no timer is needed. */
#include "proto/bucket.h"

#include "weft/errors.h"

void pr_bucket_init(pr_bucket *b, double rate, double burst, uint64_t now_ms)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = burst > 0 ? burst : (b->rate >= 1 ? b->rate : 1);
    b->tokens = b->burst; /* a fresh process admits a full burst at once */
    b->last_ms = now_ms;
    b->admitted = b->refused = 0;
}

static void refill(pr_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms) /* clock did not move (or went back): nothing accrues */
        return;
    b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_ms = now_ms;
}

int pr_bucket_take(pr_bucket *b, uint64_t now_ms, uint32_t *retry_ms)
{
    double wait;

    if (retry_ms)
        *retry_ms = 0;
    if (b->rate == 0) {
        b->admitted++;
        return 0;
    }
    refill(b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        b->admitted++;
        return 0;
    }
    b->refused++;
    wait = (1.0 - b->tokens) * 1000.0 / b->rate;
    if (retry_ms)
        *retry_ms = wait < 1.0 ? 1 : (wait > 3600000.0 ? 3600000 : (uint32_t)wait + 1);
    return WEFT_EREFUSED;
}
