#!/usr/bin/env bash
# Events while the controller is away (docs/policies.md "Events"): the router
# refuses a dial over its rate while the controller is stopped, keeps the
# event, and sends it once the control channel is back; it is in weft events
# with the time it happened (`at`), and the router's queue is empty again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

dp_fabric away
ECHO=$(dp_port); ECHO_I=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service web web "tcp:127.0.0.1:$ECHO_I" "tcp:127.0.0.1:$ECHO"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'
weft policy create one-a-minute --type behaviour --identities '#devices' --conn-rate 1/min \
    --action block,log
assert_rc 0 "a behaviour policy: one dial a minute, block and log"
bg echo "$DP_BLAST" echo "$ECHO"
dp_edge host1
assert_cond "hosting edge bound web" dp_wait_log "$T_TMP/logs/edge-host1.log" \
    "event=edge_bound service=web( |$)" 30
TOK=$(dp_token dev1 web dial)
[ -n "$TOK" ] || t_bail "no dial token for dev1"
dp_probe dev1 --dial web --token "$TOK"
assert_rc 0 "the first dial is answered"

ctl_stop "$DP_DIR"
assert_cond "the router saw the control channel close" dp_wait_log "$T_TMP/logs/router.log" \
    "event=control_closed" 10
T0=$(date +%s)
dp_probe dev1 --dial web --token "$TOK"
assert_rc 1 "with the controller away, the second dial is still refused (rate)"
assert_cond "the router logged the violation" dp_wait_log "$T_TMP/logs/router.log" \
    "event=policy_violation identity=[^ ]* kind=rate" 5

ctl_start "$DP_DIR"
# Bounded: the router reconnects with its backoff (at most a few seconds here).
rate_event() {
    local i
    for ((i = 0; i < 300; i++)); do
        weft events --json
        EV=$(printf '%s\n' "$T_OUT" | grep '"kind":"rate"' | tail -1)
        [ -n "$EV" ] && return 0
        sleep 0.1
    done
    return 1
}
assert_cond "the queued rate event reached weft events after the restart" rate_event
AT=$(printf '%s' "$EV" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("at", 0))')
assert_cond "the event carries the time it happened (at=$AT, dial at $T0)" \
    test "$AT" -ge "$T0" -a "$AT" -le "$((T0 + 5))"
assert_match '"blocked":true' "$EV" "the event says the dial was blocked"
assert_cond "the router sent it late" dp_wait_log "$T_TMP/logs/router.log" \
    "event=events_sent_late events=1 left=0 dropped=0" 5
dp_router_alive "the router survived"
