/* weft link list, weft circuit list and weft mesh (cmd_mesh.c). */
#ifndef WEFT_CLI_CMD_MESH_H
#define WEFT_CLI_CMD_MESH_H

#include "cli/cli.h"

extern const cli_cmd cli_link_cmds[];
extern const cli_cmd cli_circuit_cmds[];
/* The top-level "weft mesh". */
int cli_mesh_run(cli_ctx *c, const cli_args *a);

#endif
