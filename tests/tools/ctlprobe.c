/* ctlprobe: a minimal control-channel client for the integration tests. It
 * connects to a controller's control_listen with an identity file, sends
 * CTL_HELLO, prints the CTL_MAP_FULL body as "full JSON" and each
 * CTL_MAP_DELTA body as "delta JSON" (one line each, flushed), optionally
 * reports a terminator, and exits after --deltas deltas. The hello carries
 * the listen addresses given (--edge-listen, --link-listen), as a router's.
 * After the full map it can send a link report (--links JSON) and circuit
 * events (--circuit JSON, repeatable), and stay connected for --hold S
 * seconds (then exit 0) instead of counting deltas. A map in parts (flag
 * CTL_MAP_F_MORE) is joined as a router joins it and printed whole, after a
 * "parts N" line.
 * Exit: 0 done, 1 usage or setup error, 2 closed by the controller before the
 * full map, 3 TLS handshake failed, 4 timed out. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proto/addr.h"
#include "proto/frame.h"
#include "proto/idfile.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "weft/errors.h"

#define MAP_F_MORE 0x0001 /* docs/dataplane.md "Maps larger than a frame" */
#define MAX_EVENTS 16
#define JOIN_MAX (64u * 1024 * 1024)

typedef struct {
    uv_loop_t loop;
    uv_timer_t timer;
    pr_conn *conn;
    pr_reader rd;
    pr_idfile id;
    const char *term_service;
    const char *edge_listen, *link_listen;
    int want_deltas, deltas, got_full, code;
    const char *links;
    const char *events[MAX_EVENTS];
    int nevents, hold_s;
    char *join;        /* parts of a map so far */
    size_t join_len;
    int parts;
    uint16_t join_type;
    uint64_t join_version;
    uint8_t tx[PR_FRAME_MAX];
} probe;

static void finish(probe *p, int code)
{
    if (p->code < 0)
        p->code = code;
    uv_timer_stop(&p->timer);
    if (p->conn)
        pr_conn_close(p->conn, WEFT_ECANCELED);
}

static void on_held(uv_timer_t *t)
{
    finish(t->data, 0);
}

static int send_json(probe *p, uint16_t type, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    size_t n;
    pr_enc e;
    int rc = WEFT_ENOMEM;

    json_decref(body);
    if (text == NULL)
        return rc;
    pr_enc_init(&e, p->tx, sizeof(p->tx), type, 0);
    if ((rc = pr_enc_finish(&e, text, strlen(text), &n)) == 0)
        rc = pr_conn_write(p->conn, p->tx, n);
    free(text);
    return rc;
}

static int send_text(probe *p, uint16_t type, const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    if (j == NULL) {
        fprintf(stderr, "ctlprobe: not JSON: %s\n", text);
        return WEFT_EJSON;
    }
    return send_json(p, type, j);
}

static void after_full(probe *p)
{
    if (p->term_service)
        send_json(p, PR_CTL_TERM_ADD,
                  json_pack("{s:s, s:s, s:s, s:s}", "id", "probe-term-1", "service",
                            p->term_service, "identity", p->id.id, "router", p->id.id));
    if (p->links)
        send_text(p, PR_CTL_LINK_REPORT, p->links);
    for (int i = 0; i < p->nevents; i++)
        send_text(p, PR_CTL_CIRCUIT_EVENT, p->events[i]);
    if (p->hold_s) {
        uv_timer_stop(&p->timer);
        uv_timer_start(&p->timer, on_held, (uint64_t)p->hold_s * 1000, 0);
    }
}

/* Joins the parts of a map: same type and PR_H_MAP_VERSION in every part,
 * the last without the flag. 1: *body is whole; 0: more to come. */
static int join_part(probe *p, const pr_frame *f, const char **body, size_t *len)
{
    uint64_t v = 0;
    char *nb;

    if (!(f->flags & MAP_F_MORE) && p->parts == 0) {
        *body = (const char *)f->body;
        *len = f->body_len;
        return 1;
    }
    if (pr_frame_u64(f, PR_H_MAP_VERSION, &v) < 0 ||
        (p->parts > 0 && (f->type != p->join_type || v != p->join_version)) ||
        p->join_len + f->body_len > JOIN_MAX)
        return WEFT_EPROTO;
    if ((nb = realloc(p->join, p->join_len + f->body_len + 1)) == NULL)
        return WEFT_ENOMEM;
    p->join = nb;
    memcpy(p->join + p->join_len, f->body, f->body_len);
    p->join_len += f->body_len;
    p->join_type = f->type;
    p->join_version = v;
    p->parts++;
    if (f->flags & MAP_F_MORE)
        return 0;
    printf("parts %d\n", p->parts);
    *body = p->join;
    *len = p->join_len;
    p->parts = 0;
    p->join_len = 0;
    return 1;
}

static int on_frame(void *arg, const pr_frame *f)
{
    probe *p = arg;
    const char *body;
    size_t len;
    int rc;

    if (f->type != PR_CTL_MAP_FULL && f->type != PR_CTL_MAP_DELTA)
        return 0;
    if ((rc = join_part(p, f, &body, &len)) <= 0)
        return rc;
    printf("%s %.*s\n", f->type == PR_CTL_MAP_FULL ? "full" : "delta", (int)len, body);
    fflush(stdout);
    if (f->type == PR_CTL_MAP_FULL && !p->got_full) {
        p->got_full = 1;
        after_full(p);
    } else if (f->type == PR_CTL_MAP_DELTA) {
        p->deltas++;
    }
    if (p->got_full && !p->hold_s && p->deltas >= p->want_deltas)
        finish(p, 0);
    return 0;
}

