/* Unit tests for the device-access modules of the controller: credentials
 * sealed at rest (real libsodium, real files), the CA key encrypted at rest
 * (real OpenSSL), proof of possession of a factory key, reading enterprise
 * CA certificates, identity name templates, and migration 2 over a store at
 * schema version 1 (real SQLite). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "controller/controller.h"
#include "controller/credentials.h"
#include "controller/devcert.h"
#include "proto/idfile.h"
#include "proto/pki.h"
#include "proto/proof.h"
#include "weft/errors.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/weft-ctl-boot.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void secrets_roundtrip_and_tamper(void **state)
{
    ctl c;
    json_t *plain = json_pack("{s:{s:s}}", "files", "k", "c2VjcmV0"), *out = NULL;
    char *box = NULL, path[128];
    struct stat st;
    (void)state;

    memset(&c, 0, sizeof(c));
    snprintf(c.cfg.dir, sizeof(c.cfg.dir), "%s", dir);
    assert_int_equal(ctl_secrets_seal(&c, plain, &box), 0);
    snprintf(path, sizeof(path), "%s/secrets.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_null(strstr(box, "c2VjcmV0"));
    assert_int_equal(ctl_secrets_open(&c, box, &out), 0);
    assert_true(json_equal(plain, out));
    json_decref(out);
    box[10] = box[10] == 'A' ? 'B' : 'A'; /* one altered byte */
    assert_int_equal(ctl_secrets_open(&c, box, &out), WEFT_ECRYPTO);
    /* A box sealed under another key does not open. */
    free(box);
    assert_int_equal(ctl_secrets_seal(&c, plain, &box), 0);
    randombytes_buf(c.secrets_key, sizeof(c.secrets_key));
    assert_int_equal(ctl_secrets_open(&c, box, &out), WEFT_ECRYPTO);
    free(box);
    json_decref(plain);
}

static void ca_key_encrypted_at_rest(void **state)
{
    pr_ca ca = {0};
    char path[128], err[256], *key = NULL, *text = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(pr_ca_create("t", &ca), 0);
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    assert_int_equal(ctl_cakey_save(path, ca.key_pem, "pass phrase"), 0);
    assert_int_equal(pr_read_file(path, 65536, &text, &len), 0);
    assert_non_null(strstr(text, "ENCRYPTED PRIVATE KEY"));
    free(text);
    unsetenv(CTL_CA_PASSPHRASE_ENV);
    unsetenv(CTL_CA_PASSPHRASE_FILE_ENV);
    assert_int_equal(ctl_cakey_load(path, &key, err, sizeof(err)), WEFT_EDENIED);
    assert_non_null(strstr(err, "passphrase"));
    setenv(CTL_CA_PASSPHRASE_ENV, "wrong", 1);
    assert_int_equal(ctl_cakey_load(path, &key, err, sizeof(err)), WEFT_EDENIED);
    setenv(CTL_CA_PASSPHRASE_ENV, "pass phrase", 1);
    assert_int_equal(ctl_cakey_load(path, &key, err, sizeof(err)), 0);
    assert_int_equal(pr_pki_key_matches(ca.cert_pem, key), 1);
    unsetenv(CTL_CA_PASSPHRASE_ENV);
    free(key);
    pr_ca_free(&ca);
}

static void proof_of_possession(void **state)
{
    static const char fp[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    pr_ca ca = {0};
    pr_cert_req req = {.cn = "dev", .usage = PR_CERT_CLIENT, .not_after = 4102444800LL};
    char *cert = NULL, *key = NULL, *other = NULL, *csr = NULL, *sig = NULL, *bad = NULL;
    (void)state;

    assert_int_equal(pr_ca_create("m", &ca), 0);
    assert_int_equal(pr_ca_issue(&ca, &req, &cert, &key), 0);
    assert_int_equal(pr_pki_keygen(&other), 0);
    assert_int_equal(pr_pki_csr(other, "x", &csr), 0);
    assert_int_equal(pr_proof_sign(key, fp, csr, &sig), 0);
    assert_int_equal(pr_proof_check(cert, fp, csr, sig), 0);
    /* The same proof for another network's CA does not verify. */
    assert_int_equal(pr_proof_check(cert, "f0112233445566778899aabbccddeeff"
                                          "00112233445566778899aabbccddeeff",
                                    csr, sig),
                     WEFT_EDENIED);
    assert_int_equal(pr_proof_sign(other, fp, csr, &bad), 0);
    assert_int_equal(pr_proof_check(cert, fp, csr, bad), WEFT_EDENIED); /* wrong key */
    assert_int_equal(pr_proof_check(cert, fp, csr, "not base64!"), WEFT_EINVAL);
    assert_true(ctl_devcert_is_ca(ca.cert_pem));
    assert_false(ctl_devcert_is_ca(cert));
    free(cert), free(key), free(other), free(csr), free(sig), free(bad);
    pr_ca_free(&ca);
}

static void name_templates(void **state)
{
    char out[129];
    (void)state;

    assert_int_equal(ctl_ca_render_name("{cn}", "sensor-1", "0a", "abcdef0123456789ff", out,
                                        sizeof(out)), 0);
    assert_string_equal(out, "sensor-1");
    assert_int_equal(ctl_ca_render_name("dev-{serial}-{fingerprint}", "x", "0a1b",
                                        "abcdef0123456789ffff", out, sizeof(out)), 0);
    assert_string_equal(out, "dev-0a1b-abcdef0123456789");
    assert_int_equal(ctl_ca_render_name("{cn}", "has space", "0a", "ab", out, sizeof(out)),
                     WEFT_EINVAL);
    assert_int_equal(ctl_ca_render_name("{cn}", "", "0a", "ab", out, sizeof(out)), WEFT_EINVAL);
    assert_int_equal(ctl_ca_render_name("{cn}{cn}", "abcdef", "0", "a", out, 8), WEFT_ETOOBIG);
}

/* A store left at version 1 gains the cas and credentials tables on open. */
static void migrates_from_version_1(void **state)
{
    char path[128];
    ctl_store *s = NULL;
    sqlite3 *db = NULL;
    json_t *rec = json_pack("{s:s, s:s, s:[s], s:s}", "id", "c1", "name", "cred", "roles", "r",
                            "box", "x"), *got = NULL;
    (void)state;

    snprintf(path, sizeof(path), "%s/weft.db", dir);
    assert_int_equal(ctl_store_open(path, &s), 0);
    ctl_store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TRIGGER identities_credentials_del;"
                                  "DROP TABLE cas; DROP TABLE credentials;"
                                  "UPDATE meta SET value = 1 WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ctl_store_open(path, &s), 0);
    assert_int_equal(ctl_store_schema_version(s), 2);
    assert_int_equal(ctl_store_create(s, "credentials", rec), 0);
    assert_int_equal(ctl_store_get(s, "credentials", "cred", &got), 0);
    assert_string_equal(json_string_value(json_object_get(got, "box")), "x");
    json_decref(got);
    json_decref(rec);
    ctl_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(secrets_roundtrip_and_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_key_encrypted_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(proof_of_possession, setup, teardown),
        cmocka_unit_test_setup_teardown(name_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(migrates_from_version_1, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
