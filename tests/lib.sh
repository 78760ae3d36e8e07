# Shared shell library for integration tests: TAP output and a berth server
# started on 127.0.0.1 with a temporary store. Source it from a test script:
#
#   . "$top_srcdir/tests/lib.sh"
#   br_start                      # sets BR_URL, BR_PORT, BR_ROOT, BR_PID
#   ok "GET /v2/ is 200" test "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/")" = 200
#   done_testing
#
# Everything a test starts is stopped by the EXIT trap.
# Environment: BERTH (path of the binary; set by make check), top_srcdir.

set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BERTH:=$top_srcdir/berth}"

_tap_n=0
_tap_failed=0
BR_TMP=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
BR_PID=""
_br_cleanup_hooks=""

# ok NAME CMD [ARGS...] — runs CMD; passes when it exits 0.
ok() {
    local name=$1
    shift
    _tap_n=$((_tap_n + 1))
    if "$@"; then
        echo "ok $_tap_n - $name"
    else
        echo "not ok $_tap_n - $name"
        _tap_failed=$((_tap_failed + 1))
    fi
}

# is GOT WANT NAME — string equality, with a diagnostic on failure.
is() {
    _tap_n=$((_tap_n + 1))
    if [ "$1" = "$2" ]; then
        echo "ok $_tap_n - $3"
    else
        echo "not ok $_tap_n - $3"
        echo "#   got:  '$1'"
        echo "#   want: '$2'"
        _tap_failed=$((_tap_failed + 1))
    fi
}

# like GOT REGEX NAME — extended-regex match.
like() {
    _tap_n=$((_tap_n + 1))
    if printf '%s' "$1" | grep -Eq -- "$2"; then
        echo "ok $_tap_n - $3"
    else
        echo "not ok $_tap_n - $3"
        echo "#   got:  '$(printf '%s' "$1" | head -c 600)'"
        echo "#   want match: '$2'"
        _tap_failed=$((_tap_failed + 1))
    fi
}

skip_all() {
    echo "1..0 # SKIP $*"
    exit 0
}

diag() { echo "# $*"; }

done_testing() {
    echo "1..$_tap_n"
    [ "$_tap_failed" -eq 0 ]
}

# at_exit CMD — run CMD when the test exits (in reverse order of registration).
at_exit() { _br_cleanup_hooks="$*; $_br_cleanup_hooks"; }

_br_exit() {
    local rc=$?
    eval "$_br_cleanup_hooks" >/dev/null 2>&1 || true
    br_stop >/dev/null 2>&1 || true
    rm -rf "$BR_TMP"
    exit $rc
}
trap _br_exit EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# br_start [extra berth serve args...] — starts berth with a fresh store unless
# BR_ROOT is already set (so a test can restart on the same store). Waits until
# /v2/ answers (with any status). Server output goes to $BR_TMP/server.log.
# When BR_START_CONFIG names a command, br_start runs it once BR_PORT and
# BR_URL are known; it prints the path of a config file, passed with -c (the
# flags still set the address and the store). oci-lib.sh's auth modes use it.
br_start() {
    : "${BR_ROOT:=$BR_TMP/store}"
    BR_PORT=$(free_port)
    BR_URL="http://127.0.0.1:$BR_PORT"
    local cfg=() f
    if [ -n "${BR_START_CONFIG:-}" ]; then
        f=$($BR_START_CONFIG) || return 1
        cfg=(-c "$f")
    fi
    "$BERTH" serve --listen "127.0.0.1:$BR_PORT" --root "$BR_ROOT" "${cfg[@]}" "$@" >>"$BR_TMP/server.log" 2>&1 &
    BR_PID=$!
    local i
    for i in $(seq 1 200); do
        if curl -s -o /dev/null "$BR_URL/v2/" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$BR_PID" 2>/dev/null; then
            echo "# berth exited during start-up; log:"
            sed 's/^/#   /' "$BR_TMP/server.log"
            BR_PID=""
            return 1
        fi
        sleep 0.05
    done
    echo "# berth did not answer on $BR_URL"
    return 1
}

# br_serve CONFIG [curl args for the readiness probe] — starts berth with
# -c CONFIG (which listens on $BR_URL's address) and waits until $BR_URL/v2/
# answers with any status; on failure shows the log's tail.
br_serve() {
    local cfg=$1 i
    shift
    "$BERTH" serve -c "$cfg" >>"$BR_TMP/server.log" 2>&1 &
    BR_PID=$!
    for i in $(seq 1 300); do
        curl -s -o /dev/null --max-time 5 "$@" "$BR_URL/v2/" 2>/dev/null && return 0
        kill -0 "$BR_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "# berth did not start; log:"
    tail -n 20 "$BR_TMP/server.log" | sed 's/^/#   /'
    BR_PID=""
    return 1
}

# br_stop — SIGTERM and wait; returns berth's exit status. Under ASan, a leak
# or error makes that non-zero.
br_stop() {
    [ -n "$BR_PID" ] || return 0
    kill -TERM "$BR_PID" 2>/dev/null || true
    local rc=0
    wait "$BR_PID" || rc=$?
    BR_PID=""
    return $rc
}

# br_kill9 — kill -9 the server (fault tests).
br_kill9() {
    [ -n "$BR_PID" ] || return 0
    kill -KILL "$BR_PID" 2>/dev/null || true
    wait "$BR_PID" 2>/dev/null || true
    BR_PID=""
}

# http METHOD PATH [curl args...] — prints "STATUS" and leaves headers in
# $BR_TMP/h and the body in $BR_TMP/b. oci-lib.sh replaces it with one that
# adds credentials in its auth modes; http_raw never sends any.
http_raw() {
    local method=$1 path=$2
    shift 2
    curl -s -X "$method" -D "$BR_TMP/h" -o "$BR_TMP/b" -w '%{http_code}' "$@" "$BR_URL$path"
}
http() { http_raw "$@"; }

# header NAME — value of a response header from the last http call (case-insensitive).
header() {
    grep -i "^$1:" "$BR_TMP/h" | head -n1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'
}

body() { cat "$BR_TMP/b"; }

# no_sanitizer_report LOG — a test that LOG holds no ASan/LSan/TSan/UBSan
# report; on failure the report is shown as diagnostics.
no_sanitizer_report() {
    if grep -qE "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" "$1"; then
        ok "no sanitizer report in the server log" false
        grep -A14 -E "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" "$1" | head -n 60 | sed 's/^/#   /'
    else
        ok "no sanitizer report in the server log" true
    fi
}

# br_make ARGS... — runs make in the build tree ($top_builddir) for the
# packaging tests, quietly, output in $BR_TMP/make.log (shown on failure).
# The flags of the make running the tests (its jobserver, command-line
# variables such as TEST_LOGS) are not passed on.
br_make() {
    if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "${top_builddir:-$top_srcdir}" "$@" >"$BR_TMP/make.log" 2>&1; then
        return 0
    fi
    echo "# make $* failed:"
    tail -n 30 "$BR_TMP/make.log" | sed 's/^/#   /'
    return 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
