#!/usr/bin/env bash
# scripts/quickstart.sh (what 'make quickstart' runs) works from a clean
# directory: a controller, three routers, a hosting and a dialling edge, and a
# page fetched with curl through the fabric; it leaves the network on disk and
# no process running.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"
top=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$T_TMP/cwd"
cd "$T_TMP/cwd" || t_bail "cd $T_TMP/cwd"
t_run "$top/scripts/quickstart.sh" "$WEFT_BUILD"
assert_rc 0 "quickstart.sh exits 0"
assert_match "hello from the demo service, reached through weft" "$T_OUT" \
    "curl through the fabric reaches the demo service"
assert_match "r1 .*r2|r2 .*r3|online" "$T_OUT" "quickstart shows the routers"
assert_match "weft-controller run --dir" "$T_OUT" "quickstart prints what to run next"
qs="$T_TMP/cwd/.quickstart"
assert_eq identity "$(jget "$(cat "$qs/sensor-01.json" 2>/dev/null)" .kind)" "identity file written"
assert_eq 600 "$(stat -c %a "$qs/sensor-01.json" 2>/dev/null)" "identity file is mode 0600"
jget "$(cat "$qs/sensor-01.json")" .cert > "$T_TMP/sensor-01.pem"
t_run openssl verify -CAfile "$qs/controller/ca.pem" -untrusted "$T_TMP/sensor-01.pem" \
    "$T_TMP/sensor-01.pem"
assert_rc 0 "enrolled certificate verifies against the quickstart CA"
left=$(pgrep -f "^[^ ]*weft-(controller|router|edge) run .*$qs/")
assert_eq "" "$left" "every process of the network was stopped at the end"

# A second run wipes the first network and makes a new one.
old_ca=$(cat "$qs/controller/ca.pem")
t_run "$top/scripts/quickstart.sh" "$WEFT_BUILD"
assert_rc 0 "a second quickstart run exits 0"
assert_ne "$old_ca" "$(cat "$qs/controller/ca.pem" 2>/dev/null)" "the second run made a new network"

t_run "$top/scripts/quickstart.sh" "$T_TMP/no-such-build"
assert_rc 2 "a missing build dir -> exit 2"
