/* The network CA key at rest. Without a passphrase ca.key is a clear PKCS#8
 * PEM, 0600, as before; with one it is an encrypted PKCS#8 PEM (PBES2:
 * AES-256-CBC under PBKDF2-HMAC-SHA256), and `run` needs the same passphrase
 * (WEFT_CA_PASSPHRASE, or a file named by --ca-passphrase-file or
 * WEFT_CA_PASSPHRASE_FILE). The clear key lives only in the controller's
 * memory. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "proto/idfile.h"
#include "weft/errors.h"

#define KEY_PEM_MAX    (64 * 1024)
#define PASSPHRASE_MAX 1024
#define ENCRYPTED_TAG  "-----BEGIN ENCRYPTED PRIVATE KEY-----"

static int bio_string(BIO *b, char **out)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);

    if (n <= 0 || (*out = malloc((size_t)n + 1)) == NULL)
        return n <= 0 ? WEFT_ECRYPTO : WEFT_ENOMEM;
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    return 0;
}

/* Re-encodes a key: encrypted under pass, or in clear when pass is NULL. */
static int reencode(EVP_PKEY *k, const char *pass, char **out)
{
    BIO *b = BIO_new(BIO_s_mem());
    int ok, rc;

    if (b == NULL)
        return WEFT_ENOMEM;
    if (pass != NULL)
        ok = PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), pass, (int)strlen(pass), NULL,
                                           NULL);
    else
        ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    rc = ok == 1 ? bio_string(b, out) : WEFT_ECRYPTO;
    BIO_free_all(b);
    return rc;
}

static EVP_PKEY *parse_key(const char *pem, const char *pass)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)(pass ? pass : "")) : NULL;

    BIO_free(b);
    return k;
}

int ctl_cakey_save(const char *path, const char *key_pem, const char *passphrase)
{
    EVP_PKEY *k = NULL;
    char *enc = NULL;
    int rc;

    if (passphrase == NULL)
        return pr_write_file_secure(path, key_pem, strlen(key_pem));
    if (passphrase[0] == '\0' || strlen(passphrase) > PASSPHRASE_MAX)
        return WEFT_EINVAL;
    rc = WEFT_ECRYPTO;
    if ((k = parse_key(key_pem, NULL)) == NULL || (rc = reencode(k, passphrase, &enc)) < 0)
        goto out;
    rc = pr_write_file_secure(path, enc, strlen(enc));
out:
    ERR_clear_error();
    free(enc);
    EVP_PKEY_free(k);
    return rc;
}

int ctl_passphrase_read(const char *path, char **out, char *err, size_t errcap)
{
    size_t len = 0;
    int rc = pr_read_file(path, PASSPHRASE_MAX + 2, out, &len);

    if (rc < 0) {
        ctl_errf(err, errcap, "cannot read the passphrase file %s (%s)", path, weft_strerror(rc));
        return rc;
    }
    (*out)[strcspn(*out, "\r\n")] = '\0';
    if ((*out)[0] == '\0') {
        sodium_memzero(*out, len);
        free(*out);
        *out = NULL;
        ctl_errf(err, errcap, "the passphrase file %s is empty", path);
        return WEFT_EINVAL;
    }
    return 0;
}

/* The passphrase from the environment: the variable itself, or a file. */
int ctl_cakey_passphrase(char **out, char *err, size_t errcap)
{
    const char *v = getenv(CTL_CA_PASSPHRASE_ENV);
    const char *f = getenv(CTL_CA_PASSPHRASE_FILE_ENV);

    *out = NULL;
    if (v != NULL && v[0] != '\0')
        return (*out = strdup(v)) ? 0 : WEFT_ENOMEM;
    if (f != NULL && f[0] != '\0')
        return ctl_passphrase_read(f, out, err, errcap);
    ctl_errf(err, errcap,
             "the CA key is encrypted: give its passphrase with --ca-passphrase-file FILE or "
             "the environment variable %s",
             CTL_CA_PASSPHRASE_ENV);
    return WEFT_EDENIED;
}

static int decrypt(const char *path, const char *pem, char **key_pem, char *err, size_t errcap)
{
    char *pass = NULL;
    EVP_PKEY *k = NULL;
    int rc;

    if ((rc = ctl_cakey_passphrase(&pass, err, errcap)) < 0)
        return rc;
    if ((k = parse_key(pem, pass)) == NULL) {
        ctl_errf(err, errcap, "cannot decrypt %s: wrong passphrase (or a damaged file)", path);
        rc = WEFT_EDENIED;
        goto out;
    }
    rc = reencode(k, NULL, key_pem);
out:
    ERR_clear_error();
    EVP_PKEY_free(k);
    if (pass)
        sodium_memzero(pass, strlen(pass));
    free(pass);
    return rc;
}

int ctl_cakey_load(const char *path, char **key_pem, char *err, size_t errcap)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = pr_read_file(path, KEY_PEM_MAX, &pem, &len);

    *key_pem = NULL;
    if (rc < 0) {
        ctl_errf(err, errcap,
                 "cannot read %s (%s); check the data directory or restore it from a backup",
                 path, weft_strerror(rc));
        return rc;
    }
    if (strstr(pem, ENCRYPTED_TAG) == NULL) {
        *key_pem = pem;
        return 0;
    }
    rc = decrypt(path, pem, key_pem, err, errcap);
    sodium_memzero(pem, len);
    free(pem);
    return rc;
}

int ctl_cakey_encrypted(const char *path)
{
    char *pem = NULL;
    size_t len = 0;
    int enc;

    if (pr_read_file(path, KEY_PEM_MAX, &pem, &len) < 0)
        return 0;
    enc = strstr(pem, ENCRYPTED_TAG) != NULL;
    sodium_memzero(pem, len);
    free(pem);
    return enc;
}
