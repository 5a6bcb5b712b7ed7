#!/usr/bin/env bash
# deploy/systemd: each unit passes `systemd-analyze verify` with no warning (an unknown
# key or system-call group is only a warning there, so any output fails), its
# hardening scores as exposure "OK" or better in `systemd-analyze security`, and the
# ExecStart command itself (weft-entry) does what the units rely on: a controller
# initialised on first start and reused after, a clean exit on SIGTERM.
# Skipped, with the reason printed, where systemd-analyze cannot run.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
units="$root/deploy/systemd"
need_bins "$WEFT_CONTROLLER_BIN"

if ! command -v systemd-analyze >/dev/null; then
    "$root/scripts/deps.sh" systemd >/dev/null 2>&1 || true
fi
if ! command -v systemd-analyze >/dev/null; then
    echo "# skipped: systemd-analyze is not installed (scripts/deps.sh systemd, as root)"
    exit 0
fi
if ! systemd-analyze --version >/dev/null 2>&1; then
    echo "# skipped: systemd-analyze cannot run here: $(systemd-analyze --version 2>&1 | head -1)"
    exit 0
fi

# The entrypoint the units start, built from source like the images build it.
t_run ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -o "$T_TMP/weft-entry" "$root/deploy/entrypoint.c"
assert_rc 0 "weft-entry builds"

# Copies of the units whose ExecStart points at that build: verify checks that the
# command exists and is executable.
mkdir -p "$T_TMP/units"
for u in "$units"/*.service; do
    sed "s|/usr/libexec/weft/weft-entry|$T_TMP/weft-entry|" "$u" >"$T_TMP/units/$(basename "$u")"
done
cp "$T_TMP/units/weft-edge@.service" "$T_TMP/units/weft-edge@demo.service"

for u in weft-controller.service weft-router.service weft-edge@demo.service; do
    out=$(cd "$T_TMP/units" && systemd-analyze verify "./$u" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$out" ]; then t_pass "verify $u"; else t_fail "verify $u" "$out"; fi
    score=$(cd "$T_TMP/units" && systemd-analyze security --offline=yes "./$u" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
    assert_cond "$u exposure $score is at most 2.0" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
done

# verify does catch a broken unit (so the checks above can fail).
printf '[Service]\nExecStart=%s controller\nNoSuchKey=1\n' "$T_TMP/weft-entry" >"$T_TMP/units/broken.service"
out=$(cd "$T_TMP/units" && systemd-analyze verify ./broken.service 2>&1)
assert_match "Unknown key" "$out" "verify reports an unknown key"

# The controller unit's ExecStart, run as the unit would (minus the sandbox): first
# start initialises the state directory, SIGTERM stops it cleanly, a restart reuses it.
port=$(free_port)
cport=$(free_port)
dir="$T_TMP/state/controller"
start_entry() {
    WEFT_DIR=$dir WEFT_BIN_DIR=$(dirname "$WEFT_CONTROLLER_BIN") WEFT_NAME=unit-test \
        WEFT_LISTEN=127.0.0.1:$port WEFT_CONTROL_LISTEN=127.0.0.1:$cport \
        "$T_TMP/weft-entry" controller >>"$T_TMP/logs/entry.log" 2>&1 &
    entry_pid=$!
    T_PIDS+=("$entry_pid")
}
wait_listening() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
start_entry
assert_cond "first start: the controller listens" wait_listening
assert_cond "first start: the network was initialised" test -f "$dir/controller.json"
assert_eq "unit-test" "$(jget "$(cat "$dir/controller.json" 2>/dev/null || echo '{}')" name)" \
    "WEFT_NAME reached init"
kill -TERM "$entry_pid"
for _ in $(seq 1 50); do alive "$entry_pid" || break; sleep 0.1; done
wait "$entry_pid"
assert_eq 0 "$?" "SIGTERM: the controller exits 0"
ca1=$(sha256sum <"$dir/ca.pem")
start_entry
assert_cond "restart: the controller listens again" wait_listening
assert_eq "$ca1" "$(sha256sum <"$dir/ca.pem")" "restart: the same CA (the state is reused)"
assert_eq 1 "$(grep -c 'initialising' "$T_TMP/logs/entry.log")" "restart: no second init"
kill -TERM "$entry_pid"
wait "$entry_pid"
