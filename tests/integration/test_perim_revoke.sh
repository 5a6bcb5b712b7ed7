#!/usr/bin/env bash
# Taking rights away reaches live circuits (docs/policies.md "Revocation",
# docs/dataplane.md "Withdrawn grants"): deleting an identity with a live
# circuit closes it within 1 s and keeps the identity out (its certificate is
# still valid); deleting the dial policy closes another identity's live
# circuit within 1 s and its unexpired token is refused; a policy granted
# again works with a fresh token. Changing an identity's roles, then a
# service's, so that a right is lost closes the live circuit within 1 s too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric perimrev
ECHO=$(dp_port); ECHO_I=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_enrol dev2 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'
bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30

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

# hold_circuit NAME: dp_edge NAME, then a connection through its intercept.
hold_circuit() {
    rm -f "$T_TMP/held-$1" "$T_TMP/ended-$1"
    dp_edge "$1"
    EDGE_PID=$BG_PID
    assert_cond "$1's edge intercepts web" dp_wait_log "$T_TMP/logs/edge-$1.log" \
        "event=edge_intercepting service=web " 30
    bg "holder-$1" python3 "$T_TMP/holder.py" "$ECHO_I" "$T_TMP/held-$1" "$T_TMP/ended-$1"
    assert_cond "a connection through $1's intercept is up" dp_wait_log "$T_TMP/held-$1" . 15
}

# closed_within NAME T0 WHAT: the held connection of NAME ended within 1 s of T0.
closed_within() {
    local t_end how secs
    dp_wait_log "$T_TMP/ended-$1" . 10
    read -r t_end how <"$T_TMP/ended-$1" 2>/dev/null
    secs=$(python3 -c "print(round(${t_end:-1e12} - $2, 3))")
    echo "measured: $3: live circuit of $1 closed in ${secs} s" >&2
    assert_cond "$1's live circuit closed ($how) ${secs} s after $3 (limit 1 s)" \
        python3 -c "import sys; sys.exit(0 if 0 <= $secs < 1.0 else 1)"
    assert_ne timeout "${how:-timeout}" "the held connection saw its end, not a timeout"
}

# ---- deleting an identity revokes it
TOK1=$(dp_token dev1 web dial)
hold_circuit dev1
t0=$(date +%s.%N)
weft identity delete dev1
assert_rc 0 "identity dev1 deleted"
closed_within dev1 "$t0" "weft identity delete"
stop_pid "$EDGE_PID"
dp_probe dev1 --dial web --token "$TOK1" --timeout 5000
assert_ne 0 "$T_RC" "deleted dev1's certificate and unexpired token are refused"
t_diag "deleted dev1 probe: $(echo $T_OUT)"

# ---- removing a dial policy withdraws the right from live circuits
hold_circuit dev2
TOK2=$(dp_token dev2 web dial)
t0=$(date +%s.%N)
weft policy delete web-dial
assert_rc 0 "policy web-dial deleted"
closed_within dev2 "$t0" "weft policy delete"
dp_probe dev2 --dial web --token "$TOK2" --timeout 5000
assert_rc 1 "dev2's unexpired token is refused after the policy went"
assert_match 'EDENIED.*withdrew' "$T_OUT" "the refusal says a policy change withdrew the right"
stop_pid "$EDGE_PID"

# ---- granted again: a fresh token dials (tokens of the withdrawal's second stay refused)
sleep 1.1
dp_policy web-dial2 dial '#devices' '#web'
dp_probe dev2 --dial web --token "$(dp_token dev2 web dial)" --timeout 5000
assert_rc 0 "a fresh token dials again once a policy grants web again"

# ---- an identity's roles changed: the right it had through #devices is withdrawn
dp_enrol dev3 devices
hold_circuit dev3
TOK3=$(dp_token dev3 web dial)
t0=$(date +%s.%N)
weft identity update dev3 --role other
assert_rc 0 "dev3's roles replaced by 'other'"
closed_within dev3 "$t0" "weft identity update --role"
dp_probe dev3 --dial web --token "$TOK3" --timeout 5000
assert_rc 1 "dev3's unexpired token is refused after its roles changed"
assert_match 'EDENIED.*withdrew' "$T_OUT" "the refusal says a change withdrew the right"
stop_pid "$EDGE_PID"

# ---- a service's roles changed: dialling and hosting rights through #web are withdrawn
hold_circuit dev2
t0=$(date +%s.%N)
weft service update web --role elsewhere
assert_rc 0 "web's roles replaced by 'elsewhere'"
closed_within dev2 "$t0" "weft service update --role"
stop_pid "$EDGE_PID"
dp_router_alive "router still running"
