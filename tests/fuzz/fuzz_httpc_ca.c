/* Fuzzes the CA bundle check a webhook's "ca" goes through
 * (pr_httpc_ca_check): PEM framing, labels, headers and the DER of each
 * certificate. What it accepts must load whole into a TLS context. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "proto/httpc.h"
#include "proto/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], *pem;
    unsigned n = 0;
    SSL_CTX *ctx;

    if (pr_httpc_ca_check((const char *)data, size, &n, err, sizeof(err)) < 0)
        return 0;
    if (n == 0 || (pem = malloc(size + 1)) == NULL)
        abort();
    memcpy(pem, data, size);
    pem[size] = '\0';
    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        pr_tls_load_pem(ctx, pem, NULL, NULL) != 0)
        abort();
    SSL_CTX_free(ctx);
    free(pem);
    return 0;
}
