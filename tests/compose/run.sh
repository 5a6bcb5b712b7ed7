#!/usr/bin/env bash
# The compose network end to end: builds the images offline, brings up
# deploy/compose/docker-compose.yml (controller, bootstrap job, four routers, a
# hosting edge in front of HTTP and MQTT, a dialling edge and a clients container),
# checks traffic with real clients, restarts, and a transfer across its router being
# killed and stopped (SIGTERM); then tears everything down.
#
#   tests/compose/run.sh
#   WEFT_COMPOSE_TIMEOUT=600          the whole run's limit in seconds
#   WEFT_COMPOSE_KEEP=1               leave the network up for a post-mortem
#
# Needs root (installs docker.io and docker-compose with scripts/deps.sh docker, and
# starts dockerd when none runs; a dockerd it started is stopped at the end). Where
# dockerd cannot run it prints "compose: skipped: dockerd cannot run here: <reason>"
# and exits 0. Ends with "N passed, N failed, N skipped".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${WEFT_COMPOSE_INNER:-}" ]; then
    # timeout signals the inner run, whose trap tears down what it started.
    WEFT_COMPOSE_INNER=1 timeout -k 30 "${WEFT_COMPOSE_TIMEOUT:-600}" bash "$0" "$@"
    rc=$?
    [ "$rc" -eq 124 ] && echo "compose: FAIL: timed out after ${WEFT_COMPOSE_TIMEOUT:-600}s"
    exit "$rc"
fi

compose_file="$root/deploy/compose/docker-compose.yml"
project="weftci$$"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-compose.XXXXXX")
dockerd_pid=""
pass=0 fail=0 skip=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
dc() { docker-compose -f "$compose_file" -p "$project" "$@"; }

