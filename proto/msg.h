/* Message types and header keys of the weft protocol (proto/PROTOCOL.md).
 * Types are PR_TYPE(family, n); header keys are registered here and nowhere
 * else so that two messages never disagree on what a key means. */
#ifndef PR_MSG_H
#define PR_MSG_H

#include "proto/frame.h"

/* ---- header keys ---- */
enum pr_hkey {
    /* 0x0001-0x00ff: common to every family */
    PR_H_REQ_ID = 0x0001,   /* u32: request id, echoed in the reply */
    PR_H_ERR = 0x0002,      /* u32: error code (negated WEFT_E*, i.e. positive on the wire) */
    PR_H_ERR_MSG = 0x0003,  /* str: human-readable reason, says what to do */
    PR_H_VERSION = 0x0004,  /* str: software version of the sender */

    /* 0x0100-0x01ff: circuits (edge, link and payload families) */
    PR_H_CIRCUIT = 0x0100,  /* u64: circuit id, unique in the network, chosen by the ingress router */
    PR_H_SEQ = 0x0101,      /* u64: payload sequence number per direction, from 0 */
    PR_H_TOKEN = 0x0102,    /* str: service token (JWT, EdDSA, signed by the controller) */
    PR_H_SERVICE = 0x0103,  /* str: service name */
    PR_H_KX_PK = 0x0104,    /* bytes(32): X25519 public key (crypto_kx) for end-to-end keys */
    PR_H_KX_SIG = 0x0105,   /* bytes: signature over the kx key by the sender's identity key */
    PR_H_PEER_CERT = 0x0106,/* str: the sender's identity certificate, PEM */
    PR_H_WINDOW = 0x0107,   /* u64: flow-control credit in bytes (cumulative bytes consumed) */
    PR_H_TERMINATOR = 0x0108,/* str: terminator id */
    PR_H_PROTO = 0x0109,    /* str: "tcp" or "udp" */
    PR_H_HW_IMEI = 0x010a,  /* str: device IMEI reported by the edge */
    PR_H_HW_ICCID = 0x010b, /* str: SIM ICCID reported by the edge */
    PR_H_PATH = 0x010c,     /* str: source route, router ids joined by ',' (ingress first) */
    PR_H_HOP = 0x010d,      /* u32: index in PR_H_PATH of the router receiving the frame */
    PR_H_IDENTITY = 0x010e, /* str: identity id of the dialler (checked by the ingress router) */
    PR_H_RWND = 0x010f,     /* u64: the sender's per-circuit receive window in bytes (EDGE_DIAL,
                               EDGE_DIAL_OK); absent = 512 KiB */
    PR_H_ACK_SEQ = 0x0110,  /* u64: highest payload seq received in order (ACK_WINDOW) */

    /* 0x0200-0x02ff: control channel (router <-> controller) */
    PR_H_MAP_VERSION = 0x0200, /* u64: network map version */
    PR_H_ROUTER_ID = 0x0201,   /* str */

    /* 0x0300-0x03ff: links (router <-> router) */
    PR_H_TIMESTAMP = 0x0300,   /* u64: sender's monotonic clock in microseconds, echoed in a pong */
};

/* Payload frame flags. */
enum pr_payload_flags {
    PR_PF_FIN = 0x0001, /* sender half-closed after this frame (body may be empty) */
    PR_PF_RST = 0x0002, /* abort: the circuit is torn down with PR_H_ERR */
};

/* ---- edge family: edge <-> router ---- */
#define PR_EDGE_HELLO PR_TYPE(PR_FAM_EDGE, 0x01)    /* edge -> router: version, hw ids */
#define PR_EDGE_HELLO_OK PR_TYPE(PR_FAM_EDGE, 0x02) /* router -> edge */
#define PR_EDGE_BIND PR_TYPE(PR_FAM_EDGE, 0x03)     /* edge -> router: token, service */
#define PR_EDGE_BIND_OK PR_TYPE(PR_FAM_EDGE, 0x04)  /* router -> edge: terminator */
#define PR_EDGE_UNBIND PR_TYPE(PR_FAM_EDGE, 0x05)
#define PR_EDGE_DIAL PR_TYPE(PR_FAM_EDGE, 0x06)     /* edge -> router -> hosting edge */
#define PR_EDGE_DIAL_OK PR_TYPE(PR_FAM_EDGE, 0x07)  /* hosting edge -> router -> dialler */
#define PR_EDGE_DIAL_FAIL PR_TYPE(PR_FAM_EDGE, 0x08)
#define PR_EDGE_CLOSE PR_TYPE(PR_FAM_EDGE, 0x09)    /* either way: circuit gone, with PR_H_ERR */
#define PR_EDGE_ERROR PR_TYPE(PR_FAM_EDGE, 0x0a)    /* router -> edge: request refused */
#define PR_EDGE_PING PR_TYPE(PR_FAM_EDGE, 0x0b)
#define PR_EDGE_PONG PR_TYPE(PR_FAM_EDGE, 0x0c)

