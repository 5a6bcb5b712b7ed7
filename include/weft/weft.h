/* libweft: the weft edge library. Embed it in an application to dial and host
 * weft services over the fabric, on the application's own libuv loop.
 *
 * Shape (as libuv): a weft_ctx is a long-lived handle made from an identity
 * file; a weft_conn is one end-to-end encrypted circuit. Every function returns
 * 0 or a negative WEFT_E* code (weft_strerror() says what it means). Callbacks
 * run on the loop thread. Memory of a conn is released after its close callback.
 *
 *   weft_ctx *ctx;
 *   weft_init(loop, "device.json", NULL, &ctx);
 *   weft_dial(ctx, "telemetry", on_dialled, app);         // -> on_dialled(conn, 0, app)
 *   weft_read_start(conn, on_read);                          // -> on_read(conn, buf, n) / n < 0
 *   weft_write(conn, buf, len, on_written, app);
 *   weft_shutdown(conn);                                     // half-close: peer reads EOF
 *   weft_close(conn, on_closed);
 *
 * docs/libweft.md is the embedder's guide; docs/examples/ has two programs. */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "weft/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION "0.1.0"

typedef struct weft_ctx weft_ctx;
typedef struct weft_conn weft_conn;

typedef struct {
    /* Hardware ids for device binding, in EDGE_HELLO and in every session-data
     * request (query parameters); NULL if none. */
    const char *imei;
    const char *iccid;
    unsigned refresh_s; /* how often to refresh services and tokens; 0 = 60 */
    size_t window;      /* per-circuit receive window in bytes; 0 = 512 KiB. Announced to
                           the peer, which keeps to it: the two ends may differ */
    /* How a router that died silently (power cut, dropped network: no FIN, no
     * RST) is noticed; docs/libweft.md "Keepalive and dead routers". 0 takes
     * the default; weft_options_check says what is out of bounds. */
    unsigned keepalive_ms;  /* each session pings its router this often: 0 = 5000
                               (1000 .. 600000) */
    unsigned idle_dead_ms;  /* a session carrying nothing is dropped after this long without a
                               byte from its router: 0 = 45000, or 3 keepalives when longer
                               (2 keepalives .. 3600000) */
    unsigned dead_after_ms; /* a session carrying traffic (bytes not yet acknowledged, a dial,
                               bind or resume awaiting its answer, bytes received lately) is
                               probed after 2/3 of this silence and dropped after it, or after
                               8 smoothed round trips when longer, once the other session's
                               router answered since: its circuits move there. 0 = 1500
                               (1000 .. 60000) */
    unsigned dead_max_ms;   /* the longest that silence may grow to with the round trip:
                               0 = 10000 (dead_after_ms .. idle_dead_ms) */
} weft_options;

/* 0 when the options (NULL: the defaults) are within bounds, else WEFT_EINVAL
 * with the reason in err (errcap bytes, may be 0). weft_init checks them too. */
int weft_options_check(const weft_options *opt, char *err, size_t errcap);

/* status 0: conn is open. status < 0: conn is NULL (nothing to close); the
 * router's reason is logged. WEFT_ETIMEDOUT after 10 s without an answer.
 * A dial a router or service-router policy refuses is sent again through
 * another router; WEFT_EDENIED when none may carry it. WEFT_EBINDING or
 * WEFT_EDISABLED when the controller refuses the identity (hardware ids not
 * the bound ones, disabled). weft_last_error_msg says why. */
typedef void (*weft_dial_cb)(weft_conn *conn, int status, void *data);
typedef void (*weft_accept_cb)(weft_conn *conn, void *data); /* a new incoming circuit */
typedef void (*weft_listen_cb)(weft_ctx *ctx, const char *service, int status, void *data);
/* n > 0: bytes; n == WEFT_ECLOSED: the peer half-closed (EOF); other n < 0: error,
 * the conn is dead and must be closed. buf is valid only during the call. */
typedef void (*weft_read_cb)(weft_conn *conn, const uint8_t *buf, ssize_t n);
typedef void (*weft_write_cb)(weft_conn *conn, int status, void *data);
typedef void (*weft_close_cb)(weft_conn *conn);

/* Loads the identity file (written by weft-edge enroll) and starts: session
 * data from the controller, then an edge session to a router. Dials and
 * listens made before that is done wait for it (within their timeouts). */
int weft_init(uv_loop_t *loop, const char *identity_file, const weft_options *opt, weft_ctx **out);
/* Closes every conn (close callbacks already asked for run; conns the
 * application never closed are closed without one, their pending writes
 * complete with WEFT_ECANCELED), fails pending dials with WEFT_ECANCELED and
 * frees the ctx once its handles are closed: run the loop afterwards. */
void weft_free(weft_ctx *ctx);

