/* HOST:PORT parsing shared by every process ("127.0.0.1:1280", "[::1]:1280",
 * "localhost:1280"). Names are resolved with getaddrinfo (blocking: only at
 * start-up or in the CLI). */
#ifndef PR_ADDR_H
#define PR_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Splits "HOST:PORT" into host (without brackets) and port; WEFT_EADDR if malformed. */
int pr_addr_split(const char *s, char *host, size_t host_cap, unsigned *port);
/* Resolves "HOST:PORT" to a socket address; WEFT_EADDR on failure. */
int pr_addr_resolve(const char *s, struct sockaddr_storage *out);
/* Formats a socket address as "HOST:PORT" ("[::1]:80" for IPv6). */
int pr_addr_format(const struct sockaddr *sa, char *out, size_t cap);

#endif
