#!/usr/bin/env bash
# Renewal under traffic (docs/bootstrap.md): a controller, a router, a
# hosting edge and a dialling edge; a long stream through the fabric (SHA-256
# at both ends) runs while the certificates of both edges and of the router
# are renewed (weft-edge renew --force on their identity files, then SIGHUP
# to each running edge so that it loads the new file). No byte is lost, the
# identity files and the store hold the new certificates, new circuits use
# them, and the router restarted on its renewed file serves again.
#
# weft-edge run also renews by itself (hourly, at start); the router does
# not yet, so its file is renewed here the same way and it restarts.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

port() { free_port || t_bail "no free port"; }
fp() { python3 -c '
import json, subprocess, sys
pem = json.load(open(sys.argv[1]))["cert"]
out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem.encode(),
                     capture_output=True).stdout.decode()
print(out.strip().split("=")[1].replace(":", "").lower())' "$1"; }
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# stream SECONDS MIB OUT: sends MIB MiB of random bytes through the fabric,
# paced over about SECONDS, then writes "SENT_SHA GOT_SHA BYTES" to OUT.
stream() {
    python3 - "$ICPT" "$1" "$2" "$3" <<'PY' 2>>"$T_TMP/logs/client.log"
import hashlib, os, socket, sys, time
port, secs, mib, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
chunks = mib * 4
s = socket.create_connection(("127.0.0.1", port), timeout=60)
h = hashlib.sha256()
sent = 0
for _ in range(chunks):
    b = os.urandom(256 * 1024)
    h.update(b)
    s.sendall(b)
    sent += len(b)
    time.sleep(secs / chunks)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    got += d
open(out, "w").write("%s %s %d\n" % (h.hexdigest(), got.decode().strip(), sent))
PY
}

API=$(port); CTLP=$(port); EDGEP=$(port); LINKP=$(port); SINK=$(port); ICPT=$(port)
T_DIR="$T_TMP/net"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$T_DIR" --listen "127.0.0.1:$API" \
    --control-listen "127.0.0.1:$CTLP" --name renewtraffic --cert-ttl 2h
[ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
CTL_PORT[$T_DIR]=$API
ctl_start "$T_DIR"
ctl_use "$T_DIR"

weft router create r1 --out "$T_TMP/r1.jwt"
t_run "$WEFT_ROUTER" enroll "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "127.0.0.1:$EDGEP" \
    --link-listen "127.0.0.1:$LINKP"
assert_rc 0 "router r1 enrolled"
for n in host:hosts dial:dialers; do
    weft identity create "${n%%:*}" --role "${n#*:}" --out "$T_TMP/${n%%:*}.jwt"
    t_run "$WEFT_EDGE" enroll "$T_TMP/${n%%:*}.jwt" --out "$T_TMP/${n%%:*}.json"
    assert_rc 0 "identity ${n%%:*} enrolled"
done
weft service create sink --role web --intercept "tcp:127.0.0.1:$ICPT" --host "tcp:127.0.0.1:$SINK"
weft policy create d --type dial --identities '#dialers' --services '#web'
weft policy create b --type bind --identities '#hosts' --services '#web'
bg sink python3 -c '
import hashlib, socket, sys, threading
def serve(c):
    h = hashlib.sha256()
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
    c.sendall(h.hexdigest().encode() + b"\n")
    c.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(16)
while True:
    threading.Thread(target=serve, args=(l.accept()[0],), daemon=True).start()' "$SINK"

bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
ROUTER_PID=$BG_PID
bg edge-host "$WEFT_EDGE" run --identity "$T_TMP/host.json" --log-level debug
HOST_PID=$BG_PID
bg edge-dial "$WEFT_EDGE" run --identity "$T_TMP/dial.json" --log-level debug
DIAL_PID=$BG_PID
assert_cond "the hosting edge binds" wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=sink" 30
assert_cond "the dialling edge intercepts" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=sink " 30
# The bind reaches the router's map a moment after the edge logs it.
for ((i = 0; i < 40; i++)); do
    stream 0 1 "$T_TMP/warm" && read -r a b _ <"$T_TMP/warm" && [ "$a" == "$b" ] && break
    sleep 0.5
done

old_host=$(fp "$T_TMP/host.json"); old_dial=$(fp "$T_TMP/dial.json"); old_r1=$(fp "$T_TMP/r1/identity.json")

# ---- a 12-second stream, renewed under it
stream 12 24 "$T_TMP/long" &
STREAM_PID=$!
sleep 3
for f in "$T_TMP/host.json" "$T_TMP/dial.json" "$T_TMP/r1/identity.json"; do
    t_run "$WEFT_EDGE" renew --identity "$f" --force
    assert_rc 0 "renewed $(basename "$(dirname "$f")")/$(basename "$f") mid-stream"
done
kill -HUP "$HOST_PID" "$DIAL_PID"
assert_cond "the hosting edge loads its new certificate" \
    wait_log "$T_TMP/logs/edge-host.log" "event=edge_identity_reloaded" 10
assert_cond "the dialling edge loads its new certificate" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_identity_reloaded" 10
assert_cond "the stream was still running after the renewals" alive "$STREAM_PID"
for ((i = 0; i < 600 && $(alive "$STREAM_PID" && echo 1 || echo 0); i++)); do sleep 0.1; done
wait "$STREAM_PID"
read -r sent got bytes <"$T_TMP/long" 2>/dev/null
assert_eq $((24 * 1024 * 1024)) "${bytes:-0}" "24 MiB sent across the renewals"
assert_eq "$sent" "$got" "no byte lost: SHA-256 at the host equals the sender's"
assert_no_match "circuit_close.*err=[^n]" "$(cat "$T_TMP/logs/router.log")" "no circuit failed"

# ---- the files and the store hold the new certificates
assert_ne "$old_host" "$(fp "$T_TMP/host.json")" "the hosting edge's file holds a new certificate"
assert_ne "$old_dial" "$(fp "$T_TMP/dial.json")" "the dialling edge's file holds a new certificate"
assert_ne "$old_r1" "$(fp "$T_TMP/r1/identity.json")" "the router's file holds a new certificate"
weft --json identity show dial
assert_eq "$(fp "$T_TMP/dial.json")" "$(jget "$T_OUT" .data.cert_fingerprint)" "the store records dial's new certificate"
weft --json router show r1
assert_eq "$(fp "$T_TMP/r1/identity.json")" "$(jget "$T_OUT" .data.cert_fingerprint)" "the store records r1's new certificate"

# ---- new circuits after the reload use the new certificates
stream 1 2 "$T_TMP/after"
read -r sent got _ <"$T_TMP/after" 2>/dev/null
assert_eq "$sent" "$got" "a new circuit, signed with the renewed edge certificates, carries 2 MiB intact"

# ---- the router restarted on its renewed file
stop_pid "$ROUTER_PID"
bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
ROUTER_PID=$BG_PID
ok=""
for ((i = 0; i < 60; i++)); do
    stream 0 1 "$T_TMP/again" 2>/dev/null && read -r a b _ <"$T_TMP/again" && [ "$a" == "$b" ] && { ok=1; break; }
    sleep 0.5
done
assert_eq 1 "$ok" "the router on its renewed certificate carries traffic again"
