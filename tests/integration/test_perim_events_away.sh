#!/usr/bin/env bash
# Events while the controller is away (docs/policies.md "Events"): the router
# refuses a dial over its rate while the controller is stopped, keeps the
# event, and sends it once the control channel is back; it is in weft events
# with the time it happened (`at`), and the router's queue is empty again.
#
# Then events survive a router restarted while the controller is away: they
# are written to the router's events-pending.jsonl; the router is stopped
# (SIGTERM), and in a second round killed (SIGKILL, 300 ms after its log said
# the last violation), started again, and only then the controller: every
# event reaches `weft events` exactly once (one row per event id), and the
# router's file is empty once the controller acknowledged them all. A line
# cut short by a kill is skipped with a warning. An event the controller
# stored but could not acknowledge (it was frozen, the router killed) is sent
# again by the restarted router and stored once.
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

# ---- a router restarted while the controller is away
SPILL="$T_TMP/r1/events-pending.jsonl"
# count FILE REGEX: how many lines of FILE match.
count() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

# wait_count FILE REGEX N SECONDS: true once N lines of FILE match.
wait_count() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [ "$(count "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

VIOLATION="event=policy_violation identity=[^ ]* kind=rate"

# over_rate N: dials until the router logged N more rate violations, 1.1 s
# apart (it reports a kind of violation at most once a second per identity;
# a restarted router lets the first dial of the minute through).
over_rate() {
    local i want
    want=$(($(count "$T_TMP/logs/router.log" "$VIOLATION") + $1))
    for ((i = 0; i < $1 + 3; i++)); do
        dp_probe dev1 --dial web --token "$TOK" --timeout 5000
        wait_count "$T_TMP/logs/router.log" "$VIOLATION" "$((want - $1 + i + 1))" 2
        [ "$(count "$T_TMP/logs/router.log" "$VIOLATION")" -ge "$want" ] && break
        sleep 1.1
    done
    assert_eq "$want" "$(count "$T_TMP/logs/router.log" "$VIOLATION")" \
        "the router logged $1 more rate violations with the controller away"
}

router_start() {
    bg router "$WEFT_ROUTER" run --dir "$T_TMP/r1"
    DP_ROUTER_PID=$BG_PID
    dp_wait_port "${DP_EDGE_LISTEN##*:}" 30 || t_bail "router not listening again"
}

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# rate_events: prints "rows distinct_eids" of the rate events the controller holds.
rate_events() {
    weft events --json --limit 1000
    printf '%s\n' "$T_OUT" | python3 -c '
import json, sys
evs = [json.loads(l) for l in sys.stdin if l.strip()]
evs = [e for e in evs if e.get("kind") == "rate"]
print(len(evs), len({e.get("eid") for e in evs}))'
}

# delivered N: the controller holds N rate events (bounded wait: the router
# reconnects with its backoff) and the router's file is empty.
delivered() {
    local i
    for ((i = 0; i < 400; i++)); do
        read -r ROWS EIDS < <(rate_events)
        [ "${ROWS:-0}" -ge "$1" ] && [ "$(stat -c %s "$SPILL" 2>/dev/null)" == 0 ] && return 0
        sleep 0.1
    done
    return 1
}

read -r BASE _ < <(rate_events)
assert_eq 1 "$BASE" "one rate event so far"
assert_eq 0 "$(stat -c %s "$SPILL")" "acknowledged: the router's file is empty"

# ---- round 1: the router stopped with SIGTERM while the controller is away
ctl_stop "$DP_DIR"
assert_cond "the router saw the control channel close" dp_wait_log "$T_TMP/logs/router.log" \
    "event=control_closed" 10
T0=$(date +%s)
over_rate 3
assert_eq 3 "$(lines "$SPILL")" "the three events are in the router's events-pending.jsonl"
stop_pid "$DP_ROUTER_PID"
assert_eq 0 "$T_EXIT" "the router stopped cleanly (SIGTERM)"
assert_eq 3 "$(lines "$SPILL")" "the file still holds them after the stop"
router_start
assert_cond "the restarted router loaded the three events" dp_wait_log \
    "$T_TMP/logs/router.log" "event=events_pending_loaded events=3 " 10
ctl_start "$DP_DIR"
assert_cond "the three events reached weft events" delivered 4
sleep 1 # anything sent twice would be in by now
read -r ROWS EIDS < <(rate_events)
assert_eq "4 4" "$ROWS $EIDS" "each event is stored exactly once (rows, distinct event ids)"
weft events --json --limit 1000
AT=$(printf '%s\n' "$T_OUT" | python3 -c '
import json, sys
evs = sorted((json.loads(l) for l in sys.stdin if "\"rate\"" in l), key=lambda e: e["id"])
print(min(e.get("at", 0) for e in evs[int(sys.argv[1]):]))' "$BASE")
assert_cond "the events carry the time they happened (at=$AT, first dial at $T0)" \
    test "$AT" -ge "$T0" -a "$AT" -le "$((T0 + 10))"

# ---- round 2: the router killed (SIGKILL) 300 ms after the last violation was logged
ctl_stop "$DP_DIR"
assert_cond "the router saw the control channel close again" wait_count \
    "$T_TMP/logs/router.log" "event=control_closed" 2 10
over_rate 2
sleep 0.3
kill -KILL "$DP_ROUTER_PID"
wait "$DP_ROUTER_PID" 2>/dev/null
assert_eq 2 "$(lines "$SPILL")" "after kill -9 the file holds the two new events"
router_start
assert_cond "the restarted router loaded the two events" dp_wait_log \
    "$T_TMP/logs/router.log" "event=events_pending_loaded events=2 " 10
ctl_start "$DP_DIR"
assert_cond "the two events reached weft events" delivered 6
sleep 1
read -r ROWS EIDS < <(rate_events)
assert_eq "6 6" "$ROWS $EIDS" "six events in all, each stored exactly once"

# ---- a crash in the middle of a write: the cut line is skipped, never fatal
ctl_stop "$DP_DIR"
assert_cond "the router saw the control channel close a third time" wait_count \
    "$T_TMP/logs/router.log" "event=control_closed" 3 10
over_rate 1
sleep 0.3
kill -KILL "$DP_ROUTER_PID"
wait "$DP_ROUTER_PID" 2>/dev/null
printf '{"kind":"rate","identity":"x","eid":"cut-1","ms' >>"$SPILL"
router_start
assert_cond "the restarted router warned of the cut line" dp_wait_log \
    "$T_TMP/logs/router.log" "event=events_pending_damaged .*skipped_lines=0 cut_last=1 kept=1 " 10
ctl_start "$DP_DIR"
assert_cond "the whole event reached weft events" delivered 7
sleep 1
read -r ROWS EIDS < <(rate_events)
assert_eq "7 7" "$ROWS $EIDS" "seven events, each once, nothing of the cut line"

# ---- stored but not acknowledged: sent again after the restart, stored once
CTL=${CTL_PID[$DP_DIR]}
kill -STOP "$CTL"
over_rate 1
sleep 0.3
assert_eq 1 "$(lines "$SPILL")" "the event waits in the file for its acknowledgement"
kill -KILL "$DP_ROUTER_PID"
wait "$DP_ROUTER_PID" 2>/dev/null
kill -CONT "$CTL"
assert_cond "the controller stored the event the dead router had sent" wait_count \
    "$T_TMP/logs/ctl-away.log" "event=security_event .*kind=rate" 8 10
router_start
assert_cond "the restarted router sent it again" dp_wait_log "$T_TMP/logs/router.log" \
    "event=events_pending_loaded events=1 " 10
assert_cond "the controller knew it already" dp_wait_log "$T_TMP/logs/ctl-away.log" \
    "event=event_duplicate router=[^ ]* eid=" 30
assert_cond "and acknowledged it: the router's file is empty" delivered 8
read -r ROWS EIDS < <(rate_events)
assert_eq "8 8" "$ROWS $EIDS" "eight events, each once"
dp_router_alive "the router survived"
