#!/usr/bin/env bash
# Bring-your-own CA end to end (docs/bootstrap.md): a manufacturing CA made
# with the openssl CLI is registered and verified by proof of possession;
# a device holding a factory certificate auto-enrols with no token and its
# identity reaches GET /v1/edge/session; every refusal is checked: unknown CA,
# wrong key for the verification certificate, unverified or disabled CA,
# revoked certificate, proof made with the wrong key, second enrolment.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

M="$T_TMP/mfg"
mkdir -p "$M"

# mk_ca NAME: a P-256 root CA (NAME.pem, NAME.key) with openssl.
mk_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$M/$1.key" -out "$M/$1.pem" -subj "/CN=$1 Manufacturing CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# mk_dev CA CN: a device certificate and key from CA (CN.pem, CN.key).
mk_dev() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$M/$2.key" -out "$M/$2.csr" -subj "/CN=$2" 2>/dev/null
    openssl x509 -req -in "$M/$2.csr" -CA "$M/$1.pem" -CAkey "$M/$1.key" -CAcreateserial \
        -days 10 -out "$M/$2.pem" 2>/dev/null
}

ctl_new boot
fp=$(openssl x509 -in "$T_DIR/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)
mk_ca acme
mk_ca other
mk_dev acme sensor-0001
mk_dev acme sensor-0002
mk_dev acme sensor-0003
mk_dev other rogue-0001

factory_enroll() { # CERT KEY OUT
    t_run "$WEFT_EDGE" enroll --cert "$1" --key "$2" --controller "$T_URL" \
        --ca-fingerprint "$fp" --out "$3"
}

# ---- registration and proof of possession
weft ca create acme --cert "$M/acme.pem" --auto-enroll --roles sensors,fleet
assert_rc 0 "weft ca create acme --auto-enroll --roles sensors,fleet"
assert_match "weft ca verify acme" "$T_OUT" "create says how to verify the CA"
weft --json ca show acme
assert_eq false "$(jget "$T_OUT" .data.verified)" "a new CA is not verified"
chal=$(jget "$T_OUT" .data.challenge)
assert_match '^weft-ca-verify-[0-9a-f]{32}$' "$chal" "the CA has a challenge"

factory_enroll "$M/sensor-0001.pem" "$M/sensor-0001.key" "$T_TMP/s1.json"
assert_rc 1 "an unverified CA is refused"
assert_match "ca_unverified" "$T_ERR" "the refusal names the unverified CA"

# PoP with the wrong key: a verification certificate with the right CN, signed by another CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout "$M/v.key" -out "$M/vself.pem" -subj "/CN=$chal" 2>/dev/null
openssl req -new -key "$M/v.key" -subj "/CN=$chal" -out "$M/v.csr" 2>/dev/null
openssl x509 -req -in "$M/v.csr" -CA "$M/other.pem" -CAkey "$M/other.key" -CAcreateserial \
    -days 1 -out "$M/vwrong.pem" 2>/dev/null
weft ca verify acme --cert "$M/vwrong.pem"
assert_rc 1 "verification certificate signed by the wrong key is refused"
assert_match "does not prove possession" "$T_ERR" "PoP failure says why"
weft ca verify acme --key "$M/other.key"
assert_rc 1 "weft ca verify --key with another CA's key is refused"
weft --json ca show acme
assert_eq false "$(jget "$T_OUT" .data.verified)" "the CA stays unverified after PoP failures"

# The offline way: the admin signs CN=challenge with the CA and sends the certificate.
openssl x509 -req -in "$M/v.csr" -CA "$M/acme.pem" -CAkey "$M/acme.key" -CAcreateserial \
    -days 1 -out "$M/vgood.pem" 2>/dev/null
weft ca verify acme --cert "$M/vgood.pem"
assert_rc 0 "weft ca verify --cert VERIFY.pem signed by the CA"
weft --json ca show acme
assert_eq true "$(jget "$T_OUT" .data.verified)" "the CA is verified"
assert_no_match "BEGIN (EC |)PRIVATE KEY" "$T_OUT" "no key in ca show"

# ---- auto-enrolment with a factory certificate
factory_enroll "$M/sensor-0001.pem" "$M/sensor-0001.key" "$T_TMP/s1.json"
assert_rc 0 "weft-edge enroll --cert: a factory certificate auto-enrols"
assert_eq 600 "$(stat -c %a "$T_TMP/s1.json" 2>/dev/null)" "identity file is 0600"
idj=$(cat "$T_TMP/s1.json" 2>/dev/null)
assert_eq sensor-0001 "$(jget "$idj" .name)" "the identity is named by the template ({cn})"
id1=$(jget "$idj" .id)
weft --json identity show sensor-0001
assert_eq '["sensors", "fleet"]' "$(jget "$T_OUT" .data.roles)" "the identity has the CA's roles"
assert_eq true "$(jget "$T_OUT" .data.enrolled)" "the identity is enrolled"
idfile_split "$T_TMP/s1.json" "$T_TMP/s1"
cert_pub=$(openssl x509 -in "$T_TMP/s1/cert.pem" -noout -pubkey 2>/dev/null)
fac_pub=$(openssl x509 -in "$M/sensor-0001.pem" -noout -pubkey 2>/dev/null)
assert_ne "$fac_pub" "$cert_pub" "the network identity has a new key, not the factory key"
t_run openssl verify -CAfile "$T_DIR/ca.pem" -untrusted "$T_TMP/s1/cert.pem" "$T_TMP/s1/cert.pem"
assert_rc 0 "the identity certificate verifies against the network CA"
api_as "$T_TMP/s1" GET /v1/edge/session
assert_status 200 "the enrolled identity gets its session data"

factory_enroll "$M/sensor-0001.pem" "$M/sensor-0001.key" "$T_TMP/s1b.json"
assert_rc 1 "the same factory certificate cannot enrol twice"
assert_match "already_enrolled" "$T_ERR" "second enrolment says already enrolled"
weft identity delete sensor-0001
factory_enroll "$M/sensor-0001.pem" "$M/sensor-0001.key" "$T_TMP/s1c.json"
assert_rc 0 "after the admin deleted the identity, the certificate enrols again"

# ---- refusals
factory_enroll "$M/rogue-0001.pem" "$M/rogue-0001.key" "$T_TMP/r.json"
assert_rc 1 "a certificate from an unknown CA is refused"
assert_match "unknown_ca" "$T_ERR" "the refusal names the unknown CA"
assert_cond "no identity file for a refused device" test ! -e "$T_TMP/r.json"

# Proof of possession made with a key that is not the certificate's.
body=$(python3 - "$M" "$fp" <<'PY'
import base64, json, subprocess, sys
m, fp = sys.argv[1], sys.argv[2]
subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", m + "/n.key",
                "-subj", "/CN=x", "-out", m + "/n.csr"], check=True, capture_output=True)