/* ---- payload and acknowledgement families ---- */
#define PR_PAYLOAD_DATA PR_TYPE(PR_FAM_PAYLOAD, 0x01) /* circuit, seq, flags; body = ciphertext */
#define PR_ACK_WINDOW PR_TYPE(PR_FAM_ACK, 0x01)       /* circuit, window: credit for the sender */

/* ---- control family: router <-> controller ---- */
#define PR_CTL_HELLO PR_TYPE(PR_FAM_CONTROL, 0x01)       /* router -> controller */
#define PR_CTL_MAP_FULL PR_TYPE(PR_FAM_CONTROL, 0x02)    /* controller -> router: JSON body */
#define PR_CTL_MAP_DELTA PR_TYPE(PR_FAM_CONTROL, 0x03)   /* controller -> router: JSON body */
#define PR_CTL_TERM_ADD PR_TYPE(PR_FAM_CONTROL, 0x04)    /* router -> controller: JSON body */
#define PR_CTL_TERM_REMOVE PR_TYPE(PR_FAM_CONTROL, 0x05)
#define PR_CTL_CIRCUIT_EVENT PR_TYPE(PR_FAM_CONTROL, 0x06)
#define PR_CTL_PING PR_TYPE(PR_FAM_CONTROL, 0x07)
#define PR_CTL_PONG PR_TYPE(PR_FAM_CONTROL, 0x08)
#define PR_CTL_LINK_REPORT PR_TYPE(PR_FAM_CONTROL, 0x09) /* router -> controller: JSON body */
#define PR_CTL_EVENT PR_TYPE(PR_FAM_CONTROL, 0x0a)       /* router -> controller: security event
                                                            (JSON; docs/policies.md) */
#define PR_CTL_EVENT_ACK PR_TYPE(PR_FAM_CONTROL, 0x12)   /* controller -> router: that event is
                                                            stored (JSON {"eid"}) */
#define PR_CTL_BASELINE PR_TYPE(PR_FAM_CONTROL, 0x0b)     /* router -> controller: anomaly
                                                            baseline increments (JSON batch;
                                                            docs/policies.md) */
#define PR_CTL_BASELINE_ACK PR_TYPE(PR_FAM_CONTROL, 0x0c) /* controller -> router: the batch
                                                            is stored (JSON {"boot","seq"}) */
#define PR_CTL_ROLES PR_TYPE(PR_FAM_CONTROL, 0x0d)       /* controller -> router: identities'
                                                            roles (JSON {"at","roles"};
                                                            docs/policies.md) */
#define PR_CTL_ROLES_ASK PR_TYPE(PR_FAM_CONTROL, 0x0e)   /* router -> controller: the roles of
                                                            these identities, please (JSON
                                                            {"identities"}) */
#define PR_CTL_USAGE PR_TYPE(PR_FAM_CONTROL, 0x0f)       /* router -> controller: identities'
                                                            usage today, here (JSON batch;
                                                            docs/policies.md) */
#define PR_CTL_USAGE_NET PR_TYPE(PR_FAM_CONTROL, 0x10)   /* controller -> router: their usage
                                                            through the other routers (JSON) */
#define PR_CTL_BASELINE_RESET PR_TYPE(PR_FAM_CONTROL, 0x11) /* controller -> router: forget
                                                               these identities' baselines
                                                               (JSON {"identities"}) */

/* ---- link family: router <-> router ----
 * Circuit frames cross links unchanged: EDGE_DIAL_OK, EDGE_DIAL_FAIL and
 * EDGE_CLOSE travel back or forth hop by hop, PAYLOAD_DATA and ACK_WINDOW
 * byte for byte. Only the set-up and the heartbeat are link messages. */
