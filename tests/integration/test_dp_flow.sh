#!/usr/bin/env bash
# Backpressure per circuit: two circuits through one router; the reader of one
# stops reading after 1 MiB while its sender tries to push 200 MiB. The other
# circuit keeps its speed, the stalled sender is held back after a bounded
# amount, and the router's RSS does not grow by more than 16 MiB.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST"

dp_fabric dpflow
SLOW=$(dp_port); SLOW_I=$(dp_port); FAST=$(dp_port); FAST_I=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service slow web "tcp:127.0.0.1:$SLOW_I" "tcp:127.0.0.1:$SLOW"
dp_service fast web "tcp:127.0.0.1:$FAST_I" "tcp:127.0.0.1:$FAST"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'

bg sink-slow "$DP_BLAST" sink "$SLOW" --pause-after 1M
bg sink-fast "$DP_BLAST" sink "$FAST"
dp_edge host1
dp_edge dev1
for s in slow fast; do
    assert_cond "hosting edge bound $s" dp_wait_log "$T_TMP/logs/edge-host1.log" \
        "event=edge_bound service=$s( |$)" 30
    assert_cond "dialling edge intercepts $s" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
        "event=edge_intercepting service=$s " 30
done

mbit() { sed -n 's/^total .* mbit=\([0-9.]*\) .*/\1/p' <<<"$1"; }

# ---- the fast circuit alone (twice: the first warms up the edges and router)
T_CMD_TIMEOUT=60 t_run "$DP_BLAST" send "127.0.0.1:$FAST_I" --seconds 2 --max-seconds 40
T_CMD_TIMEOUT=60 t_run "$DP_BLAST" send "127.0.0.1:$FAST_I" --seconds 3 --max-seconds 40
assert_rc 0 "the fast circuit alone: 3 s of data acknowledged"
alone=$(mbit "$T_OUT")
rss0=$(dp_rss_kb "$DP_ROUTER_PID")

# ---- stall the slow circuit: its reader stops after 1 MiB, the sender keeps trying
bg send-slow "$DP_BLAST" send "127.0.0.1:$SLOW_I" --bytes 200M --max-seconds 20
SLOW_SEND=$BG_PID
assert_cond "the slow reader stopped after 1 MiB" dp_wait_log "$T_TMP/logs/sink-slow.log" \
    "sink paused bytes=1048576" 30
sleep 3 # let every buffer on the path fill up
rss1=$(dp_rss_kb "$DP_ROUTER_PID")

T_CMD_TIMEOUT=60 t_run "$DP_BLAST" send "127.0.0.1:$FAST_I" --seconds 3 --max-seconds 40
assert_rc 0 "the fast circuit beside a stalled one: 3 s of data acknowledged"
during=$(mbit "$T_OUT")
rss2=$(dp_rss_kb "$DP_ROUTER_PID")
ratio=$(python3 -c "print(round(${during:-0} / max(${alone:-0}, 1e-9), 2))")
t_diag "fast circuit: alone ${alone} Mbit/s, beside the stalled one ${during} Mbit/s (ratio $ratio)"
# A circuit stuck behind the stalled one would drop to ~0; 0.5 leaves room for
# the machine's own load changing between the two runs.
assert_cond "the fast circuit keeps at least 0.5 of its speed beside the stalled one (got $ratio)" \
    python3 -c "import sys; sys.exit(0 if $ratio >= 0.5 else 1)"

# The stalled sender gives up at its deadline; what it wrote is what the path held.
for ((i = 0; i < 300; i++)); do alive "$SLOW_SEND" || break; sleep 0.1; done
pushed=$(sed -n 's/^flow 0 bytes=\([0-9]*\) .*/\1/p' "$T_TMP/logs/send-slow.log")
t_diag "stalled circuit: the sender got $((${pushed:-0} / 1024)) KiB of 200 MiB into the path, the reader took 1024 KiB"
assert_cond "the stalled sender was held back (wrote ${pushed:-?} bytes, under 64 MiB)" \
    test "${pushed:-999999999999}" -lt $((64 * 1024 * 1024))
t_diag "router RSS: ${rss0} kB before, ${rss1} kB with the stalled circuit, ${rss2} kB after the fast run"
grow=$(( (rss1 > rss2 ? rss1 : rss2) - rss0 ))
assert_cond "router RSS grew by ${grow} kB (limit 16384 kB)" [ "$grow" -lt 16384 ]
dp_router_alive "router still running"
