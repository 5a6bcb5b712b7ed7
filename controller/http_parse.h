/* The request-parser core of the controller's HTTP server, apart from sockets
 * so that it can be fuzzed and tested on its own.
 *
 * Feed decrypted bytes with ctl_http_parse_feed(). It stops at the end of every
 * request (llhttp paused in on_message_complete) so that the next pipelined
 * request is parsed only after the response to this one was queued, and after
 * the headers of a request carrying "Expect: 100-continue" so that the caller
 * can send the interim response. Limits are enforced as bytes arrive: request
 * target CTL_HTTP_MAX_URL, header block CTL_HTTP_MAX_HEADERS_BYTES, body
 * CTL_HTTP_MAX_BODY (Content-Length checked before any body byte is read,
 * chunked bodies counted as they arrive). Memory per parser is bounded by those
 * limits. */
#ifndef CTL_HTTP_PARSE_H
#define CTL_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "llhttp.h"

#include "controller/http.h"

#define CTL_HTTP_MAX_URL 4096
/* Bytes (request line, headers, stray whitespace) the parser accepts before the
 * end of the header block; a guard on what the callbacks do not see. */
#define CTL_HTTP_MAX_HEAD_RAW (CTL_HTTP_MAX_URL + CTL_HTTP_MAX_HEADERS_BYTES + 1024)
#define CTL_HTTP_MAX_CONTENT_TYPE 255

/* ctl_http_parse_feed results (errors are negative WEFT_E* codes). */
enum ctl_http_parse_result {
    CTL_HTTP_PARSE_MORE = 0,     /* all input consumed; no complete request yet */
    CTL_HTTP_PARSE_REQUEST = 1,  /* a request is complete: answer it, then _next() */
    CTL_HTTP_PARSE_CONTINUE = 2, /* send "100 Continue", then _resume() */
};

typedef struct ctl_http_parse {
    llhttp_t p;
    char url[CTL_HTTP_MAX_URL + 1];  /* raw request target */
    size_t url_len;
    char path[CTL_HTTP_MAX_URL + 1]; /* decoded path */
    const char *query;               /* into url, after '?', or "" */
    char field[32];                  /* current header name (long names are not ours) */
    size_t field_len;
    int field_long;
    int hdr;                         /* which header the current value belongs to */
    char content_type[CTL_HTTP_MAX_CONTENT_TYPE + 1];
    size_t ct_len;
    char expect[32];
    size_t expect_len;
    size_t head_bytes;               /* header block bytes seen by the callbacks */
    size_t head_raw;                 /* raw bytes fed before the headers ended */
    int headers_done;
    int complete;
    int want_continue;
    int keep_alive;
    char *body;
    size_t body_len;
    size_t body_cap;
    const char *method;
    int err_status;                  /* for the error response */
    const char *err_code;            /* "bad_request", "too_large", ... */
    char err_msg[160];
} ctl_http_parse;

/* Allocates nothing: the body buffer grows on demand up to CTL_HTTP_MAX_BODY + 1. */
void ctl_http_parse_init(ctl_http_parse *hp);
/* Frees the body buffer. */
void ctl_http_parse_finish(ctl_http_parse *hp);
/* Parses data[0..len); *used is how many bytes were consumed (less than len
 * only when a request completed or 100-continue is due). On error (WEFT_EPROTO,
 * WEFT_ETOOBIG, WEFT_ENOMEM) err_status, err_code and err_msg say what to answer
 * and the parser accepts nothing more. */
int ctl_http_parse_feed(ctl_http_parse *hp, const uint8_t *data, size_t len, size_t *used);
/* After CTL_HTTP_PARSE_CONTINUE: go on with the body. */
void ctl_http_parse_resume(ctl_http_parse *hp);
/* After CTL_HTTP_PARSE_REQUEST, once the response was queued: go on with the
 * next request (keep-alive). */
void ctl_http_parse_next(ctl_http_parse *hp);
/* Fills method, path, query, content_type, body and body_len of req from the
 * completed request (pointers into hp, valid until the next feed). */
void ctl_http_parse_request(const ctl_http_parse *hp, ctl_http_req *req);

/* Percent-decodes s[0..len) into out (NUL-terminated). plus_space: '+' means
 * ' ' (query strings). WEFT_EPROTO for an invalid escape or %00, WEFT_ETOOBIG
 * when out is too small. */
int ctl_http_pct_decode(const char *s, size_t len, char *out, size_t cap, int plus_space);

#endif
