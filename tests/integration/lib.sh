# Shared helpers for the black-box integration tests. Sourced, never run.
#
# Every test starts real processes on private loopback ports in its own temp
# dir; the EXIT trap stops every process it started and removes the dir. A
# process's stdout and stderr go to $T_TMP/logs/ and are printed when the test
# fails (so an ASan report is never lost). Output is TAP-like: one "ok N - ..."
# or "not ok N - ..." line per check with expected/got, then "# N passed, N failed".
#
# Binaries come from run.sh (WEFT, WEFT_CONTROLLER_BIN, WEFT_EDGE, WEFT_ROUTER);
# WEFT_BUILD alone is enough when a test is run by hand.

set -u

: "${WEFT_BUILD:=build}"
: "${WEFT:=$WEFT_BUILD/cli/weft}"
: "${WEFT_CONTROLLER_BIN:=$WEFT_BUILD/controller/weft-controller}"
: "${WEFT_EDGE:=$WEFT_BUILD/edge/weft-edge}"
: "${WEFT_ROUTER:=$WEFT_BUILD/router/weft-router}"
# The CLI reads these; a developer's own settings must not leak into a test.
unset WEFT_CONTROLLER WEFT_IDENTITY

T_NAME=$(basename "$0" .sh)
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/weft-$T_NAME.XXXXXX") || exit 1
mkdir -p "$T_TMP/logs" "$T_TMP/run"
T_N=0
T_PASS=0
T_FAIL=0
T_PIDS=()            # every background process this test started
declare -A CTL_PID   # controller dir -> pid
declare -A CTL_PORT  # controller dir -> port
T_SAN_RE='ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# ---------------------------------------------------------------- output

t_diag() { printf '#   %s\n' "$@"; }

t_pass() {
    T_N=$((T_N + 1)); T_PASS=$((T_PASS + 1))
    printf 'ok %d - %s\n' "$T_N" "$1"
}

t_fail() {
    T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1))
    printf 'not ok %d - %s\n' "$T_N" "$1"
    shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /' | head -40; done
}

# A fatal error: the rest of the test cannot run.
t_bail() {
    T_FAIL=$((T_FAIL + 1))
    printf 'Bail out! %s\n' "$*"
    exit 1
}

# ---------------------------------------------------------------- running commands

# t_run CMD...: runs CMD (bounded by T_CMD_TIMEOUT seconds), sets T_RC, T_OUT
# (stdout) and T_ERR (stderr). A sanitizer report on stderr is a failure.
T_CMD_TIMEOUT=${T_CMD_TIMEOUT:-60}
t_run() {
    local o="$T_TMP/run/out" e="$T_TMP/run/err"
    timeout -k 5 "$T_CMD_TIMEOUT" "$@" >"$o" 2>"$e"
    T_RC=$?
    T_OUT=$(cat "$o")
    T_ERR=$(cat "$e")
    if grep -Eq "$T_SAN_RE" "$e"; then
        t_fail "no sanitizer report from: $*" "$T_ERR"
    fi
    return 0
}

# The CLI, as the admin unless WEFT_IDENTITY says otherwise.
weft() { t_run "$WEFT" "$@"; ctl_check_alive; }

# ---------------------------------------------------------------- assertions

# assert_eq EXPECTED GOT DESC
assert_eq() {
    if [ "$1" == "$2" ]; then t_pass "$3"; else t_fail "$3" "expected: $1" "got:      $2"; fi
}

assert_ne() {
    if [ "$1" != "$2" ]; then t_pass "$3"; else t_fail "$3" "expected anything but: $1"; fi
}

# assert_match REGEX TEXT DESC (extended regex, case-insensitive)
assert_match() {
    if printf '%s' "$2" | grep -Eqi -- "$1"; then
        t_pass "$3"
    else
        t_fail "$3" "expected to match: $1" "got: $2"
    fi
}

assert_no_match() {
    if printf '%s' "$2" | grep -Eqi -- "$1"; then
        t_fail "$3" "expected not to match: $1" "got: $2"
    else
        t_pass "$3"
    fi
}

# assert_rc EXPECTED DESC: checks T_RC of the last t_run and shows its output if wrong.
assert_rc() {
    if [ "$T_RC" == "$1" ]; then
        t_pass "$2"
    else
        t_fail "$2" "expected exit: $1" "got exit:      $T_RC" "stdout: $T_OUT" "stderr: $T_ERR"
    fi
}

# assert_cond DESC CMD...: passes when CMD succeeds.
assert_cond() {
    local d=$1; shift
    if "$@"; then t_pass "$d"; else t_fail "$d" "command failed: $*"; fi
}

