/* idfile: real files in a private temporary directory, real certificates from a
 * real CA, modes checked with stat(). */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "proto/idfile.h"
#include "proto/pki.h"
#include "weft/errors.h"

static char g_dir[64];
static pr_ca g_ca;
static char *g_cert, *g_key, *g_cert2, *g_key2;

static void issue(char **cert, char **key)
{
    pr_cert_req r = {.cn = "dev", .uri = "spiffe://acme/identity/d1", .usage = PR_CERT_CLIENT,
                     .not_after = (int64_t)time(NULL) + 3600};

    assert_int_equal(pr_ca_issue(&g_ca, &r, cert, key), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/weft-test-idfile-XXXXXX");
    if (mkdtemp(g_dir) == NULL || pr_ca_create("acme", &g_ca) < 0)
        return -1;
    issue(&g_cert, &g_key);
    issue(&g_cert2, &g_key2);
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (unlink(p) < 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    rm_dir(g_dir);
    pr_ca_free(&g_ca);
    free(g_cert);
    free(g_key);
    free(g_cert2);
    free(g_key2);
    return 0;
}

static const char *path_of(const char *name)
{
    static char p[4][256];
    static int slot;

    slot = (slot + 1) % 4;
    snprintf(p[slot], sizeof(p[slot]), "%s/%s", g_dir, name);
    return p[slot];
}

static int count_entries(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 2;
}

static pr_idfile fixture(void)
{
    pr_idfile id = {.kind = "identity", .id = "d1", .name = "sensor-7", .network = "acme",
                    .controller = "https://127.0.0.1:1280"};

    id.cert_pem = g_cert;
    id.key_pem = g_key;
    id.ca_pem = g_ca.cert_pem;
    return id;
}

/* The JSON of a valid identity file, for tests to damage. */
static json_t *fixture_json(void)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version", 1, "kind", "identity", "id",
                     "d1", "name", "sensor-7", "network", "acme", "controller", "https://127.0.0.1:1280",
                     "cert", g_cert, "key", g_key, "ca", g_ca.cert_pem);
}

static void write_text(const char *path, const char *text, size_t len)
{
    assert_int_equal(pr_write_file_secure(path, text, len), 0);
}

static void write_json(const char *path, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);

    assert_non_null(text);
    write_text(path, text, strlen(text));
    free(text);
    json_decref(root);
}

/* Loads path, expects ret, and checks that err mentions each of the given words. */
static void expect_load(const char *path, int ret, const char *w1, const char *w2)
{
    pr_idfile id;
    char err[512];

    assert_int_equal(pr_idfile_load(path, &id, err, sizeof(err)), ret);
    assert_null(id.cert_pem);
    assert_null(id.key_pem);
    assert_null(id.ca_pem);
    if (w1 != NULL && strstr(err, w1) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, w1);
    if (w2 != NULL && strstr(err, w2) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, w2);
}

static void test_round_trip(void **state)
{
    pr_idfile in = fixture(), out;
    const char *p = path_of("id.json");
    char err[256];
    struct stat st;
    mode_t old = umask(0);

    (void)state;
    /* Even with an open umask the file is private. */
    assert_int_equal(pr_idfile_save(p, &in), 0);
    umask(old);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(pr_idfile_load(p, &out, err, sizeof(err)), 0);
    assert_string_equal(out.kind, "identity");
    assert_string_equal(out.id, "d1");
    assert_string_equal(out.name, "sensor-7");
    assert_string_equal(out.network, "acme");
    assert_string_equal(out.controller, "https://127.0.0.1:1280");
    assert_string_equal(out.cert_pem, g_cert);
    assert_string_equal(out.key_pem, g_key);
    assert_string_equal(out.ca_pem, g_ca.cert_pem);
    pr_idfile_free(&out);
    assert_null(out.key_pem);
    pr_idfile_free(NULL);
    unlink(p);
}

