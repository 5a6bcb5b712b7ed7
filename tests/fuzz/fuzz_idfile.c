/* Fuzzes the identity file parser: JSON, field checks and the PEM parsing
 * behind the key-matches-certificate check. */
#include <stddef.h>
#include <stdint.h>

#include "proto/idfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pr_idfile id;
    char err[256];

    if (pr_idfile_parse((const char *)data, size, &id, err, sizeof(err)) == 0)
        pr_idfile_free(&id);
    return 0;
}
