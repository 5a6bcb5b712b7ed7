# Data-plane helpers on top of lib.sh (source lib.sh first). Sourced, never run.
#
# dp_fabric NAME [SERVICE_TOKEN_TTL] starts one network on loopback: a
# controller (its control channel on a private port) and one router; the
# dp_* functions then enrol identities and run edges against it.

: "${DP_TOOLS:=$WEFT_BUILD/tests/tools}"
DP_BLAST="$DP_TOOLS/dp_blast"
DP_PROBE="$DP_TOOLS/dp_edgeprobe"

dp_port() { free_port || t_bail "no free port"; }

# dp_asan: true when the weft binaries carry AddressSanitizer (then the big
# transfers shrink: ASan costs the data path an order of magnitude).
dp_asan() {
    [ -n "${WEFT_DP_SMALL:-}" ] && return 0
    ldd "$WEFT_ROUTER" 2>/dev/null | grep -q libasan
}

# dp_wait_log FILE REGEX SECONDS: true once FILE has a line matching REGEX.
dp_wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# dp_wait_port PORT SECONDS [absent]: true once something listens on
# 127.0.0.1:PORT (or, with "absent", once nothing does).
dp_wait_port() {
    local i up
    for ((i = 0; i < $2 * 10; i++)); do
        up=1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || up=0
        if [ "${3:-}" == absent ]; then [ "$up" == 0 ] && return 0
        else [ "$up" == 1 ] && return 0; fi
        sleep 0.1
    done
    return 1
}

dp_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# dp_mem_kb PID: "VmRSS RssAnon VmSize" of a process, in kB.
dp_mem_kb() {
    awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^VmSize/ {v = $2} END {print r, a, v}' \
        "/proc/$1/status" 2>/dev/null
}

# dp_hold PORT N SECONDS: N connections to 127.0.0.1:PORT, each answered once
# (one byte there and back), then held idle until dp_hold_end; true once all
# N answered within SECONDS. $T_TMP/hold.out says how many; sets DP_HOLD_PID.
dp_hold() {
    local i
    mkfifo "$T_TMP/hold.in"
    "$DP_BLAST" hold "127.0.0.1:$1" --count "$2" --max-seconds "$3" \
        <"$T_TMP/hold.in" >"$T_TMP/hold.out" 2>"$T_TMP/logs/hold.log" &
    DP_HOLD_PID=$!
    T_PIDS+=("$DP_HOLD_PID")
    exec 7>"$T_TMP/hold.in"
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q '^held' "$T_TMP/hold.out" 2>/dev/null && break
        alive "$DP_HOLD_PID" || break
        sleep 0.1
    done
    grep -q "^held $2 of" "$T_TMP/hold.out" 2>/dev/null
}

# dp_hold_end: the holder exits, closing every held connection.
dp_hold_end() {
    exec 7>&-
    wait "$DP_HOLD_PID" 2>/dev/null
    rm -f "$T_TMP/hold.in"
}

# dp_fabric NAME [TTL]: controller + router r1; sets DP_DIR, DP_ROUTER_PID,
# DP_EDGE_LISTEN. TTL sets the controller's service_token_ttl (seconds).
dp_fabric() {
    local api ctlp linkp
    api=$(dp_port); ctlp=$(dp_port); DP_EDGE_LISTEN="127.0.0.1:$(dp_port)"; linkp=$(dp_port)
    DP_DIR="$T_TMP/$1"
    t_run "$WEFT_CONTROLLER_BIN" init --dir "$DP_DIR" --listen "127.0.0.1:$api" \
        --control-listen "127.0.0.1:$ctlp" --name "$1"
    [ "$T_RC" == 0 ] || t_bail "weft-controller init failed: $T_ERR $T_OUT"
    if [ -n "${2:-}" ]; then
        python3 - "$DP_DIR/controller.json" "$2" <<'EOF' || t_bail "cannot set service_token_ttl"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["service_token_ttl"] = int(sys.argv[2])
json.dump(d, open(p, "w"), indent=2)
EOF
    fi
    CTL_PORT[$DP_DIR]=$api
    ctl_start "$DP_DIR"
    ctl_use "$DP_DIR"
    weft router create r1 --out "$T_TMP/r1.jwt"
    [ "$T_RC" == 0 ] || t_bail "weft router create failed: $T_ERR"
    t_run "$WEFT_ROUTER" enroll \
        "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "$DP_EDGE_LISTEN" \
        --link-listen "127.0.0.1:$linkp"
    [ "$T_RC" == 0 ] || t_bail "weft-router enroll failed: $T_ERR $T_OUT"
    bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
    DP_ROUTER_PID=$BG_PID
    dp_wait_port "${DP_EDGE_LISTEN##*:}" 30 || t_bail "router not listening on $DP_EDGE_LISTEN"
}

