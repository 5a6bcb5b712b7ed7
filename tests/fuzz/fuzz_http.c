/* Arbitrary bytes into the HTTP request-parser core, split in two at a point
 * the first input byte chooses (requests straddling reads), with every request
 * answered and the parser resumed the way the server does it. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "controller/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const ctl_http_parse *hp)
{
    ctl_http_req req;
    char out[64];

    memset(&req, 0, sizeof(req));
    ctl_http_parse_request(hp, &req);
    assert(req.path[0] == '/');
    assert(req.body[req.body_len] == '\0');
    assert(req.body_len <= CTL_HTTP_MAX_BODY);
    (void)ctl_http_query(&req, "a", out, sizeof(out));
}

/* Feeds one piece; returns 0 to go on, -1 once the connection would close. */
static int feed(ctl_http_parse *hp, const uint8_t *d, size_t n)
{
    size_t steps = 0, total = n;

    while (n > 0) {
        size_t used = 0;
        int r = ctl_http_parse_feed(hp, d, n, &used);

        assert(used <= n);
        assert(hp->body_cap <= CTL_HTTP_MAX_BODY + 1);
        assert(hp->url_len <= CTL_HTTP_MAX_URL);
        /* Each step consumes a byte or ends a request: never a busy loop. */
        assert(++steps <= 2 * total + 2);
        if (r < 0) {
            assert(hp->err_code && hp->err_status >= 400);
            return -1;
        }
        if (r == CTL_HTTP_PARSE_CONTINUE) {
            ctl_http_parse_resume(hp);
        } else if (r == CTL_HTTP_PARSE_REQUEST) {
            check_request(hp);
            if (!hp->keep_alive)
                return -1;
            ctl_http_parse_next(hp);
        }
        d += used;
        n -= used;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ctl_http_parse hp; /* ~9 KiB: keep it off the stack */
    size_t split;

    if (size < 1)
        return 0;
    split = size > 1 ? (size_t)data[0] * (size - 1) / 255 : 0;
    data++;
    size--;
    ctl_http_parse_init(&hp);
    if (feed(&hp, data, split) == 0)
        (void)feed(&hp, data + split, size - split);
    ctl_http_parse_finish(&hp);
    return 0;
}
