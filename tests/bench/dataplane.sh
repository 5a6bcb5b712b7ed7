#!/usr/bin/env bash
# Data-plane benchmark: the same loopback traffic three ways, in one run,
#   raw      client -> server
#   stunnel  client -> stunnel (client) -TLS-> stunnel (server | client) -TLS-> stunnel (server) -> server
#   weft     client -> weft-edge -TLS-> weft-router -TLS-> weft-edge -> server
# (two TLS hops and three processes in both tunnelled shapes; weft adds its
# end-to-end encryption inside). Figures: single-flow throughput, 8 parallel
# flows (aggregate and Jain's fairness index), echo round trip p50/p99 with
# 64-byte messages, dials per second (connect, one byte there and back; 4
# dialers, then 1), router
# RSS per idle circuit, weft-edge idle RSS, and each weft-edge's memory per
# idle circuit (RSS, RssAnon and address space) and 2 s after those circuits
# closed. Prints a table of figures and ratios against raw and stunnel, and
# the targets.
# Usage: tests/bench/dataplane.sh BUILD_DIR
#   BENCH_DP_SECONDS (5)  seconds per throughput run
#   BENCH_DP_RTT (5000)   round trips          BENCH_DP_DIALS (1000)  dials
#   BENCH_DP_CIRCUITS (10000)  idle circuits held for the memory figure
#   BENCH_OUT  file the results are appended to
build=${1:?usage: tests/bench/dataplane.sh BUILD_DIR}
WEFT_BUILD=$(cd "$build" && pwd) || exit 2
export WEFT_BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
. "$here/../integration/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST"
command -v stunnel4 >/dev/null || t_bail "needs stunnel4 (scripts/deps.sh)"

secs=${BENCH_DP_SECONDS:-5}
n_rtt=${BENCH_DP_RTT:-5000}
n_dials=${BENCH_DP_DIALS:-1000}
n_circ=${BENCH_DP_CIRCUITS:-10000}
out=${BENCH_OUT:-/dev/null}
# Idle circuits need a descriptor at the client, each edge and the echo server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
fd_limit=$(ulimit -n)
if [ $((n_circ + 200)) -gt "$fd_limit" ]; then
    echo "# only $fd_limit descriptors per process: holding $((fd_limit - 200)) circuits, not $n_circ"
    n_circ=$((fd_limit - 200))
fi
dp_asan && echo "# WARNING: a sanitizer build; these figures say nothing about release speed"

declare -A R  # R[metric,shape] = figure

sample() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }

# ---------------------------------------------------------------- servers
SINK=$(dp_port); ECHO=$(dp_port)
bg sink "$DP_BLAST" sink "$SINK"
bg echo "$DP_BLAST" echo "$ECHO"

