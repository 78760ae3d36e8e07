#!/bin/bash
# Start-up: what `berth serve` and `berth check-config` refuse, and what they
# say about it.
#   - One server per store: a second serve on the same storage root (another
#     port) exits non-zero naming the PID that holds <root>/berth.lock, and
#     after kill -9 of the first a new one starts on that store.
#   - Files the config names: check-config opens (and loads) every one, and
#     reports file:line:col: key: path: reason at the key; serve says the same
#     and creates nothing on disk first. README's example is the example file.
#   - Open by default: one warning line naming 'auth:' when no auth is
#     configured and a listener is not loopback; none otherwise. Listening on
#     every address happens only inside a private network namespace.
. "$top_srcdir/tests/lib.sh"

# ---- item: one server per store --------------------------------------------------------
br_start || { ok "berth starts" false; done_testing; exit 1; }
first=$BR_PID
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary 'kept' -H 'Content-Type: application/octet-stream' \
    "$BR_URL/v2/lock/r/blobs/uploads/?digest=sha256:$(printf kept | sha256sum | cut -d' ' -f1)")
is "$st" 201 "the first server takes a blob"
is "$(tr -d '\n' <"$BR_ROOT/berth.lock")" "$first" "berth.lock holds the server's PID"

p2=$(free_port)
timeout 20 "$BERTH" serve --listen "127.0.0.1:$p2" --root "$BR_ROOT" >"$BR_TMP/second.log" 2>&1
rc=$?
ok "a second serve on the same store exits non-zero (rc $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
like "$(cat "$BR_TMP/second.log")" "another berth serves it \(process $first holds $BR_ROOT/berth.lock\)" \
    "... naming the PID that holds the store"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p2/v2/")" 000 "... and never listened on its port"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/")" 200 "the first server still answers"

br_kill9
br_start || ok "a new server starts on the store after kill -9 of the first" false
ok "a new server starts on the store after kill -9 of the first" kill -0 "$BR_PID"
is "$(tr -d '\n' <"$BR_ROOT/berth.lock")" "$BR_PID" "berth.lock now holds the new PID"
is "$(curl -s -o /dev/null -w '%{http_code}' -I "$BR_URL/v2/lock/r/blobs/sha256:$(printf kept | sha256sum | cut -d' ' -f1)")" \
    200 "the blob acknowledged before kill -9 is there"
ok "the server exits cleanly" br_stop
is "$(cat "$BR_ROOT/berth.lock")" "" "a clean exit empties berth.lock"
BR_ROOT=""

# ---- item: files the config names --------------------------------------------------------
# expect_refusal NAME CONFIG REGEX — check-config and serve both exit 1 with a
# message matching REGEX, and serve creates nothing under $BR_TMP/never.
expect_refusal() {
    local name=$1 cfg=$2 re=$3 out rc
    out=$("$BERTH" check-config -c "$cfg" 2>&1)
    rc=$?
    is "$rc" 1 "$name: check-config exits 1"
    like "$out" "$re" "$name: check-config says where and why"
    out=$(timeout 20 "$BERTH" serve -c "$cfg" 2>&1)
    rc=$?
    is "$rc" 1 "$name: serve exits 1"
    like "$out" "$re" "$name: serve says the same"
    ok "$name: serve never says 'unknown error'" test -z "$(printf '%s' "$out" | grep 'unknown error')"
    ok "$name: serve created nothing on disk" test ! -e "$BR_TMP/never"
}

port=$(free_port)
cat >"$BR_TMP/tls-missing.yaml" <<EOF
listen: "127.0.0.1:$port"
storage:
  root: $BR_TMP/never
tls:
  certificate: $BR_TMP/no/cert.pem
  key: $BR_TMP/no/key.pem
EOF
expect_refusal "missing TLS certificate" "$BR_TMP/tls-missing.yaml" \
    "^$BR_TMP/tls-missing.yaml:5:3: tls.certificate: $BR_TMP/no/cert.pem: No such file or directory\$"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$BR_TMP/key.pem" -out "$BR_TMP/cert.pem" >/dev/null 2>&1
