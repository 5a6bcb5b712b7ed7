/* weft-edge run: the device agent. It learns the identity's services from the
 * controller and, on one libuv loop with libweft:
 *   - for a service it may dial, listens on the service's intercept address
 *     and carries every local TCP connection / UDP flow over a circuit;
 *   - for a service it may bind, hosts it and connects every incoming circuit
 *     to the service's host address.
 * Files: agent.c (loop, signals, services coming and going, certificate
 * renewal), services.c (the services libweft reads from the session data), pipe_tcp.c (a TCP connection spliced to a circuit),
 * intercept_tcp.c / host_tcp.c (where those come from), udp_frame.c,
 * flow_udp.c (a UDP flow over a circuit), intercept_udp.c / host_udp.c,
 * memory.c (the heap given back after circuits close). */
#ifndef WEFT_EDGE_AGENT_H
#define WEFT_EDGE_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "weft/weft.h"

#define EDGE_NAME_MAX      128
#define EDGE_ADDR_MAX      300
/* Backpressure: a local socket stops being read while its circuit holds this
 * much unsent data (half the default 512 KiB window, so that one more read of
 * EDGE_READ_MAX always fits libweft's send ring), and a circuit stops being
 * read while the local socket's write queue holds this much. */
#define EDGE_HIGH_WATER    (256 * 1024)
#define EDGE_LOW_WATER     (64 * 1024)
#define EDGE_READ_MAX      (64 * 1024)
/* libweft holds at most 64 write requests per circuit; keep a margin. */
#define EDGE_WRITES_MAX    48
#define EDGE_UDP_IDLE_MS   60000
#define EDGE_UDP_FLOWS_MAX 1024
#define EDGE_TICK_MS       5000
#define EDGE_RENEW_MS      (3600 * 1000) /* renewal is checked at start and this often */
#define EDGE_RENEW_TIMEOUT_MS 20000
/* The heap (memory.c): blocks this large are mapped on their own; free heap
 * pages go back this long after EDGE_TRIM_CLOSES circuits closed, or the last. */
#define EDGE_MMAP_THRESHOLD (128 * 1024)
#define EDGE_TRIM_CLOSES   32
#define EDGE_TRIM_DELAY_MS 500

enum edge_proto { EDGE_TCP = 1, EDGE_UDP };

/* "tcp:HOST:PORT" / "udp:HOST:PORT", resolved. */
typedef struct {
    int proto;
    char text[EDGE_ADDR_MAX]; /* as configured, for logs */
    struct sockaddr_storage sa;
    int resolved;
} edge_ep;

/* One service of the session data, as far as this agent cares. */
typedef struct {
    char name[EDGE_NAME_MAX];
    char intercept[EDGE_ADDR_MAX];
    char host[EDGE_ADDR_MAX];
    int dial, bind;
    edge_ep icpt_ep, host_ep; /* resolved on the worker thread */
} edge_svc;

typedef struct edge_agent edge_agent;
typedef struct edge_service edge_service;
typedef struct edge_pipe edge_pipe;
typedef struct edge_flow edge_flow;

/* A service running here: its intercept listener and/or its binding. */
struct edge_service {
    edge_service *next;
    edge_agent *a;
    edge_svc cfg;
    union {
        uv_tcp_t tcp;
        uv_udp_t udp;
    } lh;
    int lh_open;   /* lh initialised and not yet closed */
    int listening; /* intercept listener accepting */
    int hosting;   /* weft_listen in place */
    int removed;
    int icpt_err, host_err; /* last start failure, logged once */
    int refs;               /* lh and UDP flows on it: freed at 0 once removed */
    size_t nflows;
};

struct edge_agent {
    uv_loop_t *loop;
    weft_ctx *ctx;
    const char *identity;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t renew, tick;
    uv_timer_t trim;   /* memory.c: free heap pages back to the system */
    unsigned closed;   /* circuits closed since the last trim */
    uv_work_t work;
    void *job;         /* address resolution in flight */
    edge_svc *pending; /* a newer service list waiting for it */
    size_t npending;
    uv_work_t renew_work;
    void *renew_job; /* renewal in flight */
    edge_service *services;
    edge_pipe *pipes;
    edge_flow *flows;
    struct edge_creds_runner *creds; /* --credentials-dir, or NULL */
    int stopping;
    uint8_t rbuf[EDGE_READ_MAX]; /* every local read lands here; weft_write copies */
};

typedef struct {
    const char *identity;
    const char *imei, *iccid;
    unsigned refresh_s; /* longest time between session-data refreshes; 0 = 60 */
    const char *creds_dir; /* tier-2 credentials kept here at each refresh, or NULL */
    /* Router liveness, as weft_options (0 = libweft's default). */
    unsigned keepalive_ms, idle_dead_ms, dead_after_ms, dead_max_ms;
} edge_agent_cfg;

/* Runs until SIGINT/SIGTERM: 0 then, a negative WEFT_E* code if it cannot start. */
int edge_agent_run(const edge_agent_cfg *cfg);

/* services.c */
/* Parses "tcp:HOST:PORT" / "udp:HOST:PORT" (no prefix means tcp) without resolving. */
int edge_ep_parse(const char *s, edge_ep *ep);
/* Resolves ep->text (blocking: worker thread only). */
int edge_ep_resolve(edge_ep *ep);
/* libweft's view of the services into records (*out: n + 1 zeroed, free()d
 * by the caller); a service whose name or addresses do not fit is left out. */
int edge_svcs_from(const weft_service *v, size_t n, edge_svc **out, size_t *nout);
/* Follows libweft's services: each change is resolved, then applied. */
void edge_svcs_watch(edge_agent *a);
/* agent.c: new services (takes svcs). */
void edge_services_update(edge_agent *a, edge_svc *svcs, size_t n);
void edge_service_unref(edge_service *s);
/* What to tell the operator about a failed dial (pipe_tcp.c, flow_udp.c). */
const char *edge_dial_hint(int status);

/* memory.c: the agent's malloc settings (before anything is allocated), and
 * free heap pages handed back after circuits close. */
void edge_mem_setup(void);
void edge_mem_start(edge_agent *a);
void edge_mem_stop(edge_agent *a);
/* A circuit's pipe or flow was freed. */
void edge_mem_closed(edge_agent *a);

/* pipe_tcp.c: a local TCP connection spliced to a circuit. */
enum edge_side { EDGE_SIDE_INTERCEPT = 1, EDGE_SIDE_HOST };
/* An accepted local connection on an intercept: dials svc->cfg.name. */
int edge_pipe_intercept(edge_service *svc, uv_stream_t *server);
/* An incoming circuit for a hosted service: connects to svc->cfg.host_ep. */
void edge_pipe_host(edge_service *svc, weft_conn *conn);
void edge_pipe_stop(edge_pipe *p);

/* intercept_tcp.c / intercept_udp.c / host_tcp.c (listen side) */
int edge_intercept_tcp_start(edge_service *s);
int edge_intercept_udp_start(edge_service *s);
void edge_intercept_stop(edge_service *s);
int edge_host_start(edge_service *s);
void edge_host_stop(edge_service *s);

/* flow_udp.c: a UDP flow over a circuit. */
/* A datagram from src on the intercept socket of s. */
void edge_flow_intercept_recv(edge_service *s, const struct sockaddr *src, const uint8_t *p,
                              size_t n);
/* An incoming circuit for a hosted UDP service. */
void edge_flow_host(edge_service *svc, weft_conn *conn);
void edge_flow_stop(edge_flow *f, const char *result);
void edge_flows_sweep(edge_agent *a, uint64_t now);
void edge_flows_stop_service(edge_service *s);

#endif