cleanup() {
    trap - EXIT INT TERM
    if [ -n "${compose_up:-}" ]; then
        if [ "$fail" -gt 0 ]; then
            echo "# logs of the failed run:"
            dc logs --no-color --tail 40 2>&1 | sed 's/^/#   /'
        fi
        if [ "${WEFT_COMPOSE_KEEP:-0}" = 1 ]; then
            echo "# kept: docker-compose -f $compose_file -p $project down -v"
        else
            dc down -v --remove-orphans -t 5 >/dev/null 2>&1
            # down can give up on a network whose last endpoint is still going away.
            for _ in 1 2 3; do
                nets=$(docker network ls -q --filter "label=com.docker.compose.project=$project")
                vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
                [ -z "$nets$vols" ] && break
                sleep 1
                for n in $nets; do docker network rm "$n" >/dev/null 2>&1; done
                for v in $vols; do docker volume rm -f "$v" >/dev/null 2>&1; done
            done
        fi
    fi
    docker image rm -f weftci-probe >/dev/null 2>&1
    if [ -n "$dockerd_pid" ] && [ "${WEFT_COMPOSE_KEEP:-0}" != 1 ]; then
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

skip_all() {
    echo "compose: skipped: $*"
    exit 0
}

# ---- can containers run here? ----

if ! "$root/scripts/deps.sh" docker >"$tmp/deps.log" 2>&1; then
    skip_all "cannot install docker.io and docker-compose: $(tail -1 "$tmp/deps.log")"
fi
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || skip_all "dockerd cannot run here: no dockerd binary"
    # Addresses from 198.19.0.0/16 (benchmarking range) rather than docker's default
    # 172.17/16, so nothing here claims a range a real network may use.
    dockerd --bip 198.19.255.1/24 --default-address-pool base=198.19.0.0/16,size=24 \
        --pidfile "$tmp/dockerd.pid" --host unix:///var/run/docker.sock \
        >"$tmp/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 30); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        reason=$(grep -iE 'level=(fatal|error)|failed' "$tmp/dockerd.log" | tail -1 | sed 's/.*msg="\([^"]*\)".*/\1/')
        skip_all "dockerd cannot run here: ${reason:-it did not answer within 30 s}"
    fi
    echo "# started dockerd (pid $dockerd_pid)"
fi
# A container from an empty base must start: cgroups, overlay and namespaces work.
mkdir -p "$tmp/probe"
cp "$(command -v busybox)" "$tmp/probe/busybox"
printf 'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT ["/busybox", "true"]\n' >"$tmp/probe/Dockerfile"
if ! docker build -q -t weftci-probe "$tmp/probe" >"$tmp/probe.log" 2>&1 ||
    ! timeout 60 docker run --rm weftci-probe >>"$tmp/probe.log" 2>&1; then
    skip_all "dockerd cannot run here: a container does not start: $(grep -v DEPRECATED "$tmp/probe.log" | grep . | tail -1)"
fi

# ---- images ----

if ! "$root/deploy/docker/build.sh" --demo >"$tmp/images" 2>"$tmp/build.log"; then
    cat "$tmp/build.log"
    bad "images build offline"
    echo "$pass passed, $fail failed, $skip skipped"
    exit 1
fi
ok "images build offline"
sed 's/^/# image size (bytes): /' "$tmp/images"
router_size=$(awk '$1 == "weft/router:latest" {print $2}' "$tmp/images")
if [ -n "$router_size" ] && [ "$router_size" -le 15728640 ]; then
    ok "router image is $router_size bytes (at most 15 MiB)"
else
    bad "router image is ${router_size:-?} bytes (more than 15 MiB)"
fi

# ---- up ----

# The compose file's subnets are fixed: a run killed before its teardown would make
# this one's "up" fail. Leftovers of earlier runs (projects weftci*) go first.
for c in $(docker ps -aq --filter label=com.docker.compose.project 2>/dev/null); do
    case $(docker inspect --format '{{index .Config.Labels "com.docker.compose.project"}}' "$c") in
        weftci*) docker rm -f -v "$c" >/dev/null 2>&1 ;;
    esac
done
docker network ls --format '{{.Name}}' | grep '^weftci[0-9]*_' | xargs -r docker network rm >/dev/null 2>&1
docker volume ls -q | grep '^weftci[0-9]*_' | xargs -r docker volume rm >/dev/null 2>&1
command -v jq >/dev/null || {
    bad "jq is needed to read weft's JSON (apt-get install jq)"
    echo "$pass passed, $fail failed, $skip skipped"
    exit 1
}

compose_up=1
if ! dc up -d >"$tmp/up.log" 2>&1; then
    cat "$tmp/up.log"
    bad "docker-compose up"
    echo "$pass passed, $fail failed, $skip skipped"
    exit 1
fi
ok "docker-compose up (controller initialised, bootstrap done, routers and edges enrolled)"

url=http://198.18.3.30:8080
wait_http() {
    for _ in $(seq 1 "$1"); do
        curl -sf -m 5 -o /dev/null "$url/" && return 0
        sleep 1
    done
    return 1
}
if wait_http 90; then ok "HTTP through weft answers"; else bad "HTTP through weft answers within 90 s"; fi

body=$(curl -sS -m 10 "$url/" 2>&1)
case $body in *"hello through weft"*) ok "HTTP body arrives intact" ;; *) bad "HTTP body: $body" ;; esac

# The same deterministic 64 MiB the demo image serves.
head -c 67108864 /dev/zero | openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f \
    -iv 0 -nosalt 2>/dev/null | sha256sum | cut -d' ' -f1 >"$tmp/blob.sha"
want=$(cat "$tmp/blob.sha")
got=$(curl -sS -m 60 "$url/blob.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] && ok "64 MiB over HTTP through weft, digest matches" || bad "64 MiB digest $got, want $want"

# MQTT: a subscriber and a publisher on the host, both through the dialling edge.
timeout 20 mosquitto_sub -h 198.18.3.30 -p 1883 -t weft/test -C 1 -W 15 >"$tmp/sub.out" 2>&1 &
sub=$!
sleep 1
for i in 1 2 3 4 5; do
    mosquitto_pub -h 198.18.3.30 -p 1883 -t weft/test -m "hello-$i" -q 1 2>/dev/null
    sleep 1
    kill -0 "$sub" 2>/dev/null || break
done
wait "$sub"
grep -q '^hello-' "$tmp/sub.out" && ok "MQTT publish and subscribe through weft" ||
    bad "MQTT through weft: $(cat "$tmp/sub.out")"

# The clients container: real clients beside the dialling edge.
out=$(dc exec -T clients busybox wget -q -O- http://198.18.3.30:8080/ 2>&1)
case $out in *"hello through weft"*) ok "wget in the clients container" ;; *) bad "wget in the clients container: $out" ;; esac
dc exec -T clients mosquitto_pub -h 198.18.3.30 -t weft/c -m x >/dev/null 2>&1 &&
    ok "mosquitto_pub in the clients container" || bad "mosquitto_pub in the clients container"

