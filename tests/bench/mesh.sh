#!/usr/bin/env bash
# Mesh benchmark, in one run (tests/mesh/common.sh beds on loopback):
#   chain    routers c1 - c2 - c3 linked directly (no relay), each reaching only
#            its neighbours; a dialling edge on c1, hosting edges on c2 and c3:
#            single-flow throughput through 2 and 3 routers against raw TCP and
#            stunnel4 in the same shape (as many TLS hops and processes: 3 hops
#            for 2 routers, 4 for 3), 8 flows through 2 routers, and dials per
#            second through 2 routers with the controller running and stopped.
#   diamond  r1-{r2,r3}-r4 with a weft_relay on every link (run as a second
#            process of this script, "mesh.sh BUILD --diamond"): the stall of a
#            64 MiB stream paced at 16 MiB/s for each failure kind (cut link,
#            reset link, router SIGKILL; redundant mode with a cut link), and
#            split mode's throughput over two legs each limited to R against
#            failover's over one.
# Usage: tests/bench/mesh.sh BUILD_DIR
#   BENCH_MESH_SECONDS (4)  seconds per throughput run   BENCH_MESH_DIALS (400)
#   BENCH_MESH_RATE (4000000)  R for the split figure (bytes/s per leg)
#   BENCH_OUT  file the results are appended to
build=${1:?usage: tests/bench/mesh.sh BUILD_DIR}
WEFT_BUILD=$(cd "$build" && pwd) || exit 2
export WEFT_BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
. "$here/../integration/dp_lib.sh"
. "$here/../mesh/common.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$WEFT_RELAY" "$BED_SHIM"
secs=${BENCH_MESH_SECONDS:-4}
n_dials=${BENCH_MESH_DIALS:-400}
rate=${BENCH_MESH_RATE:-4000000}
out=${BENCH_OUT:-/dev/null}
sample() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }
report() { printf '%-44s %14s  %s\n' "$@" | tee -a "$out"; }
ratio() { python3 -c "a, b = '$1', '$2'
print(round(float(a) / float(b), 2) if a and b and float(b) > 0 else '-')"; }
meets() { python3 -c "import sys; sys.exit(0 if $1 else 1)" 2>/dev/null && echo met || echo "NOT met"; }

# ================================================================ diamond
if [ "${2:-}" == --diamond ]; then
    MB_SERVICES="split:split redundant:redundant" mb_diamond meshbench
    mb_wait_links 4 30 && mb_wait_ctl_links 4 30 || t_bail "the diamond's links did not come up"
    for sv in bulk bulk-split bulk-redundant; do
        mb_wait_log "$T_TMP/logs/edge-dialer.log" "event=edge_intercepting service=$sv " 30 ||
            t_bail "dialling edge does not intercept $sv"
    done
    ready() { mb_wait_links 4 30 && mb_wait_ctl_links 4 30 && sleep 2; }
    stall() { # TAG RECV ICPT CMD...
        local tag=$1 recv=$2 icpt=$3 ok gap bytes err
        shift 3
        ready
        mb_stream_start "$recv" 64M 16M "$tag" "$icpt"
        mb_wait_progress "$tag" $((16 * 1024 * 1024)) 30 || echo "# $tag: the stream did not reach 16 MiB"
        "$@" >/dev/null
        read -r ok gap bytes err <<<"$(mb_stream_end "$tag" 90)"
        echo "stall $tag $gap $ok $(mb_path "$(sed -n 's/.*service=\([^ ]*\).*/\1/p' \
            <<<"$(grep -h "event=mesh_dial" "$T_TMP"/logs/router-r1.log | tail -1)")")"
    }
    stall blackhole "$MB_RECV" "$MB_ICPT" mb_relay r1 r2 blackhole on
    mb_relay r1 r2 blackhole off >/dev/null
    stall reset "$MB_RECV" "$MB_ICPT" mb_relay r1 r2 reset
    stall kill9 "$MB_RECV" "$MB_ICPT" mb_kill9_router r2
    mb_start_router r2
    stall redundant "$MB_RECV_redundant" "$MB_ICPT_redundant" mb_relay r1 r2 blackhole on
    mb_relay r1 r2 blackhole off >/dev/null
    # split against failover on the same two legs, each limited to R
    ready
    mb_relay r1 r3 delay 0 >/dev/null
    mb_relay r3 r4 delay 0 >/dev/null
    mb_relay r1 r2 rate "$rate" >/dev/null
    mb_relay r1 r3 rate "$rate" >/dev/null
    sleep 2
    for m in failover split; do
        if [ $m == split ]; then r=$MB_RECV_split i=$MB_ICPT_split; else r=$MB_RECV i=$MB_ICPT; fi
        mb_stream_start "$r" 24M 0 "rate-$m" "$i"
        read -r ok gap bytes err <<<"$(mb_stream_end "rate-$m" 90)"
        echo "rate $m $(python3 -c "import json; d = json.load(open('$T_TMP/rate-$m.stats')); print(int(d['bytes'] / max(d['seconds'], 0.001)))" 2>/dev/null || echo 0) $ok"
    done
    exit 0
fi

# ================================================================ chain
dp_asan && echo "# WARNING: a sanitizer build; these figures say nothing about release speed"
command -v stunnel4 >/dev/null || t_bail "needs stunnel4 (scripts/deps.sh)"
declare -A R
SINK=$(dp_port); ECHO=$(dp_port)
bg sink "$DP_BLAST" sink "$SINK"
bg echo "$DP_BLAST" echo "$ECHO"

# stunnel: HOPS TLS hops from a client-side stunnel through HOPS-1 middle
# processes (server then client) to a server-side one, HOPS+1 processes.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
    -keyout "$T_TMP/st.key" -out "$T_TMP/st.pem" >/dev/null 2>&1 || t_bail "openssl req failed"
st_conf() { # FILE then "service accept connect client" quads
    local f=$1; shift
    printf 'foreground = yes\npid =\ndebug = 3\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n' >"$f"
    while [ $# -gt 0 ]; do
        printf '[%s]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\nclient = %s\nsslVersion = TLSv1.3\n' \
            "$1" "$2" "$3" "$4" >>"$f"
        [ "$4" == no ] && printf 'cert = %s\nkey = %s\n' "$T_TMP/st.pem" "$T_TMP/st.key" >>"$f"
        shift 4
    done
}
stunnel_chain() { # TARGET_PORT HOPS: sets ST_PORT and ST_PIDS (started by this shell, so cleaned up)
    local target=$1 hops=$2 i a b c
    a=$(dp_port); ST_PORT=$a
    b=$(dp_port)
    st_conf "$T_TMP/st-$target-$hops-0.conf" in "$a" "$b" yes
    bg "stunnel-$target-$hops-0" stunnel4 "$T_TMP/st-$target-$hops-0.conf"
    ST_PIDS="$BG_PID"
    for ((i = 1; i < hops; i++)); do
        a=$b; c=$(dp_port); b=$(dp_port)
        st_conf "$T_TMP/st-$target-$hops-$i.conf" mid-in "$a" "$c" no mid-out "$c" "$b" yes
        bg "stunnel-$target-$hops-$i" stunnel4 "$T_TMP/st-$target-$hops-$i.conf"
        ST_PIDS+=" $BG_PID"
    done
    st_conf "$T_TMP/st-$target-$hops-$hops.conf" out "$b" "$target" no
    bg "stunnel-$target-$hops-$hops" stunnel4 "$T_TMP/st-$target-$hops-$hops.conf"
    ST_PIDS+=" $BG_PID"
    dp_wait_port "$ST_PORT" 10 && dp_wait_port "$b" 10 || t_bail "stunnel did not start"
}
stunnel_chain "$SINK" 3; ST3=$ST_PORT; ST3_PIDS=$ST_PIDS
stunnel_chain "$SINK" 4; ST4=$ST_PORT

mb_net meshchain
mb_router c1 c2 c3
mb_link_direct c1 c2
mb_link_direct c2 c3
mb_ids
for n in c1 c2 c3; do mb_start_router "$n"; done
W2=$(dp_port); W3=$(dp_port); WE=$(dp_port)
weft service create two --role two --intercept "tcp:127.0.0.1:$W2" --host "tcp:127.0.0.1:$SINK"
weft service create three --role three --intercept "tcp:127.0.0.1:$W3" --host "tcp:127.0.0.1:$SINK"
weft service create echo2 --role two --intercept "tcp:127.0.0.1:$WE" --host "tcp:127.0.0.1:$ECHO"
weft policy create d --type dial --identities '#dialers' --services '#two,#three'
weft policy create b2 --type bind --identities '#h2' --services '#two'
weft policy create b3 --type bind --identities '#h3' --services '#three'
mb_edge host2 h2 c2
mb_edge host3 h3 c3
mb_edge dialer dialers c1
mb_wait_links 2 30 || t_bail "the chain's links did not come up"
for sv in two three echo2; do
    mb_wait_log "$T_TMP/logs/edge-dialer.log" "event=edge_intercepting service=$sv " 30 ||
        t_bail "dialling edge does not intercept $sv"
done
mb_wait_log "$T_TMP/logs/edge-host3.log" "event=edge_bound service=three" 30 || t_bail "host3 did not bind"
"$DP_BLAST" rtt "127.0.0.1:$WE" --count 10 --max-seconds 30 >/dev/null || t_bail "no echo through c1-c2"
"$DP_BLAST" send "127.0.0.1:$W3" --bytes 1M --max-seconds 30 >/dev/null || t_bail "nothing through c1-c2-c3"
p2=$(mb_path two) p3=$(mb_path three)
echo "# paths: two $p2, three $p3"

echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU time per GB of each process of the 2-router shapes (utime + stime over
# the single-flow runs): unlike Mbit/s on two shared cores it does not depend
# on what else the machine runs, and it shows where each shape spends.
cpu_ticks() { local p; for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done; }
W2_PIDS="${MB_PID[edge-dialer]} ${MB_PID[c1]} ${MB_PID[c2]} ${MB_PID[edge-host2]}"
declare -A V CPU GB
for i in 1 2 3; do
    for shape in raw st3 weft2 st4 weft3; do
        case $shape in raw) port=$SINK ;; st3) port=$ST3 ;; st4) port=$ST4 ;; weft2) port=$W2 ;; weft3) port=$W3 ;; esac
        pids=; case $shape in st3) pids=$ST3_PIDS ;; weft2) pids=$W2_PIDS ;; esac
        # shellcheck disable=SC2086
        [ -n "$pids" ] && mapfile -t c0 < <(cpu_ticks $pids)
        o=$(timeout $((secs + 60)) "$DP_BLAST" send "127.0.0.1:$port" --seconds "$secs" --max-seconds $((secs + 50)))
        V[$shape]+="$(sample mbit "$(grep ^total <<<"$o")") "
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            mapfile -t c1 < <(cpu_ticks $pids)
            for j in "${!c1[@]}"; do CPU[$shape,$j]=$(( ${CPU[$shape,$j]:-0} + c1[j] - c0[j] )); done
            GB[$shape]=$(awk -v a="${GB[$shape]:-0}" -v m="$(sample mbit "$(grep ^total <<<"$o")")" \
                -v s="$secs" 'BEGIN {print a + m * s / 8000}')
        fi
    done
