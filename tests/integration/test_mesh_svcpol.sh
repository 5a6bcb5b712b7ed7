#!/usr/bin/env bash
# Service-router policies on every path a circuit takes (docs/policies.md
# "Router policies"), on the loopback bed of tests/mesh/common.sh: five
# routers, three ways from r1 to r4 (r2 direct; r3 +5 ms a link; r5 +20 ms a
# link), a dialling edge on r1, the host of "bulk" on r4.
# (b) a policy created under a live stream that keeps bulk off r2, the router
#     it crosses: the circuit moves to an allowed path (make-before-break) and
#     the stream's SHA-256 is intact;
# (a) with bulk kept off r3: the standby leg avoids r3; r2 killed mid-stream
#     moves the circuit to r5 (not r3, the cheaper one), SHA-256 intact; then
#     r5 killed mid-stream leaves only paths over r3: the circuit ends with
#     EDENIED naming the policy, at both edges.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../mesh/common.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$WEFT_RELAY" "$BED_SHIM"

mb_net meshsvc
mb_router r1 r2 r3 r4 r5
mb_link r1 r2
mb_link r1 r3
mb_link r1 r5
mb_link r2 r4
mb_link r3 r4
mb_link r5 r4
mb_ids
for n in r1 r2 r3 r4 r5; do mb_start_router "$n"; done
sleep 0.3
for l in "r1 r3 5" "r3 r4 5" "r1 r5 20" "r5 r4 20"; do
    # shellcheck disable=SC2086
    set -- $l
    mb_relay "$1" "$2" delay "$3" >/dev/null || t_bail "relay $1-$2 does not answer"
done
MB_RECV=$(mb_port)
MB_ICPT=$(mb_port)
weft service create bulk --role bulk --intercept "tcp:127.0.0.1:$MB_ICPT" --host "tcp:127.0.0.1:$MB_RECV"
[ "$T_RC" == 0 ] || t_bail "service create: $T_ERR"
weft policy create bulk-dial --type dial --identities '#dialers' --services '#bulk'
weft policy create bulk-bind --type bind --identities '#hosts' --services '#bulk'
for n in r1 r3 r4 r5; do
    weft router update "$n" --role carry
    [ "$T_RC" == 0 ] || t_bail "router update $n: $T_ERR"
done
mb_edge host hosts r4
mb_edge dialer dialers r1
assert_cond "six links up" mb_wait_links 6 40
assert_cond "the controller lists the six links up with measured RTTs" mb_wait_ctl_links 6 30
for l in "r1-r3 4000" "r3-r4 4000" "r1-r5 15000" "r4-r5 15000"; do
    # shellcheck disable=SC2086
    set -- $l
    assert_cond "the map carries the delay on $1" mb_wait_link_rtt "$1" "$2" 30
done
assert_cond "host edge bound bulk" mb_wait_log "$T_TMP/logs/edge-host.log" "event=edge_bound service=bulk" 30
assert_cond "dialling edge intercepts bulk" \
    mb_wait_log "$T_TMP/logs/edge-dialer.log" "event=edge_intercepting service=bulk " 30
sleep 2

