#!/usr/bin/env bash
# Intermediate CA rotation (docs/bootstrap.md): init makes intermediate-1,
# which issues every leaf; leaves carry their intermediate; `weft-controller
# ca rotate` makes intermediate-2. Afterwards a new device's chain runs
# through intermediate-2, the devices and the router enrolled before still
# authenticate (the API, and a circuit through the router between an old and
# a new edge), tokens still pin the root, and renewal moves a device over. An
# older data directory (the root signs leaves) keeps working and can rotate.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

port() { free_port || t_bail "no free port"; }
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1" 2>/dev/null; }
# leaf_of CHAIN OUT: the first certificate of a PEM chain.
leaf_of() { openssl x509 -in "$1" -out "$2" 2>/dev/null; }
issuer_cn() { openssl x509 -in "$1" -noout -issuer -nameopt multiline 2>/dev/null | sed -n 's/^ *commonName *= //p'; }
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f; }
token_ca() { # the ca claim of a token file
    python3 - "$1" <<'PY'
import base64, json, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["ca"])
PY
}
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

API=$(port); CTLP=$(port); EDGEP=$(port); LINKP=$(port); SINK=$(port); ICPT=$(port)

# ---- a new network: the root signs intermediate-1, which signs the leaves
D="$T_TMP/rot"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$D" --listen "127.0.0.1:$API" \
    --control-listen "127.0.0.1:$CTLP" --name rot
[ "$T_RC" == 0 ] || t_bail "controller init failed: $T_ERR"
assert_eq intermediate-1 "$(jget "$(cat "$D/intermediates.json")" .active)" "init makes intermediate-1 active"
assert_eq 600 "$(stat -c %a "$D/intermediate-1.key")" "intermediate-1.key is 0600"
assert_match "Root CA" "$(issuer_cn "$D/intermediate-1.pem")" "intermediate-1 is signed by the root"
t_run openssl verify -CAfile "$D/ca.pem" "$D/intermediate-1.pem"
assert_rc 0 "intermediate-1 verifies against the root"
assert_eq 2 "$(ncerts "$D/server.pem")" "server.pem carries its chain"
t_run openssl verify -CAfile "$D/ca.pem" -untrusted "$D/intermediate-1.pem" "$D/server.pem"
assert_rc 0 "the server certificate verifies: -CAfile root -untrusted intermediate-1"
CTL_PORT[$D]=$API
ctl_start "$D"
ctl_use "$D"

weft router create r1 --out "$T_TMP/r1.jwt"
t_run "$WEFT_ROUTER" enroll "$T_TMP/r1.jwt" --dir "$T_TMP/r1" --edge-listen "127.0.0.1:$EDGEP" \
    --link-listen "127.0.0.1:$LINKP"
assert_rc 0 "router r1 enrolled (intermediate-1)"
enrol() { # NAME ROLE
    weft identity create "$1" --role "$2" --out "$T_TMP/$1.jwt"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$1.jwt" --out "$T_TMP/$1.json"
    assert_rc 0 "identity $1 enrolled"
    idfile_split "$T_TMP/$1.json" "$T_TMP/$1"
    leaf_of "$T_TMP/$1/cert.pem" "$T_TMP/$1/leaf.pem"
}
enrol old-host hosts
enrol old-dev dialers
assert_eq 2 "$(ncerts "$T_TMP/old-dev/cert.pem")" "the identity file carries leaf + intermediate"
assert_match "Intermediate CA 1" "$(issuer_cn "$T_TMP/old-dev/leaf.pem")" "old-dev is issued by intermediate-1"
assert_eq "$(fp "$D/ca.pem")" "$(fp "$T_TMP/old-dev/ca.pem")" "the identity file's CA is the root"
ca_before=$(token_ca "$T_TMP/old-dev.jwt")
assert_eq "$(fp "$D/ca.pem")" "$ca_before" "tokens pin the root's fingerprint"

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
bg edge-host "$WEFT_EDGE" run --identity "$T_TMP/old-host.json" --log-level debug
assert_cond "the old hosting edge binds through the old router" \
    wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=sink" 30

# ---- rotation (the controller restarts to issue with the new intermediate)
ctl_stop "$D"
t_run "$WEFT_CONTROLLER_BIN" ca rotate --dir "$D"
assert_rc 0 "weft-controller ca rotate"
assert_match "intermediate-2 is now the issuing intermediate" "$T_OUT" "it names the new intermediate"
assert_eq intermediate-2 "$(jget "$(cat "$D/intermediates.json")" .active)" "intermediate-2 is active"
assert_eq 2 "$(jlen "$(cat "$D/intermediates.json")" .intermediates)" "both intermediates are listed"
assert_match '^[0-9]+$' "$(jget "$(cat "$D/intermediates.json")" .intermediates.0.retired)" \
    "intermediate-1 is marked retired"
