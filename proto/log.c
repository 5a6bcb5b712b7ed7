/* Structured logging: one key=value line per event on stderr.
 *
 * Each line is built in a stack buffer and written with a single fwrite, so
 * lines from different threads never interleave. Control characters are
 * replaced in the finished line, so a stray newline in a value cannot forge a
 * second event. */
#include "proto/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 2048
#define COMP_MAX       32
#define Q_SLOTS        8
#define Q_SIZE         512

static char log_comp[COMP_MAX] = "weft";
static int log_min = PR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pr_log_init(const char *component, int min_level)
{
    if (component != NULL && component[0] != '\0')
        snprintf(log_comp, sizeof(log_comp), "%s", component);
    if (min_level < PR_LOG_DEBUG)
        min_level = PR_LOG_DEBUG;
    if (min_level > PR_LOG_ERROR)
        min_level = PR_LOG_ERROR;
    log_min = min_level;
}

int pr_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* RFC 3339 UTC with milliseconds: 2026-11-25T03:00:00.123Z */
static void format_ts(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

/* Replaces control bytes so that the event stays on one line. */
static void scrub(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            s[i] = '?';
    }
}

static const char *level_name(int level)
{
    if (level < PR_LOG_DEBUG || level > PR_LOG_ERROR)
        return "error";
    return level_names[level];
}

void pr_log(int level, const char *event, const char *fmt, ...)
{
    static const char trunc_mark[] = " truncated=1";
    char line[LINE_MAX_BYTES];
    char ts[40];
    size_t len;
    int n;
    va_list ap;

    if (level < log_min)
        return;
    format_ts(ts, sizeof(ts));
    n = snprintf(line, sizeof(line), "ts=%s level=%s comp=%s event=%s", ts, level_name(level),
                 log_comp, event ? event : "unknown");
    len = n < 0 ? 0 : (size_t)n;
    /* Keep room for the truncation mark and the newline. */
    size_t room = sizeof(line) - sizeof(trunc_mark) - 1;
    if (len < room && fmt != NULL && fmt[0] != '\0') {
        line[len++] = ' ';
        va_start(ap, fmt);
        n = vsnprintf(line + len, room - len, fmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n;
    }
    if (len >= room) {
        len = strnlen(line, room);
        scrub(line, len);
        memcpy(line + len, trunc_mark, sizeof(trunc_mark) - 1);
        len += sizeof(trunc_mark) - 1;
    } else {
        scrub(line, len);
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

/* Appends src (n bytes) to out if it fits before end; 0 if it does not. */
static int put(char **out, const char *end, const char *src, size_t n)
{
    if ((size_t)(end - *out) < n)
        return 0;
    memcpy(*out, src, n);
    *out += n;
    return 1;
}

static int needs_quotes(const char *s)
{
    if (s[0] == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\' || *p == '=')
            return 1;
    return 0;
}

/* Escaped form of one byte: \" \\ \n \r \t, other control bytes as \xHH. */
static size_t escape_byte(unsigned char c, char esc[5])
{
    static const char hex[] = "0123456789abcdef";

    switch (c) {
    case '"':
    case '\\':
        esc[0] = '\\';
        esc[1] = (char)c;
        return 2;
    case '\n':
        memcpy(esc, "\\n", 2);
        return 2;
    case '\r':
        memcpy(esc, "\\r", 2);
        return 2;
    case '\t':
        memcpy(esc, "\\t", 2);
        return 2;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
        esc[0] = '\\';
        esc[1] = 'x';
        esc[2] = hex[c >> 4];
        esc[3] = hex[c & 15];
        return 4;
    }
    esc[0] = (char)c;
    return 1;
}

/* Quotes s into buf (cap bytes); a value too long is cut at an escape boundary
 * and marked with "..." inside the quotes. */
static void quote_into(char *buf, size_t cap, const char *s)
{
    char *out = buf;
    /* Reserve the closing quote, "..." and the NUL. */
    const char *end = buf + cap - 5;
    const unsigned char *p = (const unsigned char *)s;

    *out++ = '"';
    for (; *p; p++) {
        char esc[5];
        size_t n = escape_byte(*p, esc);
        if (!put(&out, end, esc, n)) {
            memcpy(out, "...", 3);
            out += 3;
            break;
        }
    }
    *out++ = '"';
    *out = '\0';
}

const char *pr_log_q(const char *s)
{
    /* Per-thread ring so that several values can be quoted in one pr_log call
     * and threads do not overwrite each other's values. */
    static _Thread_local char ring[Q_SLOTS][Q_SIZE];
    static _Thread_local unsigned next;
    char *buf;

    if (s == NULL)
        return "\"\"";
    if (!needs_quotes(s))
        return s;
    buf = ring[next++ % Q_SLOTS];
    quote_into(buf, Q_SIZE, s);
    return buf;
}
