# Mesh test bed on loopback: routers that reach only their neighbours, each
# link through its own weft_relay, edges that reach only their home router.
# Sourced after tests/integration/lib.sh; never run.
#
# Separate hosts are imitated per process with tests/tools/bed_netshim.so
# (LD_PRELOAD): WEFT_BED_CONNECT sends a router's dial of a neighbour's
# link_listen to the relay of that link, WEFT_BED_DENY refuses the ports of
# everything the process should not reach. So the full mesh the routers would
# build on one loopback becomes the topology the test declares, and every link
# can be delayed, rate-limited, stalled, cut (blackhole) or reset.
#
#   mb_net NAME                 controller + admin CLI
#   mb_router NAME...           create and enrol routers (ports allocated)
#   mb_link A B                 a link A-B through a relay (before mb_start_router)
#   mb_link_direct A B          a link A-B without a relay
#   mb_start_router NAME        run it with its view of the network
#   mb_relay A B CMD...         a relay command ("delay 20 5", "blackhole on", ...)
#   mb_edge NAME ROLE "R..." [ARGS]  enrol an identity, run weft-edge homed on the
#                               routers R (one, or two: multi-homed) with more run ARGS
#   mb_wait_links N SECS        until N distinct links are up in the routers' logs
#   mb_wait_link_rtt A-B US S   until the controller lists link A-B with an RTT >= US
#   mb_path SERVICE             the last mesh_dial path of SERVICE, as router names

: "${WEFT_TOOLS:=$WEFT_BUILD/tests/tools}"
WEFT_RELAY=$WEFT_TOOLS/weft_relay
BED_SHIM=$WEFT_TOOLS/bed_netshim.so
BED_STREAM=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/bed_stream.py

declare -A MB_LINKP MB_EDGEP MB_PID MB_NB MB_RELAY MB_RCTL MB_ID MB_ENV
MB_ROUTERS=()

mb_port() { free_port || t_bail "no free port"; }

