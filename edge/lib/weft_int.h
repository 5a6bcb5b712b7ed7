/* libweft internals shared by its files: the context, the router session,
 * circuits (weft_conn) and listeners. Not installed. */
#ifndef WEFT_LIB_INT_H
#define WEFT_LIB_INT_H

#include <stdint.h>
#include <uv.h>

#include "edge/lib/e2e.h"
#include "edge/lib/flow.h"
#include "edge/lib/msg.h"
#include "edge/lib/rtx.h"
#include "edge/lib/sessdata.h"
#include "proto/frame.h"
#include "proto/ident.h"
#include "proto/idfile.h"
#include "proto/tls.h"
#include "weft/weft.h"

#define WEFT_REQ_TIMEOUT_MS 10000
#define WEFT_BACKOFF_MIN_MS 500
#define WEFT_BACKOFF_MAX_MS 30000
#define WEFT_HINT_MAX_MS    120000 /* an admission hint longer than this is clamped */
#define WEFT_TICK_MS        250
#define WEFT_HASH_BUCKETS   256
#define WEFT_SESS_MAX       2 /* routers an edge holds sessions to at once (ARCHITECTURE 3a) */
#define WEFT_WINDOW_MAX     (2 * 1024 * 1024) /* keeps one grant well below the TLS hard limit */
#define WEFT_ACK_EVERY      16   /* frames received in order between two acknowledgements */
#define WEFT_RTO_MIN_MS     1000 /* first retransmission after this long without progress */
#define WEFT_RTO_MAX_MS     32000
#define WEFT_PROBE_MAX      16     /* routers measured by TCP connect time */
#define WEFT_PROBE_TIMEOUT_MS 2000
#define WEFT_PROBE_EVERY_MS 300000 /* routers are measured again this often */
#define WEFT_AVOID_MAX        16     /* policy refusals remembered (avoid.c) */
#define WEFT_AVOID_MS         30000  /* a refusing router is left alone this long, */
#define WEFT_AVOID_MAX_MS     600000 /* doubling while it keeps refusing, up to this */
#define WEFT_URGENT_MS        2000   /* refusals ask for session data at most this often */
#define WEFT_DENIED_RETRY_MS  60000  /* a controller refusing the identity (403) is asked again */

/* Router liveness (liveness.c): defaults and bounds of the weft_options. */
#define WEFT_KEEPALIVE_MS      5000
#define WEFT_KEEPALIVE_MIN_MS  1000
#define WEFT_KEEPALIVE_MAX_MS  600000
#define WEFT_IDLE_DEAD_MS      45000
#define WEFT_IDLE_DEAD_MAX_MS  3600000
#define WEFT_DEAD_AFTER_MS     1500
#define WEFT_DEAD_AFTER_MIN_MS 1000
#define WEFT_DEAD_AFTER_MAX_MS 60000
#define WEFT_DEAD_MAX_MS       10000

typedef struct {
    unsigned keepalive_ms, idle_dead_ms, dead_after_ms, dead_max_ms;
} weft_live;

/* Router session states; rsess_change_state() is the only place that moves. */
#define RSESS_STATES(XX)                                                                           \
    XX(IDLE)                                                                                       \
    XX(RESOLVING)                                                                                  \
    XX(CONNECTING)                                                                                 \
    XX(HELLO)                                                                                      \
    XX(READY)                                                                                      \
    XX(BACKOFF)                                                                                    \
    XX(STOPPED)

enum rsess_state {
#define XX(s) RS_##s,
    RSESS_STATES(XX)
#undef XX
};

enum rsess_event {
    RE_START,    /* session data is there: go */
    RE_RESOLVED, /* the router's address is known */
    RE_OPEN,     /* TLS is up */
    RE_HELLO_OK, /* the router took our hello */
    RE_FAILED,   /* any failure of the current attempt */
    RE_CLOSED,   /* the TLS connection is gone */
    RE_TIMER,    /* backoff over or hello timed out */
    RE_STOP,     /* weft_free */
};

