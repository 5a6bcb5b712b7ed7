#!/usr/bin/env bash
# Admission bench: BENCH_ADMIT_DEVICES (5000) devices reconnect at once to one
# router (tests/tools/admit_storm: real TLS sessions with an identity
# certificate, one enrolled identity shared by all; a refused device waits the
# router's retry hint plus jitter). Run twice: the router's default admission
# limit (200 sessions/s, burst 400), then no limit. Figures: the curve
# (sessions admitted per 100 ms), time until every device is served,
# refusals, failed handshakes, router CPU seconds and peak RSS.
# Usage: tests/bench/admission.sh BUILD_DIR
#   BENCH_ADMIT_DEVICES (5000)   BENCH_ADMIT_TIMEOUT (180) seconds per run
#   BENCH_OUT  file the results are appended to
build=${1:?usage: tests/bench/admission.sh BUILD_DIR}
WEFT_BUILD=$(cd "$build" && pwd) || exit 2
export WEFT_BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
. "$here/../integration/dp_lib.sh"
STORM="$DP_TOOLS/admit_storm"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$STORM"

n=${BENCH_ADMIT_DEVICES:-5000}
limit_s=${BENCH_ADMIT_TIMEOUT:-180}
out=${BENCH_OUT:-/dev/null}
# Every held session is a descriptor in the router and in the storm tool.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ $((n + 200)) -gt "$(ulimit -n)" ]; then
    echo "# only $(ulimit -n) descriptors per process: $(( $(ulimit -n) - 200 )) devices, not $n"
    n=$(( $(ulimit -n) - 200 ))
fi
dp_asan && echo "# WARNING: a sanitizer build; these figures say nothing about release speed"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }

# storm LABEL ROUTER_ARGS...: restarts the router with ROUTER_ARGS, runs the storm.
storm() {
    local label=$1 pid t0 t1 peak=0 rss summary hz
    shift
    bg "router-$label" "$WEFT_ROUTER" run --dir "$T_TMP/r1" --log-level warn "$@"
    pid=$BG_PID
    dp_wait_port "${DP_EDGE_LISTEN##*:}" 30 || t_bail "router not listening on $DP_EDGE_LISTEN"
    sleep 0.5
    t0=$(cpu_ticks "$pid")
    "$STORM" --identity "$T_TMP/dev1.json" --router "$DP_EDGE_LISTEN" --devices "$n" \
        --timeout-s "$limit_s" > "$T_TMP/storm-$label.txt" 2>"$T_TMP/logs/storm-$label.err" &
    local spid=$!
    while kill -0 "$spid" 2>/dev/null; do
        rss=$(dp_rss_kb "$pid"); [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.1
    done
    wait "$spid"
    t1=$(cpu_ticks "$pid")
    hz=$(getconf CLK_TCK)
    if alive "$pid"; then alive_s=yes; else alive_s=NO; fi
    summary=$(grep '^storm ' "$T_TMP/storm-$label.txt")
    stop_pid "$pid"
    {
        echo "admission $label: $summary router_cpu_s=$(awk -v a="$t0" -v b="$t1" -v h="$hz" \
            'BEGIN {printf "%.2f", (b - a) / h}') router_peak_rss_mb=$((peak / 1024)) router_alive=$alive_s"
        echo "# curve $label (ms from the start: sessions admitted in that 100 ms)"
        grep '^curve ' "$T_TMP/storm-$label.txt" | awk '{
            split($2, t, "="); split($3, a, "="); line = line sprintf(" %s:%s", t[2], a[2]); n++
            if (n % 10 == 0) { print "#  " line; line = "" } }
            END { if (line != "") print "#  " line }'
    } | tee -a "$out"
}

dp_fabric admitbench
dp_enrol dev1 devices
stop_pid "$DP_ROUTER_PID"
echo "# $n devices reconnecting at once to one router, $(nproc) cores"
storm limited
storm unlimited --admit-rate 0
