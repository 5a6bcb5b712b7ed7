#!/usr/bin/env bash
# weft-edge run, end to end on loopback: a controller, a router, a hosting edge
# in front of a python3 http.server and a dialling edge. curl through the
# dialling edge's intercept address gets the page (and a 4 MiB file intact);
# a service whose host refuses connections resets the local client promptly,
# and the dialling edge hears why (the circuit is refused, never opened);
# renewal is checked at start, a renewed identity is reloaded on SIGHUP
# without cutting a connection, and new sessions use it; both edges stop
# cleanly on SIGTERM.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

port() { free_port || t_bail "no free port"; }
API=$(port); CTLP=$(port); EDGEP=$(port); LINKP=$(port)
HTTP=$(port); ICPT=$(port); ICPT_DEAD=$(port); DEAD=$(port); UDP_HOST=$(port); UDP_ICPT=$(port)
SINK=$(port); SINK_ICPT=$(port)

# ---- controller
T_DIR="$T_TMP/net"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$T_DIR" --listen "127.0.0.1:$API" \
    --control-listen "127.0.0.1:$CTLP" --name edgetest
[ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
CTL_PORT[$T_DIR]=$API
ctl_start "$T_DIR"
ctl_use "$T_DIR"

# ---- router
weft router create r1 --out "$T_TMP/r1.jwt"
assert_rc 0 "router r1 created"
t_run "$WEFT_ROUTER" enroll "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "127.0.0.1:$EDGEP" \
    --link-listen "127.0.0.1:$LINKP"
assert_rc 0 "router r1 enrolled"
bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
ROUTER_PID=$BG_PID

# ---- identities, services, policies
enrol() { # NAME ROLE
    weft identity create "$1" --role "$2" --out "$T_TMP/$1.jwt"
    assert_rc 0 "identity $1 created"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$1.jwt" --out "$T_TMP/$1.json"
    assert_rc 0 "identity $1 enrolled"
}
enrol web-host hosts
enrol laptop dialers
weft service create web --role web --intercept "tcp:127.0.0.1:$ICPT" --host "tcp:127.0.0.1:$HTTP"
assert_rc 0 "service web created"
weft service create dead --role web --intercept "tcp:127.0.0.1:$ICPT_DEAD" \
    --host "tcp:127.0.0.1:$DEAD"
assert_rc 0 "service dead created"
weft service create echo --role web --intercept "udp:127.0.0.1:$UDP_ICPT" \
    --host "udp:127.0.0.1:$UDP_HOST"
assert_rc 0 "service echo (udp) created"
weft service create sink --role web --intercept "tcp:127.0.0.1:$SINK_ICPT" \
    --host "tcp:127.0.0.1:$SINK"
assert_rc 0 "service sink created"
weft policy create laptops-dial --type dial --identities '#dialers' --services '#web'
assert_rc 0 "dial policy created"
weft policy create hosts-bind --type bind --identities '#hosts' --services '#web'
assert_rc 0 "bind policy created"

# ---- the service itself
mkdir -p "$T_TMP/www"
MARK="weft-edge-page-$RANDOM$RANDOM"
echo "<html><body>$MARK</body></html>" >"$T_TMP/www/index.html"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T_TMP/www/big.bin"
bg http python3 -m http.server "$HTTP" --bind 127.0.0.1 --directory "$T_TMP/www"
bg udp-echo python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)' "$UDP_HOST"

# sink: reads a connection to its end, answers with the SHA-256 of what it
# read (so it writes after its peer's EOF), then closes; a reset is noted in
# sink.events.
bg sink python3 -c '
import hashlib, socket, sys, threading
def serve(c):
    h = hashlib.sha256()
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
        c.sendall(h.hexdigest().encode() + b"\n")
        c.close()
    except ConnectionResetError:
        open(sys.argv[2], "a").write("reset\n")
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(16)
while True:
    threading.Thread(target=serve, args=(l.accept()[0],), daemon=True).start()' "$SINK" "$T_TMP/sink.events"

