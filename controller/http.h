/* A small HTTPS/1.1 server on libuv for the controller's REST API: TLS from
 * proto/tls.h, request parsing by llhttp. Keep-alive, one request at a time per
 * connection (no pipelining surprises: the next request is parsed only after
 * the response to the current one was queued).
 *
 * Limits are checked as bytes arrive, before buffering: header block 16 KiB,
 * body CTL_HTTP_MAX_BODY (413-class errors are answered as 400 with a JSON
 * body {"error":{"code":"too_large","message":...}} and the connection closed). */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "proto/tls.h"

#define CTL_HTTP_MAX_BODY (1024 * 1024)
#define CTL_HTTP_MAX_HEADERS_BYTES (16 * 1024)
#define CTL_HTTP_IDLE_MS 60000

typedef struct ctl_http_server ctl_http_server;
typedef struct ctl_http_req ctl_http_req;

struct ctl_http_req {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* decoded path without the query, e.g. "/v1/identities/abc" */
    const char *query;        /* raw query string without '?', or "" */
    const char *content_type; /* or "" */
    const char *body;         /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    const char *peer_uri;     /* URI SAN of the verified client certificate, or NULL */
    const char *peer_addr;    /* "HOST:PORT" */
    void *server_data;        /* what was given to ctl_http_server_start */
    unsigned retry_after_s;   /* set by a handler before a 429/503: sends Retry-After */
};

/* Returns the value of query parameter name (URL-decoded into out), or NULL. */
const char *ctl_http_query(const ctl_http_req *req, const char *name, char *out, size_t cap);

/* The handler answers synchronously through ctl_http_respond (exactly once). */
typedef void (*ctl_http_handler)(ctl_http_req *req);

/* Queues the response. body may be NULL (empty). */
void ctl_http_respond(ctl_http_req *req, int status, const char *content_type, const char *body,
                      size_t body_len);
/* Answers with a JSON error body {"error":{"code":code,"message":message}}
 * (counts as the one response). */
void ctl_http_respond_error(ctl_http_req *req, int status, const char *code, const char *message);

/* Listens on addr ("HOST:PORT") with the given TLS context (server, client
 * certificates requested but optional: enrolment has none yet). */
int ctl_http_server_start(uv_loop_t *loop, pr_tls_ctx *tls, const char *addr,
                          ctl_http_handler handler, void *server_data, ctl_http_server **out);
/* Stops listening, closes every connection; cb (may be NULL) runs when all handles closed. */
/* Overrides the idle timeout (ms, default CTL_HTTP_IDLE_MS) and the connection
 * cap (default 1024) for connections accepted from now on; 0 keeps a value. */
void ctl_http_server_set_limits(ctl_http_server *s, unsigned idle_ms, unsigned max_conns);
/* The bound TCP port (useful after listening on port 0), or -1. */
int ctl_http_server_port(ctl_http_server *s);
void ctl_http_server_stop(ctl_http_server *s, void (*cb)(void *arg), void *arg);

#endif
