/* dp_blast: loopback traffic tools for the data-plane tests and benchmarks.
 * Plain sockets, no weft code: it is what applications look like to the
 * fabric. Every wait is bounded (--max-seconds, default 120).
 *
 *   dp_blast sink PORT [--once] [--stdout] [--pause-after BYTES]
 *       accepts TCP connections; reads each to EOF, answers one byte 'k' and
 *       closes. --once: exit after the first connection (stats on stderr);
 *       --stdout: copy what arrives to stdout; --pause-after: stop reading a
 *       connection after BYTES (0: never read) and keep it open.
 *   dp_blast send HOST:PORT (--bytes N | --seconds S) [--flows F] [--stdin]
 *       F parallel connections send N bytes each (or for S seconds), half-close
 *       and wait for the sink's 'k'. Prints one line per flow, then the total,
 *       the aggregate rate and Jain's fairness index. --stdin sends stdin (F=1).
 *   dp_blast echo PORT | udpecho PORT
 *       TCP / UDP echo servers.
 *   dp_blast rtt HOST:PORT [--count N] [--size B]
 *       one TCP connection, N ping-pongs of B bytes: p50/p99 round trip.
 *   dp_blast dials HOST:PORT [--count N] [--flows F]
 *       N times: connect, send one byte, wait for it back (an echo server),
 *       close. Prints dials per second and the latency percentiles.
 *   dp_blast hold HOST:PORT --count N
 *       opens N connections to an echo server, checks each with one byte, prints
 *       "held N", then keeps them open until stdin closes or a signal.
 *   dp_blast udpcheck HOST:PORT [--count N]
 *       sends bursts of three datagrams of different sizes and checks that each
 *       comes back whole and alone (boundaries kept).
 * Sizes accept K, M, G suffixes (powers of 1024). Exit status: 0 ok, 1 failed
 * check or I/O error, 2 usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)
#define MAX_FLOWS 64
#define MAX_EVENTS 256

typedef struct {
    const char *cmd;
    struct sockaddr_in addr;
    int port;
    uint64_t bytes;
    double seconds;
    int flows;
    int once, to_stdout, from_stdin;
    int64_t pause_after;
    long count;
    size_t size;
    double max_seconds;
} opts;

static opts o = {.flows = 1, .pause_after = -1, .count = 1000, .size = 64, .max_seconds = 120};
static uint8_t pattern[BUF];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "dp_blast %s: %s: %s\n", o.cmd, what, strerror(errno));
    exit(1);
}

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t m = 1;

    if (*end == 'K' || *end == 'k')
        m = 1024;
    else if (*end == 'M' || *end == 'm')
        m = 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        m = 1024ULL * 1024 * 1024;
    if (end == s || v < 0) {
        fprintf(stderr, "dp_blast: bad size '%s'\n", s);
        exit(2);
    }
    return (uint64_t)(v * (double)m);
}

static void parse_addr(const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        fprintf(stderr, "dp_blast: expected HOST:PORT, got '%s'\n", s);
        exit(2);
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    o.addr.sin_family = AF_INET;
    o.addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &o.addr.sin_addr) != 1) {
        fprintf(stderr, "dp_blast: '%s' is not an IPv4 address\n", host);
        exit(2);
    }
}

static void parse_opts(int argc, char **argv)
{
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--once") || !strcmp(a, "--stdout") || !strcmp(a, "--stdin"))
            takes = 0;
        if (takes && v == NULL) {
            fprintf(stderr, "dp_blast: %s needs a value\n", a);
            exit(2);
        }
        if (!strcmp(a, "--once")) o.once = 1;
        else if (!strcmp(a, "--stdout")) o.to_stdout = 1;
        else if (!strcmp(a, "--stdin")) o.from_stdin = 1;
        else if (!strcmp(a, "--bytes")) o.bytes = parse_size(v);
        else if (!strcmp(a, "--seconds")) o.seconds = atof(v);
        else if (!strcmp(a, "--flows")) o.flows = atoi(v);
        else if (!strcmp(a, "--pause-after")) o.pause_after = (int64_t)parse_size(v);
        else if (!strcmp(a, "--count")) o.count = atol(v);
        else if (!strcmp(a, "--size")) o.size = (size_t)parse_size(v);
        else if (!strcmp(a, "--max-seconds")) o.max_seconds = atof(v);
        else {
            fprintf(stderr, "dp_blast: unknown option %s\n", a);
            exit(2);
        }
        i += takes;
    }
    if (o.flows < 1 || o.flows > MAX_FLOWS || o.size < 1 || o.size > BUF || o.count < 1) {
        fprintf(stderr, "dp_blast: --flows 1..%d, --size 1..%d, --count >= 1\n", MAX_FLOWS, BUF);
        exit(2);
    }
}

static void fill_pattern(void)
{
    int fd = open("/dev/urandom", O_RDONLY);
    size_t got = 0;

    if (fd < 0)
        die("open /dev/urandom");
    while (got < sizeof(pattern)) {
        ssize_t n = read(fd, pattern + got, sizeof(pattern) - got);
        if (n <= 0)
            die("read /dev/urandom");
        got += (size_t)n;
    }
    close(fd);
}

/* ---- small socket helpers ---- */