# ---- the edges
bg edge-host "$WEFT_EDGE" run --identity "$T_TMP/web-host.json" --log-level debug
HOST_PID=$BG_PID
bg edge-dial "$WEFT_EDGE" run --identity "$T_TMP/laptop.json" --log-level debug
DIAL_PID=$BG_PID

# wait_log FILE REGEX SECONDS: true once FILE has a line matching REGEX.
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
assert_cond "hosting edge bound web" wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=web" 30
assert_cond "dialling edge intercepts web" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=web " 30

# ---- a page through the fabric
page=""
for ((i = 0; i < 20; i++)); do
    page=$(curl -sS --max-time 5 "http://127.0.0.1:$ICPT/index.html" 2>>"$T_TMP/logs/curl.log")
    printf '%s' "$page" | grep -q "$MARK" && break
    sleep 0.5
done
assert_match "$MARK" "$page" "curl through the intercept address returns the page"

t_run curl -sS --max-time 30 -o "$T_TMP/big.out" "http://127.0.0.1:$ICPT/big.bin"
assert_rc 0 "curl fetches a 4 MiB file through the intercept"
assert_eq "$(sha256sum <"$T_TMP/www/big.bin" | cut -d' ' -f1)" \
    "$(sha256sum <"$T_TMP/big.out" 2>/dev/null | cut -d' ' -f1)" "the 4 MiB file arrives intact"

assert_cond "dialling edge logs the connection's close with its byte counts" \
    wait_log "$T_TMP/logs/edge-dial.log" \
    "event=edge_conn_close service=web side=intercept client=127.0.0.1:[0-9]+ bytes_up=[1-9][0-9]* bytes_down=[1-9][0-9]* duration_ms=[0-9]+ result=ok" 5

# ---- UDP: datagrams keep their boundaries both ways
assert_cond "dialling edge intercepts echo (udp)" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=echo proto=udp" 30
udp=$(python3 - "$UDP_ICPT" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
sizes = [1, 1000, 0, 60000, 7]
msgs = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
got = []
# Datagrams sent while the flow's circuit is dialled wait for it; one round
# normally suffices, a few are allowed (bounded) in case the echo server is slow to start.
for _ in range(10):
    got = []
    for m in msgs:
        s.sendto(m, ("127.0.0.1", int(sys.argv[1])))
    try:
        while len(got) < len(msgs):
            got.append(s.recvfrom(65535)[0])
    except socket.timeout:
        pass
    if got == msgs:
        break
    try:  # stragglers of this round
        while True:
            s.recvfrom(65535)
    except socket.timeout:
        pass
print("ok" if got == msgs else "got sizes %s" % [len(g) for g in got])
EOF
)
assert_eq ok "$udp" "UDP datagrams (0 B to 60000 B) come back through the fabric, boundaries kept"

# ---- half-close both ways: our EOF reaches the host, its answer and EOF come back
half=$(python3 - "$SINK_ICPT" <<'EOF'
import hashlib, os, socket, sys
data = os.urandom(3 * 1024 * 1024 + 17)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print("ok" if got.decode().strip() == hashlib.sha256(data).hexdigest() else "got %r" % got[:80])
EOF
)
assert_eq ok "$half" "half-close: 3 MiB up, EOF, then the host's answer and EOF back"

# ---- a local reset reaches the host as a reset
python3 - "$SINK_ICPT" <<'EOF'
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"x" * 1000)
time.sleep(0.5)  # the circuit is up and the host connected
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # RST
EOF
assert_cond "the host's connection is reset when the local client resets" \
    wait_log "$T_TMP/sink.events" "^reset" 3

