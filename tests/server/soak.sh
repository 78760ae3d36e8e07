#!/bin/bash
# Concurrency soak (issue 9, item 1): 16 clients for about a minute against
# a berth with 8 event-loop threads (more than cores: more interleavings),
# doing mixed pushes (monolithic, chunked, Transfer-Encoding: chunked bodies),
# pulls with and without Range, cross-repository mounts, retags, manifest and
# tag deletes, and connections dropped in the middle of bodies (soak.py says
# what exactly). Every answer is checked as it arrives; every acknowledged
# write is verified at the end, and again after kill -9 and a restart on the
# same store. The server must neither crash nor log a sanitizer report or a
# heap-corruption abort: h2o objects made on one thread and used on another
# showed up as glibc's "malloc(): unsorted double linked list corrupted".
# BR_SOAK_SECONDS (default 60) and BR_SOAK_CLIENTS (default 16) size it;
# BR_SOAK_SEED repeats a run's mix of operations.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

DURATION=${BR_SOAK_SECONDS:-60}
CLIENTS=${BR_SOAK_CLIENTS:-16}
STATE=$BR_TMP/soak-state.json

soak_config() {
    cat >"$BR_TMP/soak.yaml" <<YAML
threads: 8
YAML
    echo "$BR_TMP/soak.yaml"
}
BR_START_CONFIG=soak_config

# glibc's own heap checks abort with messages like these, before any
# sanitizer could say anything.
no_heap_abort() {
    if grep -Eq 'malloc\(\)|free\(\)|corrupted|double free|munmap_chunk|stack smashing' "$BR_TMP/server.log"; then
        grep -E -B2 -A5 'malloc\(\)|free\(\)|corrupted|double free|munmap_chunk|stack smashing' "$BR_TMP/server.log" | head -20 | sed 's/^/#   /'
        return 1
    fi
}

br_start || { ok "berth starts" false; done_testing; exit 1; }
t0=$(date +%s)
py_checks "$ROBUST_DIR/soak.py" run "$BR_PORT" "$STATE" "$DURATION" "$CLIENTS"
diag "soak: $CLIENTS clients, $DURATION s of load, $(($(date +%s) - t0)) s with checks"
if ! ok "berth is still running after the soak" server_alive; then
    diag "server log (tail):"
    tail -n 30 "$BR_TMP/server.log" | sed 's/^/#   /'
    ok "no heap-corruption abort in the server log" no_heap_abort
    ok "no sanitizer report, crash or assertion in the server log" server_log_clean
    done_testing
    exit 1
fi
py_checks "$ROBUST_DIR/soak.py" verify "$BR_PORT" "$STATE" "after the soak"
br_kill9
ok "berth restarts on the same store after kill -9" br_start
py_checks "$ROBUST_DIR/soak.py" verify "$BR_PORT" "$STATE" "after kill -9 and restart"
ok "berth exits cleanly" br_stop
ok "no heap-corruption abort in the server log" no_heap_abort
ok "no sanitizer report, crash or assertion in the server log" server_log_clean
no_sanitizer_report "$BR_TMP/server.log"
done_testing
