#!/usr/bin/env bash
# Limits across routers (docs/policies.md "Limits across routers"): a
# controller, two linked routers (r1 east, r2 west) and devices that use both
# at once. Service-router policies keep up1 on r1 and up2 on r2, so a device
# dialling both through its weft-edge (sessions to both routers) sends through
# both routers at the same time.
#  (a) quota: dev1 sends 1.4 MB through each router (2.8 MB) under a quota of
#      1.5 MB a day; each router alone would let its 1.4 MB through. Both flows
#      are stopped once the network-wide total passes 1.5 MB, with quota events
#      from both routers; how far past the limit (bytes and seconds) is printed.
#  (b) max_circuits 3 over raw sessions (dp_edgeprobe): two circuits held at
#      r1 and one at r2; the next dial is refused at both routers (the time
#      from the third circuit to r1's first refusal is printed); when one
#      circuit at r1 ends, r2 admits again.
#  (c) bandwidth 400 KB/s: two unpaced flows of dev3, one through each router,
#      share the limit (the combined rate is printed) instead of getting it
#      each.
#  (d) the controller away: r2 forgets the others' circuits and enforces the
#      limit on its own figures.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST" "$DP_PROBE"

SLOW=1; dp_asan && SLOW=2 # ASan slows every process; the limits on time double

dp_east_west limits
SINK1=$(dp_port); SINK2=$(dp_port); UP1=$(dp_port); UP2=$(dp_port)
ECHO=$(dp_port); WEB=$(dp_port)
dp_enrol host1 hosts
dp_enrol dev1 quota
dp_enrol dev2 maxc
dp_enrol dev3 bw
dp_service up1 up1 "tcp:127.0.0.1:$UP1" "tcp:127.0.0.1:$SINK1"
dp_service up2 up2 "tcp:127.0.0.1:$UP2" "tcp:127.0.0.1:$SINK2"
dp_service web web "tcp:127.0.0.1:$WEB" "tcp:127.0.0.1:$ECHO"
dp_policy dev-dial dial '#quota,#maxc,#bw' '#up1,#up2,#web'
dp_policy host-bind bind '#hosts' '#up1,#up2,#web'
weft policy create up1-east --type service-router --services '#up1' --routers '#east'
assert_rc 0 "up1 is carried by r1 only"
weft policy create up2-west --type service-router --services '#up2' --routers '#west'
assert_rc 0 "up2 is carried by r2 only"
weft policy create day-quota --type behaviour --identities '#quota' --quota 1500KB/day \
    --action block,log
assert_rc 0 "a quota of 1.5 MB a day"
weft policy create three --type behaviour --identities '#maxc' --max-circuits 3 --action block,log
assert_rc 0 "at most 3 circuits at once"
weft policy create shaped --type behaviour --identities '#bw' --bandwidth 400KB/s --action block,log
assert_rc 0 "400 KB/s"

# A sink on both service ports: a line "PORT TIME BYTES" per arrival.
cat >"$T_TMP/sink.py" <<'EOF'
import socket, sys, threading, time
out = sys.argv[1]
lock = threading.Lock()
def conn(c, port):
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            with lock, open(out, "a") as f:
                f.write("%d %.6f %d\n" % (port, time.time(), len(b)))
    except OSError:
        pass
    c.close()
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=conn, args=(c, port), daemon=True).start()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
while True:
    time.sleep(3600)
EOF
# send.py PORT BYTES RATE SECONDS: BYTES at RATE bytes a second (0: as fast as
# it goes), or for SECONDS; prints "sent N ok|error".
cat >"$T_TMP/send.py" <<'EOF'
import socket, sys, time
port, total, rate, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
chunk = b"x" * 8192
sent, how = 0, "ok"
t0 = time.time()
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    while (total == 0 or sent < total) and (secs == 0 or time.time() - t0 < secs):
        if rate:
            due = t0 + sent / rate
            if due > time.time():
                time.sleep(due - time.time())
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    s.recv(1)
    s.close()
except OSError as e:
    how = "error"
