/* Behaviour policies and device binding in the controller (controller/behaviour.c),
 * and the event store with a real SQLite file and real webhook POSTs over
 * loopback, plain and HTTPS (TLS 1.2, the webhook's own CA, the sentences a
 * failed delivery logs) (controller/events.c, webhook.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "controller/behaviour.h"
#include "controller/events.h"
#include "proto/pki.h"
#include "weft/errors.h"

#include "tls_srv.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_window_parse(void **state)
{
    char zone[64];
    int a, b;
    (void)state;
    assert_int_equal(ctl_behaviour_parse_window("08:00-18:00@Europe/Paris", &a, &b, zone,
                                                sizeof(zone)), 0);
    assert_int_equal(a, 480);
    assert_int_equal(b, 1080);
    assert_string_equal(zone, "Europe/Paris");
    assert_int_equal(ctl_behaviour_parse_window("22:00-06:00", &a, &b, zone, sizeof(zone)), 0);
    assert_string_equal(zone, "UTC");
    assert_int_equal(ctl_behaviour_parse_window("8:00-18:00", &a, &b, zone, sizeof(zone)),
                     WEFT_EINVAL);
    assert_int_equal(ctl_behaviour_parse_window("08:00-18:00@../../etc/passwd", &a, &b, zone,
                                                sizeof(zone)), WEFT_EINVAL);
    assert_int_equal(ctl_behaviour_parse_window("08:00-08:00", &a, &b, zone, sizeof(zone)),
                     WEFT_EINVAL);
    assert_int_equal(ctl_behaviour_parse_window("25:00-08:00", &a, &b, zone, sizeof(zone)),
                     WEFT_EINVAL);
}

static void test_zone_offset(void **state)
{
    long off = 0;
    (void)state;
    /* 2026-01-15 12:00 UTC: Paris is UTC+1 in winter, +2 in July. */
    assert_int_equal(ctl_behaviour_zone_offset("Europe/Paris", 1768478400, &off), 0);
    assert_int_equal(off, 3600);
    assert_int_equal(ctl_behaviour_zone_offset("Europe/Paris", 1784116800, &off), 0);
    assert_int_equal(off, 7200);
}

static void test_limits_combine(void **state)
{
    json_t *pols = J("[{\"name\":\"b\",\"type\":\"behaviour\",\"identity_roles\":[\"#dev\"],"
                     "\"service_roles\":[],\"conn_rate\":10,\"quota\":500,\"actions\":[\"log\"]},"
                     "{\"name\":\"a\",\"type\":\"behaviour\",\"identity_roles\":[\"#dev\"],"
                     "\"service_roles\":[\"#web\"],\"conn_rate\":3,\"max_circuits\":2,"
                     "\"time\":\"08:00-18:00@UTC\",\"actions\":[\"block\",\"remove\"]},"
                     "{\"name\":\"c\",\"type\":\"dial\",\"identity_roles\":[\"#dev\"],"
                     "\"service_roles\":[\"#all\"]}]");
    json_t *id = J("{\"id\":\"i1\",\"name\":\"d1\",\"roles\":[\"dev\"]}");
    json_t *web = J("{\"id\":\"s1\",\"name\":\"web\",\"roles\":[\"web\"]}");
    json_t *db = J("{\"id\":\"s2\",\"name\":\"db\",\"roles\":[\"db\"]}");
    json_t *other = J("{\"id\":\"i2\",\"name\":\"x\",\"roles\":[\"ops\"]}");
    json_t *lim;
    (void)state;

    lim = ctl_behaviour_limits(pols, id, web, 1768478400);
    assert_non_null(lim);
    assert_int_equal(json_integer_value(json_object_get(lim, "rate")), 3); /* the strictest */
    assert_int_equal(json_integer_value(json_object_get(lim, "quota")), 500);
    assert_int_equal(json_integer_value(json_object_get(lim, "maxc")), 2);
    assert_int_equal(json_array_size(json_object_get(lim, "act")), 3); /* block, log, remove */
    assert_int_equal(json_integer_value(json_array_get(json_object_get(lim, "win"), 0)), 480);
    json_decref(lim);
    lim = ctl_behaviour_limits(pols, id, db, 1768478400); /* only "b" applies to db */
    assert_int_equal(json_integer_value(json_object_get(lim, "rate")), 10);
    assert_null(json_object_get(lim, "maxc"));
    json_decref(lim);
    assert_null(ctl_behaviour_limits(pols, other, web, 0));
    assert_int_equal(ctl_behaviour_identity_actions(pols, id),
                     CTL_ACT_BLOCK | CTL_ACT_LOG | CTL_ACT_REMOVE);
    assert_int_equal(ctl_behaviour_identity_actions(pols, other), 0);
    json_decref(pols);
    json_decref(id);
    json_decref(web);
    json_decref(db);
    json_decref(other);
}