done
tck=$(getconf CLK_TCK)
cpu_per_gb() { # SHAPE: "ms/GB of each process, in chain order" and the total
    local shape=$1 j line="" tot=0 v
    for ((j = 0; j < 4; j++)); do
        v=$(awk -v t="${CPU[$shape,$j]:-0}" -v k="$tck" -v g="${GB[$shape]:-1}" 'BEGIN {printf "%.0f", t * 1000 / k / g}')
        line+="$v "; tot=$((tot + v))
    done
    echo "${line% } = $tot"
}
R[cpu_st3]=$(cpu_per_gb st3)
R[cpu_weft2]=$(cpu_per_gb weft2)
for shape in raw st3 weft2 st4 weft3; do
    R[$shape]=$(printf '%s\n' ${V[$shape]} | sort -g | sed -n 2p)
done
echo "# single-flow runs (Mbit/s): raw ${V[raw]}; stunnel 3 hops ${V[st3]}; weft 2 routers ${V[weft2]}; stunnel 4 hops ${V[st4]}; weft 3 routers ${V[weft3]}"
for shape in st3 weft2; do
    port=$ST3; [ $shape == weft2 ] && port=$W2
    o=$(timeout $((secs + 60)) "$DP_BLAST" send "127.0.0.1:$port" --seconds "$secs" --flows 8 --max-seconds $((secs + 50)))
    R[eight_$shape]=$(sample mbit "$(grep ^total <<<"$o")")
    R[jain_$shape]=$(sample jain "$(grep ^total <<<"$o")")
