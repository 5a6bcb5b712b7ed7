/* weft events and weft webhook (cmd_events.c). */
#ifndef WEFT_CLI_CMD_EVENTS_H
#define WEFT_CLI_CMD_EVENTS_H

#include "cli/cli.h"

#define CLI_EVENTS_ARGS "[--follow] [--after ID] [--limit N]"
#define CLI_EVENTS_HELP                                                                            \
    "  --follow           keep printing new events as they come\n"                               \
    "  --after ID         only events after this id\n"                                           \
    "  --limit N          at most N events (1..1000)\n"                                          \
    "  --json             one JSON object per line\n"

int cli_events_run(cli_ctx *c, const cli_args *a);
extern const cli_cmd cli_webhook_cmds[];

#endif
