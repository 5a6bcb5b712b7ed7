#!/usr/bin/env bash
# What an idle edge costs on the wire: one router, three edges that carry
# nothing, with keepalives of 5 s (the default), 15 s and 30 s, side by side.
# After BENCH_IDLE_SECONDS, each edge's router session is read from the kernel
# (ss -ti: TCP payload bytes and segments both ways, pure ACKs included) and
# scaled to an hour. On the wire each segment also carries 52 bytes of IPv4
# and TCP headers (with timestamps); a cellular bearer adds its own. The
# session-data refresh (an HTTPS request every --refresh seconds, 60 by
# default) goes to the controller and is not counted here.
# Usage: tests/bench/edge_idle.sh BUILD_DIR
#   BENCH_IDLE_SECONDS (120)   BENCH_OUT  file the results are appended to
build=${1:?usage: tests/bench/edge_idle.sh BUILD_DIR}
WEFT_BUILD=$(cd "$build" && pwd) || exit 2
export WEFT_BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
. "$here/../integration/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"
secs=${BENCH_IDLE_SECONDS:-120}
out=${BENCH_OUT:-/dev/null}

dp_fabric idle
port=${DP_EDGE_LISTEN##*:}
declare -A PID
for k in 5000 15000 30000; do
    dp_enrol "idle$k" devices
    bg "edge-idle$k" "$WEFT_EDGE" run --identity "$T_TMP/idle$k.json" --keepalive-ms "$k"
    PID[$k]=$BG_PID
done
for k in 5000 15000 30000; do
    dp_wait_log "$T_TMP/logs/edge-idle$k.log" "event=edge_session_state .* to=READY" 30 ||
        t_bail "edge idle$k has no session"
done
# ss -ti of PID's session to the router: "bytes_out bytes_in segs_out segs_in"
session_counts() {
    ss -tinpH state established "( dport = :$port )" | python3 -c '
import re, sys
lines = sys.stdin.read().split("\n")
for i, l in enumerate(lines):
    if "pid=%s," % sys.argv[1] in l and i + 1 < len(lines):
        f = dict(re.findall(r"(bytes_sent|bytes_received|segs_out|segs_in):(\d+)", lines[i + 1]))
        print(f.get("bytes_sent", 0), f.get("bytes_received", 0), f.get("segs_out", 0), f.get("segs_in", 0))
        break' "$1"
}
declare -A START
for k in 5000 15000 30000; do START[$k]=$(session_counts "${PID[$k]}"); done
sleep "$secs"
for k in 5000 15000 30000; do
    read -r b0o b0i s0o s0i <<<"${START[$k]}"
    read -r b1o b1i s1o s1i <<<"$(session_counts "${PID[$k]}")"
    python3 - "$k" "$secs" $((b1o - b0o)) $((b1i - b0i)) $((s1o - s0o)) $((s1i - s0i)) <<'EOF' | tee -a "$out"
import sys
k, secs, bo, bi, so, si = map(int, sys.argv[1:])
h = 3600.0 / secs
tls = (bo + bi) * h
wire = tls + (so + si) * 52 * h
print("idle edge, keepalive %5d ms: %7.0f segments/h, TLS payload %6.1f KB/h, with IPv4/TCP headers"
      " %6.1f KB/h per router session (an edge with two routers holds two)"
      % (k, (so + si) * h, tls / 1000, wire / 1000))
EOF
done