# ---- restarts keep identities ----

restarted=$(date +%s)
dc restart -t 10 controller r1 r2 r3 r4 edge-host edge-dial >/dev/null 2>&1
if wait_http 90; then ok "HTTP through weft after restarting everything"; else bad "HTTP after restart"; fi
inits=$(dc logs --no-color controller 2>&1 | grep -c 'holds no network; initialising')
enrols=$(dc logs --no-color r1 r2 r3 r4 edge-host edge-dial 2>&1 | grep -c '^.*| enrolled ')
[ "$inits" = 1 ] && [ "$enrols" = 6 ] && ok "restarts reuse the stored network and identities" ||
    bad "restarts: $inits controller inits (want 1), $enrols enrolments (want 6)"
cid=$(dc ps -q controller)
for _ in $(seq 1 60); do
    h=$(docker inspect --format '{{.State.Health.Status}}' "$cid" 2>/dev/null)
    [ "$h" = healthy ] && break
    sleep 1
done
[ "$h" = healthy ] && ok "controller health check reports healthy" || bad "controller health: $h"

# ---- a router stopped in the middle of a transfer ----

wx() { dc exec -T controller weft --json "$@" 2>/dev/null; }

# The ingress router of the newest open circuit of "web": the router the dialling
# edge's transfer runs through (circuit list paths start at the ingress).
# Service and router ids are looked up once, so that finding the router takes one call.
ingress_router() {
    local rid
    [ -n "${web_id:-}" ] || web_id=$(wx service list | jq -r '.data[] | select(.name == "web") | .id')
    [ -n "${routers_json:-}" ] || routers_json=$(wx router list)
    rid=$(wx circuit list --state open |
        jq -r --arg s "$web_id" '[.data[] | select(.service == $s)] | sort_by(.opened_at) | last | .path[0] // empty')
    jq -r --arg r "$rid" '.data[] | select(.id == $r) | .name' <<<"$routers_json"
}

# Both of the dialling edge's sessions ready again (r1 and r2: its router policy):
# the edge logs a READY for the restarted router after it was started.
wait_sessions() {
    local since=$1 addr=$2
    for _ in $(seq 1 60); do
        docker logs --since "$since" "$(dc ps -q edge-dial)" 2>&1 |
            grep 'edge_session_state' | grep -q "router=$addr:3022 .*to=READY" && return 0
        sleep 1
    done
    return 1
}

# Starts a 64 MiB download at 8 MiB/s, stops its ingress router with $1 (KILL: docker
# kill -s KILL, a crash; TERM: docker-compose stop, SIGTERM) after 2 s, and leaves
# crc (curl's exit), got (digest), stall_ms (longest time the file did not grow,
# polled every 20 ms), stop_ms and victim. The victim is started again.
transfer_across_stop() {
    local how=$1 cpid mpid t0
    wait_mesh || bad "the mesh has not six links up within 60 s (weft mesh)"
    rm -f "$tmp/blob2" "$tmp/stall"
    curl -sS -m 120 --limit-rate 8M -o "$tmp/blob2" "$url/blob.bin" 2>"$tmp/curl2.err" &
    cpid=$!
    sleep 2
    victim=$(ingress_router)
    (
        size=0 last=$(date +%s%N) max=0 samples=0
        for _ in $(seq 1 6000); do
            kill -0 "$cpid" 2>/dev/null || break
            samples=$((samples + 1))
            n=$(stat -c %s "$tmp/blob2" 2>/dev/null || echo 0) now=$(date +%s%N)
            if [ "$n" != "$size" ]; then
                gap=$(((now - last) / 1000000))
                [ "$gap" -gt "$max" ] && max=$gap
                size=$n last=$now
            fi
            sleep 0.02
        done
        echo "$max" >"$tmp/stall"
        echo "# stall monitor ($how): $samples samples, last size $size, longest stall $max ms"
    ) &
    mpid=$!
    # The stop must land in the middle: a transfer already over would pass for nothing.
    at_stop=$(stat -c %s "$tmp/blob2" 2>/dev/null || echo 0)
    kill -0 "$cpid" 2>/dev/null || at_stop="over"
    t0=$(date +%s%N)
    case $victim in
        r[1-4]) if [ "$how" = KILL ]; then dc kill -s KILL "$victim"; else dc stop -t 10 "$victim"; fi >/dev/null 2>&1 ;;
    esac
    stop_ms=$((($(date +%s%N) - t0) / 1000000))
    wait "$cpid"
    crc=$?
    wait "$mpid"
    stall_ms=$(cat "$tmp/stall" 2>/dev/null)
    got=$(sha256sum <"$tmp/blob2" | cut -d' ' -f1)
    size=$(stat -c %s "$tmp/blob2" 2>/dev/null || echo 0)
}

