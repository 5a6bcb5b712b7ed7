#!/usr/bin/env bash
# Runs every built fuzz target for a bounded time each, from its seed corpus.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?build dir}; secs=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
pass=0; fail=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  { [ -f "$bin" ] && [ -x "$bin" ]; } || continue
  name=$(basename "$bin")
  seeds="$here/corpus/$name"; mkdir -p "$work/$name"
  args=("$work/$name")
  [ -d "$seeds" ] && args+=("$seeds")
  echo "fuzz: $name for ${secs}s"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
       -artifact_prefix="$work/$name-" "${args[@]}" >"$work/$name.log" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"
    mkdir -p "$here/corpus/$name"; cp "$work/$name"-crash-* "$here/corpus/$name/" 2>/dev/null || true
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
