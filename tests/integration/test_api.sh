#!/usr/bin/env bash
# The admin REST API with curl (authentication, request validation, status
# codes, paging) and the CLI's resource commands on top of it.
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT_CONTROLLER_BIN" "$WEFT" "$WEFT_EDGE"

ctl_new apinet

# names_in JSON: the "name" of every record in .data, one a line.
names_in() {
    printf '%s' "$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("data", []):
    print(r.get("name"))' 2>/dev/null
}
has_name() { names_in "$1" | grep -qx -- "$2"; }
lacks_name() { ! has_name "$@"; }

# ---- authentication and authorisation
api_as none GET /v1/identities
assert_status 401 "no client certificate -> 401"
assert_error_code unauthenticated "no client certificate: error code"

weft identity create device1 --out "$T_TMP/device1.jwt"
assert_rc 0 "create device1"
t_run "$WEFT_EDGE" enroll "$T_TMP/device1.jwt" --out "$T_TMP/device1.json"
assert_rc 0 "enrol device1"
idfile_split "$T_TMP/device1.json" "$T_TMP/device1" 2>/dev/null
api_as "$T_TMP/device1" GET /v1/identities
assert_status 403 "device (non-admin) certificate -> 403 on GET"
assert_error_code forbidden "device certificate: error code"
api_as "$T_TMP/device1" POST /v1/identities '{"name":"sneaky"}'
assert_status 403 "device certificate -> 403 on POST"
api GET /v1/identities/sneaky
assert_status 404 "a refused create left nothing behind"

api GET /v1/identities
assert_status 200 "admin certificate -> 200"
assert_cond "list answer has a data array" jlen "$T_BODY" .data

# ---- request validation
api POST /v1/identities '{"name":'
assert_status 400 "malformed JSON -> 400"
assert_error_code bad_request "malformed JSON: error code and message"
api POST /v1/identities '["name"]'
assert_status 400 "a JSON array instead of an object -> 400"
api POST /v1/identities '{"name":"u1","colour":"red"}'
assert_status 400 "unknown field -> 400"
assert_error_code unknown_field "unknown field: error code"
assert_match colour "$T_BODY" "unknown field message names the field"
api GET /v1/identities/u1
assert_status 404 "a rejected create left nothing behind"
api POST /v1/identities '{"name":42}'
assert_status 400 "name of the wrong type -> 400"
api POST /v1/identities '{"name":"b1","binding":"sideways"}'
assert_status 400 "bad binding value -> 400"

python3 -c '
import sys
sys.stdout.write("{\"name\":\"big\",\"roles\":[\"" + "a" * (2 * 1024 * 1024) + "\"]}")' >"$T_TMP/big.json"
api POST /v1/identities "@$T_TMP/big.json"
assert_status 400 "2 MiB body -> 400"
assert_error_code too_large "oversize body: error code"
api GET /v1/version
assert_status 200 "the controller still answers after an oversize body"

# ---- conflicts and unknown ids
api POST /v1/identities '{"name":"dup"}'
assert_match '^20[01]$' "$T_STATUS" "create dup -> 200/201"
assert_eq dup "$(jget "$T_BODY" .data.name)" "create answers with the record"
api POST /v1/identities '{"name":"dup"}'
assert_status 409 "duplicate name -> 409"
api GET /v1/identities/nosuchid
assert_status 404 "unknown id -> 404"
assert_cond "404 carries an error message" jget "$T_BODY" .error.message
api DELETE /v1/identities/nosuchid
assert_status 404 "delete of an unknown id -> 404"
api GET /v1/services/nosuchid
assert_status 404 "unknown service -> 404"
api GET /v1/nosuchthing
assert_status 404 "unknown collection -> 404"

# ---- paging
api GET '/v1/identities?limit=1'
t0=$(jget "$T_BODY" .meta.total)
assert_match '^[0-9]+$' "$t0" "list answer has meta.total"
t0=${t0:-0}
created=0
for i in $(seq -w 0 29); do
    api POST /v1/identities "{\"name\":\"page-$i\",\"roles\":[\"paged\"]}"
    [[ "$T_STATUS" == 20[01] ]] && created=$((created + 1))
