#!/usr/bin/env bash
# What the data plane refuses: an identity with no dial policy gets no
# intercept; a token for another service, another identity or another action,
# a tampered token and an expired one are refused by the router on a raw edge
# session (tests/tools/dp_edgeprobe); random bytes and junk frames after the
# TLS handshake close only that session; a disabled identity loses its live
# circuit within about a second and cannot come back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

# Service tokens live 60 s (the shortest the controller allows), so that one
# can be seen to expire within the test.
dp_fabric dprefuse 60
ECHO=$(dp_port); ECHO_I=$(dp_port); ECHO2=$(dp_port); ECHO2_I=$(dp_port)

dp_enrol host1 hosts
dp_enrol dev1 devices
dp_enrol dev2 devices
dp_enrol guest1 guests
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_service other other "tcp:127.0.0.1:$ECHO2_I" "tcp:127.0.0.1:$ECHO2"
dp_policy web-dial dial '#devices' '#web'
dp_policy all-bind bind '#hosts' '#web,#other'

bg echo "$DP_BLAST" echo "$ECHO"
bg echo2 "$DP_BLAST" echo "$ECHO2"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30
assert_cond "hosting edge bound other" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=other( |$)" 30

# ---- no dial policy: no service, no intercept
dp_session guest1
assert_status 200 "guest1 (no policy) reads its session data"
assert_eq 0 "$(jlen "$T_BODY" .data.services)" "guest1's session data lists no service"
dp_edge guest1
GUEST_PID=$BG_PID
assert_cond "guest1's edge read its session data" dp_wait_log "$T_TMP/logs/edge-guest1.log" \
    "event=edge_session_data services=0" 30
sleep 1
assert_cond "guest1's edge does not listen on web's intercept" dp_wait_port "$ECHO_I" 1 absent
assert_no_match "event=edge_intercepting" "$(cat "$T_TMP/logs/edge-guest1.log")" \
    "guest1's edge intercepts nothing"
stop_pid "$GUEST_PID"

# ---- tokens on a raw edge session
TOK=$(dp_token dev1 web dial)
assert_match '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$TOK" "dev1 has a dial token for web"
TOK_EXP=$(dp_jwt_claim "$TOK" exp)
HOST_BIND=$(dp_token host1 web bind)
assert_match '\.' "$HOST_BIND" "host1 has a bind token for web"

dp_probe dev1 --dial web --token "$TOK"
assert_rc 0 "dev1's own token dials web (control case)"
assert_match '^hello_ok.*dial_ok circuit=[0-9a-f]{16}' "$(echo $T_OUT)" "the router answers DIAL_OK"

dp_probe dev1 --dial other --token "$TOK"
assert_rc 1 "web's token is refused for service other"
assert_match 'edge_error err=E[A-Z]+ msg=".+"' "$T_OUT" "the refusal names an error and says why"
t_diag "other service: $(echo $T_OUT)"

dp_probe guest1 --dial web --token "$TOK"
assert_rc 1 "dev1's token is refused on guest1's session"
assert_match 'edge_error err=E[A-Z]+ msg=".*(identity|sub|session|certificate).*"' "$T_OUT" \
    "the refusal says the token belongs to another identity"
t_diag "other identity: $(echo $T_OUT)"

dp_probe host1 --dial web --token "$HOST_BIND"
assert_rc 1 "a bind token is refused for a dial"
t_diag "bind token for a dial: $(echo $T_OUT)"

BAD="${TOK%?}$( [ "${TOK: -1}" == A ] && echo B || echo A )"
dp_probe dev1 --dial web --token "$BAD"
assert_rc 1 "a token with a changed signature is refused"
t_diag "tampered: $(echo $T_OUT)"

# ---- garbage after the handshake closes that session only
dp_probe dev1 --garbage-first 4096
assert_match '^(closed|edge_error)' "$T_OUT" "random bytes instead of the hello: session refused"
dp_probe dev1 --garbage 65536
assert_match 'hello_ok.*(closed|edge_error)' "$(echo $T_OUT)" "random bytes after the hello: session closed"
t_diag "garbage: $(echo $T_OUT)"
junk_ok=1
for ((i = 0; i < 20; i++)); do
    dp_probe dev1 --junk-frames 40 --timeout 3000
    printf '%s' "$T_OUT" | grep -Eq '^hello_ok' || junk_ok=0
    alive "$DP_ROUTER_PID" || { junk_ok=0; break; }
