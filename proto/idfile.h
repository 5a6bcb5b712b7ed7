/* Identity files: what enrolment writes and every process loads. JSON:
 *   {"version":1,"kind":"identity"|"router"|"admin","id":"...","name":"...",
 *    "network":"<trust domain>","controller":"https://HOST:PORT",
 *    "cert":"PEM","key":"PEM","ca":"PEM"}
 * Written atomically (temp file, fsync, rename) with mode 0600. */
#ifndef PR_IDFILE_H
#define PR_IDFILE_H

#include <stddef.h>

typedef struct {
    char kind[16];
    char id[65];
    char name[129];
    char network[65];
    char controller[256];
    char *cert_pem;
    char *key_pem;
    char *ca_pem;
} pr_idfile;

/* Loads and checks: all fields present, key matches cert. Errors name the field.
 * A file other users can read or write is refused (WEFT_EDENIED); one the group
 * can read is loaded with a warning. */
int pr_idfile_load(const char *path, pr_idfile *out, char *err, size_t errcap);
int pr_idfile_save(const char *path, const pr_idfile *id);
/* The checks of pr_idfile_load on a JSON text already in memory (len bytes, no
 * NUL needed): used by pr_idfile_load and by the fuzz target. */
int pr_idfile_parse(const char *json, size_t len, pr_idfile *out, char *err, size_t errcap);
void pr_idfile_free(pr_idfile *id);

/* Atomic 0600 write of any file (temp + fsync + rename + fsync dir). */
int pr_write_file_secure(const char *path, const void *data, size_t len);
/* Reads a whole file (NUL-terminated, *len excludes the NUL); WEFT_ETOOBIG past max. */
int pr_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
