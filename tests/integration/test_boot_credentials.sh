#!/usr/bin/env bash
# Tier-2 credentials end to end (docs/bootstrap.md): the enterprise attaches
# its own files to an identity and to a role; the enrolled device fetches them
# over its authenticated session and writes each 0600; the contents are
# sealed at rest and never appear in the controller's log, in API listings,
# in the database file, or for another identity.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

ctl_new tier2
assert_eq 600 "$(stat -c %a "$T_DIR/secrets.key" 2>/dev/null)" "init wrote secrets.key 0600"
MARK="weft-secret-marker-$RANDOM$RANDOM"
printf -- '-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n' "$MARK" >"$T_TMP/client.key"
printf 'bundle %s\n' "$MARK-ca" >"$T_TMP/bundle.pem"
printf 'fleet-wide %s\n' "$MARK-role" >"$T_TMP/fleet.conf"

weft identity create dev1 --role fleet --out "$T_TMP/dev1.jwt"
weft identity create dev2 --out "$T_TMP/dev2.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1.json"
assert_rc 0 "dev1 enrols"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev2.jwt" --out "$T_TMP/dev2.json"
assert_rc 0 "dev2 enrols"

weft credential create cloud --for-identity dev1 --file client.key="$T_TMP/client.key" \
    --file ca.pem="$T_TMP/bundle.pem"
assert_rc 0 "weft credential create cloud --for-identity dev1 --file ..."
weft credential create fleet --role fleet --file fleet.conf="$T_TMP/fleet.conf"
assert_rc 0 "weft credential create fleet --role fleet"
weft credential create bad --file x="$T_TMP/fleet.conf"
assert_rc 2 "a credential needs an identity or a role"

weft credential list
assert_rc 0 "weft credential list"
assert_match "cloud" "$T_OUT" "list shows the credential's name"
assert_match "client.key" "$T_OUT" "list shows its file names"
weft --json credential list
assert_no_match "$MARK" "$T_OUT" "list --json never shows contents"
assert_no_match '"box"' "$T_OUT" "list --json never shows the sealed box"
weft --json credential show cloud
assert_no_match "$MARK|\"box\"" "$T_OUT" "show never shows contents"
api GET /v1/credentials
assert_no_match "$MARK" "$T_BODY" "GET /v1/credentials holds no contents"

t_run "$WEFT_EDGE" credentials --identity "$T_TMP/dev1.json" --dir "$T_TMP/dev1-creds"
assert_rc 0 "weft-edge credentials for dev1"
assert_match "credential cloud file client.key $T_TMP/dev1-creds/cloud/client.key" "$T_OUT" \
    "it prints the path of each credential file"
assert_eq "$(cat "$T_TMP/client.key")" "$(cat "$T_TMP/dev1-creds/cloud/client.key" 2>/dev/null)" \
    "client.key delivered intact"
assert_eq "$(cat "$T_TMP/bundle.pem")" "$(cat "$T_TMP/dev1-creds/cloud/ca.pem" 2>/dev/null)" \
    "ca.pem delivered intact"
assert_eq "$(cat "$T_TMP/fleet.conf")" "$(cat "$T_TMP/dev1-creds/fleet/fleet.conf" 2>/dev/null)" \
    "the role's credential is delivered to an identity with that role"
assert_eq 600 "$(stat -c %a "$T_TMP/dev1-creds/cloud/client.key" 2>/dev/null)" "client.key is 0600"
assert_eq 600 "$(stat -c %a "$T_TMP/dev1-creds/fleet/fleet.conf" 2>/dev/null)" "fleet.conf is 0600"
assert_eq 700 "$(stat -c %a "$T_TMP/dev1-creds/cloud" 2>/dev/null)" "credential directory is 0700"

t_run "$WEFT_EDGE" credentials --identity "$T_TMP/dev2.json" --dir "$T_TMP/dev2-creds"
assert_rc 0 "weft-edge credentials for dev2"
assert_cond "dev2 gets nothing of dev1's" test ! -e "$T_TMP/dev2-creds/cloud"
assert_cond "dev2 (no role fleet) gets no role credential" test ! -e "$T_TMP/dev2-creds/fleet"

api_as none GET /v1/edge/credentials
assert_status 401 "GET /v1/edge/credentials needs an identity certificate"

assert_no_match "$MARK" "$(cat "$T_TMP"/logs/*.log)" "the secret is absent from the controller's log"
assert_cond "the secret is not stored in clear in weft.db" \
    sh -c "! grep -q '$MARK' '$T_DIR'/weft.db*"

weft identity disable dev1
t_run "$WEFT_EDGE" credentials --identity "$T_TMP/dev1.json" --dir "$T_TMP/dev1-again"
assert_rc 1 "a disabled identity gets no credentials"
weft identity enable dev1
weft credential delete cloud
assert_rc 0 "weft credential delete"
weft credential create cloud2 --for-identity dev1 --file a="$T_TMP/bundle.pem"
weft --json credential list
assert_eq 2 "$(jget "$T_OUT" .meta.total)" "two credentials before dev1 is deleted"
weft identity delete dev1
weft --json credential list
assert_eq 1 "$(jget "$T_OUT" .meta.total)" "deleting an identity leaves role credentials only"
