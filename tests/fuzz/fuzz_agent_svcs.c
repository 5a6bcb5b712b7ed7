/* The agent's reading of the session data (edge/services.c) on any input:
 * no crash, no leak, and what it accepts has NUL-terminated fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    edge_svc *v = NULL;
    edge_ep ep;
    size_t n = 0, i;
    unsigned refresh = 0;
    char err[256];

    if (edge_svcs_parse((const char *)data, size, &v, &n, &refresh, err, sizeof(err)) == 0) {
        for (i = 0; i < n; i++) {
            if (strlen(v[i].name) >= sizeof(v[i].name) || strlen(v[i].host) >= sizeof(v[i].host))
                abort();
            edge_ep_parse(v[i].intercept, &ep);
        }
        if (refresh == 0)
            abort();
    }
    free(v);
    return 0;
}