static int tcp_listen(int port, int type)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, type, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("bind");
    if (type == SOCK_STREAM && listen(fd, 4096) < 0)
        die("listen");
    return fd;
}

static int tcp_connect(int nodelay)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    if (nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits for fd to be ready for events until the absolute deadline: 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, double deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    double left = deadline - now_s();

    if (left <= 0)
        return 0;
    return poll(&p, 1, (int)(left * 1000) + 1) > 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, double deadline)
{
    while (n > 0) {
        ssize_t w;
        if (!wait_fd(fd, POLLOUT, deadline))
            return -1;
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, uint8_t *p, size_t n, double deadline)
{
    while (n > 0) {
        ssize_t r;
        if (!wait_fd(fd, POLLIN, deadline))
            return -1;
        r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- sink ---- */

typedef struct {
    uint64_t got;
    double start;
} sink_conn;

static sink_conn *sconns;

static void sink_finish(int fd)
{
    sink_conn *c = &sconns[fd];
    double secs = now_s() - c->start;

    (void)!write(fd, "k", 1);
    close(fd);
    fprintf(stderr, "sink bytes=%llu secs=%.3f mbit=%.1f\n", (unsigned long long)c->got, secs,
            (double)c->got * 8 / 1e6 / (secs > 0 ? secs : 1e-9));
    if (o.once)
        exit(0);
}

/* 1: keep reading; 0: the connection is finished or paused. */
static int sink_read(int ep, int fd, uint8_t *buf)
{
    sink_conn *c = &sconns[fd];
    size_t want = BUF;
    ssize_t n;

    if (o.pause_after >= 0 && c->got + want > (uint64_t)o.pause_after)
        want = (size_t)((uint64_t)o.pause_after - c->got);
    if (want == 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        fprintf(stderr, "sink paused bytes=%llu\n", (unsigned long long)c->got);
        return 0;
    }
    n = read(fd, buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        sink_finish(fd);
        return 0;
    }
    c->got += (uint64_t)n;
    if (o.to_stdout && fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
        die("write stdout");
    return 1;
}

static void ep_add(int ep, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
}

static int serve(int (*on_ready)(int ep, int fd, uint8_t *buf), void (*on_accept)(int fd))
{
    int lfd = tcp_listen(o.port, SOCK_STREAM), ep = epoll_create1(0);
    struct epoll_event evs[MAX_EVENTS];
    uint8_t *buf = malloc(BUF);

    if (ep < 0 || buf == NULL)
        die("epoll_create1");
    set_nonblock(lfd); /* accept until EAGAIN */
    ep_add(ep, lfd, EPOLLIN);
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                on_ready(ep, fd, buf);
                continue;
            }
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                if (on_accept)
                    on_accept(fd);
                ep_add(ep, fd, EPOLLIN);
                on_ready(ep, fd, buf);
            }
        }
    }
    return 0; /* not reached: servers run until killed */
}

static void sink_accept(int fd)
{
    sconns[fd].got = 0;
    sconns[fd].start = now_s();
}