csr = open(m + "/n.csr").read()
msg = ("weft-enroll-factory\n" + fp + "\n" + csr).encode()
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", m + "/rogue-0001.key"],
                     input=msg, check=True, capture_output=True).stdout
print(json.dumps({"cert": open(m + "/sensor-0002.pem").read(), "csr": csr,
                  "signature": base64.b64encode(sig).decode()}))
PY
)
api_as none POST /v1/enroll/factory "$body"
assert_status 401 "a proof signed with another key is refused"
assert_error_code pop_failed "the refusal says pop_failed"

weft ca disable acme
assert_rc 0 "weft ca disable acme"
factory_enroll "$M/sensor-0002.pem" "$M/sensor-0002.key" "$T_TMP/s2.json"
assert_rc 1 "a disabled CA is refused"
assert_match "ca_disabled" "$T_ERR" "the refusal names the disabled CA"
weft ca enable acme

# A CRL revoking sensor-0003.
mkdir -p "$M/db" && : >"$M/db/index.txt" && echo 01 >"$M/db/crlnumber"
cat >"$M/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
database = $M/db/index.txt
crlnumber = $M/db/crlnumber
default_md = sha256
default_crl_days = 7
CNF
openssl ca -config "$M/ca.cnf" -cert "$M/acme.pem" -keyfile "$M/acme.key" \
    -revoke "$M/sensor-0003.pem" >/dev/null 2>&1
openssl ca -config "$M/ca.cnf" -cert "$M/acme.pem" -keyfile "$M/acme.key" -gencrl \
    -out "$M/acme.crl" >/dev/null 2>&1
weft ca update acme --crl "$M/acme.crl"
assert_rc 0 "weft ca update acme --crl"
factory_enroll "$M/sensor-0003.pem" "$M/sensor-0003.key" "$T_TMP/s3.json"
assert_rc 1 "a certificate revoked in the CA's CRL is refused"
assert_match "cert_revoked" "$T_ERR" "the refusal names the revocation"
factory_enroll "$M/sensor-0002.pem" "$M/sensor-0002.key" "$T_TMP/s2.json"
assert_rc 0 "a certificate the CRL does not list still enrols"

# Without auto-enrol, a factory certificate alone is not enough.
weft ca create other --cert "$M/other.pem"
weft ca verify other --key "$M/other.key"
assert_rc 0 "weft ca verify --key CA.key signs the challenge locally"
factory_enroll "$M/rogue-0001.pem" "$M/rogue-0001.key" "$T_TMP/r.json"
assert_rc 1 "a CA without --auto-enroll does not auto-enrol"
assert_match "not_auto_enroll" "$T_ERR" "the refusal says the CA does not auto-enrol"

weft ca list
assert_match "acme" "$T_OUT" "weft ca list shows acme"
weft ca delete other
assert_rc 0 "weft ca delete"
