/* The controller's HTTPS/1.1 server: the request-parser core (llhttp, limits
 * checked as bytes arrive) and the libuv/TLS connection handling around it. */
#include "controller/http.h"

#include <assert.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "controller/http_parse.h"
#include "weft/errors.h"
#include "proto/addr.h"
#include "proto/log.h"

/* ------------------------------------------------------------------------ */
/* Parser core                                                              */
/* ------------------------------------------------------------------------ */

enum { HDR_OTHER = 0, HDR_CONTENT_TYPE, HDR_EXPECT };

/* Feeding the request line and headers in slices lets the raw-byte guard stop a
 * flood of bytes the callbacks never see (whitespace) within one slice. */
#define HEAD_SLICE 1024
#define BODY_MIN_CAP 4096
/* Bodies above this are freed after their request so idle connections stay small. */
#define BODY_KEEP_CAP (64 * 1024)

static int fail(ctl_http_parse *hp, int status, const char *code, const char *msg)
{
    if (!hp->err_code) {
        hp->err_status = status;
        hp->err_code = code;
        snprintf(hp->err_msg, sizeof(hp->err_msg), "%s", msg);
    }
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    ctl_http_parse *hp = p->data;

    hp->url_len = 0;
    hp->field_len = 0;
    hp->field_long = 0;
    hp->hdr = HDR_OTHER;
    hp->ct_len = 0;
    hp->content_type[0] = '\0';
    hp->expect_len = 0;
    hp->expect[0] = '\0';
    hp->head_bytes = 0;
    hp->headers_done = 0;
    hp->want_continue = 0;
    hp->body_len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    ctl_http_parse *hp = p->data;
    char msg[64];

    if (len > CTL_HTTP_MAX_URL - hp->url_len) {
        snprintf(msg, sizeof(msg), "request URL exceeds %d bytes", CTL_HTTP_MAX_URL);
        return fail(hp, 400, "too_large", msg);
    }
    memcpy(hp->url + hp->url_len, at, len);
    hp->url_len += len;
    hp->url[hp->url_len] = '\0';
    return 0;
}

/* Counts header (and trailer) bytes against the limit. */
static int count_head(ctl_http_parse *hp, size_t len)
{
    char msg[64];

    if (len > CTL_HTTP_MAX_HEADERS_BYTES - hp->head_bytes) {
        snprintf(msg, sizeof(msg), "header block exceeds %d bytes", CTL_HTTP_MAX_HEADERS_BYTES);
        return fail(hp, 400, "too_large", msg);
    }
    hp->head_bytes += len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    ctl_http_parse *hp = p->data;

    if (count_head(hp, len) < 0)
        return -1;
    if (len >= sizeof(hp->field) - hp->field_len) {
        hp->field_long = 1;
        return 0;
    }
    memcpy(hp->field + hp->field_len, at, len);
    hp->field_len += len;
    hp->field[hp->field_len] = '\0';
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    ctl_http_parse *hp = p->data;

    /* ": " and CRLF count too, so many empty headers still hit the limit. */
    if (count_head(hp, 4) < 0)
        return -1;
    hp->hdr = HDR_OTHER;
    if (!hp->field_long && !hp->headers_done) {
        if (strcasecmp(hp->field, "content-type") == 0)
            hp->hdr = HDR_CONTENT_TYPE;
        else if (strcasecmp(hp->field, "expect") == 0)
            hp->hdr = HDR_EXPECT;
    }
    hp->field_len = 0;
    hp->field_long = 0;
    hp->field[0] = '\0';
    return 0;
}

static int append_value(ctl_http_parse *hp, char *dst, size_t *dlen, size_t cap, const char *at,
                        size_t len, const char *name)
{
    char msg[64];

    if (len >= cap - *dlen) {
        snprintf(msg, sizeof(msg), "%s header too long", name);
        return fail(hp, 400, "bad_request", msg);
    }
    memcpy(dst + *dlen, at, len);
    *dlen += len;
    dst[*dlen] = '\0';
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    ctl_http_parse *hp = p->data;

    if (count_head(hp, len) < 0)
        return -1;
    if (hp->hdr == HDR_CONTENT_TYPE)
        return append_value(hp, hp->content_type, &hp->ct_len, sizeof(hp->content_type), at, len,
                            "Content-Type");
    if (hp->hdr == HDR_EXPECT)
        return append_value(hp, hp->expect, &hp->expect_len, sizeof(hp->expect), at, len, "Expect");
    return 0;
}

