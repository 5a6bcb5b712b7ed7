#!/usr/bin/env bash
# The controller's view of the mesh: routers (ctlprobe speaking the control
# channel with real router certificates) report links and circuits; the map
# gains links in deltas, `weft link list`, `weft mesh` and `weft circuit list`
# show them, a router going offline takes its links down, deleting a router
# clears hosted_by, and GET /metrics on the plain-HTTP metrics port counts it.
. "$(dirname "$0")/lib.sh"
CTLPROBE=${WEFT_CTLPROBE:-$WEFT_BUILD/controller/ctlprobe}
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$CTLPROBE"

# ---- a controller with its metrics port
port=$(free_port) || t_bail "no free port"
mport=$(free_port) || t_bail "no free port"
T_DIR="$T_TMP/meshnet"
ctl_init "$T_DIR" "$port" meshnet
cport=${CTL_CPORT[$T_DIR]}
bg ctl-meshnet "$WEFT_CONTROLLER_BIN" run --dir "$T_DIR" --metrics-listen "127.0.0.1:$mport"
CTL_PID[$T_DIR]=$BG_PID
for ((i = 0; i < 300; i++)); do
    code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/v1/version")
    [ "$code" = 200 ] && break
    alive "$BG_PID" || t_bail "controller exited: $(tail -5 "$T_TMP/logs/ctl-meshnet.log")"
    sleep 0.1
done
ctl_use "$T_DIR"

metrics() { curl -s --max-time 5 "http://127.0.0.1:$mport/metrics"; }
metric() { metrics | awk -v k="$1" '$1 == k { print $2 }'; }

t_run "$WEFT_CONTROLLER_BIN" run --dir "$T_DIR" --metrics-listen nonsense
assert_rc 2 "--metrics-listen wants HOST:PORT"

# ---- three routers, enrolled as the router enrols
for r in r1 r2 r3; do
    weft router create "$r" --out "$T_TMP/$r.jwt"
    assert_rc 0 "router $r created"
    t_run "$WEFT_EDGE" enroll "$T_TMP/$r.jwt" --out "$T_TMP/$r.json"
    assert_rc 0 "router $r enrolled"
    declare "id_$r=$(jget "$(cat "$T_TMP/$r.json")" .id)"
done
assert_eq 3 "$(metric weft_controller_enrolments_total)" "metrics count three enrolments"

weft mesh
assert_rc 0 "weft mesh answers with no router online"
assert_match "3 routers \(0 online\), 0 links" "$T_OUT" "mesh: nobody online yet"

link() { printf '{"peer":"%s","rtt_us":%d,"up":%s,"queue":%d}' "$1" "$2" "$3" "$4"; }
# probe NAME LINKS [ARGS...]: a router holding its control channel open.
probe() {
    local name=$1 links=$2
    shift 2
    bg "probe-$name" "$CTLPROBE" --identity "$T_TMP/$name.json" --control "127.0.0.1:$cport" \
        --timeout 60 --hold 60 --links "{\"links\":[$links]}" "$@"
    declare -g "pid_$name=$BG_PID"
}
wait_for() { # wait_for DESC CMD...: up to 5 s
    local i
    for ((i = 0; i < 50; i++)); do "${@:2}" >/dev/null 2>&1 && { t_pass "$1"; return; }; sleep 0.1; done
    t_fail "$1" "timed out waiting for: ${*:2}"
}
mesh_has() { t_run "$WEFT" mesh; grep -q -- "$1" <<<"$T_OUT"; }

# r1 and r2 see each other (400 us and 600 us); r3 says it reaches r1, r1 does not say so.
probe r1 "$(link "$id_r2" 400 true 0)" \
    --circuit "{\"event\":\"open\",\"circuit\":\"00000000000000c1\",\"service\":\"svc-web\",\"identity\":\"alice\",\"path\":[\"$id_r1\",\"$id_r2\"],\"bytes_up\":0,\"bytes_down\":0,\"rtt_us\":900}" \
    --circuit "{\"event\":\"update\",\"circuit\":\"00000000000000c1\",\"bytes_up\":1048576,\"bytes_down\":3145728,\"rtt_us\":800}" \
    --circuit "{\"event\":\"open\",\"circuit\":\"00000000000000c2\",\"service\":\"svc-db\",\"path\":[\"$id_r1\"]}" \
    --circuit "{\"event\":\"close\",\"circuit\":\"00000000000000c2\",\"bytes_up\":10,\"bytes_down\":20}"
probe r2 "$(link "$id_r1" 600 true 2048)"
probe r3 "$(link "$id_r1" 2000 true 0)"

