# Shared bits of the robustness tests (tests/server/{hostile,slow,http2,bigbody,crash}.sh).
# Source after tests/lib.sh.

ROBUST_DIR="$top_srcdir/tests/server"
export PYTHONPATH="$ROBUST_DIR${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
command -v curl >/dev/null 2>&1 || skip_all "curl not found"
[ -x "$BERTH" ] || skip_all "berth binary not found at $BERTH"

# py_checks [python3 args...] — runs a python check program (robust_lib.py
# conventions: "PASS name" / "FAIL name # detail" / "# diag" lines) and turns
# its output into TAP. A python crash is a failure.
py_checks() {
    local line rc_file="$BR_TMP/py.rc"
    while IFS= read -r line; do
        case $line in
        "PASS "*) ok "${line#PASS }" true ;;
        "FAIL "*)
            local rest=${line#FAIL }
            ok "${rest%% \# *}" false
            case $rest in *" # "*) echo "#   ${rest#* \# }" ;; esac
            ;;
        *) echo "# ${line#\# }" ;;
        esac
    done < <(python3 "$@" 2>&1; echo "PYRC $?" >"$rc_file")
    local rc
    rc=$(cut -d' ' -f2 "$rc_file" 2>/dev/null)
    ok "python checker exited cleanly (rc=${rc:-?})" test "${rc:-1}" = 0
}

# server_log_clean — no sanitizer report, crash or assertion in the server log.
server_log_clean() {
    if grep -Eq 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|Assertion .* failed|SUMMARY: [A-Za-z]+Sanitizer' "$BR_TMP/server.log"; then
        grep -E -A12 'ERROR: [A-Za-z]+Sanitizer|runtime error:|Assertion' "$BR_TMP/server.log" | head -40 | sed 's/^/#   /'
        return 1
    fi
    return 0
}

# server_alive — berth's process still exists.
server_alive() { [ -n "$BR_PID" ] && kill -0 "$BR_PID" 2>/dev/null; }

# v2_ok — GET /v2/ answers 200 within a second.
v2_ok() { [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$BR_URL/v2/")" = 200 ]; }

# push_blob REPO FILE — monolithic POST ?digest=; prints the digest on 201.
push_blob() {
    local d
    d="sha256:$(sha256_of "$2")"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
        --data-binary @"$2" "$BR_URL/v2/$1/blobs/uploads/?digest=$d")" = 201 ] && echo "$d"
}