static void trim_right(char *s, size_t *len)
{
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        s[--*len] = '\0';
}

static int on_header_value_complete(llhttp_t *p)
{
    ctl_http_parse *hp = p->data;

    trim_right(hp->content_type, &hp->ct_len);
    trim_right(hp->expect, &hp->expect_len);
    hp->hdr = HDR_OTHER;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ctl_http_pct_decode(const char *s, size_t len, char *out, size_t cap, int plus_space)
{
    size_t i = 0, o = 0;

    if (cap == 0)
        return WEFT_ETOOBIG;
    while (i < len) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return WEFT_EPROTO;
            c = hi * 16 + lo;
            i += 3;
        } else {
            if (c == '\0')
                return WEFT_EPROTO;
            if (c == '+' && plus_space)
                c = ' ';
            i++;
        }
        if (o + 1 >= cap)
            return WEFT_ETOOBIG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Splits the request target into the decoded path and the raw query. Only
 * origin-form ("/path?query") is accepted: the API has no proxy use. */
static int split_url(ctl_http_parse *hp)
{
    size_t plen;
    char *q;
    int r;

    if (hp->url_len == 0 || hp->url[0] != '/')
        return fail(hp, 400, "bad_request", "request target must be an absolute path");
    q = memchr(hp->url, '?', hp->url_len);
    plen = q ? (size_t)(q - hp->url) : hp->url_len;
    hp->query = q ? q + 1 : "";
    if (memchr(hp->url, '#', hp->url_len))
        return fail(hp, 400, "bad_request", "request target must not carry a fragment");
    r = ctl_http_pct_decode(hp->url, plen, hp->path, sizeof(hp->path), 0);
    if (r < 0)
        return fail(hp, 400, "bad_request", "invalid percent-escape in path");
    return 0;
}

static int grow_body(ctl_http_parse *hp, size_t need)
{
    size_t cap = hp->body_cap ? hp->body_cap : BODY_MIN_CAP;
    char *nb;

    if (need <= hp->body_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > CTL_HTTP_MAX_BODY + 1)
        cap = CTL_HTTP_MAX_BODY + 1;
    if (cap < need)
        return fail(hp, 400, "too_large", "request body too large");
    nb = realloc(hp->body, cap);
    if (!nb)
        return fail(hp, 500, "internal", "out of memory");
    hp->body = nb;
    hp->body_cap = cap;
    return 0;
}

static int check_expect(ctl_http_parse *hp, int has_body)
{
    if (hp->expect_len == 0)
        return 0;
    if (strcasecmp(hp->expect, "100-continue") != 0)
        return fail(hp, 417, "expectation_failed", "only Expect: 100-continue is supported");
    /* HTTP/1.0 clients do not understand 1xx; without a body there is nothing to wait for. */
    if (has_body && llhttp_get_http_major(&hp->p) == 1 && llhttp_get_http_minor(&hp->p) >= 1)
        hp->want_continue = 1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    ctl_http_parse *hp = p->data;
    int has_len = (p->flags & F_CONTENT_LENGTH) != 0;
    int chunked = (p->flags & F_CHUNKED) != 0;
    char msg[64];

    hp->method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    if (llhttp_get_method(p) == HTTP_CONNECT || llhttp_get_upgrade(p))
        return fail(hp, 400, "bad_request", "protocol upgrades are not supported");
    /* Both framings at once is how requests get smuggled past proxies. */
    if (has_len && (p->flags & F_TRANSFER_ENCODING))
        return fail(hp, 400, "bad_request", "both Content-Length and Transfer-Encoding");
    if (split_url(hp) < 0)
        return -1;
    if (has_len && p->content_length > CTL_HTTP_MAX_BODY) {
        snprintf(msg, sizeof(msg), "request body exceeds %d bytes", CTL_HTTP_MAX_BODY);
        return fail(hp, 400, "too_large", msg);
    }
    if (has_len && grow_body(hp, (size_t)p->content_length + 1) < 0)
        return -1;
    if (check_expect(hp, chunked || (has_len && p->content_length > 0)) < 0)
        return -1;
    hp->headers_done = 1;
    return hp->want_continue ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    ctl_http_parse *hp = p->data;
    char msg[64];

    if (len > CTL_HTTP_MAX_BODY - hp->body_len) {
        snprintf(msg, sizeof(msg), "request body exceeds %d bytes", CTL_HTTP_MAX_BODY);
        return fail(hp, 400, "too_large", msg);
    }
    if (grow_body(hp, hp->body_len + len + 1) < 0)
        return -1;
    memcpy(hp->body + hp->body_len, at, len);
    hp->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    ctl_http_parse *hp = p->data;

    if (hp->body)
        hp->body[hp->body_len] = '\0';
    hp->keep_alive = llhttp_should_keep_alive(p);
    hp->complete = 1;
    /* Stop here: the next pipelined request waits until this one is answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t parse_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void ctl_http_parse_init(ctl_http_parse *hp)
{
    memset(hp, 0, sizeof(*hp));
    llhttp_init(&hp->p, HTTP_REQUEST, &parse_settings);
    hp->p.data = hp;
    hp->query = "";
}

void ctl_http_parse_finish(ctl_http_parse *hp)
{
    free(hp->body);
    hp->body = NULL;
    hp->body_cap = 0;
}

/* Turns an llhttp error into the response to send. */
static int parse_error(ctl_http_parse *hp, llhttp_errno_t e)
{
    char msg[128];

    if (!hp->err_code) {
        snprintf(msg, sizeof(msg), "malformed request: %s", llhttp_get_error_reason(&hp->p)
                                                                ? llhttp_get_error_reason(&hp->p)
                                                                : llhttp_errno_name(e));
        fail(hp, 400, "bad_request", msg);
    }
    if (strcmp(hp->err_code, "too_large") == 0)
        return WEFT_ETOOBIG;
    if (hp->err_status == 500)
        return WEFT_ENOMEM;
    return WEFT_EPROTO;
}

static int head_guard(ctl_http_parse *hp, size_t n)
{
    char msg[64];

    hp->head_raw += n;
    if (hp->head_raw <= CTL_HTTP_MAX_HEAD_RAW)
        return 0;
    snprintf(msg, sizeof(msg), "request head exceeds %d bytes", CTL_HTTP_MAX_HEAD_RAW);
    fail(hp, 400, "too_large", msg);
    return WEFT_ETOOBIG;
}

int ctl_http_parse_feed(ctl_http_parse *hp, const uint8_t *data, size_t len, size_t *used)
{
    const char *d = (const char *)data;
    size_t off = 0;

    *used = 0;
    if (hp->err_code)
        return WEFT_EPROTO;
    while (off < len) {
        int in_head = !hp->headers_done;
        size_t n = len - off;
        llhttp_errno_t e;

        if (in_head && n > HEAD_SLICE)
            n = HEAD_SLICE;
        e = llhttp_execute(&hp->p, d + off, n);
        if (e == HPE_PAUSED) {
            *used = (size_t)(llhttp_get_error_pos(&hp->p) - d);
            return hp->complete ? CTL_HTTP_PARSE_REQUEST : CTL_HTTP_PARSE_CONTINUE;
        }
        if (e != HPE_OK) {
            *used = len;
            return parse_error(hp, e);
        }
        if (in_head && !hp->headers_done && head_guard(hp, n) < 0) {
            *used = len;
            return WEFT_ETOOBIG;
        }
        off += n;
    }
    *used = len;
    return CTL_HTTP_PARSE_MORE;
}

void ctl_http_parse_resume(ctl_http_parse *hp)
{
    hp->want_continue = 0;
    llhttp_resume(&hp->p);
}

void ctl_http_parse_next(ctl_http_parse *hp)
{
    hp->complete = 0;
    hp->head_raw = 0;
    hp->headers_done = 0;
    if (hp->body_cap > BODY_KEEP_CAP)
        ctl_http_parse_finish(hp);
    llhttp_resume(&hp->p);
}

void ctl_http_parse_request(const ctl_http_parse *hp, ctl_http_req *req)
{
    req->method = hp->method ? hp->method : "";
    req->path = hp->path;
    req->query = hp->query;
    req->content_type = hp->content_type;
    req->body = hp->body ? hp->body : "";
    req->body_len = hp->body_len;
}

/* Finds name in the query string and decodes its value into out. */
const char *ctl_http_query(const ctl_http_req *req, const char *name, char *out, size_t cap)
{
    const char *s = req && req->query ? req->query : "";
    char key[256];

    while (*s) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', plen);
        size_t klen = eq ? (size_t)(eq - s) : plen;

        if (ctl_http_pct_decode(s, klen, key, sizeof(key), 1) == 0 && strcmp(key, name) == 0) {
            const char *v = eq ? eq + 1 : s + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            return ctl_http_pct_decode(v, vlen, out, cap, 1) == 0 ? out : NULL;
        }
        s += plen;
        if (*s == '&')
            s++;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

/* Beyond this many connections new ones are accepted and closed at once, so a
 * storm cannot exhaust file descriptors or memory. */
#define MAX_CONNS 1024
#define LISTEN_BACKLOG 128

enum conn_state { CONN_HANDSHAKE, CONN_OPEN, CONN_CLOSING };

struct http_conn {
    ctl_http_req req; /* the request being answered */
    ctl_http_server *srv;
    pr_conn *pc;
    uv_timer_t idle;
    enum conn_state state;
    int responded;
    int close_after; /* answer with Connection: close, then close */
    uint64_t req_start;
    struct http_conn *prev, *next;
    ctl_http_parse hp;
};

struct ctl_http_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    pr_tls_ctx *tls;
    ctl_http_handler handler;
    void *server_data;
    struct http_conn *conns;
    unsigned nconns;
    unsigned max_conns;
    unsigned idle_ms;
    unsigned live; /* listener + connections + refused sockets still closing */
    int stopping;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

#define CONN_OF(r) ((struct http_conn *)((char *)(r) - offsetof(struct http_conn, req)))

static const char *conn_state_name(enum conn_state s)
{
    switch (s) {
    case CONN_HANDSHAKE: return "handshake";
    case CONN_OPEN: return "open";
    case CONN_CLOSING: return "closing";
    }
    return "?";
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    }
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* The server is freed once everything it owns has closed. */
static void srv_release(ctl_http_server *s)
{
    if (--s->live > 0 || !s->stopping)
        return;
    if (s->stop_cb)
        s->stop_cb(s->stop_arg);
    free(s);
}

static void set_state(struct http_conn *c, enum conn_state st)
{
    pr_debug("http_conn_state", "peer=%s from=%s to=%s",
             c->pc ? pr_log_q(pr_conn_peer_addr(c->pc)) : "-", conn_state_name(c->state),
             conn_state_name(st));
    c->state = st;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    ctl_http_server *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    ctl_http_parse_finish(&c->hp);
    free(c);
    srv_release(s);
}

static void conn_close(struct http_conn *c, int status)
{
    if (c->state == CONN_CLOSING)
        return;
    set_state(c, CONN_CLOSING);
    uv_timer_stop(&c->idle);
    pr_conn_close(c->pc, status);
}

static void on_idle(uv_timer_t *t)
{
    struct http_conn *c = t->data;

    if (c->state == CONN_CLOSING)
        return;
    pr_debug("http_idle_timeout", "peer=%s ms=%u", pr_log_q(pr_conn_peer_addr(c->pc)),
             c->srv->idle_ms);
    conn_close(c, WEFT_ETIMEDOUT);
}

static int header_safe(const char *s)
{
    return s && *s && !strpbrk(s, "\r\n");
}

static void access_log(struct http_conn *c, int status, size_t bytes)
{
    uint64_t ms = c->req_start ? (uv_hrtime() - c->req_start) / 1000000 : 0;
    const char *uri = c->pc ? pr_conn_peer_uri(c->pc) : NULL;

    pr_info("http_request", "method=%s path=%s status=%d bytes=%zu duration_ms=%llu peer=%s id=%s",
            c->req.method && *c->req.method ? c->req.method : "-",
            pr_log_q(c->req.path && *c->req.path ? c->req.path : "-"), status, bytes,
            (unsigned long long)ms, pr_log_q(c->pc ? pr_conn_peer_addr(c->pc) : "-"),
            pr_log_q(uri ? uri : "-"));
}

/* Queues status line, headers and body; closes the connection on write failure. */
/* Status line and headers; a 204 carries neither body nor Content-Length. */
static int format_head(char *head, size_t cap, int status, const char *ctype, size_t len,
                       int close_after, unsigned retry_after_s)
{
    const char *conn = close_after ? "Connection: close\r\n" : "";
    char retry[40] = "";

    if (retry_after_s) /* admission control (admit.c): when to come back */
        snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", retry_after_s);

    if (status == 204)
        return snprintf(head, cap, "HTTP/1.1 204 %s\r\nCache-Control: no-store\r\n%s\r\n",
                        reason(204), conn);
    return snprintf(head, cap,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\n%s%s\r\n",
                    status, reason(status), ctype, len, retry, conn);
}

/* Queues status line, headers and body; closes the connection on write failure. */
static void send_response(struct http_conn *c, int status, const char *ctype, const char *body,
                          size_t len)
{
    char head[512];
    int n, r;

    if (!header_safe(ctype) || strlen(ctype) > 200)
        ctype = "application/json";
    if (status < 200 || status > 599) {
        pr_error("http_bad_status", "status=%d hint=\"fix the handler: use a final status code\"",
                 status);
        status = 500;
        len = 0;
    }
    if (status == 204)
        len = 0;
    n = format_head(head, sizeof(head), status, ctype, len, c->close_after, c->req.retry_after_s);
    r = pr_conn_write(c->pc, head, (size_t)n);
    if (r == 0 && len > 0)
        r = pr_conn_write(c->pc, body, len);
    access_log(c, status, len);
    if (r < 0) {
        pr_warn("http_write_failed", "peer=%s err=%s hint=\"the client is not reading its responses\"",
                pr_log_q(pr_conn_peer_addr(c->pc)), weft_err_name(r));
        c->close_after = 1;
    }
}

static void send_error(struct http_conn *c, int status, const char *code, const char *message)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;

    send_response(c, status, "application/json", body ? body : "", body ? strlen(body) : 0);
    free(body);
    json_decref(j);
}

/* Marks the request answered; 0 if the caller may send its response. */
static int claim_response(struct http_conn *c, int status)
{
    assert(!c->responded && "ctl_http_respond called twice for one request");
    if (c->responded || c->state != CONN_OPEN) {
        pr_error("http_double_response", "path=%s status=%d hint=\"fix the handler: it must answer once\"",
                 pr_log_q(c->req.path ? c->req.path : "-"), status);
        return -1;
    }
    c->responded = 1;
    return 0;
}

void ctl_http_respond(ctl_http_req *req, int status, const char *content_type, const char *body,
                      size_t body_len)
{
    struct http_conn *c = CONN_OF(req);

    if (claim_response(c, status) == 0)
        send_response(c, status, content_type, body ? body : "", body ? body_len : 0);
}

void ctl_http_respond_error(ctl_http_req *req, int status, const char *code, const char *message)
{
    struct http_conn *c = CONN_OF(req);

    if (claim_response(c, status) == 0)
        send_error(c, status, code ? code : "error", message ? message : "");
}

static void dispatch(struct http_conn *c)
{
    ctl_http_req *req = &c->req;
    ctl_http_server *s = c->srv;

    ctl_http_parse_request(&c->hp, req);
    req->peer_uri = pr_conn_peer_uri(c->pc);
    req->peer_addr = pr_conn_peer_addr(c->pc);
    req->server_data = s->server_data;
    req->retry_after_s = 0; /* per request, not per connection */
    c->responded = 0;
    c->close_after = !c->hp.keep_alive || s->stopping;
    s->handler(req);
    if (!c->responded) {
        pr_error("http_no_response", "method=%s path=%s hint=\"fix the handler: it must answer every request\"",
                 req->method, pr_log_q(req->path));
        c->responded = 1;
        send_error(c, 500, "internal", "the request was not answered");
    }
    c->req_start = 0;
}

/* Answers a request the parser refused, then closes. */
static void reject(struct http_conn *c)
{
    ctl_http_parse *hp = &c->hp;

    c->req.method = hp->method ? hp->method : "-";
    c->req.path = hp->path[0] ? hp->path : "-";
    c->req.retry_after_s = 0;
    c->close_after = 1;
    pr_info("http_bad_request", "peer=%s code=%s message=%s", pr_log_q(pr_conn_peer_addr(c->pc)),
            hp->err_code, pr_log_q(hp->err_msg));
    send_error(c, hp->err_status, hp->err_code, hp->err_msg);
}

/* One parser step over data; returns how many bytes it used, or len to stop. */
static size_t conn_step(struct http_conn *c, const uint8_t *data, size_t len)
{
    size_t used = 0;
    int r;

    if (!c->req_start)
        c->req_start = uv_hrtime();
    r = ctl_http_parse_feed(&c->hp, data, len, &used);
    if (r == CTL_HTTP_PARSE_CONTINUE) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (pr_conn_write(c->pc, cont, sizeof(cont) - 1) < 0)
            c->close_after = 1;
        ctl_http_parse_resume(&c->hp);
    } else if (r == CTL_HTTP_PARSE_REQUEST) {
        dispatch(c);
        if (!c->close_after)
            ctl_http_parse_next(&c->hp);
    } else if (r < 0) {
        reject(c);
    }
    if (c->close_after) {
        conn_close(c, 0);
        return len;
    }
    return used;
}

static void on_read(pr_conn *pc, const uint8_t *data, size_t len)
{
    struct http_conn *c = pr_conn_data(pc);
    size_t off = 0;

    if (c->state != CONN_OPEN)
        return;
    uv_timer_again(&c->idle);
    while (off < len && c->state == CONN_OPEN)
        off += conn_step(c, data + off, len - off);
    /* Pipelined requests whose answers pile up: stop reading until they drain. */
    if (c->state == CONN_OPEN && !pr_conn_writable(pc))
        pr_conn_read_stop(pc);
}

static void on_drain(pr_conn *pc)
{
    struct http_conn *c = pr_conn_data(pc);

    if (c->state == CONN_OPEN)
        pr_conn_read_start(pc);
}

static void on_open(pr_conn *pc, int status)
{
    struct http_conn *c = pr_conn_data(pc);

    if (status < 0) {
        pr_info("http_handshake_failed", "peer=%s err=%s", pr_log_q(pr_conn_peer_addr(pc)),
                weft_err_name(status));
        return; /* on_close follows */
    }
    if (c->state == CONN_HANDSHAKE)
        set_state(c, CONN_OPEN);
}

static void on_conn_close(pr_conn *pc, int status)
{
    struct http_conn *c = pr_conn_data(pc);

    pr_debug("http_conn_closed", "peer=%s status=%s", pr_log_q(pr_conn_peer_addr(pc)),
             status < 0 ? weft_err_name(status) : "ok");
    if (c->state != CONN_CLOSING)
        set_state(c, CONN_CLOSING);
    c->pc = NULL;
    uv_timer_stop(&c->idle);
    uv_close((uv_handle_t *)&c->idle, on_timer_closed);
}

static const pr_conn_cbs conn_cbs = {
    .on_open = on_open,
    .on_read = on_read,
    .on_drain = on_drain,
    .on_close = on_conn_close,
};

static void on_refused_closed(uv_handle_t *h)
{
    ctl_http_server *s = h->data;

    free(h);
    srv_release(s);
}

/* Takes the pending connection off the backlog and closes it. */
static void refuse(ctl_http_server *s, const char *why)
{
    uv_tcp_t *t = malloc(sizeof(*t));

    pr_warn("http_conn_refused", "reason=%s conns=%u hint=\"too many clients: check for a connection leak or raise the limit\"",
            why, s->nconns);
    if (!t || uv_tcp_init(s->loop, t) != 0) {
        free(t);
        return;
    }
    t->data = s;
    s->live++;
    (void)uv_accept((uv_stream_t *)&s->tcp, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static int conn_new(ctl_http_server *s)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    int r;

    if (!c)
        return WEFT_ENOMEM;
    c->srv = s;
    c->state = CONN_HANDSHAKE;
    ctl_http_parse_init(&c->hp);
    uv_timer_init(s->loop, &c->idle);
    c->idle.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->live++;
    r = pr_conn_accept(s->tls, (uv_stream_t *)&s->tcp, &conn_cbs, c, &c->pc);
    if (r < 0) {
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->idle, on_timer_closed);
        return r;
    }
    uv_timer_start(&c->idle, on_idle, s->idle_ms, s->idle_ms);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    ctl_http_server *s = server->data;
    int r;

    if (status < 0) {
        pr_warn("http_accept_failed", "err=%s hint=\"check the file descriptor limit (ulimit -n)\"",
                uv_err_name(status));
        return;
    }
    if (s->stopping)
        return;
    if (s->nconns >= s->max_conns) {
        refuse(s, "limit");
        return;
    }
    r = conn_new(s);
    if (r < 0) {
        pr_warn("http_accept_failed", "err=%s hint=\"check memory and file descriptor limits\"",
                weft_err_name(r));
        refuse(s, "accept_failed");
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    srv_release(h->data);
}

static int listen_on(ctl_http_server *s, const char *addr)
{
    struct sockaddr_storage ss;
    char shown[128];
    int len, r;

    r = pr_addr_resolve(addr, &ss);
    if (r < 0)
        return r;
    r = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->tcp, LISTEN_BACKLOG, on_connection);
    if (r < 0) {
        pr_error("http_listen_failed", "addr=%s err=%s hint=\"is another process using the port?\"",
                 pr_log_q(addr), uv_err_name(r));
        return WEFT_EIO;
    }
    /* Show the bound address: with port 0 the kernel picked the port. */
    len = sizeof(ss);
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0 ||
        pr_addr_format((const struct sockaddr *)&ss, shown, sizeof(shown)) < 0)
        snprintf(shown, sizeof(shown), "%s", addr);
    pr_info("http_listening", "addr=%s", pr_log_q(shown));
    return 0;
}

