#!/usr/bin/env bash
# weft-edge (libweft) moves by itself when a router policy refuses it
# (docs/policies.md "Router policies", docs/libweft.md): two linked routers,
# r1 (east) and r2 (west); the edges' session data lists r1 only (router
# policies keep them on #east), so r1 is the router they hold.
# - A router policy swap (fleet to #west) makes r1 end dev1's session: the
#   edge logs which router refused and why, leaves r1 alone, asks for session
#   data at once and holds a session on r2 within 5 s (measured); a dial
#   through its intercept then works, and r1 sees no new attempt.
# - A service-router policy keeps web2 off r1: dev2's dial is refused there,
#   goes through r2 instead (after fresh session data names it), and the
#   client behind the intercept never notices.
# - With no router left for dev1 (#nowhere), the edge says so once, a dial
#   fails at once with the router's reason (EDENIED), and nothing spins.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_east_west rpolmove

ECHO=$(dp_port); ECHO_I=$(dp_port); ECHO_I2=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 fleet
dp_enrol dev2 devices
DEV1_ID=$(jget "$(cat "$T_TMP/dev1.json")" .id)
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_service web2 web2 "tcp:127.0.0.1:$ECHO_I2" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#fleet' '#web'
dp_policy web2-dial dial '#devices' '#web2'
dp_policy web-bind bind '#hosts' '#web,#web2'
dp_rpolicy fleet-east '#fleet' '#east'
dp_rpolicy devices-east '#devices' '#east'

bg echo "$DP_BLAST" echo "$ECHO"
assert_cond "r2 linked to r1" dp_wait_log "$T_TMP/logs/router-r2.log" "event=link_up " 30
dp_edge host1
for r in "$R1_EDGE" "$R2_EDGE"; do
    for s in web web2; do
        assert_cond "host1 bound $s at $r" dp_wait_log "$T_TMP/logs/edge-host1.log" \
            "event=edge_bound service=$s terminator=[^ ]* router=$r( |$)" 30
    done
done
bg edge-dev1 "$WEFT_EDGE" run --identity "$T_TMP/dev1.json" --log-level debug --refresh 600
bg edge-dev2 "$WEFT_EDGE" run --identity "$T_TMP/dev2.json" --log-level debug --refresh 600
for d in dev1 dev2; do
    assert_cond "$d holds a session on r1" dp_wait_log "$T_TMP/logs/edge-$d.log" \
        "event=edge_session_state slot=0 router=$R1_EDGE from=HELLO to=READY" 30
done
assert_cond "dev1 intercepts web" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
    "event=edge_intercepting service=web " 30
assert_cond "dev2 intercepts web2" dp_wait_log "$T_TMP/logs/edge-dev2.log" \
    "event=edge_intercepting service=web2 " 30

# echo_once PORT TAG: one round trip through an intercept; prints the seconds it took.
echo_once() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
t0 = time.time()
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
    msg = ("ping " + sys.argv[2]).encode()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
except OSError as e:
    print("error %s %.3f" % (e, time.time() - t0))
    sys.exit(1)
print("%s %.3f" % ("ok" if got == msg else "short", time.time() - t0))
sys.exit(0 if got == msg else 1)
EOF
}
# echo_run PORT TAG: echo_once, setting T_RC and T_OUT as t_run does.
echo_run() { T_OUT=$(echo_once "$1" "$2"); T_RC=$?; }
echo_run "$ECHO_I" before
assert_rc 0 "dev1 reaches web through r1 before any change: $T_OUT"
echo_run "$ECHO_I2" before
assert_rc 0 "dev2 reaches web2 through r1 before any change: $T_OUT"

# ts_of FILE REGEX: the Unix time (float) of the first log line matching REGEX.
ts_of() {
    python3 - "$1" "$2" <<'EOF'
import datetime, re, sys
for line in open(sys.argv[1], errors="replace"):
    if re.search(sys.argv[2], line):
        ts = re.search(r"ts=(\S+)Z", line).group(1)
        d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f")
        print("%.3f" % d.replace(tzinfo=datetime.timezone.utc).timestamp())
        break
EOF
}
# refusals_at LOG: how many sessions of dev1 this router refused or ended so far.
refusals_at() { grep -cE "event=(session_router_policy|session_refused) .*identity=$DEV1_ID" "$1"; }

# ---- a router policy moves dev1 from r1 to r2
t0=$(date +%s.%N)
dp_rpolicy fleet-west '#fleet' '#west'
weft policy delete fleet-east
assert_rc 0 "router policy fleet-east deleted: r1 no longer allowed for #fleet"
READY_RE="event=edge_session_state slot=0 router=$R2_EDGE from=HELLO to=READY"
assert_cond "dev1 holds a session on r2" dp_wait_log "$T_TMP/logs/edge-dev1.log" "$READY_RE" 20
t_ready=$(ts_of "$T_TMP/logs/edge-dev1.log" "$READY_RE")
secs=$(python3 -c "print(round(${t_ready:-1e12} - $t0, 3))")
echo "measured: router policy refusal at r1: session on r2 ready ${secs} s after the policy change" >&2
t_diag "session on r2 ready ${secs} s after the policy change"
assert_cond "the move took under 5 s (${secs} s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $secs < 5 else 1)"
REF=$(grep "event=edge_router_refused router=$R1_EDGE " "$T_TMP/logs/edge-dev1.log" | head -1)
assert_match "policy=router service=- next=session_data avoid_s=30 reason=\"identity $DEV1_ID may not use router r1 \(router policy\)" \
    "$REF" "the edge says which router refused, why, and that it asks for session data"
