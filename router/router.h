/* weft-router internals shared by its files: the router object, edge
 * sessions, router-hosted services and the control channel. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "proto/bucket.h"
#include "proto/frame.h"
#include "proto/idfile.h"
#include "proto/tls.h"
#include "router/circuit.h"
#include "router/map.h"
#include "router/path.h"

#define RT_VERSION "0.1.0"
#define RT_RECENT_CLOSED 64 /* circuit ids per session whose late frames are dropped quietly */
#define RT_DIAL_TIMEOUT_MS 10000 /* a dial the host side never answers fails after this */
#define RT_TICK_MS 125           /* dial timeouts, link upkeep, legs without a path */
#define RT_ORPHAN_MS 3000        /* egress: a circuit with no leg waits this long for a reroute */
#define RT_UPKEEP_MS 1000        /* path costs, striping weights and smart rerouting */
#define RT_FAILED_MAX 16         /* links reported broken, kept out of paths for a while */
#define RT_FAILED_MS 10000
#define RT_MESH_EDGES_MAX (4 * RT_GRAPH_MAX)

typedef struct rt_router rt_router;
typedef struct rt_sess rt_sess;
typedef struct rt_hosted rt_hosted;
typedef struct rt_term rt_term;
typedef struct rt_control rt_control;
typedef struct rt_link rt_link;

enum rt_sess_state { RT_SESS_HELLO = 1, RT_SESS_OPEN, RT_SESS_CLOSING };

struct rt_sess {
    rt_router *r;
    pr_conn *conn; /* NULL: a detached session (rt_sess_detached), frames to it vanish */
    pr_reader rd;
    int state;
    int paused; /* reads stopped: an outgoing connection was full */
    uint64_t fresh_ms; /* paused: loop time of the last unasked pong (rt_sess_keep_fresh) */
    uint64_t num; /* for logs */
    char identity[RT_ID_CAP];
    char imei[65], iccid[65]; /* hardware ids from EDGE_HELLO ("" none) */
    char roles[RT_SEL_CAP];   /* the identity's roles (grants.c): from its newest token, */
    int roles_known;          /* or from the controller (CTL_ROLES), whichever is newer: */
    long long roles_at;       /* the token's iat or the controller's "at" */
    int roles_ctl;            /* the controller told them since its channel opened */
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
    long long token_iat; /* the bind token's issue time (grants.c) */
    rt_sess *sess;
    rt_term *next;
};

/* A link to another router. Links we dial live as long as the peer is in the
 * map and reconnect with backoff; links we accept die with their connection. */
enum rt_link_state { RT_LINK_IDLE = 1, RT_LINK_CONNECTING, RT_LINK_UP, RT_LINK_CLOSING };

struct rt_link {
    rt_router *r;
    pr_conn *conn;
    pr_reader rd;
    int state;
    int dialler;   /* 1: we dial this peer (our id is the smaller) */
    int paused;    /* reads stopped: an outgoing connection was full */
    int doomed;    /* peer left the map: free once closed */
    char peer[RT_ID_CAP];
    char addr[RT_ADDR_CAP];
    uint64_t srtt_us; /* 0: no sample yet */
    uint64_t up_since_ms, last_rx_ms, last_ping_ms, retry_at_ms;
    uint64_t busy_since_ms; /* carrying circuits since (fast heartbeats); 0: idle */
    unsigned backoff_ms;
    rt_end_list ends;
    rt_link *next, *prev;
};

/* Observer of forwarded payload frames (metrics; tests check ciphertext). */
typedef void (*rt_forward_cb)(void *arg, const rt_circuit *c, const pr_frame *f,
                              const uint8_t *raw, size_t raw_len);