sed "s#$BR_TMP/no/cert.pem#$BR_TMP/cert.pem#" "$BR_TMP/tls-missing.yaml" >"$BR_TMP/key-missing.yaml"
expect_refusal "missing TLS key" "$BR_TMP/key-missing.yaml" \
    "^$BR_TMP/key-missing.yaml:6:3: tls.key: $BR_TMP/no/key.pem: No such file or directory\$"

printf 'not a certificate\n' >"$BR_TMP/garbage.pem"
sed "s#$BR_TMP/no/cert.pem#$BR_TMP/garbage.pem#; s#$BR_TMP/no/key.pem#$BR_TMP/key.pem#" "$BR_TMP/tls-missing.yaml" \
    >"$BR_TMP/tls-garbage.yaml"
expect_refusal "a certificate that is no PEM" "$BR_TMP/tls-garbage.yaml" \
    "cannot load certificate $BR_TMP/garbage.pem / key $BR_TMP/key.pem: no start line"

cat >"$BR_TMP/htpasswd-missing.yaml" <<EOF
listen: "127.0.0.1:$port"
storage: {root: $BR_TMP/never}
auth:
  realm: test
  htpasswd: $BR_TMP/no/htpasswd
EOF
expect_refusal "missing htpasswd" "$BR_TMP/htpasswd-missing.yaml" \
    "^$BR_TMP/htpasswd-missing.yaml:5:3: auth.htpasswd: $BR_TMP/no/htpasswd: No such file or directory\$"

mkdir "$BR_TMP/adir"
sed "s#$BR_TMP/no/htpasswd#$BR_TMP/adir#" "$BR_TMP/htpasswd-missing.yaml" >"$BR_TMP/htpasswd-dir.yaml"
expect_refusal "htpasswd is a directory" "$BR_TMP/htpasswd-dir.yaml" \
    "^$BR_TMP/htpasswd-dir.yaml:5:3: auth.htpasswd: $BR_TMP/adir: Is a directory\$"

cat >"$BR_TMP/token-missing.yaml" <<EOF
listen: "127.0.0.1:$port"
storage: {root: $BR_TMP/never}
auth:
  token:
    realm: http://127.0.0.1:$port/token
    path: /token
    service: test
    key:   $BR_TMP/no/token.key
EOF
expect_refusal "missing token key" "$BR_TMP/token-missing.yaml" \
    "^$BR_TMP/token-missing.yaml:8:5: auth.token.key: $BR_TMP/no/token.key: No such file or directory\$"

printf 'listen: "127.0.0.1:%s"\n' "$port" >"$BR_TMP/plain.yaml"
out=$(BERTH_STORAGE_ROOT=$BR_TMP/never BERTH_TLS_CERTIFICATE=$BR_TMP/cert.pem BERTH_TLS_KEY=$BR_TMP/no/key.pem \
    "$BERTH" check-config -c "$BR_TMP/plain.yaml" 2>&1)
like "$out" "^BERTH_TLS_KEY: tls.key: $BR_TMP/no/key.pem: No such file or directory\$" \
    "a file named in the environment: the variable, key, path and reason"
out=$("$BERTH" serve -c "$BR_TMP/plain.yaml" --root "$BR_TMP/no/such/dir" 2>&1)
is "$?:$out" "1:command line: storage.root: $BR_TMP/no/such/dir: No such file or directory" \
    "a storage root whose parent is missing is refused before start"
ok "... and not created" test ! -e "$BR_TMP/no"

out=$(BERTH_STORAGE_ROOT=$BR_TMP/never "$BERTH" check-config -c "$BR_TMP/plain.yaml" 2>&1)
is "$?:$out" "0:$BR_TMP/plain.yaml: ok" "check-config of a loopback config without files is ok, without a warning"
ok "check-config created nothing on disk" test ! -e "$BR_TMP/never"

# README's example is config/berth.example.yaml, verbatim, and is valid.
awk '/^## Example configuration/ {s = 1} s && /^```yaml/ {y = 1; next} y && /^```/ {exit} y' \
    "$top_srcdir/README.md" >"$BR_TMP/readme.yaml"
