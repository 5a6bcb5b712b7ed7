#!/usr/bin/env bash
# Renewal under traffic (docs/bootstrap.md): a controller, a router, a
# hosting edge and a dialling edge; a long stream through the fabric (SHA-256
# at both ends) runs while the certificates of both edges and of the router
# are renewed. The edges' files are renewed with weft-edge renew --force and
# loaded on SIGHUP; the router renews by itself (weft-router run
# --renew-check 1 --renew-before 3590 with one-hour certificates: a renewal
# about every 10 s) and is never restarted. No byte is lost, the identity
# files and the store hold the new certificates, new circuits use them, and
# a new TLS client of the router's edge and link listeners sees the router's
# current certificate while the old sessions go on.
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
# wait_until FUNCTION SECONDS: 0 once FUNCTION succeeds, polled every 0.2 s.
wait_until() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
renewals() { grep -c "event=router_renewed" "$T_TMP/logs/router.log" 2>/dev/null || true; }
# The fingerprint a NEW TLS client of HOST:PORT is shown (dial's certificate).
seen_fp() {
    openssl s_client -connect "$1" -cert "$T_TMP/client.pem" -key "$T_TMP/client.key" \
        -cert_chain "$T_TMP/client.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2 | tr -d : | tr A-F a-f
}
# listener_fp HOST:PORT: 0 when a new client sees the certificate in the
# router's file (read before and after, as the router renews every ~10 s).
listener_fp() {
    local i a b seen
    for ((i = 0; i < 5; i++)); do
        a=$(fp "$T_TMP/r1/identity.json"); seen=$(seen_fp "$1"); b=$(fp "$T_TMP/r1/identity.json")
        [ -n "$seen" ] && [ "$a" == "$b" ] && [ "$seen" == "$a" ] && return 0
        sleep 1
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
    --control-listen "127.0.0.1:$CTLP" --name renewtraffic --cert-ttl 1h
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

bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1" --renew-check 1 --renew-before 3590 --log-level debug
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

# ---- a 16-second stream, renewed under it
before=$(renewals)
stream 16 24 "$T_TMP/long" &
STREAM_PID=$!
sleep 3
for f in "$T_TMP/host.json" "$T_TMP/dial.json"; do
    t_run "$WEFT_EDGE" renew --identity "$f" --force
    assert_rc 0 "renewed $(basename "$(dirname "$f")")/$(basename "$f") mid-stream"
done
kill -HUP "$HOST_PID" "$DIAL_PID"
assert_cond "the hosting edge loads its new certificate" \
    wait_log "$T_TMP/logs/edge-host.log" "event=edge_identity_reloaded" 10
assert_cond "the dialling edge loads its new certificate" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_identity_reloaded" 10
renewed_mid() { [ "$(renewals)" -gt "$before" ]; }
assert_cond "the router renews by itself under the stream" wait_until renewed_mid 13
assert_match "event=router_identity_reloaded why=renewed fingerprint=[0-9a-f]{64}" \
    "$(cat "$T_TMP/logs/router.log")" "the router loads its renewed certificate and logs it"
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
assert_no_match "key|BEGIN" "$(grep -E "router_renewed|router_identity_reloaded" "$T_TMP/logs/router.log")" \
    "renewal log lines carry no key"
weft --json identity show dial
assert_eq "$(fp "$T_TMP/dial.json")" "$(jget "$T_OUT" .data.cert_fingerprint)" "the store records dial's new certificate"
store_r1() {
    local a
    a=$(fp "$T_TMP/r1/identity.json")
    weft --json router show r1
    [ "$a" == "$(jget "$T_OUT" .data.cert_fingerprint)" ]
}
assert_cond "the store records r1's new certificate" wait_until store_r1 12

# ---- new TLS clients of the router see its new certificate (no restart)
python3 -c '
import json, re, sys
d = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(d["cert"])
open(sys.argv[3], "w").write(d["key"])' "$T_TMP/dial.json" "$T_TMP/client.pem" "$T_TMP/client.key"
chmod 600 "$T_TMP/client.key"
assert_cond "a new session on the edge listener gets the router's renewed certificate" \
    listener_fp "127.0.0.1:$EDGEP"
assert_cond "a new link on the link listener gets the router's renewed certificate" \
    listener_fp "127.0.0.1:$LINKP"
assert_ne "$old_r1" "$(seen_fp "127.0.0.1:$EDGEP")" "the certificate from before the stream is no longer presented"
assert_cond "the router was never restarted" alive "$ROUTER_PID"
assert_eq 1 "$(grep -c "event=started" "$T_TMP/logs/router.log")" "the router started once"

# ---- new circuits after the reload use the new certificates
stream 1 2 "$T_TMP/after"
read -r sent got _ <"$T_TMP/after" 2>/dev/null
assert_eq "$sent" "$got" "a new circuit, signed with the renewed edge certificates, carries 2 MiB intact"

# ---- a SIGHUP reloads the file (renewed by someone else) without a restart
t_run "$WEFT_EDGE" renew --identity "$T_TMP/r1/identity.json" --force
assert_rc 0 "weft-edge renew on the router's file"
n=$(grep -c "why=sighup" "$T_TMP/logs/router.log" || true)
kill -HUP "$ROUTER_PID"
hup_seen() { [ "$(grep -c "why=sighup" "$T_TMP/logs/router.log" || true)" -gt "$n" ]; }
assert_cond "SIGHUP reloads the router's identity" wait_until hup_seen 10
stream 1 2 "$T_TMP/again"
read -r sent got _ <"$T_TMP/again" 2>/dev/null
assert_eq "$sent" "$got" "the router carries a new circuit after the reloads"
assert_cond "the router is still the same process" alive "$ROUTER_PID"