wait_for "r1-r2 shows up at 0.5 ms" mesh_has "r1 ── 0.5 ms   ── r2"
# The three probes connect independently: wait until all three have reported.
wait_for "all three routers online" mesh_has "3 routers (3 online), 2 links"
assert_match "3 routers \(3 online\), 2 links \(1 up\)" "$T_OUT" "mesh counts routers and links"
assert_match "r1 ── down     ── r3" "$T_OUT" "a link only one end reports is down"

weft link list
assert_rc 0 "weft link list"
assert_match "r1 +r2 +up +0.5 ms +2.0 KiB" "$T_OUT" "link list: up, mean RTT, deeper queue"
assert_match "r1 +r3 +down" "$T_OUT" "link list: the one-sided link is down"
weft link list --json
assert_eq 2 "$(jlen "$T_OUT" .data)" "link list --json has both links"
assert_eq "500 2000" "$(printf '%s' "$T_OUT" | python3 -c '
import json, sys
print(" ".join(str(l["rtt_us"]) for l in sorted(json.load(sys.stdin)["data"], key=lambda l: l["rtt_us"])))')" \
    "link list --json carries rtt_us"

assert_match '"kind":"link".*"rtt_us":500' "$(grep '^delta' "$T_TMP/logs/probe-r1.log")" \
    "routers get the link in a delta"
assert_match "\"links\":\\[" "$(grep '^full' "$T_TMP/logs/probe-r3.log")" "the full map has links"

weft circuit list
assert_rc 0 "weft circuit list"
assert_match "00000000000000c1 +open +svc-web +r1 > r2 +1.0 MiB +3.0 MiB +0.8 ms" "$T_OUT" \
    "circuit list: path by name, bytes, RTT"
assert_match "00000000000000c2 +closed +svc-db +r1 " "$T_OUT" "closed circuit listed"
weft circuit list --state open --json
assert_eq "1 00000000000000c1" "$(jlen "$T_OUT" .data) $(jget "$T_OUT" .data.0.id)" "--state open"
weft circuit list --limit 1
assert_match "1 shown, 1 to 1 of 2" "$T_ERR" "paging says what is left out"
weft circuit list --state sideways
assert_rc 2 "--state checked"
api GET "/v1/circuits?limit=0"
assert_status 400 "limit 0 refused"

# ---- metrics
assert_eq 3 "$(metric weft_controller_routers_online)" "metrics: routers online"
assert_eq 1 "$(metric weft_controller_links_up)" "metrics: links up"
assert_eq 1 "$(metric 'weft_controller_circuits{state="open"}')" "metrics: open circuits"
assert_eq 1 "$(metric 'weft_controller_circuits{state="closed"}')" "metrics: closed circuits"
assert_match '^[0-9]+$' "$(metric weft_controller_map_version)" "metrics: map version"
assert_match '^[1-9][0-9]*$' "$(metric 'weft_controller_api_requests_total{code="200"}')" \
    "metrics: API answers by code"
assert_match '^[1-9]' "$(metric 'weft_controller_api_requests_total{code="400"}')" \
    "metrics: the 400 counted"
assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")" \
    "metrics port: other paths 404"
assert_match "# TYPE weft_controller_links_up gauge" "$(metrics)" "exposition format"

# ---- a router going offline takes its links down; an unreported link leaves
stop_pid "$pid_r3" 5
mesh_lacks() { t_run "$WEFT" mesh; ! grep -q -- "$1" <<<"$T_OUT"; }
wait_for "r1-r3 leaves the map with r3" mesh_lacks "── r3"
stop_pid "$pid_r2" 5
wait_for "r1-r2 goes down with r2" mesh_has "r1 ── down     ── r2"
assert_match "offline: r2" "$T_OUT" "mesh names offline routers"
assert_eq 0 "$(metric weft_controller_links_up)" "metrics: no link up"

# ---- deleting a router clears hosted_by on its services, in the map too
weft service create hosted --host tcp:127.0.0.1:9000 --hosted-by r3
assert_rc 0 "service hosted by r3"
weft router delete r3
assert_rc 0 "r3 deleted"
api GET /v1/services/hosted
assert_eq "" "$(jget "$T_BODY" .data.hosted_by || true)" "hosted_by cleared in the store"
wait_for "routers get the service without hosted_by" \
    bash -c "grep '^delta' '$T_TMP/logs/probe-r1.log' | grep '\"kind\":\"service\"' | tail -1 | grep -v hosted_by | grep -q '\"name\":\"hosted\"'"

for cmd in "link list" "circuit list" "mesh"; do
    # shellcheck disable=SC2086
    weft $cmd --help
    assert_rc 0 "weft $cmd --help"
done

stop_pid "$pid_r1" 5
ctl_stop "$T_DIR"
assert_eq 0 "$T_EXIT" "controller stops cleanly"