done
o=$(timeout 120 "$DP_BLAST" dials "127.0.0.1:$WE" --count "$n_dials" --flows 4 --max-seconds 100)
R[dials_ctl]=$(sample per_s "$o")
ctl_stop "$T_DIR"
sleep 1
o=$(timeout 120 "$DP_BLAST" dials "127.0.0.1:$WE" --count "$n_dials" --flows 4 --max-seconds 100)
R[dials_noctl]=$(sample per_s "$o")
echo "# load average after the chain: $(cut -d' ' -f1-3 /proc/loadavg)"

# ================================================================ diamond, own process
dia=$(timeout -k 10 900 bash "$0" "$build" --diamond 2>"$T_TMP/logs/diamond.err")
echo "$dia" | grep -E '^# ' || true
val() { awk -v k="$1" -v t="$2" '$1 == k && $2 == t {print $3}' <<<"$dia"; }
okv() { awk -v k="$1" -v t="$2" '$1 == k && $2 == t {print $4}' <<<"$dia"; }

echo "# $(date -u +%FT%TZ), $(nproc) cores, ${secs} s per throughput run" | tee -a "$out"
report "mesh" "figure" "target / note"
report "raw TCP single flow (Mbit/s, median of 3)" "${R[raw]}" ""
report "stunnel 3 hops single flow (Mbit/s)" "${R[st3]}" ""
report "weft 2 routers single flow (Mbit/s)" "${R[weft2]}" \
    "weft/stunnel $(ratio "${R[weft2]}" "${R[st3]}"), >= 1.5: $(meets "${R[weft2]:-0} >= 1.5 * ${R[st3]:-1}")"