assert_cond "the retired intermediate's key is gone" test ! -e "$D/intermediate-1.key"
t_run "$WEFT_CONTROLLER_BIN" ca rotate
assert_rc 2 "ca rotate without --dir is a usage error"
ctl_start "$D"

enrol new-dev dialers
assert_match "Intermediate CA 2" "$(issuer_cn "$T_TMP/new-dev/leaf.pem")" "a device enrolled now is issued by intermediate-2"
assert_eq "$ca_before" "$(token_ca "$T_TMP/new-dev.jwt")" "tokens still pin the root"
assert_eq "$(fp "$D/ca.pem")" "$(fp "$T_TMP/new-dev/ca.pem")" "the new identity file's CA is the same root"
t_run openssl verify -CAfile "$D/ca.pem" -untrusted "$D/intermediate-1.pem" "$T_TMP/old-dev/leaf.pem"
assert_rc 0 "old chain: openssl verify -CAfile root -untrusted intermediate-1"
t_run openssl verify -CAfile "$D/ca.pem" -untrusted "$D/intermediate-2.pem" "$T_TMP/new-dev/leaf.pem"
assert_rc 0 "new chain: openssl verify -CAfile root -untrusted intermediate-2"
t_run openssl verify -CAfile "$D/ca.pem" -untrusted "$D/intermediate-1.pem" "$T_TMP/new-dev/leaf.pem"
assert_ne 0 "$T_RC" "the new leaf does not verify through the old intermediate"

api_as "$T_TMP/old-dev" GET /v1/edge/session
assert_status 200 "the old device (intermediate-1) still authenticates: GET /v1/edge/session"
api_as "$T_TMP/new-dev" GET /v1/edge/session
assert_status 200 "the new device (intermediate-2) authenticates"

# A circuit from the new device through the old router to the old host.
bg edge-dial "$WEFT_EDGE" run --identity "$T_TMP/new-dev.json" --log-level debug
assert_cond "the new dialling edge intercepts sink" \
    wait_log "$T_TMP/logs/edge-dial.log" "event=edge_intercepting service=sink " 30
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T_TMP/blob"
want=$(sha256sum <"$T_TMP/blob" | cut -d' ' -f1)
got=""
for ((i = 0; i < 20; i++)); do
    got=$(python3 - "$ICPT" "$T_TMP/blob" <<'PY' 2>>"$T_TMP/logs/client.log"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(open(sys.argv[2], "rb").read())
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
print(out.decode().strip())
PY
)
    [ "$got" == "$want" ] && break
    sleep 0.5
done
assert_eq "$want" "$got" "2 MiB from a new-chain edge through an old-chain router to an old-chain host, intact"

# Renewal moves a device over to the new intermediate.
t_run "$WEFT_EDGE" renew --identity "$T_TMP/old-dev.json" --force
assert_rc 0 "the old device renews"
idfile_split "$T_TMP/old-dev.json" "$T_TMP/old-dev-renewed"
leaf_of "$T_TMP/old-dev-renewed/cert.pem" "$T_TMP/old-dev-renewed/leaf.pem"
assert_match "Intermediate CA 2" "$(issuer_cn "$T_TMP/old-dev-renewed/leaf.pem")" "its renewed certificate comes from intermediate-2"
api_as "$T_TMP/old-dev-renewed" GET /v1/edge/session
assert_status 200 "the renewed certificate authenticates"

# ---- an older data directory: no intermediates.json, the root signs leaves
LP=$(port)
L="$T_TMP/leg"
ctl_init "$L" "$LP" leg
rm -f "$L/intermediates.json" "$L/intermediate-1.pem" "$L/intermediate-1.key"
ctl_start "$L"
ctl_use "$L"
enrol leg-dev dialers
assert_eq 1 "$(ncerts "$T_TMP/leg-dev/cert.pem")" "an older data directory issues a bare leaf"
assert_match "Root CA" "$(issuer_cn "$T_TMP/leg-dev/leaf.pem")" "signed by the root"
ctl_stop "$L"
t_run "$WEFT_CONTROLLER_BIN" ca rotate --dir "$L"
assert_rc 0 "an older data directory rotates to its first intermediate"
assert_eq intermediate-1 "$(jget "$(cat "$L/intermediates.json")" .active)" "intermediate-1 is active there"
ctl_start "$L"
api_as "$T_TMP/leg-dev" GET /v1/edge/session
assert_status 200 "the root-signed device still authenticates"
enrol leg-new dialers
assert_match "Intermediate CA 1" "$(issuer_cn "$T_TMP/leg-new/leaf.pem")" "new devices there get intermediate-1 leaves"