typedef struct weft_rsess {
    weft_ctx *ctx;
    int slot; /* index in ctx->sess */
    int state;
    pr_conn *tls;
    pr_reader rd;
    uv_getaddrinfo_t gai;
    int gai_busy;
    uv_timer_t timer;
    unsigned backoff_ms;
    uint32_t retry_ms; /* the router's admission hint for the next wait; 0 = none */
    size_t router_idx;
    size_t cur;       /* index in the session data of the router tried or in use */
    uint64_t last_rx; /* loop time of the last bytes from the router */
    uint64_t rx_n;    /* reads from the router, ever: "heard since" without clock ties */
    uint64_t srtt_us; /* smoothed round trip of EDGE_PING/PONG; 0 before the first */
    uint32_t ping_req;
    uint64_t ping_at;     /* uv_hrtime of the ping in flight */
    uint64_t ping_ms;     /* loop time of the last ping sent */
    uint64_t payload_at;  /* loop time of the last payload frame received */
    uint64_t busy_since;  /* loop time the session began to carry traffic; 0 = idle */
    uint64_t checked_at;  /* loop time of the last liveness check */
    uint64_t probe_at;    /* loop time of the probe of this silence; 0 = none */
    uint64_t probe_self;  /* rx_n of this session when the probe went */
    uint64_t probe_other; /* rx_n of the other session when the probe went */
    int probe_late;       /* the other router had not answered by the dead deadline */
    uint32_t caps;    /* PR_CAP_* of the router's EDGE_HELLO_OK */
    unsigned skip;    /* failed attempts since the last ready: how far down the ranking */
    int refused;      /* a router policy refused the identity here: move at once when closed */
    size_t move_to;   /* a nearer router to move to once closed, + 1; 0 = none */
    int better_rounds; /* consecutive probe rounds that found a clearly nearer router */
    char router_id[WEFT_NAME_MAX];
    char addr[256];
} weft_rsess;

/* A router policy refusal (avoid.c): the router, by its session-data address,
 * refused the identity (service "") or carried no dial of service. */
typedef struct {
    char router[256];
    char service[WEFT_NAME_MAX];
    char why[WEFT_ERRMSG_MAX]; /* the router's reason */
    uint64_t until;            /* loop time it is forgotten; 0: slot unused */
    unsigned avoid_ms;         /* how long this time: doubles with each repeat */
} weft_avoid;

/* A router's measured distance (probe.c): the TCP connect time, smoothed. */
typedef struct {
    char addr[256];
    uint64_t rtt_us; /* 0: not measured yet */
    int failed;      /* the last probe could not connect */
} weft_dist;

/* Circuit states; conn_change_state() is the only place that moves. */
#define CONN_STATES(XX)                                                                            \
    XX(DIAL_WAIT)                                                                                  \
    XX(DIALING)                                                                                    \
    XX(ACCEPTING)                                                                                  \
    XX(OPEN)                                                                                       \
    XX(DONE)                                                                                       \
    XX(CLOSING)

enum conn_state {
#define XX(s) CS_##s,
    CONN_STATES(XX)
#undef XX
};

/* What the peer does with PR_H_ACK_SEQ: unknown until it announces a window
 * or acknowledges; an edge from before reliability (or a router's hosted
 * service) acknowledges nothing, and then nothing is kept for it. */
enum rtx_mode { RTX_UNKNOWN, RTX_ON, RTX_OFF };

typedef struct {
    weft_write_cb cb;
    void *data;
    size_t left; /* bytes not yet handed to the transport */
    int status;
} weft_wreq;

struct weft_conn {
    weft_ctx *ctx;
    weft_rsess *sess; /* the router session the circuit runs over */
    weft_conn *next;  /* every conn of the ctx */
    weft_conn *hnext; /* circuit hash chain */
    weft_conn *dnext; /* deferred-callback list */
    int dirty;
    int state;
    int hashed;
    uint64_t circuit;
    uint32_t req_id;
    uint64_t deadline;
    int refused; /* a router policy refused this dial once: it fails with that, not a timeout */
    char service[WEFT_NAME_MAX];
    char peer[PR_URI_MAX];
    void *data;
    weft_dial_cb dial_cb;
    void *dial_data;
    weft_e2e e2e;
    uint8_t tx_hdr[WEFT_E2E_HDR_LEN];
    uint64_t tx_seq, rx_seq; /* next seq to send, next seq expected */
    uint64_t acked_next;     /* rx_seq when we last acknowledged */
    int rtx_mode;
    weft_rtxq rtxq;      /* sent, not yet acknowledged */
    weft_reorder ooo;    /* arrived ahead of a gap */
    uint64_t rtx_at;     /* loop time of the last progress or retransmission */
    unsigned rto_ms;
    weft_txflow tx;
    weft_rxflow rx;
    weft_ring sendq, recvq;
    weft_wreq wr[WEFT_WRITES_MAX];
    unsigned wr_head, wr_n, wr_done;
    int in_accept, deferred; /* inside accept_cb; the application answers later */
    int close_err;           /* sent in EDGE_CLOSE by weft_close_err */
    char anchor[WEFT_NAME_MAX]; /* the far end's router (PR_H_ROUTER_ID) */
    uint32_t resume_req;        /* EDGE_RESUME in flight (0: none) */
    uint64_t resume_deadline;
    uint8_t resume_nonce[WEFT_RESUME_NONCE];
    uint8_t seen_nonce[4][WEFT_RESUME_NONCE]; /* resumes taken as the far end: no replays */
    unsigned nseen;
    weft_read_cb read_cb;
    int reading;
    int shut_req, fin_sent, fin_rcvd, eof_given;
    int err, err_given;
    weft_close_cb close_cb;
};