mb_net() {
    local api cport
    api=$(mb_port)
    cport=$(mb_port)
    T_DIR="$T_TMP/net"
    t_run "$WEFT_CONTROLLER_BIN" init --dir "$T_DIR" --listen "127.0.0.1:$api" \
        --control-listen "127.0.0.1:$cport" --name "$1"
    [ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
    CTL_PORT[$T_DIR]=$api
    CTL_CPORT[$T_DIR]=$cport
    ctl_start "$T_DIR"
    ctl_use "$T_DIR"
}

mb_router() {
    local n
    for n in "$@"; do
        MB_LINKP[$n]=$(mb_port)
        MB_EDGEP[$n]=$(mb_port)
        weft router create "$n" --out "$T_TMP/$n.jwt"
        [ "$T_RC" == 0 ] || t_bail "router create $n: $T_ERR"
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" t_run "$WEFT_ROUTER" enroll \
            "$T_TMP/$n.jwt" --dir "$T_TMP/$n" --edge-listen "127.0.0.1:${MB_EDGEP[$n]}" \
            --link-listen "127.0.0.1:${MB_LINKP[$n]}"
        [ "$T_RC" == 0 ] || t_bail "router enroll $n: $T_ERR"
        MB_ROUTERS+=("$n")
    done
}

# mb_link A B: one relay per link, forwarding to whichever end listens (the
# router with the smaller id dials, so both ends are told about the relay).
mb_link() {
    local a=$1 b=$2 rp cp
    rp=$(mb_port)
    cp=$(mb_port)
    # The relay forwards to the port the dialler asked for; which end dials is
    # decided by ids, so one relay per direction of dialling, same controls.
    bg "relay-$a-$b" "$WEFT_RELAY" --listen "127.0.0.1:$rp" --to "127.0.0.1:${MB_LINKP[$b]}" \
        --ctl "127.0.0.1:$cp"
    MB_RELAY[$a>$b]=$rp
    MB_RCTL[$a>$b]=$cp
    rp=$(mb_port)
    cp=$(mb_port)
    bg "relay-$b-$a" "$WEFT_RELAY" --listen "127.0.0.1:$rp" --to "127.0.0.1:${MB_LINKP[$a]}" \
        --ctl "127.0.0.1:$cp"
    MB_RELAY[$b>$a]=$rp
    MB_RCTL[$b>$a]=$cp
    MB_NB[$a]="${MB_NB[$a]:-} $b"
    MB_NB[$b]="${MB_NB[$b]:-} $a"
}

# mb_link_direct A B: a link A-B without a relay (the neighbours reach each
# other's link_listen directly; everyone else stays refused). For throughput
# figures, where a relay would add a copy the fabric does not have.
mb_link_direct() {
    MB_RELAY[$1>$2]=${MB_LINKP[$2]}
    MB_RELAY[$2>$1]=${MB_LINKP[$1]}
    MB_NB[$1]="${MB_NB[$1]:-} $2"
    MB_NB[$2]="${MB_NB[$2]:-} $1"
}

# The environment that gives router N its view: its neighbours through their
# relays, every other router's link and edge ports refused.
mb_router_env() {
    local n=$1 o conn="" deny=""
    for o in "${MB_ROUTERS[@]}"; do
        [ "$o" == "$n" ] && continue
        if [[ " ${MB_NB[$n]:-} " == *" $o "* ]]; then
            conn+="${conn:+,}${MB_LINKP[$o]}=${MB_RELAY[$n>$o]}"
        else
            deny+="${deny:+,}${MB_LINKP[$o]}"
        fi
    done
    printf 'LD_PRELOAD=%s WEFT_BED_CONNECT=%s WEFT_BED_DENY=%s' "$BED_SHIM" "$conn" "$deny"
}

# ASan wants its runtime first in the library list; the shim is only an
# interposer on bind/connect, so the order check is turned off for it.
mb_asan_env() {
    printf 'ASAN_OPTIONS=%s' "${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
}

mb_start_router() {
    local n=$1
    # shellcheck disable=SC2046
    bg "router-$n" env $(mb_router_env "$n") $(mb_asan_env) "$WEFT_ROUTER" run --dir "$T_TMP/$n" \
        --log-level debug
    MB_PID[$n]=$BG_PID
}

mb_kill9_router() {
    kill -KILL "${MB_PID[$1]}" 2>/dev/null
    wait "${MB_PID[$1]}" 2>/dev/null
}

# mb_relay A B CMD...: the command goes to both relays of the link.
mb_relay() {
    local a=$1 b=$2 out1 out2
    shift 2
    out1=$("$WEFT_RELAY" ctl "127.0.0.1:${MB_RCTL[$a>$b]}" "$@") || return 1
    out2=$("$WEFT_RELAY" ctl "127.0.0.1:${MB_RCTL[$b>$a]}" "$@") || return 1
    printf '%s | %s\n' "$out1" "$out2"
}

# mb_edge NAME ROLE "ROUTER..." [ARGS...]: an edge that reaches the controller
# and its home routers only (two: it holds a session to each), run with ARGS.
mb_edge() {
    local name=$1 role=$2 homes=$3 o deny=""
    shift 3
    weft identity create "$name" --role "$role" --out "$T_TMP/$name.jwt"
    [ "$T_RC" == 0 ] || t_bail "identity create $name: $T_ERR"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$name.jwt" --out "$T_TMP/$name.json"
    [ "$T_RC" == 0 ] || t_bail "edge enroll $name: $T_ERR"
    for o in "${MB_ROUTERS[@]}"; do
        [[ " $homes " == *" $o "* ]] || deny+="${deny:+,}${MB_EDGEP[$o]}"
    done
    # shellcheck disable=SC2046
    bg "edge-$name" env LD_PRELOAD="$BED_SHIM" WEFT_BED_DENY="$deny" $(mb_asan_env) \
        "$WEFT_EDGE" run --identity "$T_TMP/$name.json" --log-level debug "$@"
    MB_PID[edge-$name]=$BG_PID
}

mb_wait_log() { # FILE REGEX SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Router ids by name, from the controller (paths in logs are ids).
mb_ids() {
    local j n
    weft router list --json
    j=$T_OUT
    for n in "${MB_ROUTERS[@]}"; do
        MB_ID[$n]=$(printf '%s' "$j" | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("data", d) if isinstance(d, dict) else d
for r in (d if isinstance(d, list) else d.get("items", d.get("routers", []))):
    if r.get("name") == sys.argv[1]:
        print(r["id"])' "$n")
    done
}

# Up links counted from the routers' logs: a pair is up when its last event
# in either log is link_up. Good enough to wait on; the controller's view is
# checked separately.
mb_links_up() {
    local n f
    for n in "${MB_ROUTERS[@]}"; do
        f="$T_TMP/logs/router-$n.log"
        [ -f "$f" ] || continue
        grep -Eo 'event=link_(up|down|close|removed) peer=[^ ]+' "$f" |
            awk -v me="${MB_ID[$n]}" '{split($2, p, "="); last[p[2]] = $1}
                END {for (k in last) if (last[k] == "event=link_up") {
                    print (me < k ? me " " k : k " " me)}}'
    done | sort -u | wc -l
}

mb_wait_links() { # N SECS
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        [ "$(mb_links_up)" -ge "$1" ] && return 0
        sleep 0.2
    done
    return 1
}

# mb_path SERVICE: the path of the last circuit of SERVICE set up by any router
# (ingress logs mesh_dial), as names joined by "-".
mb_path() {
    local line p n out=""
    line=$(cat "$T_TMP"/logs/router-*.log 2>/dev/null | grep -E "event=mesh_dial .*service=$1 " | tail -1)
    p=$(printf '%s' "$line" | sed -nE 's/.* path=([^ ]+).*/\1/p' | tr -d '"')
    for id in ${p//,/ }; do
        for n in "${MB_ROUTERS[@]}"; do
            [ "${MB_ID[$n]}" == "$id" ] && out+="${out:+-}$n"
        done
    done
    printf '%s' "$out"
}

# mb_stream_start PORT BYTES RATE TAG: a receiver on PORT (the service's host
# address) and a sender through the intercept address ICPT; results in
# $T_TMP/TAG.{stats,progress,send}.
mb_stream_start() {
    local port=$1 bytes=$2 rate=$3 tag=$4 icpt=$5
    rm -f "$T_TMP/$tag".*
    bg "recv-$tag" python3 "$BED_STREAM" recv "$port" --stats "$T_TMP/$tag.stats" \
        --progress "$T_TMP/$tag.progress" --timeout 120
    MB_PID[recv-$tag]=$BG_PID
    sleep 0.2
    python3 "$BED_STREAM" send "127.0.0.1:$icpt" --bytes "$bytes" --rate "$rate" --timeout 120 \
        >"$T_TMP/$tag.send" 2>>"$T_TMP/logs/send-$tag.log" &
    MB_PID[send-$tag]=$!
    T_PIDS+=("$!")
}

mb_progress() { cat "$T_TMP/$1.progress" 2>/dev/null || echo 0; }

# mb_wait_progress TAG BYTES SECS
mb_wait_progress() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        [ "$(mb_progress "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# mb_stream_end TAG SECS: waits for the sender; prints "match max_gap_ms bytes".
mb_stream_end() {
    local tag=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "${MB_PID[send-$tag]}" || break
        sleep 0.1
    done
    alive "${MB_PID[send-$tag]}" && kill "${MB_PID[send-$tag]}" 2>/dev/null
    wait "${MB_PID[send-$tag]}" 2>/dev/null
    stop_pid "${MB_PID[recv-$tag]}" 5
    python3 - "$T_TMP/$tag.send" "$T_TMP/$tag.stats" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception:
    s = {}
try:
    r = json.load(open(sys.argv[2]))
except Exception:
    r = {}
ok = bool(s.get("match")) and s.get("sha256") == r.get("sha256")
print("yes" if ok else "no", r.get("max_gap_ms", -1), r.get("bytes", 0), s.get("error"))
EOF
}

# mb_bulk_service: service "bulk" (host 127.0.0.1:$MB_RECV, intercept
# 127.0.0.1:$MB_ICPT), dialled by role dialers and hosted by role hosts.
mb_bulk_service() {
    MB_RECV=$(mb_port)
    MB_ICPT=$(mb_port)
    weft service create bulk --role bulk --intercept "tcp:127.0.0.1:$MB_ICPT" \
        --host "tcp:127.0.0.1:$MB_RECV"
    [ "$T_RC" == 0 ] || t_bail "service create: $T_ERR"
    weft policy create bulk-dial --type dial --identities '#dialers' --services '#bulk'
    weft policy create bulk-bind --type bind --identities '#hosts' --services '#bulk'
}

# mb_diamond NAME: the loopback bed the failover tests share.
#   r1 - r2 - r4      a dialling edge "dialer" homed on r1, a hosting edge
#    \       /        "host" on r4; service "bulk" (host 127.0.0.1:$MB_RECV,
#     - r3 -          intercept 127.0.0.1:$MB_ICPT). The r3 links carry 5 ms
#                     each way, so the least-cost path is r1-r2-r4.
mb_diamond() {
    mb_net "$1"
    mb_router r1 r2 r3 r4
    mb_link r1 r2
    mb_link r1 r3
    mb_link r2 r4
    mb_link r3 r4
    mb_ids
    local n
    for n in r1 r2 r3 r4; do mb_start_router "$n"; done
    sleep 0.3
    mb_relay r1 r3 delay 5 >/dev/null || t_bail "relay r1-r3 does not answer"
    mb_relay r3 r4 delay 5 >/dev/null || t_bail "relay r3-r4 does not answer"
    mb_bulk_service
    # More services (MB_SERVICES="NAME:MODE ..."; ports in MB_RECV_NAME,
    # MB_ICPT_NAME) before the edges start: an edge learns of services created
    # later only at its next session refresh, a minute on.
    local sm
    for sm in ${MB_SERVICES:-}; do
        local nm=${sm%%:*} md=${sm#*:}
        printf -v "MB_RECV_$nm" '%s' "$(mb_port)"
        printf -v "MB_ICPT_$nm" '%s' "$(mb_port)"
        local rv=MB_RECV_$nm iv=MB_ICPT_$nm
        weft service create "bulk-$nm" --role bulk --multipath "$md" \
            --intercept "tcp:127.0.0.1:${!iv}" --host "tcp:127.0.0.1:${!rv}"
        [ "$T_RC" == 0 ] || t_bail "service create bulk-$nm: $T_ERR"
    done
    mb_edge host hosts r4
    mb_edge dialer dialers r1
}

# mb_ctl_links: the controller's links as sorted "nameA-nameB up|down rtt_us"
# lines (names in order), from weft link list --json.
mb_ctl_links() {
    weft link list --json
    [ "$T_RC" == 0 ] || return 1
    printf '%s' "$T_OUT" | python3 -c '
import json, sys
ids = dict(a.split("=", 1) for a in sys.argv[1:])
d = json.load(sys.stdin)
d = d.get("data", d) if isinstance(d, dict) else d
out = set()
for l in d:
    a, b = sorted((ids.get(l.get("a"), l.get("a")), ids.get(l.get("b"), l.get("b"))))
    out.add("%s-%s %s %d" % (a, b, "up" if l.get("up") else "down", int(l.get("rtt_us") or 0)))
print("\n".join(sorted(out)))' $(for n in "${MB_ROUTERS[@]}"; do printf '%s=%s ' "${MB_ID[$n]}" "$n"; done)
}

# mb_wait_ctl_links N SECS: until the controller lists N links up, each with an
# RTT sample (so paths are chosen by measured cost, not by the 1 us floor).
mb_wait_ctl_links() {
    local i got
    for ((i = 0; i < $2 * 2; i++)); do
        got=$(mb_ctl_links 2>/dev/null | awk '$2 == "up" && $3 > 0' | wc -l)
        [ "$got" -ge "$1" ] && return 0
        sleep 0.5
    done
    return 1
}

# mb_wait_link_rtt A-B MIN_US SECS: until the controller lists link A-B (names
# in sorted order, as mb_ctl_links prints them) with an RTT of at least MIN_US:
# a delay put on a link after it came up shows in the map only once the
# smoothed RTT has moved, and paths chosen before that see the old cost.
mb_wait_link_rtt() {
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        mb_ctl_links 2>/dev/null | awk -v l="$1" -v m="$2" '$1 == l && $2 == "up" && $3 >= m {f = 1} END {exit !f}' &&
            return 0
        sleep 0.5
    done
    return 1
}

# mb_gap_ok GAP_MS LIMIT_MS: true when 0 <= GAP < LIMIT.
mb_gap_ok() { python3 -c "import sys; sys.exit(0 if 0 <= float('$1') <= float('$2') else 1)"; }

# mb_fail_case TAG LIMIT_MS RECV ICPT CMD...: a 64 MiB stream paced at 16 MiB/s;
# CMD runs once 16 MiB arrived; asserts the SHA-256 and a max gap <= LIMIT_MS.
mb_fail_case() {
    local tag=$1 limit=$2 recv=$3 icpt=$4 ok gap bytes err
    shift 4
    mb_stream_start "$recv" 64M 16M "$tag" "$icpt"
    if ! mb_wait_progress "$tag" $((16 * 1024 * 1024)) 30; then
        t_fail "$tag: the stream reached 16 MiB" "progress: $(mb_progress "$tag")"
    fi
    "$@" >/dev/null
    read -r ok gap bytes err <<<"$(mb_stream_end "$tag" 90)"
    assert_eq yes "$ok" "$tag: 64 MiB arrive intact (SHA-256 equal; $bytes bytes; $err)"
    assert_cond "$tag: stall ${gap} ms <= ${limit} ms" mb_gap_ok "$gap" "$limit"
    printf '%s %s\n' "$tag" "$gap" >>"$T_TMP/stalls"
}
