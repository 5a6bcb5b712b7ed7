/* Logging: line format, level filter, quoting, one line per event even with
 * hostile values, and no interleaving between threads. stderr is redirected
 * to a temporary file and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <regex.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/log.h"

static FILE *capture;
static int saved_fd = -1;

static void start_capture(void)
{
    fflush(stderr);
    capture = tmpfile();
    assert_non_null(capture);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns everything logged meanwhile (caller frees). */
static char *stop_capture(void)
{
    long n;
    char *out;

    fflush(stderr);
    assert_true(dup2(saved_fd, STDERR_FILENO) >= 0);
    close(saved_fd);
    n = ftell(capture);
    assert_true(n >= 0);
    out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    rewind(capture);
    assert_int_equal(fread(out, 1, (size_t)n, capture), (size_t)n);
    fclose(capture);
    return out;
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void line_format(void **state)
{
    regex_t re;
    char *out;

    pr_log_init("router", PR_LOG_INFO);
    start_capture();
    pr_info("listening", "addr=%s port=%d", "127.0.0.1", 1280);
    out = stop_capture();
    assert_int_equal(
        regcomp(&re,
                "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                "level=info comp=router event=listening addr=127\\.0\\.0\\.1 "
                "port=1280\n$",
                REG_EXTENDED),
        0);
    assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
    regfree(&re);
    free(out);
}

static void level_filter(void **state)
{
    char *out;

    pr_log_init("ctl", PR_LOG_WARN);
    start_capture();
    pr_debug("a", "x=1");
    pr_info("b", "x=2");
    pr_warn("c", "x=3");
    pr_error("d", "hint=%s", pr_log_q("check the CA file"));
    pr_log(PR_LOG_INFO, "e", NULL);
    out = stop_capture();
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "level=warn comp=ctl event=c x=3\n"));
    assert_non_null(strstr(out, "level=error comp=ctl event=d hint=\"check the CA file\"\n"));
    assert_null(strstr(out, "event=a"));
    free(out);

    pr_log_init("ctl", PR_LOG_DEBUG);
    start_capture();
    pr_debug("a", NULL);
    out = stop_capture();
    assert_non_null(strstr(out, "level=debug comp=ctl event=a\n"));
    free(out);
}

static void level_parse(void **state)
{
    assert_int_equal(pr_log_level_parse("debug"), PR_LOG_DEBUG);
    assert_int_equal(pr_log_level_parse("info"), PR_LOG_INFO);
    assert_int_equal(pr_log_level_parse("warn"), PR_LOG_WARN);
    assert_int_equal(pr_log_level_parse("error"), PR_LOG_ERROR);
    assert_int_equal(pr_log_level_parse("INFO"), -1);
    assert_int_equal(pr_log_level_parse("warning"), -1);
    assert_int_equal(pr_log_level_parse(""), -1);
    assert_int_equal(pr_log_level_parse(NULL), -1);
}

static void quoting(void **state)
{
    char longv[2000];

    assert_string_equal(pr_log_q("plain-value_1.2:3"), "plain-value_1.2:3");
    assert_string_equal(pr_log_q(""), "\"\"");
    assert_string_equal(pr_log_q(NULL), "\"\"");
    assert_string_equal(pr_log_q("two words"), "\"two words\"");
    assert_string_equal(pr_log_q("a=b"), "\"a=b\"");
    assert_string_equal(pr_log_q("say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(pr_log_q("back\\slash"), "\"back\\\\slash\"");
    assert_string_equal(pr_log_q("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
    assert_string_equal(pr_log_q("bell\x07"
                                 "del\x7f"),
                        "\"bell\\x07del\\x7f\"");
    assert_string_equal(pr_log_q("caf\xc3\xa9 ok"), "\"caf\xc3\xa9 ok\"");

    /* Several quoted values stay valid within one call. */
    const char *a = pr_log_q("x y"), *b = pr_log_q("z w");
    assert_string_equal(a, "\"x y\"");
    assert_string_equal(b, "\"z w\"");

    /* Long values are cut inside the quotes, never mid-escape. */
    memset(longv, '"', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    const char *q = pr_log_q(longv);
    size_t n = strlen(q);
    assert_true(n < 512);
    assert_string_equal(q + n - 4, "...\"");
    assert_int_equal(q[0], '"');
    /* An even run of backslash-quote pairs: every escape is whole. */
    assert_int_equal((n - 5) % 2, 0);
}

static void hostile_values_stay_on_one_line(void **state)
{
    char big[5000];
    char *out;

    pr_log_init("edge", PR_LOG_INFO);
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    start_capture();
    pr_info("forged", "peer=%s", "x\nts=0 level=error event=fake");
    pr_info("huge", "v=%s", big);
    out = stop_capture();
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "peer=x?ts=0"));
    char *second = strchr(out, '\n') + 1;
    assert_true(strlen(second) <= 2048);
    assert_non_null(strstr(second, "event=huge v=vvv"));
    assert_non_null(strstr(second, " truncated=1\n"));
    free(out);
}

#define THREADS    4
#define PER_THREAD 300

static void *log_worker(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < PER_THREAD; i++)
        pr_info("tick", "thread=%ld i=%d pad=%s", id, i,
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    return NULL;
}

static void threads_do_not_interleave(void **state)
{
    pthread_t t[THREADS];
    char *out, *line, *save = NULL;
    unsigned n = 0;
    regex_t re;

    pr_log_init("edge", PR_LOG_INFO);
    start_capture();
    for (long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    out = stop_capture();
    assert_int_equal(regcomp(&re,
                             "^ts=[^ ]+ level=info comp=edge event=tick thread=[0-3] "
                             "i=[0-9]+ pad=a{80}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
        n++;
    }
    assert_int_equal(n, THREADS * PER_THREAD);
    regfree(&re);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_format),
        cmocka_unit_test(level_filter),
        cmocka_unit_test(level_parse),
        cmocka_unit_test(quoting),
        cmocka_unit_test(hostile_values_stay_on_one_line),
        cmocka_unit_test(threads_do_not_interleave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
