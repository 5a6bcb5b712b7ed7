/* dp_edgeprobe: a raw edge session for tests. It opens TLS to a router with an
 * identity file, sends EDGE_HELLO and then exactly what it is told, and prints
 * every answer as one line, so that a test can present a token, a dial or
 * garbage the real agent would never send.
 *
 *   dp_edgeprobe --identity ID_FILE --router HOST:PORT [what] [--timeout MS]
 *   what (after EDGE_HELLO_OK, one of):
 *     --dial SERVICE --token TOKEN|@FILE  EDGE_DIAL with a real kx key signed by
 *                                          the identity (the host can accept it)
 *     --garbage N                          N random bytes
 *     --junk-frames N                      N well-formed frames of random types
 *                                          and header values
 *     --garbage-first N                    N random bytes instead of the hello
 *   --hold: after the hello (or the dial's answer) keep the session open until
 *   the router ends it or the timeout (a live session for router policies).
 *   Output lines: hello_ok, dial_ok circuit=X, edge_error err=NAME msg="...",
 *   dial_fail err=NAME msg="...", frame type=0xTTTT, closed status=NAME,
 *   tls_failed status=NAME, timeout.
 *   Exit: 0 hello (or dial) answered OK; 1 refused; 3 TLS failed; 4 closed by
 *   the router before an answer; 5 timeout; 2 usage or local error. */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/e2e.h"
#include "proto/idfile.h"
#include "proto/jwt.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "weft/errors.h"

enum { PX_OK = 0, PX_REFUSED = 1, PX_USAGE = 2, PX_TLS = 3, PX_CLOSED = 4, PX_TIMEOUT = 5 };

typedef struct {
    const char *idpath, *router, *service;
    const char *imei, *iccid; /* hardware ids in EDGE_HELLO (--imei, --iccid) */
    char *token;
    long garbage, junk, garbage_first;
    int hold;
    unsigned timeout_ms;
} probe_opts;

typedef struct {
    probe_opts o;
    pr_idfile id;
    uv_loop_t loop;
    uv_timer_t timer;
    pr_conn *conn;
    pr_reader rd;
    int exit_code;
    int done;
} probe;

static uint8_t txbuf[PR_FRAME_MAX];

static void finish(probe *p, int code)
{
    if (p->done)
        return;
    p->done = 1;
    p->exit_code = code;
    uv_timer_stop(&p->timer);
    if (p->conn)
        pr_conn_close(p->conn, 0);
}

static int send_enc(probe *p, pr_enc *e)
{
    size_t n;
    int rc = pr_enc_finish(e, NULL, 0, &n);

    return rc < 0 ? rc : pr_conn_write(p->conn, txbuf, n);
}

static void send_random(probe *p, long n)
{
    while (n > 0) {
        size_t k = n > (long)sizeof(txbuf) ? sizeof(txbuf) : (size_t)n;
        randombytes_buf(txbuf, k);
        if (pr_conn_write(p->conn, txbuf, k) < 0)
            return;
        n -= (long)k;
    }
}

/* Well-formed frames a real edge never sends: random family and number,
 * random header keys of every type, and random circuit ids. */
static void send_junk(probe *p, long n)
{
    for (long i = 0; i < n; i++) {
        pr_enc e;
        uint8_t v[64];
        uint16_t type = PR_TYPE(1 + randombytes_uniform(6), randombytes_uniform(16));

        pr_enc_init(&e, txbuf, sizeof(txbuf), type, (uint16_t)randombytes_uniform(4));
        randombytes_buf(v, sizeof(v));
        pr_enc_u64(&e, PR_H_CIRCUIT, ((uint64_t)randombytes_random() << 32) | randombytes_random());
        pr_enc_u32(&e, PR_H_REQ_ID, randombytes_random());
        pr_enc_bytes(&e, (uint16_t)(0x0104 + randombytes_uniform(3)), v, randombytes_uniform(64));
        pr_enc_u64(&e, PR_H_WINDOW, randombytes_random());
        if (send_enc(p, &e) < 0)
            return;
    }
}