# ---------------------------------------------------------------- stunnel chain
st_conf() { # NAME then lines "service accept connect client"
    local f="$T_TMP/st-$1.conf"; shift
    printf 'foreground = yes\npid =\ndebug = 3\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n' >"$f"
    while [ $# -gt 0 ]; do
        printf '[%s]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\nclient = %s\n' "$1" "$2" "$3" "$4" >>"$f"
        if [ "$4" == no ]; then
            printf 'cert = %s\nkey = %s\n' "$T_TMP/st.pem" "$T_TMP/st.key" >>"$f"
        fi
        printf 'sslVersion = TLSv1.3\n' >>"$f"
        shift 4
    done
    echo "$f"
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
    -keyout "$T_TMP/st.key" -out "$T_TMP/st.pem" >/dev/null 2>&1 || t_bail "openssl req failed"
stunnel_chain() { # SERVER_PORT: sets ST_PORT, the port clients connect to (no $(...):
                 # the processes must be started by this shell to be cleaned up)
    local p1 p2 p3 p4
    p1=$(dp_port); p2=$(dp_port); p3=$(dp_port); p4=$(dp_port)
    bg "stunnel-$1-a" stunnel4 "$(st_conf "$1-a" in "$p1" "$p2" yes)"
    bg "stunnel-$1-b" stunnel4 "$(st_conf "$1-b" mid-in "$p2" "$p3" no mid-out "$p3" "$p4" yes)"
    bg "stunnel-$1-c" stunnel4 "$(st_conf "$1-c" out "$p4" "$1" no)"
    dp_wait_port "$p1" 10 && dp_wait_port "$p2" 10 && dp_wait_port "$p4" 10 ||
        t_bail "stunnel did not start: $(tail -5 "$T_TMP"/logs/stunnel-"$1"-*.log)"
    ST_PORT=$p1
    ST_TLS_PORT=$p2 # a TLS 1.3 server (stunnel's middle)
}
stunnel_chain "$SINK"
ST_SINK=$ST_PORT
stunnel_chain "$ECHO"
ST_ECHO=$ST_PORT

# ---------------------------------------------------------------- weft fabric
dp_fabric dpbench
W_SINK=$(dp_port); W_ECHO=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service sink bench "tcp:127.0.0.1:$W_SINK" "tcp:127.0.0.1:$SINK"
dp_service echo bench "tcp:127.0.0.1:$W_ECHO" "tcp:127.0.0.1:$ECHO"
dp_policy bench-dial dial '#devices' '#bench'
dp_policy bench-bind bind '#hosts' '#bench'
dp_edge host1
HOST_PID=$BG_PID
dp_edge dev1
DIAL_PID=$BG_PID
for s in sink echo; do
    dp_wait_log "$T_TMP/logs/edge-dev1.log" "event=edge_intercepting service=$s " 30 ||
        t_bail "dialling edge does not intercept $s: $(tail -5 "$T_TMP/logs/edge-dev1.log")"
    dp_wait_log "$T_TMP/logs/edge-host1.log" "event=edge_bound service=$s( |$)" 30 ||
        t_bail "hosting edge did not bind $s"
done
"$DP_BLAST" rtt "127.0.0.1:$W_ECHO" --count 10 --max-seconds 30 >/dev/null ||
    t_bail "no echo through the fabric"
sleep 1
R[edge_idle,dial]=$(dp_rss_kb "$DIAL_PID")
R[edge_idle,host]=$(dp_rss_kb "$HOST_PID")
# The floor: one TLS 1.3 client connection with this machine's OpenSSL and
# nothing else (tests/tools/tls_floor.c), against stunnel's TLS server.
o=$("$DP_TOOLS/tls_floor" 127.0.0.1 "$ST_TLS_PORT") || t_bail "tls_floor failed: $o"
R[floor_rss]=$(sample rss_kb "$o")
R[floor_anon]=$(sample anon_kb "$o")
# RSS counts the shared libraries' pages (libcrypto most of all); RssAnon is
# what the process itself holds.
R[edge_anon,dial]=$(awk '/^RssAnon/ {print $2}' "/proc/$DIAL_PID/status")
R[edge_anon,host]=$(awk '/^RssAnon/ {print $2}' "/proc/$HOST_PID/status")
R[router_idle,weft]=$(dp_rss_kb "$DP_ROUTER_PID")

# ---------------------------------------------------------------- runs
# Single flow: three rounds, each running raw, stunnel and weft in turn, and
# the median per shape. Interleaving keeps drift in the machine's load (two
# shared cores) from favouring one shape; one run varies by 20 % or more.
# The edges' CPU time per byte of weft's single flows says more than the
# rate on a shared machine: it does not depend on what else gets the cores.
edges_cpu() { awk '{t += $14 + $15} END {print t}' "/proc/$DIAL_PID/stat" "/proc/$HOST_PID/stat"; }
single_flows() {
    local i shape port o c0 cpu=0 bytes=0
    declare -A v
    for i in 1 2 3; do
        for shape in raw stunnel weft; do
            case $shape in raw) port=$SINK ;; stunnel) port=$ST_SINK ;; weft) port=$W_SINK ;; esac
            c0=$(edges_cpu)
            o=$(timeout $((secs + 60)) "$DP_BLAST" send "127.0.0.1:$port" --seconds "$secs" \
                --max-seconds $((secs + 50)))
            v[$shape]+="$(sample mbit "$(grep ^total <<<"$o")") "
            if [ "$shape" == weft ]; then
                cpu=$((cpu + $(edges_cpu) - c0))
                bytes=$((bytes + $(sample bytes "$(grep ^total <<<"$o")")))
            fi
        done
    done
    R[edge_cpu_gb,weft]=$(python3 -c "print(round($cpu / $(getconf CLK_TCK) / max($bytes / 1e9, 1e-9), 2))")
    for shape in raw stunnel weft; do
        R[single,$shape]=$(printf '%s\n' ${v[$shape]} | sort -g | sed -n 2p)
        R[single_all,$shape]=${v[$shape]}
    done
}

