#!/usr/bin/env bash
# Enrolment (tier 1) end to end: controller init, a one-time token from the
# CLI, weft-edge enroll, the issued certificate checked with openssl, and every
# way a token must be refused (reused, expired, tampered, other network's CA).
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

mode_of() { stat -c %a "$1" 2>/dev/null; }

# enroll_body TOKEN: a POST /v1/enroll body with a fresh P-256 CSR.
enroll_body() {
    local d="$T_TMP/csr.$RANDOM"
    mkdir -p "$d"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/key.pem" -subj "/CN=device" -out "$d/csr.pem" 2>/dev/null
    python3 -c 'import json,sys; print(json.dumps({"token": sys.argv[1].strip(), "csr": open(sys.argv[2]).read()}))' \
        "$1" "$d/csr.pem"
}

# ---- network init
ctl_new neta
for f in ca.pem ca.key server.pem server.key signing.key weft.db controller.json admin.json; do
    assert_cond "init wrote $f" test -s "$T_DIR/$f"
done
for f in admin.json ca.key server.key signing.key; do
    assert_eq 600 "$(mode_of "$T_DIR/$f")" "$f is mode 0600"
done
t_run openssl verify -CAfile "$T_DIR/ca.pem" -untrusted "$T_DIR/server.pem" "$T_DIR/server.pem"
assert_rc 0 "server certificate verifies against the network CA"

api_as none GET /v1/version
assert_status 200 "GET /v1/version answers without a client certificate"
api_as none GET /v1/enroll/ca
assert_status 200 "GET /v1/enroll/ca answers without a client certificate"
assert_match "BEGIN CERTIFICATE" "$T_BODY" "/v1/enroll/ca returns the CA in PEM"

# ---- a device enrols with a token file
weft identity create dev1 --role sensors --out "$T_TMP/dev1.jwt"
assert_rc 0 "weft identity create dev1 --out token"
tok=$(cat "$T_TMP/dev1.jwt" 2>/dev/null)
assert_match '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$(printf '%s' "$tok" | tr -d '[:space:]')" \
    "token file holds a compact JWT"
weft --json identity show dev1
assert_rc 0 "weft --json identity show dev1"
id=$(jget "$T_OUT" .data.id)
assert_match '^[a-z0-9-]{1,64}$' "$id" "identity has an id"
assert_eq false "$(jget "$T_OUT" .data.enrolled)" "identity is not enrolled before enrolment"

t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1.json"
assert_rc 0 "weft-edge enroll with a token file"
assert_eq 600 "$(mode_of "$T_TMP/dev1.json")" "identity file is mode 0600"
idj=$(cat "$T_TMP/dev1.json" 2>/dev/null)
assert_eq 1 "$(jget "$idj" .version)" "identity file version 1"
assert_eq identity "$(jget "$idj" .kind)" "identity file kind"
assert_eq "$id" "$(jget "$idj" .id)" "identity file id"
assert_eq dev1 "$(jget "$idj" .name)" "identity file name"
assert_eq neta "$(jget "$idj" .network)" "identity file network"
assert_match "^https://127\.0\.0\.1:${CTL_PORT[$T_DIR]}/?$" "$(jget "$idj" .controller)" "identity file controller URL"

idfile_split "$T_TMP/dev1.json" "$T_TMP/dev1"
t_run openssl verify -CAfile "$T_DIR/ca.pem" -untrusted "$T_TMP/dev1/cert.pem" "$T_TMP/dev1/cert.pem"
assert_rc 0 "openssl verify -CAfile ca.pem on the issued certificate"
t_run openssl x509 -in "$T_TMP/dev1/cert.pem" -noout -ext subjectAltName
assert_match "URI:spiffe://neta/identity/$id([^a-z0-9-]|$)" "$T_OUT" "certificate carries URI SAN spiffe://neta/identity/<id>"
cert_pub=$(openssl x509 -in "$T_TMP/dev1/cert.pem" -noout -pubkey 2>/dev/null)
key_pub=$(openssl pkey -in "$T_TMP/dev1/key.pem" -pubout 2>/dev/null)
assert_eq "$cert_pub" "$key_pub" "private key in the identity file matches the certificate"
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null; }
assert_eq "$(fp "$T_DIR/ca.pem")" "$(fp "$T_TMP/dev1/ca.pem")" "identity file carries the network CA"
t_run openssl x509 -in "$T_TMP/dev1/cert.pem" -noout -checkend 3600
assert_rc 0 "certificate is valid for more than an hour"

weft --json identity show dev1
assert_eq true "$(jget "$T_OUT" .data.enrolled)" "identity show --json: enrolled true"
weft identity show dev1
assert_rc 0 "weft identity show dev1"
assert_match "enrolled" "$T_OUT" "identity show says enrolled"
assert_no_match "BEGIN (EC |)PRIVATE KEY" "$T_OUT$T_ERR" "no private key in show output"

# ---- the same token again
t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1-again.json"
assert_rc 1 "reused token is rejected (exit 1)"
assert_match "used" "$T_ERR$T_OUT" "reuse message mentions used"
assert_cond "no identity file written for a reused token" test ! -e "$T_TMP/dev1-again.json"
api_as none POST /v1/enroll "$(enroll_body "$tok")"
assert_status 401 "POST /v1/enroll with a used token -> 401"
assert_error_code token_used "used token error code"

