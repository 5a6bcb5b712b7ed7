#!/usr/bin/env bash
# Anomaly baselines belong to the identity, not to the router (docs/policies.md
# "Anomaly detection"), on a controller, two linked routers and real edges:
#  (c) settings set with 'weft anomaly set' reach both routers through the map
#      (and a router started later reads them from its full map);
#  (b) devices learn their baseline at r1; r1 reports it, the controller stores
#      and acknowledges it, and it survives a kill -9 of the controller;
#  (a) their new tokens carry it: a flood is an anomaly at once at r1
#      restarted, and at r2 where the device never was (detection times
#      printed), while a device whose token predates its baseline is still
#      learning at r2 and is not flagged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

LIMIT=5; dp_asan && LIMIT=10 # ASan slows the flood sessions' handshakes
dp_fabric anombase
R1_EDGE=$DP_EDGE_LISTEN
METRICS="127.0.0.1:$(dp_port)"
# r1 again with its metrics (acknowledged batches); nothing was learnt yet.
stop_pid "$DP_ROUTER_PID"
bg router-r1 "$WEFT_ROUTER" run --dir "$T_TMP/r1" --metrics-listen "$METRICS"
DP_ROUTER_PID=$BG_PID
dp_wait_port "${R1_EDGE##*:}" 30 || t_bail "r1 not listening again"
assert_cond "r1 has its map" dp_wait_log "$T_TMP/logs/router-r1.log" "event=map_applied" 30
assert_match "source=router.json window_s=10 learn=3" "$(grep 'event=anomaly ' \
    "$T_TMP/logs/router-r1.log")" "r1 starts with its own settings (router.json, defaults)"

# ---- (c) network-wide settings, through the map
t0=$(date +%s.%N)
weft anomaly set --window 4s --learn 3 --factor 4
assert_rc 0 "weft anomaly set --window 4s --learn 3 --factor 4"
assert_match "window_s +4" "$T_OUT" "the CLI prints the settings now in force"
assert_cond "r1 applies them from a map delta" dp_wait_log "$T_TMP/logs/router-r1.log" \
    "event=anomaly source=map window_s=4 learn=3 factor=4 " 10
t_diag "settings reached r1 $(python3 -c "import time; print(round(time.time() - $t0, 3))") s after 'weft anomaly set' started"
weft anomaly show --json
assert_eq 4 "$(jget "$T_OUT" .data.window_s)" "weft anomaly show --json has window_s"
api PATCH /v1/settings/anomaly '{"window_s":0}'
assert_status 400 "a window of 0 s is refused"
api PATCH /v1/settings/anomaly '{"learn":"many"}'
assert_status 400 "a setting that is not a number is refused"
api PATCH /v1/settings/anomaly '{"speed":1}'
assert_status 400 "an unknown setting is refused"
dp_router r2 west
R2_EDGE=$DP_R_EDGE
assert_cond "r2, started later, reads them from its full map" dp_wait_log \
    "$T_TMP/logs/router-r2.log" "event=anomaly source=map window_s=4 learn=3" 30

# ---- the fabric: a telemetry service hosted behind r1, devices in a fleet
dp_telemetry
weft identity create dev1 --role fleet --tz Nowhere/Atlantis --out "$T_TMP/x.jwt"
assert_rc 1 "an unknown time zone is refused"
assert_match "'tz' must be a zone" "$T_ERR" "the refusal says what a zone is"
weft identity create dev1 --role fleet --tz Asia/Kolkata --out "$T_TMP/dev1.jwt"
assert_rc 0 "dev1 created in Asia/Kolkata"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1.json"
assert_rc 0 "dev1 enrolled"
dp_enrol dev2 fleet
dp_enrol dev3 fleet
for d in dev1 dev2 dev3; do dp_token "$d" telemetry dial >"$T_TMP/$d.old"; done
assert_match "\"z\": 19800" "$(dp_jwt_claim "$(cat "$T_TMP/dev1.old")" base | tr "'" '"')" \
    "dev1's tokens carry its zone's offset (UTC+05:30) before anything is learnt"

# ---- learning at r1: one dial every 2 s each, five windows of 4 s
learn() {
    local d=$1 end=$((SECONDS + 21))
    while [ $SECONDS -lt $end ]; do
        "$DP_PROBE" --identity "$T_TMP/$d.json" --router "$R1_EDGE" --dial telemetry \
            --token @"$T_TMP/$d.old" --timeout 5000 >/dev/null 2>&1
        sleep 2
    done
}
learners=()
for d in dev1 dev2 dev3; do bg "learn-$d" learn "$d"; learners+=("$BG_PID"); done
windows_of() { weft anomaly baseline "$1" --json; jget "$T_OUT" .data.windows 2>/dev/null || echo 0; }
learnt=0
for ((i = 0; i < 600; i++)); do
    [ "$(windows_of dev1)" -ge 3 ] && [ "$(windows_of dev2)" -ge 3 ] && learnt=1 && break
    sleep 0.1