run_shape() { # SHAPE SINK_PORT ECHO_PORT
    local o
    o=$(timeout $((secs + 60)) "$DP_BLAST" send "127.0.0.1:$2" --seconds "$secs" --flows 8 --max-seconds $((secs + 50)))
    R[eight,$1]=$(sample mbit "$(grep ^total <<<"$o")")
    R[jain,$1]=$(sample jain "$(grep ^total <<<"$o")")
    o=$(timeout 120 "$DP_BLAST" rtt "127.0.0.1:$3" --count "$n_rtt" --size 64 --max-seconds 100)
    R[p50,$1]=$(sample p50_us "$o")
    R[p99,$1]=$(sample p99_us "$o")
    o=$(timeout 120 "$DP_BLAST" dials "127.0.0.1:$3" --count "$n_dials" --flows 4 --max-seconds 100)
    R[dials,$1]=$(sample per_s "$o")
    R[dial_p50,$1]=$(sample p50_ms "$o")
    o=$(timeout 120 "$DP_BLAST" dials "127.0.0.1:$3" --count $((n_dials / 4)) --max-seconds 100)
    R[dials1,$1]=$(sample per_s "$o")
    R[dial1_p50,$1]=$(sample p50_ms "$o")
    R[dial1_p99,$1]=$(sample p99_ms "$o")
    echo "# $1 done"
}
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
single_flows
run_shape raw "$SINK" "$ECHO"
run_shape stunnel "$ST_SINK" "$ST_ECHO"
run_shape weft "$W_SINK" "$W_ECHO"
echo "# load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# single-flow runs (Mbit/s): raw ${R[single_all,raw]}; stunnel ${R[single_all,stunnel]}; weft ${R[single_all,weft]}"
R[edge_busy,dial]=$(dp_rss_kb "$DIAL_PID")
R[router_busy,weft]=$(dp_rss_kb "$DP_ROUTER_PID")

# ---------------------------------------------------------------- idle circuits
rss_before=$(dp_rss_kb "$DP_ROUTER_PID")
read -r dial_before dial_anon_before dial_vm_before <<<"$(dp_mem_kb "$DIAL_PID")"
read -r host_before host_anon_before host_vm_before <<<"$(dp_mem_kb "$HOST_PID")"
dp_hold "$W_ECHO" "$n_circ" 300
sleep 2 # libweft releases the buffers of circuits quiet for about a second
held=$(sed -n 's/^held \([0-9]*\) of.*/\1/p' "$T_TMP/hold.out")
rss_after=$(dp_rss_kb "$DP_ROUTER_PID")
read -r dial_after dial_anon_after dial_vm_after <<<"$(dp_mem_kb "$DIAL_PID")"
read -r host_after host_anon_after host_vm_after <<<"$(dp_mem_kb "$HOST_PID")"
dp_hold_end
sleep 2 # the circuits closed as the holder exited; what is left 2 s later
read -r dial_closed dial_anon_closed _ <<<"$(dp_mem_kb "$DIAL_PID")"
read -r host_closed host_anon_closed _ <<<"$(dp_mem_kb "$HOST_PID")"
echo "# idle circuits: $(cat "$T_TMP/hold.out")"
held=${held:-0}
per_circ() { python3 -c "print(round(($2 - $1) / max($3, 1), 2))"; }
R[per_circ,router]=$(per_circ "$rss_before" "$rss_after" "$held")
R[per_circ,dial]=$(per_circ "$dial_before" "$dial_after" "$held")
R[per_circ,host]=$(per_circ "$host_before" "$host_after" "$held")
R[per_circ_anon,dial]=$(per_circ "$dial_anon_before" "$dial_anon_after" "$held")
R[per_circ_anon,host]=$(per_circ "$host_anon_before" "$host_anon_after" "$held")
R[per_circ_vm,dial]=$(per_circ "$dial_vm_before" "$dial_vm_after" "$held")
R[per_circ_vm,host]=$(per_circ "$host_vm_before" "$host_vm_after" "$held")

