/* The router's security events waiting for the controller (docs/policies.md
 * "Events"): a queue in memory, in order, each event kept until the
 * controller says it stored it (CTL_EVENT_ACK), and written ahead to
 * DATA_DIR/events-pending.jsonl (one JSON text a line) so that a router
 * restarted or killed while the controller is away sends them when the
 * channel is back. The file is truncated once every event in it is
 * acknowledged; its writes are synced at most every RT_EVQ_SYNC_MS and at
 * stop. Full (RT_EVENT_QUEUE_CAP events or RT_EVQ_FILE_MAX bytes), the queue
 * keeps its oldest events and drops new ones, counted and warned. */
#ifndef WEFT_ROUTER_EVQUEUE_H
#define WEFT_ROUTER_EVQUEUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RT_EVQ_FILE     "events-pending.jsonl"
#define RT_EVQ_LINE_MAX 16384       /* one event's JSON text, newline excluded */
#define RT_EVQ_FILE_MAX (16u << 20) /* bytes of the file */
#define RT_EVQ_SYNC_MS  200         /* fdatasync at most this often */
#define RT_EVQ_EID_CAP  64          /* an event id ("eid"), NUL included */

typedef struct rt_evq rt_evq;

/* A queue holding at most cap events, its file in dir (NULL: memory only).
 * Events the file holds from an earlier run are queued, in order; bad lines
 * and a line cut short are skipped with a warning and the file rewritten. */
int rt_evq_new(uv_loop_t *loop, const char *dir, size_t cap, rt_evq **out);
/* Syncs the file and closes it; the queue is freed once its timer closed. */
void rt_evq_close(rt_evq *q);

/* Queues a copy of ev with "eid" (unique: this run's random id and a
 * sequence number) and "at" (Unix time now), written to the file.
 * WEFT_ENOBUFS: the queue or the file is full, the event is dropped. */
int rt_evq_add(rt_evq *q, const json_t *ev);
/* The oldest event not yet sent on the open channel (NULL: none), and
 * rt_evq_sent() once it went out. rt_evq_rewind(): the channel closed, what
 * was sent and not acknowledged goes out again on the next one. */
const char *rt_evq_next(rt_evq *q, size_t *len);
void rt_evq_sent(rt_evq *q);
void rt_evq_rewind(rt_evq *q);
/* CTL_EVENT_ACK's body, {"eid": "..."}: that event is stored; events are
 * removed oldest first once acknowledged. WEFT_ENOTFOUND: no such event in
 * flight; WEFT_EPROTO: a body that is not an acknowledgement. */
int rt_evq_ack(rt_evq *q, const uint8_t *body, size_t len);

size_t rt_evq_len(const rt_evq *q);    /* events not yet acknowledged */
size_t rt_evq_unsent(const rt_evq *q); /* of those, not yet sent on this channel */
uint64_t rt_evq_dropped(const rt_evq *q);

/* The file's lines (buf, len) in order: cb gets each line that is an event
 * (a JSON object with a string "kind" and a valid "eid"), with its eid.
 * Returns the bytes up to the end of the last whole line (a last line without
 * its newline counts when it is a whole event); *bad counts the lines skipped,
 * *cut is 1 when the buffer ends in a line cut short. cb returning < 0 stops. */
typedef int (*rt_evq_line_cb)(void *arg, const char *text, size_t len, const char *eid);
size_t rt_evq_parse(const char *buf, size_t len, rt_evq_line_cb cb, void *arg, size_t *bad,
                    int *cut);
/* An event id as sent and stored: 1 to 63 characters of [A-Za-z0-9._:-]. */
int rt_evq_eid_valid(const char *eid);

#endif
