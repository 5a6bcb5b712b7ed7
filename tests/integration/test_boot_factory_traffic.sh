#!/usr/bin/env bash
# A factory certificate auto-enrols and passes traffic (docs/bootstrap.md):
# a manufacturing CA made with openssl is registered with --auto-enroll
# --roles sensors and verified; a device with a certificate from it enrols
# with no token, takes the CA's roles, and dials a service allowed to
# #sensors through a real router to a hosting edge in front of a python3
# http.server: curl through its intercept gets the page. A device whose CA
# is unknown is refused at enrolment, gets no identity, and its factory
# certificate opens no session at the router either.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

port() { free_port || t_bail "no free port"; }
API=$(port); CTLP=$(port); EDGEP=$(port); LINKP=$(port); HTTP=$(port); ICPT=$(port)

T_DIR="$T_TMP/net"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$T_DIR" --listen "127.0.0.1:$API" \
    --control-listen "127.0.0.1:$CTLP" --name factorytraffic
[ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
CTL_PORT[$T_DIR]=$API
ctl_start "$T_DIR"
ctl_use "$T_DIR"
fp=$(openssl x509 -in "$T_DIR/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)

weft router create r1 --out "$T_TMP/r1.jwt"
t_run "$WEFT_ROUTER" enroll "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "127.0.0.1:$EDGEP" \
    --link-listen "127.0.0.1:$LINKP"
[ "$T_RC" == 0 ] || t_bail "router enrol failed: $T_ERR"
bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
ROUTER_PID=$BG_PID

# ---- the manufacturing CAs and devices (openssl only)
M="$T_TMP/mfg"
mkdir -p "$M"
mk_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$M/$1.key" -out "$M/$1.pem" -subj "/CN=$1 Manufacturing CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
mk_dev() { # CA CN
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$M/$2.key" -out "$M/$2.csr" -subj "/CN=$2" 2>/dev/null
    openssl x509 -req -in "$M/$2.csr" -CA "$M/$1.pem" -CAkey "$M/$1.key" -CAcreateserial \
        -days 10 -out "$M/$2.pem" 2>/dev/null
}
mk_ca acme
mk_ca rogue
mk_dev acme sensor-0001
mk_dev rogue rogue-0001

weft ca create acme --cert "$M/acme.pem" --auto-enroll --roles sensors
assert_rc 0 "manufacturing CA registered with --auto-enroll --roles sensors"
weft ca verify acme --key "$M/acme.key"
assert_rc 0 "the CA is verified by proof of possession"

# ---- the service: a hosting edge (token) in front of http.server
weft identity create web-host --role hosts --out "$T_TMP/web-host.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/web-host.jwt" --out "$T_TMP/web-host.json"
assert_rc 0 "the hosting edge enrols with a token"
weft service create web --role web --intercept "tcp:127.0.0.1:$ICPT" --host "tcp:127.0.0.1:$HTTP"
assert_rc 0 "service web created"
weft policy create sensors-dial --type dial --identities '#sensors' --services '#web'
assert_rc 0 "dial policy for #sensors"
weft policy create hosts-bind --type bind --identities '#hosts' --services '#web'
assert_rc 0 "bind policy for #hosts"

mkdir -p "$T_TMP/www"
MARK="factory-page-$RANDOM$RANDOM"
echo "$MARK" >"$T_TMP/www/index.html"
bg http python3 -m http.server "$HTTP" --bind 127.0.0.1 --directory "$T_TMP/www"
bg edge-host "$WEFT_EDGE" run --identity "$T_TMP/web-host.json"
HOST_PID=$BG_PID

# ---- the device enrols with its factory certificate, no token
t_run "$WEFT_EDGE" enroll --cert "$M/sensor-0001.pem" --key "$M/sensor-0001.key" \
    --controller "https://127.0.0.1:$API" --ca-fingerprint "$fp" --out "$T_TMP/s1.json"
assert_rc 0 "the factory certificate auto-enrols"
weft --json identity show sensor-0001
assert_eq '["sensors"]' "$(jget "$T_OUT" .data.roles)" "the identity has the CA's roles"

bg edge-dial "$WEFT_EDGE" run --identity "$T_TMP/s1.json"
DIAL_PID=$BG_PID

fetch() {
    local i out
    for ((i = 0; i < 40; i++)); do
        out=$(curl -sS --max-time 3 "http://127.0.0.1:$ICPT/index.html" 2>/dev/null)
        [ "$out" == "$MARK" ] && break
        sleep 0.5
    done
    echo "$out"
}
assert_eq "$MARK" "$(fetch)" "curl through the auto-enrolled device's intercept gets the page"
assert_match "event=edge_intercepting service=web" "$(cat "$T_TMP/logs/edge-dial.log")" \
    "the device intercepts the service its CA's role may dial"
assert_match "event=edge_bound service=web" "$(cat "$T_TMP/logs/edge-host.log")" \
    "the hosting edge binds the service"

# ---- a device from an unknown CA never gets that far
t_run "$WEFT_EDGE" enroll --cert "$M/rogue-0001.pem" --key "$M/rogue-0001.key" \
    --controller "https://127.0.0.1:$API" --ca-fingerprint "$fp" --out "$T_TMP/r.json"
assert_rc 1 "a certificate from an unknown CA is refused"
assert_match "unknown_ca" "$T_ERR" "the refusal names the unknown CA"
assert_cond "no identity file for it" test ! -e "$T_TMP/r.json"
weft --json identity list
assert_no_match "rogue-0001" "$T_OUT" "no identity was created for it"
# Presenting the factory certificate itself to the router opens nothing:
# the router trusts the network CA only.
out=$(python3 - "$EDGEP" "$M/rogue-0001.pem" "$M/rogue-0001.key" <<'PY' 2>&1
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
try:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5))
    s.sendall(b"\0" * 16)
    print("accepted" if s.recv(1) else "refused")
except socket.timeout:
    print("no answer")
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("refused", type(e).__name__)
PY
)
t_diag "router answer: $out"
assert_match "^refused" "$out" "the router refuses a session on a factory certificate"
assert_eq "$MARK" "$(fetch)" "the enrolled device still gets the page"

stop_pid "$DIAL_PID"
assert_eq 0 "$T_EXIT" "the device's edge exits 0 on SIGTERM"
stop_pid "$HOST_PID"
assert_eq 0 "$T_EXIT" "the hosting edge exits 0 on SIGTERM"
assert_cond "the router is still running" alive "$ROUTER_PID"