assert_match "event=edge_session_data services=1 routers=1 " \
    "$(sed -n '/event=edge_router_refused/,$p' "$T_TMP/logs/edge-dev1.log")" \
    "fresh session data right after the refusal, listing r2 only"
N1=$(refusals_at "$T_TMP/logs/router.log")
echo_run "$ECHO_I" moved
assert_rc 0 "dev1 reaches web through r2: $T_OUT"
assert_match "event=edge_dial_sent service=web router=$R2_EDGE " \
    "$(cat "$T_TMP/logs/edge-dev1.log")" "the dial went through r2"
sleep 2
assert_eq "$N1" "$(refusals_at "$T_TMP/logs/router.log")" \
    "r1 sees no new attempt from dev1 (the edge leaves it alone)"

# ---- a service-router policy: dev2's dial of web2 moves from r1 to r2
weft policy create web2-west --type service-router --services '#web2' --routers '#west'
assert_rc 0 "service-router policy web2-west"
TOK2=$(dp_token dev2 web2 dial)
r1_refuses_web2() {
    t_run "$DP_PROBE" --identity "$T_TMP/dev2.json" --router "$R1_EDGE" --dial web2 \
        --token "$TOK2" --timeout 5000
    [ "$T_RC" != 0 ] && [[ "$T_OUT" == *"service-router policy"* ]]
}
for ((i = 0; i < 50; i++)); do r1_refuses_web2 && break; sleep 0.2; done
assert_cond "r1 refuses web2 now (its map has the policy)" r1_refuses_web2
weft policy delete devices-east
assert_rc 0 "router policy devices-east deleted: dev2 may use r2 (its session data does not say so yet)"
echo_run "$ECHO_I2" moved
assert_rc 0 "dev2's client reaches web2: the dial went through r2 ($T_OUT)"
dsecs=$(echo "$T_OUT" | awk '{print $2}')
echo "measured: service-router refusal at r1: dial answered through r2 in ${dsecs} s" >&2
assert_cond "the refused dial was answered within 5 s (${dsecs} s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= ${dsecs:-99} < 5 else 1)"
REF=$(grep "event=edge_router_refused router=$R1_EDGE " "$T_TMP/logs/edge-dev2.log" | head -1)
assert_match "policy=service-router service=web2 next=[^ ]+ avoid_s=30 reason=\"service web2 may not be carried by router r1 \(service-router policy\)" \
    "$REF" "dev2's edge says r1 refused web2 under a service-router policy"
assert_match "event=edge_dial_sent service=web2 router=$R2_EDGE " \
    "$(cat "$T_TMP/logs/edge-dev2.log")" "dev2's dial of web2 went again through r2"
assert_no_match "event=edge_dial_failed" "$(cat "$T_TMP/logs/edge-dev2.log")" \
    "no dial failed on dev2"

# ---- no router left for dev1: a clear error, at once, and no spinning
dp_rpolicy fleet-nowhere '#fleet' '#nowhere'
weft policy delete fleet-west
assert_rc 0 "router policy fleet-west deleted: no router left for #fleet"
assert_cond "dev1's edge says no router is allowed" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
    "level=error .*event=edge_no_router_allowed identity=$DEV1_ID routers=0 " 20
echo_run "$ECHO_I" nowhere
assert_ne 0 "$T_RC" "a dial through dev1's intercept fails"
fsecs=$(echo "$T_OUT" | awk '{print $NF}')
assert_cond "and fails at once (${fsecs} s), not after the dial timeout" \
    python3 -c "import sys; sys.exit(0 if ${fsecs:-99} < 2 else 1)"
assert_match "event=edge_dial_failed service=web client=[^ ]+ err=EDENIED msg=\"no router this identity may use carries service web; router $R2_EDGE refused: identity $DEV1_ID may not use router r2 \(router policy\)" \
    "$(cat "$T_TMP/logs/edge-dev1.log")" "the dial's failure carries the router's reason"
N2=$(refusals_at "$T_TMP/logs/router-r2.log")
S1=$(grep -c "event=edge_session_state" "$T_TMP/logs/edge-dev1.log")
sleep 3
assert_eq "$N2" "$(refusals_at "$T_TMP/logs/router-r2.log")" "r2 sees no new attempt from dev1"
assert_eq "$S1" "$(grep -c "event=edge_session_state" "$T_TMP/logs/edge-dev1.log")" \
    "dev1's sessions stay idle (no reconnect loop)"
assert_eq 1 "$(grep -c "event=edge_no_router_allowed" "$T_TMP/logs/edge-dev1.log")" \
    "the error is logged once"
dp_router_alive "r1 still running"
