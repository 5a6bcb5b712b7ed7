#!/usr/bin/env bash
# A bind withdrawn by a policy reaches the hosting edge at once
# (docs/policies.md "Withdrawn grants"): deleting the bind policy of a hosting
# edge makes its router remove the terminator and send the edge EDGE_UNBIND;
# the edge logs edge_bind_withdrawn (naming the policy, saying what to do)
# within 1 s of `weft policy delete` (measured, printed), and a dial to the
# service fails with a clear error. A bind policy created again is picked up
# at the edge's next session-data refresh (--refresh 3): the service is bound
# again and a dial works. The delete follows a refresh closely, so that the
# edge learns of it from its router, not from session data.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric unbind
ECHO=$(dp_port); ECHO_I=$(dp_port)
HOSTLOG="$T_TMP/logs/edge-host1.log"
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'
bg echo "$DP_BLAST" echo "$ECHO"
bg edge-host1 "$WEFT_EDGE" run --identity "$T_TMP/host1.json" --log-level debug --refresh 3
assert_cond "hosting edge bound web" dp_wait_log "$HOSTLOG" "event=edge_bound service=web( |$)" 30
TOK=$(dp_token dev1 web dial)
[ -n "$TOK" ] || t_bail "no dial token for dev1"
dp_probe dev1 --dial web --token "$TOK" --timeout 5000
assert_rc 0 "a dial to web is answered while host1 hosts it"

# ---- the bind policy deleted: the edge hears it from its router
fetches() { grep -c "event=edge_session_data " "$HOSTLOG"; }
n=$(fetches)
next_fetch() { [ "$(fetches)" -gt "$n" ]; }
wait_fetch() {
    local i
    for ((i = 0; i < 500; i++)); do next_fetch && return 0; sleep 0.01; done
    return 1
}
assert_cond "the edge refreshed its session data (the next is 3 s away)" wait_fetch
t0=$(date +%s.%N)
weft policy delete web-bind
assert_rc 0 "policy web-bind deleted"
assert_cond "the hosting edge logged the withdrawal" dp_wait_log "$HOSTLOG" \
    "event=edge_bind_withdrawn service=web " 5
LINE=$(grep -m1 "event=edge_bind_withdrawn service=web " "$HOSTLOG")
secs=$(python3 - "$LINE" "$t0" <<'EOF'
import datetime, re, sys
ts = re.search(r"ts=(\S+)Z", sys.argv[1]).group(1)
t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
print(round(t.timestamp() - float(sys.argv[2]), 3))
EOF
)
echo "measured: bind withdrawn: the hosting edge logged it ${secs} s after weft policy delete" >&2
assert_cond "the edge logged it ${secs} s after the delete (limit 1 s)" \
    python3 -c "import sys; sys.exit(0 if -0.05 <= $secs < 1.0 else 1)"
assert_match 'err=EDENIED' "$LINE" "the line says EDENIED"
assert_match 'bind policy \\"web-bind\\" deleted or changed' "$LINE" "the line names the policy"
assert_match 'hint="[^"]*bind policy' "$LINE" "the line says what to do"
assert_cond "the router removed the terminator" dp_wait_log "$T_TMP/logs/router.log" \
    "event=grant_withdrawn act=bind identity=[^ ]* service=web " 5
dp_probe dev1 --dial web --token "$TOK" --timeout 5000
assert_rc 1 "a dial to web fails once the bind is withdrawn"
assert_match 'ENOTFOUND.*no terminator: no edge is bound' "$T_OUT" \
    "the dial's error says no edge hosts the service"
t_diag "dial after the withdrawal: $(echo $T_OUT)"
assert_cond "the edge asked for session data and stopped hosting web" dp_wait_log "$HOSTLOG" \
    "event=edge_service_stop service=web" 10

# ---- granted again: bound at the next session-data refresh (tokens of the
# withdrawal's second stay refused, so a second passes first)
sleep 1.1
t1=$(date +%s.%N)
dp_policy web-bind-again bind '#hosts' '#web'
bound_again() { [ "$(grep -c "event=edge_bound service=web" "$HOSTLOG")" -ge 2 ]; }
wait_bound() {
    local i
    for ((i = 0; i < 150; i++)); do bound_again && return 0; sleep 0.1; done
    return 1
}
assert_cond "the edge bound web again after its next refresh" wait_bound
echo "measured: bind granted again: bound $(python3 -c "import time; print(round(time.time() - $t1, 2))") s after weft policy create (refresh 3 s)" >&2
dp_probe dev1 --dial web --token "$TOK" --timeout 5000
assert_rc 0 "a dial to web works again"
dp_router_alive "the router survived"
