/* weft_relay: a TCP relay for fault injection on a link between two routers.
 * Router A dials the relay's listen address, the relay dials router B's
 * link_listen and copies bytes both ways. A test drives it through a line
 * protocol on a loopback control port:
 *
 *   delay MS [JITTER] [up|down|both]  each chunk leaves MS +/- JITTER ms after it
 *                                     arrived (order kept, as TCP would)
 *   rate BPS [up|down|both]           token bucket, bytes per second (0: off)
 *   stall MS                          forward nothing for MS ms (loss-like: the
 *                                     senders' buffers fill, nothing is dropped)
 *   blackhole on|off                  forward nothing until off; connections stay
 *                                     open and new ones are accepted but not
 *                                     connected onwards: a cut cable, to TCP
 *   reset                             RST both sides of every connection
 *   stats                             counters on one line
 *
 * Each command is answered with one line, "ok ..." or "err ...". "up" is the
 * direction from the accepting side (the dialler) to the upstream.
 *
 *   weft_relay --listen HOST:PORT --to HOST:PORT --ctl HOST:PORT [--buffer BYTES]
 *              [--sockbuf BYTES]
 *       prints "relay listen=ADDR to=ADDR ctl=ADDR" once it listens (port 0
 *       picks one); SIGTERM or SIGINT stop it.
 *   weft_relay ctl HOST:PORT COMMAND...
 *       sends one command, prints the answer; exit 0 on "ok".
 *
 * Buffers are small, as on a real path: a direction holds at most --buffer
 * bytes (default 256 KiB, the queue of a router port) read and not yet
 * written, at most WQ_MAX of them handed to the kernel, and every socket has
 * SO_SNDBUF / SO_RCVBUF of --sockbuf bytes (default 64 KiB). Past the queue
 * the relay stops reading that side, so backpressure reaches the sender as it
 * would through a slow link, and a heartbeat behind a full queue waits
 * --buffer / rate, not seconds. Large buffers here made a rate-limited link
 * look like one of several seconds' RTT (bufferbloat), which the routers'
 * costs and silence detection rightly read as a bad link.
 *
 * Ends travel like TCP's: an EOF leaves after the bytes queued before it (a
 * FIN is in sequence); a reset or a failed write resets the other side at
 * once, dropping the queue (an RST is not). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define READ_SIZE (64 * 1024)
#define WRITE_MAX (16 * 1024) /* piece size under a rate limit: smooth pacing */
#define WQ_MAX    (64 * 1024) /* handed to the kernel and not yet written */
#define SOCKBUF   (64 * 1024)
#define LINE_MAX_ 512
#define UP        0
#define DOWN      1

typedef struct chunk {
    struct chunk *next;
    uint64_t release_ms; /* uv_now() from which it may leave */
    size_t len, off;     /* bytes held; bytes already handed to writes */
    unsigned inflight;   /* writes of this chunk not completed */
    char data[];
} chunk;

typedef struct relay relay;
typedef struct pair pair;

typedef struct {
    pair *p;
    int dir;
    chunk *head, *tail;
    size_t queued; /* read and not yet written out: the bounded budget */
    int reading, eof, err, shut, shut_done;
    uint64_t last_release;
    double tokens;
    uint64_t tok_ns;
    uv_timer_t timer;
    uv_shutdown_t sreq;
} flow;

struct pair {
    relay *r;
    pair *next, *prev;
    uv_tcp_t s[2]; /* 0: accepted side, 1: upstream */
    uv_connect_t creq;
    flow f[2];   /* f[UP] reads s[0] writes s[1]; f[DOWN] the reverse */
    int pending; /* accepted during a blackhole, not connected onwards yet */
    int closing, open_handles;
};

typedef struct {
    uv_write_t req;
    chunk *c;
    flow *f;
    size_t len;
} wreq;

typedef struct {
    uv_tcp_t h;
    relay *r;
    char line[LINE_MAX_];
    size_t len;
} ctlconn;

struct relay {
    uv_loop_t *loop;
    uv_tcp_t lsn, ctl;
    uv_signal_t sigterm, sigint;
    struct sockaddr_storage to;
    size_t cap, sockbuf;
    unsigned delay_ms[2], jitter_ms[2];
    uint64_t rate[2];
    uint64_t stall_until;
    int blackhole;
    pair *pairs;
    uint64_t accepted, resets, bytes[2];
};

static void pump(flow *f);
static void start_reading(flow *f);
static void pair_close(pair *p, int reset);