static void on_open(pr_conn *c, int status)
{
    probe *p = pr_conn_data(c);

    if (status < 0) {
        fprintf(stderr, "ctlprobe: handshake failed: %s\n", weft_strerror(status));
        p->code = 3;
        return;
    }
    send_json(p, PR_CTL_HELLO,
              json_pack("{s:s, s:s, s:s, s:s, s:i}", "id", p->id.id, "version", "ctlprobe",
                        "edge_listen", p->edge_listen ? p->edge_listen : "", "link_listen",
                        p->link_listen ? p->link_listen : "", "map_version", 0));
}

static void on_read(pr_conn *c, const uint8_t *data, size_t len)
{
    probe *p = pr_conn_data(c);
    int rc = pr_reader_feed(&p->rd, data, len, on_frame, p);

    if (rc < 0) {
        fprintf(stderr, "ctlprobe: bad frame: %s\n", weft_strerror(rc));
        finish(p, 1);
    }
}

static void on_close(pr_conn *c, int status)
{
    probe *p = pr_conn_data(c);

    p->conn = NULL;
    if (p->code < 0)
        fprintf(stderr, "ctlprobe: connection closed: %s\n", weft_strerror(status));
    finish(p, p->got_full ? 1 : 2);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

static void on_timeout(uv_timer_t *t)
{
    probe *p = t->data;

    fprintf(stderr, "ctlprobe: timed out (full map: %s, deltas: %d of %d)\n",
            p->got_full ? "yes" : "no", p->deltas, p->want_deltas);
    finish(p, 4);
}

static int start(probe *p, const char *addr)
{
    static const pr_conn_cbs cbs = {on_open, on_read, NULL, on_close};
    pr_tls_cfg tc = {.ca_pem = p->id.ca_pem, .cert_pem = p->id.cert_pem, .key_pem = p->id.key_pem};
    struct sockaddr_storage ss;
    pr_tls_ctx *ctx = NULL;
    int rc;

    if ((rc = pr_addr_resolve(addr, &ss)) < 0 || (rc = pr_tls_ctx_new(&tc, &ctx)) < 0 ||
        (rc = pr_reader_init(&p->rd)) < 0)
        goto out;
    rc = pr_conn_connect(ctx, &p->loop, (struct sockaddr *)&ss, NULL, &cbs, p, &p->conn);
out:
    pr_tls_ctx_free(ctx); /* the connection keeps its reference */
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"identity", required_argument, 0, 'i'},
                                         {"control", required_argument, 0, 'c'},
                                         {"deltas", required_argument, 0, 'n'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"term", required_argument, 0, 's'},
                                         {"edge-listen", required_argument, 0, 'e'},
                                         {"link-listen", required_argument, 0, 'l'},
                                         {"links", required_argument, 0, 'L'},
                                         {"circuit", required_argument, 0, 'C'},
                                         {"hold", required_argument, 0, 'H'},
                                         {0, 0, 0, 0}};
    const char *idpath = NULL, *addr = NULL;
    char err[512] = "";
    probe *p = calloc(1, sizeof(*p));
    int ch, timeout_s = 10, rc;

    if (p == NULL)
        return 1;
    p->code = -1;
    while ((ch = getopt_long(argc, argv, "i:c:n:t:s:e:l:L:C:H:", opts, NULL)) != -1) {
        switch (ch) {
        case 'i': idpath = optarg; break;
        case 'c': addr = optarg; break;
        case 'n': p->want_deltas = atoi(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 's': p->term_service = optarg; break;
        case 'e': p->edge_listen = optarg; break;
        case 'l': p->link_listen = optarg; break;
        case 'L': p->links = optarg; break;
        case 'C':
            if (p->nevents == MAX_EVENTS)
                goto usage;
            p->events[p->nevents++] = optarg;
            break;
        case 'H': p->hold_s = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (idpath == NULL || addr == NULL || timeout_s < 1 || timeout_s > 600 || p->hold_s < 0 ||
        p->hold_s > 600)
        goto usage;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = pr_idfile_load(idpath, &p->id, err, sizeof(err))) < 0) {
        fprintf(stderr, "ctlprobe: %s\n", err[0] ? err : weft_strerror(rc));
        free(p);
        return 1;
    }
    uv_loop_init(&p->loop);
    uv_timer_init(&p->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timeout, (uint64_t)timeout_s * 1000, 0);
    if ((rc = start(p, addr)) < 0) {
        fprintf(stderr, "ctlprobe: cannot connect to %s: %s\n", addr, weft_strerror(rc));
        p->code = 1;
        uv_close((uv_handle_t *)&p->timer, NULL);
    }
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    pr_reader_free(&p->rd);
    pr_idfile_free(&p->id);
    free(p->join);
    rc = p->code < 0 ? 1 : p->code;
    free(p);
    return rc;
usage:
    fputs("usage: ctlprobe --identity FILE --control HOST:PORT [--deltas N] [--timeout S] "
          "[--term SERVICE_ID] [--edge-listen A] [--link-listen A] [--links JSON] "
          "[--circuit JSON]... [--hold S]\n",
          stderr);
    free(p);
    return 1;
}
