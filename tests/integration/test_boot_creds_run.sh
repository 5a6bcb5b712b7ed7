#!/usr/bin/env bash
# weft-edge run --credentials-dir (docs/bootstrap.md, tier 2): the running
# edge fetches its credentials at start and at each refresh (--refresh 2
# here), writes each file 0600 under DIR/<credential>/ (directories 0700),
# picks up a credential added later, removes the files of one deleted, and
# logs each credential's path but never its contents.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

ctl_new credsrun
MARK="weft-run-secret-$RANDOM$RANDOM"
printf -- '-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n' "$MARK" >"$T_TMP/client.key"
printf 'bundle %s\n' "$MARK-ca" >"$T_TMP/bundle.pem"
printf 'later %s\n' "$MARK-later" >"$T_TMP/later.conf"
printf 'fleet %s\n' "$MARK-fleet" >"$T_TMP/fleet.conf"

weft identity create dev1 --role fleet --out "$T_TMP/dev1.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1.json"
assert_rc 0 "dev1 enrols"
weft credential create cloud --for-identity dev1 --file client.key="$T_TMP/client.key" \
    --file ca.pem="$T_TMP/bundle.pem"
assert_rc 0 "credential cloud for dev1"
weft credential create fleet --role fleet --file fleet.conf="$T_TMP/fleet.conf"
assert_rc 0 "credential fleet for role fleet"

C="$T_TMP/creds"
bg edge "$WEFT_EDGE" run --identity "$T_TMP/dev1.json" --refresh 2 --credentials-dir "$C"
EDGE_PID=$BG_PID
LOG="$T_TMP/logs/edge.log"

wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
    local i n=$(($1 * 10))
    shift
    for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
same() { [ -f "$2" ] && cmp -s "$1" "$2"; }
logged() { grep -Eq "$1" "$LOG" 2>/dev/null; }

assert_cond "client.key written at start" wait_for 15 same "$T_TMP/client.key" "$C/cloud/client.key"
assert_cond "ca.pem delivered intact" same "$T_TMP/bundle.pem" "$C/cloud/ca.pem"
assert_cond "the role's credential is delivered" same "$T_TMP/fleet.conf" "$C/fleet/fleet.conf"
assert_eq 600 "$(stat -c %a "$C/cloud/client.key" 2>/dev/null)" "client.key is 0600"
assert_eq 600 "$(stat -c %a "$C/fleet/fleet.conf" 2>/dev/null)" "fleet.conf is 0600"
assert_eq 700 "$(stat -c %a "$C/cloud" 2>/dev/null)" "credential directory is 0700"
assert_eq 700 "$(stat -c %a "$C" 2>/dev/null)" "the credentials directory is 0700"
assert_cond "the edge logs the credential and its path" \
    wait_for 5 logged "event=edge_credential name=cloud path=\"?$C/cloud\"? files=2"
assert_cond "and the role's credential" logged "event=edge_credential name=fleet path=\"?$C/fleet\"?"

weft credential create later --for-identity dev1 --file later.conf="$T_TMP/later.conf"
assert_rc 0 "a credential added while the edge runs"
assert_cond "it appears after a refresh" wait_for 15 same "$T_TMP/later.conf" "$C/later/later.conf"
assert_eq 600 "$(stat -c %a "$C/later/later.conf" 2>/dev/null)" "later.conf is 0600"
assert_cond "its path is logged" wait_for 5 logged "event=edge_credential name=later path="

weft credential delete cloud
assert_rc 0 "credential cloud deleted while the edge runs"
gone() { [ ! -e "$C/cloud" ]; }
assert_cond "its files and directory disappear after a refresh" wait_for 15 gone
assert_cond "the removal is logged" wait_for 5 logged "event=edge_credential_removed name=cloud"
assert_cond "the other credentials stay" same "$T_TMP/later.conf" "$C/later/later.conf"
assert_cond "the role's credential stays" same "$T_TMP/fleet.conf" "$C/fleet/fleet.conf"

# A credential's files are rewritten only when they change; a stray file
# left in a credential's directory is removed at the next refresh.
echo stray >"$C/fleet/old.conf"
stray_gone() { [ ! -e "$C/fleet/old.conf" ]; }
assert_cond "a file the credential no longer lists is removed" wait_for 15 stray_gone

# A refusal (disabled identity) keeps what is there and says so.
weft identity disable dev1
assert_cond "a failed fetch is logged as a warning" \
    wait_for 15 logged "event=edge_credentials_failed"
assert_cond "files already delivered are kept" same "$T_TMP/later.conf" "$C/later/later.conf"
weft identity enable dev1

stop_pid "$EDGE_PID"
assert_eq 0 "$T_EXIT" "the edge exits 0 on SIGTERM"
assert_no_match "$MARK" "$(cat "$LOG")" "no credential content in the edge's log"
assert_no_match "$MARK" "$(cat "$T_TMP"/logs/*.log)" "nor in any log"
