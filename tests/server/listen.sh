#!/bin/bash
# Listeners: one listening socket per address, shared by berth's threads, so a
# second berth on the same address fails at start ("address already in use")
# instead of splitting connections with the first (SO_REUSEPORT did that).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

br_start || { ok "berth starts" false; done_testing; exit 1; }
printf 'x' >"$BR_TMP/blob"
ok "push a blob to the first berth" eval "push_blob listen/one $BR_TMP/blob >/dev/null"

# The second one has its own store (so no store lock can be what stops it).
rc=0
timeout 10 "$BERTH" serve --listen "127.0.0.1:$BR_PORT" --root "$BR_TMP/store2" >"$BR_TMP/second.log" 2>&1 || rc=$?
ok "a second berth on the same address exits non-zero (rc=$rc)" test "$rc" != 0 -a "$rc" != 124
like "$(cat "$BR_TMP/second.log")" "[Aa]ddress already in use" "it says the address is already in use"
n=0
for _ in $(seq 1 16); do
    [ "$(curl -s "$BR_URL/v2/_catalog")" = '{"repositories":["listen/one"]}' ] && n=$((n + 1))
done
is "$n" 16 "the first berth answers every new connection afterwards"
ok "the first berth is still running" server_alive
ok "berth exits cleanly" br_stop
ok "no sanitizer report, crash or assertion in the server log" server_log_clean
done_testing
