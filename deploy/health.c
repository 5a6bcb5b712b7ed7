/* weft-health: the images' HEALTHCHECK. Exits 0 when every address given accepts a
 * TCP connection within 3 s, 1 otherwise (with the reason on stderr).
 *
 *   weft-health [HOST:PORT ...]
 *
 * Without arguments it checks $WEFT_HEALTH_ADDR (comma-separated), else the
 * listener the entrypoint configured: $WEFT_LISTEN (controller) or
 * $WEFT_EDGE_LISTEN (router); with none of them (an edge, which may listen on
 * nothing) it checks that $WEFT_IDENTITY_FILE exists, that is, enrolment worked.
 * HOST is a numeric IPv4 or IPv6 address (in brackets) or "localhost"; a
 * wildcard (0.0.0.0, ::) is checked on loopback. No name lookups: a static
 * binary in an empty image has no resolver to ask. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_MS 3000

/* Parses HOST:PORT or [V6]:PORT into ss; 0 or -1. */
static int parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    size_t hl;
    char *end;
    long port;

    if (!colon)
        return -1;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -1;
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0 || strcmp(host, "0.0.0.0") == 0)
        strcpy(host, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        strcpy(host, "::1");
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

/* 0 when addr accepts a connection in time. */
static int probe(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct pollfd p;
    int fd, err = 0, rc = -1;
    socklen_t el = sizeof(err);

    if (parse(addr, &ss, &len) < 0) {
        fprintf(stderr, "weft-health: '%s' is not NUMERIC-HOST:PORT\n", addr);
        return -1;
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        fprintf(stderr, "weft-health: socket: %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
        rc = 0;
        goto out;
    }
    if (errno != EINPROGRESS) {
        err = errno;
        goto report;
    }
    p = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, TIMEOUT_MS) != 1) {
        err = ETIMEDOUT;
        goto report;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
        rc = 0;
        goto out;
    }
report:
    fprintf(stderr, "weft-health: %s: %s\n", addr, strerror(err));
out:
    close(fd);
    return rc;
}

/* Checks each comma-separated address in list. */
static int probe_list(const char *list)
{
    char buf[1024], *save = NULL;
    int rc = 0;

    if (strlen(list) >= sizeof(buf)) {
        fprintf(stderr, "weft-health: address list too long\n");
        return 1;
    }
    strcpy(buf, list);
    for (char *a = strtok_r(buf, ", ", &save); a; a = strtok_r(NULL, ", ", &save))
        if (probe(a) < 0)
            rc = 1;
    return rc;
}

int main(int argc, char **argv)
{
    const char *list = getenv("WEFT_HEALTH_ADDR"), *id;
    struct stat st;
    int rc = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (probe(argv[i]) < 0)
                rc = 1;
        return rc;
    }
    if (!list || !list[0])
        list = getenv("WEFT_LISTEN");
    if (!list || !list[0])
        list = getenv("WEFT_EDGE_LISTEN");
    if (list && list[0])
        return probe_list(list);
    id = getenv("WEFT_IDENTITY_FILE");
    if (!id || !id[0])
        id = "/var/lib/weft/identity.json";
    if (stat(id, &st) == 0)
        return 0;
    fprintf(stderr, "weft-health: %s: %s (not enrolled yet)\n", id, strerror(errno));
    return 1;
}
