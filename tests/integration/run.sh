#!/usr/bin/env bash
# Runs every black-box integration test against the binaries of one build.
# Usage: tests/integration/run.sh BUILD_DIR [test_name ...]
#   WEFT_TEST_TIMEOUT  seconds allowed per test (default 300)
#   WEFT_KEEP_TMP=1    keep each test's temp dir (logs, data) for a post-mortem
# ASAN_OPTIONS / UBSAN_OPTIONS pass through to every process. Ends with the
# line "N passed, N failed" and exits non-zero when anything failed.
set -u
build=${1:?usage: tests/integration/run.sh BUILD_DIR [test_name ...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build dir $1" >&2; exit 2; }

export WEFT_BUILD="$build"
export WEFT="$build/cli/weft"
export WEFT_CONTROLLER_BIN="$build/controller/weft-controller"
export WEFT_EDGE="$build/edge/weft-edge"
export WEFT_ROUTER="$build/router/weft-router"
unset WEFT_CONTROLLER WEFT_IDENTITY
limit=${WEFT_TEST_TIMEOUT:-300}

tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do
        t=${t%.sh}; t=${t#test_}
        tests+=("$here/test_$t.sh")
    done
else
    for t in "$here"/test_*.sh; do tests+=("$t"); done
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/weft-integration.XXXXXX")
trap 'rm -rf "$logs"' EXIT
pass=0
fail=0
failed=()
for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    if [ ! -f "$t" ]; then
        echo "FAIL $name (no such test)"; fail=$((fail + 1)); failed+=("$name"); continue
    fi
    start=$(date +%s)
    # timeout signals the test's whole process group, so a hung test takes the
    # processes it started with it.
    timeout -k 15 "$limit" bash "$t" >"$logs/$name.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    summary=$(grep -E '^# [0-9]+ passed, [0-9]+ failed' "$logs/$name.log" | tail -1 | sed 's/^# //')
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name (${secs}s, ${summary:-no checks})"
        pass=$((pass + 1))
    else
        [ "$rc" -eq 124 ] && summary="timed out after ${limit}s"
        echo "FAIL $name (exit $rc, ${secs}s, ${summary:-no summary})"
        sed 's/^/    /' "$logs/$name.log"
        fail=$((fail + 1)); failed+=("$name")
    fi
done
[ "$fail" -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
