#!/usr/bin/env bash
# The weft and weft-edge command lines without a controller: usage errors exit
# 2 with a message and a usage line, --help exits 0 for every command, bad
# arguments are refused before anything is sent, missing or broken identity
# files exit 1 with a sentence saying what to do, and weft-edge refuses
# malformed and expired tokens locally.
# Usage: tests/integration/test_cli_usage.sh [BUILD_DIR] (or run.sh BUILD_DIR cli_usage)
if [ $# -gt 0 ]; then
    WEFT_BUILD=$1
    WEFT=$1/cli/weft
    WEFT_EDGE=$1/edge/weft-edge
fi
. "$(dirname "$0")/lib.sh"
need_bins "$WEFT" "$WEFT_EDGE"

edge() { t_run "$WEFT_EDGE" "$@"; }

# usage_err DESC PATTERN CMD...: exit 2, "weft: " + PATTERN and a usage line on stderr.
usage_err() {
    local desc=$1 pat=$2; shift 2
    t_run "$@"
    assert_rc 2 "$desc -> exit 2"
    assert_match "^weft(-edge)?: .*$pat" "$T_ERR" "$desc: message"
    assert_match "usage: " "$T_ERR" "$desc: usage line"
}

W=("$WEFT")
nowhere="$T_TMP/nonexistent/admin.json"

# ---- --help everywhere, on stdout, exit 0
weft --help
assert_rc 0 "weft --help"
assert_match "^usage: weft" "$T_OUT" "weft --help prints usage"
for group in identity service policy router; do
    weft "$group" --help
    assert_rc 0 "weft $group --help"
    assert_match "usage: weft $group" "$T_OUT" "weft $group --help prints usage"
done
for cmd in "identity create" "identity list" "identity show" "identity update" \
    "identity disable" "identity enable" "identity delete" \
    "service create" "service list" "service show" "service update" "service delete" \
    "policy create" "policy list" "policy show" "policy update" "policy delete" \
    "router create" "router list" "router show" "router delete" "version"; do
    # shellcheck disable=SC2086
    weft $cmd --help
    assert_rc 0 "weft $cmd --help"
    assert_match "^usage: weft $cmd" "$T_OUT" "weft $cmd --help prints its usage"
    assert_eq "" "$T_ERR" "weft $cmd --help is quiet on stderr"
done
weft --json identity create --help
assert_rc 0 "--help wins over a missing NAME"
weft help policy create
assert_rc 0 "weft help policy create"
assert_match "--identities" "$T_OUT" "weft help policy create lists --identities"
weft identity create -h
assert_rc 0 "-h is --help"

# ---- usage errors
usage_err "no command" "missing command" "${W[@]}"
usage_err "unknown command" "unknown command" "${W[@]}" frobnicate
t_run "$WEFT" identity
assert_rc 2 "weft identity without a command -> exit 2"
assert_match "missing identity command" "$T_ERR" "names the missing command"
t_run "$WEFT" identity frobnicate
assert_rc 2 "unknown identity subcommand -> exit 2"
assert_match "unknown command" "$T_ERR" "says the subcommand is unknown"
usage_err "identity create without NAME" "missing NAME" "${W[@]}" identity create
usage_err "identity show without ID" "missing ID\|NAME" "${W[@]}" identity show
usage_err "unknown option" "unknown option --no-such-flag" "${W[@]}" --no-such-flag identity list
usage_err "unknown short option" "unknown option -x" "${W[@]}" identity list -x
usage_err "option of another command" "--out does not apply" "${W[@]}" identity list --out f
usage_err "option without its value" "--binding needs a value" "${W[@]}" identity create x --binding
usage_err "flag with a value" "--json takes no value" "${W[@]}" --json=yes identity list
usage_err "extra argument" "unexpected argument \"y\"" "${W[@]}" identity create x y
usage_err "bad --binding" "--binding must be none, exact, iccid or imei" \
    "${W[@]}" identity create x --binding sideways
usage_err "bad --binding=VALUE" "--binding must be" "${W[@]}" identity create x --binding=sideways
usage_err "bad --token-ttl" "--token-ttl" "${W[@]}" identity create x --token-ttl soon
usage_err "role with a #" "plain name" "${W[@]}" identity create x --role '#a'
usage_err "empty role item" "empty item in --role" "${W[@]}" identity create x --role a,,b
usage_err "update without --role" "nothing to change" "${W[@]}" identity update x
usage_err "bad --limit" "--limit wants a number" "${W[@]}" identity list --limit abc
usage_err "negative --offset" "--offset wants a number" "${W[@]}" identity list --offset -1
usage_err "bad --timeout" "--timeout" "${W[@]}" --timeout 0 identity list
usage_err "options after the words still checked" "unknown option --bogus" \
    "${W[@]}" identity list --json --bogus

# PROTO:HOST:PORT is checked locally
for bad in nonsense tcp tcp:host tcp:host: tcp::80 tcp:host:0 tcp:host:65536 tcp:host:http \
    ftp:host:21 :host:80 "tcp:[::1:80"; do
    usage_err "--intercept $bad" "PROTO:HOST:PORT" "${W[@]}" service create s --intercept "$bad"
done
usage_err "--host bad" "--host wants PROTO:HOST:PORT" "${W[@]}" service create s --host tcp:h
usage_err "service update without fields" "nothing to change" "${W[@]}" service update s
# Good addresses pass the local checks and only then need an identity (exit 1, not 2).
for good in tcp:web.weft:80 tcp:127.0.0.1:8080 "tcp:[::1]:22" udp:10.0.0.1:53 TCP:h:1; do
    t_run "$WEFT" --identity "$nowhere" service create s --intercept "$good" --host "$good"
    assert_rc 1 "--intercept $good is accepted locally"
done

# policies
usage_err "policy without --type" "missing --type" \
    "${W[@]}" policy create p --identities a --services b
usage_err "policy without --identities" "missing --identities" \
    "${W[@]}" policy create p --type dial --services b
usage_err "policy with a bad type" "--type must be dial or bind" \
    "${W[@]}" policy create p --type sideways --identities a --services b
usage_err "policy with a bad semantic" "--semantic must be AnyOf or AllOf" \
    "${W[@]}" policy create p --type dial --identities a --services b --semantic Most
usage_err "policy with a bare #" "must be ROLE, #ROLE, @NAME or #all" \
    "${W[@]}" policy create p --type dial --identities '#' --services b
for refs in sensors '#sensors,@dev1' '#all' 'a,b'; do
    t_run "$WEFT" --identity "$nowhere" policy create p --type bind --identities "$refs" --services '#all'
    assert_rc 1 "--identities $refs is accepted locally"
done

# ---- identity file problems: exit 1, one sentence on stderr
t_run "$WEFT" identity list
assert_rc 1 "no identity file at all -> exit 1"
assert_match "^weft: no admin identity file.*; pass --identity FILE or set WEFT_IDENTITY" "$T_ERR" \
    "says how to give an identity"
t_run "$WEFT" --identity "$nowhere" identity list
assert_rc 1 "missing identity file -> exit 1"
assert_match "^weft: .*nonexistent/admin.json.*; " "$T_ERR" \
    "missing identity file is named"
t_run env WEFT_IDENTITY="$nowhere" "$WEFT" identity show x
assert_rc 1 "WEFT_IDENTITY is read"
assert_match "nonexistent/admin.json" "$T_ERR" "WEFT_IDENTITY path in the message"
echo '{"version":1,' >"$T_TMP/broken.json"
t_run "$WEFT" --identity "$T_TMP/broken.json" identity list
assert_rc 1 "malformed identity file -> exit 1"
assert_match "^weft: .*broken.json.*; " "$T_ERR" "malformed identity file explained"
assert_eq "" "$T_OUT" "nothing on stdout on errors"

# ---- weft-edge
edge
assert_rc 2 "weft-edge without a command -> exit 2"
edge --help
assert_rc 0 "weft-edge --help"
assert_match "enroll" "$T_OUT" "weft-edge --help lists enroll"
for c in enroll run version; do
    edge "$c" --help
    assert_rc 0 "weft-edge $c --help"
    assert_match "^usage: weft-edge $c" "$T_OUT" "weft-edge $c --help prints its usage"
done
edge version
assert_rc 0 "weft-edge version"
assert_match "^weft-edge [0-9]+\.[0-9]+\.[0-9]+" "$T_OUT" "version string"
usage_err "weft-edge unknown command" "unknown command" "$WEFT_EDGE" frobnicate
usage_err "enroll without TOKEN" "missing TOKEN" "$WEFT_EDGE" enroll --out "$T_TMP/id.json"
usage_err "enroll without --out" "missing --out" "$WEFT_EDGE" enroll a.b.c
usage_err "enroll unknown option" "unknown option --bogus" "$WEFT_EDGE" enroll a.b.c --out f --bogus
usage_err "enroll --out without value" "needs a value" "$WEFT_EDGE" enroll a.b.c --out
usage_err "run without --identity" "missing --identity" "$WEFT_EDGE" run
# Router liveness settings: numbers, bounds, and how they hold together.
usage_err "run --dead-after-ms not a number" "--dead-after-ms must be a number of milliseconds" \
    "$WEFT_EDGE" run --identity x --dead-after-ms 1.5s
usage_err "run --dead-after-ms too small" "--dead-after-ms must be 1000 to 60000 \(got 200\)" \
    "$WEFT_EDGE" run --identity x --dead-after-ms 200
usage_err "run --keepalive-ms too small" "--keepalive-ms must be 1000 to 600000 \\(got 500\\)" \
    "$WEFT_EDGE" run --identity x --keepalive-ms 500
usage_err "run --idle-dead-ms under two keepalives" \
    "--idle-dead-ms must be two keepalives \(40000\) to 3600000 \(got 30000\)" \
    "$WEFT_EDGE" run --identity x --keepalive-ms 20000 --idle-dead-ms 30000
usage_err "run --dead-after-ms over --idle-dead-ms" \
    "--dead-after-ms \(5000\) must not exceed --idle-dead-ms \(4000\)" \
    "$WEFT_EDGE" run --identity x --keepalive-ms 1000 --idle-dead-ms 4000 --dead-after-ms 5000
usage_err "run --dead-max-ms under --dead-after-ms" \
    "--dead-max-ms must be --dead-after-ms \(2000\) to --idle-dead-ms \(45000\) \(got 1000\)" \
    "$WEFT_EDGE" run --identity x --dead-after-ms 2000 --dead-max-ms 1000
edge run --help
assert_match "--dead-after-ms MS" "$T_OUT" "weft-edge run --help shows the liveness settings"
edge run --identity "$T_TMP/missing.json"
assert_rc 1 "weft-edge run with a missing identity file -> exit 1"
assert_match "missing.json" "$T_ERR" "run names the identity file it cannot use"

# Tokens refused before any network traffic (the iss port is closed).
b64url() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))' "$1"; }
sig=$(python3 -c 'import base64; print(base64.urlsafe_b64encode(bytes(64)).decode().rstrip("="))')
hdr=$(b64url '{"alg":"EdDSA","typ":"JWT"}')
fp=$(printf '%064d' 0)
mk_token() { printf '%s.%s.%s\n' "$hdr" "$(b64url "$1")" "$sig"; }
now=$(date +%s)
mk_token "{\"iss\":\"https://127.0.0.1:1\",\"aud\":\"weft-enroll\",\"sub\":\"abc\",\"kind\":\"identity\",\"net\":\"n\",\"ca\":\"$fp\",\"exp\":$((now - 60)),\"jti\":\"x\"}" >"$T_TMP/expired.jwt"
edge enroll "$T_TMP/expired.jwt" --out "$T_TMP/exp.json"
assert_rc 1 "expired token -> exit 1"
assert_match "^weft-edge: the enrolment token expired at [0-9T:-]+Z; ask the administrator for a new one" \
    "$T_ERR" "expired token message"
