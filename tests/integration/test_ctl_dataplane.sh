#!/usr/bin/env bash
# The controller's data-plane side: GET /v1/edge/session (services and service
# tokens per policy, 403 for a disabled identity) and the control channel
# (router hello -> full map, a delta within a second of a change, non-routers
# refused).
. "$(dirname "$0")/lib.sh"
CTLPROBE=${WEFT_CTLPROBE:-$WEFT_BUILD/controller/ctlprobe}
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE" "$CTLPROBE"

ctl_new dpnet
cport=${CTL_CPORT[$T_DIR]}

# ---- /v1/version names the control address
api GET /v1/version
assert_status 200 "version answers"
assert_eq "127.0.0.1:$cport" "$(jget "$T_BODY" .control)" "version names the control address"

# ---- identities, services and policies through the CLI
weft identity create alice --role web-users --out "$T_TMP/alice.jwt"
assert_rc 0 "identity alice created"
weft identity create bob --role nobody --out "$T_TMP/bob.jwt"
weft identity create carol --role web-users --role ops --out "$T_TMP/carol.jwt"
weft service create web --role web --intercept tcp:web.internal:80 --host tcp:127.0.0.1:8080
assert_rc 0 "service web created"
weft service create db --role db --host tcp:127.0.0.1:5432
weft service create metrics --role web --role ops
weft policy create web-dial --type dial --identities '#web-users' --services '#web'
assert_rc 0 "dial policy created"
weft policy create carol-bind --type bind --identities '@carol' --services '@db'
weft policy create ops-all --type dial --semantic AllOf --identities '#web-users,#ops' \
    --services '#web,#ops'

for who in alice bob carol; do
    t_run "$WEFT_EDGE" enroll "$T_TMP/$who.jwt" --out "$T_TMP/$who.json"
    assert_rc 0 "$who enrolled with weft-edge"
    idfile_split "$T_TMP/$who.json" "$T_TMP/creds-$who"
done
alice_id=$(jget "$(cat "$T_TMP/alice.json")" .id)

# session_check JSON: prints "name:dial:bind" per service, sorted, then checks
# every token's claims; exits non-zero with a reason when a claim is wrong.
session_summary() {
    printf '%s' "$1" | python3 -c '
import base64, json, sys, time
d = json.load(sys.stdin)["data"]
ident = d["identity"]["id"]
out = []
for s in d["services"]:
    out.append("%s:%s:%s" % (s["name"], int(s["dial"]), int(s["bind"])))
    for act, tok in s["tokens"].items():
        h, p, sig = tok.split(".")
        c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        want = {"aud": "weft-service", "net": sys.argv[1], "sub": ident, "svc": s["id"],
                "svc_name": s["name"], "act": act, "iss": sys.argv[2]}
        for k, v in want.items():
            if c.get(k) != v:
                sys.exit("token %s/%s: %s is %r, want %r" % (s["name"], act, k, c.get(k), v))
        if not (0 < c["exp"] - c["iat"] <= 900 and abs(c["iat"] - time.time()) < 60 and c.get("jti")):
            sys.exit("token %s/%s: bad times or jti: %r" % (s["name"], act, c))
        if (act == "dial") != bool(s["dial"]) and (act == "bind") != bool(s["bind"]):
            sys.exit("token for an action not granted")
if len(base64.b64decode(d["signing_key"])) != 32 or d["refresh_s"] != 60:
    sys.exit("bad signing_key or refresh_s")
print(" ".join(sorted(out)))' dpnet "$T_URL"
}

# ---- edge session data per identity
api_as "$T_TMP/creds-alice" GET /v1/edge/session
assert_status 200 "alice gets session data"
assert_eq "$alice_id" "$(jget "$T_BODY" .data.identity.id)" "session names alice"
assert_eq "metrics:1:0 web:1:0" "$(session_summary "$T_BODY")" "alice may dial web and metrics (AnyOf #web), tokens right"
assert_eq "tcp:web.internal:80" "$(printf '%s' "$T_BODY" | python3 -c 'import json,sys; print([s for s in json.load(sys.stdin)["data"]["services"] if s["name"]=="web"][0]["intercept"])')" \
    "service carries its intercept address"

api_as "$T_TMP/creds-bob" GET /v1/edge/session
assert_status 200 "bob gets session data"
assert_eq "" "$(session_summary "$T_BODY")" "bob matches no policy: no services"

api_as "$T_TMP/creds-carol" GET /v1/edge/session
assert_eq "db:0:1 metrics:1:0 web:1:0" "$(session_summary "$T_BODY")" \
    "carol binds db (@name) and dials web, metrics"

api_as none GET /v1/edge/session
assert_status 401 "no certificate: 401"
api GET /v1/edge/session
assert_status 200 "the admin is an identity too"

