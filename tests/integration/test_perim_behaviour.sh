#!/usr/bin/env bash
# Micro-perimeters (docs/policies.md): behaviour policies carried in service
# tokens and enforced by the router on raw edge sessions (tests/tools/
# dp_edgeprobe): a connection rate (block, log, alert to a webhook), a time
# window, a dial of a service the identity is not entitled to (remove:
# quarantine, its sessions refused); device binding in exact, iccid and imei
# modes, with a SIM moved into another device, and rebind; events in
# weft events and events.jsonl.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric perim
ECHO=$(dp_port); ECHO_I=$(dp_port); ECHO2=$(dp_port); ECHO2_I=$(dp_port); HOOK=$(dp_port)

dp_enrol host1 hosts
dp_enrol dev1 devices
dp_enrol bot1 bots
dp_enrol night1 night
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_service other other "tcp:127.0.0.1:$ECHO2_I" "tcp:127.0.0.1:$ECHO2"
dp_enrol flood1 flood
dp_policy web-dial dial '#devices,#bots,#night,#bound,#flood' '#web'
dp_policy all-bind bind '#hosts' '#web,#other'

# A webhook target on loopback that records every POST body.
cat >"$T_TMP/hook.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        with open(sys.argv[2], "ab") as f:
            f.write(self.rfile.read(n) + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
bg hook python3 "$T_TMP/hook.py" "$HOOK" "$T_TMP/hook.log"
dp_wait_port "$HOOK" 10 || t_bail "webhook target not listening"
weft webhook create soc --url "http://127.0.0.1:$HOOK/alerts"
assert_rc 0 "weft webhook create"

bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30

# ---- policy model: the CLI's flags reach the store
weft policy create dev-limits --type behaviour --identities '#devices' --services '#web' \
    --time 00:00-23:59@Europe/Paris --conn-rate 3/min --bandwidth 1MB/s --quota 100MB/day \
    --max-circuits 4 --action block,log,alert
assert_rc 0 "weft policy create --type behaviour with every limit"
weft policy show dev-limits --json
assert_eq 3 "$(jget "$T_OUT" .data.conn_rate)" "conn-rate 3/min stored as 3"
assert_eq 1000000 "$(jget "$T_OUT" .data.bandwidth)" "bandwidth 1MB/s stored as bytes/s"
assert_eq 100000000 "$(jget "$T_OUT" .data.quota)" "quota 100MB/day stored as bytes"
weft policy create bad --type behaviour --identities '#devices' --conn-rate lots --action block
assert_rc 2 "a malformed --conn-rate is a usage error"
weft policy create bad --type behaviour --identities '#devices' --time 08:00-18:00@Nowhere/City \
    --action block
assert_rc 1 "an unknown time zone is refused by the controller"

# ---- the token carries the limits; the router enforces the rate
TOK=$(dp_token dev1 web dial)
LIM=$(dp_jwt_claim "$TOK" lim)
assert_match "'rate': 3" "$LIM" "dev1's dial token carries lim.rate ($LIM)"
ok=0
for i in 1 2 3; do
    dp_probe dev1 --dial web --token "$TOK"
    [ "$T_RC" == 0 ] && ok=$((ok + 1))
done
assert_eq 3 "$ok" "three dials within the rate are answered"
dp_probe dev1 --dial web --token "$TOK"
assert_rc 1 "the fourth dial in a minute is refused"
assert_match "conn_rate" "$T_OUT" "the refusal names the conn_rate policy"
assert_cond "the rate violation reached the webhook" dp_wait_log "$T_TMP/hook.log" \
    '"kind":"rate"' 10
weft events --json
assert_match '"kind":"rate"' "$T_OUT" "weft events lists the rate violation"
assert_cond "events.jsonl holds it too" grep -q '"kind":"rate"' "$DP_DIR/events.jsonl"

# ---- a time window that excludes now
h=$(( (10#$(date -u +%H) + 3) % 24 )) # 10#: "08" and "09" are not octal
weft policy create night-only --type behaviour --identities '#night' \
    --time "$(printf '%02d:00-%02d:30' "$h" "$h")@UTC" --action block,log
assert_rc 0 "a behaviour policy with a window three hours away"
dp_probe night1 --dial web --token "$(dp_token night1 web dial)"
assert_rc 1 "a dial outside the window is refused"
assert_match "allowed hours" "$T_OUT" "the refusal says why"

# ---- destination restriction and quarantine (remove)
weft policy create bots --type behaviour --identities '#bots' --action log,alert,remove
assert_rc 0 "a behaviour policy that quarantines"
dp_probe bot1 --dial web --token "$(dp_token bot1 web dial)"
assert_rc 0 "bot1 may dial web"
dp_probe bot1 --dial other --token "$(dp_token bot1 web dial)"
assert_rc 1 "bot1's dial of other (not entitled) is refused"
assert_cond "bot1 is quarantined (disabled)" bash -c \
    "for i in \$(seq 50); do '$WEFT' identity show bot1 --json 2>/dev/null | grep -q '\"disabled\": *true' && exit 0; sleep 0.1; done; exit 1"
weft events --json
assert_match '"kind":"destination"' "$T_OUT" "a destination event"
assert_match '"kind":"quarantine"' "$T_OUT" "a quarantine event"
sleep 0.5
dp_probe bot1 --timeout 3000
assert_ne 0 "$T_RC" "quarantined bot1's new session is refused"
weft identity enable bot1
assert_rc 0 "an admin re-enables bot1"

# ---- quarantine closes a live circuit: time from the violating dial to its end
weft policy create floods --type behaviour --identities '#flood' --conn-rate 2/min \
    --action block,log,remove
assert_rc 0 "a rate policy that quarantines"
dp_edge flood1
FLOOD_PID=$BG_PID
assert_cond "flood1's edge intercepts web" dp_wait_log "$T_TMP/logs/edge-flood1.log" \
    "event=edge_intercepting service=web " 30
cat >"$T_TMP/holder.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"x")
assert s.recv(1) == b"x"
open(sys.argv[2], "w").write("1")
s.settimeout(20)
try:
    while s.recv(4096):
        pass
    how = "eof"
except socket.timeout:
    how = "timeout"
except OSError:
    how = "reset"
open(sys.argv[3], "w").write("%.3f %s" % (time.time(), how))
EOF
bg holder python3 "$T_TMP/holder.py" "$ECHO_I" "$T_TMP/held" "$T_TMP/ended"
assert_cond "a connection through flood1's intercept is up (circuit 1 of 2 a minute)" \
    dp_wait_log "$T_TMP/held" . 15
FTOK=$(dp_token flood1 web dial)
dp_probe flood1 --dial web --token "$FTOK"
assert_rc 0 "flood1's second dial is within the rate"
t_off=$(date +%s.%N)
dp_probe flood1 --dial web --token "$FTOK"
assert_rc 1 "flood1's third dial in a minute is refused"
dp_wait_log "$T_TMP/ended" . 10
read -r t_end how <"$T_TMP/ended" 2>/dev/null
secs=$(python3 -c "print(round(${t_end:-1e12} - $t_off, 3))")
t_diag "quarantine: live circuit closed ($how) ${secs} s after the violating dial started"
assert_cond "the live circuit closed within 1 s of the violation (${secs} s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $secs < 1.0 else 1)"
stop_pid "$FLOOD_PID"

# ---- device binding
bind_id() { # NAME MODE [enrol args...]
    local n=$1 m=$2; shift 2
    weft identity create "$n" --role bound --binding "$m" --out "$T_TMP/$n.jwt"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$n.jwt" --out "$T_TMP/$n.json" "$@"
    [ "$T_RC" == 0 ] || t_bail "enrol $n failed: $T_ERR"
}
bind_id ex1 exact --imei 111 --iccid AAA
TOK=$(dp_token ex1 web dial)
dp_probe ex1 --imei 111 --iccid AAA --dial web --token "$TOK"
assert_rc 0 "exact: the bound pair is admitted"
dp_probe ex1 --imei 999 --iccid AAA --dial web --token "$TOK"
assert_rc 1 "exact: the SIM in another device (IMEI changed) is refused"
assert_match "device binding" "$T_OUT" "the refusal names the binding"
dp_probe ex1 --imei 111 --iccid XXX --dial web --token "$TOK"
assert_rc 1 "exact: another SIM in the bound device is refused"
weft identity rebind ex1
assert_rc 0 "weft identity rebind"
dp_probe ex1 --imei 999 --iccid AAA --dial web --token "$(dp_token ex1 web dial)"
assert_rc 0 "after rebind the new device is admitted (first use)"
assert_cond "exact: the new pair is recorded at first use" bash -c \
    "for i in \$(seq 50); do '$WEFT' identity show ex1 2>/dev/null | grep -q 'imei: *999' && exit 0; sleep 0.1; done; exit 1"
dp_probe ex1 --imei 111 --iccid AAA --dial web --token "$(dp_token ex1 web dial)"
assert_rc 1 "exact: the old device is now refused"

bind_id ic1 iccid --imei 222 --iccid BBB
TOK=$(dp_token ic1 web dial)
dp_probe ic1 --imei 333 --iccid BBB --dial web --token "$TOK"
assert_rc 0 "iccid: the SIM in another device is admitted (the IMEI change is flagged)"
dp_probe ic1 --imei 222 --iccid CCC --dial web --token "$TOK"
assert_rc 1 "iccid: another SIM is refused"

bind_id im1 imei --imei 444 --iccid DDD
TOK=$(dp_token im1 web dial)
dp_probe im1 --imei 444 --iccid EEE --dial web --token "$TOK"
assert_rc 0 "imei: another SIM in the bound device is admitted (flagged)"
dp_probe im1 --imei 555 --iccid DDD --dial web --token "$TOK"
assert_rc 1 "imei: the SIM moved into another device is refused"

bind_id no1 none --imei 666 --iccid FFF
dp_probe no1 --imei 1 --iccid 2 --dial web --token "$(dp_token no1 web dial)"
assert_rc 0 "none: any hardware ids are admitted"

idfile_split "$T_TMP/ic1.json" "$T_TMP/creds-ic1"
api_as "$T_TMP/creds-ic1" GET "/v1/edge/session?imei=222&iccid=ZZZ"
assert_status 403 "session data: an ICCID mismatch reported to the controller is refused"
weft events --json
assert_match '"kind":"binding"' "$T_OUT" "binding events are listed"

dp_router_alive "the router survived"

