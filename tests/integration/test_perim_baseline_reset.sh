#!/usr/bin/env bash
# Anomaly baselines (docs/policies.md "Anomaly detection"), what a stopping
# router and an admin do to them, on a controller and two routers:
#  (a) a router stopped with SIGTERM sends what it learnt since its last
#      report before it closes its control channel: every window dev7 learnt
#      at r1 is in the controller's baseline after r1 stops;
#  (b) 'weft anomaly forget' makes the controller and the routers forget an
#      identity's baseline: dev9's is gone from the controller, r2 says it
#      forgot it, and a flood at r2 right afterwards is not judged (dev9 is
#      learning again), while dev8, which learnt the same way and was not
#      forgotten, is flagged for the same flood.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric anomreset
R1_EDGE=$DP_EDGE_LISTEN
dp_router r2 west
R2_EDGE=$DP_R_EDGE
R2_PID=$BG_PID
dp_telemetry
weft anomaly set --window 2s --learn 3
assert_rc 0 "weft anomaly set --window 2s --learn 3"
for r in r1 r2; do
    log="$T_TMP/logs/router-$r.log"; [ "$r" == r1 ] && log="$T_TMP/logs/router.log"
    assert_cond "$r uses a 2 s window" dp_wait_log "$log" "event=anomaly source=map window_s=2 " 15
done
for d in dev7 dev8 dev9; do
    dp_enrol "$d" fleet
    dp_token "$d" telemetry dial >"$T_TMP/$d.tok"
done

# learn NAME ROUTER: five dials 2.3 s apart, so four windows of one dial each.
learn() {
    local k
    for k in 1 2 3 4 5; do
        "$DP_PROBE" --identity "$T_TMP/$1.json" --router "$2" --dial telemetry \
            --token @"$T_TMP/$1.tok" --timeout 5000 >/dev/null 2>&1
        [ "$k" -lt 5 ] && sleep 2.3
    done
}
windows_of() { weft anomaly baseline "$1" --json; jget "$T_OUT" .data.windows 2>/dev/null || echo 0; }

# ---- (a) the last increments of a stopping router
learn dev7 "$R1_EDGE"
stop_pid "$DP_ROUTER_PID"
grep -q "event=baseline_final" "$T_TMP/logs/router.log" &&
    t_diag "r1 sent at stop: $(grep -o 'event=baseline_final.*' "$T_TMP/logs/router.log")"
w=0
for ((i = 0; i < 30; i++)); do w=$(windows_of dev7); [ "$w" -ge 4 ] && break; sleep 0.1; done
assert_eq 4 "$w" "every window dev7 learnt at r1 reached the controller, the last ones as r1 stopped"

# ---- (b) forgetting a baseline, at the controller and the routers
learn dev8 "$R2_EDGE" &
L8=$!
learn dev9 "$R2_EDGE"
wait "$L8"
ok=0
for ((i = 0; i < 100; i++)); do
    [ "$(windows_of dev8)" -ge 4 ] && [ "$(windows_of dev9)" -ge 4 ] && ok=1 && break
    sleep 0.1
done
assert_eq 1 "$ok" "r2 reported dev8's and dev9's four windows"
t0=$(date +%s.%N)
weft anomaly forget dev9
assert_rc 0 "weft anomaly forget dev9"
assert_match "forgotten" "$T_OUT" "the CLI says so"
assert_eq 0 "$(windows_of dev9)" "the controller keeps nothing of dev9's baseline"
weft anomaly baseline dev9 --json
assert_eq null "$(jget "$T_OUT" .data.updated_at)" "and says it was never updated since"
assert_cond "r2 forgot it too" dp_wait_log "$T_TMP/logs/router-r2.log" \
    "event=baseline_reset identities=1" 5
t_diag "r2 forgot dev9's baseline $(python3 -c "import time; print(round(time.time() - $t0, 3))") s after 'weft anomaly forget' started"
assert_eq 4 "$(windows_of dev8)" "dev8's baseline is untouched"
weft anomaly forget nobody
assert_rc 1 "forgetting an identity that does not exist is an error"
api DELETE "/v1/identities/$(jget "$(cat "$T_TMP/dev9.json")" .id)/baseline"
assert_status 204 "DELETE /v1/identities/{id}/baseline again: 204"

# The same flood from both: dev8 is judged against its baseline, dev9 learns.
flood=()
for d in dev8 dev9; do
    for k in $(seq 1 30); do
        "$DP_PROBE" --identity "$T_TMP/$d.json" --router "$R2_EDGE" --dial telemetry \
            --token @"$T_TMP/$d.tok" --timeout 5000 >/dev/null 2>&1 &
        flood+=($!)
    done
done
wait "${flood[@]}"
anomalies_of() {
    local id
    id=$(jget "$(cat "$T_TMP/$1.json")" .id)
    weft events --json
    printf '%s\n' "$T_OUT" | grep '"kind":"anomaly"' | grep -c "\"identity\":\"$id\""
}
ok=0
for ((i = 0; i < 50; i++)); do [ "$(anomalies_of dev8)" -ge 1 ] && ok=1 && break; sleep 0.1; done
assert_eq 1 "$ok" "dev8's flood is an anomaly at r2"
assert_eq 0 "$(anomalies_of dev9)" "dev9's flood is not judged: r2 forgot its baseline and learns again"
assert_cond "r2 survived" alive "$R2_PID"