static int send_dial(probe *p)
{
    pr_e2e_kx kx;
    uint8_t sig[PR_E2E_SIG_MAX];
    size_t sig_len;
    pr_enc e;
    int rc;

    if ((rc = pr_e2e_kx_new(&kx)) < 0 ||
        (rc = pr_e2e_sign(p->id.key_pem, PR_E2E_DIALLER, kx.pk, p->o.service, sig, &sig_len)) < 0)
        return rc;
    pr_enc_init(&e, txbuf, sizeof(txbuf), PR_EDGE_DIAL, 0);
    pr_enc_u32(&e, PR_H_REQ_ID, 1);
    pr_enc_str(&e, PR_H_TOKEN, p->o.token);
    pr_enc_str(&e, PR_H_SERVICE, p->o.service);
    pr_enc_bytes(&e, PR_H_KX_PK, kx.pk, sizeof(kx.pk));
    pr_enc_bytes(&e, PR_H_KX_SIG, sig, sig_len);
    pr_enc_str(&e, PR_H_PEER_CERT, p->id.cert_pem);
    pr_e2e_kx_wipe(&kx);
    return send_enc(p, &e);
}

static void after_hello(probe *p)
{
    if (p->o.garbage > 0)
        send_random(p, p->o.garbage);
    else if (p->o.junk > 0)
        send_junk(p, p->o.junk);
    else if (p->o.service) {
        if (send_dial(p) < 0) {
            printf("local_error: cannot sign or send the dial\n");
            finish(p, PX_USAGE);
        }
    } else if (!p->o.hold)
        finish(p, PX_OK);
}

static void print_err(const char *what, const pr_frame *f)
{
    uint32_t err = 0;
    char msg[1024] = "";

    pr_frame_u32(f, PR_H_ERR, &err);
    pr_frame_str(f, PR_H_ERR_MSG, msg, sizeof(msg));
    printf("%s err=%s msg=\"%s\"\n", what, weft_err_name(-(int)err), msg);
}

static void send_close(probe *p, uint64_t circuit)
{
    pr_enc e;

    pr_enc_init(&e, txbuf, sizeof(txbuf), PR_EDGE_CLOSE, 0);
    pr_enc_u64(&e, PR_H_CIRCUIT, circuit);
    pr_enc_u32(&e, PR_H_ERR, (uint32_t)-WEFT_ECANCELED);
    send_enc(p, &e);
}

static int on_frame(void *arg, const pr_frame *f)
{
    probe *p = arg;
    uint64_t circuit = 0;

    pr_frame_u64(f, PR_H_CIRCUIT, &circuit);
    switch (f->type) {
    case PR_EDGE_HELLO_OK:
        printf("hello_ok\n");
        after_hello(p);
        break;
    case PR_EDGE_DIAL_OK:
        printf("dial_ok circuit=%016llx\n", (unsigned long long)circuit);
        if (p->o.hold)
            break;
        send_close(p, circuit);
        finish(p, PX_OK);
        break;
    case PR_EDGE_ERROR: print_err("edge_error", f); finish(p, PX_REFUSED); break;
    case PR_EDGE_DIAL_FAIL: print_err("dial_fail", f); finish(p, PX_REFUSED); break;
    default: printf("frame type=0x%04x\n", f->type); break;
    }
    fflush(stdout);
    return p->done ? WEFT_ECANCELED : 0;
}

static void on_open(pr_conn *c, int status)
{
    probe *p = pr_conn_data(c);
    pr_enc e;

    if (status < 0) {
        printf("tls_failed status=%s\n", weft_err_name(status));
        p->exit_code = PX_TLS;
        p->done = 1;
        uv_timer_stop(&p->timer);
        return;
    }
    if (p->o.garbage_first > 0) {
        send_random(p, p->o.garbage_first);
        return;
    }
    pr_enc_init(&e, txbuf, sizeof(txbuf), PR_EDGE_HELLO, 0);
    pr_enc_str(&e, PR_H_VERSION, "dp_edgeprobe");
    if (p->o.imei)
        pr_enc_str(&e, PR_H_HW_IMEI, p->o.imei);
    if (p->o.iccid)
        pr_enc_str(&e, PR_H_HW_ICCID, p->o.iccid);
    send_enc(p, &e);
}

static void on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    probe *p = pr_conn_data(c);
    int rc;

    if (p->done)
        return;
    if ((rc = pr_reader_feed(&p->rd, data, len, on_frame, p)) < 0 && !p->done) {
        printf("bad_frame_from_router err=%s\n", weft_err_name(rc));
        finish(p, PX_USAGE);
    }
}

