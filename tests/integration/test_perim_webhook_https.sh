#!/usr/bin/env bash
# HTTPS webhooks (docs/policies.md "Events"). The controller verifies an
# https:// target with the webhook's own CA (weft webhook create --ca) when it
# has one, else with the system trust store, here a test CA given through
# SSL_CERT_FILE; TLS 1.3, or 1.2 for webhook targets. Four receivers
# (python3 http.server + ssl) on loopback:
#   soc    the SSL_CERT_FILE CA's certificate, TLS 1.2 only: gets the alert
#   siem   a private CA's, the webhook created with --ca: gets the alert
#   rogue  another private CA's, no --ca: retried, the log and `weft events`
#          say to give the webhook its CA; given it (weft webhook update
#          --ca), the next alert arrives
#   mixup  the SSL_CERT_FILE CA's, but the webhook's --ca is another CA: the
#          webhook's CA replaces the system trust store, so nothing arrives
# A CA that is not certificates is refused (the CLI, and the API with 400).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"
command -v openssl >/dev/null || t_bail "openssl command not found"

# ca_and_leaf DIR: a CA and a server certificate for 127.0.0.1 in DIR.
ca_and_leaf() {
    mkdir -p "$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=test webhook CA" -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$1/srv.key" -out "$1/srv.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\n' >"$1/ext" &&
    openssl x509 -req -in "$1/srv.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial \
        -days 2 -extfile "$1/ext" -out "$1/srv.pem" 2>/dev/null
}
ca_and_leaf "$T_TMP/good" || t_bail "cannot make the test CA"
ca_and_leaf "$T_TMP/priv" || t_bail "cannot make the private CA"
ca_and_leaf "$T_TMP/other" || t_bail "cannot make the other CA"
export SSL_CERT_FILE="$T_TMP/good/ca.pem" # the controller's system trust store

dp_fabric hooks
ECHO=$(dp_port); ECHO_I=$(dp_port)
SOC=$(dp_port); SIEM=$(dp_port); ROGUE=$(dp_port); MIXUP=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'

# hook.py PORT LOG CERTDIR [1.2]: appends each POST body to LOG and the TLS
# version it came over to LOG.tls; "1.2" caps the server at TLS 1.2.
cat >"$T_TMP/hook.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        with open(sys.argv[2], "ab") as f:
            f.write(self.rfile.read(n) + b"\n")
        with open(sys.argv[2] + ".tls", "a") as f:
            f.write(self.connection.version() + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3] + "/srv.pem", sys.argv[3] + "/srv.key")
if len(sys.argv) > 4 and sys.argv[4] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
bg soc python3 "$T_TMP/hook.py" "$SOC" "$T_TMP/soc.log" "$T_TMP/good" 1.2
bg siem python3 "$T_TMP/hook.py" "$SIEM" "$T_TMP/siem.log" "$T_TMP/priv"
bg rogue python3 "$T_TMP/hook.py" "$ROGUE" "$T_TMP/rogue.log" "$T_TMP/other"
bg mixup python3 "$T_TMP/hook.py" "$MIXUP" "$T_TMP/mixup.log" "$T_TMP/good"
for p in "$SOC" "$SIEM" "$ROGUE" "$MIXUP"; do
    dp_wait_port "$p" 10 || t_bail "webhook receiver on $p not listening"
done

weft webhook create soc --url "https://127.0.0.1:$SOC/alerts"
assert_rc 0 "weft webhook create with an https:// URL (the system trust store)"
weft webhook create siem --url "https://127.0.0.1:$SIEM/alerts" --ca "$T_TMP/priv/ca.pem"
assert_rc 0 "weft webhook create --ca: a private CA"
assert_match "verified with its own CA" "$T_OUT" "the CLI says which CA verifies it"
weft webhook create rogue --url "https://127.0.0.1:$ROGUE/alerts"
assert_rc 0 "a target whose CA the system does not trust, and no --ca"
weft webhook create mixup --url "https://127.0.0.1:$MIXUP/alerts" --ca "$T_TMP/priv/ca.pem"
assert_rc 0 "a target the system trusts, given another CA with --ca"
# trusts: each webhook's "trust", in name order (mixup rogue siem soc).
trusts() {
    weft webhook list --json
    printf '%s' "$T_OUT" | python3 -c 'import json, sys
print(" ".join(h["trust"] for h in json.load(sys.stdin)["data"]))'
}
assert_eq "ca system ca system" "$(trusts)" \
    "weft webhook list: trust per webhook (mixup, rogue, siem, soc)"