# The full mesh up again (six links between four routers) as the controller sees it:
# a resume needs a path from the edge's other router to the far end's router, and
# links come back with a backoff after restarts.
wait_mesh() {
    for _ in $(seq 1 60); do
        [ "$(wx mesh | jq '[.data.links[] | select(.up)] | length')" = 6 ] && return 0
        sleep 1
    done
    return 1
}

restart_victim() {
    local since
    since=$(date +%s)
    dc start "$victim" >/dev/null 2>&1
    wait_sessions "$since" "198.18.1.1${victim#r}" ||
        bad "the dialling edge did not reconnect to $victim within 60 s of its restart"
}

for r in 11 12; do
    wait_sessions "$restarted" "198.18.1.$r" ||
        bad "the dialling edge has no session to 198.18.1.$r within 60 s of the restart"
done

# A crash: the dialling edge's router killed with SIGKILL. The edge moves the circuit
# to its other router (EDGE_RESUME to the anchor, the hosting edge's router).
ingress_router >/dev/null # ids looked up before the clock starts
transfer_across_stop KILL
if [ -z "$victim" ]; then
    bad "cannot tell which router carries the transfer (weft circuit list: no open web circuit)"
elif [ "$at_stop" = "over" ] || [ "$at_stop" -ge 67108864 ]; then
    bad "the transfer was over before its router $victim was killed (finding the router was too slow)"
elif [ "$crc" = 0 ] && [ "$got" = "$want" ]; then
    ok "transfer survives its router $victim killed mid-way (at $at_stop of 67108864 bytes; digest matches; longest stall ${stall_ms} ms)"
else
    bad "transfer broke when its router $victim was killed: curl exit $crc after $size of 67108864 bytes: $(cat "$tmp/curl2.err")"
    dc logs --no-color edge-dial edge-host r1 r2 r3 r4 2>&1 |
        grep -E 'resum|session_closed|circuit_close|link_down' | tail -30 | sed 's/^/#   /'
fi
[ -n "$victim" ] && restart_victim

# A clean stop: SIGTERM. The router exits 0 at once and sends no per-circuit
# closes while it stops, so the edges resume and the transfer survives as above.
transfer_across_stop TERM
if [ -z "$victim" ]; then
    bad "cannot tell which router carries the transfer (weft circuit list: no open web circuit)"
else
    code=$(docker inspect --format '{{.State.ExitCode}}' "$(dc ps -q "$victim")" 2>/dev/null)
    [ "$code" = 0 ] && [ "$stop_ms" -lt 8000 ] && ok "router $victim stops cleanly on SIGTERM (exit 0, ${stop_ms} ms)" ||
        bad "router $victim on SIGTERM: exit ${code:-?} after ${stop_ms} ms"
    if [ "$at_stop" = "over" ] || [ "$at_stop" -ge 67108864 ]; then
        bad "the transfer was over before its router $victim was stopped (finding the router was too slow)"
    elif [ "$crc" = 0 ] && [ "$got" = "$want" ]; then
        ok "transfer survives its router $victim stopped mid-way (at $at_stop of 67108864 bytes; digest matches; longest stall ${stall_ms} ms)"
    else
        bad "transfer broke when its router $victim stopped: curl exit $crc after $size of 67108864 bytes: $(cat "$tmp/curl2.err")"
    fi
    if wait_http 60; then ok "new connections work through the other router after $victim stopped"
    else bad "no new connection within 60 s of $victim stopping"; fi
    restart_victim
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
