/* weft-router internals shared by its files: the router object, edge
 * sessions, router-hosted services and the control channel. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/frame.h"
#include "proto/idfile.h"
#include "proto/tls.h"
#include "router/circuit.h"
#include "router/map.h"

#define RT_VERSION "0.1.0"
#define RT_RECENT_CLOSED 64 /* circuit ids per session whose late frames are dropped quietly */

typedef struct rt_router rt_router;
typedef struct rt_sess rt_sess;
typedef struct rt_hosted rt_hosted;
typedef struct rt_term rt_term;
typedef struct rt_control rt_control;

enum rt_sess_state { RT_SESS_HELLO = 1, RT_SESS_OPEN, RT_SESS_CLOSING };

struct rt_sess {
    rt_router *r;
    pr_conn *conn;
    pr_reader rd;
    int state;
    int paused; /* reads stopped: an outgoing connection was full */
    uint64_t num; /* for logs */
    char identity[RT_ID_CAP];
    rt_end_list ends;
    uint64_t recent[RT_RECENT_CLOSED];
    unsigned recent_pos;
    rt_sess *next, *prev;
};

/* A terminator recorded by this router for a bound session. */
struct rt_term {
    char id[RT_ID_CAP];
    char service_id[RT_ID_CAP];
    char service[RT_NAME_CAP];
    rt_sess *sess;
    rt_term *next;
};

/* Observer of forwarded payload frames (metrics; tests check ciphertext). */
typedef void (*rt_forward_cb)(void *arg, const rt_circuit *c, const pr_frame *f,
                              const uint8_t *raw, size_t raw_len);

struct rt_router {
    uv_loop_t *loop;
    const pr_idfile *id; /* id, name, network, cert, key, CA */
    rt_map map;
    rt_circuits circuits;
    pr_tls_ctx *edge_ctx;
    uv_tcp_t edge_tcp;
    int edge_open;
    char edge_addr[64]; /* the bound address, "HOST:PORT" */
    rt_sess *sessions;
    rt_term *terms;
    rt_hosted *hosted;
    rt_control *ctl; /* NULL: no control channel (tests) */
    uint64_t next_sess;
    uint8_t *txbuf;  /* PR_FRAME_MAX: frames the router makes itself */
    uint8_t *cbuf;   /* e2e scratch for hosted services */
    rt_forward_cb on_forward;
    void *forward_arg;
    uint64_t frames_fwd, bytes_fwd;
};

/* ---- router.c ---- */
int rt_router_init(rt_router *r, uv_loop_t *loop, const pr_idfile *id);
/* Starts the edge listener on addr ("HOST:PORT", port 0 allowed). */
int rt_router_listen_edge(rt_router *r, const char *addr);
/* Closes the listener, sessions and hosted services; run the loop afterwards. */
void rt_router_close(rt_router *r);
/* Frees what rt_router_init made (after the loop has closed every handle). */
void rt_router_free(rt_router *r);
/* Called after every map change: closes sessions of revoked identities. */
void rt_router_map_changed(rt_router *r);
/* Is this router named by s (its id or its name)? */
int rt_router_is_me(const rt_router *r, const char *s);

/* ---- edge.c ---- */
void rt_edge_on_connection(uv_stream_t *server, int status);
/* Closes a session now (circuits first, then the connection). */
void rt_sess_kill(rt_sess *s, int err, const char *msg);
/* Sends raw frame bytes to the edge end of circuit c at side; backpressure is
 * applied to the writer (sess may be NULL for hosted writers). */
int rt_edge_write_end(rt_router *r, rt_circuit *c, int side, const uint8_t *raw, size_t len);
/* Ends a circuit: tells every end except closer_side (-1: both) and frees it. */
void rt_circuit_end(rt_router *r, rt_circuit *c, int closer_side, int err, const char *msg);
/* The host side answered a dial (hosted services call this). */
void rt_edge_dial_ok(rt_router *r, rt_circuit *c, const uint8_t *kx_pk, const uint8_t *sig,
                     size_t sig_len);
/* Resumes sessions and hosted services paused by backpressure. */
void rt_resume_paused(rt_router *r);

/* ---- hosted.c ---- */
/* The dial of f (from dialler session s) targets service svc hosted here. On
 * error err holds the reason for the dialler and the caller ends the circuit. */
int rt_hosted_dial(rt_router *r, rt_circuit *c, const rt_map_service *svc, const rt_sess *s,
                   const pr_frame *f, char *err, size_t errcap);
/* A frame from the dialler for a hosted circuit. */
void rt_hosted_on_frame(rt_hosted *h, const pr_frame *f);
/* The circuit is gone: close the service connection (no frames sent). */
void rt_hosted_abort(rt_hosted *h);
void rt_hosted_resume_all(rt_router *r);

/* ---- control.c ---- */
typedef struct {
    const char *control_addr; /* "HOST:PORT" of the control channel */
    const char *edge_listen;
    const char *link_listen;
} rt_control_cfg;

int rt_control_start(rt_router *r, const rt_control_cfg *cfg);
void rt_control_stop(rt_router *r);
void rt_control_term_add(rt_router *r, const rt_term *t);
void rt_control_term_remove(rt_router *r, const rt_term *t);
/* Blocking, start-up only: asks GET /v1/version for the control address. */
int rt_control_discover(const pr_idfile *id, char *out, size_t cap, char *err, size_t errcap);

/* Raw bytes of a decoded frame (it points into the buffer it was decoded from). */
void rt_frame_raw(const pr_frame *f, const uint8_t **raw, size_t *len);

#endif