done
assert_eq 1 "$junk_ok" "20 sessions of junk frames: each got its hello answered, the router lived"
head -c 1048576 /dev/urandom >"$T_TMP/noise"
timeout 5 bash -c "cat '$T_TMP/noise' >/dev/tcp/127.0.0.1/${DP_EDGE_LISTEN##*:}" 2>/dev/null
dp_router_alive "router survives garbage, junk frames and a non-TLS byte stream"

# 1000 connections that never start TLS must not keep anyone else out.
cat >"$T_TMP/idle.py" <<'EOF'
import socket, sys, time
socks = []
for _ in range(1000):
    socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5))
open(sys.argv[2], "w").write("1")
time.sleep(30)
EOF
bg idle-tcp python3 "$T_TMP/idle.py" "${DP_EDGE_LISTEN##*:}" "$T_TMP/idle.up"
IDLE_PID=$BG_PID
assert_cond "1000 raw TCP connections to the router's edge port are open" \
    dp_wait_log "$T_TMP/idle.up" . 20
dp_probe dev1 --dial web --token "$TOK" --timeout 5000
assert_rc 0 "a dial succeeds beside 1000 connections that never start TLS"
stop_pid "$IDLE_PID"

dp_probe dev1 --dial web --token "$TOK"
assert_rc 0 "after all that, a normal dial still succeeds"
dp_edge dev1
DEV1_PID=$BG_PID
assert_cond "dev1's edge intercepts web" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
    "event=edge_intercepting service=web " 30
T_CMD_TIMEOUT=30 t_run "$DP_BLAST" rtt "127.0.0.1:$ECHO_I" --count 50 --max-seconds 20
assert_rc 0 "and real traffic flows through the intercept (50 echoes)"
stop_pid "$DEV1_PID"
dp_wait_port "$ECHO_I" 10 absent

# ---- disabling an identity ends its live circuit and keeps it out
dp_edge dev2
assert_cond "dev2's edge intercepts web" dp_wait_log "$T_TMP/logs/edge-dev2.log" \
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
assert_cond "a connection through dev2's intercept is up" dp_wait_log "$T_TMP/held" . 15
t_off=$(date +%s.%N) # before the CLI call: the circuit may close before it returns
weft identity disable dev2
assert_rc 0 "identity dev2 disabled"
dp_wait_log "$T_TMP/ended" . 10
read -r t_end how <"$T_TMP/ended" 2>/dev/null
secs=$(python3 -c "print(round(${t_end:-1e12} - $t_off, 3))")
assert_cond "dev2's live circuit closed ($how) ${secs} s after the disable command started (limit 1.5 s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $secs < 1.5 else 1)"
assert_ne timeout "${how:-timeout}" "the held connection saw its end, not a timeout"
got=$(timeout 15 python3 - "$ECHO_I" <<'EOF'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"y")
    s.settimeout(12)
    print("echo" if s.recv(1) == b"y" else "closed")
except Exception as e:
    print("refused:", type(e).__name__)
EOF
)
assert_ne echo "$got" "a new connection from disabled dev2 gets no answer ($got)"
dp_probe dev2 --timeout 5000
assert_ne 0 "$T_RC" "a raw edge session of disabled dev2 is refused"
t_diag "disabled dev2 probe: $(echo $T_OUT)"
dp_session dev2
assert_status 403 "disabled dev2 gets no session data"
assert_cond "dev2's edge logs that it is refused as disabled" dp_wait_log \
    "$T_TMP/logs/edge-dev2.log" "level=(warn|error).*(EDISABLED|disabled)" 15
t_diag "dev2's edge: $(grep -E 'level=(warn|error).*(EDISABLED|disabled)' "$T_TMP/logs/edge-dev2.log" | head -2)"

# ---- an expired token
left=$((TOK_EXP + 1 - $(date +%s)))
t_diag "waiting ${left} s for dev1's first token to expire"
[ "$left" -gt 0 ] && [ "$left" -le 70 ] && sleep "$left"
dp_probe dev1 --dial web --token "$TOK"
assert_rc 1 "an expired token is refused"
assert_match 'edge_error err=ETOKENEXPIRED msg=".*expire' "$T_OUT" "the refusal says the token expired"
TOK2=$(dp_token dev1 web dial)
dp_probe dev1 --dial web --token "$TOK2"
assert_rc 0 "a fresh token from the controller dials again"
dp_router_alive "router still running"
