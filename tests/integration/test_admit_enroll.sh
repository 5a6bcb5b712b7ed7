#!/usr/bin/env bash
# weft-edge enroll against a controller whose enrolment admission is set very
# low (2/s, burst 2; docs/policies.md "Admission control"): 16 devices enrol
# at once. The controller answers most of them 429 with Retry-After before it
# looks at their tokens; each weft-edge prints a line per wait, waits the
# advised seconds (jittered) and asks again. All 16 enrol; every token was
# used exactly once (the controller admitted 16 enrolments, a reused token is
# refused as used); other errors still fail at once.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

N=16
PORT=$(free_port) || t_bail "no free port"
DIR="$T_TMP/admitenr"
ctl_init "$DIR" "$PORT" admitenr
json_set_ints "$DIR/controller.json" admit_enroll_rate=2 admit_enroll_burst=2 ||
    t_bail "cannot set the admission keys"
CMETRICS=127.0.0.1:$(free_port)
bg ctl-admitenr "$WEFT_CONTROLLER_BIN" run --dir "$DIR" --metrics-listen "$CMETRICS"
CTL_PID[$DIR]=$BG_PID
for ((i = 0; i < 300; i++)); do
    curl -sk --max-time 2 -o /dev/null "https://127.0.0.1:$PORT/v1/version" && break
    sleep 0.1
done
ctl_use "$DIR"

for ((i = 1; i <= N; i++)); do
    weft identity create "d$i" --role devices --out "$T_TMP/d$i.jwt"
    [ "$T_RC" == 0 ] || t_bail "identity create d$i failed: $T_ERR"
done

# ---- 16 enrolments at once
START=$(date +%s%N)
PIDS=()
for ((i = 1; i <= N; i++)); do
    timeout -k 5 120 "$WEFT_EDGE" enroll "$T_TMP/d$i.jwt" --out "$T_TMP/d$i.json" \
        >"$T_TMP/run/enr$i.out" 2>"$T_TMP/run/enr$i.err" &
    PIDS+=($!)
done
FAILED=0
for ((i = 1; i <= N; i++)); do
    wait "${PIDS[$((i - 1))]}" || { FAILED=$((FAILED + 1)); t_diag "d$i: $(cat "$T_TMP/run/enr$i.err")"; }
done
ELAPSED_MS=$(( ($(date +%s%N) - START) / 1000000 ))
echo "measured: $N enrolments at once against 2/s: all done in ${ELAPSED_MS} ms" >&2
t_diag "$N enrolments at once against 2/s: all done in ${ELAPSED_MS} ms"
assert_eq 0 "$FAILED" "all $N enrolments succeed"
DONE=0
for ((i = 1; i <= N; i++)); do
    grep -q "^enrolled identity d$i " "$T_TMP/run/enr$i.out" && [ -s "$T_TMP/d$i.json" ] &&
        DONE=$((DONE + 1))
done
assert_eq "$N" "$DONE" "each wrote its identity file and said so"
WAITS=$(cat "$T_TMP"/run/enr*.err | grep -c "busy admitting enrolments")
t_diag "busy lines printed: $WAITS"
assert_cond "devices were told to wait (got $WAITS busy lines)" test "$WAITS" -ge $((N / 2))
assert_match "^weft-edge: the controller is busy admitting enrolments \(HTTP 429, Retry-After [1-9][0-9]* s\); the token is not spent; retrying in [0-9]+\.[0-9] s \(attempt 2 of 30\)$" \
    "$(cat "$T_TMP"/run/enr*.err | grep "attempt 2 of" | head -1)" "a wait is one clear line"
assert_no_match "token_used|already used|error|refused" "$(cat "$T_TMP"/run/enr*.err)" \
    "no enrolment saw its token refused"
# 2 at once, then 14 more at 2/s: no sooner than ~6 s
assert_cond "the rate was honoured (${ELAPSED_MS} ms >= 5000)" test "$ELAPSED_MS" -ge 5000
assert_cond "and the waits were bounded (${ELAPSED_MS} ms < 60000)" test "$ELAPSED_MS" -lt 60000

# ---- each token used exactly once
M=$(curl -s "http://$CMETRICS/metrics")
ADM=$(echo "$M" | awk -F' ' '/^weft_controller_admitted_total\{kind="enroll"\}/ {print $2}')
REF=$(echo "$M" | awk -F' ' '/^weft_controller_refused_total\{kind="enroll"\}/ {print $2}')
t_diag "controller: enrolments admitted=$ADM refused=$REF"
assert_eq "$N" "$ADM" "the controller admitted exactly $N enrolments (one per token)"
assert_cond "and refused the rest as busy (refused=$REF)" test "${REF:-0}" -ge "$WAITS"
weft identity list --json
ENROLLED=$(printf '%s' "$T_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("data", d) if isinstance(d, dict) else d
print(sum(1 for r in d if r.get("name", "").startswith("d") and r.get("enrolled")))')
assert_eq "$N" "$ENROLLED" "all $N identities are enrolled"
sleep 1.5
t_run "$WEFT_EDGE" enroll "$T_TMP/d1.jwt" --out "$T_TMP/d1-again.json"
assert_eq 1 "$T_RC" "a token used once is refused the second time"
assert_match "token_used" "$T_ERR" "as used (token_used), at once"
assert_no_match "busy admitting" "$T_ERR" "without a wait"
ctl_check_alive