report "CPU ms per GB, stunnel 3 hops (client, mid, mid, server)" "${R[cpu_st3]##* }" "${R[cpu_st3]}"
report "CPU ms per GB, weft 2 routers (edge, c1, c2, edge)" "${R[cpu_weft2]##* }" \
    "${R[cpu_weft2]}; weft/stunnel $(ratio "${R[cpu_weft2]##* }" "${R[cpu_st3]##* }")"
report "stunnel 4 hops single flow (Mbit/s)" "${R[st4]}" ""
report "weft 3 routers single flow (Mbit/s)" "${R[weft3]}" "weft/stunnel $(ratio "${R[weft3]}" "${R[st4]}")"
report "stunnel 3 hops, 8 flows (Mbit/s)" "${R[eight_st3]}" "Jain ${R[jain_st3]}"
report "weft 2 routers, 8 flows (Mbit/s)" "${R[eight_weft2]}" \
    "Jain ${R[jain_weft2]}; >= single flow: $(meets "${R[eight_weft2]:-0} >= ${R[weft2]:-1}")"
report "dials/s through 2 routers, controller up" "${R[dials_ctl]}" "4 dialers"
report "dials/s through 2 routers, controller down" "${R[dials_noctl]}" ""
report "stall, link cut (relay blackhole) (ms)" "$(val stall blackhole)" "<= 1000: $(meets "0 <= $(val stall blackhole) <= 1000"); intact $(okv stall blackhole)"
report "stall, link reset (ms)" "$(val stall reset)" "<= 200: $(meets "0 <= $(val stall reset) <= 200"); intact $(okv stall reset)"
report "stall, router SIGKILL (ms)" "$(val stall kill9)" "<= 200: $(meets "0 <= $(val stall kill9) <= 200"); intact $(okv stall kill9)"
report "stall, redundant, link cut (ms)" "$(val stall redundant)" "no stall (<= 200): $(meets "0 <= $(val stall redundant) <= 200"); intact $(okv stall redundant)"
report "failover over legs of R=$rate B/s (B/s)" "$(val rate failover)" ""
report "split over two legs of R (B/s)" "$(val rate split)" \
    "$(ratio "$(val rate split)" "$rate") R, >= 1.6 R: $(meets "$(val rate split) >= 1.6 * $rate")"
