#!/usr/bin/env bash
# The multi-host mesh suite: routers, edges and the controller each in a
# network namespace (tests/mesh/topo.sh), links cut with `ip link set down`,
# routers killed with SIGKILL. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN; without
# them it prints "mesh: skipped: <reason>" and exits 0.
# Usage: tests/mesh/run.sh BUILD_DIR [test_name ...]
set -u
build=${1:?usage: tests/mesh/run.sh BUILD_DIR [test_name ...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "mesh: no build dir $1" >&2; exit 2; }
probe="wmprobe$$"
if ! command -v ip >/dev/null; then
    echo "mesh: skipped: no ip command (iproute2)"; exit 0
fi
if ! err=$(ip netns add "$probe" 2>&1); then
    echo "mesh: skipped: cannot create network namespaces ($err)"; exit 0
fi
if ! err=$(ip -n "$probe" link add wmp0 type veth peer name wmp1 2>&1); then
    ip netns del "$probe"
    echo "mesh: skipped: cannot create veth pairs ($err)"; exit 0
fi
ip netns del "$probe"

export WEFT_BUILD="$build"
export WEFT="$build/cli/weft"
export WEFT_CONTROLLER_BIN="$build/controller/weft-controller"
export WEFT_EDGE="$build/edge/weft-edge"
export WEFT_ROUTER="$build/router/weft-router"
unset WEFT_CONTROLLER WEFT_IDENTITY
limit=${WEFT_TEST_TIMEOUT:-600}
tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do t=${t%.sh}; t=${t#test_}; tests+=("$here/test_$t.sh"); done
else
    for t in "$here"/test_*.sh; do tests+=("$t"); done
fi
logs=$(mktemp -d "${TMPDIR:-/tmp}/weft-mesh.XXXXXX")
trap 'rm -rf "$logs"' EXIT
pass=0 fail=0
for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    start=$(date +%s)
    timeout -k 15 "$limit" bash "$t" >"$logs/$name.log" 2>&1
    rc=$?
    summary=$(grep -E '^# [0-9]+ passed, [0-9]+ failed' "$logs/$name.log" | tail -1 | sed 's/^# //')
    if [ "$rc" -eq 0 ]; then
        echo "PASS mesh/$name ($(($(date +%s) - start))s, ${summary:-no checks})"
        grep -E '^#   (stall|figure)' "$logs/$name.log"
        pass=$((pass + 1))
    else
        echo "FAIL mesh/$name (exit $rc, ${summary:-no summary})"
        sed 's/^/    /' "$logs/$name.log"
        fail=$((fail + 1))
    fi
done
echo "mesh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
