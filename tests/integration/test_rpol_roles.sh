#!/usr/bin/env bash
# Router policies follow an identity's roles on live sessions, without waiting
# for a token (docs/policies.md "Router policies"): the controller pushes a
# changed identity's roles to every router (CTL_ROLES) and routers ask for the
# roles of their sessions' identities (CTL_ROLES_ASK). On two linked routers
# (r1 east, r2 west) with a router policy keeping '#westonly' on '#west':
# - a session that never presented a token and one holding a live circuit
#   (its token says the old roles) end within 1 s of `weft identity update`
#   giving the identity '#westonly', with EDENIED naming the router policy;
# - a router policy created (by role) while sessions are live, none before,
#   ends the sessions of the identities it now refuses, token or not, within 1 s;
# - another identity's sessions stay up throughout; r2 still admits the
#   identity that r1 refuses.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric rpolroles
R1_EDGE=$DP_EDGE_LISTEN
weft router update r1 --role east
assert_rc 0 "router r1 has role east"
dp_router r2 west
R2_EDGE=$DP_R_EDGE

ECHO=$(dp_port); ECHO_I=$(dp_port)
dp_enrol host1 hosts
for d in dev1 dev2 dev3 dev4; do dp_enrol "$d" fleet; done
dp_enrol bystander other
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#fleet,#other' '#web'
dp_policy web-bind bind '#hosts' '#web'
weft policy create west-only --type router --identities '#westonly' --routers '#west'
assert_rc 0 "router policy keeping #westonly on #west created"
bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30

# ---- live sessions at r1
declare -A HOLD
# hold TAG NAME [--dial web --token T]: a session of identity NAME at r1 kept open.
hold() {
    local tag=$1 who=$2
    shift 2
    bg "hold-$tag" "$DP_PROBE" --identity "$T_TMP/$who.json" --router "$R1_EDGE" --hold \
        --timeout 120000 "$@"
    HOLD[$tag]=$BG_PID
}
held() { dp_wait_log "$T_TMP/logs/hold-$1.log" "${2:-hello_ok}" 15; }
# ends T0 TAG...: polls the sessions every 10 ms (5 s at most); sets SECS[TAG]
# to the seconds from T0 until each ended, or "none".
declare -A SECS
ends() {
    local t0=$1 i t left
    shift
    for t in "$@"; do SECS[$t]=none; done
    for ((i = 0; i < 500; i++)); do
        left=0
        for t in "$@"; do
            [ "${SECS[$t]}" == none ] || continue
            if alive "${HOLD[$t]}"; then left=1; else SECS[$t]=$(date +%s.%N); fi
        done
        [ "$left" == 0 ] && break
        sleep 0.01
    done
    for t in "$@"; do
        [ "${SECS[$t]}" == none ] || SECS[$t]=$(python3 -c "print(round(${SECS[$t]} - $t0, 3))")
    done
}
under_1s() { python3 -c "import sys; sys.exit(0 if 0 <= float('$1') < 1.0 else 1)" 2>/dev/null; }
# closes WHAT "TAG..." CMD...: runs the weft command and checks that each held
# session ended within 1 s of its start with EDENIED naming the router policy.
closes() {
    local what=$1 tags=$2 t0 t
    shift 2
    t0=$(date +%s.%N)
    weft "$@"
    assert_rc 0 "weft $*"
    # shellcheck disable=SC2086
    ends "$t0" $tags
    for t in $tags; do
        echo "measured: $what: session $t closed in ${SECS[$t]} s" >&2
        t_diag "$what: session $t closed ${SECS[$t]} s after weft $1 $2 started"
        assert_cond "$what: session $t closed ${SECS[$t]} s after the command (limit 1 s)" \
            under_1s "${SECS[$t]}"
        assert_match 'edge_error err=EDENIED msg="identity [a-z0-9]+ may not use router r1 \(router policy\)' \
            "$(refusal "$t")" "$what: session $t got EDENIED naming the router policy"
    done
}
refusal() { tr '\n' ' ' <"$T_TMP/logs/hold-$1.log"; }

hold notoken dev1
hold circuit dev2 --dial web --token "$(dp_token dev2 web dial)"
hold bystander bystander --dial web --token "$(dp_token bystander web dial)"
hold bystander2 bystander
assert_cond "dev1 holds a session at r1 without a token" held notoken
assert_cond "dev2 holds a circuit to web at r1" held circuit "dial_ok"
assert_cond "the bystander holds a circuit and a bare session at r1" \
    eval 'held bystander dial_ok && held bystander2'
sleep 0.5 # the routers asked the controller for the sessions' roles

# ---- a role change ends a session that presented no token
closes "role change (no token)" notoken identity update dev1 --role westonly
t_run "$DP_PROBE" --identity "$T_TMP/dev1.json" --router "$R1_EDGE" --hold --timeout 5000
assert_match 'edge_error err=EDENIED' "$T_OUT" "a new session of dev1 at r1 is refused at once (roles asked at the session's start)"
t_run "$DP_PROBE" --identity "$T_TMP/dev1.json" --router "$R2_EDGE" --timeout 5000
assert_rc 0 "dev1 is admitted at r2 (#west)"

# ---- a role change ends a session whose token says the old roles
closes "role change (live circuit)" circuit identity update dev2 --role westonly

# ---- a policy change ends sessions with and without tokens. With no router
# policy left r1 asks nobody's roles; the policy created under the live
# sessions makes it ask, and the answer ends the token-less one.
weft policy delete west-only
assert_rc 0 "router policy west-only deleted: no router policy left"
hold p-notoken dev3
hold p-circuit dev4 --dial web --token "$(dp_token dev4 web dial)"
assert_cond "dev3 (no token) and dev4 (a circuit) hold sessions at r1" \
    eval 'held p-notoken && held p-circuit dial_ok'
sleep 0.5
closes "router policy created" "p-notoken p-circuit" \
    policy create fleet-west --type router --identities '#fleet' --routers '#west'

# ---- the other identity was never touched
sleep 1
assert_cond "the bystander's circuit is still up" alive "${HOLD[bystander]}"
assert_cond "the bystander's bare session is still up" alive "${HOLD[bystander2]}"
assert_no_match "edge_error|closed" "$(refusal bystander) $(refusal bystander2)" \
    "the bystander's sessions got no error"
assert_match "event=session_router_policy .*source=controller" \
    "$(cat "$T_TMP"/logs/router.log)" "r1 logged the closes the controller's roles decided"
dp_router_alive "r1 still running"
