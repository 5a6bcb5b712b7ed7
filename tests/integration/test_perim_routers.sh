#!/usr/bin/env bash
# Router and service-router policies (docs/policies.md "Router policies") on
# two linked routers: an identity restricted to r2 gets only r2 in its session
# data and is refused at r1 (at its first token, which carries its roles); a
# service restricted to r1 is refused at r2; a router policy added while a
# circuit is live closes it within 1 s.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric perimrt
R1_EDGE=$DP_EDGE_LISTEN
weft router update r1 --role east
assert_rc 0 "weft router update r1 --role east"
assert_match "updated router r1" "$T_OUT" "router update says what it did"

# ---- a second router, linked to r1 directly
dp_router r2 west
R2_EDGE=$DP_R_EDGE

ECHO=$(dp_port); ECHO_I=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 fleet
dp_enrol dev2 devices
dp_enrol dev3 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#fleet,#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'
weft policy create fleet-west --type router --identities '#fleet' --routers '#west'
assert_rc 0 "router policy by role created"
weft policy create dev3-west --type router --identities '@dev3' --routers '#west'
assert_rc 0 "router policy by name created"
weft policy create hosts-east --type router --identities '#hosts' --routers '@r1'
assert_rc 0 "router policy by router name created"
weft policy create bad --type router --identities '#fleet'
assert_rc 2 "a router policy needs --routers"
api POST /v1/policies '{"name":"bad","type":"dial","identity_roles":["#a"],"service_roles":["#b"],"router_roles":["#c"]}'
assert_status 400 "router_roles belong to router policies only"

bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30

# ---- session data lists the routers an identity may use
routers_of() {
    dp_session "$1"
    printf '%s' "$T_BODY" | python3 -c '
import json, sys
print(" ".join(sorted(r["name"] for r in json.load(sys.stdin)["data"]["routers"])))'
}
assert_eq "r2" "$(routers_of dev1)" "dev1 (#fleet, restricted to #west) gets only r2"
assert_eq "r2" "$(routers_of dev3)" "dev3 (restricted by name) gets only r2"
assert_eq "r1 r2" "$(routers_of dev2)" "dev2 (no router policy selects it) gets both routers"
TOK1=$(dp_token dev1 web dial)
assert_match "fleet" "$(dp_jwt_claim "$TOK1" roles)" "service tokens carry the identity's roles"

# ---- refused at r1, admitted at r2
t_run "$DP_PROBE" --identity "$T_TMP/dev1.json" --router "$R1_EDGE" --dial web --token "$TOK1" \
    --timeout 5000
assert_ne 0 "$T_RC" "dev1's dial at r1 is refused"
assert_match "may not use router r1 \(router policy\); the edge will use another router" \
    "$T_OUT" "the refusal says which policy"
dial_r2() { # dial_r2 NAME TOKEN: a dial through r2 answered OK
    t_run "$DP_PROBE" --identity "$T_TMP/$1.json" --router "$R2_EDGE" --dial web --token "$2" \
        --timeout 5000
    [ "$T_RC" == 0 ]
}
for ((i = 0; i < 100; i++)); do dial_r2 dev1 "$TOK1" && break; sleep 0.2; done
assert_rc 0 "dev1 dials web through r2 (carried over the link to r1): $(echo $T_OUT)"
# r1 lets #hosts in, and dev3's roles come with its first token: refused then.
t_run "$DP_PROBE" --identity "$T_TMP/dev3.json" --router "$R1_EDGE" --dial web \
    --token "$(dp_token dev3 web dial)" --timeout 5000
assert_ne 0 "$T_RC" "dev3's session to r1 is refused (router policy by name)"
assert_match "may not use router r1" "$T_OUT" "dev3's refusal says why"
t_run "$DP_PROBE" --identity "$T_TMP/dev3.json" --router "$R2_EDGE" --timeout 5000
assert_rc 0 "dev3's session to r2 is admitted"

# ---- a service restricted to r1 is not carried by r2
TOK2=$(dp_token dev2 web dial)
weft policy create web-east --type service-router --services '#web' --routers '#east'
assert_rc 0 "service-router policy created"
refused_r2() {
    t_run "$DP_PROBE" --identity "$T_TMP/dev2.json" --router "$R2_EDGE" --dial web --token "$TOK2" \
        --timeout 5000
    [ "$T_RC" != 0 ] && [[ "$T_OUT" == *"service-router policy"* ]]
}
assert_cond "web is refused at r2 (service-router policy)" refused_r2
t_diag "r2 refusal: $(echo $T_OUT)"
t_run "$DP_PROBE" --identity "$T_TMP/dev2.json" --router "$R1_EDGE" --dial web --token "$TOK2" \
    --timeout 5000
assert_rc 0 "web is still carried by r1"
weft policy delete web-east
assert_rc 0 "service-router policy deleted"
for ((i = 0; i < 50; i++)); do dial_r2 dev2 "$TOK2" && break; sleep 0.1; done
assert_rc 0 "without the policy r2 carries web again"

# ---- a router policy added under a live circuit closes it
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
dp_edge dev2
assert_cond "dev2's edge intercepts web" dp_wait_log "$T_TMP/logs/edge-dev2.log" \
    "event=edge_intercepting service=web " 30
bg holder python3 "$T_TMP/holder.py" "$ECHO_I" "$T_TMP/held" "$T_TMP/ended"
assert_cond "a connection through dev2's intercept is up" dp_wait_log "$T_TMP/held" . 15
t0=$(date +%s.%N)
weft policy create devices-nowhere --type router --identities '#devices' --routers '#nowhere'
assert_rc 0 "router policy locking #devices out created"
dp_wait_log "$T_TMP/ended" . 10
read -r t_end how <"$T_TMP/ended" 2>/dev/null
secs=$(python3 -c "print(round(${t_end:-1e12} - $t0, 3))")
echo "measured: router policy added: live circuit closed in ${secs} s" >&2
assert_cond "dev2's live circuit closed ($how) ${secs} s after the policy (limit 1 s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $secs < 1.0 else 1)"
assert_ne timeout "${how:-timeout}" "the held connection saw its end, not a timeout"
assert_eq "" "$(routers_of dev2)" "dev2 now gets no router"
dp_router_alive "r1 still running"