# ---- a host that refuses: the local client sees a reset or close, promptly
assert_cond "dialling edge intercepts dead" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=dead " 30
refused=$(python3 - "$ICPT_DEAD" <<'EOF'
import socket, sys, time
t0 = time.monotonic()
try:
    # The refusal can be quick enough to reset the connection as it is made.
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.settimeout(5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = s.recv(4096)
    how = "eof" if data == b"" else "data"
except ConnectionResetError:
    how = "reset"
except socket.timeout:
    how = "hang"
except OSError as e:
    how = "error:" + str(e)
print(how, "%.2f" % (time.monotonic() - t0))
EOF
)
assert_match "^(reset|eof) " "$refused" "a refused host ends the local client's connection (reset or EOF)"
secs=${refused#* }
assert_cond "... within 2 s (took ${secs:-?} s)" python3 -c "import sys; sys.exit(0 if float('${secs:-99}') < 2 else 1)"
assert_cond "the hosting edge says the host refused and what to check" \
    wait_log "$T_TMP/logs/edge-host.log" \
    "service dead: host 127.0.0.1:$DEAD refused the connection; is the service running\\?" 5

assert_cond "the dialling edge's dial fails with the host's reason (no open-then-reset)" \
    wait_log "$T_TMP/logs/edge-dial.log" \
    "event=edge_dial_failed service=dead .*err=EREFUSED msg=\"service dead: host 127.0.0.1:$DEAD refused the connection" 5
grep -Eq "event=edge_conn_open service=dead " "$T_TMP/logs/edge-dial.log" "$T_TMP/logs/edge-host.log"
assert_ne 0 $? "no connection to the refused service was ever opened"

# ---- renewal: checked at start; a renewed file is reloaded, nothing is cut
assert_cond "both edges check their certificate's renewal at start" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_renew_not_due" 10
assert_cond "... the hosting edge too" wait_log "$T_TMP/logs/edge-host.log" "event=edge_renew_not_due" 10
mkfifo "$T_TMP/long.ctl"
cat >"$T_TMP/long.py" <<'EOF'
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
h = hashlib.sha256()
first = b"a" * 100000
s.sendall(first); h.update(first)
open(sys.argv[3], "w").write("open\n")
open(sys.argv[2]).read()  # until the renewal is done
second = b"b" * 100000
s.sendall(second); h.update(second)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
open(sys.argv[3], "a").write("ok\n" if got.decode().strip() == h.hexdigest() else "bad %r\n" % got[:80])
EOF
bg long python3 "$T_TMP/long.py" "$SINK_ICPT" "$T_TMP/long.ctl" "$T_TMP/long.out"
LONG_PID=$BG_PID
assert_cond "a long connection is open" wait_log "$T_TMP/long.out" "^open" 10
t_run "$WEFT_EDGE" renew --identity "$T_TMP/laptop.json" --force
assert_rc 0 "weft-edge renew --force beside the running edge"
kill -HUP "$DIAL_PID"
assert_cond "the running edge reloads the renewed identity on SIGHUP" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_identity_reloaded" 10
echo go >"$T_TMP/long.ctl"
assert_cond "the connection opened before the renewal completes intact" \
    wait_log "$T_TMP/long.out" "^ok" 20
wait "$LONG_PID" 2>/dev/null
# New sessions use the new certificate: the router restarts, the edge reconnects.
stop_pid "$ROUTER_PID"
bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
ROUTER_PID=$BG_PID
page=""
for ((i = 0; i < 60; i++)); do
    page=$(curl -sS --max-time 5 "http://127.0.0.1:$ICPT/index.html" 2>>"$T_TMP/logs/curl.log")
    printf '%s' "$page" | grep -q "$MARK" && break
    sleep 0.5
done
assert_match "$MARK" "$page" "after a router restart the edge reconnects with the renewed certificate"

# ---- orderly stop
stop_pid "$DIAL_PID"
assert_eq 0 "$T_EXIT" "dialling edge exits 0 on SIGTERM"
stop_pid "$HOST_PID"
assert_eq 0 "$T_EXIT" "hosting edge exits 0 on SIGTERM"
t_run curl -sS --max-time 3 "http://127.0.0.1:$ICPT/index.html"
assert_ne 0 "$T_RC" "the intercept address is closed after the stop"
stop_pid "$ROUTER_PID"
