/* Tier-2 credentials on the device (docs/bootstrap.md): one blocking call
 * that fetches GET /v1/edge/credentials with the identity's certificate,
 * writes each file atomically 0600 under DIR/<credential>/<file>
 * (directories 0700) and removes what the controller no longer lists. Used
 * by `weft-edge credentials` directly and by `weft-edge run
 * --credentials-dir` on a worker thread at start and every refresh. */
#ifndef WEFT_EDGE_CREDS_H
#define WEFT_EDGE_CREDS_H

#include <limits.h>
#include <stddef.h>
#include <uv.h>

#define EDGE_CRED_NAME_MAX 129

enum edge_cred_state {
    EDGE_CRED_WRITTEN = 1, /* new or changed */
    EDGE_CRED_SAME,        /* already there with these bytes */
    EDGE_CRED_REMOVED      /* no longer listed: deleted from DIR */
};

/* One file (file[0] == '\0': a whole credential directory removed). */
typedef struct {
    char cred[EDGE_CRED_NAME_MAX];
    char file[EDGE_CRED_NAME_MAX];
    char path[PATH_MAX];
    int state;
} edge_cred_entry;

typedef struct {
    edge_cred_entry *v;
    size_t n, cap;
} edge_creds_result;

/* Blocking (HTTPS): worker threads only in the agent. 0, or a negative
 * WEFT_E* code with err set; on error nothing is removed. */
int edge_creds_sync(const char *idpath, const char *dir, int timeout_ms, edge_creds_result *res,
                    char *err, size_t errlen);
void edge_creds_result_free(edge_creds_result *res);

/* The agent's side: a sync at start and every period_s seconds, each on a
 * worker thread; one log line per credential (name and path, never the
 * contents). NULL when out of memory. */
typedef struct edge_creds_runner edge_creds_runner;
edge_creds_runner *edge_creds_start(uv_loop_t *loop, const char *idpath, const char *dir,
                                    unsigned period_s);
/* Stops the timer; a sync in flight finishes (or is cancelled) and frees it. */
void edge_creds_stop(edge_creds_runner *r);

#endif
