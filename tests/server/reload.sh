#!/usr/bin/env bash
# SIGHUP (and `berth reload`) re-reads the whole config: a changed access rule
# applies to the next request on a connection that stays open; a new htpasswd
# file, log level and format take effect; an invalid file changes nothing and
# is reported as file:line:col (as check-config reports it); keys that need a
# restart (listen, threads) are reported and keep their running values.
. "$top_srcdir/tests/lib.sh"

PW_ALICE=alice-pw-1 PW_BOB=bob-pw-2
printf '%s\n' "$PW_ALICE" | "$BERTH" hash-password alice >"$BR_TMP/htpasswd-a"
printf '%s\n' "$PW_BOB" | "$BERTH" hash-password bob >"$BR_TMP/htpasswd-b"

BR_PORT=$(free_port)
OTHER_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
CFG="$BR_TMP/berth.yaml"
# conf PORT THREADS HTPASSWD ACTIONS LEVEL FORMAT [GC_INTERVAL] — alice's (or bob's) rule on team/**
conf() {
    cat >"$CFG" <<YAML
listen: "127.0.0.1:$1"
threads: $2
storage:
  root: $BR_TMP/store
gc:
  interval: ${7:-1h}
log:
  level: $5
  format: $6
auth:
  htpasswd: $BR_TMP/$3
  rules:
    - {repository: "team/**", users: [alice, bob], actions: [$4]}
YAML
}
conf "$BR_PORT" 2 htpasswd-a "pull, push" info text
br_serve "$CFG" || { echo "Bail out! berth did not start"; exit 1; }

code() { # code USER:PW PATH [curl args]
    curl -s -o /dev/null -w '%{http_code}' -u "$1" "${@:3}" "$BR_URL$2"
}
# hup PATTERN — SIGHUP, then wait until one more line matches PATTERN.
hup() {
    local before i
    before=$(grep -c -- "$1" "$BR_TMP/server.log")
    kill -HUP "$BR_PID"
    for i in $(seq 1 100); do
        [ "$(grep -c -- "$1" "$BR_TMP/server.log")" -gt "$before" ] && return 0
        sleep 0.1
    done
    echo "# no new '$1' in the log"
    return 1
}

