#!/usr/bin/env bash
# Tier 1 without auto-enrol (docs/bootstrap.md): the administrator pre-creates
# an identity bound to a registered factory CA (weft identity create --ca CA),
# and the device enrols with its token AND its factory certificate
# (weft-edge enroll TOKEN --cert --key). Without the certificate, with one
# from another CA, or with the wrong key it is refused with a message saying
# why, and the token survives each refusal; with the right one it enrols.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

M="$T_TMP/mfg"
mkdir -p "$M"
mk_ca() { # NAME: a P-256 CA (NAME.pem, NAME.key)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$M/$1.key" -out "$M/$1.pem" -subj "/CN=$1 Manufacturing CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
mk_dev() { # CA CN: a device certificate and key from CA (CN.pem, CN.key)
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$M/$2.key" -out "$M/$2.csr" -subj "/CN=$2" 2>/dev/null
    openssl x509 -req -in "$M/$2.csr" -CA "$M/$1.pem" -CAkey "$M/$1.key" -CAcreateserial \
        -days 10 -out "$M/$2.pem" 2>/dev/null
}

ctl_new ftok
mk_ca corp
mk_ca other
mk_ca stranger
mk_dev corp gw-0001
mk_dev other gw-0002
mk_dev stranger gw-0003
for ca in corp other; do
    weft ca create "$ca" --cert "$M/$ca.pem"
    assert_rc 0 "CA $ca registered (no auto-enrol)"
    weft ca verify "$ca" --key "$M/$ca.key"
    assert_rc 0 "CA $ca verified"
done

# ---- the identity, bound to corp
weft identity create gw1 --role gateways --ca nosuch --out "$T_TMP/x.jwt"
assert_rc 1 "--ca naming no registered CA is refused"
assert_match "no registered CA 'nosuch'" "$T_ERR" "and says so"
weft identity create gw1 --role gateways --ca corp --out "$T_TMP/gw1.jwt"
assert_rc 0 "weft identity create gw1 --ca corp"
weft --json ca show corp
corp_id=$(jget "$T_OUT" .data.id)
weft --json identity show gw1
assert_eq "$corp_id" "$(jget "$T_OUT" .data.factory_ca)" "the identity records the required CA"

# ---- refusals; the token is not spent by any of them
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --out "$T_TMP/gw1.json"
assert_rc 1 "without the factory certificate: refused"
assert_match "must enrol with its factory certificate" "$T_ERR" "the message says the factory certificate is needed"
assert_match "--cert FACTORY.pem --key FACTORY.key" "$T_ERR" "and how to give it"
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --cert "$M/gw-0002.pem" --key "$M/gw-0002.key" \
    --out "$T_TMP/gw1.json"
assert_rc 1 "with a certificate from another registered CA: refused"
assert_match "not from the CA this identity was created with" "$T_ERR" "the message says it is the wrong CA"
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --cert "$M/gw-0003.pem" --key "$M/gw-0003.key" \
    --out "$T_TMP/gw1.json"
assert_rc 1 "with a certificate from an unregistered CA: refused"
assert_match "not issued by any CA registered" "$T_ERR" "the message says the CA is unknown"
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --cert "$M/gw-0001.pem" --key "$M/gw-0002.key" \
    --out "$T_TMP/gw1.json"
assert_rc 1 "with the right certificate but another key: refused"
assert_match "does not prove possession" "$T_ERR" "the message says possession is not proved"
assert_cond "no identity file was written by a refusal" test ! -e "$T_TMP/gw1.json"
weft --json identity show gw1
assert_eq false "$(jget "$T_OUT" .data.enrolled)" "gw1 is still not enrolled"

# ---- the right certificate and key
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --cert "$M/gw-0001.pem" --key "$M/gw-0001.key" \
    --out "$T_TMP/gw1.json"
assert_rc 0 "with its factory certificate from corp: enrolled"
assert_match "^enrolled identity gw1" "$T_OUT" "weft-edge says enrolled"
weft --json identity show gw1
assert_eq true "$(jget "$T_OUT" .data.enrolled)" "gw1 is enrolled"
ffp=$(openssl x509 -in "$M/gw-0001.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)
assert_eq "$ffp" "$(jget "$T_OUT" .data.factory_fingerprint)" "the factory certificate's fingerprint is recorded"
idfile_split "$T_TMP/gw1.json" "$T_TMP/gw1"
assert_ne "$(openssl pkey -in "$M/gw-0001.key" -pubout 2>/dev/null)" \
    "$(openssl pkey -in "$T_TMP/gw1/key.pem" -pubout 2>/dev/null)" "the network identity has its own new key"
api_as "$T_TMP/gw1" GET /v1/edge/session
assert_status 200 "gw1 gets its session data"
t_run "$WEFT_EDGE" enroll "$T_TMP/gw1.jwt" --cert "$M/gw-0001.pem" --key "$M/gw-0001.key" \
    --out "$T_TMP/gw1b.json"
assert_rc 1 "the token is single-use, factory certificate or not"

# ---- identities without --ca enrol with the token alone, as before
weft identity create plain --out "$T_TMP/plain.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/plain.jwt" --out "$T_TMP/plain.json"
assert_rc 0 "an identity without --ca enrols with its token alone"
