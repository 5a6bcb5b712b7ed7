#!/usr/bin/env bash
# HTTPS webhooks (docs/policies.md "Events"): the controller verifies an
# https:// target with the system trust store; here a test CA given through
# SSL_CERT_FILE. An alert reaches a target whose certificate that CA issued
# for 127.0.0.1; a target with a certificate of another CA gets nothing (the
# delivery is retried, then abandoned).
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
ca_and_leaf "$T_TMP/other" || t_bail "cannot make the other CA"
export SSL_CERT_FILE="$T_TMP/good/ca.pem" # the controller's system trust store

dp_fabric hooks
ECHO=$(dp_port); ECHO_I=$(dp_port); HOOK=$(dp_port); BAD=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'

cat >"$T_TMP/hook.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        with open(sys.argv[2], "ab") as f:
            f.write(self.rfile.read(n) + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3] + "/srv.pem", sys.argv[3] + "/srv.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
bg hook python3 "$T_TMP/hook.py" "$HOOK" "$T_TMP/hook.log" "$T_TMP/good"
bg badhook python3 "$T_TMP/hook.py" "$BAD" "$T_TMP/bad.log" "$T_TMP/other"
dp_wait_port "$HOOK" 10 || t_bail "webhook target not listening"
dp_wait_port "$BAD" 10 || t_bail "untrusted webhook target not listening"
weft webhook create soc --url "https://127.0.0.1:$HOOK/alerts"
assert_rc 0 "weft webhook create with an https:// URL"
weft webhook create rogue --url "https://127.0.0.1:$BAD/alerts"
assert_rc 0 "a second https target, its certificate from a CA the system does not trust"
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
assert_cond "the alert reached the https target (verified with SSL_CERT_FILE's CA)" \
    dp_wait_log "$T_TMP/hook.log" '"kind":"rate"' 15
assert_cond "the controller logged the delivery" dp_wait_log "$T_TMP/logs/ctl-hooks.log" \
    "event=webhook_delivered url=\"?https://127.0.0.1:$HOOK/alerts" 5
assert_cond "the delivery to the untrusted target failed and is retried" \
    dp_wait_log "$T_TMP/logs/ctl-hooks.log" "event=webhook_retry url=\"?https://127.0.0.1:$BAD/" 15
assert_eq "" "$(cat "$T_TMP/bad.log" 2>/dev/null)" "the untrusted target received nothing"
dp_router_alive "the router survived"