# ---- a rule changed between two requests on one keep-alive connection -------
python3 - "$BR_PORT" "$BR_TMP" "alice:$PW_ALICE" >"$BR_TMP/held.out" 2>&1 <<'PY' &
import base64, http.client, os, sys, time
port, tmp, cred = int(sys.argv[1]), sys.argv[2], sys.argv[3]
auth = {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def push_start():
    conn.request("POST", "/v2/team/app/blobs/uploads/", headers=auth)
    r = conn.getresponse()
    r.read()
    return r.status
first = push_start()
sock, local = conn.sock, conn.sock.getsockname()
open(os.path.join(tmp, "held.ready"), "w").close()
while not os.path.exists(os.path.join(tmp, "reloaded")):
    time.sleep(0.05)
second = push_start()
same = conn.sock is sock and conn.sock.getsockname() == local
print(first, second, "same-connection" if same else "new-connection")
PY
held=$!
for i in $(seq 1 100); do [ -f "$BR_TMP/held.ready" ] && break; sleep 0.1; done
conf "$BR_PORT" 2 htpasswd-a "pull" info text
ok "reload logged" hup "config reloaded (generation 2)"
touch "$BR_TMP/reloaded"
wait "$held"
is "$(cat "$BR_TMP/held.out")" "202 403 same-connection" \
    "push allowed, then (rule changed, SIGHUP) denied on the same keep-alive connection"
is "$(code "alice:$PW_ALICE" /v2/team/app/tags/list)" 404 "pull still allowed by the new rule"

# ---- an invalid file changes nothing ----------------------------------------
conf "$BR_PORT" 2 htpasswd-a "pull, push" info text
printf 'bogus: 1\n' >>"$CFG"
bad_line=$(wc -l <"$CFG")
ok "invalid reload logged" hup "reload: nothing changed"
like "$(grep 'reload: ' "$BR_TMP/server.log" | grep -v 'nothing changed' | tail -n 1)" \
    "berth.yaml:$bad_line:1: .*bogus" "the error names file:line:col"
"$BERTH" check-config -c "$CFG" >/dev/null 2>"$BR_TMP/check.err"
like "$(cat "$BR_TMP/check.err")" "berth.yaml:$bad_line:1: .*bogus" "check-config reports the same position"
is "$(code "alice:$PW_ALICE" /v2/team/app/blobs/uploads/ -X POST)" 403 "the rule in force is still the last valid one"
conf "$BR_PORT" 2 missing "pull, push" info text
ok "reload with a missing htpasswd logged" hup "reload: nothing changed"
like "$(grep 'reload: ' "$BR_TMP/server.log" | grep -v 'nothing changed' | tail -n 1)" \
    "berth.yaml:[0-9]+:[0-9]+: auth.htpasswd: .*missing" "the missing file is reported with its key's position"
is "$(code "alice:$PW_ALICE" /v2/team/app/blobs/uploads/ -X POST)" 403 "... and changes nothing either"

# ---- keys that need a restart --------------------------------------------------
conf "$OTHER_PORT" 1 htpasswd-a "pull, push" info text
ok "reload with restart-only keys logged" hup "config reloaded (generation 3)"
like "$(grep 'needs restart' "$BR_TMP/server.log" | grep -c 'berth.yaml:1:1: listen')" '^1$' "listen: needs restart, with its position"
like "$(grep 'needs restart' "$BR_TMP/server.log" | grep -c 'berth.yaml:2:1: threads')" '^1$' "threads: needs restart"
is "$(code "alice:$PW_ALICE" /v2/team/app/blobs/uploads/ -X POST)" 202 "the rest of the file applied (push allowed again)"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OTHER_PORT/v2/" || true)" 000 "the new listen address is not served"

# ---- a new htpasswd file -------------------------------------------------------
conf "$BR_PORT" 2 htpasswd-b "pull, push" info text
ok "reload logged" hup "config reloaded (generation 4)"
is "$(code "bob:$PW_BOB" /v2/)" 200 "bob (only in the new htpasswd file) signs in"
is "$(code "alice:$PW_ALICE" /v2/)" 401 "alice (only in the old one) no longer does"

# ---- log level and format ------------------------------------------------------
conf "$BR_PORT" 2 htpasswd-b "pull" warn text
kill -HUP "$BR_PID"
for i in $(seq 1 100); do [ "$(code "bob:$PW_BOB" /v2/team/app/blobs/uploads/ -X POST)" = 403 ] && break; sleep 0.1; done
is "$(code "bob:$PW_BOB" /v2/team/app/blobs/uploads/ -X POST)" 403 "reload to level warn applied"
sleep 0.3
ok "at level warn, the info line of that reload is not written" sh -c '! grep -q "generation 5" "$1"' sh "$BR_TMP/server.log"
conf "$BR_PORT" 2 htpasswd-b "pull, push" info json
ok "back at info, in JSON" hup '"level":"info","msg":"reload: config reloaded (generation 6)"'
code "bob:$PW_BOB" /v2/ >/dev/null
for i in $(seq 1 50); do grep -q '"type":"access".*"user":"bob"' "$BR_TMP/server.log" && break; sleep 0.1; done
like "$(grep '"user":"bob"' "$BR_TMP/server.log" | tail -n 1)" '^\{"time":".*","type":"access",.*"user":"bob"' "access log lines are JSON now"

# ---- berth reload -------------------------------------------------------------
conf "$BR_PORT" 2 htpasswd-b "pull" info text
"$BERTH" reload -c "$CFG" >"$BR_TMP/reload.out" 2>&1
is "$?" 0 "berth reload -c FILE exits 0"
like "$(cat "$BR_TMP/reload.out")" "sent SIGHUP to berth \(process $BR_PID\)" "... and names the process"
for i in $(seq 1 100); do grep -q "generation 7" "$BR_TMP/server.log" && break; sleep 0.1; done
is "$(code "bob:$PW_BOB" /v2/team/app/blobs/uploads/ -X POST)" 403 "berth reload applied the file"
"$BERTH" reload --root "$BR_TMP/nostore" >"$BR_TMP/reload.out" 2>&1
is "$?" 1 "berth reload without a server on the store exits 1"

# ---- gc settings: a new interval counts from the reload ------------------------------
ok "no collection ran yet (interval 1h)" sh -c '! grep -q "gc: .* reclaimed" "$1"' sh "$BR_TMP/server.log"
conf "$BR_PORT" 2 htpasswd-b "pull" info text 1s
kill -HUP "$BR_PID"
for i in $(seq 1 100); do grep -q "gc: .* reclaimed" "$BR_TMP/server.log" && break; sleep 0.1; done
ok "after a reload to gc.interval 1s the collector runs" grep -q "gc: .* reclaimed" "$BR_TMP/server.log"

ok "server exits cleanly" br_stop
no_sanitizer_report "$BR_TMP/server.log"
done_testing
