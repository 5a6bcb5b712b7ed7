#!/usr/bin/env bash
# The mesh on loopback (tests/mesh/common.sh): four routers in a diamond, each
# link through a weft_relay, edges homed on r1 and r4. What holds today:
# a 64 MiB stream crosses two links intact and without a long stall; the
# least-cost path avoids the delayed links; the relays see the links' bytes;
# with the controller stopped an established circuit keeps flowing and a new
# dial with a valid token still succeeds; after the controller restarts its
# view of routers agrees with theirs again. A link cut (relay blackhole), a
# link reset and a router killed with SIGKILL mid-stream lose nothing and
# stall boundedly; split mode over two legs each rate-limited to R by the
# relays carries well over R; redundant mode loses nothing and barely stalls
# when a leg is cut; over two legs of equal cost the host's answer after the
# dialler's half-close arrives whole (its close does not overtake it on the
# standby leg).
# Bounds are loose (a loaded 2-core machine, ASan); the measured figures are
# in docs/performance.md "Mesh", the targets in tests/bench/mesh.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../mesh/common.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$WEFT_RELAY" "$BED_SHIM"

MB_SERVICES="split:split redundant:redundant" mb_diamond meshfo
# 20 ms on the r3 links (the bed's 5 ms is within an ASan build's RTT noise
# on a loaded machine, and the least-cost path is checked below).
mb_relay r1 r3 delay 20 >/dev/null
mb_relay r3 r4 delay 20 >/dev/null
assert_cond "four links up (r1-r2, r1-r3, r2-r4, r3-r4)" mb_wait_links 4 30
assert_eq 4 "$(mb_links_up)" "exactly four links: non-neighbours never link"
assert_cond "the controller lists the four links up with measured RTTs" mb_wait_ctl_links 4 20
for l in r1-r3 r3-r4; do
    assert_cond "the map carries $l's 20 ms delay" mb_wait_link_rtt "$l" 15000 30
done
sleep 1 # the map delta on its way to r1
want=$'r1-r2 up\nr1-r3 up\nr2-r4 up\nr3-r4 up'
assert_eq "$want" "$(mb_ctl_links | awk '$2 == "up" {print $1, $2}')" "the controller's links are the topology's"
assert_cond "host edge bound bulk" mb_wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=bulk" 30
for sv in bulk bulk-split bulk-redundant; do
    assert_cond "dialling edge intercepts $sv" \
        mb_wait_log "$T_TMP/logs/edge-dialer.log" "event=edge_intercepting service=$sv " 30
done

# ---- a 64 MiB stream over two links
# Paced at 48 MiB/s: a full-speed stream fills the first link's queue, which
# counts in the path cost and may rightly move the circuit (smart rerouting).
mb_stream_start "$MB_RECV" 64M 48M base "$MB_ICPT"
read -r ok gap bytes err <<<"$(mb_stream_end base 90)"
assert_eq yes "$ok" "64 MiB through r1-r2-r4: SHA-256 equal at both ends (got $bytes bytes, $err)"
assert_eq r1-r2-r4 "$(mb_path bulk)" "the circuit starts on the least-cost path"
assert_cond "no stall over 1 s in a healthy stream (max gap ${gap} ms)" \
    python3 -c "import sys; sys.exit(0 if 0 <= float('$gap') < 1000 else 1)"
st=$(mb_relay r1 r2 stats)
assert_match "bytes_(up|down)=[0-9]{7,}" "$st" "the r1-r2 relay carried the stream (megabytes)"

# ---- failures mid-stream: nothing lost. The stall bounds here are loose (3 s
# for a cut link, noticed by the 750 ms heartbeat; 1 s for a reset link or a
# killed router, noticed at once, measured 15-40 ms) so that a loaded machine
# or an ASan build does not fail them; the targets (1 s, 200 ms) are checked
# and measured by tests/bench/mesh.sh.
ready() { mb_wait_links 4 30 && mb_wait_ctl_links 4 30 && sleep 2; }
ready
mb_fail_case blackhole 3000 "$MB_RECV" "$MB_ICPT" mb_relay r1 r2 blackhole on
mb_relay r1 r2 blackhole off >/dev/null
ready
mb_fail_case reset 1000 "$MB_RECV" "$MB_ICPT" mb_relay r1 r2 reset
ready
mb_fail_case kill9 1000 "$MB_RECV" "$MB_ICPT" mb_kill9_router r2
mb_start_router r2
ready

