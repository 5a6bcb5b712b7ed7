#!/usr/bin/env bash
# The weft CLI against a real controller, for what the API tests leave out:
# the token on stdout alone, token files at 0600, options after the words,
# update commands, human tables and key: value output, paging hints, --json on
# every command, weft version, and a router token enrolled with weft-edge.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

ctl_new clinet

# ---- identities
weft identity create cap1 --role a,b --role c
assert_rc 0 "create without --out"
assert_match '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$T_OUT" "stdout is the token alone"
assert_match "^created identity cap1 \(id [a-z0-9-]+\); enrolment token printed \(expires " "$T_ERR" \
    "the sentence goes to stderr"
weft identity create cap2 --binding imei --out "$T_TMP/cap2.jwt" --token-ttl 600
assert_rc 0 "create with --out and --token-ttl"
assert_match "^created identity cap2 \(id [a-z0-9-]+\); enrolment token written to .*cap2.jwt \(expires " \
    "$T_OUT" "create --out sentence"
assert_eq 600 "$(stat -c %a "$T_TMP/cap2.jwt")" "token file is mode 0600"
assert_eq 1 "$(wc -l <"$T_TMP/cap2.jwt")" "token file is one line"
weft --json identity create cap3 --admin
assert_rc 0 "create --admin --json"
assert_eq true "$(jget "$T_OUT" .data.admin)" "--admin sets admin"
assert_cond "--json create carries the token" jget "$T_OUT" .enrollment.token

weft identity list --role a
assert_rc 0 "identity list --role a"
assert_match "^ID +NAME +ROLES +BINDING +ENROLLED +DISABLED$" "$(head -1 <<<"$T_OUT")" "table header"
assert_match "cap1 +a,b,c +none +no +no$" "$T_OUT" "table row for cap1"
assert_no_match "cap2" "$T_OUT" "--role filters"
weft identity list --limit 1 --offset 1 --name 'cap*'
assert_rc 0 "list with paging"
assert_eq 2 "$(wc -l <<<"$T_OUT")" "one row and the header"
assert_match "1 shown, 2 to 2 of 3" "$T_ERR" "paging hint on stderr"
weft identity show cap2
assert_match "^binding: +imei$" "$T_OUT" "show: binding line"
assert_match "^enrollment.used: +no$" "$T_OUT" "show: nested fields flattened"
weft identity update cap2 --role x --role y
assert_rc 0 "identity update --role"
assert_match "^updated identity cap2 " "$T_OUT" "update sentence"
weft identity show cap2 --json
assert_eq '["x", "y"]' "$(jget "$T_OUT" .data.roles)" "roles replaced (--json after the words)"
weft identity disable cap2
assert_match "^disabled identity cap2 " "$T_OUT" "disable sentence"
weft --json identity delete cap2
assert_rc 0 "delete with --json"
assert_eq "" "$T_OUT" "204 has no JSON to print"

# ---- services and policies
weft service create svc --role web --intercept tcp:svc.weft:80 --host 'tcp:[::1]:8080'
assert_rc 0 "service create with an IPv6 host"
weft service update svc --intercept udp:svc.weft:53
assert_rc 0 "service update"
weft service list
assert_match "^ID +NAME +ROLES +INTERCEPT +HOST$" "$(head -1 <<<"$T_OUT")" "service table header"
assert_match "svc +web +udp:svc.weft:53 +tcp:\[::1\]:8080$" "$T_OUT" "service row after update"
weft policy create pol --type dial --identities '#a,@cap1' --services '#all' --semantic AllOf
assert_rc 0 "policy create with #, @ and #all"
weft policy update pol --type bind
assert_rc 0 "policy update"
weft --json policy show pol
assert_eq bind "$(jget "$T_OUT" .data.type)" "policy type updated"
assert_eq AllOf "$(jget "$T_OUT" .data.semantic)" "semantic kept"
weft policy list
assert_match "^ID +NAME +TYPE +SEMANTIC +IDENTITIES +SERVICES +ROUTERS +ACTIONS$" "$(head -1 <<<"$T_OUT")" "policy table header"
weft policy update pol
assert_rc 2 "policy update with nothing to change -> exit 2"

# ---- errors from the API
weft identity create cap1
assert_rc 1 "duplicate name -> exit 1"
assert_match "^weft: .* \(conflict, HTTP 409\)$" "$T_ERR" "API error format"
weft service show nosuch
assert_match "^weft: .* \(not_found, HTTP 404\)$" "$T_ERR" "not found format"

# ---- version
weft version
assert_rc 0 "weft version"
assert_match "^weft [0-9]+\.[0-9]+\.[0-9]+" "$T_OUT" "CLI version"
assert_match "^controller https://127.0.0.1:[0-9]+: " "$T_OUT" "controller version"

# ---- a router enrols with weft-edge's enrolment (same client as the router uses)
weft router create r9 --out "$T_TMP/r9.jwt"
assert_rc 0 "router create --out"
assert_eq 600 "$(stat -c %a "$T_TMP/r9.jwt")" "router token file is mode 0600"
t_run sh -c "\"$WEFT_EDGE\" enroll - --out \"$T_TMP/r9.json\" <\"$T_TMP/r9.jwt\""
assert_rc 0 "router token enrolled from stdin"
assert_match "^enrolled router r9 \(id [a-z0-9-]+\) in network clinet; identity written to " "$T_OUT" \
    "enrol sentence names the kind"
assert_eq router "$(jget "$(cat "$T_TMP/r9.json")" .kind)" "identity file kind router"
weft router show r9
assert_match "^enrolled: +yes$" "$T_OUT" "router shown enrolled"

# ---- an enrolled identity file replaces nothing without --force
weft identity create dup --out "$T_TMP/dup.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/dup.jwt" --out "$T_TMP/r9.json"
assert_rc 1 "existing identity file kept"
t_run "$WEFT_EDGE" enroll "$T_TMP/dup.jwt" --out "$T_TMP/r9.json" --force
assert_rc 0 "the token was not spent by the refusal; --force replaces"
assert_eq dup "$(jget "$(cat "$T_TMP/r9.json")" .name)" "replaced identity file"

ctl_stop "$T_DIR"