int ctl_http_server_start(uv_loop_t *loop, pr_tls_ctx *tls, const char *addr,
                          ctl_http_handler handler, void *server_data, ctl_http_server **out)
{
    ctl_http_server *s;
    int r;

    *out = NULL;
    if (!loop || !tls || !addr || !handler)
        return WEFT_EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return WEFT_ENOMEM;
    s->loop = loop;
    s->tls = tls;
    s->handler = handler;
    s->server_data = server_data;
    s->max_conns = MAX_CONNS;
    s->idle_ms = CTL_HTTP_IDLE_MS;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->live = 1;
    r = listen_on(s, addr);
    if (r < 0) {
        /* Freed by the close callback once the loop runs. */
        s->stopping = 1;
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
        return r;
    }
    *out = s;
    return 0;
}

void ctl_http_server_set_limits(ctl_http_server *s, unsigned idle_ms, unsigned max_conns)
{
    if (idle_ms)
        s->idle_ms = idle_ms;
    if (max_conns)
        s->max_conns = max_conns;
}

int ctl_http_server_port(ctl_http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (!s || uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

void ctl_http_server_stop(ctl_http_server *s, void (*cb)(void *arg), void *arg)
{
    struct http_conn *c, *next;

    if (!s || s->stopping)
        return;
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_arg = arg;
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    for (c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c, WEFT_ECANCELED);
    }
}
