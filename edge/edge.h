/* weft-edge internals: one function per subcommand. Each gets argv with
 * argv[0] the subcommand's name and returns the exit status
 * (0 ok, 1 error, 2 usage error). */
#ifndef WEFT_EDGE_H
#define WEFT_EDGE_H

#include <stdio.h>

enum { EDGE_OK = 0, EDGE_ERR = 1, EDGE_USAGE = 2 };

typedef struct edge_cmd {
    const char *name;
    const char *usage; /* after "weft-edge NAME " */
    const char *summary;
    const char *help; /* option lines, or NULL */
    int (*run)(const struct edge_cmd *cmd, int argc, char **argv);
} edge_cmd;

int edge_cmd_enroll(const edge_cmd *cmd, int argc, char **argv);
/* credentials.c: tier-2 credentials, renewal, factory-certificate enrolment. */
int edge_cmd_credentials(const edge_cmd *cmd, int argc, char **argv);
int edge_cmd_renew(const edge_cmd *cmd, int argc, char **argv);
int edge_cmd_enroll_factory(const edge_cmd *cmd, int argc, char **argv);

/* "weft-edge: <msg>" then the command's usage on stderr; returns EDGE_USAGE. */
int edge_usage_error(const edge_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "weft-edge: <msg>" on stderr; returns EDGE_ERR. */
int edge_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void edge_print_cmd_help(FILE *f, const edge_cmd *cmd);
/* enroll.c: the line printed before each wait on a busy controller (HTTP 429),
 * as pr_httpc_busy.on_busy. */
void edge_enroll_busy(unsigned attempt, unsigned tries, unsigned retry_after_s, unsigned wait_ms,
                      void *data);

#endif