# ---- the token as text on the command line
weft identity create dev2 --out "$T_TMP/dev2.jwt"
assert_rc 0 "create dev2"
t_run "$WEFT_EDGE" enroll "$(cat "$T_TMP/dev2.jwt")" --out "$T_TMP/dev2.json"
assert_rc 0 "weft-edge enroll with the JWT text"
assert_eq dev2 "$(jget "$(cat "$T_TMP/dev2.json" 2>/dev/null)" .name)" "dev2 identity file written"

# ---- expired
weft identity create dev3 --token-ttl 1 --out "$T_TMP/dev3.jwt"
assert_rc 0 "create dev3 with --token-ttl 1"
sleep 2.5
t_run "$WEFT_EDGE" enroll "$T_TMP/dev3.jwt" --out "$T_TMP/dev3.json"
assert_rc 1 "expired token is rejected (exit 1)"
assert_match "expire" "$T_ERR$T_OUT" "expiry message mentions expired"
assert_cond "no identity file for an expired token" test ! -e "$T_TMP/dev3.json"
api_as none POST /v1/enroll "$(enroll_body "$(cat "$T_TMP/dev3.jwt")")"
assert_status 401 "POST /v1/enroll with an expired token -> 401"
assert_error_code token_expired "expired token error code"

# ---- tampered
weft identity create dev4 --out "$T_TMP/dev4.jwt"
assert_rc 0 "create dev4"
tok4=$(tr -d '[:space:]' <"$T_TMP/dev4.jwt")
# One character of the payload flipped: bad base64, bad JSON or bad signature.
flipped=$(python3 -c '
import sys
h, p, s = sys.argv[1].split(".")
i = len(p) // 2
p = p[:i] + ("B" if p[i] != "B" else "C") + p[i + 1:]
print(".".join((h, p, s)))' "$tok4")
t_run "$WEFT_EDGE" enroll "$flipped" --out "$T_TMP/dev4-flip.json"
assert_rc 1 "token with a flipped payload character is rejected"
assert_cond "no identity file for a flipped token" test ! -e "$T_TMP/dev4-flip.json"
# Valid claims, a day longer, with the original signature: only the signature check can catch it.
forged=$(python3 -c '
import base64, json, sys
h, p, s = sys.argv[1].split(".")
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
c["exp"] = int(c.get("exp", 0)) + 86400
p = base64.urlsafe_b64encode(json.dumps(c, separators=(",", ":")).encode()).decode().rstrip("=")
print(".".join((h, p, s)))' "$tok4")
t_run "$WEFT_EDGE" enroll "$forged" --out "$T_TMP/dev4-forged.json"
assert_rc 1 "token with re-encoded claims and the old signature is rejected"
assert_match "invalid|signature" "$T_ERR$T_OUT" "forged token message says invalid"
assert_cond "no identity file for a forged token" test ! -e "$T_TMP/dev4-forged.json"
api_as none POST /v1/enroll "$(enroll_body "$forged")"
assert_status 401 "POST /v1/enroll with a forged token -> 401"
assert_error_code invalid_token "forged token error code"
api_as none POST /v1/enroll "$(enroll_body "not.a.token")"
assert_status 401 "POST /v1/enroll with garbage -> 401"
assert_error_code invalid_token "garbage token error code"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev4.jwt" --out "$T_TMP/dev4.json"
assert_rc 0 "the genuine token still works after the rejected forgeries"

# ---- hardware binding recorded at first use
weft identity create dev5 --binding exact --out "$T_TMP/dev5.jwt"
assert_rc 0 "create dev5 --binding exact"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev5.jwt" --out "$T_TMP/dev5.json" --imei 490154203237518 --iccid 8944500102198304826
assert_rc 0 "enroll with --imei and --iccid"
weft --json identity show dev5
assert_eq 490154203237518 "$(jget "$T_OUT" .data.imei)" "IMEI recorded at enrolment"
assert_eq 8944500102198304826 "$(jget "$T_OUT" .data.iccid)" "ICCID recorded at enrolment"

ctl_stop "$T_DIR"
assert_eq 0 "$T_EXIT" "controller exits 0 on SIGTERM"

# ---- a token pinned to another network's CA
port=$(free_port) || t_bail "no free port"
ctl_init "$T_TMP/netb" "$port" netb
ctl_start "$T_TMP/netb"
ctl_use "$T_TMP/netb"
weft identity create devb --out "$T_TMP/devb.jwt"
assert_rc 0 "create devb on network B"
ctl_stop "$T_TMP/netb"
ctl_init "$T_TMP/netc" "$port" netc
ctl_start "$T_TMP/netc"
t_run "$WEFT_EDGE" enroll "$T_TMP/devb.jwt" --out "$T_TMP/devb.json"
assert_rc 1 "token pinned to network B's CA is rejected by network C on the same address"
assert_match "fingerprint|mismatch|pin" "$T_ERR$T_OUT" "CA mismatch message names the fingerprint"
assert_cond "no identity file for a CA mismatch" test ! -e "$T_TMP/devb.json"
ctl_stop "$T_TMP/netc"