#define PR_LINK_PING PR_TYPE(PR_FAM_LINK, 0x01) /* timestamp; answered at once */
#define PR_LINK_PONG PR_TYPE(PR_FAM_LINK, 0x02) /* the ping's timestamp */
#define PR_LINK_DIAL PR_TYPE(PR_FAM_LINK, 0x03) /* circuit, path, hop, identity, terminator,
                                                   service, kx key, signature, certificate */

/* ---- mesh: multipath and rerouting (docs/dataplane.md "Mesh") ---- */
enum pr_hkey_mesh {
    PR_H_MULTIPATH = 0x0111,   /* str: "failover", "split" or "redundant" (LINK_DIAL, LINK_REROUTE) */
    PR_H_REROUTE = 0x0112,     /* u32: PR_RR_* flags of a LINK_REROUTE */
    PR_H_FAILED_LINK = 0x0113, /* str: "a,b", the link whose loss broke a leg (LINK_LEG_DOWN) */
};

/* LINK_REROUTE flags. */
enum pr_reroute_flags {
    PR_RR_ACTIVE = 0x0001, /* the leg becomes the active one; the egress router has the host
                              edge retransmit (EDGE_RETRANSMIT). Without it: a standby leg. */
};

#define PR_LINK_REROUTE PR_TYPE(PR_FAM_LINK, 0x04)  /* circuit, path, hop, multipath, reroute:
                                                       another leg for an open circuit */
#define PR_LINK_LEG_DOWN PR_TYPE(PR_FAM_LINK, 0x05) /* circuit, failed link, err: this leg of the
                                                       circuit is gone; drop it, pass it on */
#define PR_EDGE_RETRANSMIT PR_TYPE(PR_FAM_EDGE, 0x0d) /* router -> edge: circuit; send again
                                                         every payload frame not yet acked */

/* ---- re-homing live circuits (docs/dataplane.md "Re-homing live circuits") ---- */
enum pr_hkey_resume {
    PR_H_EDGE_CAPS = 0x0114, /* u32: PR_CAP_* flags the router supports (EDGE_HELLO_OK) */
    PR_H_NONCE = 0x0115,     /* bytes(16): EDGE_RESUME nonce, echoed in EDGE_RESUME_OK */
    PR_H_MAC = 0x0116,       /* bytes(32): proof of the circuit's resume key (EDGE_RESUME, _OK) */
};

/* EDGE_HELLO_OK capabilities. */
enum pr_edge_caps {
    PR_CAP_RESUME = 0x0001, /* the router carries EDGE_RESUME to a circuit's anchor router */
};

#define PR_EDGE_RESUME PR_TYPE(PR_FAM_EDGE, 0x0e)      /* edge -> new router -> anchor -> far edge:
                                                          req, circuit, router id, ack seq, nonce,
                                                          mac */
#define PR_EDGE_RESUME_OK PR_TYPE(PR_FAM_EDGE, 0x0f)   /* far edge -> anchor -> resuming edge:
                                                          circuit, ack seq, nonce, mac (+ req) */
#define PR_EDGE_RESUME_FAIL PR_TYPE(PR_FAM_EDGE, 0x10) /* circuit, err, msg (+ req) */


/* ---- maps in parts (docs/dataplane.md "Maps larger than a frame") ---- */
#define PR_CTL_MAP_F_MORE 0x0001 /* CTL_MAP_FULL / CTL_MAP_DELTA flag: more parts follow (as
                                    CTL_MAP_F_MORE in controller/control.h) */

/* ---- re-homing on routers (docs/dataplane.md "Re-homing live circuits") ---- */
enum pr_hkey_resume_link {
    PR_H_RESUME_ROLE = 0x0117, /* u32: 1 the dialler, 2 the host is resuming (EDGE_RESUME_OK as
                                  the anchor router relays it over links) */
};

#define PR_LINK_RESUME PR_TYPE(PR_FAM_LINK, 0x06) /* circuit, path (new router first, anchor
                                                     last), hop, identity, ack seq, nonce, mac:
                                                     an EDGE_RESUME on its way to the anchor */

/* ---- admission control (docs/policies.md "Admission control") ---- */
enum pr_hkey_admit {
    PR_H_RETRY_MS = 0x0118, /* u32: EDGE_ERROR refusing a new session for load: reconnect no
                               sooner than this many milliseconds (plus jitter) */
};

#endif
