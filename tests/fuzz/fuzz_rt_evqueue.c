/* Fuzzes the router's readers of pending security events (router/evqueue.c).
 * The input is the file DATA_DIR/events-pending.jsonl as a crash (or a disk
 * error, or a hand) may leave it: parsed (rt_evq_parse), then loaded by a
 * queue as a starting router does (rt_evq_new, which writes a damaged file
 * again), its events sent; the same input is then a CTL_EVENT_ACK body
 * (rt_evq_ack). The file lives in /dev/shm when there is one (syncs are
 * free there).
 *
 * Checks, beyond "no crash, no read out of bounds":
 *  - every line handed over lies inside the input, is one line, and its id
 *    is a valid event id that the line's JSON carries;
 *  - the bytes said to be whole end at a line's end (or at the input's), and
 *    a cut last line is only ever after them;
 *  - the queue loads exactly the events the parser found (up to its size),
 *    and the file it leaves parses with no bad line and no cut;
 *  - an acknowledgement removes only events in flight, a refused one none. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "proto/log.h"
#include "router/evqueue.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QCAP 64

typedef struct {
    const char *buf;
    size_t len;
    size_t lines;
} walk;

static int on_line(void *arg, const char *text, size_t len, const char *eid)
{
    walk *w = arg;
    json_t *j;

    if (text < w->buf || text + len > w->buf + w->len || len == 0 || len > RT_EVQ_LINE_MAX ||
        memchr(text, '\n', len) != NULL || !rt_evq_eid_valid(eid))
        abort();
    j = json_loadb(text, len, 0, NULL);
    if (j == NULL || strcmp(json_string_value(json_object_get(j, "eid")), eid) != 0)
        abort();
    json_decref(j);
    w->lines++;
    return 0;
}

static size_t check_parse(const char *buf, size_t size, size_t want_bad)
{
    walk w = {buf, size, 0};
    size_t bad, whole;
    int cut;

    whole = rt_evq_parse(buf, size, on_line, &w, &bad, &cut);
    if (whole > size || (whole > 0 && buf[whole - 1] != '\n' && whole != size) ||
        (cut && whole == size) || (want_bad == 0 && (bad || cut)))
        abort();
    return w.lines;
}

static void spit(const char *path, const uint8_t *data, size_t size)
{
    FILE *fp = fopen(path, "wb");

    if (fp == NULL || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0)
        abort();
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = malloc(RT_EVQ_FILE_MAX + 1);

    if (fp == NULL || buf == NULL)
        abort();
    *len = fread(buf, 1, RT_EVQ_FILE_MAX, fp);
    fclose(fp);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], path[128];
    static uv_loop_t loop;
    size_t lines, before, len;
    rt_evq *q;
    char *left;
    int rc;

    if (dir[0] == '\0') {
        pr_log_init("router", PR_LOG_ERROR + 1);
        snprintf(dir, sizeof(dir), "%s/weft-fuzz-evq.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (mkdtemp(dir) == NULL || uv_loop_init(&loop) < 0)
            abort();
        snprintf(path, sizeof(path), "%s/%s", dir, RT_EVQ_FILE);
    }
    lines = check_parse((const char *)data, size, 1);
    spit(path, data, size);
    if (rt_evq_new(&loop, dir, QCAP, &q) < 0 || rt_evq_len(q) != (lines < QCAP ? lines : QCAP))
        abort();
    for (const char *t; (t = rt_evq_next(q, &len)) != NULL;)
        rt_evq_sent(q);
    before = rt_evq_len(q);
    rc = rt_evq_ack(q, data, size);
    if ((rc == 0 && rt_evq_len(q) >= before) || (rc < 0 && rt_evq_len(q) != before) ||
        (rc < 0 && rc != WEFT_ENOTFOUND && rc != WEFT_EPROTO))
        abort();
    rt_evq_close(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    left = slurp(path, &len);
    if (check_parse(left, len, 0) > before)
        abort();
    free(left);
    return 0;
}
