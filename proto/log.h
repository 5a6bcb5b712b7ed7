/* Structured logging: one line per event, key=value pairs, to stderr.
 *   ts=2026-11-25T03:00:00.123Z level=info comp=controller event=listening addr=127.0.0.1:1280
 * Never log secrets (keys, tokens, tier-2 credentials). Error lines carry a
 * hint="..." saying what the operator should do. */
#ifndef PR_LOG_H
#define PR_LOG_H

enum pr_log_level { PR_LOG_DEBUG = 0, PR_LOG_INFO, PR_LOG_WARN, PR_LOG_ERROR };

void pr_log_init(const char *component, int min_level);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int pr_log_level_parse(const char *s);
/* fmt produces the key=value tail, e.g. "id=%s peer=%s". Values containing spaces
 * or quotes must be passed through pr_log_q() so that the line stays parseable. */
void pr_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Quotes s for a log value into a static ring of buffers (valid for a few calls). */
const char *pr_log_q(const char *s);

#define pr_debug(ev, ...) pr_log(PR_LOG_DEBUG, ev, __VA_ARGS__)
#define pr_info(ev, ...)  pr_log(PR_LOG_INFO, ev, __VA_ARGS__)
#define pr_warn(ev, ...)  pr_log(PR_LOG_WARN, ev, __VA_ARGS__)
#define pr_error(ev, ...) pr_log(PR_LOG_ERROR, ev, __VA_ARGS__)

#endif