static void test_overwrite_leaves_no_temp(void **state)
{
    pr_idfile in = fixture(), out;
    const char *p = path_of("over.json");
    char err[256];
    int before = count_entries();

    (void)state;
    assert_int_equal(pr_idfile_save(p, &in), 0);
    snprintf(in.name, sizeof(in.name), "renamed");
    assert_int_equal(pr_idfile_save(p, &in), 0);
    assert_int_equal(count_entries(), before + 1);
    assert_int_equal(pr_idfile_load(p, &out, err, sizeof(err)), 0);
    assert_string_equal(out.name, "renamed");
    pr_idfile_free(&out);
    unlink(p);
}

static void test_save_rejects_incomplete(void **state)
{
    pr_idfile in = fixture();
    const char *p = path_of("bad-save.json");

    (void)state;
    snprintf(in.kind, sizeof(in.kind), "robot");
    assert_int_equal(pr_idfile_save(p, &in), WEFT_EINVAL);
    in = fixture();
    in.ca_pem = NULL;
    assert_int_equal(pr_idfile_save(p, &in), WEFT_EINVAL);
    assert_int_equal(access(p, F_OK), -1);
}

static void test_missing_fields(void **state)
{
    static const char *const names[] = {"version", "kind", "id", "name", "network", "controller",
                                        "cert", "key", "ca"};
    const char *p = path_of("missing.json");

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *root = fixture_json();
        char quoted[32];

        json_object_del(root, names[i]);
        write_json(p, root);
        snprintf(quoted, sizeof(quoted), "'%s'", names[i]);
        expect_load(p, WEFT_EINVAL, quoted, "missing");
    }
    unlink(p);
}

static void test_bad_field_values(void **state)
{
    const char *p = path_of("bad.json");
    json_t *root;
    char longname[200];

    (void)state;
    root = fixture_json();
    json_object_set_new(root, "cert", json_integer(5));
    write_json(p, root);
    expect_load(p, WEFT_EINVAL, "'cert' is not a string", "re-enrol the device");

    root = fixture_json();
    json_object_set_new(root, "kind", json_string("robot"));
    write_json(p, root);
    expect_load(p, WEFT_EINVAL, "'kind'", NULL);

    root = fixture_json();
    json_object_set_new(root, "version", json_integer(2));
    write_json(p, root);
    expect_load(p, WEFT_EVERSION, "'version'", NULL);

    root = fixture_json();
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    json_object_set_new(root, "name", json_string(longname));
    write_json(p, root);
    expect_load(p, WEFT_EINVAL, "'name' is too long", NULL);

    root = fixture_json();
    json_object_set_new(root, "id", json_string(""));
    write_json(p, root);
    expect_load(p, WEFT_EINVAL, "'id' is empty", NULL);

    root = fixture_json();
    json_object_set_new(root, "kind", json_string("router"));
    json_object_set_new(root, "ca", json_string("not a certificate"));
    write_json(p, root);
    expect_load(p, WEFT_ECERT, "'ca'", "re-enrol the router");
    unlink(p);
}

