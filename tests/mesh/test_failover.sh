#!/usr/bin/env bash
# Multi-host mesh in namespaces (tests/mesh/topo.sh): two diamonds
# r1-{r2,r3}-r4-{r5,r6}-r7, a dialling edge behind r1, a hosting edge behind r4
# (bulk, two links) and one behind r7 (far, four links). Checks: the
# controller's links are exactly the cabled ones; 64 MiB arrive intact over
# two and four links (with the host's answer after the half-close); a cable cut (ip link set down) and a router killed with
# SIGKILL mid-stream lose nothing. Stalls are printed as "stall" lines.
. "$(dirname "$0")/nslib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER"

topo_up r1 r2 r3 r4 r5 r6 r7 -- r1-r2 r1-r3 r2-r4 r3-r4 r4-r5 r4-r6 r5-r7 r6-r7 -- \
    dialer@r1 host@r4 far@r7 || t_bail "cannot build the topology"
ns_net meshns
for r in r1 r2 r3 r4 r5 r6 r7; do ns_router "$r"; done
nweft service create bulk --role bulk --intercept tcp:127.0.0.1:7001 --host tcp:127.0.0.1:9001
nweft service create far --role far --intercept tcp:127.0.0.1:7002 --host tcp:127.0.0.1:9002
nweft policy create d --type dial --identities '#dialers' --services '#bulk,#far'
nweft policy create b1 --type bind --identities '#hosts' --services '#bulk'
nweft policy create b2 --type bind --identities '#fars' --services '#far'
ns_edge host hosts
ns_edge far fars
ns_edge dialer dialers

want=$'r1-r2\nr1-r3\nr2-r4\nr3-r4\nr4-r5\nr4-r6\nr5-r7\nr6-r7'
assert_cond "the controller lists exactly the eight cabled links, up and measured" ns_wait_links "$want" 40
assert_cond "dialling edge intercepts bulk and far" ns_wait_log "$T_TMP/logs/edge-dialer.log" \
    "event=edge_intercepting service=far " 40

assert_cond "host edges bound bulk and far" eval 'ns_wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=bulk" 40 && ns_wait_log "$T_TMP/logs/edge-far.log" "event=edge_bound service=far" 40'
sleep 2 # the terminators reach every router's map

stream() { # TAG RECV ICPT TO RATE
    ns_stream_start "$1" dialer "$4" "$2" "$3" 64M "$5"
}
stream base 9001 7001 host 0
read -r ok gap bytes err <<<"$(ns_stream_end base 90)"
assert_eq yes "$ok" "64 MiB over two links intact ($bytes bytes, $err)"
stream far 9002 7002 far 0
read -r ok gap bytes err <<<"$(ns_stream_end far 90)"
assert_eq yes "$ok" "64 MiB over four links intact ($bytes bytes, $err)"

# Which middle router carries bulk now: the one whose log has the circuit in transit.
mid() { grep -l "event=mesh_transit" "$T_TMP"/logs/router-r2.log >/dev/null 2>&1 && echo r2 || echo r3; }

# ---- a cable cut mid-stream
stream cut 9001 7001 host 16M
ns_wait_progress cut $((16 * 1024 * 1024)) 30
m=$(mid)
topo_cut r1 "$m"
read -r ok gap bytes err <<<"$(ns_stream_end cut 90)"
assert_eq yes "$ok" "cable r1-$m cut mid-stream: 64 MiB intact ($bytes bytes, $err)"
t_diag "stall cut ${gap} ms (target 1000)"
topo_mend r1 "$m"
assert_cond "the link comes back after the cable is mended" ns_wait_links "$want" 60

# ---- a router killed mid-stream
stream kill 9001 7001 host 16M
ns_wait_progress kill $((16 * 1024 * 1024)) 30
m=$(mid)
kill -KILL "${NS_PID[$m]}" 2>/dev/null
read -r ok gap bytes err <<<"$(ns_stream_end kill 90)"
assert_eq yes "$ok" "router $m killed mid-stream: 64 MiB intact ($bytes bytes, $err)"
t_diag "stall kill9 ${gap} ms (target 200)"
ns_router_start "$m"
assert_cond "the killed router rejoins with all its links" ns_wait_links "$want" 60