# ---- multipath. Split: two legs (r1-r2-r4, r1-r3-r4) each limited to R in
# the relays (measured 1.6 R, 1.18 R under ASan on a loaded machine; asserted
# > 1.1 R: failover over one leg gives 0.99 R, so both legs carry the flow).
# Redundant: a leg cut mid-stream loses nothing and the other leg keeps the
# stream going (measured 56 ms, the pacing's own gaps; 0.5 s before the cut
# leg's queue stopped pausing the session; asserted < 400 ms for a loaded
# machine and ASan).
mb_relay r1 r3 delay 0 >/dev/null
mb_relay r3 r4 delay 0 >/dev/null
R=4000000
mb_relay r1 r2 rate $R >/dev/null
mb_relay r1 r3 rate $R >/dev/null
mb_stream_start "$MB_RECV_split" 24M 0 split "$MB_ICPT_split"
read -r ok gap bytes err <<<"$(mb_stream_end split 90)"
assert_eq yes "$ok" "split: 24 MiB intact ($bytes bytes, $err)"
rate=$(python3 -c "import json; d = json.load(open('$T_TMP/split.stats')); print(int(d['bytes'] / max(d['seconds'], 0.001)))" 2>/dev/null)
printf 'split %s\n' "$rate" >>"$T_TMP/stalls"
assert_cond "split over two legs of $R B/s each: ${rate:-0} B/s > 1.1 R" \
    python3 -c "import sys; sys.exit(0 if ${rate:-0} > 1.1 * $R else 1)"
mb_relay r1 r2 rate 0 >/dev/null
mb_relay r1 r3 rate 0 >/dev/null
ready
mb_fail_case redundant 400 "$MB_RECV_redundant" "$MB_ICPT_redundant" mb_relay r1 r2 blackhole on
mb_relay r1 r2 blackhole off >/dev/null
ready

# ---- the answer after a half-close over legs of equal cost (failover: the
# egress sends the host's EDGE_CLOSE on both legs; the ingress ends the
# circuit only when the active leg has brought it, behind the answer)
good=0
for i in 1 2 3 4 5 6 7 8; do
    mb_stream_start "$MB_RECV" 1M 0 "answer$i" "$MB_ICPT"
    read -r ok gap bytes err <<<"$(mb_stream_end "answer$i" 30)"
    [ "$ok" == yes ] && good=$((good + 1))
done
assert_eq 8 "$good" "eight 1 MiB dials over equal legs each get the host's answer after the half-close"
mb_relay r1 r3 delay 20 >/dev/null
mb_relay r3 r4 delay 20 >/dev/null
ready
t_diag "stalls (ms) and split rate (B/s): $(tr '\n' ' ' <"$T_TMP/stalls")"

# ---- the controller stopped: circuits keep flowing, new dials succeed
mb_stream_start "$MB_RECV" 32M 16M noctl "$MB_ICPT"
mb_wait_progress noctl $((4 * 1024 * 1024)) 30
ctl_stop "$T_DIR"
read -r ok gap bytes err <<<"$(mb_stream_end noctl 60)"
assert_eq yes "$ok" "a stream across the controller's stop arrives intact ($bytes bytes, $err)"
mb_stream_start "$MB_RECV" 1M 0 newdial "$MB_ICPT"
read -r ok gap bytes err <<<"$(mb_stream_end newdial 30)"
assert_eq yes "$ok" "a new dial succeeds while the controller is down ($err)"

# ---- the controller back: its view agrees with the routers'
ctl_start "$T_DIR"
online=""
for ((i = 0; i < 60; i++)); do
    weft router list --json
    online=$(printf '%s' "$T_OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("data", d) if isinstance(d, dict) else d
rs = d if isinstance(d, list) else d.get("items", d.get("routers", []))
print(sum(1 for r in rs if r.get("online")))' 2>/dev/null)
    [ "$online" == 4 ] && break
    sleep 0.5
done
assert_eq 4 "$online" "after the restart the controller sees all four routers online"
mb_wait_ctl_links 4 20
assert_eq "$want" "$(mb_ctl_links | awk '$2 == "up" {print $1, $2}')" "after the restart the controller's links agree again"