typedef struct weft_listener {
    struct weft_listener *next;
    char service[WEFT_NAME_MAX];
    char terminator[WEFT_NAME_MAX];
    weft_listen_cb cb;
    weft_accept_cb accept_cb;
    void *data;
    uint32_t req_id[WEFT_SESS_MAX]; /* bind in flight per session, 0 when none */
    int bound[WEFT_SESS_MAX];       /* bound at each router session: reachable via either */
    uint64_t deadline;
    int ever_bound;
} weft_listener;

struct weft_ctx {
    uv_loop_t *loop;
    pr_idfile id;
    char imei[64], iccid[64];
    uint64_t window;
    unsigned refresh_s;
    int offline; /* session data given, never fetched (tests) */
    pr_tls_ctx *tls;
    weft_sessdata sd;
    int have_sd;
    uv_work_t work;
    void *job;
    unsigned fetch_backoff_ms;
    uint32_t fetch_hint_ms; /* the controller's Retry-After for the next fetch; 0 = none */
    uint64_t fetch_not_before; /* loop time before which no fetch goes (429, 403) */
    int urgent;                /* a fetch asked for by a refusal is due or in flight */
    int refetch;               /* a refusal came while a fetch was in flight: fetch again */
    uint64_t urgent_at;        /* loop time the last urgent fetch went */
    int sd_err;                /* the controller's 403 (WEFT_E*), 0 once served */
    char sd_err_msg[WEFT_ERRMSG_MAX];
    weft_avoid avoid[WEFT_AVOID_MAX];
    int told_no_router; /* edge_no_router_allowed logged for this session data */
    uv_timer_t refresh;
    uv_timer_t tick;
    uv_idle_t idle;
    int handles;
    weft_rsess sess[WEFT_SESS_MAX];
    int nsess;           /* sessions held: two when the session data lists two routers */
    weft_rsess *rx_sess; /* the session whose frame is being handled */
    weft_conn *hash[WEFT_HASH_BUCKETS];
    weft_conn *conns;
    weft_conn *dirty;
    weft_listener *listeners;
    uint32_t next_req;
    uint8_t *fbuf; /* one frame being built */
    uint8_t *pbuf; /* one message being decrypted */
    weft_msg msg;
    int freeing;
    char id_path[4096];
    pr_tls_ctx *tls_next; /* a reloaded identity waiting for the fetch in flight to end */
    pr_idfile id_next;
    int have_next;
    char last_err[WEFT_ERRMSG_MAX];
    weft_services_cb svcs_cb;
    void *svcs_data;
    uint8_t svcs_sum[32]; /* what the last services callback saw */
    int svcs_told;
    weft_dist dist[WEFT_PROBE_MAX];
    size_t ndist;
    int probing;          /* probes in flight */
    int probed;           /* a round finished since the session data came */
    uint64_t probe_every_ms;
    uv_timer_t probe_timer;
    struct weft_probe *probes;
    int resume;           /* re-home circuits when the router offers it (default on) */
    weft_live live;       /* keepalive and dead-router deadlines (liveness.c) */
    size_t rank_salt;     /* this edge's order of routers not measured yet */
};

uint64_t weft__now(const weft_ctx *ctx);
uint32_t weft__req_id(weft_ctx *ctx);

