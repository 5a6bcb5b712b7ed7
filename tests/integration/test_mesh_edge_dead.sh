#!/usr/bin/env bash
# A multi-homed edge whose router dies silently (docs/libweft.md "Keepalive
# and dead routers"). Three routers on loopback, linked in a triangle; a
# hosting edge on r3; a dialling edge homed on r1 and r2 (a session to each,
# default liveness settings); an idle edge homed on r1 and r2 too, with a 1 s
# keepalive and a 5 s idle deadline (the 45 s default shortened for the test).
#
# A 64 MiB stream, paced at 16 MiB/s, runs from the dialling edge to the host;
# once 16 MiB arrived, the router carrying it (the dialler's ingress) is frozen
# with SIGSTOP: its sockets stay open and nothing answers (no FIN, no RST), as
# a router that lost power or network. The dialler notices the silence from
# its busy deadline (1.5 s), the other router having answered its probe, and
# the circuit resumes through the other router: the stream arrives whole (the
# SHA-256 at the far end equals the sender's), and the stall is printed and
# bounded (target 2 s). The idle edge, which carries nothing, keeps its
# session to the frozen router until its idle deadline (not the busy one).
# The frozen router is thawed in the EXIT trap whatever happens.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../mesh/common.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$BED_SHIM"

FROZEN=""
edge_dead_exit() {
    local rc=$?
    [ -n "$FROZEN" ] && kill -CONT "$FROZEN" 2>/dev/null
    (exit "$rc")
    t_cleanup
}
trap edge_dead_exit EXIT

# Stall bounds: the target on a plain build; an ASan build on a loaded
# 2-core machine gets a second more (its detection is the same timer, the
# resume and the resent window are slower).
LIMIT=2000
ldd "$WEFT_ROUTER" 2>/dev/null | grep -q libasan && LIMIT=3000
IDLE_DEAD=5000

mb_net edgedead
mb_router r1 r2 r3
mb_link_direct r1 r2
mb_link_direct r1 r3
mb_link_direct r2 r3
mb_ids
for n in r1 r2 r3; do mb_start_router "$n"; done
mb_bulk_service
mb_edge host hosts r3
mb_edge dialer dialers "r1 r2"
mb_edge idler dialers "r1 r2" --keepalive-ms 1000 --idle-dead-ms "$IDLE_DEAD"
DLOG=$T_TMP/logs/edge-dialer.log
ILOG=$T_TMP/logs/edge-idler.log

assert_cond "three links up" mb_wait_links 3 30
assert_cond "the controller lists the three links with RTTs" mb_wait_ctl_links 3 30
assert_cond "host edge bound bulk" mb_wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=bulk" 30
assert_cond "dialling edge intercepts bulk" mb_wait_log "$DLOG" "event=edge_intercepting service=bulk " 30
for e in dialer idler; do
    for n in r1 r2; do
        assert_cond "$e holds a session to $n" mb_wait_log "$T_TMP/logs/edge-$e.log" \
            "event=edge_session_state slot=[01] router=127.0.0.1:${MB_EDGEP[$n]} from=HELLO to=READY" 30
    done
done
sleep 2 # a few round-trip samples and keepalives

# ---- the dialler's router frozen mid-stream
mb_stream_start "$MB_RECV" 64M 16M dead "$MB_ICPT"
mb_wait_progress dead $((16 * 1024 * 1024)) 30 ||
    t_fail "the stream reached 16 MiB" "progress: $(mb_progress dead)"
path=$(mb_path bulk)
victim=${path%%-*}
case $victim in
    r1 | r2) ;;
    *) t_bail "the stream's ingress is not one of the dialler's routers (path '$path')" ;;
