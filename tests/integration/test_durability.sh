#!/usr/bin/env bash
# What the API acknowledged survives kill -9: single writes killed right after
# the CLI returns, then a create loop killed mid-stream, several rounds. Every
# create that returned success must be there after the restart.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT"

ctl_new durnet

restart_hard() {
    ctl_kill9 "$T_DIR"
    ctl_start "$T_DIR"
}

# ---- one write, then the crash
for i in 1 2 3 4 5; do
    weft identity create "crash-$i" --role durable
    assert_rc 0 "create crash-$i"
    restart_hard
    weft identity show "crash-$i"
    assert_rc 0 "crash-$i present after kill -9 and restart"
done
weft service create svc-crash --intercept tcp:svc.weft:80 --host tcp:127.0.0.1:9000
assert_rc 0 "create svc-crash"
restart_hard
weft --json service show svc-crash
assert_eq tcp:127.0.0.1:9000 "$(jget "$T_OUT" .data.host)" "service intact after kill -9"
weft policy create pol-crash --type dial --identities durable --services web
assert_rc 0 "create pol-crash"
restart_hard
weft policy show pol-crash
assert_rc 0 "policy present after kill -9"
weft identity disable crash-2
assert_rc 0 "disable crash-2"
weft identity delete crash-1
assert_rc 0 "delete crash-1"
restart_hard
weft --json identity show crash-2
assert_eq true "$(jget "$T_OUT" .data.disabled)" "disable survives kill -9"
weft identity show crash-1
assert_rc 1 "delete survives kill -9"

# ---- a create loop killed mid-stream
for r in 1 2 3; do
    ok="$T_TMP/ok-$r"; stop="$T_TMP/stop-$r"
    : >"$ok"
    (
        for i in $(seq 1 300); do
            [ -e "$stop" ] && break
            if timeout 10 "$WEFT" identity create "loop-$r-$i" >/dev/null 2>>"$T_TMP/logs/loop-$r.log"; then
                echo "loop-$r-$i" >>"$ok"
            fi
        done
    ) &
    loop=$!
    T_PIDS+=("$loop")
    want=$((5 + RANDOM % 20))
    for ((w = 0; w < 300; w++)); do
        [ "$(wc -l <"$ok")" -ge "$want" ] && break
        sleep 0.1
    done
    ctl_kill9 "$T_DIR"
    touch "$stop"
    wait "$loop" 2>/dev/null
    ctl_start "$T_DIR"
    acked=$(wc -l <"$ok")
    assert_cond "round $r: some creates were acknowledged before the crash ($acked)" test "$acked" -ge 5
    api GET "/v1/identities?name=loop-$r-*&limit=1000"
    assert_status 200 "round $r: list after restart"
    report=$(printf '%s' "$T_BODY" | python3 -c '
import json, sys
acked = set(open(sys.argv[1]).read().split())
have = {r["name"] for r in json.load(sys.stdin).get("data", [])}
missing = sorted(acked - have)
print(len(missing), len(have - acked), " ".join(missing[:10]))' "$ok" 2>&1)
    read -r missing extra names <<<"$report"
    assert_eq 0 "$missing" "round $r: every acknowledged create survived kill -9 (missing: ${names:-none})"
    assert_cond "round $r: at most one unacknowledged create persisted ($extra)" test "${extra:-9}" -le 1
done

# ---- the database is sound after all that
ctl_stop "$T_DIR"
t_run python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("PRAGMA integrity_check").fetchone()[0])' "$T_DIR/weft.db"
assert_eq ok "$T_OUT" "SQLite integrity_check after the crashes"