struct rt_router {
    uv_loop_t *loop;
    const pr_idfile *id; /* id, name, network, cert, key, CA */
    rt_map map;
    uint64_t rpol_hash; /* our router policies when sessions were last checked (grants.c) */
    rt_circuits circuits;
    pr_tls_ctx *edge_ctx;
    uv_tcp_t edge_tcp;
    int edge_open;
    char edge_addr[64]; /* the bound address, "HOST:PORT" */
    pr_tls_ctx *link_srv_ctx, *link_cli_ctx;
    uv_tcp_t link_tcp;
    int link_open;
    char link_addr[64];
    rt_link *links;
    int links_changed; /* report to the controller at the next tick */
    uint64_t last_report_ms;
    uv_timer_t tick;
    int tick_on;
    uv_timer_t silence; /* fires at the earliest link silence deadline (link.c) */
    int stopping; /* rt_router_close ran: no reconnects, reroutes or per-circuit closes */
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
    uint64_t reroutes, legs_lost, circuits_opened, circuits_closed;
    uint64_t last_upkeep_ms;
    struct rt_failed_link {
        char a[RT_ID_CAP], b[RT_ID_CAP];
        uint64_t until_ms;
    } failed[RT_FAILED_MAX];
    struct rt_metrics *metrics; /* NULL: no --metrics-listen */
    void (*on_event)(void *arg, const char *json); /* circuit events (tests) */
    void *event_arg;
    uint64_t update_ms; /* circuit "update" events at most this often (0: RT_UPDATE_MS) */
    struct rt_enforce *enforce; /* behaviour limits per identity (enforce.h), or NULL */
    uint64_t shaped_until;      /* loop ms when sessions paused for bandwidth resume; 0 none */
    pr_bucket admit; /* new sessions per second (admit.h); admit_on 0: defaults at first use */
    int admit_on;
    uint64_t admit_next_ms; /* the next free retry slot handed to a refused session */
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
/* Starts the router's periodic timer (dial timeouts, links); listeners call it. */
void rt_router_tick_start(rt_router *r);
/* Microseconds of a monotonic clock (link probes). */
uint64_t rt_now_us(void);

/* ---- edge.c ---- */
void rt_edge_on_connection(uv_stream_t *server, int status);
/* Closes a session now (circuits first, then the connection). */
void rt_sess_kill(rt_sess *s, int err, const char *msg);
/* Writes a frame to a session; 0, or a negative code (closing, queue full). */
int rt_sess_send(rt_sess *s, const uint8_t *buf, size_t len);
/* Tells the session hosting terminator t that the router removed it:
 * EDGE_UNBIND (service, terminator, err, msg; proto/PROTOCOL.md). */
void rt_sess_unbound(rt_sess *s, const rt_term *t, int err, const char *msg);
/* Router tick: an edge whose session reads are paused hears an unasked pong
 * every 500 ms, so that it does not take its router for dead. */
void rt_sess_keep_fresh(rt_router *r);
/* A session without a connection, already past TLS as identity (fuzzing and
 * tests drive it with rt_sess_feed); frames it would send are dropped. */
int rt_sess_detached(rt_router *r, const char *identity, rt_sess **out);
/* Feeds bytes as if read from the session's connection. */
void rt_sess_feed(rt_sess *s, const uint8_t *data, size_t len);
/* Frees a detached session (after rt_sess_kill or directly). */
void rt_sess_detached_free(rt_sess *s);
/* Remembers a circuit just closed on s: its late frames are dropped quietly. */
void rt_sess_closed_circuit(rt_sess *s, uint64_t id);
/* Sends EDGE_DIAL for circuit c to the hosting session (fields from f). */
int rt_sess_relay_dial(rt_sess *host, rt_circuit *c, const pr_frame *f);
/* Checks the kx key, signature and certificate of a dial or dial answer. */
int rt_dial_fields(const pr_frame *f, char *cert, size_t cap);
/* A local terminator of the service with an open session, at random. */
rt_term *rt_pick_term(rt_router *r, const char *service_id);
rt_term *rt_term_by_id(rt_router *r, const char *id);

/* ---- forward.c: circuits whatever their ends ---- */
/* Sends raw frame bytes to end side of c. 0: sent; 1: sent, and that
 * connection is now full (pause the source); negative: that end is gone. */
int rt_end_write(rt_router *r, rt_circuit *c, int side, const uint8_t *raw, size_t len);
int rt_end_write_to(rt_router *r, rt_end *e, const uint8_t *raw, size_t len);
/* Could end side take more now? */
int rt_end_writable(const rt_router *r, const rt_circuit *c, int side);
/* Ends a circuit: tells every end except closer_side (-1: both) and frees it. */
void rt_circuit_end(rt_router *r, rt_circuit *c, int closer_side, int err, const char *msg);
/* The same, told by one end or leg (NULL: by the router itself). */
void rt_circuit_end_by(rt_router *r, rt_circuit *c, rt_end *closer, int err, const char *msg);
/* The host side answered a dial: relay the answer towards end 0. */
/* The host side's answer to a dial (EDGE_DIAL_OK or EDGE_DIAL_FAIL, from a
 * session or a link): fails the circuit with the host's reason (refused_msg
 * when it gives none) or completes it. WEFT_EPROTO for a malformed answer. */
int rt_circuit_answer(rt_router *r, rt_circuit *c, const pr_frame *f, const char *refused_msg);
void rt_circuit_dial_ok(rt_router *r, rt_circuit *c, const uint8_t *kx, size_t kx_len,
                        const uint8_t *sig, size_t sig_len, const char *cert, uint64_t rwnd);
/* The host side answered a dial (hosted services call this). */
void rt_edge_dial_ok(rt_router *r, rt_circuit *c, const uint8_t *kx_pk, const uint8_t *sig,
                     size_t sig_len);
/* A payload or ack frame from end from_side; 1 when the source should pause. */
int rt_forward(rt_router *r, rt_circuit *c, int from_side, const pr_frame *f);
/* Ends dials of this router's diallers that waited past their deadline. */
void rt_dial_sweep(rt_router *r);
/* Resumes sessions, links and hosted services paused by backpressure. */
void rt_resume_paused(rt_router *r);

/* ---- link.c ---- */
/* Starts the link listener on addr ("HOST:PORT", port 0 allowed). */
int rt_router_listen_link(rt_router *r, const char *addr);
/* Dials links to the map's routers with a larger id, drops links to routers gone. */
void rt_links_sync(rt_router *r);
/* Heartbeats, dead links, reconnects (every tick). */
void rt_links_tick(rt_router *r);
void rt_links_close(rt_router *r);
int rt_link_send(rt_link *l, const uint8_t *buf, size_t len);
/* The up link to router id, or NULL. */
rt_link *rt_link_to(rt_router *r, const char *id);
/* A link without a connection, up, to router peer (fuzzing drives it with
 * rt_link_feed); frames it would send are dropped. */
int rt_link_detached(rt_router *r, const char *peer, rt_link **out);
void rt_link_feed(rt_link *l, const uint8_t *data, size_t len);
void rt_link_detached_free(rt_link *l);
/* Kills a link now: its circuits end with WEFT_ERESET, then the connection closes. */
void rt_link_kill(rt_link *l, int err, const char *why);

/* ---- mesh.c: circuits across links ---- */
/* Where to send a dial for svc that this router cannot serve itself: the
 * hosting router, or the map terminator at the nearest router, and the least-
 * cost path there over the links known (own measurements and the map's).
 * term is "" for a router-hosted service. Negative with msg for the dialler. */
int rt_mesh_route(rt_router *r, const rt_map_service *svc, rt_path *path, char *term,
                  size_t termcap, char *msg, size_t msgcap);
/* Attaches the first hop as end 1 of c and sends LINK_DIAL along path. */
int rt_mesh_send_dial(rt_router *r, rt_circuit *c, const rt_path *path, const char *term,
                      const pr_frame *f);
/* The edges of the router graph as this router knows them (for rt_path_compute). */
size_t rt_mesh_edges(rt_router *r, rt_path_edge *out, size_t cap);
/* Service-router policies (docs/policies.md): keeps in e[0..n) only the links
 * whose both ends may carry svc (all when svc is NULL or unrestricted); the
 * new count. rt_mesh_edges_for: rt_mesh_edges so filtered, for svc's paths. */
size_t rt_mesh_svc_edges(rt_router *r, const rt_map_service *svc, rt_path_edge *e, size_t n);
size_t rt_mesh_edges_for(rt_router *r, const rt_map_service *svc, rt_path_edge *out, size_t cap);
/* The map's service that c carries (by its dial token's service id, else its name), or NULL. */
const rt_map_service *rt_circuit_service(rt_router *r, const rt_circuit *c);
/* The first router of p that svc may not cross, or NULL when it may cross them all. */
const char *rt_mesh_path_refused(rt_router *r, const rt_map_service *svc, const rt_path *p);
/* The sentence that names the policy keeping svc off router, then what follows. */
#define RT_SVC_DIAL_ELSEWHERE "dial it through one of its routers"
void rt_mesh_refusal(rt_router *r, const rt_map_service *svc, const char *router,
                     const char *then, char *msg, size_t cap);
/* A circuit or set-up frame from a link. Negative: the peer broke the protocol. */
int rt_mesh_on_frame(rt_link *l, const pr_frame *f);

/* ---- reroute.c: legs, failures and moves ---- */
/* "failover" (or anything else), "split", "redundant". */
int rt_mp_mode(const char *s);
const char *rt_mp_name(int mode);
/* Ingress: adds standby (failover) or data (split, redundant) legs up to the mode's count. */
void rt_legs_fill(rt_router *r, rt_circuit *c);
/* Leg k of c is gone; the ingress moves the circuit, the egress waits for it. */
void rt_leg_lost(rt_router *r, rt_circuit *c, int k, const char *why);
/* EDGE_CLOSE arrived on leg e of a circuit with other legs: 1 if the leg was
 * dropped and the circuit waits for the close on the others (it follows each
 * leg's data), 0 if the caller ends the circuit now. */
int rt_leg_closed(rt_router *r, rt_circuit *c, rt_end *e, int err, const char *msg);
/* Link l is down: each circuit over it loses a leg, or (transit) passes LINK_LEG_DOWN on. */
void rt_link_lost(rt_link *l, const char *why);
int rt_mesh_on_reroute(rt_link *l, const pr_frame *f);
/* Passes a set-up frame on to end 1 of c with PR_H_HOP set to next_hop. */
int rt_mesh_pass_on(rt_router *r, rt_circuit *c, const pr_frame *f, uint32_t next_hop);
int rt_mesh_on_leg_down(rt_link *l, const pr_frame *f);
/* Remembers a link reported broken so that paths avoid it for a while. */
void rt_failed_link_add(rt_router *r, const char *a, const char *b);
int rt_failed_link_is(rt_router *r, const char *a, const char *b);
/* Every tick: orphaned circuits; every RT_UPKEEP_MS: costs and smart moves. */
void rt_reroute_tick(rt_router *r);
/* After a map change: legs through routers or links the map says are down,
 * and circuits whose service a service-router policy keeps off a router of
 * their path (rt_legs_policy). */
void rt_legs_check_map(rt_router *r);
/* An ingress (or local) circuit whose path crosses a router its service may
 * not use moves to an allowed path without losing a byte, or ends with
 * EDENIED when none is left. 1 when it moved or ended (c may be gone). */
int rt_legs_policy(rt_router *r, rt_circuit *c);
/* A circuit just opened or resumed here: rt_legs_policy, then rt_legs_fill. */
void rt_legs_open(rt_router *r, rt_circuit *c);
/* The active path's cost (sum of link RTTs) for events and metrics; 0 when local. */
uint64_t rt_circuit_rtt(rt_router *r, rt_circuit *c);

/* ---- resume.c: re-homing live circuits (EDGE_RESUME) ---- */
/* EDGE_RESUME from an edge whose router died. Negative: protocol violation. */
int rt_resume_on_edge(rt_sess *s, const pr_frame *f);
/* EDGE_RESUME_OK / _FAIL from the far edge at the anchor router. */
int rt_resume_on_answer(rt_sess *s, const pr_frame *f);
/* LINK_RESUME from a link (transit or anchor). */
int rt_resume_on_link(rt_link *l, const pr_frame *f);
/* EDGE_RESUME_OK / _FAIL coming back over a link. */
int rt_resume_on_link_answer(rt_link *l, const pr_frame *f);

/* ---- metrics.c ---- */
/* Serves GET /metrics (Prometheus text) on addr; opt-in. */
int rt_metrics_listen(rt_router *r, const char *addr);
void rt_metrics_close(rt_router *r);
/* The bound "HOST:PORT", or NULL. */
const char *rt_metrics_addr(const rt_router *r);
/* The metrics text into buf; its length, or a negative code when cap is too small. */
int rt_metrics_render(rt_router *r, char *buf, size_t cap);

/* ---- hosted.c ---- */
/* The dial of f (from the dialler with identity dialler_identity) targets service svc hosted here. On
 * error err holds the reason for the dialler and the caller ends the circuit. */
int rt_hosted_dial(rt_router *r, rt_circuit *c, const rt_map_service *svc,
                   const char *dialler_identity, const pr_frame *f, char *err, size_t errcap);
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
    const char *data_dir; /* events waiting for the controller are kept here; NULL: memory */
} rt_control_cfg;

