/* Fuzzes HOST:PORT parsing and formatting.
 *
 * Checks: whatever pr_addr_split accepts re-splits to the same host and port
 * once put back together; bracketed (numeric) addresses resolve and format to
 * text that splits to the same port. Names are not resolved here: that would
 * be a DNS query per input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "proto/addr.h"
#include "weft/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[512], host[300], host2[300], again[600], fmt[128];
    unsigned port, port2;
    struct sockaddr_storage ss;
    int rc;

    if (size >= sizeof(in))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    rc = pr_addr_split(in, host, sizeof(host), &port);
    if (rc != 0) {
        if (rc != WEFT_EADDR)
            abort();
        return 0;
    }
    if (port > 65535 || host[0] == '\0' || strlen(host) > 253)
        abort();
    if (strchr(host, ':') != NULL)
        snprintf(again, sizeof(again), "[%s]:%u", host, port);
    else
        snprintf(again, sizeof(again), "%s:%u", host, port);
    if (pr_addr_split(again, host2, sizeof(host2), &port2) != 0)
        abort();
    if (port2 != port || strcmp(host, host2) != 0)
        abort();
    if (in[0] != '[')
        return 0;
    if (pr_addr_resolve(in, &ss) != 0)
        return 0; /* e.g. an unknown zone name */
    if (pr_addr_format((struct sockaddr *)&ss, fmt, sizeof(fmt)) != 0)
        abort();
    if (pr_addr_split(fmt, host2, sizeof(host2), &port2) != 0 || port2 != port)
        abort();
    return 0;
}
