#!/usr/bin/env bash
# A local weft network in ./.quickstart, from scratch, in a few seconds:
# a controller (init + run on a free loopback port), an identity created with
# the weft CLI and enrolled with weft-edge, then what to try next.
# The controller is stopped when the script ends; the network stays on disk.
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
for b in "$ctl_bin" "$weft_bin" "$edge_bin"; do
    [ -x "$b" ] || { echo "quickstart: $b is not built; run 'ninja -C $build'" >&2; exit 2; }
done

qs="$PWD/.quickstart"
ctl_pid=

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$build/[a-z]*/##g; s#$qs/#.quickstart/#g"; "$@"; }

finish() {
    local rc=$?
    if [ -n "$ctl_pid" ] && kill -0 "$ctl_pid" 2>/dev/null; then
        kill -TERM "$ctl_pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$ctl_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$ctl_pid" 2>/dev/null || true
        wait "$ctl_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        echo >&2
        echo "quickstart failed (exit $rc). The controller's log:" >&2
        tail -30 "$qs/controller.log" 2>/dev/null | sed 's/^/  /' >&2 || true
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port below the ephemeral range that binds right now.
port=$(python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()
EOF
)
[ -n "$port" ] || { echo "quickstart: no free port on 127.0.0.1" >&2; exit 1; }

step "A new network in .quickstart/ (the previous one, if any, is wiped)"
rm -rf "$qs"
mkdir -p "$qs"
run "$ctl_bin" init --dir "$qs/controller" --listen "127.0.0.1:$port" --name quickstart

step "The controller, on https://127.0.0.1:$port"
printf '$ weft-controller run --dir .quickstart/controller &\n'
"$ctl_bin" run --dir "$qs/controller" >"$qs/controller.log" 2>&1 &
ctl_pid=$!
for i in $(seq 1 100); do
    kill -0 "$ctl_pid" 2>/dev/null || { echo "quickstart: the controller exited" >&2; exit 1; }
    code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/v1/version" || true)
    [ "$code" = 200 ] && break
    [ "$i" = 100 ] && { echo "quickstart: the controller did not answer within 10 s" >&2; exit 1; }
    sleep 0.1
done
curl -s --cacert "$qs/controller/ca.pem" "https://127.0.0.1:$port/v1/version"
echo

export WEFT_CONTROLLER="https://127.0.0.1:$port"
export WEFT_IDENTITY="$qs/controller/admin.json"

step "An identity for a device, and its one-time enrolment token"
run "$weft_bin" identity create sensor-01 --role sensors --out "$qs/sensor-01.jwt"

step "The device enrols: its key is made locally, the CA pinned by the token"
run "$edge_bin" enroll "$qs/sensor-01.jwt" --out "$qs/sensor-01.json"
printf 'identity file: .quickstart/sensor-01.json (mode %s)\n' "$(stat -c %a "$qs/sensor-01.json")"

step "The network's identities"
run "$weft_bin" identity list
echo
run "$weft_bin" identity show sensor-01

step "Next"
cat <<EOF
The network is kept in .quickstart/ (this script stopped the controller). To go on:

  $ctl_bin run --dir $qs/controller &
  export WEFT_CONTROLLER=https://127.0.0.1:$port
  export WEFT_IDENTITY=$qs/controller/admin.json
  $weft_bin service create web --role webapps --intercept tcp:web.weft:80 --host tcp:127.0.0.1:8080
  $weft_bin policy create sensors-web --type dial --identities sensors --services webapps
  $weft_bin identity create sensor-02 --role sensors --out sensor-02.jwt
  $weft_bin --json identity list

Every command: $weft_bin --help. A fresh network: run this script again.
EOF