esac
other=r1
[ "$victim" == r1 ] && other=r2
t0=$(date +%s%3N)
kill -STOP "${MB_PID[$victim]}"
FROZEN=${MB_PID[$victim]}
read -r ok gap bytes err <<<"$(mb_stream_end dead 90)"
assert_eq yes "$ok" "64 MiB arrive whole through $other after $victim froze (SHA-256 equal; $bytes bytes; $err)"
flow_ms=$(python3 -c "import json; print(round(json.load(open('$T_TMP/dead.stats'))['gap_end'] * 1000 - $t0))" 2>/dev/null)
assert_cond "the stall ${gap} ms <= ${LIMIT} ms (bytes flowing again ${flow_ms} ms after the freeze)" \
    mb_gap_ok "$gap" "$LIMIT"
dead_line=$(grep -E "event=edge_session_dead router=127.0.0.1:${MB_EDGEP[$victim]} " "$DLOG" | head -1)
assert_match "quiet_ms=1[5-9][0-9]{2} srtt_us=[0-9]+ reason=unacked deadline_ms=1[5-9][0-9]{2} other=127.0.0.1:${MB_EDGEP[$other]} " \
    "$dead_line" "the dialler dropped its session to $victim after 1.5 s of silence while carrying traffic"
assert_cond "the circuit resumed through $other" \
    mb_wait_log "$DLOG" "event=edge_circuit_resumed .*router=127.0.0.1:${MB_EDGEP[$other]} " 5
ts_ms() { # the log line's ts= as Unix ms
    python3 -c "import sys, datetime as d; t = sys.argv[1].split('ts=')[1].split()[0];
print(round(d.datetime.strptime(t, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=d.timezone.utc).timestamp() * 1000))" "$1"
}
dead_ms=$(($(ts_ms "$dead_line") - t0))
t_diag "router $victim frozen: session dropped after ${dead_ms} ms, bytes flowing again after ${flow_ms} ms, longest stall ${gap} ms (limit ${LIMIT} ms)"

# ---- the idle edge: same frozen router, nothing to carry
assert_cond "the idle edge drops its session to $victim within $((IDLE_DEAD / 1000 + 5)) s" \
    mb_wait_log "$ILOG" "event=edge_session_dead router=127.0.0.1:${MB_EDGEP[$victim]} " $((IDLE_DEAD / 1000 + 5))
idle_line=$(grep -E "event=edge_session_dead router=127.0.0.1:${MB_EDGEP[$victim]} " "$ILOG" | head -1)
assert_match "reason=idle deadline_ms=$IDLE_DEAD " "$idle_line" "the idle edge waited for its idle deadline"
idle_ms=$(($(ts_ms "$idle_line") - t0))
assert_cond "not before: dropped ${idle_ms} ms after the freeze (>= $((IDLE_DEAD - 1000)), its last pong <= 1 s before)" \
    test "$idle_ms" -ge $((IDLE_DEAD - 1000))
assert_eq 1 "$(grep -c 'event=edge_session_dead' "$ILOG")" "the idle edge dropped that session only"
assert_eq 1 "$(grep -c "event=edge_session_dead" "$DLOG")" "the dialler dropped one session only"
t_diag "idle edge: its session to $victim dropped ${idle_ms} ms after the freeze (idle deadline ${IDLE_DEAD} ms)"

# ---- thawed: the router is back and edges return to it
kill -CONT "$FROZEN"
FROZEN=""
ready_again() { # a second READY session to the victim in the dialler's log
    [ "$(grep -cE "event=edge_session_state slot=[01] router=127.0.0.1:${MB_EDGEP[$victim]} from=HELLO to=READY" "$DLOG")" -ge 2 ]
}
wait_ready_again() {
    local i
    for ((i = 0; i < 600; i++)); do ready_again && return 0; sleep 0.1; done
    return 1
}
assert_cond "the dialler reconnects to $victim once it answers again" wait_ready_again
mb_stream_start "$MB_RECV" 1M 0 after "$MB_ICPT"
read -r ok gap bytes err <<<"$(mb_stream_end after 30)"
assert_eq yes "$ok" "a new dial after the thaw succeeds ($bytes bytes, $err)"