static void test_fields(void **state)
{
    char err[256];
    json_t *f = json_object(), *b;
    (void)state;
    b = J("{\"conn_rate\":10,\"actions\":[\"block\",\"alert\"]}");
    assert_int_equal(ctl_behaviour_fields(b, 1, f, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(f, "conn_rate")), 10);
    json_decref(b);
    b = J("{\"conn_rate\":10}");
    assert_int_equal(ctl_behaviour_fields(b, 1, f, err, sizeof(err)), WEFT_EINVAL);
    json_decref(b);
    b = J("{\"actions\":[\"explode\"]}");
    assert_int_equal(ctl_behaviour_fields(b, 1, f, err, sizeof(err)), WEFT_EINVAL);
    json_decref(b);
    b = J("{\"quota\":-1,\"actions\":[\"log\"]}");
    assert_int_equal(ctl_behaviour_fields(b, 1, f, err, sizeof(err)), WEFT_EINVAL);
    json_decref(b);
    json_decref(f);
}

static void check_binding(const char *ident, const char *imei, const char *iccid, int want_rc,
                          int want_flag, int want_update)
{
    json_t *id = J(ident), *upd = NULL;
    char why[320];
    int flag = -1;

    assert_int_equal(ctl_binding_check(id, imei, iccid, &upd, why, sizeof(why), &flag), want_rc);
    if (want_rc == 0) {
        assert_int_equal(flag, want_flag);
        assert_int_equal(upd != NULL, want_update);
    }
    json_decref(upd);
    json_decref(id);
}

static void test_binding(void **state)
{
    (void)state;
    const char *exact = "{\"id\":\"i\",\"binding\":\"exact\",\"imei\":\"1\",\"iccid\":\"A\"}";
    check_binding(exact, "1", "A", 0, 0, 0);
    check_binding(exact, "2", "A", WEFT_EDENIED, 0, 0); /* the SIM in another device */
    check_binding(exact, "1", "B", WEFT_EDENIED, 0, 0); /* another SIM in the device */
    check_binding("{\"id\":\"i\",\"binding\":\"exact\"}", "1", "A", 0, 0, 1); /* first use */
    const char *iccid = "{\"id\":\"i\",\"binding\":\"iccid\",\"imei\":\"1\",\"iccid\":\"A\"}";
    check_binding(iccid, "2", "A", 0, 1, 1); /* IMEI change flagged and recorded */
    check_binding(iccid, "1", "B", WEFT_EDENIED, 0, 0);
    const char *imei = "{\"id\":\"i\",\"binding\":\"imei\",\"imei\":\"1\",\"iccid\":\"A\"}";
    check_binding(imei, "1", "B", 0, 1, 1);
    check_binding(imei, "2", "A", WEFT_EDENIED, 0, 0);
    check_binding("{\"id\":\"i\",\"binding\":\"none\",\"imei\":\"1\"}", "9", "Z", 0, 0, 0);

    json_t *id = J(exact), *hw = ctl_binding_claim(id);
    assert_string_equal(json_string_value(json_object_get(hw, "imei")), "1");
    json_decref(hw);
    json_decref(id);
    id = J("{\"id\":\"i\",\"binding\":\"none\"}");
    assert_null(ctl_binding_claim(id));
    json_decref(id);
}

/* ---- events and a webhook over loopback ---- */

typedef struct {
    int fd;
    char got[4096];
    int status;
} hook_srv;

