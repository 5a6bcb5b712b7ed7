#!/usr/bin/env bash
# weft-edge run follows the session data: a service created after the edges
# started gets its intercept listener and its binding, a changed intercept
# address moves the listener, and a deleted service stops both (the edges
# refresh every 2 s here with --refresh).
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

port() { free_port || t_bail "no free port"; }
API=$(port); CTLP=$(port); EDGEP=$(port); LINKP=$(port)
HTTP=$(port); ICPT=$(port); ICPT2=$(port)

T_DIR="$T_TMP/net"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$T_DIR" --listen "127.0.0.1:$API" \
    --control-listen "127.0.0.1:$CTLP" --name refreshtest
[ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
CTL_PORT[$T_DIR]=$API
ctl_start "$T_DIR"
ctl_use "$T_DIR"

weft router create r1 --out "$T_TMP/r1.jwt"
t_run "$WEFT_ROUTER" enroll "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "127.0.0.1:$EDGEP" \
    --link-listen "127.0.0.1:$LINKP"
[ "$T_RC" == 0 ] || t_bail "router enrol failed: $T_ERR"
bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"

for id in web-host:hosts laptop:dialers; do
    weft identity create "${id%%:*}" --role "${id#*:}" --out "$T_TMP/${id%%:*}.jwt"
    t_run "$WEFT_EDGE" enroll "$T_TMP/${id%%:*}.jwt" --out "$T_TMP/${id%%:*}.json"
    [ "$T_RC" == 0 ] || t_bail "enrolling ${id%%:*} failed: $T_ERR"
done
weft policy create laptops-dial --type dial --identities '#dialers' --services '#web'
weft policy create hosts-bind --type bind --identities '#hosts' --services '#web'

mkdir -p "$T_TMP/www"
MARK="refresh-page-$RANDOM$RANDOM"
echo "$MARK" >"$T_TMP/www/index.html"
bg http python3 -m http.server "$HTTP" --bind 127.0.0.1 --directory "$T_TMP/www"

bg edge-host "$WEFT_EDGE" run --identity "$T_TMP/web-host.json" --refresh 2
HOST_PID=$BG_PID
bg edge-dial "$WEFT_EDGE" run --identity "$T_TMP/laptop.json" --refresh 2
DIAL_PID=$BG_PID

wait_log() { # FILE REGEX SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# fetch PORT: the page through that intercept, retried for a few seconds.
fetch() {
    local i out
    for ((i = 0; i < 20; i++)); do
        out=$(curl -sS --max-time 3 "http://127.0.0.1:$1/index.html" 2>/dev/null)
        [ "$out" == "$MARK" ] && { echo "$out"; return 0; }
        sleep 0.5
    done
    echo "$out"
}
closed() { ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)" "$1" 2>/dev/null; }
wait_closed() { # PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do closed "$1" && return 0; sleep 0.1; done
    return 1
}

assert_cond "dialling edge got its (empty) session data" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_session_data" 20
assert_cond "nothing listens on the intercept before the service exists" closed "$ICPT"

weft service create web --role web --intercept "tcp:127.0.0.1:$ICPT" --host "tcp:127.0.0.1:$HTTP"
assert_rc 0 "service web created while the edges run"
assert_cond "dialling edge starts intercepting web" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=web " 15
assert_cond "hosting edge binds web" \
    wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=web" 15
assert_eq "$MARK" "$(fetch "$ICPT")" "the new service answers through its intercept"

weft service update web --intercept "tcp:127.0.0.1:$ICPT2"
assert_rc 0 "intercept address changed"
assert_cond "the old intercept address closes" wait_closed "$ICPT" 15
assert_eq "$MARK" "$(fetch "$ICPT2")" "the service answers on the new intercept address"

weft service delete web
assert_rc 0 "service web deleted"
assert_cond "the intercept closes once the service is gone" wait_closed "$ICPT2" 15
assert_cond "hosting edge stops hosting web" \
    wait_log "$T_TMP/logs/edge-host.log" "event=edge_service_stop service=web" 15

stop_pid "$DIAL_PID"
assert_eq 0 "$T_EXIT" "dialling edge exits 0 on SIGTERM"
stop_pid "$HOST_PID"
assert_eq 0 "$T_EXIT" "hosting edge exits 0 on SIGTERM"