print("sent %d %s" % (sent, how))
EOF
bg sink python3 "$T_TMP/sink.py" "$T_TMP/sink.log" "$SINK1" "$SINK2"
bg echo "$DP_BLAST" echo "$ECHO"
dp_wait_port "$SINK2" 10 || t_bail "sink not listening"
assert_cond "r2 linked to r1" dp_wait_log "$T_TMP/logs/router-r2.log" "event=link_up " 30
dp_edge host1
for r in "$R1_EDGE" "$R2_EDGE"; do
    assert_cond "host1 bound up1, up2 and web at $r" bash -c "
        for i in \$(seq 300); do
            n=\$(grep -cE 'event=edge_bound service=(up1|up2|web) terminator=[^ ]* router=$r( |\$)' \
                '$T_TMP/logs/edge-host1.log'); [ \"\$n\" -ge 3 ] && exit 0; sleep 0.1; done; exit 1"
done

# device NAME: weft-edge for NAME, both sessions up and both intercepts listening.
device() {
    bg "edge-$1" "$WEFT_EDGE" run --identity "$T_TMP/$1.json" --log-level debug --refresh 600
    DEV_PID=$BG_PID
    for r in "$R1_EDGE" "$R2_EDGE"; do
        dp_wait_log "$T_TMP/logs/edge-$1.log" "event=edge_session_state slot=[01] router=$r from=HELLO to=READY" 30 ||
            t_bail "$1 has no session on $r"
    done
    for s in up1 up2; do
        dp_wait_log "$T_TMP/logs/edge-$1.log" "event=edge_intercepting service=$s " 30 ||
            t_bail "$1 does not intercept $s"
    done
}
# warm NAME: one small flow through each intercept, so that each service's
# dials have found their router (a service-router refusal moves a dial once).
warm() {
    local p
    for p in "$UP1" "$UP2"; do
        t_run python3 "$T_TMP/send.py" "$p" 1000 0 0
        assert_match "sent 8192 ok" "$T_OUT" "$1: a small flow through 127.0.0.1:$p"
    done
    sleep 0.5
}
# routers_of KIND: the routers (ids) that reported a KIND event, sorted, comma-joined.
routers_of() {
    weft events --json
    printf '%s\n' "$T_OUT" | python3 -c '
import json, sys
print(",".join(sorted({json.loads(l).get("router", "?") for l in sys.stdin
                       if l.strip() and json.loads(l).get("kind") == sys.argv[1]})))' "$1"
}
R1_ID=$(weft router show r1 --json >/dev/null; jget "$T_OUT" .data.id)
R2_ID=$(weft router show r2 --json >/dev/null; jget "$T_OUT" .data.id)

# ---- (a) a daily quota across both routers
QUOTA=1500000
device dev1
warm dev1
: >"$T_TMP/sink.log"
bg send1 python3 "$T_TMP/send.py" "$UP1" 1400000 400000 0
S1=$BG_PID
bg send2 python3 "$T_TMP/send.py" "$UP2" 1400000 400000 0
S2=$BG_PID
wait "$S1" "$S2"
read -r _ sent1 how1 <"$T_TMP/logs/send1.log"
read -r _ sent2 how2 <"$T_TMP/logs/send2.log"
t_diag "quota: the senders stopped with $sent1 ($how1) through r1 and $sent2 ($how2) through r2"
cat >"$T_TMP/past.py" <<'EOF'
import sys
quota = int(sys.argv[2]) - int(sys.argv[3])  # the warm-up's bytes count too
ev, per = [], {}
for line in open(sys.argv[1]):
    port, t, n = line.split()
    per[port] = per.get(port, 0) + int(n)
    ev.append((float(t), int(n)))
ev.sort()
total, cross = 0, None
for t, n in ev:
    total += n
    if cross is None and total > quota:
        cross = t
last = ev[-1][0] if ev else 0
print("%d %d %.3f %s" % (total, total - quota, (last - cross) if cross else -1,
                         ",".join("%d" % per[p] for p in sorted(per))))
EOF
read -r total past lag per < <(python3 "$T_TMP/past.py" "$T_TMP/sink.log" "$QUOTA" 16384)
t_diag "quota: $total bytes arrived through both routers ($per); the last $past bytes past the quota, stopped $lag s after the network-wide total passed it"
assert_cond "neither flow got its 1.4 MB through (each router alone would have let it)" \
    test "$sent1" -lt 1400000 -a "$sent2" -lt 1400000
assert_cond "the network-wide total stops near the quota ($total bytes, $past past it; 2.8 MB were sent for)" \
    test "$past" -ge 0 -a "$past" -lt $((400000 * SLOW))
assert_cond "both flows stopped within $((SLOW)) s of the total passing the quota ($lag s)" \
    python3 -c "import sys; sys.exit(0 if 0 <= $lag < $SLOW else 1)"
assert_eq "$(printf '%s\n' "$R1_ID" "$R2_ID" | sort | paste -sd,)" "$(routers_of quota)" \
    "both routers reported the quota (weft events)"
weft events --json
assert_match '"kind":"quota".*across the network' "$T_OUT" "the event says the quota is spent across the network"
# A new flow is refused at its dial, through either router.
t_run python3 "$T_TMP/send.py" "$UP2" 100000 0 0
assert_no_match "sent 100000 ok" "$T_OUT" "a new flow through r2 does not get through: $T_OUT"
assert_cond "the router refused the dial for the quota" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
    "daily volume quota of 1500000 bytes spent" 10
stop_pid "$DEV_PID"

# ---- (b) max_circuits 3 across both routers, over raw sessions
TOK2="$T_TMP/dev2.tok"
dp_token dev2 web dial >"$TOK2"
# hold NAME ROUTER: a circuit of dev2 held open at ROUTER; sets HOLD_PID once it is up.
hold() {
    "$DP_PROBE" --identity "$T_TMP/dev2.json" --router "$2" --dial web --token @"$TOK2" --hold \
        --timeout 120000 >"$T_TMP/hold-$1.out" 2>&1 &
    HOLD_PID=$!
    T_PIDS+=("$HOLD_PID")
    for ((i = 0; i < 500; i++)); do
        grep -q dial_ok "$T_TMP/hold-$1.out" && return 0
        sleep 0.02
    done
    t_bail "hold $1 at $2 did not open: $(cat "$T_TMP/hold-$1.out")"
}
dial_at() { t_run "$DP_PROBE" --identity "$T_TMP/dev2.json" --router "$1" --dial web --token @"$TOK2" --timeout 5000; }
hold a "$R1_EDGE"; HOLD_A=$HOLD_PID
hold b "$R1_EDGE"
hold c "$R2_EDGE"
t3=$(date +%s.%N)
lag=""
for ((i = 0; i < 100; i++)); do
    dial_at "$R1_EDGE"
    if [ "$T_RC" != 0 ]; then
        lag=$(python3 -c "import time; print(round(time.time() - $t3, 3))")
        break
    fi
done
t_diag "max_circuits: r1 refused its first dial $lag s after the third circuit opened at r2 ($i dials admitted before)"
assert_match "across the network" "$T_OUT" "r1's refusal counts the circuit at r2: $T_OUT"
assert_cond "r1 refuses within $((SLOW)) s ($lag s)" \
    python3 -c "import sys; sys.exit(0 if '$lag' and float('${lag:-99}') < $SLOW else 1)"
dial_at "$R2_EDGE"
assert_rc 1 "r2 refuses too (one circuit here, two at r1)"
assert_match "1 through this router, 2 through others" "$T_OUT" "r2's refusal says where they are: $T_OUT"
stop_pid "$HOLD_A"
t0=$(date +%s.%N)
back=""
for ((i = 0; i < 100; i++)); do
    dial_at "$R2_EDGE"
    if [ "$T_RC" == 0 ]; then
        back=$(python3 -c "import time; print(round(time.time() - $t0, 3))")
        break
    fi
    sleep 0.05
done
t_diag "max_circuits: r2 admits again $back s after a circuit at r1 ended"
assert_cond "a circuit ending at r1 makes room at r2 ($back s)" test -n "$back"
assert_cond "max_circuits events from both routers" test "$(routers_of max_circuits | tr ',' '\n' | wc -l)" -ge 2

# ---- (d) the controller away: r2 enforces on its own figures
hold d "$R1_EDGE" # r1 holds two again (b, d), r2 one (c)
ok=0
for ((i = 0; i < 60; i++)); do
    dial_at "$R2_EDGE"
    [ "$T_RC" == 1 ] && ok=1 && break
    sleep 0.05
done
assert_eq 1 "$ok" "with the controller up, r2 refuses the fourth circuit (once r1's new one is reported)"
ctl_stop "$DP_DIR"
assert_cond "r2 notices the controller is gone" dp_wait_log "$T_TMP/logs/router-r2.log" \
    "event=control_closed" 20
dial_at "$R2_EDGE"
assert_rc 0 "with the controller away, r2 counts its own circuit only (1 < 3) and admits"
ctl_start "$DP_DIR"
assert_cond "r2 is back on the control channel" bash -c \
    "for i in \$(seq 200); do [ \$(grep -c 'event=control_open' '$T_TMP/logs/router-r2.log') -ge 2 ] && exit 0; sleep 0.1; done; exit 1"
ok=0
for ((i = 0; i < 60; i++)); do
    dial_at "$R2_EDGE"
    [ "$T_RC" == 1 ] && ok=1 && break
    sleep 0.1
done
assert_eq 1 "$ok" "the controller back, r2 counts r1's circuits again and refuses"

# ---- (c) bandwidth shared by the routers carrying the identity
device dev3
warm dev3
: >"$T_TMP/sink.log"
SECS=6
bg send3 timeout "$SECS" python3 "$T_TMP/send.py" "$UP1" 0 0 0
S1=$BG_PID
bg send4 timeout "$SECS" python3 "$T_TMP/send.py" "$UP2" 0 0 0
S2=$BG_PID
wait "$S1" "$S2"
cat >"$T_TMP/rate.py" <<'EOF'
import sys
ev = {}
for line in open(sys.argv[1]):
    port, t, n = line.split()
    ev.setdefault(port, []).append((float(t), int(n)))
t0 = min(t for e in ev.values() for t, _ in e)
a, b = t0 + 2.0, t0 + float(sys.argv[2])  # after the first reports, while both send
rates = [sum(n for t, n in e if a <= t < b) / (b - a) for e in ev.values()]
print("%d %s" % (sum(rates), ",".join("%d" % r for r in rates)))
EOF
read -r rate per < <(python3 "$T_TMP/rate.py" "$T_TMP/sink.log" "$SECS")
t_diag "bandwidth: 400 KB/s shared, $rate B/s arrived through both routers together ($per), each router alone would give 400 KB/s"
assert_cond "the two routers together keep near the limit ($rate B/s < 560,000)" test "$rate" -lt 560000
assert_cond "and neither starves (each over 80,000 B/s: $per)" python3 -c "
import sys; sys.exit(0 if all(int(r) > 80000 for r in '$per'.split(',')) else 1)"
stop_pid "$DEV_PID"

dp_router_alive "r1 survived"