# ---------------------------------------------------------------- report
report() { printf '%-40s %12s %12s %12s %9s %9s  %s\n' "$@" | tee -a "$out"; }
ratio() { python3 -c "a, b = '$1', '$2'
print(round(float(a) / float(b), 2) if a and b and float(b) > 0 else '-')"; }
row() { # LABEL KEY UNIT_NOTE TARGET
    report "$1" "${R[$2,raw]:--}" "${R[$2,stunnel]:--}" "${R[$2,weft]:--}" \
        "$(ratio "${R[$2,weft]}" "${R[$2,raw]}")" "$(ratio "${R[$2,weft]}" "${R[$2,stunnel]}")" "$3"
}
meets() { python3 -c "import sys; sys.exit(0 if $1 else 1)" 2>/dev/null && echo met || echo "NOT met"; }
echo "# $(date -u +%FT%TZ), $(nproc) cores, ${secs} s per throughput run" | tee -a "$out"
report "data plane" raw stunnel weft "weft/raw" "weft/st" "target"
row "single flow (Mbit/s, median of 3)" single \
    "weft >= stunnel: $(meets "${R[single,weft]:-0} >= ${R[single,stunnel]:-1}")"
report "weft-edges CPU s per GB, single flow" - - "${R[edge_cpu_gb,weft]}" - - "both edges"
row "8 flows, aggregate (Mbit/s)" eight \
    "weft 8 >= weft 1: $(meets "${R[eight,weft]:-0} >= ${R[single,weft]:-1}")"
row "8 flows, Jain's fairness index" jain ""
row "echo round trip p50 (us, 64 B)" p50 ""
row "echo round trip p99 (us, 64 B)" p99 ""
row "dials per second (4 dialers)" dials ""
row "dial p50 (ms, 4 dialers)" dial_p50 ""
row "dials per second (1 dialer)" dials1 ""
row "dial p50 (ms, 1 dialer)" dial1_p50 ""
row "dial p99 (ms, 1 dialer)" dial1_p99 ""
kib=$(python3 -c "print(round(${R[per_circ,router]} * 1.0, 2))")
report "router KiB per idle circuit ($held held)" - - "$kib" - - \
    "<= 16 KiB: $(meets "$held > 0 and $kib <= 16")"
report "weft-edge KiB per idle circuit, dial/host" - - "${R[per_circ,dial]}/${R[per_circ,host]}" - - \
    "<= 8 KiB: $(meets "$held > 0 and max(${R[per_circ,dial]}, ${R[per_circ,host]}) <= 8")"
report "weft-edge RssAnon KiB per idle circuit" - - \
    "${R[per_circ_anon,dial]}/${R[per_circ_anon,host]}" - - ""
report "weft-edge VmSize KiB per idle circuit" - - "${R[per_circ_vm,dial]}/${R[per_circ_vm,host]}" - - ""
report "hosting weft-edge RSS, $held circuits (kB)" - - "$host_after" - - ""
report "weft-edge RssAnon before/2 s after close, dial (kB)" - - "$dial_anon_before/$dial_anon_closed" - - \
    "within 1 MB: $(meets "${dial_anon_closed:-99999} - ${dial_anon_before:-0} <= 1024")"
report "weft-edge RssAnon before/2 s after close, host (kB)" - - "$host_anon_before/$host_anon_closed" - - \
    "within 1 MB: $(meets "${host_anon_closed:-99999} - ${host_anon_before:-0} <= 1024")"
report "weft-edge RSS before/2 s after close, dial/host (kB)" - - \
    "$dial_before/$dial_closed $host_before/$host_closed" - - ""
report "bare TLS 1.3 client RSS / RssAnon (kB, floor)" - - "${R[floor_rss]}/${R[floor_anon]}" - - \
    "weft-edge idle RSS / floor $(ratio "${R[edge_idle,dial]}" "${R[floor_rss]}")"
report "weft-edge idle RSS, dialling (kB)" - - "${R[edge_idle,dial]}" - - \
    "<= 4096 kB: $(meets "${R[edge_idle,dial]:-99999} <= 4096")"
report "weft-edge idle RSS, hosting (kB)" - - "${R[edge_idle,host]}" - - \
    "<= 4096 kB: $(meets "${R[edge_idle,host]:-99999} <= 4096")"
report "weft-edge idle RssAnon, dialling/hosting (kB)" - - "${R[edge_anon,dial]}/${R[edge_anon,host]}" - - \
    "<= 4096 kB: $(meets "max(${R[edge_anon,dial]:-99999}, ${R[edge_anon,host]:-99999}) <= 4096")"
report "weft-router RSS idle / after runs (kB)" - - "${R[router_idle,weft]}/${R[router_busy,weft]}" - - ""
report "dialling weft-edge RSS after runs (kB)" - - "${R[edge_busy,dial]}" - - ""
[ "$held" == "$n_circ" ] || echo "# held only $held of $n_circ idle circuits (see hold.log)"
