#!/usr/bin/env bash
# Runs every built fuzz target for a bounded time each, from its seed corpus,
# as many at once as there are cores (libFuzzer runs on one).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS   (FUZZ_JOBS overrides the count)
set -euo pipefail
build=${1:?build dir}; secs=${2:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run_one() { # BIN: writes $work/NAME.rc
  local bin=$1 name seeds args rc=0
  name=$(basename "$bin")
  seeds="$here/corpus/$name"; mkdir -p "$work/$name"
  args=("$work/$name")
  [ -d "$seeds" ] && args+=("$seeds")
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
    -artifact_prefix="$work/$name-" "${args[@]}" >"$work/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$name.rc"
}

names=()
for bin in "$build"/tests/fuzz/fuzz_*; do
  { [ -f "$bin" ] && [ -x "$bin" ]; } || continue
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "fuzz: $(basename "$bin") for ${secs}s"
  names+=("$(basename "$bin")")
  run_one "$bin" &
done
wait
pass=0; fail=0
for name in "${names[@]}"; do
  if [ "$(cat "$work/$name.rc" 2>/dev/null)" == 0 ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"
    mkdir -p "$here/corpus/$name"; cp "$work/$name"-crash-* "$here/corpus/$name/" 2>/dev/null || true
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