done
assert_eq 1 "$learnt" "r1 reported the baselines; the controller merged them (3 windows or more)"
wait "${learners[@]}" # the learners end; their last increments go out within 5 s
weft anomaly baseline dev1
assert_match "active hours +[0-9]" "$T_OUT" "weft anomaly baseline prints the hours learnt"
assert_match "Asia/Kolkata" "$T_OUT" "in the identity's zone"

# ---- (b) acknowledged, then the controller is killed
acked() {
    curl -s "http://$METRICS/metrics" | python3 -c '
import sys
m = dict(l.split()[:2] for l in sys.stdin if l and not l.startswith("#"))
sys.exit(0 if int(m.get("weft_router_baseline_batches_acked_total", "0")) > 0
         and m.get("weft_router_baseline_batches_waiting") == "0" else 1)'
}
sleep 6
ok=0; for ((i = 0; i < 200; i++)); do acked && ok=1 && break; sleep 0.1; done
assert_eq 1 "$ok" "r1's batches are all acknowledged (metrics)"
before1=$(windows_of dev1); before2=$(windows_of dev2)
ctl_kill9 "$DP_DIR"
ctl_start "$DP_DIR"
after1=$(windows_of dev1); after2=$(windows_of dev2)
assert_cond "dev1's baseline survived kill -9 ($before1 windows, $after1 after)" \
    test "$after1" -ge "$before1" -a "$before1" -ge 3
assert_cond "dev2's baseline survived kill -9 ($before2 windows, $after2 after)" \
    test "$after2" -ge "$before2" -a "$before2" -ge 3
for d in dev1 dev2; do dp_token "$d" telemetry dial >"$T_TMP/$d.new"; done
base1=$(dp_jwt_claim "$(cat "$T_TMP/dev1.new")" base | tr "'" '"')
assert_match "\"w\": [3-9]" "$base1" "a fresh token carries the baseline: $base1"
assert_match "\"z\": 19800" "$base1" "and the zone's offset"

# ---- (a) a flood, judged at once from the token's baseline
flood() { # flood NAME TOKEN ROUTER: 40 dials at once
    local k
    for k in $(seq 1 40); do
        "$DP_PROBE" --identity "$T_TMP/$1.json" --router "$3" --dial telemetry --token @"$2" \
            --timeout 3000 >/dev/null 2>&1 &
    done
}
quarantined_in() { # quarantined_in NAME T0 SECONDS: prints the time, or nothing
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if "$WEFT" identity show "$1" --json 2>/dev/null | grep -q '"disabled": *true'; then
            python3 -c "import time; print(round(time.time() - $2, 2))"
            return 0
        fi
        sleep 0.1
    done
}
flagged() { # flagged NAME TOKEN ROUTER WHERE: its flood quarantines it within LIMIT s
    local t0 det
    t0=$(date +%s.%N)
    flood "$1" "$2" "$3"
    det=$(quarantined_in "$1" "$t0" 20)
    t_diag "$4: $1 quarantined ${det:-never} s after its flood began"
    assert_cond "$4 flags $1's flood without learning it again (${det:-never} s < $LIMIT s)" \
        python3 -c "import sys; sys.exit(0 if '$det' and float('${det:-99}') < $LIMIT else 1)"
}
stop_pid "$DP_ROUTER_PID"
bg router-r1b "$WEFT_ROUTER" run --dir "$T_TMP/r1"
DP_ROUTER_PID=$BG_PID
dp_wait_port "${R1_EDGE##*:}" 30 || t_bail "r1 not listening after its restart"
assert_cond "restarted r1 has its map" dp_wait_log "$T_TMP/logs/router-r1b.log" \
    "event=map_applied" 30
flagged dev1 "$T_TMP/dev1.new" "$R1_EDGE" "restarted r1"
flagged dev2 "$T_TMP/dev2.new" "$R2_EDGE" "r2 (where dev2 never was)"

# A token from before the baseline was learnt: r2 has nothing to judge by.
t0=$(date +%s.%N)
flood dev3 "$T_TMP/dev3.old" "$R2_EDGE"
det3=$(quarantined_in dev3 "$t0" 6)
assert_eq "" "$det3" "dev3, whose token carries no baseline, is still learning at r2"
wait_jobs=$(jobs -p); [ -n "$wait_jobs" ] && sleep 1

weft events --json
assert_match "\"kind\":\"anomaly\"" "$T_OUT" "anomaly events were recorded"

# ---- back to each router's own settings
weft anomaly reset window
assert_rc 0 "weft anomaly reset window"
assert_cond "r2 goes back to its own window" dp_wait_log "$T_TMP/logs/router-r2.log" \
    "event=anomaly source=map window_s=10 learn=3" 10
weft anomaly reset
assert_rc 0 "weft anomaly reset"
assert_cond "r2 uses router.json again" dp_wait_log "$T_TMP/logs/router-r2.log" \
    "event=anomaly source=router.json" 10
dp_router_alive "r1 survived"
