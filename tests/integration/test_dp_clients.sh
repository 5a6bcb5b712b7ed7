#!/usr/bin/env bash
# Real clients through one fabric (controller, router, hosting edge, dialling
# edge): curl against python3 http.server, a 1 GiB random stream checked with
# sha256sum at both ends (64 MiB under ASan), iperf3, mosquitto pub/sub, and
# UDP datagrams through an echo service with their boundaries kept.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$WEFT_ROUTER" "$DP_BLAST"
for b in iperf3 mosquitto mosquitto_pub mosquitto_sub curl sha256sum; do
    command -v "$b" >/dev/null || t_bail "needs $b (scripts/deps.sh)"
done

if dp_asan; then STREAM=64M; STREAM_SECS=240; else STREAM=1G; STREAM_SECS=120; fi

dp_fabric dpclients
HTTP=$(dp_port); HTTP_I=$(dp_port); SINK=$(dp_port); SINK_I=$(dp_port)
IPERF=$(dp_port); IPERF_I=$(dp_port); MQTT=$(dp_port); MQTT_I=$(dp_port)
UDP=$(dp_port); UDP_I=$(dp_port)

dp_enrol host1 hosts
dp_enrol dev1 devices
dp_service web web "tcp:127.0.0.1:$HTTP_I" "tcp:127.0.0.1:$HTTP"
dp_service stream web "tcp:127.0.0.1:$SINK_I" "tcp:127.0.0.1:$SINK"
dp_service iperf web "tcp:127.0.0.1:$IPERF_I" "tcp:127.0.0.1:$IPERF"
dp_service mqtt web "tcp:127.0.0.1:$MQTT_I" "tcp:127.0.0.1:$MQTT"
dp_service coap web "udp:127.0.0.1:$UDP_I" "udp:127.0.0.1:$UDP"
dp_policy web-dial dial '#devices' '#web'
dp_policy web-bind bind '#hosts' '#web'

# ---- the real servers behind the hosting edge
mkdir -p "$T_TMP/www"
MARK="dp-page-$RANDOM$RANDOM"
echo "<html><body>$MARK</body></html>" >"$T_TMP/www/index.html"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T_TMP/www/blob.bin"
bg http python3 -m http.server "$HTTP" --bind 127.0.0.1 --directory "$T_TMP/www"
bg iperf3 iperf3 -s -B 127.0.0.1 -p "$IPERF"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT" \
    >"$T_TMP/mosquitto.conf"
bg mosquitto mosquitto -c "$T_TMP/mosquitto.conf"
bg udpecho "$DP_BLAST" udpecho "$UDP"
# The sink takes one connection, writes what it reads to sha256sum, then exits.
bg sink bash -c "'$DP_BLAST' sink '$SINK' --once --stdout --max-seconds $STREAM_SECS \
    | sha256sum >'$T_TMP/sink.sha'"

dp_edge host1
dp_edge dev1
for s in web stream iperf mqtt; do
    assert_cond "hosting edge bound $s" dp_wait_log "$T_TMP/logs/edge-host1.log" \
        "event=edge_bound service=$s( |$)" 30
    assert_cond "dialling edge intercepts $s" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
        "event=edge_intercepting service=$s " 30
done
assert_cond "dialling edge intercepts coap (udp)" dp_wait_log "$T_TMP/logs/edge-dev1.log" \
    "event=edge_intercepting service=coap proto=udp" 30

# ---- curl against http.server
page=""
for ((i = 0; i < 20; i++)); do
    page=$(curl -sS --max-time 5 "http://127.0.0.1:$HTTP_I/index.html" 2>>"$T_TMP/logs/curl.log")
    printf '%s' "$page" | grep -q "$MARK" && break
    sleep 0.5
done
assert_eq "<html><body>$MARK</body></html>" "$page" "curl through the intercept gets the page"
t_run curl -sS --max-time 30 -o "$T_TMP/blob.out" "http://127.0.0.1:$HTTP_I/blob.bin"
assert_rc 0 "curl fetches a 2 MiB file"
assert_eq "$(sha256sum <"$T_TMP/www/blob.bin")" "$(sha256sum <"$T_TMP/blob.out")" \
    "the 2 MiB file arrives intact"

# ---- a random stream, hashed by sha256sum at both ends
t0=$(date +%s.%N)
T_CMD_TIMEOUT=$((STREAM_SECS + 10)) t_run bash -c "head -c $STREAM /dev/urandom \
    | tee >(sha256sum >'$T_TMP/src.sha') \
    | '$DP_BLAST' send 127.0.0.1:$SINK_I --stdin --max-seconds $STREAM_SECS"
secs=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
assert_rc 0 "a $STREAM random stream is sent through the fabric and acknowledged (${secs} s)"
assert_match "^flow 0 bytes=$(numfmt --from=iec "$STREAM") .*ok=1" "$T_OUT" \
    "the sender counted every byte"
for ((i = 0; i < 50; i++)); do [ -s "$T_TMP/sink.sha" ] && [ -s "$T_TMP/src.sha" ] && break; sleep 0.1; done
assert_eq "$(cat "$T_TMP/src.sha" 2>/dev/null)" "$(cat "$T_TMP/sink.sha" 2>/dev/null)" \
    "sha256 of the $STREAM stream matches at both ends"
t_diag "stream: $T_OUT"

# ---- iperf3 through the intercept
T_CMD_TIMEOUT=30 t_run iperf3 -c 127.0.0.1 -p "$IPERF_I" -t 3 -J
assert_rc 0 "iperf3 -t 3 through the intercept completes"
bps=$(printf '%s' "$T_OUT" | python3 -c '
import json, sys
try:
    print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))
except Exception:
    print(0)')
assert_cond "iperf3 reports more than 0 bits/s received (got $bps)" [ "${bps:-0}" -gt 0 ]
t_diag "iperf3: $((bps / 1000000)) Mbit/s"

# ---- mosquitto: subscriber and publisher both through the fabric
MSG="dp-mqtt-$RANDOM$RANDOM"
timeout 30 mosquitto_sub -h 127.0.0.1 -p "$MQTT_I" -t weft/dp -C 1 -W 25 \
    >"$T_TMP/mqtt.out" 2>>"$T_TMP/logs/mqtt-sub.log" &
SUB=$!
T_PIDS+=("$SUB")
for ((i = 0; i < 40; i++)); do
    [ -s "$T_TMP/mqtt.out" ] && break
    alive "$SUB" || break
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_I" -t weft/dp -m "$MSG" 2>>"$T_TMP/logs/mqtt-pub.log"
    sleep 0.5
done
wait "$SUB" 2>/dev/null
assert_eq "$MSG" "$(cat "$T_TMP/mqtt.out")" "mosquitto_sub receives what mosquitto_pub publishes, both via the fabric"

# ---- UDP datagrams: three sizes per burst, each must come back whole and alone
T_CMD_TIMEOUT=60 t_run "$DP_BLAST" udpcheck "127.0.0.1:$UDP_I" --count 200 --max-seconds 10
assert_rc 0 "600 datagrams (1, 1200 and 300 bytes, in bursts of three) come back intact"
assert_match "udpcheck rounds=200 datagrams=600 ok" "$T_OUT" "udpcheck saw every datagram"

dp_router_alive "router still running"
for p in "$DP_ROUTER_PID"; do stop_pid "$p"; done
assert_eq 0 "$T_EXIT" "router exits 0 on SIGTERM"
