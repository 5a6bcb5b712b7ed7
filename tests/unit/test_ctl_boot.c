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
#include <time.h>
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
    assert_true(ctl_store_schema_version(s) >= 2); /* and any later migrations */
    assert_int_equal(ctl_store_create(s, "credentials", rec), 0);
    assert_int_equal(ctl_store_get(s, "credentials", "cred", &got), 0);
    assert_string_equal(json_string_value(json_object_get(got, "box")), "x");
    json_decref(got);
    json_decref(rec);
    ctl_store_close(s);
}


/* ---- intermediates (ca_rotate.c) ---- */

static int count_certs(const char *pem)
{
    int n = 0;

    for (const char *p = pem; (p = strstr(p, "BEGIN CERTIFICATE")) != NULL; p++)
        n++;
    return n;
}

/* A controller view of dir with the root certificate only. */
static void issuer_ctl(ctl *c, const pr_ca *root)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->cfg.dir, sizeof(c->cfg.dir), "%s", dir);
    snprintf(c->cfg.ca_key, sizeof(c->cfg.ca_key), "%s/ca.key", dir);
    c->cfg.cert_validity = 3600;
    c->ca.cert_pem = strdup(root->cert_pem);
    assert_non_null(c->ca.cert_pem);
}

static void issuer_ctl_free(ctl *c)
{
    ctl_issuer_free(c);
    pr_ca_free(&c->ca);
}

static char *issue_leaf(const ctl *c, int64_t not_after)
{
    pr_cert_req req = {.cn = "dev", .uri = "spiffe://u/identity/dev", .usage = PR_CERT_CLIENT,
                       .not_after = not_after};
    char *cert = NULL, *key = NULL;

    assert_int_equal(ctl_ca_issue(c, &req, &cert, &key), 0);
    assert_int_equal(pr_pki_key_matches(cert, key), 1);
    free(key);
    return cert;
}

static void intermediate_rotation(void **state)
{
    pr_ca root = {0}, other = {0}, keep = {0};
    char name[48], err[256], path[128];
    char *cert1, *cert2, *leaf_only;
    int64_t na, ina;
    ctl c;

    (void)state;
    assert_int_equal(pr_ca_create("u", &root), 0);
    assert_int_equal(ctl_ca_rotate(dir, "u", &root, NULL, 3600, name, sizeof(name), &keep, err,
                                   sizeof(err)),
                     0);
    assert_string_equal(name, "intermediate-1");
    assert_int_equal(pr_pki_verify(keep.cert_pem, root.cert_pem), 0);
    pr_ca_free(&keep);

    issuer_ctl(&c, &root);
    assert_int_equal(ctl_issuer_load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.issuer_is_intermediate, 1);
    assert_null(c.ca.key_pem); /* the root key is not needed to issue */
    cert1 = issue_leaf(&c, time(NULL) + 3600);
    assert_int_equal(count_certs(cert1), 2);
    assert_int_equal(pr_pki_verify(cert1, root.cert_pem), 0);
    /* Without its intermediate a leaf does not verify against the root. */
    leaf_only = strdup(cert1);
    *strstr(strstr(leaf_only, "END CERTIFICATE") + 1, "-----BEGIN") = '\0';
    assert_int_equal(pr_pki_verify(leaf_only, root.cert_pem), WEFT_EUNTRUSTED);
    /* A leaf never outlives its intermediate. */
    free(cert2 = issue_leaf(&c, time(NULL) + 20LL * 365 * 86400));
    issuer_ctl_free(&c);

    assert_int_equal(ctl_ca_rotate(dir, "u", &root, NULL, 3600, name, sizeof(name), NULL, err,
                                   sizeof(err)),
                     0);
    assert_string_equal(name, "intermediate-2");
    snprintf(path, sizeof(path), "%s/intermediate-1.key", dir);
    assert_int_equal(access(path, F_OK), -1); /* the retired key is gone */
    issuer_ctl(&c, &root);
    assert_int_equal(ctl_issuer_load(&c, err, sizeof(err)), 0);
    cert2 = issue_leaf(&c, time(NULL) + 20LL * 365 * 86400);
    assert_int_equal(pr_pki_cert_not_after(cert2, &na), 0);
    assert_int_equal(pr_pki_cert_not_after(c.issuer.cert_pem, &ina), 0);
    assert_true(na <= ina);
    /* Both chains verify against the one root during the overlap. */
    assert_int_equal(pr_pki_verify(cert2, root.cert_pem), 0);
    assert_int_equal(pr_pki_verify(cert1, root.cert_pem), 0);
    assert_int_not_equal(strcmp(cert1 + strlen(cert1) / 2, cert2 + strlen(cert2) / 2), 0);
    issuer_ctl_free(&c);

    /* An intermediate that does not chain to ca.pem is refused at start. */
    assert_int_equal(pr_ca_create("other", &other), 0);
    issuer_ctl(&c, &other);
    assert_true(ctl_issuer_load(&c, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "does not verify against ca.pem"));
    issuer_ctl_free(&c);
    free(cert1);
    free(cert2);
    free(leaf_only);
    pr_ca_free(&other);
    pr_ca_free(&root);
}

/* A data directory from before intermediates: the root signs bare leaves. */
static void older_dir_signs_with_root(void **state)
{
    pr_ca root = {0};
    char err[256], path[128];
    char *cert;
    ctl c;

    (void)state;
    assert_int_equal(pr_ca_create("u", &root), 0);
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    assert_int_equal(ctl_cakey_save(path, root.key_pem, NULL), 0);
    issuer_ctl(&c, &root);
    assert_int_equal(ctl_issuer_load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.issuer_is_intermediate, 0);
    cert = issue_leaf(&c, time(NULL) + 3600);
    assert_int_equal(count_certs(cert), 1);
    assert_int_equal(pr_pki_verify(cert, root.cert_pem), 0);
    free(cert);
    if (c.ca.key_pem)
        free(c.ca.key_pem);
    c.ca.key_pem = NULL;
    issuer_ctl_free(&c);
    pr_ca_free(&root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(secrets_roundtrip_and_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_key_encrypted_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(proof_of_possession, setup, teardown),
        cmocka_unit_test_setup_teardown(name_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(migrates_from_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(intermediate_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(older_dir_signs_with_root, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