done
assert_eq 30 "$created" "30 identities created"
api GET "/v1/identities?limit=10&offset=$((t0 + 20))"
assert_status 200 "GET limit=10 offset=total+20"
assert_eq 10 "$(jlen "$T_BODY" .data)" "limit 10 -> 10 items"
assert_eq $((t0 + 30)) "$(jget "$T_BODY" .meta.total)" "total counts every identity"
api GET "/v1/identities?limit=10&offset=$((t0 + 25))"
assert_eq 5 "$(jlen "$T_BODY" .data)" "the last page holds the 5 remaining"
api GET "/v1/identities?limit=10&offset=$((t0 + 100))"
assert_eq 0 "$(jlen "$T_BODY" .data)" "past the end -> empty page"
api GET '/v1/identities?name=page-*&limit=100'
assert_eq 30 "$(jget "$T_BODY" .meta.total)" "name prefix filter page-* -> 30"
api GET '/v1/identities?name=page-07'
assert_eq 1 "$(jget "$T_BODY" .meta.total)" "exact name filter -> 1"
api GET '/v1/identities?role=paged&limit=1'
assert_eq 30 "$(jget "$T_BODY" .meta.total)" "role filter -> 30"
api GET '/v1/identities?limit=abc'
assert_status 400 "limit=abc -> 400"

# ---- CLI: identities
weft identity create cli-id --role alpha --role beta
assert_rc 0 "weft identity create cli-id"
weft identity list
assert_rc 0 "weft identity list"
assert_match "cli-id" "$T_OUT" "identity list shows cli-id"
weft --json identity list --limit 1000
assert_rc 0 "weft --json identity list"
assert_cond "identity list --json parses" is_json "$T_OUT"
assert_cond "identity list --json holds cli-id" has_name "$T_OUT" cli-id
weft --json identity show cli-id
assert_cond "identity show --json parses" is_json "$T_OUT"
assert_eq '["alpha", "beta"]' "$(jget "$T_OUT" .data.roles)" "roles as given"
weft identity disable cli-id
assert_rc 0 "weft identity disable"
weft --json identity show cli-id
assert_eq true "$(jget "$T_OUT" .data.disabled)" "disabled after disable"
weft identity enable cli-id
assert_rc 0 "weft identity enable"
weft --json identity show cli-id
assert_eq false "$(jget "$T_OUT" .data.disabled)" "enabled after enable"
api POST /v1/identities/cli-id/disable
assert_status 200 "POST /v1/identities/{name}/disable -> 200"
api GET /v1/identities/cli-id
assert_eq true "$(jget "$T_BODY" .data.disabled)" "REST disable took effect"
weft identity delete cli-id
assert_rc 0 "weft identity delete"
weft identity show cli-id
assert_rc 1 "show of a deleted identity -> exit 1"
assert_ne "" "$T_ERR" "show of a deleted identity says why on stderr"

# ---- CLI: services
weft service create web --role webapps --intercept tcp:web.weft:80 --host tcp:127.0.0.1:8080
assert_rc 0 "weft service create web --intercept --host"
weft --json service show web
assert_rc 0 "weft --json service show web"
assert_eq tcp:web.weft:80 "$(jget "$T_OUT" .data.intercept)" "service intercept"
assert_eq tcp:127.0.0.1:8080 "$(jget "$T_OUT" .data.host)" "service host"
assert_eq '["webapps"]' "$(jget "$T_OUT" .data.roles)" "service roles"
weft service list
assert_rc 0 "weft service list"
assert_match "web" "$T_OUT" "service list shows web"
weft --json service list
assert_cond "service list --json parses" is_json "$T_OUT"
weft service create web --intercept tcp:other.weft:80
assert_rc 1 "duplicate service name -> exit 1"
weft service create bad --intercept nonsense
assert_ne 0 "$T_RC" "malformed --intercept is refused"
weft service delete web
assert_rc 0 "weft service delete"
weft service show web
assert_rc 1 "show of a deleted service -> exit 1"

