/* bed_netshim: an LD_PRELOAD library that lets a loopback test give one
 * process its own view of the network, as separate hosts would have.
 *
 *   WEFT_BED_BIND="4022=4122,..."  bind() to port 4022 binds 4122 instead: the
 *       process advertises 4022 (where a weft_relay listens) and really listens
 *       on 4122 (where the relay forwards).
 *   WEFT_BED_CONNECT="4022=5001,..."  connect() to port 4022 goes to 5001: each
 *       router reaches a given peer through its own weft_relay.
 *   WEFT_BED_DENY="4023,3022,..."  connect() to any of these ports is refused
 *       (ECONNREFUSED), as a host without a route to them would see: routers
 *       that are not neighbours never link, an edge reaches only its router.
 *
 * Only AF_INET and AF_INET6 addresses are touched. The lists are read once. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAXP 64

static int nbind, nconn, ndeny, loaded;
static unsigned short bind_from[MAXP], bind_to[MAXP], conn_from[MAXP], conn_to[MAXP], deny[MAXP];

/* Reads "A=B,C=D" into two arrays; returns how many pairs. */
static int pairs(const char *s, unsigned short *from, unsigned short *to)
{
    char *end;
    int n = 0;

    while (s && *s && n < MAXP) {
        unsigned long f = strtoul(s, &end, 10);
        if (*end != '=')
            break;
        from[n] = (unsigned short)f;
        to[n++] = (unsigned short)strtoul(end + 1, &end, 10);
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void load(void)
{
    const char *d = getenv("WEFT_BED_DENY");
    char *end;

    loaded = 1;
    nbind = pairs(getenv("WEFT_BED_BIND"), bind_from, bind_to);
    nconn = pairs(getenv("WEFT_BED_CONNECT"), conn_from, conn_to);
    while (d && *d && ndeny < MAXP) {
        deny[ndeny++] = (unsigned short)strtoul(d, &end, 10);
        if (end == d)
            break;
        d = *end == ',' ? end + 1 : end;
    }
}

static unsigned short *port_of(const struct sockaddr *sa, socklen_t len)
{
    if (sa == NULL)
        return NULL;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
        return &((struct sockaddr_in *)sa)->sin_port;
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return &((struct sockaddr_in6 *)sa)->sin6_port;
    return NULL;
}

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    struct sockaddr_storage ss;
    unsigned short *p;

    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (!loaded)
        load();
    if (len <= sizeof(ss) && port_of(sa, len) != NULL) {
        memcpy(&ss, sa, len);
        p = port_of((struct sockaddr *)&ss, len);
        for (int i = 0; i < nbind; i++)
            if (ntohs(*p) == bind_from[i]) {
                *p = htons(bind_to[i]);
                return real(fd, (struct sockaddr *)&ss, len);
            }
    }
    return real(fd, sa, len);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    unsigned short *p = port_of(sa, len);
    struct sockaddr_storage ss;

    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (!loaded)
        load();
    for (int i = 0; p != NULL && i < ndeny; i++)
        if (ntohs(*p) == deny[i]) {
            errno = ECONNREFUSED;
            return -1;
        }
    for (int i = 0; p != NULL && i < nconn && len <= sizeof(ss); i++)
        if (ntohs(*p) == conn_from[i]) {
            memcpy(&ss, sa, len);
            *port_of((struct sockaddr *)&ss, len) = htons(conn_to[i]);
            return real(fd, (struct sockaddr *)&ss, len);
        }
    return real(fd, sa, len);
}