# ---- a router (enrolled with weft-edge's client, as the router does) says
# where it listens in its hello; then it is in session data and the map
weft router create r1 --out "$T_TMP/r1.jwt"
t_run "$WEFT_EDGE" enroll "$T_TMP/r1.jwt" --out "$T_TMP/r1.json"
assert_rc 0 "router r1 enrolled"
api_as "$T_TMP/creds-alice" GET /v1/edge/session
assert_eq 0 "$(jlen "$T_BODY" .data.routers)" "a router that never said where it listens is not offered"

weft service create hosted --role web --host tcp:127.0.0.1:9000 --hosted-by r1
assert_rc 0 "service hosted by a router (by name)"
r1_id=$(jget "$(cat "$T_TMP/r1.json")" .id)
api GET /v1/services/hosted
assert_eq "$r1_id" "$(jget "$T_BODY" .data.hosted_by)" "hosted_by stored as the router id"
weft service create bad --hosted-by nosuch
assert_rc 1 "hosted_by an unknown router refused"

bg probe "$CTLPROBE" --identity "$T_TMP/r1.json" --control "127.0.0.1:$cport" \
    --deltas 1 --timeout 20 --edge-listen 127.0.0.1:3022 --link-listen 127.0.0.1:4022
probe_pid=$BG_PID
plog="$T_TMP/logs/probe.log"
for ((i = 0; i < 100; i++)); do
    grep -q '^full ' "$plog" 2>/dev/null && break
    sleep 0.1
done
full=$(grep '^full ' "$plog" | head -1 | cut -d' ' -f2-)
assert_cond "router got the full map" test -n "$full"
assert_eq "hosted:$r1_id r1:True:127.0.0.1:3022" "$(printf '%s' "$full" | python3 -c '
import json, sys
m = json.load(sys.stdin)
s = [x for x in m["services"] if x["name"] == "hosted"][0]
r = m["routers"][0]
print("hosted:%s %s:%s:%s" % (s["hosted_by"], r["name"], r["online"], r["edge_listen"]))')" \
    "full map: hosted service and online router"
api_as "$T_TMP/creds-alice" GET /v1/edge/session
assert_eq "r1 127.0.0.1:3022" "$(jget "$T_BODY" .data.routers.0.name) $(jget "$T_BODY" .data.routers.0.edge_listen)" \
    "session lists the router at the address of its hello"
weft router list --json
assert_eq "true" "$(jget "$T_OUT" .0.online 2>/dev/null || jget "$T_OUT" .data.0.online)" "router list shows it online"

weft identity disable alice
assert_rc 0 "alice disabled"
for ((i = 0; i < 10; i++)); do
    grep -q '^delta ' "$plog" && break
    sleep 0.1
done
delta=$(grep '^delta ' "$plog" | head -1 | cut -d' ' -f2-)
assert_cond "a delta arrived within 1 s of the change" test -n "$delta"
assert_eq "revoked:put:$alice_id" "$(printf '%s' "$delta" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["version"] == d["base"] + 1
print(" ".join("%s:%s:%s" % (o["kind"], o["op"], o["obj"]["id"]) for o in d["ops"]))')" \
    "delta lists alice as revoked"
stop_pid "$probe_pid" 10
assert_eq 0 "$T_EXIT" "probe exited after its delta"

api_as "$T_TMP/creds-alice" GET /v1/edge/session
assert_status 403 "disabled identity: 403"
assert_error_code disabled "disabled identity: code disabled"

# ---- terminators: a router reports one, it is in the map until it leaves
api GET /v1/services/db
db_id=$(jget "$T_BODY" .data.id)
t_run "$CTLPROBE" --identity "$T_TMP/r1.json" --control "127.0.0.1:$cport" \
    --deltas 1 --timeout 10 --term "$db_id"
assert_rc 0 "terminator reported"
assert_match "\"kind\":\"terminator\".*\"service\":\"$db_id\"" "$(grep '^delta' <<<"$T_OUT")" \
    "terminator put in a delta"
t_run "$CTLPROBE" --identity "$T_TMP/r1.json" --control "127.0.0.1:$cport" --timeout 10
assert_rc 0 "router reconnects"
assert_eq 0 "$(grep '^full' <<<"$T_OUT" | cut -d' ' -f2- | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["terminators"]))')" \
    "terminators left the map with the router's connection"

# ---- non-routers are refused on the control port
t_run "$CTLPROBE" --identity "$T_TMP/bob.json" --control "127.0.0.1:$cport" --timeout 10
assert_rc 2 "an identity certificate is refused on the control port"
assert_match "control_refused.*reason=\"?certificate is not a router" \
    "$(cat "$T_TMP/logs/ctl-dpnet.log")" "the controller logs why"
t_run "$CTLPROBE" --identity "$T_DIR/admin.json" --control "127.0.0.1:$cport" --timeout 10
assert_rc 2 "the admin certificate is refused too"

ctl_stop "$T_DIR"
assert_eq 0 "$T_EXIT" "controller stops cleanly"
