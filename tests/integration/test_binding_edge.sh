#!/usr/bin/env bash
# libweft sends the hardware ids it reports in EDGE_HELLO (weft-edge run
# --imei/--iccid) with GET /v1/edge/session, percent-encoded, so that the
# controller checks the device binding (docs/policies.md "Device binding"):
# - an `exact` identity rebound (no ids) is bound at its first session
#   request, by the controller alone (the router is stopped: no hello, no
#   token reaches it), ids with spaces and reserved characters intact;
# - the same identity presenting another IMEI gets 403 binding_mismatch: the
#   edge logs a clear error with what to do, the controller a `binding`
#   event, and the edge does not ask again in a tight loop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

dp_fabric bindedge
ECHO=$(dp_port); ECHO_I=$(dp_port)
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#bound' '#web'
weft identity create b1 --role bound --binding exact --out "$T_TMP/b1.jwt"
assert_rc 0 "identity b1 created with an exact binding"
t_run "$WEFT_EDGE" enroll "$T_TMP/b1.jwt" --out "$T_TMP/b1.json" --imei 111 --iccid AAA
assert_rc 0 "b1 enrolled (an exact identity gives both ids)"
B1_ID=$(jget "$(cat "$T_TMP/b1.json")" .id)
weft identity rebind b1
assert_rc 0 "weft identity rebind b1: the ids are forgotten, the next session binds"
weft identity show b1
assert_match "imei: *-" "$T_OUT" "no IMEI is bound now"

# Only the controller can bind now.
stop_pid "$DP_ROUTER_PID"
ICCID='8901 A+B&C=D%'
bg edge-b1 "$WEFT_EDGE" run --identity "$T_TMP/b1.json" --imei 356938035643809 \
    --iccid "$ICCID" --log-level debug
assert_cond "b1's edge gets its session data" dp_wait_log "$T_TMP/logs/edge-b1.log" \
    "event=edge_session_data services=1 " 30
weft identity show b1
assert_match "imei: *356938035643809" "$T_OUT" "the IMEI is bound at the first session request"
assert_match "iccid: *8901 A\+B&C=D%" "$T_OUT" \
    "the ICCID arrives intact through the query string (space, +, &, =, %)"
assert_no_match "binding" "$(cat "$T_TMP/logs/router.log")" "the router had no part in it"

# ---- another device with b1's identity: refused at the controller
bg edge-b1bad "$WEFT_EDGE" run --identity "$T_TMP/b1.json" --imei 490154203237518 \
    --iccid "$ICCID"
BAD_PID=$BG_PID
assert_cond "the edge logs the binding mismatch" dp_wait_log "$T_TMP/logs/edge-b1bad.log" \
    "event=edge_binding_mismatch " 30
LINE=$(grep "event=edge_binding_mismatch " "$T_TMP/logs/edge-b1bad.log" | head -1)
assert_match "level=error " "$LINE" "as an error"
assert_match "imei=490154203237518 iccid=8901 A\+B&C=D% " "$LINE" "naming the ids it presented"
assert_match "msg=\"hardware ids \(IMEI 490154203237518, ICCID 8901 A\+B&C=D%\) do not match the pair bound to this identity" \
    "$LINE" "with the controller's reason"
assert_match "retry_within_s=60 hint=\"the controller holds other hardware ids for this identity: check --imei/--iccid, or have an administrator run weft identity rebind\"" \
    "$LINE" "and what to do"
weft events --json
assert_match "\"kind\":\"binding\".*\"identity\":\"$B1_ID\".*\"imei\":\"490154203237518\"" \
    "$(echo "$T_OUT" | grep '"source":"controller"')" "the controller emits a binding event"
DENIED_RE="event=edge_session_denied .*id=$B1_ID reason=binding"
N0=$(grep -cE "$DENIED_RE" "$T_TMP/logs/ctl-bindedge.log")
sleep 4
N1=$(grep -cE "$DENIED_RE" "$T_TMP/logs/ctl-bindedge.log")
t_diag "session requests refused for the binding: $N0, then $N1 after 4 s"
assert_eq "$N0" "$N1" "no tight retry loop: no new request in 4 s"
assert_cond "the refused edge is still running (it waits, it does not exit)" alive "$BAD_PID"
weft identity show b1
assert_match "imei: *356938035643809" "$T_OUT" "the bound IMEI is unchanged"
