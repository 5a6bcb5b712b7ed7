/* admit_storm: many edge devices reconnecting to one router at once, each a
 * real TLS session with an identity certificate (one identity file shared by
 * all). A device is served when EDGE_HELLO_OK arrives, and then holds its
 * session open like a reconnected device would. Refused with a retry hint
 * (EDGE_ERROR + PR_H_RETRY_MS) it waits at least the hint plus up to a tenth
 * more (and 20 ms), as libweft does; a failed handshake or a close without
 * an answer backs off exponentially with jitter.
 *
 *   admit_storm --identity ID_FILE --router HOST:PORT [--devices N]
 *               [--timeout-s S] [--step-ms MS]
 *   Output: the first refusal, "refusal err=NAME retry_ms=N msg=\"...\"";
 *   "curve t_ms=T admitted=K total=S" per step with admissions (K
 *   in that step, S so far), then one summary line:
 *   "storm devices=N served=S refused=R hinted_min_ms=A hinted_max_ms=B
 *    failed=F attempts=T total_ms=M".
 *   Exit: 0 every device served; 1 not all served in time; 2 usage. */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/idfile.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "weft/errors.h"

#define STEPS_MAX 100000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct storm storm;

typedef struct {
    storm *st;
    pr_conn *conn;
    pr_reader rd;
    uv_timer_t retry;
    int served, answered;
    unsigned backoff_ms, hint_ms;
} device;

struct storm {
    uv_loop_t loop;
    pr_tls_ctx *ctx;
    struct sockaddr_storage addr;
    device *dev;
    long n, served, refused, failed, attempts;
    uint32_t hint_min, hint_max;
    uint64_t t0, step_ms, last_ms;
    uint32_t *curve; /* admissions per step */
    size_t steps;
    uv_timer_t deadline;
    int stopping; /* reporting done: closes are final, no retries */
};

static uint8_t txbuf[1024];
static void connect_dev(device *d);

static unsigned jitter(unsigned ms)
{
    return ms + randombytes_uniform(ms / 2 + 1);
}

static void on_retry(uv_timer_t *t)
{
    connect_dev(t->data);
}

static void again(device *d, unsigned ms)
{
    uv_timer_start(&d->retry, on_retry, ms, 0);
}

static void served(device *d)
{
    storm *st = d->st;
    uint64_t t = uv_now(&st->loop) - st->t0;
    size_t k = (size_t)(t / st->step_ms);

    d->served = 1;
    st->served++;
    st->last_ms = t;
    if (k < STEPS_MAX) {
        st->curve[k]++;
        if (k + 1 > st->steps)
            st->steps = k + 1;
    }
    if (st->served == st->n) /* every device in: stop, sessions close with the loop */
        uv_stop(&st->loop);
}

static int on_frame(void *arg, const pr_frame *f)
{
    device *d = arg;
    storm *st = d->st;
    uint32_t hint = 0;

    d->answered = 1;
    if (f->type == PR_EDGE_HELLO_OK) {
        served(d);
        return 0;
    }
    if (f->type != PR_EDGE_ERROR)
        return 0;
    if (st->refused++ == 0) { /* the first refusal as a device sees it */
        uint32_t err = 0;
        char msg[256] = "";
        pr_frame_u32(f, PR_H_ERR, &err);
        pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
        pr_frame_u32(f, PR_H_RETRY_MS, &hint);
        printf("refusal err=%s retry_ms=%u msg=\"%s\"\n", weft_err_name(-(int)err), hint, msg);
    }
    if (pr_frame_u32(f, PR_H_RETRY_MS, &hint) < 0 || hint == 0)
        hint = BACKOFF_MIN_MS; /* refused for another reason: still retry */
    if (st->hint_min == 0 || hint < st->hint_min)
        st->hint_min = hint;
    if (hint > st->hint_max)
        st->hint_max = hint;
    d->backoff_ms = 0;
    d->hint_ms = hint; /* on_close waits the hint plus a little jitter */
    pr_conn_close(d->conn, 0);
    return WEFT_ECANCELED;
}

static void on_open(pr_conn *c, int status)
{
    pr_enc e;
    size_t n;

    if (status < 0)
        return; /* on_close follows */
    pr_enc_init(&e, txbuf, sizeof(txbuf), PR_EDGE_HELLO, 0);
    pr_enc_str(&e, PR_H_VERSION, "admit_storm");
    if (pr_enc_finish(&e, NULL, 0, &n) == 0)
        pr_conn_write(c, txbuf, n);
}

static void on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    device *d = pr_conn_data(c);

    if (pr_reader_feed(&d->rd, data, len, on_frame, d) < 0 && d->conn == c && !d->answered)
        pr_conn_close(c, WEFT_EPROTO);
}