# What is not a CA bundle is refused: by the CLI, and by the API with a reason.
weft webhook create keyed --url "https://127.0.0.1:$SIEM/x" --ca "$T_TMP/priv/ca.key"
assert_rc 2 "--ca with a private key is a usage error"
assert_match "PEM block 1 is a private key" "$T_ERR" "the CLI names what is wrong"
api POST /v1/webhooks '{"name":"junk","url":"https://127.0.0.1:1/x","ca":"hello"}'
assert_status 400 "POST /v1/webhooks with a ca that is no certificate"
assert_match "no certificate in it" "$T_BODY" "the 400 says why"
api POST /v1/webhooks "$(python3 -c 'import json,sys
print(json.dumps({"name": "plain", "url": "http://127.0.0.1:1/x", "ca": open(sys.argv[1]).read()}))' \
    "$T_TMP/priv/ca.pem")"
assert_status 400 "a ca on an http:// URL"
weft webhook create bad --url "ftp://127.0.0.1/x"
assert_rc 2 "an ftp:// URL is a usage error"

weft policy create one-a-minute --type behaviour --identities '#devices' --conn-rate 1/min \
    --action block,log,alert
assert_rc 0 "a behaviour policy: one dial a minute, block, log, alert"
bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30
TOK=$(dp_token dev1 web dial)
dp_probe dev1 --dial web --token "$TOK"
assert_rc 0 "the first dial is answered"
dp_probe dev1 --dial web --token "$TOK"
assert_rc 1 "the second dial in a minute is refused"

CTL_LOG="$T_TMP/logs/ctl-hooks.log"
assert_cond "the alert reached the TLS 1.2-only target (SSL_CERT_FILE's CA)" \
    dp_wait_log "$T_TMP/soc.log" '"kind":"rate"' 15
assert_eq "TLSv1.2" "$(head -1 "$T_TMP/soc.log.tls" 2>/dev/null)" "over TLS 1.2"
assert_cond "the alert reached the target with the private CA (--ca)" \
    dp_wait_log "$T_TMP/siem.log" '"kind":"rate"' 15
assert_eq "TLSv1.3" "$(head -1 "$T_TMP/siem.log.tls" 2>/dev/null)" "over TLS 1.3"
assert_cond "the controller logged the delivery" dp_wait_log "$CTL_LOG" \
    "event=webhook_delivered name=\"?siem\"? url=\"?https://127.0.0.1:$SIEM/alerts" 5
assert_cond "the delivery without the CA is retried, saying to give the webhook its CA" \
    dp_wait_log "$CTL_LOG" "event=webhook_retry name=\"?rogue\"? .*the webhook target's certificate is not trusted \(.*\): give the webhook its CA: weft webhook update rogue --ca FILE" 15
assert_no_match "network CA" "$(grep 'event=webhook_retry' "$CTL_LOG")" \
    "no retry line speaks of the network CA"
assert_cond "the delivery with the wrong --ca is retried, saying so" \
    dp_wait_log "$CTL_LOG" "event=webhook_retry name=\"?mixup\"? .*does not chain to the webhook's own CA" 15

# Given up after every retry (0.5 s doubling: about 16 s): an event says why.
# events_wait NAME TEXT SECONDS: `weft events` has a "webhook" event for NAME
# whose line holds TEXT.
events_wait() {
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        weft events --json
        printf '%s' "$T_OUT" | grep -F '"kind":"webhook"' | grep -F "\"webhook\":\"$1\"" |
            grep -qF "$2" && return 0
        sleep 0.5
    done
    return 1
}
assert_cond "weft events: the alert to rogue was given up, with what to do" \
    events_wait rogue "the webhook target's certificate is not trusted (" 40
assert_match "alert 1 to webhook rogue given up after 6 tries: TLS with .*give the webhook its CA: weft webhook update rogue --ca FILE" \
    "$(printf '%s' "$T_OUT" | grep -F '"webhook":"rogue"')" "the event's msg is the sentence"
assert_cond "the controller logged webhook_failed for rogue" dp_wait_log "$CTL_LOG" \
    "event=webhook_failed name=\"?rogue\"?" 5
assert_eq "" "$(cat "$T_TMP/rogue.log" 2>/dev/null)" "the untrusted target received nothing"
assert_eq "" "$(cat "$T_TMP/mixup.log" 2>/dev/null)" \
    "the webhook's CA replaced the system trust store: mixup received nothing"

# The fix the sentence gives: the webhook gets its CA, the next alert arrives.
weft webhook update rogue --ca "$T_TMP/other/ca.pem"
assert_rc 0 "weft webhook update rogue --ca"
dp_probe dev1 --dial web --token "$TOK"
assert_rc 1 "a third dial in the minute is refused: another alert"
assert_cond "the next alert reached rogue, verified with its CA" \
    dp_wait_log "$T_TMP/rogue.log" '"kind":"rate"' 15
weft webhook update rogue --no-ca
assert_rc 0 "weft webhook update --no-ca"
assert_eq "ca system ca system" "$(trusts)" "rogue is back on the system trust store"
dp_router_alive "the router survived"
