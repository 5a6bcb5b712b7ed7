#!/usr/bin/env bash
# Admission control of new edge sessions (docs/policies.md "Admission
# control"): a router limited to 5 new sessions a second (burst 5) meets 30
# devices connecting at once (tests/tools/admit_storm, real TLS sessions with
# an identity certificate). Some are refused after the handshake with
# EDGE_ERROR and a retry hint; every one is admitted after waiting the hint;
# /metrics counts both; the router stays up and admits the next session.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
STORM="$DP_TOOLS/admit_storm"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_PROBE" "$STORM"

dp_fabric admit
dp_enrol dev1 devices
stop_pid "$DP_ROUTER_PID"

# ---- a bad limit is refused at start, saying what it wants
t_run "$WEFT_ROUTER" run --dir "$T_TMP/r1" --admit-rate fast
assert_ne 0 "$T_RC" "--admit-rate fast is refused"
assert_match 'admit-rate' "$T_ERR" "the refusal names the option"

METRICS=127.0.0.1:$(dp_port)
bg router-admit "$WEFT_ROUTER" run --dir "$T_TMP/r1" --admit-rate 5 --admit-burst 5 \
    --metrics-listen "$METRICS"
DP_ROUTER_PID=$BG_PID
dp_wait_port "${DP_EDGE_LISTEN##*:}" 30 || t_bail "router not listening on $DP_EDGE_LISTEN"
dp_wait_port "${METRICS##*:}" 30 || t_bail "router metrics not listening on $METRICS"
assert_cond "the router logs its admission limit" dp_wait_log "$T_TMP/logs/router-admit.log" \
    "event=admission sessions_per_s=5 burst=5" 10

# ---- 30 devices at once
START=$(date +%s%N)
t_run "$STORM" --identity "$T_TMP/dev1.json" --router "$DP_EDGE_LISTEN" --devices 30 \
    --timeout-s 60
ELAPSED_MS=$(( ($(date +%s%N) - START) / 1000000 ))
t_diag "$(echo "$T_OUT" | tail -1) wall_ms=$ELAPSED_MS"
assert_rc 0 "all 30 devices are admitted in the end"
SUMMARY=$(echo "$T_OUT" | grep '^storm ')
assert_match '^refusal err=EBUSY retry_ms=[1-9][0-9]* msg=".*busy.*reconnect after [0-9]+ ms"' \
    "$(echo "$T_OUT" | grep '^refusal')" \
    "a refused device is told the router is busy and when to come back (EDGE_ERROR, retry hint)"
assert_match 'served=30 ' "$SUMMARY" "30 served"
REFUSED=$(echo "$SUMMARY" | sed -n 's/.* refused=\([0-9]*\) .*/\1/p')
HMIN=$(echo "$SUMMARY" | sed -n 's/.* hinted_min_ms=\([0-9]*\) .*/\1/p')
assert_cond "some devices were refused (got ${REFUSED:-none})" test "${REFUSED:-0}" -gt 0
assert_cond "every refusal carried a retry hint of at least 1 ms (min $HMIN)" \
    test "${HMIN:-0}" -ge 1
# 5 at once, then 25 more at 5/s: no sooner than ~5 s, and not unboundedly later
TOTAL=$(echo "$SUMMARY" | sed -n 's/.* total_ms=\([0-9]*\).*/\1/p')
assert_cond "the last device waited for the rate (total_ms=$TOTAL >= 4000)" test "$TOTAL" -ge 4000
assert_cond "and was served within a bounded time (total_ms=$TOTAL < 30000)" \
    test "$TOTAL" -lt 30000

# ---- a refusal as a device sees it, and the counters
t_run "$STORM" --identity "$T_TMP/dev1.json" --router "$DP_EDGE_LISTEN" --devices 12 \
    --timeout-s 30
assert_rc 0 "a second wave is admitted too"
sleep 1.5
dp_probe dev1 --timeout 5000
assert_rc 0 "after the wave a single session is admitted at once"
M=$(curl -s "http://$METRICS/metrics")
ADM=$(echo "$M" | awk '/^weft_router_sessions_admitted_total/ {print $2}')
REF=$(echo "$M" | awk '/^weft_router_sessions_refused_total/ {print $2}')
t_diag "metrics admitted=$ADM refused=$REF"
assert_cond "metrics count the admitted sessions (>= 43, got ${ADM:-none})" test "${ADM:-0}" -ge 43
assert_cond "metrics count the refusals (>= $REFUSED, got ${REF:-none})" \
    test "${REF:-0}" -ge "${REFUSED:-1}"
dp_router_alive "the router is still running"

# ---- the controller: session data at 2/s (burst 2) answers 429 busy with Retry-After
ctl_stop "$DP_DIR"
python3 - "$DP_DIR/controller.json" <<'PY' || t_bail "cannot set the admission keys"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["admit_session_rate"] = 2
d["admit_session_burst"] = 2
json.dump(d, open(p, "w"), indent=2)
PY
CMETRICS=127.0.0.1:$(dp_port)
bg ctl-admit "$WEFT_CONTROLLER_BIN" run --dir "$DP_DIR" --metrics-listen "$CMETRICS"
CTL_PID[$DP_DIR]=$BG_PID
dp_wait_port "${CTL_PORT[$DP_DIR]}" 30 || t_bail "controller not listening again"
dp_wait_port "${CMETRICS##*:}" 30 || t_bail "controller metrics not listening on $CMETRICS"
idfile_split "$T_TMP/dev1.json" "$T_TMP/creds-dev1" || t_bail "cannot split dev1.json"
OK=0; BUSY=0
for i in $(seq 1 8); do
    code=$(curl -s --max-time 10 --cacert "$T_CA" --cert "$T_TMP/creds-dev1/cert.pem"         --key "$T_TMP/creds-dev1/key.pem" -D "$T_TMP/run/h$i" -o "$T_TMP/run/b$i"         -w '%{http_code}' "$T_URL/v1/edge/session")
    case $code in
        200) OK=$((OK + 1)) ;;
        429) BUSY=$((BUSY + 1)); LAST=$i ;;
    esac
done
t_diag "8 quick session requests: $OK answered, $BUSY busy"
assert_cond "the burst is answered (>= 2 of 8, got $OK)" test "$OK" -ge 2
assert_cond "the rest are refused as busy (>= 3 of 8, got $BUSY)" test "$BUSY" -ge 3
assert_eq busy "$(jget "$(cat "$T_TMP/run/b${LAST:-1}")" .error.code)" \
    "a refusal is {\"error\":{\"code\":\"busy\"}}"
RA=$(tr -d '\r' < "$T_TMP/run/h${LAST:-1}" | awk -F': ' 'tolower($1) == "retry-after" {print $2}')
assert_match '^[1-9][0-9]*$' "$RA" "a refusal carries Retry-After in seconds"
sleep "${RA:-1}"
dp_session dev1
assert_status 200 "after Retry-After the session data is served"
M=$(curl -s "http://$CMETRICS/metrics")
assert_match 'weft_controller_refused_total\{kind="session"\} [1-9]' "$M" \
    "controller metrics count the refusals"
assert_match 'weft_controller_admitted_total\{kind="session"\} [1-9]' "$M" \
    "controller metrics count the admitted requests"
ctl_check_alive