assert_cond "no identity file for an expired token" test ! -e "$T_TMP/exp.json"
edge enroll "$(cat "$T_TMP/expired.jwt")" --out "$T_TMP/exp.json"
assert_match "expired" "$T_ERR" "token text on the command line is read too"
t_run sh -c "\"$WEFT_EDGE\" enroll - --out \"$T_TMP/exp.json\" <\"$T_TMP/expired.jwt\""
assert_match "expired" "$T_ERR" "token on stdin with -"
mk_token "{\"iss\":\"https://127.0.0.1:1\",\"aud\":\"other\",\"sub\":\"abc\",\"ca\":\"$fp\",\"exp\":$((now + 600))}" >"$T_TMP/aud.jwt"
edge enroll "$T_TMP/aud.jwt" --out "$T_TMP/aud.json"
assert_rc 1 "token for another audience -> exit 1"
assert_match "malformed" "$T_ERR" "wrong audience is malformed"
mk_token "{\"iss\":\"https://127.0.0.1:1\",\"aud\":\"weft-enroll\",\"sub\":\"abc\",\"ca\":\"xyz\",\"exp\":$((now + 600))}" >"$T_TMP/fp.jwt"
edge enroll "$T_TMP/fp.jwt" --out "$T_TMP/fp.json"
assert_match "CA fingerprint" "$T_ERR" "bad fingerprint claim is malformed"
edge enroll not.a.token --out "$T_TMP/x.json"
assert_rc 1 "garbage token -> exit 1"
assert_match "malformed" "$T_ERR" "garbage token is malformed"
edge enroll "$T_TMP/nonexistent.jwt" --out "$T_TMP/x.json"
assert_rc 1 "missing token file -> exit 1"
assert_match "neither a token nor a readable file" "$T_ERR" "missing token file explained"
# A well-formed live token whose controller is not there: exit 1, says so.
mk_token "{\"iss\":\"https://127.0.0.1:1\",\"aud\":\"weft-enroll\",\"sub\":\"abc\",\"kind\":\"identity\",\"net\":\"n\",\"ca\":\"$fp\",\"exp\":$((now + 600))}" >"$T_TMP/live.jwt"
edge enroll "$T_TMP/live.jwt" --out "$T_TMP/live.json" --timeout 3000
assert_rc 1 "controller not reachable -> exit 1"
assert_match "127.0.0.1" "$T_ERR" "unreachable controller is named"
: >"$T_TMP/exists.json"
edge enroll "$T_TMP/live.jwt" --out "$T_TMP/exists.json"
assert_rc 1 "existing --out is not replaced"
assert_match "already exists" "$T_ERR" "existing --out explained"