# dp_router NAME ROLE: one more router, NAME with ROLE (it links to the others);
# sets DP_R_EDGE, its edge address. Log: router-NAME.log.
dp_router() {
    DP_R_EDGE="127.0.0.1:$(dp_port)"
    weft router create "$1" --role "$2" --out "$T_TMP/$1.jwt"
    [ "$T_RC" == 0 ] || t_bail "weft router create $1 failed: $T_ERR"
    t_run "$WEFT_ROUTER" enroll "$T_TMP/$1.jwt" --dir "$T_TMP/$1" --edge-listen "$DP_R_EDGE" \
        --link-listen "127.0.0.1:$(dp_port)"
    [ "$T_RC" == 0 ] || t_bail "weft-router enroll $1 failed: $T_ERR $T_OUT"
    bg "router-$1" "$WEFT_ROUTER" run --dir "$T_TMP/$1"
    dp_wait_port "${DP_R_EDGE##*:}" 30 || t_bail "$1 not listening on $DP_R_EDGE"
}

# dp_east_west NAME: dp_fabric NAME with r1 given the role east, and r2 (role
# west, linked to r1) beside it; sets R1_EDGE and R2_EDGE.
dp_east_west() {
    dp_fabric "$1"
    R1_EDGE=$DP_EDGE_LISTEN
    weft router update r1 --role east
    [ "$T_RC" == 0 ] || t_bail "weft router update r1 --role east failed: $T_ERR"
    dp_router r2 west
    R2_EDGE=$DP_R_EDGE
}

# dp_enrol NAME ROLE: identity NAME with ROLE, enrolled to $T_TMP/NAME.json.
dp_enrol() {
    weft identity create "$1" --role "$2" --out "$T_TMP/$1.jwt"
    [ "$T_RC" == 0 ] || t_bail "identity create $1 failed: $T_ERR"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$1.jwt" --out "$T_TMP/$1.json"
    [ "$T_RC" == 0 ] || t_bail "weft-edge enroll $1 failed: $T_ERR"
}

# dp_service NAME ROLE INTERCEPT HOST
dp_service() {
    weft service create "$1" --role "$2" --intercept "$3" --host "$4"
    [ "$T_RC" == 0 ] || t_bail "service create $1 failed: $T_ERR"
}

# dp_policy NAME dial|bind IDENTITIES SERVICES
dp_policy() {
    weft policy create "$1" --type "$2" --identities "$3" --services "$4"
    [ "$T_RC" == 0 ] || t_bail "policy create $1 failed: $T_ERR"
}

# dp_rpolicy NAME IDENTITIES ROUTERS: a router policy (docs/policies.md "Router policies").
dp_rpolicy() {
    weft policy create "$1" --type router --identities "$2" --routers "$3"
    [ "$T_RC" == 0 ] || t_bail "router policy $1 failed: $T_ERR"
}

# dp_telemetry: a service "telemetry" hosted by edge host1 (an echo server
# behind it) that #fleet may dial, and a behaviour policy watching #fleet
# (anomaly detection: log, alert, remove; docs/policies.md).
dp_telemetry() {
    local port host
    port=$(dp_port); host=$(dp_port)
    dp_enrol host1 hosts
    dp_service telemetry telemetry "tcp:127.0.0.1:$host" "tcp:127.0.0.1:$port"
    dp_policy fleet-dial dial '#fleet' '#telemetry'
    dp_policy host-bind bind '#hosts' '#telemetry'
    weft policy create fleet-watch --type behaviour --identities '#fleet' --action log,alert,remove
    [ "$T_RC" == 0 ] || t_bail "behaviour policy fleet-watch failed: $T_ERR"
    bg echo "$DP_BLAST" echo "$port"
    dp_edge host1
    dp_wait_log "$T_TMP/logs/edge-host1.log" "event=edge_bound service=telemetry( |$)" 30 ||
        t_bail "the hosting edge did not bind telemetry"
}

# dp_edge NAME: runs weft-edge for identity NAME (log: edge-NAME.log); sets BG_PID.
dp_edge() {
    bg "edge-$1" "$WEFT_EDGE" run --identity "$T_TMP/$1.json" --log-level debug
}

# dp_session NAME: GET /v1/edge/session with identity NAME's certificate; sets T_STATUS, T_BODY.
dp_session() {
    idfile_split "$T_TMP/$1.json" "$T_TMP/creds-$1" || t_bail "cannot split $1.json"
    api_as "$T_TMP/creds-$1" GET /v1/edge/session
}

# dp_token NAME SERVICE ACT: prints identity NAME's ACT token for SERVICE.
dp_token() {
    dp_session "$1"
    printf '%s' "$T_BODY" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["data"]["services"]:
    if s["name"] == sys.argv[1]:
        print(s.get("tokens", {}).get(sys.argv[2], ""))' "$2" "$3"
}

# dp_jwt_claim TOKEN CLAIM: prints one claim of a JWT (no signature check).
dp_jwt_claim() {
    python3 - "$1" "$2" <<'EOF'
import base64, json, sys
p = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))[sys.argv[2]])
EOF
}

# dp_probe NAME ARGS...: dp_edgeprobe as identity NAME against the router; sets T_RC, T_OUT.
dp_probe() {
    local who=$1; shift
    t_run "$DP_PROBE" --identity "$T_TMP/$who.json" --router "$DP_EDGE_LISTEN" "$@"
}

# dp_router_alive DESC: the router is still running (a crash fails the check).
dp_router_alive() {
    if alive "$DP_ROUTER_PID"; then
        t_pass "$1"
    else
        t_fail "$1" "weft-router exited: $(tail -20 "$T_TMP/logs/router.log")"
    fi
}
