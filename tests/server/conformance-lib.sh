# Runs the curl-level conformance scripts (base.sh, blobs.sh, manifests.sh)
# against a berth with auth on, as one TAP stream. Sourced by
# conformance-basic.sh and conformance-token.sh after they set BR_AUTH_MODE
# (read by oci-lib.sh: the scripts' br_start and `http` then use credentials).
# Each script's tests are renumbered and prefixed with its name; a script
# that ends early, runs a number of tests other than its plan, or exits
# non-zero without a failed test adds a failing test of its own.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
export top_srcdir BR_AUTH_MODE

conformance_n=0
conformance_failed=0

# conformance_emit OK|"not ok" TEXT — one renumbered result line.
conformance_emit() {
    conformance_n=$((conformance_n + 1))
    echo "$1 $conformance_n - $2"
    [ "$1" = ok ] || conformance_failed=$((conformance_failed + 1))
}

# conformance_run SCRIPT — runs tests/server/SCRIPT, passing its TAP on.
conformance_run() {
    local name=$1 line plan="" count=0 failed=0 rc pid t0
    t0=$(date +%s%3N)
    while IFS= read -r line; do
        if [[ $line =~ ^(not\ )?ok\ [0-9]+(\ -)?\ ?(.*)$ ]]; then
            count=$((count + 1))
            [ -z "${BASH_REMATCH[1]}" ] || failed=$((failed + 1))
            conformance_emit "${BASH_REMATCH[1]}ok" "$name: ${BASH_REMATCH[3]}"
        elif [[ $line =~ ^1\.\.([0-9]+)(.*)$ ]]; then
            plan=${BASH_REMATCH[1]}
            [[ $plan != 0 || ${BASH_REMATCH[2]} != *SKIP* ]] || conformance_emit ok "$name # SKIP${BASH_REMATCH[2]#*SKIP}"
        elif [[ $line == "Bail out!"* ]]; then
            conformance_emit "not ok" "$name: ${line#Bail out!}"
        else
            printf '%s\n' "$line"
        fi
    done < <(bash "$top_srcdir/tests/server/$name")
    pid=$!
    rc=0
    wait "$pid" || rc=$?
    if [ -z "$plan" ]; then
        conformance_emit "not ok" "$name ended without a plan (exit status $rc)"
    elif [ "$plan" != "$count" ] && [ "$plan" != 0 ]; then
        conformance_emit "not ok" "$name planned $plan tests and ran $count"
    elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        conformance_emit "not ok" "$name exited with status $rc"
    fi
    echo "# $name ($BR_AUTH_MODE): $count tests, $failed failed, $(($(date +%s%3N) - t0)) ms"
}

for s in base.sh blobs.sh manifests.sh; do
    conformance_run "$s"
done
echo "1..$conformance_n"
[ "$conformance_failed" -eq 0 ]
