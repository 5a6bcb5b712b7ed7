# The weft network of the namespace suite, on top of topo.sh and the
# integration tests' lib.sh (assertions, bg, stop_pid). Sourced; never run.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/topo.sh"
BED_STREAM=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/bed_stream.py
trap 'rc=$?; topo_down; (exit $rc); t_cleanup' EXIT
declare -A NS_PID NS_ID
NS_ROUTERS=()
NS_API=198.19.255.1:8443

# nweft ARGS: the CLI as the admin, from the controller's namespace.
nweft() {
    t_run ip netns exec "$(topo_ns ctl)" env WEFT_CONTROLLER="https://$NS_API" \
        WEFT_IDENTITY="$T_TMP/net/admin.json" "$WEFT" "$@"
}

ns_ctl_start() {
    bg ctl ip netns exec "$(topo_ns ctl)" "$WEFT_CONTROLLER_BIN" run --dir "$T_TMP/net"
    NS_PID[ctl]=$BG_PID
    local i
    for ((i = 0; i < 300; i++)); do
        nsx ctl curl -sk --max-time 2 -o /dev/null "https://$NS_API/v1/version" && return 0
        sleep 0.1
    done
    t_bail "controller not answering in its namespace"
}

ns_net() {
    t_run ip netns exec "$(topo_ns ctl)" "$WEFT_CONTROLLER_BIN" init --dir "$T_TMP/net" --listen "$NS_API" \
        --control-listen 198.19.255.1:1281 --name "$1"
    [ "$T_RC" == 0 ] || t_bail "controller init: $T_ERR"
    ns_ctl_start
}

ns_router() { # NAME
    local n=$1 a=${TOPO_ADDR[$1]}
    nweft router create "$n" --out "$T_TMP/$n.jwt"
    [ "$T_RC" == 0 ] || t_bail "router create $n: $T_ERR"
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" t_run ip netns exec "$(topo_ns "$n")" "$WEFT_ROUTER" \
        enroll "$T_TMP/$n.jwt" --dir "$T_TMP/$n" --edge-listen "$a:3022" --link-listen "$a:4022"
    [ "$T_RC" == 0 ] || t_bail "router enroll $n: $T_ERR"
    NS_ROUTERS+=("$n")
    ns_router_start "$n"
}

ns_router_start() {
    bg "router-$1" ip netns exec "$(topo_ns "$1")" "$WEFT_ROUTER" run --dir "$T_TMP/$1" --log-level debug
    NS_PID[$1]=$BG_PID
}

ns_edge() { # NAME ROLE
    nweft identity create "$1" --role "$2" --out "$T_TMP/$1.jwt"
    [ "$T_RC" == 0 ] || t_bail "identity create $1: $T_ERR"
    t_run ip netns exec "$(topo_ns "$1")" "$WEFT_EDGE" enroll "$T_TMP/$1.jwt" --out "$T_TMP/$1.json"
    [ "$T_RC" == 0 ] || t_bail "edge enroll $1: $T_ERR"
    bg "edge-$1" ip netns exec "$(topo_ns "$1")" "$WEFT_EDGE" run --identity "$T_TMP/$1.json" --log-level debug
    NS_PID[edge-$1]=$BG_PID
}

ns_wait_log() { # FILE REGEX SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ns_links: the controller's up links as sorted "a-b" router names.
ns_links() {
    nweft link list --json
    printf '%s' "$T_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("data", d) if isinstance(d, dict) else d
print("\n".join(sorted({"-".join(sorted((l.get("a_name") or l.get("a"), l.get("b_name") or l.get("b"))))
                        for l in d if l.get("up") and int(l.get("rtt_us") or 0) > 0})))' 2>/dev/null
}

ns_wait_links() { # WANT SECS
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        [ "$(ns_links)" == "$1" ] && return 0
        sleep 0.5
    done
    return 1
}

# ns_stream TAG FROM_NS TO_NS RECV ICPT BYTES RATE: receiver in TO_NS, sender in FROM_NS.
ns_stream_start() {
    local tag=$1 from=$2 to=$3 recv=$4 icpt=$5 bytes=$6 rate=$7
    rm -f "$T_TMP/$tag".*
    bg "recv-$tag" ip netns exec "$(topo_ns "$to")" python3 "$BED_STREAM" recv "$recv" --stats "$T_TMP/$tag.stats" \
        --progress "$T_TMP/$tag.progress" --timeout 120
    NS_PID[recv-$tag]=$BG_PID
    sleep 0.3
    ip netns exec "$(topo_ns "$from")" python3 "$BED_STREAM" send "127.0.0.1:$icpt" --bytes "$bytes" --rate "$rate" \
        --timeout 120 >"$T_TMP/$tag.send" 2>>"$T_TMP/logs/send-$tag.log" &
    NS_PID[send-$tag]=$!
    T_PIDS+=("$!")
}

ns_wait_progress() { # TAG BYTES SECS
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        [ "$(cat "$T_TMP/$1.progress" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

ns_stream_end() { # TAG SECS -> "yes|no GAP_MS BYTES ERROR"
    local tag=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "${NS_PID[send-$tag]}" || break
        sleep 0.1
    done
    alive "${NS_PID[send-$tag]}" && kill "${NS_PID[send-$tag]}" 2>/dev/null
    wait "${NS_PID[send-$tag]}" 2>/dev/null
    stop_pid "${NS_PID[recv-$tag]}" 5
    python3 - "$T_TMP/$tag.send" "$T_TMP/$tag.stats" <<'PY'
import json, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
s, r = load(sys.argv[1]), load(sys.argv[2])
ok = bool(s.get("match")) and s.get("sha256") == r.get("sha256")
print("yes" if ok else "no", r.get("max_gap_ms", -1), r.get("bytes", 0), s.get("error"))
PY
}