static void on_close(pr_conn *c, int status)
{
    device *d = pr_conn_data(c);

    (void)status;
    d->conn = NULL;
    pr_reader_free(&d->rd);
    if (d->st->stopping)
        return;
    if (d->served) /* the router dropped a served session: serve it again */
        d->st->served--, d->served = 0;
    if (!d->answered) { /* no answer at all: exponential backoff with jitter */
        d->st->failed++;
        d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (d->backoff_ms > BACKOFF_MAX_MS)
            d->backoff_ms = BACKOFF_MAX_MS;
    }
    if (d->answered) /* refused with a hint: at least the hint, jitter up to a tenth more */
        again(d, d->hint_ms + randombytes_uniform(d->hint_ms / 10 + 20));
    else
        again(d, jitter(d->backoff_ms));
}

static const pr_conn_cbs cbs = {on_open, on_read, NULL, on_close};

static void connect_dev(device *d)
{
    storm *st = d->st;

    d->answered = 0;
    st->attempts++;
    if (pr_reader_init(&d->rd) < 0 ||
        pr_conn_connect(st->ctx, &st->loop, (struct sockaddr *)&st->addr, NULL, &cbs, d,
                        &d->conn) < 0) {
        pr_reader_free(&d->rd);
        st->failed++;
        again(d, jitter(BACKOFF_MAX_MS));
    }
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void report(storm *st)
{
    long total = 0;

    for (size_t k = 0; k < st->steps; k++) {
        total += st->curve[k];
        if (st->curve[k])
            printf("curve t_ms=%llu admitted=%u total=%ld\n",
                   (unsigned long long)(k * st->step_ms), st->curve[k], total);
    }
    printf("storm devices=%ld served=%ld refused=%ld hinted_min_ms=%u hinted_max_ms=%u "
           "failed=%ld attempts=%ld total_ms=%llu\n",
           st->n, st->served, st->refused, st->hint_min, st->hint_max, st->failed, st->attempts,
           (unsigned long long)st->last_ms);
}

static int run(storm *st, const pr_idfile *id, const char *router, long timeout_s)
{
    pr_tls_cfg cfg = {.ca_pem = id->ca_pem, .cert_pem = id->cert_pem, .key_pem = id->key_pem,
                      .handshake_ms = 20000};
    int rc;

    if ((rc = pr_addr_resolve(router, &st->addr)) < 0 || (rc = pr_tls_ctx_new(&cfg, &st->ctx)) < 0)
        return rc;
    uv_timer_init(&st->loop, &st->deadline);
    uv_timer_start(&st->deadline, on_deadline, (uint64_t)timeout_s * 1000, 0);
    uv_update_time(&st->loop);
    st->t0 = uv_now(&st->loop);
    for (long i = 0; i < st->n; i++) {
        device *d = &st->dev[i];
        d->st = st;
        uv_timer_init(&st->loop, &d->retry);
        d->retry.data = d;
        connect_dev(d);
    }
    uv_run(&st->loop, UV_RUN_DEFAULT);
    report(st);
    fflush(stdout);
    st->stopping = 1;
    for (long i = 0; i < st->n; i++) { /* held sessions close, pending retries are dropped */
        if (st->dev[i].conn)
            pr_conn_close(st->dev[i].conn, 0);
        uv_close((uv_handle_t *)&st->dev[i].retry, NULL);
    }
    uv_close((uv_handle_t *)&st->deadline, NULL);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    pr_tls_ctx_free(st->ctx);
    return st->served == st->n ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"identity", 1, 0, 'i'}, {"router", 1, 0, 'r'},
                                       {"devices", 1, 0, 'n'},  {"timeout-s", 1, 0, 'T'},
                                       {"step-ms", 1, 0, 's'},  {0, 0, 0, 0}};
    const char *idpath = NULL, *router = NULL;
    static storm st;
    long timeout_s = 120;
    pr_idfile id;
    char err[256];
    int ch, rc;

    st.n = 5000;
    st.step_ms = 100;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': idpath = optarg; break;
        case 'r': router = optarg; break;
        case 'n': st.n = atol(optarg); break;
        case 'T': timeout_s = atol(optarg); break;
        case 's': st.step_ms = (uint64_t)atol(optarg); break;
        default: return 2;
        }
    }
    if (!idpath || !router || st.n < 1 || st.n > 100000 || timeout_s < 1 || timeout_s > 3600 ||
        st.step_ms < 1) {
        fprintf(stderr, "usage: admit_storm --identity ID_FILE --router HOST:PORT [--devices N] "
                        "[--timeout-s S] [--step-ms MS]\n");
        return 2;
    }
    if (sodium_init() < 0 || uv_loop_init(&st.loop) < 0)
        return 2;
    if (pr_idfile_load(idpath, &id, err, sizeof(err)) < 0) {
        fprintf(stderr, "admit_storm: %s\n", err);
        return 2;
    }
    st.dev = calloc((size_t)st.n, sizeof(*st.dev));
    st.curve = calloc(STEPS_MAX, sizeof(*st.curve));
    if (st.dev == NULL || st.curve == NULL)
        rc = 2;
    else if ((rc = run(&st, &id, router, timeout_s)) < 0) {
        fprintf(stderr, "admit_storm: %s\n", weft_strerror(rc));
        rc = 2;
    }
    uv_loop_close(&st.loop);
    pr_idfile_free(&id);
    free(st.dev);
    free(st.curve);
    return rc;
}