# ---- CLI: policies
weft service create web2 --role webapps --intercept tcp:web2.weft:443 --host tcp:127.0.0.1:8443
assert_rc 0 "create web2"
weft policy create sensors-dial --type dial --identities sensors --services webapps
assert_rc 0 "weft policy create --type dial"
weft policy create sensors-bind --type bind --identities sensors,trackers --services webapps
assert_rc 0 "weft policy create --type bind with two roles"
weft --json policy show sensors-dial
assert_rc 0 "weft --json policy show"
assert_eq dial "$(jget "$T_OUT" .data.type)" "policy type"
assert_match '"#?sensors"' "$(jget "$T_OUT" .data.identity_roles)" "policy identity roles"
assert_match '"#?webapps"' "$(jget "$T_OUT" .data.service_roles)" "policy service roles"
weft --json policy show sensors-bind
assert_match '"#?trackers"' "$(jget "$T_OUT" .data.identity_roles)" "comma-separated roles"
weft policy list
assert_rc 0 "weft policy list"
assert_match "sensors-bind" "$T_OUT" "policy list shows sensors-bind"
weft --json policy list
assert_cond "policy list --json parses" is_json "$T_OUT"
weft policy create p-bad --type sideways --identities a --services b
assert_ne 0 "$T_RC" "policy with a bad type is refused"
weft policy create p-none --identities a --services b
assert_rc 2 "policy create without --type -> exit 2"
weft policy delete sensors-dial
assert_rc 0 "weft policy delete"
weft policy show sensors-dial
assert_rc 1 "show of a deleted policy -> exit 1"

# ---- CLI: routers
weft router create edge-r1 --out "$T_TMP/r1.jwt"
assert_rc 0 "weft router create --out"
assert_match '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$(tr -d '[:space:]' <"$T_TMP/r1.jwt" 2>/dev/null)" \
    "router token file holds a JWT"
weft router list
assert_rc 0 "weft router list"
assert_match "edge-r1" "$T_OUT" "router list shows edge-r1"
weft --json router list
assert_cond "router list --json parses" is_json "$T_OUT"
assert_cond "router list --json holds edge-r1" has_name "$T_OUT" edge-r1
weft router delete edge-r1
assert_rc 0 "weft router delete"
weft --json router list
assert_cond "deleted router gone from the list" lacks_name "$T_OUT" edge-r1

# ---- exit codes
weft
assert_rc 2 "weft without a command -> exit 2"
weft identity frobnicate
assert_rc 2 "unknown subcommand -> exit 2"
weft identity create
assert_rc 2 "missing NAME -> exit 2"
weft --no-such-flag identity list
assert_rc 2 "unknown option -> exit 2"
weft identity create x --binding sideways
assert_rc 2 "bad --binding value -> exit 2"
weft identity show nosuch
assert_rc 1 "unknown identity -> exit 1"
weft --json identity show nosuch
assert_rc 1 "unknown identity with --json -> exit 1"
dead=$(free_port)
t_run env WEFT_CONTROLLER="https://127.0.0.1:$dead" "$WEFT" identity list
assert_rc 1 "controller not listening -> exit 1"
assert_ne "" "$T_ERR" "connection failure is explained on stderr"
t_run "$WEFT" --identity "$T_TMP/nonexistent.json" identity list
assert_rc 1 "missing identity file -> exit 1"
t_run "$WEFT" --identity "$T_TMP/device1.json" identity list
assert_rc 1 "device identity on the admin API -> exit 1"
assert_match "forbidden|admin|permission" "$T_ERR" "403 is explained on stderr"

# Multipath mode per service: failover by default, split and redundant on request.
weft --json service create mp-default --host tcp:127.0.0.1:9
assert_eq failover "$(jget "$T_OUT" .data.multipath)" "a new service defaults to failover multipath"
weft --json service create mp-split --host tcp:127.0.0.1:9 --multipath split
assert_eq split "$(jget "$T_OUT" .data.multipath)" "--multipath split is stored"
weft --json service update mp-split --multipath redundant
assert_eq redundant "$(jget "$T_OUT" .data.multipath)" "--multipath can be changed"
weft service create mp-bad --multipath sideways
assert_rc 2 "a bad --multipath value -> exit 2"
api POST /v1/services '{"name":"mp-bad2","multipath":"sideways"}'
assert_status 400 "a bad multipath value in the API -> 400"
assert_match multipath "$T_BODY" "the error names the multipath field"