/* session.c */
/* The wait after an admission refusal hinted at hint_ms: the hint plus
 * uniform(0, hint / 10 + 20) ms, or backoff_ms when that is longer. */
unsigned weft__hint_delay(uint32_t hint_ms, unsigned backoff_ms);
void weft__rsess_init(weft_ctx *ctx);
void weft__rsess_event(weft_rsess *s, int ev, int status);
/* Starts the sessions the session data calls for (one, or two with two routers). */
void weft__rsess_start(weft_ctx *ctx);
void weft__rsess_stop(weft_ctx *ctx);
int weft__rsess_ready(const weft_rsess *s);
/* The ready session with the lowest smoothed RTT (unmeasured last), or NULL. */
weft_rsess *weft__rsess_best(weft_ctx *ctx);
/* The same among sessions whose router has not refused service (avoid.c). */
weft_rsess *weft__rsess_best_for(weft_ctx *ctx, const char *service);
/* Sends ctx->fbuf[0..len) on session s. */
int weft__send(weft_rsess *s, size_t len);
/* Sends p[0..len) (a frame) on session s. */
int weft__send_buf(weft_rsess *s, const uint8_t *p, size_t len);
int weft__sess_writable(const weft_rsess *s);
int weft__rsess_done(const weft_ctx *ctx);

/* Sends a ping on s (keepalive, round-trip sample, probe); the newest one is
 * the one whose answer is a round-trip sample. */
void weft__rsess_ping(weft_rsess *s);
/* The session's timer fires (RE_TIMER) in ms. */
void weft__rsess_arm(weft_rsess *s, uint64_t ms);

/* liveness.c: keepalive and routers that died silently */
/* The settings of opt (NULL: defaults) with the defaults filled in; WEFT_EINVAL
 * and the reason in err when one is out of bounds. */
int weft__live_settings(const weft_options *opt, weft_live *out, char *err, size_t errcap);
/* The deadlines of a session carrying traffic, from its smoothed RTT: probed
 * after *probe_ms of silence, dropped after *dead_ms. */
void weft__live_deadlines(const weft_live *lv, uint64_t srtt_us, unsigned *probe_ms,
                          unsigned *dead_ms);
/* Why s carries traffic ("unacked", "request", "receiving"), or NULL when idle. */
const char *weft__live_busy(const weft_rsess *s, uint64_t now);
/* A session became ready: its first ping and its timer. */
void weft__live_start(weft_rsess *s);
/* The session's timer or the ctx tick: pings, probes and the silence deadlines. */
void weft__live_check(weft_rsess *s);
void weft__live_tick(weft_ctx *ctx);

/* probe.c: routers ranked by distance */
void weft__probe_round(weft_ctx *ctx);
void weft__probes_stop(weft_ctx *ctx);
void weft__probe_round_done(weft_ctx *ctx);
void weft__probes_tick(weft_ctx *ctx);
/* Smoothed connect time of the router at addr, UINT64_MAX when it failed, 0 unknown. */
uint64_t weft__dist_of(const weft_ctx *ctx, const char *addr);
void weft__dist_sample(weft_ctx *ctx, const char *addr, uint64_t rtt_us, int failed);
/* Router indexes of the session data, nearest first (unknown after known, failed last);
 * routers that refused the identity lately are left out (avoid.c). */
size_t weft__rank(const weft_ctx *ctx, size_t *out, size_t cap);
/* Hysteresis: 1 when cand is clearly nearer than cur (30 % and 1 ms). */
int weft__clearly_nearer(uint64_t cand_us, uint64_t cur_us);
/* After a probe round: sessions on a clearly farther router move (session.c). */
void weft__rsess_reevaluate(weft_ctx *ctx);

/* avoid.c: router and service-router policy refusals */
enum { WEFT_REFUSAL_OTHER, WEFT_REFUSAL_ROUTER, WEFT_REFUSAL_SERVICE };
/* What an EDGE_ERROR or DIAL_FAIL refuses: the identity at this router, a
 * service at this router, or something else (the router's sentences, see
 * router/grants.c rt_rpolicy_check and router/edge.c ingress_may_carry). */
int weft__refusal_kind(const weft_msg *m);
/* 1 when router (a session-data address) refused the identity, or service
 * there (service may be NULL), and the refusal is not forgotten yet. */