# assert_status EXPECTED DESC: checks T_STATUS of the last api call.
assert_status() {
    if [ "$T_STATUS" == "$1" ]; then
        t_pass "$2"
    else
        t_fail "$2" "expected HTTP status: $1" "got HTTP status:      $T_STATUS" "body: $T_BODY"
    fi
}

# assert_error_code CODE DESC: the last api body is {"error":{"code":CODE,"message":non-empty}}.
assert_error_code() {
    local code msg
    code=$(jget "$T_BODY" .error.code 2>/dev/null)
    msg=$(jget "$T_BODY" .error.message 2>/dev/null)
    if [ "$code" == "$1" ] && [ -n "$msg" ]; then
        t_pass "$2"
    else
        t_fail "$2" "expected error code $1 with a message" "got body: $T_BODY"
    fi
}

# ---------------------------------------------------------------- JSON

# jget JSON PATH: prints the value at PATH (".a.b.0.c"; "" is the whole
# document). Strings print raw, everything else as JSON; exit 1 if absent.
jget() {
    printf '%s' "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in [p for p in sys.argv[1].split(".") if p]:
    try:
        d = d[int(k)] if isinstance(d, list) else d[k]
    except (KeyError, IndexError, ValueError, TypeError):
        sys.exit(1)
print(d if isinstance(d, str) else json.dumps(d))' "$2"
}

