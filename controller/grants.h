/* Withdrawn grants (docs/dataplane.md "Withdrawn grants"): when a dial or bind
 * policy is deleted or changed, the (identity, service) pairs it granted that
 * no policy grants any more are put in the map, so that routers end their
 * live circuits and refuse the tokens already issued for them. */
#ifndef CTL_GRANTS_H
#define CTL_GRANTS_H

#include <jansson.h>

#include "controller/controller.h"

/* old is the policy as it was before the change; the store already holds the
 * policies as they are now. Returns the number of pairs withdrawn, or a
 * negative WEFT_E* code. */
int ctl_grants_withdraw(ctl *c, const json_t *old);

/* The same for a record whose roles changed: old is the identity ("identities")
 * or service ("services") as it was; the store already holds it as it is now.
 * Pairs of that record which had dial or bind access and no longer have it are
 * withdrawn. Returns the number of pairs withdrawn, or a negative WEFT_E* code. */
int ctl_grants_withdraw_record(ctl *c, const char *coll, const json_t *old);

#endif
