#!/usr/bin/env bash
# Certificate lifecycle (docs/bootstrap.md): short-lived certificates from
# --cert-ttl; weft-edge renew keeps the identity and makes a new key, and the
# old certificate keeps working until it expires; an expired certificate is
# refused with a message that says so and what to do; a disabled identity
# cannot renew; the CA key can be kept encrypted under a passphrase.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

# ---- a network whose CA key is encrypted, with 2-hour certificates
port=$(free_port) || t_bail "no free port"
cport=$(free_port) || t_bail "no free port"
D="$T_TMP/life"
printf 'correct horse battery staple\n' >"$T_TMP/pass"
t_run "$WEFT_CONTROLLER_BIN" init --dir "$D" --listen "127.0.0.1:$port" --name life \
    --control-listen "127.0.0.1:$cport" --cert-ttl 2h --ca-passphrase-file "$T_TMP/pass"
assert_rc 0 "init --cert-ttl 2h --ca-passphrase-file"
assert_match "BEGIN ENCRYPTED PRIVATE KEY" "$(head -1 "$D/ca.key")" "ca.key is encrypted at rest"
t_run openssl pkey -in "$D/ca.key" -passin pass:wrong -noout
assert_ne 0 "$T_RC" "the wrong passphrase does not open ca.key"
t_run timeout 10 "$WEFT_CONTROLLER_BIN" run --dir "$D"
assert_rc 1 "run without the passphrase refuses to start"
assert_match "passphrase" "$T_ERR" "and says the passphrase is needed"
printf 'wrong\n' >"$T_TMP/wrong"
t_run timeout 10 "$WEFT_CONTROLLER_BIN" run --dir "$D" --ca-passphrase-file "$T_TMP/wrong"
assert_rc 1 "run with a wrong passphrase refuses to start"
assert_match "wrong passphrase" "$T_ERR" "and says the passphrase is wrong"

CTL_PORT[$D]=$port
export WEFT_CA_PASSPHRASE_FILE="$T_TMP/pass"
ctl_start "$D"
ctl_use "$D"

weft identity create dev1 --out "$T_TMP/dev1.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/dev1.jwt" --out "$T_TMP/dev1.json"
assert_rc 0 "enrolment signs with the decrypted CA key"
idfile_split "$T_TMP/dev1.json" "$T_TMP/old"
t_run openssl x509 -in "$T_TMP/old/cert.pem" -noout -checkend 7300
assert_ne 0 "$T_RC" "--cert-ttl 2h: the certificate lives about two hours"

# ---- renewal
t_run "$WEFT_EDGE" renew --identity "$T_TMP/dev1.json"
assert_rc 0 "weft-edge renew with most of the life left"
assert_match "not due" "$T_OUT" "it is not due yet"
t_run "$WEFT_EDGE" renew --identity "$T_TMP/dev1.json" --force
assert_rc 0 "weft-edge renew --force"
assert_match "^renewed" "$T_OUT" "it says renewed"
idfile_split "$T_TMP/dev1.json" "$T_TMP/new"
uri() { openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | grep -o 'URI:[^,]*'; }
assert_eq "$(uri "$T_TMP/old/cert.pem")" "$(uri "$T_TMP/new/cert.pem")" "the renewed certificate has the same identity URI"
pub() { openssl pkey -in "$1" -pubout 2>/dev/null; }
assert_ne "$(pub "$T_TMP/old/key.pem")" "$(pub "$T_TMP/new/key.pem")" "the renewed certificate is for a new key"
assert_eq 600 "$(stat -c %a "$T_TMP/dev1.json")" "the rewritten identity file is 0600"
t_run openssl verify -CAfile "$D/ca.pem" -untrusted "$T_TMP/new/cert.pem" "$T_TMP/new/cert.pem"
assert_rc 0 "the renewed certificate verifies against the network CA"
api_as "$T_TMP/new" GET /v1/edge/session
assert_status 200 "the renewed certificate works"
api_as "$T_TMP/old" GET /v1/edge/session
assert_status 200 "the old certificate still works until it expires (no session is cut)"
weft --json identity show dev1
assert_eq "$(openssl x509 -in "$T_TMP/new/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)" \
    "$(jget "$T_OUT" .data.cert_fingerprint)" "the store records the new certificate's fingerprint"
grep -q "event=renewed kind=identity" "$T_TMP/logs/ctl-life.log"
assert_eq 0 $? "the controller logs the renewal"

weft identity disable dev1
t_run "$WEFT_EDGE" renew --identity "$T_TMP/dev1.json" --force
assert_rc 1 "a disabled (revoked) identity cannot renew"
assert_match "disabled" "$T_ERR" "the refusal says disabled"
weft identity enable dev1

# ---- an expired certificate for dev1, signed by the network CA
id=$(jget "$(cat "$T_TMP/dev1.json")" .id)
mkdir -p "$T_TMP/ca" && : >"$T_TMP/ca/index.txt"
cat >"$T_TMP/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
database = $T_TMP/ca/index.txt
new_certs_dir = $T_TMP/ca
serial = $T_TMP/ca/serial
default_md = sha256
policy = p
x509_extensions = x
unique_subject = no
[ p ]
commonName = supplied
[ x ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://life/identity/$id
CNF
echo 01 >"$T_TMP/ca/serial"
openssl req -new -key "$T_TMP/new/key.pem" -subj /CN=dev1 -out "$T_TMP/exp.csr" 2>/dev/null
openssl ca -batch -config "$T_TMP/ca.cnf" -cert "$D/ca.pem" -keyfile "$D/ca.key" \
    -passin file:"$T_TMP/pass" -startdate 20200101000000Z -enddate 20200102000000Z \
    -in "$T_TMP/exp.csr" -out "$T_TMP/exp.pem" >/dev/null 2>&1
assert_cond "made an expired certificate for dev1" test -s "$T_TMP/exp.pem"
python3 - "$T_TMP/dev1.json" "$T_TMP/exp.pem" "$T_TMP/expired.json" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
d["cert"] = open(sys.argv[2]).read()
with open(os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as o:
    json.dump(d, o)
PY
t_run "$WEFT_EDGE" credentials --identity "$T_TMP/expired.json" --dir "$T_TMP/x"
assert_rc 1 "an expired certificate is refused"
assert_match "your certificate expired on 2020-01-02T00:00:00Z" "$T_ERR" "the message says it expired, and when"
assert_match "re-enrol" "$T_ERR" "the message says what to do"
t_run "$WEFT_EDGE" renew --identity "$T_TMP/expired.json" --force
assert_rc 1 "an expired certificate cannot be renewed"
assert_match "expired on 2020-01-02" "$T_ERR" "renewal with an expired certificate says so"