static void on_close(pr_conn *c, int status)
{
    probe *p = pr_conn_data(c);

    p->conn = NULL;
    if (!p->done) {
        printf("closed status=%s\n", weft_err_name(status));
        p->exit_code = PX_CLOSED;
        p->done = 1;
        uv_timer_stop(&p->timer);
    }
    fflush(stdout);
}

static const pr_conn_cbs cbs = {on_open, on_read, NULL, on_close};

static void on_timeout(uv_timer_t *t)
{
    probe *p = t->data;

    printf("timeout\n");
    finish(p, PX_TIMEOUT);
}

static int usage(void)
{
    fprintf(stderr, "usage: dp_edgeprobe --identity ID_FILE --router HOST:PORT [--dial SERVICE "
                    "--token TOKEN|@FILE | --garbage N | --junk-frames N | --garbage-first N] "
                    "[--hold] [--timeout MS]\n");
    return PX_USAGE;
}

static int load_token(probe_opts *o, const char *arg)
{
    size_t len;

    if (arg[0] != '@') {
        o->token = strdup(arg);
        return o->token ? 0 : WEFT_ENOMEM;
    }
    if (pr_read_file(arg + 1, PR_JWT_MAX, &o->token, &len) < 0)
        return WEFT_EIO;
    while (len > 0 && (o->token[len - 1] == '\n' || o->token[len - 1] == '\r'))
        o->token[--len] = '\0';
    return 0;
}

static int parse_args(probe_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"identity", 1, 0, 'i'}, {"router", 1, 0, 'r'}, {"dial", 1, 0, 'd'},
        {"token", 1, 0, 't'}, {"garbage", 1, 0, 'g'}, {"junk-frames", 1, 0, 'j'},
        {"garbage-first", 1, 0, 'f'}, {"timeout", 1, 0, 'T'}, {"imei", 1, 0, 'M'},
        {"iccid", 1, 0, 'C'}, {"hold", 0, 0, 'H'}, {0, 0, 0, 0}};
    int ch;

    o->timeout_ms = 10000;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': o->idpath = optarg; break;
        case 'r': o->router = optarg; break;
        case 'd': o->service = optarg; break;
        case 't': if (load_token(o, optarg) < 0) return PX_USAGE; break;
        case 'g': o->garbage = atol(optarg); break;
        case 'j': o->junk = atol(optarg); break;
        case 'f': o->garbage_first = atol(optarg); break;
        case 'T': o->timeout_ms = (unsigned)atol(optarg); break;
        case 'M': o->imei = optarg; break;
        case 'C': o->iccid = optarg; break;
        case 'H': o->hold = 1; break;
        default: return usage();
        }
    }
    if (!o->idpath || !o->router || (o->service != NULL) != (o->token != NULL))
        return usage();
    return 0;
}

static int run(probe *p)
{
    pr_tls_cfg cfg = {.ca_pem = p->id.ca_pem, .cert_pem = p->id.cert_pem,
                      .key_pem = p->id.key_pem};
    struct sockaddr_storage ss;
    pr_tls_ctx *ctx = NULL;
    int rc;

    if ((rc = pr_addr_resolve(p->o.router, &ss)) < 0 || (rc = pr_tls_ctx_new(&cfg, &ctx)) < 0 ||
        (rc = pr_reader_init(&p->rd)) < 0)
        goto out;
    uv_timer_init(&p->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timeout, p->o.timeout_ms, 0);
    if ((rc = pr_conn_connect(ctx, &p->loop, (struct sockaddr *)&ss, NULL, &cbs, p, &p->conn)) < 0)
        goto out;
    uv_run(&p->loop, UV_RUN_DEFAULT);
out:
    if (rc < 0)
        fprintf(stderr, "dp_edgeprobe: %s\n", weft_strerror(rc));
    pr_tls_ctx_free(ctx);
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    static probe p;
    char err[256];
    int rc;

    if ((rc = parse_args(&p.o, argc, argv)) != 0)
        return rc;
    if (sodium_init() < 0 || uv_loop_init(&p.loop) < 0)
        return PX_USAGE;
    if (pr_idfile_load(p.o.idpath, &p.id, err, sizeof(err)) < 0) {
        fprintf(stderr, "dp_edgeprobe: %s\n", err);
        return PX_USAGE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = run(&p) < 0 ? PX_USAGE : p.exit_code;
    uv_walk(&p.loop, close_walk, NULL);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    pr_reader_free(&p.rd);
    pr_idfile_free(&p.id);
    free(p.o.token);
    return rc;
}
