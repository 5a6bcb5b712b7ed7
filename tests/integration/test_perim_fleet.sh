#!/usr/bin/env bash
# A simulated fleet (docs/policies.md "Anomaly detection"): 50 devices send
# regular telemetry through the fabric (one dial every 2 s each, on raw edge
# sessions). Once the router has learnt their baseline, one device turns
# Mirai-like and floods; it must be detected and quarantined within 5 s,
# while the 49 others stay enabled and raise no anomaly (10 s under ASan).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

N=${WEFT_FLEET_N:-50}
BAD=7
dp_fabric fleet
dp_telemetry

for i in $(seq 1 "$N"); do
    dp_enrol "dev$i" fleet
    dp_token "dev$i" telemetry dial >"$T_TMP/dev$i.tok"
done
have=0
for i in $(seq 1 "$N"); do [ -s "$T_TMP/dev$i.json" ] && [ -s "$T_TMP/dev$i.tok" ] && have=$((have + 1)); done
assert_eq "$N" "$have" "$N devices enrolled, each with a telemetry token"

# Regular telemetry: one dial every 2 s per device, staggered over 20 s. The
# device that turns bad starts at once, so its baseline is surely learnt
# (RT_ANOM_LEARN windows of 10 s) before the flood at 45 s.
for i in $(seq 1 "$N"); do
    stagger='$((RANDOM % 20)).$((RANDOM % 10))'
    [ "$i" == "$BAD" ] && stagger=0
    bg "tele$i" bash -c "sleep $stagger; end=\$((SECONDS + 80));
        while [ \$SECONDS -lt \$end ]; do
            '$DP_PROBE' --identity '$T_TMP/dev$i.json' --router '$DP_EDGE_LISTEN' \
                --dial telemetry --token @'$T_TMP/dev$i.tok' --timeout 5000 >/dev/null; sleep 2;
        done"
done
# Learning: RT_ANOM_LEARN windows of 10 s, and a margin.
sleep 45

t_off=$(date +%s.%N)
for k in $(seq 1 40); do
    "$DP_PROBE" --identity "$T_TMP/dev$BAD.json" --router "$DP_EDGE_LISTEN" --dial telemetry \
        --token @"$T_TMP/dev$BAD.tok" --timeout 3000 >/dev/null 2>&1 &
done
detected=""
for i in $(seq 1 100); do
    if "$WEFT" identity show "dev$BAD" --json 2>/dev/null | grep -q '"disabled": *true'; then
        detected=$(python3 -c "import time; print(round(time.time() - $t_off, 2))")
        break
    fi
    sleep 0.1
done
wait_jobs=$(jobs -p); [ -n "$wait_jobs" ] && sleep 1
LIMIT=5; dp_asan && LIMIT=10 # ASan slows the 40 flood sessions' handshakes
t_diag "dev$BAD quarantined ${detected:-never} s after its flood began"
assert_cond "the flooding device is quarantined within $LIMIT s (${detected:-never} s)" \
    python3 -c "import sys; sys.exit(0 if '${detected}' and float('${detected:-99}') < $LIMIT else 1)"
weft events --json
assert_match "\"kind\":\"anomaly\"" "$T_OUT" "an anomaly event was recorded"
others=$(printf '%s\n' "$T_OUT" | python3 -c '
import json, sys
bad = 0
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        e = json.loads(line)
        if e.get("kind") in ("anomaly", "quarantine") and e.get("identity") != sys.argv[1]:
            bad += 1
print(bad)' "$(jget "$("$WEFT" identity show "dev$BAD" --json)" .data.id)")
assert_eq 0 "$others" "no anomaly or quarantine for any other device"
disabled=0
for i in $(seq 1 "$N"); do
    [ "$i" == "$BAD" ] && continue
    "$WEFT" identity show "dev$i" --json 2>/dev/null | grep -q '"disabled": *true' && disabled=$((disabled + 1))
done
assert_eq 0 "$disabled" "the $((N - 1)) other devices are still enabled"
dp_router_alive "the router survived"