int weft_dial(weft_ctx *ctx, const char *service, weft_dial_cb cb, void *data);
/* Hosts a service: status reaches cb once the router accepted the bind (and
 * again with an error if the binding is lost for good: refused, never
 * answered, or withdrawn by a policy change (WEFT_EDENIED, the router's
 * reason in weft_last_error_msg; the service is then no longer bindable in
 * weft_services until session data grants it again); the listener is then
 * gone). After a reconnect the service is bound again without a callback.
 * accept_cb runs per circuit; closing the conn inside accept_cb refuses the
 * dial (the dialler gets WEFT_EREFUSED); weft_accept_defer lets the
 * application answer later. */
int weft_listen(weft_ctx *ctx, const char *service, weft_listen_cb cb, weft_accept_cb accept_cb,
                void *data);
int weft_unlisten(weft_ctx *ctx, const char *service);

int weft_read_start(weft_conn *conn, weft_read_cb cb);
/* Stops delivery and, with it, window credit: the peer's writes on this
 * circuit stall after one window; other circuits keep flowing. */
int weft_read_stop(weft_conn *conn);
/* Copies buf; cb runs once the peer's window took it (backpressure), or with
 * WEFT_ECANCELED when the conn is closed or reset first. WEFT_ENOBUFS when
 * more than a window of bytes would wait, or 64 writes are pending: wait for
 * write callbacks (weft_write_queue_size says how much waits). WEFT_ENOMEM
 * when the bytes that must wait cannot be buffered (nothing was written). */
int weft_write(weft_conn *conn, const void *buf, size_t len, weft_write_cb cb, void *data);
/* Bytes written but not yet granted by the peer's window. */
size_t weft_write_queue_size(const weft_conn *conn);
/* Half-close after the queued bytes: the peer reads WEFT_ECLOSED. */
int weft_shutdown(weft_conn *conn);
/* Ends the circuit at once (the peer reads WEFT_ERESET unless both sides had
 * half-closed); cb runs on a later loop iteration, then conn is freed. */
void weft_close(weft_conn *conn, weft_close_cb cb);

/* Like weft_close, but the peer reads err (a negative WEFT_E* code) rather
 * than WEFT_ERESET: say why the circuit ends (e.g. WEFT_EREFUSED when the
 * local service went away). err 0 is weft_close. */
void weft_close_err(weft_conn *conn, int err, weft_close_cb cb);

/* ---- deferred accept ----
 * Called inside accept_cb, weft_accept_defer holds the host's answer: the
 * dialler waits until weft_accept (it then sees its dial succeed) or
 * weft_reject (its dial fails with err, e.g. WEFT_EREFUSED, and msg is its
 * reason; the conn is then dead, close it). A deferred circuit not answered
 * within 10 s is rejected with WEFT_ETIMEDOUT. Reads and writes may be set up
 * meanwhile: bytes wait for the answer. Without weft_accept_defer the answer
 * goes as soon as accept_cb returns, as before. */
int weft_accept_defer(weft_conn *conn);
int weft_accept(weft_conn *conn);
int weft_reject(weft_conn *conn, int err, const char *msg);
/* The reason text the router or the hosting side gave with the last failed
 * dial of ctx, or with a listener's lost bind: valid inside that dial's or
 * listener's callback; "" when there was none. */
const char *weft_last_error_msg(const weft_ctx *ctx);

/* ---- the identity's services ---- */
typedef struct {
    const char *name;
    const char *intercept; /* "tcp:HOST:PORT" or "udp:HOST:PORT", "" if none */
    const char *host;      /* where a hosting edge connects circuits, "" if none */
    int dial;              /* this identity may dial it (policy and token) */
    int bind;              /* this identity may host it */
} weft_service;
/* svcs[0..n) is valid only during the call. */
typedef void (*weft_services_cb)(weft_ctx *ctx, const weft_service *svcs, size_t n, void *data);
/* Calls cb at once with the services of the session data held now;
 * WEFT_EAGAIN when none has arrived yet (weft_set_services_cb tells when). */
int weft_services(weft_ctx *ctx, weft_services_cb cb, void *data);
/* cb runs on the loop when the first session data arrives and after each
 * refresh that changed a service's name, addresses or flags (cb NULL: none). */
void weft_set_services_cb(weft_ctx *ctx, weft_services_cb cb, void *data);

/* ---- identity renewal ----
 * Reads the identity file again (after weft-edge renew or pr_renew_if_due
 * rewrote it): new sessions, session-data fetches and new circuits use the
 * new certificate and key; sessions and circuits already open keep running
 * on the old one, which stays valid until it expires. */
int weft_reload_identity(weft_ctx *ctx);

void *weft_conn_data(const weft_conn *conn);
void weft_conn_set_data(weft_conn *conn, void *data);
/* The service name and the verified identity of the far end. */
const char *weft_conn_service(const weft_conn *conn);
const char *weft_conn_peer_identity(const weft_conn *conn);

#ifdef __cplusplus
}
#endif
#endif
