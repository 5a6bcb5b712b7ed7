/* Certificate lifecycle, client side (docs/bootstrap.md), shared by weft-edge,
 * weft-router and libweft: renew an identity's certificate when less than a
 * third of its life remains, with a NEW key made here, over a session
 * authenticated by the current certificate (POST /v1/renew). The identity URI
 * stays the same; the old certificate stays valid until it expires, so
 * sessions and circuits opened with it are never cut.
 *
 * Callers on an event loop run pr_renew_if_due from a worker thread
 * (uv_queue_work: the HTTPS client blocks), e.g. once an hour, and load the
 * new file for their NEXT connections. Blocking callers just call it. */
#ifndef PR_RENEW_H
#define PR_RENEW_H

#include <stddef.h>
#include <stdint.h>

#include "proto/idfile.h"

/* 1 when less than a third of the certificate's validity remains at now
 * (or it is already expired), 0 when not, < 0 for an unreadable certificate. */
int pr_renew_due(const char *cert_pem, int64_t now);
/* Renews id in memory: on success its cert and key are replaced (the old
 * ones freed) and its CA refreshed. err says what to do on failure. */
int pr_renew(pr_idfile *id, int timeout_ms, char *err, size_t errcap);
/* Loads the identity file, renews it when due (or when force), and rewrites
 * the file atomically (0600). Returns 1 renewed, 0 not due, < 0 error. */
int pr_renew_if_due(const char *idfile_path, int force, int timeout_ms, char *err,
                    size_t errcap);

#endif
