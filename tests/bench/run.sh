#!/usr/bin/env bash
# Runs every benchmark against one build and prints the figures; each bench is
# bounded in time (see the BENCH_* variables at the top of each script).
# Usage: tests/bench/run.sh BUILD_DIR
#   BENCH_OUT  file the results are also written to (default BUILD_DIR/bench-results.txt)
set -u
build=${1:?usage: tests/bench/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "bench: no build dir $1" >&2; exit 2; }
export BENCH_OUT=${BENCH_OUT:-$build/bench-results.txt}
{
    echo "# weft bench $(date -u +%FT%TZ) $(git -C "$here" rev-parse --short HEAD 2>/dev/null)"
    echo "# $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo), $(uname -r)"
} | tee "$BENCH_OUT"
fail=0
for b in controller dataplane mesh admission edge_idle; do
    echo "== $b"
    timeout -k 15 "${BENCH_TIMEOUT:-1800}" bash "$here/$b.sh" "$build" || { echo "bench $b FAILED"; fail=1; }
done
echo "results: $BENCH_OUT"
exit $fail