/* ---------------------------------------------------------------- addresses */

static int parse_addr(const char *s, struct sockaddr_storage *out)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    size_t hl;

    if (colon == NULL || (hl = (size_t)(colon - s)) == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, atoi(colon + 1), (struct sockaddr_in *)out) == 0)
        return 0;
    return uv_ip6_addr(host, atoi(colon + 1), (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
}

static void addr_str(uv_tcp_t *h, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            snprintf(out, cap, "[%s]:%d", ip, port);
            return;
        }
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

/* ---------------------------------------------------------------- data path */

static uv_stream_t *dst_of(flow *f)
{
    return (uv_stream_t *)&f->p->s[f->dir == UP ? 1 : 0];
}

static uv_stream_t *src_of(flow *f)
{
    return (uv_stream_t *)&f->p->s[f->dir == UP ? 0 : 1];
}

static void chunk_maybe_free(chunk *c)
{
    if (c->off == c->len && c->inflight == 0)
        free(c);
}

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* An earlier wake-up stays: restarting it on every read would starve the flow. */
static void arm(flow *f, uint64_t ms)
{
    if (uv_is_active((uv_handle_t *)&f->timer) && uv_timer_get_due_in(&f->timer) <= ms)
        return;
    uv_timer_start(&f->timer, on_timer, ms ? ms : 1, 0);
}

/* Tokens earned since the last look; the bucket holds 10 ms worth (at least
 * one piece) so a rate is kept over short windows too. */
static void refill(flow *f, uint64_t rate)
{
    uint64_t now = uv_hrtime();
    double burst = (double)rate / 100.0;

    if (burst < WRITE_MAX)
        burst = WRITE_MAX;
    f->tokens += (double)rate * (double)(now - f->tok_ns) / 1e9;
    if (f->tokens > burst)
        f->tokens = burst;
    f->tok_ns = now;
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    flow *f = w->f;
    pair *p = f->p;

    w->c->inflight--;
    chunk_maybe_free(w->c);
    f->queued -= w->len;
    free(w);
    if (p->closing)
        return;
    if (status < 0) {
        pair_close(p, 1);
        return;
    }
    if (!f->reading && !f->eof && !f->err && f->queued < p->r->cap / 2)
        start_reading(f);
    pump(f);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    flow *f = req->data;
    pair *p = f->p;

    f->shut_done = 1;
    if (p->closing)
        return;
    if (status < 0 || (p->f[UP].shut_done && p->f[DOWN].shut_done))
        pair_close(p, status < 0);
}

/* Hands one piece of the head chunk to a write; 0 when nothing could go. */
static int send_piece(flow *f, size_t n)
{
    chunk *c = f->head;
    wreq *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init(c->data + c->off, (unsigned)n);

    if (w == NULL)
        return 0;
    w->c = c;
    w->f = f;
    w->len = n;
    if (uv_write(&w->req, dst_of(f), &b, 1, on_write) < 0) {
        free(w);
        pair_close(f->p, 1);
        return 0;
    }
    c->off += n;
    c->inflight++;
    f->p->r->bytes[f->dir] += n;
    if (c->off == c->len) {
        f->head = c->next;
        if (f->head == NULL)
            f->tail = NULL;
    }
    return 1;
}

/* Moves what may leave now, then arms the timer for what may leave later. */
static void pump(flow *f)
{
    relay *r = f->p->r;
    uint64_t now = uv_now(r->loop), rate = r->rate[f->dir];

    if (f->p->closing || f->p->pending || r->blackhole)
        return;
    if (now < r->stall_until) {
        arm(f, r->stall_until - now);
        return;
    }
    if (f->err) {
        pair_close(f->p, 1);
        return;
    }
    while (f->head) {
        chunk *c = f->head;
        size_t n = c->len - c->off;
        if (c->release_ms > now) {
            arm(f, c->release_ms - now);
            return;
        }
        if (uv_stream_get_write_queue_size(dst_of(f)) > WQ_MAX)
            return; /* on_write pumps again */
        if (rate) {
            refill(f, rate);
            if (f->tokens < 1.0) {
                arm(f, (uint64_t)(1000.0 * (WRITE_MAX - f->tokens) / (double)rate) + 1);
                return;
            }
            if (n > WRITE_MAX)
                n = WRITE_MAX;
            if ((double)n > f->tokens)
                n = (size_t)f->tokens;
            f->tokens -= (double)n;
        }
        if (!send_piece(f, n))
            return;
    }
    if (f->eof && !f->shut) {
        f->shut = 1;
        f->sreq.data = f;
        if (uv_shutdown(&f->sreq, dst_of(f), on_shutdown) < 0)
            pair_close(f->p, 1);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    chunk *c = malloc(sizeof(chunk) + READ_SIZE);

    (void)h;
    (void)hint;
    *buf = uv_buf_init(c ? c->data : NULL, c ? READ_SIZE : 0);
}

static uint64_t release_at(flow *f)
{
    relay *r = f->p->r;
    int64_t d = r->delay_ms[f->dir], j = r->jitter_ms[f->dir];
    uint64_t at;

    if (j > 0)
        d += (int64_t)(random() % (uint64_t)(2 * j + 1)) - j;
    at = uv_now(r->loop) + (uint64_t)(d > 0 ? d : 0);
    if (at < f->last_release)
        at = f->last_release; /* a byte stream keeps its order */
    f->last_release = at;
    return at;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pair *p = s->data;
    flow *f = &p->f[s == (uv_stream_t *)&p->s[0] ? UP : DOWN];
    chunk *c = buf->base ? (chunk *)(buf->base - offsetof(chunk, data)) : NULL;

    if (nread <= 0) {
        free(c);
        if (nread == 0)
            return;
        uv_read_stop(s);
        f->reading = 0;
        if (nread == UV_EOF)
            f->eof = 1;
        else
            f->err = 1;
        pump(f);
        return;
    }
    c->next = NULL;
    c->len = (size_t)nread;
    c->off = 0;
    c->inflight = 0;
    c->release_ms = release_at(f);
    if (f->tail)
        f->tail->next = c;
    else
        f->head = c;
    f->tail = c;
    f->queued += (size_t)nread;
    if (f->queued >= p->r->cap) {
        uv_read_stop(s);
        f->reading = 0;
    }
    pump(f);
}

static void start_reading(flow *f)
{
    f->reading = 1;
    uv_read_start(src_of(f), on_alloc, on_read);
}

/* ---------------------------------------------------------------- pairs */

static void pair_unref(pair *p)
{
    if (--p->open_handles > 0)
        return;
    for (int d = 0; d < 2; d++)
        for (chunk *c = p->f[d].head, *n; c; c = n) {
            n = c->next;
            free(c);
        }
    free(p);
}

static void on_pair_handle_closed(uv_handle_t *h)
{
    pair_unref(h->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    pair_unref(((flow *)h->data)->p);
}

static void pair_close(pair *p, int reset)
{
    if (p->closing)
        return;
    p->closing = 1;
    if (reset)
        p->r->resets++;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->r->pairs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    for (int i = 0; i < 2; i++) {
        uv_close((uv_handle_t *)&p->f[i].timer, on_timer_closed);
        /* close_reset refuses a handle that is shutting down or never connected. */
        if (!reset || uv_tcp_close_reset(&p->s[i], on_pair_handle_closed) != 0)
            uv_close((uv_handle_t *)&p->s[i], on_pair_handle_closed);
    }
}

static void on_upstream(uv_connect_t *req, int status)
{
    pair *p = req->data;

    if (p->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "relay: upstream connect: %s\n", uv_strerror(status));
        pair_close(p, 1);
        return;
    }
    uv_tcp_nodelay(&p->s[1], 1);
    start_reading(&p->f[UP]);
    start_reading(&p->f[DOWN]);
}

/* Small kernel buffers, set before connect / listen so that the window
 * scale the handshake agrees on matches them. */
static void set_sockbuf(uv_tcp_t *h, size_t bytes)
{
    uv_os_fd_t fd;
    int v = (int)bytes;

    if (bytes == 0 || uv_fileno((uv_handle_t *)h, &fd) != 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static void connect_upstream(pair *p)
{
    p->pending = 0;
    set_sockbuf(&p->s[1], p->r->sockbuf);
    p->creq.data = p;
    if (uv_tcp_connect(&p->creq, &p->s[1], (struct sockaddr *)&p->r->to, on_upstream) < 0)
        pair_close(p, 1);
}

static void on_accept(uv_stream_t *lsn, int status)
{
    relay *r = lsn->data;
    pair *p;

    if (status < 0 || (p = calloc(1, sizeof(*p))) == NULL)
        return;
    p->r = r;
    for (int i = 0; i < 2; i++) {
        /* The upstream socket exists now, so its buffers can be set before connect. */
        if (i == 0 || uv_tcp_init_ex(r->loop, &p->s[i], r->to.ss_family) != 0)
            uv_tcp_init(r->loop, &p->s[i]);
        p->s[i].data = p;
        uv_timer_init(r->loop, &p->f[i].timer);
        p->f[i].timer.data = &p->f[i];
        p->f[i].p = p;
        p->f[i].dir = i;
        p->f[i].tok_ns = uv_hrtime();
    }
    p->open_handles = 4;
    p->next = r->pairs;
    if (r->pairs)
        r->pairs->prev = p;
    r->pairs = p;
    if (uv_accept(lsn, (uv_stream_t *)&p->s[0]) < 0) {
        pair_close(p, 0);
        return;
    }
    r->accepted++;
    uv_tcp_nodelay(&p->s[0], 1);
    p->pending = 1;
    if (!r->blackhole)
        connect_upstream(p);
}

/* ---------------------------------------------------------------- control */

static void ctl_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_ctl_write(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void ctl_reply(ctlconn *k, const char *fmt, ...)
{
    uv_write_t *req = malloc(sizeof(*req));
    char *s = malloc(LINE_MAX_);
    va_list ap;
    int n;

    if (req == NULL || s == NULL) {
        free(req);
        free(s);
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(s, LINE_MAX_ - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > LINE_MAX_ - 2)
        n = LINE_MAX_ - 2;
    s[n++] = '\n';
    req->data = s;
    uv_buf_t b = uv_buf_init(s, (unsigned)n);
    if (uv_write(req, (uv_stream_t *)&k->h, &b, 1, on_ctl_write) < 0) {
        free(s);
        free(req);
    }
}

/* Which directions a trailing word names: up, down or (default) both. */
static int dirs_of(const char *w, int *lo, int *hi)
{
    *lo = UP;
    *hi = DOWN;
    if (w == NULL || strcmp(w, "both") == 0)
        return 0;
    if (strcmp(w, "up") == 0)
        *hi = UP;
    else if (strcmp(w, "down") == 0)
        *lo = DOWN;
    else
        return -1;
    return 0;
}

static void pump_all(relay *r)
{
    for (pair *p = r->pairs, *n; p; p = n) {
        n = p->next;
        if (p->pending && !r->blackhole)
            connect_upstream(p);
        pump(&p->f[UP]);
        if (!p->closing)
            pump(&p->f[DOWN]);
    }
}

static void cmd_stats(ctlconn *k)
{
    relay *r = k->r;
    size_t conns = 0, q[2] = {0, 0};

    for (pair *p = r->pairs; p; p = p->next) {
        conns++;
        q[UP] += p->f[UP].queued;
        q[DOWN] += p->f[DOWN].queued;
    }
    ctl_reply(k,
              "ok ms=%llu conns=%zu accepted=%llu resets=%llu bytes_up=%llu bytes_down=%llu "
              "queued_up=%zu queued_down=%zu blackhole=%s delay_up=%u delay_down=%u "
              "rate_up=%llu rate_down=%llu",
              (unsigned long long)(uv_hrtime() / 1000000), conns, (unsigned long long)r->accepted, (unsigned long long)r->resets,
              (unsigned long long)r->bytes[UP], (unsigned long long)r->bytes[DOWN], q[UP], q[DOWN],
              r->blackhole ? "on" : "off", r->delay_ms[UP], r->delay_ms[DOWN],
              (unsigned long long)r->rate[UP], (unsigned long long)r->rate[DOWN]);
}

static int num(const char *w, unsigned long long max, unsigned long long *out)
{
    char *end;

    if (w == NULL || *w == '\0')
        return -1;
    errno = 0;
    *out = strtoull(w, &end, 10);
    return (errno || *end || *out > max) ? -1 : 0;
}

static void cmd_delay(ctlconn *k, char **w, int n)
{
    unsigned long long d, j = 0;
    const char *dw = NULL;
    int lo, hi;

    if (n >= 3 && num(w[2], 600000, &j) < 0)
        dw = w[2]; /* "delay 20 up" */
    else if (n >= 4)
        dw = w[3];
    if (n < 2 || num(w[1], 600000, &d) < 0 || dirs_of(dw, &lo, &hi) < 0 || j > d) {
        ctl_reply(k, "err usage: delay MS [JITTER<=MS] [up|down|both]");
        return;
    }
    for (int i = lo; i <= hi; i++) {
        k->r->delay_ms[i] = (unsigned)d;
        k->r->jitter_ms[i] = (unsigned)j;
    }
    ctl_reply(k, "ok delay %llu jitter %llu", d, j);
}

static void cmd_rate(ctlconn *k, char **w, int n)
{
    unsigned long long bps;
    int lo, hi;

    if (n < 2 || num(w[1], 1ULL << 40, &bps) < 0 || dirs_of(n >= 3 ? w[2] : NULL, &lo, &hi) < 0) {
        ctl_reply(k, "err usage: rate BYTES_PER_S [up|down|both] (0: unlimited)");
        return;
    }
    for (int i = lo; i <= hi; i++)
        k->r->rate[i] = bps;
    for (pair *p = k->r->pairs; p; p = p->next)
        for (int i = 0; i < 2; i++) {
            p->f[i].tokens = 0;
            p->f[i].tok_ns = uv_hrtime();
        }
    ctl_reply(k, "ok rate %llu", bps);
    pump_all(k->r);
}

static void cmd_reset(ctlconn *k)
{
    unsigned n = 0;

    while (k->r->pairs) {
        pair_close(k->r->pairs, 1);
        n++;
    }
    ctl_reply(k, "ok reset %u", n);
}

/* Every command on stdout with a wall-clock time, to line up with the
 * routers' logs when measuring where a stall goes. */
static void log_cmd(const char *line)
{
    uv_timeval64_t tv;
    struct tm tm;
    time_t secs;
    char ts[32];

    if (uv_gettimeofday(&tv) != 0)
        return;
    secs = (time_t)tv.tv_sec;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    printf("ts=%s.%03dZ relay_cmd=\"%.100s\"\n", ts, (int)(tv.tv_usec / 1000), line);
    fflush(stdout);
}

static void run_cmd(ctlconn *k, char *line)
{
    char *w[8], *save = NULL;
    int n = 0;
    unsigned long long ms;

    log_cmd(line);
    for (char *t = strtok_r(line, " \t\r", &save); t && n < 8; t = strtok_r(NULL, " \t\r", &save))
        w[n++] = t;
    if (n == 0)
        ctl_reply(k, "err empty command");
    else if (strcmp(w[0], "delay") == 0)
        cmd_delay(k, w, n);
    else if (strcmp(w[0], "rate") == 0)
        cmd_rate(k, w, n);
    else if (strcmp(w[0], "stall") == 0 && n == 2 && num(w[1], 600000, &ms) == 0) {
        k->r->stall_until = uv_now(k->r->loop) + ms;
        ctl_reply(k, "ok stall %llu", ms);
    } else if (strcmp(w[0], "blackhole") == 0 && n == 2 &&
               (strcmp(w[1], "on") == 0 || strcmp(w[1], "off") == 0)) {
        k->r->blackhole = strcmp(w[1], "on") == 0;
        ctl_reply(k, "ok blackhole %s", w[1]);
        pump_all(k->r);
    } else if (strcmp(w[0], "reset") == 0)
        cmd_reset(k);
    else if (strcmp(w[0], "stats") == 0)
        cmd_stats(k);
    else
        ctl_reply(k, "err commands: delay MS [J] [dir], rate BPS [dir], stall MS, "
                     "blackhole on|off, reset, stats");
}

static void on_ctl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[1024];

    (void)h;
    (void)hint;
    *buf = uv_buf_init(b, sizeof(b));
}

static void on_ctl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ctlconn *k = s->data;

    if (nread < 0) {
        uv_close((uv_handle_t *)s, ctl_closed);
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            k->line[k->len] = '\0';
            run_cmd(k, k->line);
            k->len = 0;
        } else if (k->len < sizeof(k->line) - 1) {
            k->line[k->len++] = ch;
        } /* an over-long line is cut; its command then fails to parse */
    }
}

static void on_ctl_accept(uv_stream_t *lsn, int status)
{
    ctlconn *k;

    if (status < 0 || (k = calloc(1, sizeof(*k))) == NULL)
        return;
    k->r = lsn->data;
    uv_tcp_init(k->r->loop, &k->h);
    k->h.data = k;
    if (uv_accept(lsn, (uv_stream_t *)&k->h) < 0) {
        uv_close((uv_handle_t *)&k->h, ctl_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&k->h, on_ctl_alloc, on_ctl_read);
}

/* ---------------------------------------------------------------- main */

/* At exit: pairs are closing already; what is left is ours (listeners,
 * signals: no callback) or a control connection (freed by ctl_closed). */
static void close_any(uv_handle_t *h, void *arg)
{
    relay *r = arg;

    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&r->lsn || h == (uv_handle_t *)&r->ctl || h->type == UV_SIGNAL)
        uv_close(h, NULL);
    else
        uv_close(h, ctl_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
    relay *r = s->data;

    (void)signum;
    while (r->pairs)
        pair_close(r->pairs, 0);
    uv_walk(r->loop, close_any, r);
}

static int listen_on(relay *r, uv_tcp_t *h, const char *addr, uv_connection_cb cb)
{
    struct sockaddr_storage ss;
    int rc;

    if (parse_addr(addr, &ss) < 0) {
        fprintf(stderr, "relay: bad address %s (HOST:PORT)\n", addr);
        return -1;
    }
    uv_tcp_init(r->loop, h);
    h->data = r;
    if ((rc = uv_tcp_bind(h, (struct sockaddr *)&ss, 0)) == 0 && h == &r->lsn)
        set_sockbuf(h, r->sockbuf); /* accepted sockets inherit them */
    if (rc < 0 || (rc = uv_listen((uv_stream_t *)h, 128, cb)) < 0) {
        fprintf(stderr, "relay: listen on %s: %s\n", addr, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static int ctl_client(int argc, char **argv)
{
    struct sockaddr_storage ss;
    char line[LINE_MAX_], ans[LINE_MAX_];
    size_t len = 0, got = 0;
    int fd;
    ssize_t n;

    if (argc < 4 || parse_addr(argv[2], &ss) < 0) {
        fprintf(stderr, "usage: weft_relay ctl HOST:PORT COMMAND...\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        int m = snprintf(line + len, sizeof(line) - len, "%s%s", i > 3 ? " " : "", argv[i]);
        if (m < 0 || (size_t)m >= sizeof(line) - len - 1)
            return 2;
        len += (size_t)m;
    }
    line[len++] = '\n';
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (fd < 0 ||
        connect(fd, (struct sockaddr *)&ss,
                ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                        : sizeof(struct sockaddr_in6)) < 0 ||
        write(fd, line, len) != (ssize_t)len) {
        fprintf(stderr, "weft_relay ctl %s: %s\n", argv[2], strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    while (got < sizeof(ans) - 1 && (n = read(fd, ans + got, sizeof(ans) - 1 - got)) > 0) {
        got += (size_t)n;
        if (memchr(ans, '\n', got))
            break;
    }
    close(fd);
    ans[got] = '\0';
    fputs(ans, stdout);
    return strncmp(ans, "ok", 2) == 0 ? 0 : 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: weft_relay --listen HOST:PORT --to HOST:PORT --ctl HOST:PORT "
                    "[--buffer BYTES] [--sockbuf BYTES]\n       weft_relay ctl HOST:PORT COMMAND...\n");
    return 2;
}

int main(int argc, char **argv)
{
    relay r = {.cap = 256 * 1024, .sockbuf = SOCKBUF};
    const char *lsn = NULL, *to = NULL, *ctl = NULL;
    char a[128], c[128];

    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ctl_client(argc, argv);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            lsn = argv[i + 1];
        else if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
        else if (strcmp(argv[i], "--ctl") == 0)
            ctl = argv[i + 1];
        else if (strcmp(argv[i], "--buffer") == 0)
            r.cap = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--sockbuf") == 0)
            r.sockbuf = strtoull(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (!lsn || !to || !ctl || r.cap < READ_SIZE || parse_addr(to, &r.to) < 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid());
    r.loop = uv_default_loop();
    if (listen_on(&r, &r.lsn, lsn, on_accept) < 0 || listen_on(&r, &r.ctl, ctl, on_ctl_accept) < 0)
        return 1;
    uv_signal_init(r.loop, &r.sigterm);
    uv_signal_init(r.loop, &r.sigint);
    r.sigterm.data = r.sigint.data = &r;
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    addr_str(&r.lsn, a, sizeof(a));
    addr_str(&r.ctl, c, sizeof(c));
    printf("relay listen=%s to=%s ctl=%s\n", a, to, c);
    fflush(stdout);
    uv_run(r.loop, UV_RUN_DEFAULT);
    return uv_loop_close(r.loop) == 0 ? 0 : 1;
}