static void *hook_thread(void *arg)
{
    hook_srv *h = arg;
    char reply[64];
    int c = accept(h->fd, NULL, NULL);
    size_t n = 0;
    ssize_t r;

    if (c < 0)
        return NULL;
    while (n < sizeof(h->got) - 1 && (r = recv(c, h->got + n, sizeof(h->got) - 1 - n, 0)) > 0) {
        n += (size_t)r;
        h->got[n] = '\0';
        if (strstr(h->got, "\r\n\r\n") && strstr(h->got, "}"))
            break;
    }
    snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", h->status);
    send(c, reply, strlen(reply), 0);
    close(c);
    return NULL;
}

static int hook_listen(hook_srv *h, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);

    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(h->fd, 4) < 0 ||
        getsockname(h->fd, (struct sockaddr *)&a, &l) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return 0;
}

static void test_webhook_post(void **state)
{
    hook_srv h = {.status = 204};
    char url[64], err[512];
    ctl_webhook_target tg = {.name = "soc", .url = url};
    pthread_t t;
    int port = 0;
    (void)state;

    assert_int_equal(hook_listen(&h, &port), 0);
    pthread_create(&t, NULL, hook_thread, &h);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/alerts", port);
    assert_int_equal(ctl_webhook_post(&tg, "{\"kind\":\"rate\"}", 15, 3000, err, sizeof(err)), 0);
    pthread_join(t, NULL);
    assert_non_null(strstr(h.got, "POST /alerts HTTP/1.1"));
    assert_non_null(strstr(h.got, "{\"kind\":\"rate\"}"));
    h.status = 500;
    pthread_create(&t, NULL, hook_thread, &h);
    assert_int_equal(ctl_webhook_post(&tg, "{}", 2, 3000, err, sizeof(err)), WEFT_EPROTO);
    assert_non_null(strstr(err, "500"));
    pthread_join(t, NULL);
    close(h.fd);
    /* Nobody listening: refused, not a hang. */
    assert_true(ctl_webhook_post(&tg, "{}", 2, 1000, err, sizeof(err)) < 0);
}

/* ---- HTTPS targets ---- */

static pr_ca hook_ca, other_ca;
static char *leaf_cert, *leaf_key;

static int tls_setup(void **state)
{
    static const char *const ips[] = {"127.0.0.1", NULL};
    pr_cert_req req = {
        .cn = "siem", .ips = ips, .usage = PR_CERT_SERVER, .not_after = (int64_t)time(NULL) + 3600};

    (void)state;
    assert_int_equal(pr_ca_create("siem", &hook_ca), 0);
    assert_int_equal(pr_ca_create("elsewhere", &other_ca), 0);
    assert_int_equal(pr_ca_issue(&hook_ca, &req, &leaf_cert, &leaf_key), 0);
    return 0;
}

static int tls_teardown(void **state)
{
    (void)state;
    free(leaf_cert);
    free(leaf_key);
    pr_ca_free(&hook_ca);
    pr_ca_free(&other_ca);
    return 0;
}

/* One ctl_webhook_post to https://host:PORT/alerts, a TLS 1.2-only target
 * with a certificate for 127.0.0.1; the handshakes it completed into *hs. */
static int post_tls12(const char *host, const char *ca, char *err, size_t cap, int *hs)
{
    ctl_webhook_target t = {.name = "soc", .ca = ca};
    char url[96];
    int ver, rc;
    tls_srv s;

    assert_int_equal(tls_srv_start(&s, leaf_cert, leaf_key, TLS1_2_VERSION, TLS1_2_VERSION, NULL),
                     0);
    snprintf(url, sizeof(url), "https://%s:%d/alerts", host, s.port);
    t.url = url;
    rc = ctl_webhook_post(&t, "{\"kind\":\"rate\"}", 15, 3000, err, cap);
    tls_srv_seen(&s, hs, &ver);
    tls_srv_stop(&s);
    if (rc == 0) {
        assert_int_equal(ver, TLS1_2_VERSION);
        assert_string_equal(s.body, "{\"kind\":\"rate\"}");
    }
    return rc;
}

static void expect_in(const char *err, const char *want)
{
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", err, want);
}

/* An https:// target on TLS 1.2 with a private CA: delivered with the
 * webhook's CA; without it (the system trust store, here another CA), or
 * with the wrong one, or under a name its certificate lacks, refused with
 * a sentence that says what to do, and never the network CA's. */