int rt_control_start(rt_router *r, const rt_control_cfg *cfg);
void rt_control_stop(rt_router *r);
void rt_control_term_add(rt_router *r, const rt_term *t);
void rt_control_term_remove(rt_router *r, const rt_term *t);
/* CTL_CIRCUIT_EVENT ("open", "close", "reroute"); docs/dataplane.md "Circuit events". */
void rt_control_circuit_event(rt_router *r, rt_circuit *c, const char *event);
/* Sends a security event (CTL_EVENT, docs/policies.md); kept (evqueue.h)
 * until the controller acknowledges it, sent when the channel is back. */
void rt_control_event(rt_router *r, const json_t *ev);
/* Events not yet acknowledged (at most RT_EVENT_QUEUE_CAP, the newest
 * dropped when full): dropped so far, and waiting now. */
#define RT_EVENT_QUEUE_CAP 10000
uint64_t rt_control_events_dropped(const rt_router *r);
size_t rt_control_events_queued(const rt_router *r);
/* Asks for the roles of the identities named by the keys of ids (CTL_ROLES_ASK). */
void rt_control_roles_ask(rt_router *r, const json_t *ids);
/* Sends CTL_LINK_REPORT now (docs/dataplane.md "Mesh"). */
void rt_control_link_report(rt_router *r);
/* Blocking, start-up only: asks GET /v1/version for the control address. */
int rt_control_discover(const pr_idfile *id, char *out, size_t cap, char *err, size_t errcap);

#endif
