/* HOST:PORT parsing, resolution and formatting.
 *
 * Accepted forms: "name:port", "a.b.c.d:port", "[v6]:port" (optionally
 * "[v6%zone]:port"). An IPv6 literal must be bracketed, so that the port is
 * never ambiguous. Port 0 is accepted: it asks for an ephemeral port when the
 * address is listened on. */
#include "proto/addr.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "weft/errors.h"

#define ADDR_MAX 300 /* longest HOST:PORT text accepted */
#define HOST_MAX 253 /* DNS name limit */

/* Decimal 0..65535, no sign, no leading zeros, at least one digit. */
static int parse_port(const char *s, unsigned *port)
{
    unsigned long v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return WEFT_EADDR;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WEFT_EADDR;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return WEFT_EADDR;
    *port = (unsigned)v;
    return 0;
}

/* Host names and IPv4 literals: letters, digits, '-', '.', '_'. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* An IPv6 literal, with an optional non-empty "%zone" suffix. */
static int valid_v6(const char *s, size_t n)
{
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    const char *pct = memchr(s, '%', n);
    size_t alen = pct ? (size_t)(pct - s) : n;

    if (alen == 0 || alen >= sizeof(tmp))
        return 0;
    memcpy(tmp, s, alen);
    tmp[alen] = '\0';
    if (inet_pton(AF_INET6, tmp, &a) != 1)
        return 0;
    /* A zone is an interface name: at most IF_NAMESIZE - 1 characters. */
    if (pct != NULL && (n - alen - 1 >= IF_NAMESIZE || !valid_name(pct + 1, n - alen - 1)))
        return 0;
    return 1;
}

static int copy_host(const char *h, size_t n, char *host, size_t host_cap)
{
    if (n + 1 > host_cap)
        return WEFT_EADDR;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

int pr_addr_split(const char *s, char *host, size_t host_cap, unsigned *port)
{
    const char *h, *colon;
    size_t hlen;

    if (s == NULL || host == NULL || port == NULL || strnlen(s, ADDR_MAX + 1) > ADDR_MAX)
        return WEFT_EADDR;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return WEFT_EADDR;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (memchr(h, '[', hlen) != NULL || !valid_v6(h, hlen))
            return WEFT_EADDR;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return WEFT_EADDR;
        h = s;
        hlen = (size_t)(colon - s);
        /* Rejects unbracketed IPv6 (a second ':') and stray brackets too. */
        if (!valid_name(h, hlen))
            return WEFT_EADDR;
    }
    if (parse_port(colon + 1, port) < 0)
        return WEFT_EADDR;
    return copy_host(h, hlen, host, host_cap);
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

int pr_addr_resolve(const char *s, struct sockaddr_storage *out)
{
    char host[HOST_MAX + 1];
    unsigned port;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (out == NULL)
        return WEFT_EADDR;
    rc = pr_addr_split(s, host, sizeof(host), &port);
    if (rc < 0)
        return rc;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = s[0] == '[' ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (s[0] == '[')
        hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return WEFT_EADDR;
    rc = WEFT_EADDR;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(*out)) {
            memset(out, 0, sizeof(*out));
            memcpy(out, ai->ai_addr, ai->ai_addrlen);
            set_port(out, port);
            rc = 0;
            break;
        }
    }
    freeaddrinfo(res);
    return rc;
}

int pr_addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[NI_MAXHOST];
    unsigned port;
    socklen_t salen;
    int n;

    if (sa == NULL || out == NULL)
        return WEFT_EINVAL;
    if (sa->sa_family == AF_INET) {
        salen = sizeof(struct sockaddr_in);
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        salen = sizeof(struct sockaddr_in6);
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    } else {
        return WEFT_EADDR;
    }
    /* getnameinfo also renders an IPv6 scope as "%zone", unlike inet_ntop. */
    if (getnameinfo(sa, salen, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
        return WEFT_EADDR;
    if (sa->sa_family == AF_INET6)
        n = snprintf(out, cap, "[%s]:%u", host, port);
    else
        n = snprintf(out, cap, "%s:%u", host, port);
    if (n < 0 || (size_t)n >= cap)
        return WEFT_ETOOBIG;
    return 0;
}