int weft__avoided(const weft_ctx *ctx, const char *router, const char *service);
/* The identity was refused by a router policy at s: remembered, logged with
 * where the session goes next; s closes and moves at once; session data is
 * asked for. Repeats while s closes do nothing. */
void weft__rsess_refused(weft_rsess *s, const weft_msg *m);
/* A dial of c refused by a router or service-router policy: remembered and
 * logged as above; 1 when c should wait for another router, 0 when the
 * refusal is not one of those. */
int weft__dial_refused(weft_conn *c, const weft_msg *m);
/* Where a waiting dial of c goes: 0 and *out a ready session (or NULL: wait),
 * or a negative code with the reason in ctx->last_err (no router may carry it). */
int weft__dial_route(weft_ctx *ctx, weft_conn *c, weft_rsess **out);
/* Fills ctx->last_err with why no router carries service (NULL: the identity). */
void weft__no_router_msg(weft_ctx *ctx, const char *service);
/* No router of the session data may be used: logged once per session data. */
void weft__no_router(weft_ctx *ctx);
/* A session waiting for a router starts once one may be used again (a
 * refusal forgotten). */
void weft__avoid_tick(weft_ctx *ctx);

/* ctx.c */
/* Session data from the controller soon: at once, or WEFT_URGENT_MS after the
 * last such fetch, and never before a 429's Retry-After. */
void weft__refresh_soon(weft_ctx *ctx);
void weft__session_up(weft_ctx *ctx, weft_rsess *s);
void weft__session_down(weft_ctx *ctx, weft_rsess *s);
void weft__mark_dirty(weft_conn *c);
void weft__maybe_finish(weft_ctx *ctx);
weft_listener *weft__listener_by_req(weft_ctx *ctx, uint32_t req);
weft_listener *weft__listener_by_service(weft_ctx *ctx, const char *service);
void weft__bind_answer(weft_ctx *ctx, weft_listener *l, const weft_msg *m);
/* EDGE_UNBIND from the router of s: a policy withdrew the bind of
 * m->service (docs/policies.md "Withdrawn grants"). */
void weft__bind_withdrawn(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);

/* conn.c */
weft_conn *weft__conn_by_circuit(weft_ctx *ctx, uint64_t circuit);
weft_conn *weft__conn_by_req(weft_ctx *ctx, uint32_t req);
void weft__conn_frame(weft_conn *c, const weft_msg *m);
void weft__dial_answer(weft_conn *c, const weft_msg *m);
void weft__incoming_dial(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);
void weft__conn_flush(weft_conn *c);
/* Sends what waits on the circuits of s (all sessions when s is NULL). */
void weft__conns_pump(weft_ctx *ctx, weft_rsess *s);
void weft__conns_session_lost(weft_ctx *ctx, weft_rsess *s);
void weft__dials_send(weft_ctx *ctx);
void weft__conns_tick(weft_ctx *ctx, uint64_t now);
void weft__conns_cancel_all(weft_ctx *ctx);
void weft__late_dial_ok(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);
/* Sends again, byte for byte, every frame the peer has not acknowledged: for
 * a circuit that moved to a new path. */
int weft__conn_retransmit(weft_conn *c);
/* EDGE_RETRANSMIT from s: the circuit moved to a new path inside the fabric. */
void weft__conn_retransmit_notice(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);
/* EDGE_RESUME from the far edge, and the answers to ours. */
void weft__resume_request(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);
void weft__resume_answer(weft_ctx *ctx, weft_rsess *s, const weft_msg *m);
int weft__conns_open_on(const weft_ctx *ctx, const weft_rsess *s);
int weft__resume_possible(const weft_conn *c, const weft_rsess *to);
int weft__resume_start(weft_conn *c, weft_rsess *to);
void weft__resumes_tick(weft_conn *c, uint64_t now);
void weft__conn_gone(weft_conn *c, int err);
void weft__conn_pump(weft_conn *c);
int weft__conn_ack(weft_conn *c);

/* Tests and embedders with their own session source: a ctx that never asks
 * the controller and uses session_json (the body of GET /v1/edge/session). */
int weft__init_offline(uv_loop_t *loop, const char *identity_file, const weft_options *opt,
                       const char *session_json, weft_ctx **out);
/* New session data for a ctx, as if fetched (tests). */
int weft__use_session_json(weft_ctx *ctx, const char *session_json);

#endif
