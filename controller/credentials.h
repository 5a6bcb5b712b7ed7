/* Tier-2 credentials at rest (docs/bootstrap.md): each credential's files are
 * one libsodium secretbox (XSalsa20-Poly1305) under the key in
 * DIR/secrets.key (32 random bytes, hex, 0600), made at init or on first use.
 * Only the box is stored; the API never shows it, the log never names more
 * than a credential's name and file names. */
#ifndef CTL_CREDENTIALS_H
#define CTL_CREDENTIALS_H

#include <jansson.h>

#include "controller/controller.h"

#define CTL_SECRETS_KEY_FILE "secrets.key"

/* Loads DIR/secrets.key into c (creating it 0600 when missing). */
int ctl_secrets_key_load(ctl *c);
/* Creates DIR/secrets.key if missing (init). */
int ctl_secrets_key_create(const char *dir);
/* Seals a JSON value: *box is base64(nonce || ciphertext), malloc'd. */
int ctl_secrets_seal(ctl *c, const json_t *plain, char **box);
/* Opens a box made by ctl_secrets_seal: WEFT_ECRYPTO when it was altered or
 * made under another key. */
int ctl_secrets_open(ctl *c, const char *box, json_t **plain);

#endif
