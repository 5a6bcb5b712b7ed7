#!/usr/bin/env bash
# Controller benchmark: enrolments per second, admin API requests per second
# (4 keep-alive mTLS clients), TLS handshake rate against openssl s_server on
# the same certificate, RSS and list latency with a large identity table.
# Usage: tests/bench/controller.sh BUILD_DIR
#   BENCH_ENROLLMENTS (200)  BENCH_IDENTITIES (100000)  BENCH_CREATE_SECONDS (600)
#   BENCH_SECONDS (10)       BENCH_OUT (file the results are appended to)
build=${1:?usage: tests/bench/controller.sh BUILD_DIR}
WEFT_BUILD=$(cd "$build" && pwd) || exit 2
export WEFT_BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

n_enroll=${BENCH_ENROLLMENTS:-200}
n_ids=${BENCH_IDENTITIES:-100000}
create_secs=${BENCH_CREATE_SECONDS:-600}
secs=${BENCH_SECONDS:-10}
out=${BENCH_OUT:-/dev/null}
lc="$here/loadclient.py"

report() {
    printf '%-52s %s\n' "$1" "$2" | tee -a "$out"
}
now() { date +%s.%N; }
elapsed() { python3 -c "print(round($(now) - $1, 3))"; }
rate() { python3 -c "print(round($1 / max($2, 1e-9), 1))"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

ctl_new bench
pid=${CTL_PID[$T_DIR]}
report "controller RSS idle (kB)" "$(rss_kb "$pid")"

# ---- enrolment: tokens made beforehand, then N sequential weft-edge enroll
mkdir -p "$T_TMP/tok" "$T_TMP/ids"
t=$(now)
for i in $(seq 1 "$n_enroll"); do
    "$WEFT" identity create "dev-$i" --out "$T_TMP/tok/$i.jwt" >/dev/null 2>>"$T_TMP/logs/cli.log" ||
        t_bail "identity create dev-$i failed: $(tail -3 "$T_TMP/logs/cli.log")"
done
e=$(elapsed "$t")
report "CLI identity create (process per call), per s" "$(rate "$n_enroll" "$e") ($n_enroll in ${e}s)"
t=$(now)
for i in $(seq 1 "$n_enroll"); do
    "$WEFT_EDGE" enroll "$T_TMP/tok/$i.jwt" --out "$T_TMP/ids/$i.json" >/dev/null 2>>"$T_TMP/logs/edge.log" ||
        t_bail "enroll $i failed: $(tail -3 "$T_TMP/logs/edge.log")"
done
e=$(elapsed "$t")
report "weft-edge enroll sequential, per s" "$(rate "$n_enroll" "$e") ($n_enroll in ${e}s)"
# The server's share of each enrolment, from its own request log.
report "POST /v1/enroll server time p50/max (ms, from log)" "$(grep -h 'method=POST path=/v1/enroll ' "$T_TMP"/logs/ctl-*.log |
    sed -nE 's/.*duration_ms=([0-9]+).*/\1/p' | sort -n |
    awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)] " / " a[NR]; else print "n/a"}')"
report "controller RSS after $n_enroll enrolments (kB)" "$(rss_kb "$pid")"

# ---- requests per second on a list call, 4 keep-alive mTLS clients
r=$(python3 "$lc" rps --url "$T_URL" --creds "$T_ADMIN" --conns 4 --seconds "$secs" \
    --path '/v1/identities?limit=10')
report "GET /v1/identities?limit=10, 4 conns, req/s" "$(jget "$r" .rps) (errors $(jget "$r" .errors))"
r=$(python3 "$lc" rps --url "$T_URL" --creds "$T_ADMIN" --conns 1 --seconds "$secs" \
    --path '/v1/identities?limit=10')
report "GET /v1/identities?limit=10, 1 conn, req/s" "$(jget "$r" .rps) (errors $(jget "$r" .errors))"
r=$(python3 "$lc" rps --url "$T_URL" --creds "$T_ADMIN" --conns 4 --seconds "$secs" --path /v1/version)
report "GET /v1/version, 4 conns, req/s (client-bound)" "$(jget "$r" .rps)"

# ---- TLS handshakes per second: our server vs openssl s_server, same key and cert
handshakes() {
    openssl s_time -connect "127.0.0.1:$1" -new -time 5 2>/dev/null |
        sed -nE 's/^([0-9]+) connections in ([0-9.]+) real seconds.*/\1 \2/p' | tail -1
}
read -r hn hs <<<"$(handshakes "${CTL_PORT[$T_DIR]}")"
ours=$(rate "${hn:-0}" "${hs:-1}")
sport=$(free_port)
bg s_server openssl s_server -accept "127.0.0.1:$sport" -cert "$T_DIR/server.pem" \
    -key "$T_DIR/server.key" -quiet
sleep 0.5
read -r bn bs <<<"$(handshakes "$sport")"
base=$(rate "${bn:-0}" "${bs:-1}")
stop_pid "$BG_PID" 5
report "TLS 1.3 handshakes/s, weft-controller" "$ours"
report "TLS 1.3 handshakes/s, openssl s_server (baseline)" "$base"
report "handshake rate ratio controller/s_server" "$(python3 -c "print(round($ours / max($base, 1e-9), 2))")"

# ---- a large identity table
# Every acknowledged create is fsync'd (synchronous=FULL), so the disk's own
# rate of small write+fsync in the same directory is the ceiling to compare with.
fsyncs=$(python3 -c '
import os, sys, time
# SQLite in WAL mode appends a 4 KiB page (+24-byte frame header) and fsyncs per commit.
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
n, end = 0, time.monotonic() + 3
while time.monotonic() < end:
    os.write(fd, b"x" * 4120)
    os.fsync(fd)
    n += 1
print(round(n / 3, 1))' "$T_DIR/fsync.bench")
rm -f "$T_DIR/fsync.bench"
report "disk baseline: 4 KiB append+fsync per s" "$fsyncs"
t=$(now)
r=$(python3 "$lc" create --url "$T_URL" --creds "$T_ADMIN" --prefix bench --count "$n_ids" \
    --conns 8 --seconds "$create_secs")
e=$(elapsed "$t")
made=$(jget "$r" .created)
report "POST /v1/identities, 8 conns, creates/s" "$(jget "$r" .per_second) ($made of $n_ids in ${e}s, errors $(jget "$r" .errors))"
report "create rate ratio to the fsync baseline" "$(python3 -c "print(round($(jget "$r" .per_second) / max($fsyncs, 1e-9), 2))")"
api GET '/v1/identities?limit=1'
total=$(jget "$T_BODY" .meta.total)
report "identities in the store" "$total"
report "controller RSS with $total identities (kB)" "$(rss_kb "$pid") (peak $(hwm_kb "$pid"))"
report "weft.db size (kB)" "$(du -k "$T_DIR/weft.db" | cut -f1)"
for mode in offset name prefix; do
    r=$(python3 "$lc" latency --url "$T_URL" --creds "$T_ADMIN" --total "$made" --mode "$mode" --samples 300)
    report "list latency at $total, $mode (p50/p99/max ms)" \
        "$(jget "$r" .p50_ms) / $(jget "$r" .p99_ms) / $(jget "$r" .max_ms) (errors $(jget "$r" .errors))"
done
r=$(python3 "$lc" rps --url "$T_URL" --creds "$T_ADMIN" --conns 4 --seconds "$secs" \
    --path '/v1/identities?limit=10')
report "GET /v1/identities?limit=10 at $total, 4 conns, req/s" "$(jget "$r" .rps)"
ctl_stop "$T_DIR"