static void test_webhook_https(void **state)
{
    char err[512], path[] = "/tmp/weft-test-hook-ca-XXXXXX";
    int fd = mkstemp(path), hs;
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    (void)state;

    assert_non_null(f);
    fputs(other_ca.cert_pem, f);
    fclose(f);
    assert_int_equal(setenv("SSL_CERT_FILE", path, 1), 0);
    assert_int_equal(post_tls12("127.0.0.1", hook_ca.cert_pem, err, sizeof(err), &hs), 0);
    assert_int_equal(hs, 1);
    assert_int_equal(post_tls12("127.0.0.1", NULL, err, sizeof(err), &hs), WEFT_EUNTRUSTED);
    expect_in(err, "the webhook target's certificate is not trusted (unable to get local issuer "
                   "certificate): give the webhook its CA: weft webhook update soc --ca FILE");
    assert_null(strstr(err, "network CA"));
    assert_int_equal(post_tls12("127.0.0.1", other_ca.cert_pem, err, sizeof(err), &hs),
                     WEFT_EUNTRUSTED);
    expect_in(err, "it does not chain to the webhook's own CA; give the root CA that issued it");
    assert_int_equal(post_tls12("localhost", hook_ca.cert_pem, err, sizeof(err), &hs), WEFT_ECERT);
    expect_in(err, "the webhook target's certificate is not valid for localhost; give the webhook "
                   "a URL whose host is one of the DNS names or IP addresses");
    assert_int_equal(hs, 0);
    unsetenv("SSL_CERT_FILE");
    unlink(path);
}

/* Webhooks keep their CA: "trust" says which store verifies them; a CA
 * is for https:// only and must be certificates; update sets, keeps and
 * removes it. */
static void test_webhook_ca_store(void **state)
{
    char dir[] = "/tmp/weft-hook-XXXXXX", cmd[64];
    const char *ca = hook_ca.cert_pem;
    ctl_events *e = NULL;
    json_t *rec = NULL, *hooks = NULL;
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(ctl_events_open(NULL, dir, &e), 0);
    assert_int_equal(ctl_webhook_add(e, "siem", "https://127.0.0.1:9/x", ca, &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "trust")), "ca");
    assert_string_equal(json_string_value(json_object_get(rec, "ca")), ca);
    json_decref(rec);
    assert_int_equal(ctl_webhook_add(e, "plain", "http://127.0.0.1:9/x", ca, &rec), WEFT_EINVAL);
    assert_int_equal(ctl_webhook_add(e, "junk", "https://127.0.0.1:9/x", "hello", &rec),
                     WEFT_EINVAL);
    assert_int_equal(ctl_webhook_add(e, "keyed", "https://127.0.0.1:9/x", leaf_key, &rec),
                     WEFT_EINVAL);
    assert_int_equal(ctl_webhook_add(e, "chat", "https://127.0.0.1:9/y", "", &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "trust")), "system");
    assert_null(json_object_get(rec, "ca"));
    json_decref(rec);
    /* update: a new URL keeps the CA; http:// with it is refused; "" removes it */
    assert_int_equal(ctl_webhook_update(e, "siem", "https://127.0.0.1:10/z", NULL, &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "url")), "https://127.0.0.1:10/z");
    assert_string_equal(json_string_value(json_object_get(rec, "ca")), ca);
    json_decref(rec);
    assert_int_equal(ctl_webhook_update(e, "siem", "http://127.0.0.1:10/z", NULL, &rec),
                     WEFT_EINVAL);
    assert_int_equal(ctl_webhook_update(e, "siem", NULL, "", &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "trust")), "system");
    json_decref(rec);
    assert_int_equal(ctl_webhook_update(e, "chat", NULL, other_ca.cert_pem, &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "trust")), "ca");
    json_decref(rec);
    assert_int_equal(ctl_webhook_update(e, "chat", NULL, "-----BEGIN CERTIFICATE-----\n", &rec),
                     WEFT_EINVAL);
    assert_int_equal(ctl_webhook_update(e, "nobody", NULL, "", &rec), WEFT_ENOTFOUND);
    assert_int_equal(ctl_webhook_list(e, &hooks), 0);
    assert_int_equal(json_array_size(hooks), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hooks, 0), "name")),
                        "chat");
    assert_string_equal(json_string_value(json_object_get(json_array_get(hooks, 0), "ca")),
                        other_ca.cert_pem);
    json_decref(hooks);
    ctl_events_close(e);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* An events.db from before webhooks had a CA: opened, its webhooks kept
 * (verified with the system trust store), and a CA can be given. */
