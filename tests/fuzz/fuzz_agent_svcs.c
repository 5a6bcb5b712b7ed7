/* The services of any session data, as libweft reads them and the agent
 * takes them (edge/services.c): no crash, no leak, and what it accepts has
 * NUL-terminated fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/lib/sessdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_sessdata sd;
    weft_service *w;
    edge_svc *v = NULL;
    edge_ep ep;
    size_t n = 0, i;
    char err[256];

    if (weft__sessdata_parse((const char *)data, size, &sd, err, sizeof(err)) < 0) {
        weft__sessdata_free(&sd);
        return 0;
    }
    if ((w = calloc(sd.nsvcs + 1, sizeof(*w))) == NULL)
        abort();
    for (i = 0; i < sd.nsvcs; i++)
        w[i] = (weft_service){sd.svcs[i].name, sd.svcs[i].intercept, sd.svcs[i].host,
                              sd.svcs[i].dial, sd.svcs[i].bind};
    if (edge_svcs_from(w, sd.nsvcs, &v, &n) == 0) {
        for (i = 0; i < n; i++) {
            if (strlen(v[i].name) >= sizeof(v[i].name) || strlen(v[i].host) >= sizeof(v[i].host))
                abort();
            edge_ep_parse(v[i].intercept, &ep);
        }
    }
    free(v);
    free(w);
    weft__sessdata_free(&sd);
    return 0;
}