# jlen JSON PATH: the length of the array at PATH.
jlen() {
    local v
    v=$(jget "$1" "$2") || return 1
    printf '%s' "$v" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

is_json() { printf '%s' "$1" | python3 -m json.tool >/dev/null 2>&1; }

# json_set_ints FILE KEY=N...: sets integer keys at the top of a JSON file
# (a controller.json or router.json before the process starts).
json_set_ints() {
    python3 - "$@" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    d[k] = int(v)
json.dump(d, open(p, "w"), indent=2)
EOF
}

# idfile_split FILE DIR: writes DIR/cert.pem, DIR/key.pem, DIR/ca.pem from an identity file.
idfile_split() {
    mkdir -p "$2" && python3 - "$1" "$2" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
for f in ("cert", "key", "ca"):
    p = os.path.join(sys.argv[2], f + ".pem")
    with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as o:
        o.write(d[f])
EOF
}

# ---------------------------------------------------------------- ports

# free_port: a TCP port on 127.0.0.1 that binds now, below the ephemeral range
# so that outgoing connections will not take it in the meantime.
free_port() {
    python3 - <<'EOF'
import random, socket, sys
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit(1)
EOF
}

# ---------------------------------------------------------------- processes

# bg NAME CMD...: starts CMD in the background, logging to $T_TMP/logs/NAME.log; sets BG_PID.
bg() {
    local name=$1; shift
    "$@" >>"$T_TMP/logs/$name.log" 2>&1 &
    BG_PID=$!
    T_PIDS+=("$BG_PID")
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 15: an
# ASan build checks for leaks at exit). Sets T_EXIT to the process's status.
stop_pid() {
    local pid=$1 secs=${2:-15} i
    T_EXIT=
    alive "$pid" || { wait "$pid" 2>/dev/null; T_EXIT=$?; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    T_EXIT=$?
}

# ---------------------------------------------------------------- controller

# ctl_init DIR PORT NAME: creates a network in DIR listening on 127.0.0.1:PORT.
# The control channel gets a private port too (CTL_CPORT[DIR]): the default
# 127.0.0.1:1281 would collide between tests running side by side.
declare -A CTL_CPORT
ctl_init() {
    local dir=$1 port=$2 name=$3 cport
    cport=$(free_port) || t_bail "no free port"
    t_run "$WEFT_CONTROLLER_BIN" init --dir "$dir" --listen "127.0.0.1:$port" --name "$name" \
        --control-listen "127.0.0.1:$cport"
    if [ "$T_RC" != 0 ]; then
        t_bail "weft-controller init --dir $dir failed ($T_RC): $T_ERR $T_OUT"
    fi
    CTL_PORT[$dir]=$port
    CTL_CPORT[$dir]=$cport
}

# ctl_start DIR: runs the controller and waits (bounded) until /v1/version answers.
ctl_start() {
    local dir=$1 port=${CTL_PORT[$1]} i code
    local log="ctl-$(basename "$dir")"
    echo "--- start $(date +%T)" >>"$T_TMP/logs/$log.log"
    bg "$log" "$WEFT_CONTROLLER_BIN" run --dir "$dir"
    CTL_PID[$dir]=$BG_PID
    for ((i = 0; i < 300; i++)); do
        alive "$BG_PID" || t_bail "weft-controller run --dir $dir exited early: $(tail -20 "$T_TMP/logs/$log.log")"
        code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/v1/version" 2>/dev/null)
        [ "$code" != "000" ] && [ -n "$code" ] && return 0
        sleep 0.1
    done
    t_bail "controller in $dir not answering on 127.0.0.1:$port after 30 s"
}

# ctl_stop DIR: graceful stop; T_EXIT holds the exit status.
ctl_stop() {
    stop_pid "${CTL_PID[$1]}"
    unset "CTL_PID[$1]"
}

# ctl_kill9 DIR: the crash a power cut looks like to the process.
ctl_kill9() {
    local pid=${CTL_PID[$1]}
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "CTL_PID[$1]"
}

# ctl_check_alive: a controller that died under a request is a failure of its
# own (with the end of its log, where a sanitizer report would be); it is
# restarted so that the checks after it still say something.
ctl_check_alive() {
    local dir log st
    for dir in "${!CTL_PID[@]}"; do
        alive "${CTL_PID[$dir]}" && continue
        wait "${CTL_PID[$dir]}" 2>/dev/null
        st=$?
        log="$T_TMP/logs/ctl-$(basename "$dir").log"
        t_fail "controller $(basename "$dir") still running (it exited with status $st)" \
            "$(grep -E -A12 "$T_SAN_RE" "$log" | head -14)" "$(tail -5 "$log")"
        unset "CTL_PID[$dir]"
        ctl_start "$dir"
    done
}

# ctl_use DIR: points the CLI and api() at that controller as its admin.
ctl_use() {
    local dir=$1
    T_URL="https://127.0.0.1:${CTL_PORT[$dir]}"
    T_CA="$dir/ca.pem"
    T_ADMIN="$T_TMP/creds-admin-$(basename "$dir")"
    idfile_split "$dir/admin.json" "$T_ADMIN" || t_bail "cannot read $dir/admin.json"
    export WEFT_CONTROLLER="$T_URL" WEFT_IDENTITY="$dir/admin.json"
}

# ctl_new NAME: init + start + use a fresh network called NAME; sets T_DIR.
ctl_new() {
    local port
    port=$(free_port) || t_bail "no free port"
    T_DIR="$T_TMP/$1"
    ctl_init "$T_DIR" "$port" "$1"
    ctl_start "$T_DIR"
    ctl_use "$T_DIR"
}

# ---------------------------------------------------------------- REST

# api_as CREDS METHOD PATH [BODY]: one HTTPS request; CREDS is a dir with
# cert.pem/key.pem or "none". BODY "@file" sends a file. Sets T_STATUS, T_BODY.
api_as() {
    local creds=$1 method=$2 path=$3 body=${4-}
    local args=(-sS --max-time 30 --cacert "$T_CA" -o "$T_TMP/run/body" -w '%{http_code}'
                -X "$method" -H 'Content-Type: application/json')
    [ "$creds" != none ] && args+=(--cert "$creds/cert.pem" --key "$creds/key.pem")
    [ -n "$body" ] && args+=(--data-binary "$body")
    : >"$T_TMP/run/body"
    T_STATUS=$(curl "${args[@]}" "$T_URL$path" 2>"$T_TMP/run/curl.err")
    T_BODY=$(cat "$T_TMP/run/body")
    [ -s "$T_TMP/run/curl.err" ] && T_BODY="$T_BODY (curl: $(cat "$T_TMP/run/curl.err"))"
    ctl_check_alive
    return 0
}

api() { api_as "$T_ADMIN" "$@"; }

# ---------------------------------------------------------------- cleanup

t_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${T_PIDS[@]}"; do
        alive "$pid" && stop_pid "$pid" 10
    done
    if grep -Elq "$T_SAN_RE" "$T_TMP"/logs/*.log 2>/dev/null; then
        t_fail "no sanitizer report in process logs" "$(grep -El "$T_SAN_RE" "$T_TMP"/logs/*.log)"
    fi
    if [ "$T_FAIL" -gt 0 ] || [ "$rc" -ne 0 ]; then
        local f
        for f in "$T_TMP"/logs/*.log; do
            [ -s "$f" ] || continue
            echo "# ---- $(basename "$f") (last 80 lines)"
            tail -80 "$f" | sed 's/^/# /'
        done
    fi
    if [ "$T_N" -gt 0 ] || [ "$T_FAIL" -gt 0 ]; then
        echo "1..$T_N"
        echo "# $T_PASS passed, $T_FAIL failed"
    fi
    if [ -n "${WEFT_KEEP_TMP:-}" ]; then echo "# kept $T_TMP"; else rm -rf "$T_TMP"; fi
    [ "$T_FAIL" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
    exit 1
}
trap t_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# need_bins NAME...: bails out when a binary this test needs was not built.
need_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || t_bail "not built: $b (run ninja in the build dir)"
    done
}