static int sink_ready(int ep, int fd, uint8_t *buf)
{
    for (int i = 0; i < 16 && sink_read(ep, fd, buf); i++)
        ;
    return 0;
}

static int cmd_sink(void)
{
    if ((sconns = calloc(65536, sizeof(*sconns))) == NULL)
        die("calloc");
    return serve(sink_ready, sink_accept);
}

/* ---- echo ---- */

/* A blocking write of what was read: echo traffic here is small (rtt, dials,
 * hold), so the socket buffer never fills. */
static int echo_ready(int ep, int fd, uint8_t *buf)
{
    ssize_t n = read(fd, buf, BUF);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0 || write_all(fd, buf, (size_t)n, now_s() + 10) < 0)
        close(fd); /* close removes it from the epoll set */
    return 0;
}

static void echo_accept(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int cmd_udpecho(void)
{
    int fd = tcp_listen(o.port, SOCK_DGRAM);
    uint8_t buf[65536];

    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (n >= 0)
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
    return 0;
}

/* ---- send ---- */

typedef struct {
    int idx;
    uint64_t sent;
    double secs;
    int ok;
    pthread_barrier_t *go;
} flow;

static int send_data(int fd, flow *f, double deadline)
{
    double stop = o.seconds > 0 ? now_s() + o.seconds : 0;
    uint8_t *buf = o.from_stdin ? malloc(BUF) : pattern;
    int rc = 0;

    for (;;) {
        size_t n = BUF;
        if (o.from_stdin) {
            ssize_t r = read(0, buf, BUF);
            if (r < 0)
                die("read stdin");
            n = (size_t)r;
        } else if (stop == 0 && o.bytes - f->sent < n) {
            n = (size_t)(o.bytes - f->sent);
        }
        if (n == 0 || (stop > 0 && now_s() >= stop))
            break;
        if ((rc = write_all(fd, buf, n, deadline)) < 0)
            break;
        f->sent += n;
    }
    if (o.from_stdin)
        free(buf);
    return rc;
}

static void *flow_main(void *arg)
{
    flow *f = arg;
    double deadline = now_s() + o.max_seconds, t0;
    uint8_t k;
    int fd = tcp_connect(0);

    pthread_barrier_wait(f->go);
    t0 = now_s();
    if (fd < 0) {
        fprintf(stderr, "dp_blast send: flow %d: connect: %s\n", f->idx, strerror(errno));
        return NULL;
    }
    if (send_data(fd, f, deadline) == 0 && shutdown(fd, SHUT_WR) == 0 &&
        read_full(fd, &k, 1, deadline) == 0 && k == 'k')
        f->ok = 1;
    f->secs = now_s() - t0;
    close(fd);
    return NULL;
}

static int cmd_send(void)
{
    pthread_t th[MAX_FLOWS];
    flow fl[MAX_FLOWS] = {{0}};
    pthread_barrier_t go;
    double sum = 0, sq = 0, maxs = 0;
    uint64_t total = 0;
    int ok = 1;

    if ((o.bytes == 0) == (o.seconds <= 0) && !o.from_stdin) {
        fprintf(stderr, "dp_blast send: give --bytes or --seconds\n");
        return 2;
    }
    pthread_barrier_init(&go, NULL, (unsigned)o.flows);
    for (int i = 0; i < o.flows; i++) {
        fl[i].idx = i;
        fl[i].go = &go;
        pthread_create(&th[i], NULL, flow_main, &fl[i]);
    }
    for (int i = 0; i < o.flows; i++) {
        double mbit;
        pthread_join(th[i], NULL);
        mbit = (double)fl[i].sent * 8 / 1e6 / (fl[i].secs > 0 ? fl[i].secs : 1e-9);
        printf("flow %d bytes=%llu secs=%.3f mbit=%.1f ok=%d\n", i,
               (unsigned long long)fl[i].sent, fl[i].secs, mbit, fl[i].ok);
        ok &= fl[i].ok;
        total += fl[i].sent;
        sum += mbit;
        sq += mbit * mbit;
        maxs = fl[i].secs > maxs ? fl[i].secs : maxs;
    }
    printf("total bytes=%llu secs=%.3f mbit=%.1f jain=%.3f ok=%d\n", (unsigned long long)total,
           maxs, (double)total * 8 / 1e6 / (maxs > 0 ? maxs : 1e-9),
           sq > 0 ? sum * sum / (o.flows * sq) : 0, ok);
    return ok ? 0 : 1;
}

/* ---- rtt and dials ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
    long i = (long)ceil(p * (double)n) - 1;
    return v[i < 0 ? 0 : i];
}

static int cmd_rtt(void)
{
    double *lat = calloc((size_t)o.count, sizeof(double)), deadline = now_s() + o.max_seconds;
    uint8_t *in = malloc(o.size);
    int fd = tcp_connect(1);

    if (fd < 0)
        die("connect");
    for (long i = 0; i < o.count; i++) {
        double t = now_s();
        pattern[0] = (uint8_t)i;
        if (write_all(fd, pattern, o.size, deadline) < 0 ||
            read_full(fd, in, o.size, deadline) < 0 || memcmp(in, pattern, o.size) != 0) {
            fprintf(stderr, "dp_blast rtt: echo %ld failed or differs\n", i);
            free(lat);
            free(in);
            return 1;
        }
        lat[i] = (now_s() - t) * 1e6;
    }
    qsort(lat, (size_t)o.count, sizeof(double), cmp_double);
    printf("rtt count=%ld size=%zu p50_us=%.1f p99_us=%.1f max_us=%.1f\n", o.count, o.size,
           pct(lat, o.count, 0.5), pct(lat, o.count, 0.99), lat[o.count - 1]);
    close(fd);
    free(lat);
    free(in);
    return 0;
}

typedef struct {
    long n, fails;
    double *lat;
} dialer;

static void *dial_main(void *arg)
{
    dialer *d = arg;
    double deadline = now_s() + o.max_seconds;

    for (long i = 0; i < d->n; i++) {
        double t = now_s();
        uint8_t b;
        int fd = tcp_connect(1);
        if (fd < 0 || write_all(fd, (const uint8_t *)"d", 1, deadline) < 0 ||
            read_full(fd, &b, 1, deadline) < 0 || b != 'd') {
            d->fails++;
            d->lat[i] = 0;
        } else {
            d->lat[i] = (now_s() - t) * 1e3;
        }
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static int cmd_dials(void)
{
    pthread_t th[MAX_FLOWS];
    dialer d[MAX_FLOWS];
    double *all = calloc((size_t)o.count, sizeof(double)), t0 = now_s(), secs;
    long per = o.count / o.flows, n = 0, fails = 0;

    for (int i = 0; i < o.flows; i++) {
        d[i] = (dialer){.n = per, .lat = calloc((size_t)per, sizeof(double))};
        pthread_create(&th[i], NULL, dial_main, &d[i]);
    }
    for (int i = 0; i < o.flows; i++) {
        pthread_join(th[i], NULL);
        fails += d[i].fails;
        for (long j = 0; j < per; j++)
            if (d[i].lat[j] > 0)
                all[n++] = d[i].lat[j];
        free(d[i].lat);
    }
    secs = now_s() - t0;
    if (n == 0) {
        printf("dials count=%ld ok=0 fails=%ld\n", per * o.flows, fails);
        free(all);
        return 1;
    }
    qsort(all, (size_t)n, sizeof(double), cmp_double);
    printf("dials count=%ld ok=%ld fails=%ld secs=%.3f per_s=%.1f p50_ms=%.2f p99_ms=%.2f\n",
           per * o.flows, n, fails, secs, (double)n / secs, pct(all, n, 0.5), pct(all, n, 0.99));
    free(all);
    return fails ? 1 : 0;
}

/* ---- hold ---- */

/* Opens connections with at most 128 unanswered at once, so that the far
 * side's accept queues never overflow. */
static long hold_open(int *fds, double deadline)
{
    long opened = 0, held = 0, pending = 0;
    int ep = epoll_create1(0);
    struct epoll_event evs[MAX_EVENTS];

    while (held < o.count && now_s() < deadline) {
        while (opened < o.count && pending < 128) {
            int fd = tcp_connect(1);
            if (fd < 0 || write(fd, "h", 1) != 1)
                die("connect");
            set_nonblock(fd);
            fds[opened++] = fd;
            ep_add(ep, fd, EPOLLIN);
            pending++;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            uint8_t b;
            int fd = evs[i].data.fd;
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            pending--;
            if (read(fd, &b, 1) == 1 && b == 'h')
                held++;
            else
                fprintf(stderr, "dp_blast hold: a connection closed unanswered\n");
        }
    }
    close(ep);
    return held;
}

static int cmd_hold(void)
{
    int *fds = calloc((size_t)o.count, sizeof(int));
    double t0 = now_s();
    long held = hold_open(fds, t0 + o.max_seconds);
    char b;

    printf("held %ld of %ld in %.1f s\n", held, o.count, now_s() - t0);
    fflush(stdout);
    /* Hold until stdin closes or the deadline; the caller measures meanwhile. */
    while (wait_fd(0, POLLIN, t0 + o.max_seconds) && read(0, &b, 1) > 0)
        ;
    free(fds); /* the connections close with the process */
    return held == o.count ? 0 : 1;
}

/* ---- udpcheck ---- */

static int udp_round(int fd, long round, double deadline)
{
    static const size_t sizes[3] = {1, 1200, 300};
    uint8_t out[3][1200], in[2048];
    int seen[3] = {0};

    for (int i = 0; i < 3; i++) {
        memcpy(out[i], pattern + (size_t)(round * 3 + i) % 4096, sizes[i]);
        out[i][0] = (uint8_t)i;
        if (send(fd, out[i], sizes[i], 0) != (ssize_t)sizes[i])
            die("send");
    }
    for (int i = 0; i < 3; i++) {
        ssize_t n;
        if (!wait_fd(fd, POLLIN, deadline) || (n = recv(fd, in, sizeof(in), 0)) <= 0) {
            fprintf(stderr, "udpcheck: round %ld: datagram %d of 3 never came back\n", round, i);
            return -1;
        }
        int k = in[0] < 3 ? in[0] : 0;
        if ((size_t)n != sizes[k] || memcmp(in, out[k], sizes[k]) != 0 || seen[k]++) {
            fprintf(stderr, "udpcheck: round %ld: got %zd bytes not matching a datagram sent "
                    "(sizes 1, 1200, 300)\n", round, n);
            return -1;
        }
    }
    return 0;
}

static int cmd_udpcheck(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    double deadline;

    if (fd < 0 || connect(fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) < 0)
        die("udp connect");
    for (long r = 0; r < o.count; r++) {
        deadline = now_s() + (o.max_seconds < 5 ? o.max_seconds : 5);
        if (udp_round(fd, r, deadline) < 0)
            return 1;
    }
    printf("udpcheck rounds=%ld datagrams=%ld ok\n", o.count, o.count * 3);
    return 0;
}

int main(int argc, char **argv)
{
    int is_server;

    if (argc < 3) {
        fprintf(stderr, "usage: dp_blast sink|echo|udpecho PORT | "
                        "send|rtt|dials|hold|udpcheck HOST:PORT [options]\n");
        return 2;
    }
    o.cmd = argv[1];
    is_server = !strcmp(o.cmd, "sink") || !strcmp(o.cmd, "echo") || !strcmp(o.cmd, "udpecho");
    if (is_server)
        o.port = atoi(argv[2]);
    else
        parse_addr(argv[2]);
    parse_opts(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    fill_pattern();
    if (!strcmp(o.cmd, "sink")) return cmd_sink();
    if (!strcmp(o.cmd, "echo")) return serve(echo_ready, echo_accept);
    if (!strcmp(o.cmd, "udpecho")) return cmd_udpecho();
    if (!strcmp(o.cmd, "send")) return cmd_send();
    if (!strcmp(o.cmd, "rtt")) return cmd_rtt();
    if (!strcmp(o.cmd, "dials")) return cmd_dials();
    if (!strcmp(o.cmd, "hold")) return cmd_hold();
    if (!strcmp(o.cmd, "udpcheck")) return cmd_udpcheck();
    fprintf(stderr, "dp_blast: unknown command %s\n", o.cmd);
    return 2;
}