ok "README has an example configuration" test -s "$BR_TMP/readme.yaml"
python3 - "$BR_TMP/readme.yaml" "$top_srcdir/config/berth.example.yaml" <<'PY'
import sys
block, full = open(sys.argv[1]).read(), open(sys.argv[2]).read()
sys.exit(0 if block in full else 1)
PY
ok "README's example is config/berth.example.yaml, verbatim" test $? -eq 0
ok "README's example enables no TLS" test -z "$(grep -E '^ *(certificate|key|client_ca): *[^~ ]' "$BR_TMP/readme.yaml")"
out=$("$BERTH" check-config -c "$BR_TMP/readme.yaml" 2>/dev/null)
is "$?:$out" "0:$BR_TMP/readme.yaml: ok" "check-config accepts README's example"

# ---- item: open by default ---------------------------------------------------------------
WARN='no authentication configured'
printf 'listen: ":5000"\n' >"$BR_TMP/any.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/any.yaml" 2>&1 >/dev/null)
is "$?" 0 "check-config of an open config on every address exits 0"
like "$out" "warning: $WARN and listening on 0\\.0\\.0\\.0:5000: .*delete.*set 'auth:'" \
    "... with a warning naming the 'auth:' key"
is "$(printf '%s\n' "$out" | grep -c "$WARN")" 1 "... on one line"
for l in '127.0.0.1:5000' '127.3.4.5:5000' 'localhost:5000' '[::1]:5000'; do
    printf 'listen: ["%s"]\n' "$l" >"$BR_TMP/lo.yaml"
    is "$("$BERTH" check-config -c "$BR_TMP/lo.yaml" 2>&1 | grep -c "$WARN")" 0 "no warning when listening on $l only"
done
printf 'listen: ["127.0.0.1:5000", ":5001"]\n' >"$BR_TMP/mixed.yaml"
like "$("$BERTH" check-config -c "$BR_TMP/mixed.yaml" 2>&1)" "$WARN and listening on 0\\.0\\.0\\.0:5001" \
    "one listener on every address is enough for the warning"
printf 'secret\n' | "$BERTH" hash-password user >"$BR_TMP/htpasswd" 2>/dev/null
printf 'listen: ":5000"\nauth:\n  htpasswd: %s\n' "$BR_TMP/htpasswd" >"$BR_TMP/any-auth.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/any-auth.yaml" 2>&1)
is "$?:$(printf '%s' "$out" | grep -c "$WARN")" "0:0" "no warning when auth is configured"

br_start || ok "berth starts on loopback" false
ok "serve on 127.0.0.1 without auth: no warning" test "$(grep -c "$WARN" "$BR_TMP/server.log")" = 0
ok "the loopback server exits cleanly" br_stop

# Every address: only inside a private network namespace (nothing but an
# unreachable loopback there). open_run DIR [ARGS] starts berth in DIR, waits
# for its "listening" line, stops it and prints its log.
open_run() {
    local dir=$1 pid i
    shift
    cd "$dir" || return 1
    "$BERTH" "$@" >"$dir/log" 2>&1 &
    pid=$!
    for i in $(seq 1 200); do
        grep -q 'listening on' "$dir/log" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    kill -TERM $pid 2>/dev/null
    wait $pid
    cat "$dir/log"
}
if command -v unshare >/dev/null 2>&1 && unshare -rn true 2>/dev/null; then
    export -f open_run
    export BERTH
    mkdir -p "$BR_TMP/open1" "$BR_TMP/open2"
    out=$(unshare -rn bash -c 'open_run "$1"' _ "$BR_TMP/open1")
    like "$out" 'listening on 0\.0\.0\.0:5000' "netns: berth with the embedded defaults listens on every address"
    is "$(printf '%s\n' "$out" | grep -c "warn.*$WARN")" 1 "netns: ... and warns once"
    like "$out" "$WARN and listening on 0\\.0\\.0\\.0:5000: anyone who can reach it may pull, push and delete; set 'auth:' in the config \\(auth\\.htpasswd or auth\\.token\\)" \
        "netns: ... naming the key that turns auth on"
    out=$(unshare -rn bash -c 'open_run "$1" serve -c "$2"' _ "$BR_TMP/open2" "$BR_TMP/any-auth.yaml")
    like "$out" 'listening on 0\.0\.0\.0:5000' "netns: berth with auth listens on every address"
    is "$(printf '%s\n' "$out" | grep -c "$WARN")" 0 "netns: ... without the warning"
else
    ok "# SKIP no network namespace: serve on every address not run" true
fi

done_testing