static void test_webhook_store_upgrade(void **state)
{
    char dir[] = "/tmp/weft-hook-XXXXXX", path[96];
    ctl_events *e = NULL;
    json_t *hooks = NULL, *rec = NULL;
    sqlite3 *db = NULL;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, CTL_EVENTS_DB);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE webhooks (id TEXT PRIMARY KEY NOT NULL, name TEXT "
                                  "NOT NULL UNIQUE, url TEXT NOT NULL, created_at INTEGER NOT "
                                  "NULL); INSERT INTO webhooks VALUES('w1', 'old', "
                                  "'https://127.0.0.1:9/x', 1700000000);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ctl_events_open(NULL, dir, &e), 0);
    assert_int_equal(ctl_webhook_list(e, &hooks), 0);
    assert_int_equal(json_array_size(hooks), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hooks, 0), "trust")),
                        "system");
    json_decref(hooks);
    assert_int_equal(ctl_webhook_update(e, "old", NULL, hook_ca.cert_pem, &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "trust")), "ca");
    json_decref(rec);
    ctl_events_close(e);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

static void test_event_store(void **state)
{
    char dir[] = "/tmp/weft-beh-XXXXXX", path[128], line[512];
    ctl_events *e = NULL;
    json_t *ev, *list = NULL, *hooks = NULL, *rec = NULL;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(ctl_events_open(NULL, dir, &e), 0);
    ev = J("{\"kind\":\"rate\",\"identity\":\"i1\",\"actions\":[\"log\"]}");
    assert_int_equal(ctl_events_emit(NULL, e, ev), 0);
    json_decref(ev);
    ev = J("{\"kind\":\"destination\",\"identity\":\"i2\",\"actions\":[\"log\"]}");
    assert_int_equal(ctl_events_emit(NULL, e, ev), 0);
    json_decref(ev);
    assert_int_equal(ctl_events_list(e, 0, 100, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    assert_int_equal(ctl_events_list(e, 1, 100, NULL, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(ctl_events_list(e, 0, 100, "i1", &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(ctl_webhook_add(e, "soc", "http://127.0.0.1:9/x", NULL, &rec), 0);
    json_decref(rec);
    assert_int_equal(ctl_webhook_add(e, "soc", "http://127.0.0.1:9/y", NULL, &rec), WEFT_EEXISTS);
    assert_int_equal(ctl_webhook_add(e, "bad", "ftp://x", NULL, &rec), WEFT_EINVAL);
    assert_int_equal(ctl_webhook_list(e, &hooks), 0);
    assert_int_equal(json_array_size(hooks), 1);
    json_decref(hooks);
    char text[2048];
    assert_true(ctl_events_metrics(e, text, sizeof(text)) > 0);
    assert_non_null(strstr(text, "weft_events_total{kind=\"rate\"} 1\n"));
    assert_non_null(strstr(text, "weft_events_total{kind=\"destination\"} 1\n"));
    assert_int_equal(ctl_events_metrics(e, text, 40), WEFT_EINVAL);
    assert_int_equal(ctl_webhook_del(e, "soc"), 0);
    assert_int_equal(ctl_webhook_del(e, "soc"), WEFT_ENOTFOUND);
    ctl_events_close(e);
    snprintf(path, sizeof(path), "%s/events.jsonl", dir);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "\"kind\":\"rate\""));
    fclose(f);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_parse),     cmocka_unit_test(test_zone_offset),
        cmocka_unit_test(test_limits_combine),   cmocka_unit_test(test_fields),
        cmocka_unit_test(test_binding),          cmocka_unit_test(test_webhook_post),
        cmocka_unit_test(test_event_store),      cmocka_unit_test(test_webhook_https),
        cmocka_unit_test(test_webhook_ca_store), cmocka_unit_test(test_webhook_store_upgrade),
    };
    return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}
