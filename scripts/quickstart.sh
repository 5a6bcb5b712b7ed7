#!/usr/bin/env bash
# A whole weft network on this machine, from scratch, in ./.quickstart:
#   - a controller with its SQLite store (init + run on free loopback ports),
#   - three routers, enrolled with one-time tokens, linked to each other,
#   - a demo web service behind a hosting edge (weft-edge run),
#   - a dialling edge intercepting the service's address,
# then curl through the fabric, and the circuit's path through the routers.
# Everything is stopped when the script ends; the network stays on disk.
# Usage: scripts/quickstart.sh BUILD_DIR   (make quickstart does this)
set -euo pipefail

build=${1:-build}
build=$(cd "$build" 2>/dev/null && pwd) || {
    echo "quickstart: no build directory '$1'; run 'make build' first" >&2
    exit 2
}
ctl_bin="$build/controller/weft-controller"
weft_bin="$build/cli/weft"
edge_bin="$build/edge/weft-edge"
router_bin="$build/router/weft-router"
for b in "$ctl_bin" "$weft_bin" "$edge_bin" "$router_bin"; do
    [ -x "$b" ] || { echo "quickstart: $b is not built; run 'ninja -C $build'" >&2; exit 2; }
done

qs="$PWD/.quickstart"
pids=()

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" | sed "s#$build/[a-z]*/##g; s#$qs/#.quickstart/#g"; }
run() { show "$@"; "$@"; }
# bg NAME CMD...: start a process in the background, its log in .quickstart/NAME.log
bg() {
    local name=$1; shift
    show "$@" "&"
    "$@" >"$qs/$name.log" 2>&1 &
    pids+=($!)
}

finish() {
    local rc=$? pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        echo >&2
        echo "quickstart failed (exit $rc). The last log lines of each process:" >&2
        for f in "$qs"/*.log; do
            [ -f "$f" ] || continue
            echo "--- ${f#$qs/}" >&2
            tail -8 "$f" | sed 's/^/  /' >&2
        done
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free ports below the ephemeral range, all distinct.
mapfile -t ports < <(python3 - <<'EOF'
import random, socket
got = []
while len(got) < 12:
    p = random.randint(20000, 32000)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        got.append(p)
    except OSError:
        pass
    finally:
        s.close()
print("\n".join(map(str, got)))
EOF
)
[ "${#ports[@]}" -eq 12 ] || { echo "quickstart: not enough free ports on 127.0.0.1" >&2; exit 1; }
api=${ports[0]} ctl=${ports[1]} web=${ports[2]} icpt=${ports[3]}

# wait_for DESC SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
    local desc=$1 secs=$2 i; shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "quickstart: $desc did not happen within ${secs}s" >&2
    return 1
}

step "A new network in .quickstart/ (the previous one, if any, is wiped)"
rm -rf "$qs"
mkdir -p "$qs"
run "$ctl_bin" init --dir "$qs/controller" --listen "127.0.0.1:$api" \
    --control-listen "127.0.0.1:$ctl" --name quickstart

step "The controller, on https://127.0.0.1:$api"
bg controller "$ctl_bin" run --dir "$qs/controller"
wait_for "the controller answering" 15 curl -sf --cacert "$qs/controller/ca.pem" \
    "https://127.0.0.1:$api/v1/version"
curl -s --cacert "$qs/controller/ca.pem" "https://127.0.0.1:$api/v1/version"
echo

export WEFT_CONTROLLER="https://127.0.0.1:$api"
export WEFT_IDENTITY="$qs/controller/admin.json"

step "Three routers: each enrols with a one-time token and links to the others"
for i in 1 2 3; do
    run "$weft_bin" router create "r$i" --out "$qs/r$i.jwt"
    run "$router_bin" enroll "$qs/r$i.jwt" --dir "$qs/r$i" \
        --edge-listen "127.0.0.1:${ports[$((2 + 2 * i))]}" \
        --link-listen "127.0.0.1:${ports[$((3 + 2 * i))]}"
done
for i in 1 2 3; do bg "r$i" "$router_bin" run --dir "$qs/r$i"; done
online() { [ "$("$weft_bin" --json router list | python3 -c \
    'import json,sys; print(sum(1 for r in json.load(sys.stdin)["data"] if r.get("online")))')" = 3 ]; }
wait_for "three routers online" 20 online
run "$weft_bin" router list

step "A demo web service on 127.0.0.1:$web (it listens on loopback only)"
mkdir -p "$qs/www"
echo "hello from the demo service, reached through weft" >"$qs/www/index.html"
bg web python3 -m http.server "$web" --bind 127.0.0.1 --directory "$qs/www"

step "Identities: a host for the service and a sensor that may use it"
run "$weft_bin" identity create web-host --role hosts --out "$qs/web-host.jwt"
run "$weft_bin" identity create sensor-01 --role sensors --out "$qs/sensor-01.jwt"
run "$edge_bin" enroll "$qs/web-host.jwt" --out "$qs/web-host.json"
run "$edge_bin" enroll "$qs/sensor-01.jwt" --out "$qs/sensor-01.json"

step "The service and who may dial and bind it"
run "$weft_bin" service create demo --role demo --intercept "tcp:127.0.0.1:$icpt" \
    --host "tcp:127.0.0.1:$web"
run "$weft_bin" policy create sensors-dial --type dial --identities '#sensors' --services '#demo'
run "$weft_bin" policy create hosts-bind --type bind --identities '#hosts' --services '#demo'

step "The edges: one hosts the service, one intercepts 127.0.0.1:$icpt for the sensor"
bg edge-host "$edge_bin" run --identity "$qs/web-host.json"
bg edge-sensor "$edge_bin" run --identity "$qs/sensor-01.json"
wait_for "the hosting edge binding demo" 30 grep -q "event=edge_bound service=demo" \
    "$qs/edge-host.log"
wait_for "the sensor's edge intercepting demo" 30 grep -q \
    "event=edge_intercepting service=demo" "$qs/edge-sensor.log"

step "Traffic through the fabric: curl -> sensor's edge -> routers -> host's edge -> service"
fetch() { curl -sf --max-time 5 "http://127.0.0.1:$icpt/index.html" >"$qs/page.out"; }
wait_for "a page through the fabric" 20 fetch
run curl -s --max-time 5 "http://127.0.0.1:$icpt/index.html"

step "The circuit's path through the routers"
path=$(grep -ho "event=mesh_dial .*" "$qs"/r[123].log | head -1 || true)
if [ -n "$path" ]; then
    echo "$path"
else
    grep -ho "event=[a-z_]*dial[a-z_]* .*" "$qs"/r[123].log | head -3 || true
    echo "(both edges chose the same router: the circuit did not need a link)"
fi
names=$("$weft_bin" --json router list | python3 -c \
    'import json,sys; print(" ".join(r["id"]+"="+r["name"] for r in json.load(sys.stdin)["data"]))')
echo "routers: $names"

step "Next"
cat <<EOF
The network is kept in .quickstart/ (this script stopped every process; logs are there too).
To run it again by hand:

  $ctl_bin run --dir $qs/controller &
  $router_bin run --dir $qs/r1 &     # and r2, r3
  export WEFT_CONTROLLER=https://127.0.0.1:$api
  export WEFT_IDENTITY=$qs/controller/admin.json
  $edge_bin run --identity $qs/web-host.json &
  $edge_bin run --identity $qs/sensor-01.json &
  curl http://127.0.0.1:$icpt/
  $weft_bin identity list

Every command: $weft_bin --help. A fresh network: run this script again.
EOF