static void test_mismatched_key(void **state)
{
    const char *p = path_of("mismatch.json");
    json_t *root = fixture_json();

    (void)state;
    json_object_set_new(root, "key", json_string(g_key2));
    write_json(p, root);
    expect_load(p, WEFT_ECERT, "'key' is not the private key of 'cert'", "re-enrol");
    root = fixture_json();
    json_object_set_new(root, "key", json_string("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
    write_json(p, root);
    expect_load(p, WEFT_ECERT, "'key' is not a PEM private key", NULL);
    unlink(p);
}

static void test_truncated_and_malformed(void **state)
{
    const char *p = path_of("trunc.json");
    json_t *root = fixture_json();
    char *text = json_dumps(root, JSON_INDENT(2));
    size_t len = strlen(text);

    (void)state;
    write_text(p, text, len / 2);
    expect_load(p, WEFT_EJSON, "not a JSON object", NULL);
    write_text(p, text, 0);
    expect_load(p, WEFT_EJSON, NULL, NULL);
    write_text(p, "[1,2]", 5);
    expect_load(p, WEFT_EJSON, NULL, NULL);
    write_text(p, "{\"version\":1,\"version\":1}", 25);
    expect_load(p, WEFT_EJSON, NULL, NULL);
    free(text);
    json_decref(root);
    unlink(p);
}

/* pr_idfile_parse reads exactly len bytes: a buffer without a NUL is fine. */
static void test_parse_buffer_without_nul(void **state)
{
    json_t *root = fixture_json();
    char *text = json_dumps(root, JSON_COMPACT);
    size_t len = strlen(text);
    char *exact = malloc(len);
    pr_idfile id;
    char err[256];

    (void)state;
    memcpy(exact, text, len);
    assert_int_equal(pr_idfile_parse(exact, len, &id, err, sizeof(err)), 0);
    assert_string_equal(id.name, "sensor-7");
    pr_idfile_free(&id);
    assert_int_equal(pr_idfile_parse(exact, len - 1, &id, err, sizeof(err)), WEFT_EJSON);
    free(exact);
    free(text);
    json_decref(root);
}

static void test_modes(void **state)
{
    pr_idfile in = fixture(), out;
    const char *p = path_of("mode.json");
    char err[512];

    (void)state;
    assert_int_equal(pr_idfile_save(p, &in), 0);
    assert_int_equal(chmod(p, 0644), 0);
    expect_load(p, WEFT_EDENIED, "chmod 600", p);
    assert_int_equal(chmod(p, 0602), 0);
    expect_load(p, WEFT_EDENIED, "chmod 600", NULL);
    /* Group-readable: loaded, with a warning in the log. */
    assert_int_equal(chmod(p, 0640), 0);
    assert_int_equal(pr_idfile_load(p, &out, err, sizeof(err)), 0);
    pr_idfile_free(&out);
    unlink(p);
    expect_load(p, WEFT_ENOTFOUND, p, NULL);
}

static void test_read_file(void **state)
{
    const char *p = path_of("plain.txt");
    const char *fifo = path_of("fifo");
    char *out = NULL;
    size_t len = 99;

    (void)state;
    write_text(p, "hello", 5);
    assert_int_equal(pr_read_file(p, 5, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(out, "hello");
    free(out);
    assert_int_equal(pr_read_file(p, 4, &out, &len), WEFT_ETOOBIG);
    assert_null(out);
    write_text(p, "", 0);
    assert_int_equal(pr_read_file(p, 4, &out, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(pr_read_file(g_dir, 4096, &out, &len), WEFT_EINVAL);
    assert_int_equal(pr_read_file("/dev/null", 4096, &out, &len), WEFT_EINVAL);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(pr_read_file(fifo, 4096, &out, &len), WEFT_EINVAL);
    assert_int_equal(pr_read_file(path_of("absent"), 4096, &out, &len), WEFT_ENOTFOUND);
    /* fstat says 0 bytes here: the buffer must grow, and stop at the limit. */
    assert_int_equal(pr_read_file("/proc/self/status", 1 << 20, &out, &len), 0);
    assert_true(len > 100 && strlen(out) == len);
    assert_non_null(strstr(out, "Name:"));
    free(out);
    assert_int_equal(pr_read_file("/proc/self/status", 10, &out, &len), WEFT_ETOOBIG);
    assert_int_equal(pr_read_file(p, SIZE_MAX, &out, &len), 0);
    free(out);
    unlink(fifo);
    unlink(p);
}

static void test_write_file_secure(void **state)
{
    const char *p = path_of("secret.key");
    char *out = NULL;
    size_t len = 0;
    struct stat st;
    mode_t old = umask(0);

    (void)state;
    write_text(p, "one", 3);
    assert_int_equal(chmod(p, 0644), 0);
    /* Replacing a wider file still yields 0600: the new inode is ours. */
    write_text(p, "two!", 4);
    umask(old);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(pr_read_file(p, 64, &out, &len), 0);
    assert_int_equal(len, 4);
    assert_string_equal(out, "two!");
    free(out);
    assert_int_equal(pr_write_file_secure(path_of("nodir/x"), "a", 1), WEFT_ENOTFOUND);
    assert_int_equal(pr_write_file_secure("", "a", 1), WEFT_EINVAL);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_overwrite_leaves_no_temp),
        cmocka_unit_test(test_save_rejects_incomplete),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_bad_field_values),
        cmocka_unit_test(test_mismatched_key),
        cmocka_unit_test(test_truncated_and_malformed),
        cmocka_unit_test(test_parse_buffer_without_nul),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_write_file_secure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