R1LOG=$T_TMP/logs/router-r1.log
# names PATH: router ids joined by "," as names joined by "-".
names() {
    local id n out=""
    for id in ${1//,/ }; do
        for n in "${MB_ROUTERS[@]}"; do [ "${MB_ID[$n]}" == "$id" ] && out+="${out:+-}$n"; done
    done
    printf '%s' "$out"
}
# r1_since LINE EVENT: the paths of r1's EVENT lines after line LINE of its log, as names.
r1_since() {
    tail -n +"$(($1 + 1))" "$R1LOG" | grep -E "event=$2 " | sed -nE 's/.* path=([^ ]+).*/\1/p' |
        tr -d '"' | while read -r p; do names "$p"; echo; done
}
r1_lines() { wc -l <"$R1LOG"; }
# since_ms T0 EVENT FILE: milliseconds from T0 (Unix seconds) to the first EVENT line in FILE after T0.
since_ms() {
    python3 - "$1" "$2" "$3" <<'EOF'
import datetime, re, sys
t0, ev = float(sys.argv[1]), "event=" + sys.argv[2] + " "
for line in open(sys.argv[3]):
    m = re.match(r"ts=(\S+)Z ", line)
    if not m or ev not in line:
        continue
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    if t >= t0 - 0.002:
        print(int((t - t0) * 1000))
        break
else:
    print(-1)
EOF
}

# ---- (b) a policy keeping bulk off the router its live circuit crosses
mark=$(r1_lines)
mb_stream_start "$MB_RECV" 64M 16M move "$MB_ICPT"
mb_wait_progress move $((12 * 1024 * 1024)) 30 || t_fail "the stream reached 12 MiB" "$(mb_progress move)"
assert_eq r1-r2-r4 "$(mb_path bulk)" "the circuit starts on the least-cost path, over r2"
assert_match "^r1-(r3|r5)-r4$" "$(r1_since "$mark" leg_setup | head -1)" "its standby leg avoids r2"
t0=$(date +%s.%N)
weft policy create bulk-carry --type service-router --services '#bulk' --routers '#carry'
assert_rc 0 "service-router policy keeping bulk on #carry (not r2) created"
read -r ok gap bytes err <<<"$(mb_stream_end move 90)"
moved=$(since_ms "$t0" circuit_policy_move "$R1LOG")
echo "measured: service-router policy created: circuit moved ${moved} ms after the command started; stream stall ${gap} ms" >&2
t_diag "policy move ${moved} ms after weft policy create; largest gap in the stream ${gap} ms"
assert_eq yes "$ok" "the stream crossed the move intact (SHA-256 equal at both ends; $bytes bytes, $err)"
assert_cond "r1 moved the circuit (circuit_policy_move) within 1 s of the policy (${moved} ms)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $moved < 1000 else 1)"
assert_match "event=circuit_reroute .*reason=\"a service-router policy" "$(tail -n +"$mark" "$R1LOG")" \
    "the move is logged as a reroute for the policy"
assert_match "^r1-(r3|r5)-r4$" "$(r1_since "$mark" circuit_reroute | tail -1)" \
    "the active path avoids r2 now"
assert_no_match "r2" "$(r1_since "$(grep -n 'event=circuit_policy_move' "$R1LOG" | tail -1 | cut -d: -f1)" leg_setup)" \
    "no leg set up after the move crosses r2"

# ---- (a) bulk kept off r3: failover avoids it, and ends when only r3 is left
weft router update r2 --role carry
weft router update r3 --role other
assert_rc 0 "now r1, r2, r4, r5 carry bulk; r3 does not"
sleep 1
mark=$(r1_lines)
mb_stream_start "$MB_RECV" 64M 16M kill2 "$MB_ICPT"
mb_wait_progress kill2 $((12 * 1024 * 1024)) 30 || t_fail "the stream reached 12 MiB" "$(mb_progress kill2)"
assert_eq r1-r2-r4 "$(mb_path bulk)" "the circuit starts over r2"
assert_eq r1-r5-r4 "$(r1_since "$mark" leg_setup | head -1)" \
    "its standby leg goes over r5, not over r3 (cheaper, excluded)"
mb_kill9_router r2
read -r ok gap bytes err <<<"$(mb_stream_end kill2 90)"
t_diag "r2 killed: largest gap in the stream ${gap} ms"
assert_eq yes "$ok" "r2 killed mid-stream: the stream arrives intact over r5 ($bytes bytes, $err)"
assert_eq r1-r5-r4 "$(r1_since "$mark" circuit_reroute | tail -1)" "the circuit went on over r5"
assert_no_match "r3" "$(r1_since "$mark" leg_setup; r1_since "$mark" circuit_reroute)" \
    "no leg or reroute of r1 crossed r3"

mark=$(r1_lines)
hmark=$(wc -l <"$T_TMP/logs/edge-host.log")
dmark=$(wc -l <"$T_TMP/logs/edge-dialer.log")
mb_stream_start "$MB_RECV" 64M 16M kill5 "$MB_ICPT"
mb_wait_progress kill5 $((12 * 1024 * 1024)) 30 || t_fail "the stream reached 12 MiB" "$(mb_progress kill5)"
assert_eq r1-r5-r4 "$(mb_path bulk)" "with r2 down the circuit runs over r5"
t0=$(date +%s.%N)
mb_kill9_router r5
read -r ok gap bytes err <<<"$(mb_stream_end kill5 60)"
ended=$(since_ms "$t0" circuit_policy_end "$R1LOG")
echo "measured: only excluded paths left: circuit ended ${ended} ms after r5 was killed" >&2
assert_eq no "$ok" "with only paths over r3 left the stream does not complete"
assert_match "event=circuit_policy_end .*reason=\"service bulk may not be carried by router r3 \(service-router policy\)" \
    "$(tail -n +"$mark" "$R1LOG")" "r1 ended the circuit naming the policy and r3 (${ended} ms after the kill)"
assert_match "event=edge_circuit_closed .*err=EDENIED" "$(tail -n +"$dmark" "$T_TMP/logs/edge-dialer.log")" \
    "the dialling edge got EDENIED"
assert_match "event=edge_circuit_closed .*err=EDENIED" "$(tail -n +"$hmark" "$T_TMP/logs/edge-host.log")" \
    "the hosting edge got EDENIED"
assert_match "event=circuit_close .*err=EDENIED" "$(cat "$T_TMP/logs/router-r4.log")" \
    "r4 (the host's router) closed it with EDENIED too"
for n in r1 r3 r4; do
    assert_cond "router $n still running" alive "${MB_PID[$n]}"
done
