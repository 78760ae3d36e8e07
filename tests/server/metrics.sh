#!/bin/bash
# metrics.listen: /metrics in the Prometheus text format after a known number of
# pushes and pulls (request counters by route, method and status class, latency
# histograms, body bytes, store figures kept by the index, connections by
# protocol and close reason, build info), accepted by `promtool check metrics`;
# /healthz and /readyz, /readyz 503 while a request holds the drain after
# SIGTERM; health.on_main with auth: the probes answer without credentials,
# /v2/ still wants them, and auth outcomes are counted without user names.
# Nothing is listening for metrics unless configured.
. "$top_srcdir/tests/lib.sh"

command -v promtool >/dev/null || skip_all "promtool (Debian package prometheus) is not installed"

OCT='Content-Type: application/octet-stream'
MT=application/vnd.oci.image.manifest.v1+json

BR_PORT=$(free_port)
M_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
M_URL="http://127.0.0.1:$M_PORT"
cat >"$BR_TMP/c.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
threads: 2
storage: {root: $BR_TMP/store, fsync: false}
limits: {max_connections_per_client: 24, idle_timeout: 3s, drain_timeout: 20s}
metrics: {listen: "127.0.0.1:$M_PORT"}
EOF
ok "berth starts with metrics.listen" br_serve "$BR_TMP/c.yaml"

# scrape — the metrics page into $BR_TMP/m.txt
scrape() { curl -s -o "$BR_TMP/m.txt" -w '%{http_code}' "$M_URL/metrics"; }
# val SERIES — the value of one series (exact name and labels) in $BR_TMP/m.txt
val() { awk -v k="$1" '$1 == k { print $2 }' "$BR_TMP/m.txt"; }

is "$(scrape)" 200 "GET /metrics on the metrics listener is 200"
like "$(grep -i '^content-type' <(curl -s -D - -o /dev/null "$M_URL/metrics"))" 'text/plain; version=0.0.4' "in the text format 0.0.4"
is "$(val berth_store_blobs)" 0 "an empty store has no blobs"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/metrics")" 404 "the main listener does not serve /metrics"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: berth-metrics.invalid' "$BR_URL/metrics")" 404 "not for the metrics host name either"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/healthz")" 404 "nor /healthz without health.on_main"
is "$(curl -s -o /dev/null -w '%{http_code}' "$M_URL/v2/")" 404 "the metrics listener serves no registry"

# Three images in m/app, each a config and a layer of random bytes (monolithic
# POST ?digest=) and a manifest tagged vN.
bytes_blobs=0
bytes_manifests=0
digests=()
for n in 1 2 3; do
    head -c $((1000 * n + 17)) /dev/urandom >"$BR_TMP/layer$n"
    printf '{"n":%d,"r":"%s"}' "$n" "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$BR_TMP/config$n"
    for f in config$n layer$n; do
        d=sha256:$(sha256sum "$BR_TMP/$f" | cut -d' ' -f1)
        s=$(stat -c %s "$BR_TMP/$f")
        eval "${f}_d=$d ${f}_s=$s"
        digests+=("$d")
        bytes_blobs=$((bytes_blobs + s))
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$OCT" --data-binary "@$BR_TMP/$f" "$BR_URL/v2/m/app/blobs/uploads/?digest=$d")
        [ "$code" = 201 ] || diag "upload of $f: $code"
    done
    cd_=config${n}_d cs_=config${n}_s ld_=layer${n}_d ls_=layer${n}_s
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
        "$MT" "${!cd_}" "${!cs_}" "${!ld_}" "${!ls_}" >"$BR_TMP/manifest$n"
    bytes_manifests=$((bytes_manifests + $(stat -c %s "$BR_TMP/manifest$n")))
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT" --data-binary "@$BR_TMP/manifest$n" "$BR_URL/v2/m/app/manifests/v$n")
    [ "$code" = 201 ] || diag "manifest v$n: $code"
done
# Pulls: three manifests by tag, the six blobs, two HEADs, one unknown manifest.
for n in 1 2 3; do curl -s -o /dev/null -H "Accept: $MT" "$BR_URL/v2/m/app/manifests/v$n"; done
for d in "${digests[@]}"; do curl -s -o /dev/null "$BR_URL/v2/m/app/blobs/$d"; done
curl -s -o /dev/null -I "$BR_URL/v2/m/app/manifests/v1"
curl -s -o /dev/null -I "$BR_URL/v2/m/app/manifests/v2"
curl -s -o /dev/null "$BR_URL/v2/m/app/manifests/nope"
# An upload session left open.
curl -s -o /dev/null -X POST "$BR_URL/v2/m/app/blobs/uploads/"
sleep 0.3 # the counters are bumped when h2o disposes each request

is "$(scrape)" 200 "scraped after 3 pushes and the pulls"
promtool check metrics <"$BR_TMP/m.txt" >"$BR_TMP/promtool.out" 2>&1
ok "promtool check metrics accepts the page" test $? = 0
sed 's/^/#   /' "$BR_TMP/promtool.out" | head -n 20
is "$(val 'berth_http_requests_total{route="upload",method="POST",status="2xx"}')" 7 "7 upload POSTs (6 monolithic, 1 session start)"
is "$(val 'berth_http_requests_total{route="manifest",method="PUT",status="2xx"}')" 3 "3 manifest PUTs"
is "$(val 'berth_http_requests_total{route="manifest",method="GET",status="2xx"}')" 3 "3 manifest GETs"
is "$(val 'berth_http_requests_total{route="manifest",method="GET",status="4xx"}')" 1 "1 manifest GET 4xx"
is "$(val 'berth_http_requests_total{route="manifest",method="HEAD",status="2xx"}')" 2 "2 manifest HEADs"
is "$(val 'berth_http_requests_total{route="blob",method="GET",status="2xx"}')" 6 "6 blob GETs"
is "$(val 'berth_http_requests_total{route="base",method="GET",status="2xx"}')" 1 "1 GET /v2/ (the start-up probe)"
is "$(val 'berth_http_requests_total{route="other",method="GET",status="4xx"}')" 3 "3 404s outside /v2/"
is "$(val 'berth_http_request_duration_seconds_count{route="manifest",method="GET"}')" 4 "the manifest GET histogram counts 4"
is "$(val 'berth_http_request_duration_seconds_bucket{route="manifest",method="GET",le="+Inf"}')" 4 "its +Inf bucket too"
mono=$(awk -F'[{} ]' '/^berth_http_request_duration_seconds_bucket\{route="blob",method="GET"/ { if ($NF < last) bad = 1; last = $NF } END { print bad ? "no" : "yes" }' "$BR_TMP/m.txt")
is "$mono" yes "the blob GET buckets are cumulative"
like "$(val 'berth_http_request_duration_seconds_sum{route="blob",method="GET"}')" '^0\.[0-9]+$' "the latency sum is in seconds"
is "$(val 'berth_http_received_bytes_total{route="upload"}')" "$bytes_blobs" "upload body bytes received = the blobs' sizes"
is "$(val 'berth_http_received_bytes_total{route="manifest"}')" "$bytes_manifests" "manifest body bytes received = the manifests' sizes"
is "$(val 'berth_http_sent_bytes_total{route="blob"}')" "$bytes_blobs" "blob body bytes sent = the blobs' sizes"
is "$(val berth_store_repositories)" 1 "store: 1 repository"
is "$(val berth_store_blobs)" 9 "store: 9 blobs (6 + 3 manifest bodies)"
is "$(val berth_store_blobs_bytes)" $((bytes_blobs + bytes_manifests)) "store: their bytes"
is "$(val berth_store_manifests)" 3 "store: 3 manifests"
is "$(val berth_store_tags)" 3 "store: 3 tags"
is "$(val berth_store_upload_sessions)" 1 "store: 1 upload session open"
is "$(val berth_http_uploads_in_flight)" 0 "no upload request in flight"
is "$(val berth_threads)" 2 "2 threads"
is "$(val berth_io_jobs)" 0 "no store write queued for the I/O threads"
ok "event-loop lag for each thread" test -n "$(val 'berth_event_loop_lag_seconds{thread="0"}')" -a -n "$(val 'berth_event_loop_lag_seconds{thread="1"}')"
version=$("$BERTH" version | cut -d' ' -f2)
like "$(grep '^berth_build_info' "$BR_TMP/m.txt")" "^berth_build_info\\{version=\"$version\",h2o=\"[^\"]+\",openssl=\"[^\"]+\"\\} 1\$" "build info names the version"
closed_normal=$(val 'berth_connections_closed_total{reason="normal"}')
ok "closed connections counted as normal ($closed_normal)" test "${closed_normal:-0}" -ge 20

# A blob deleted through the API stays in the store (until gc): the figure
# follows the index, not the requests.
curl -s -o /dev/null -X DELETE "$BR_URL/v2/m/app/manifests/v3"
scrape >/dev/null
is "$(val berth_store_tags)" 2 "a deleted tag leaves the tag count at once"

# Connections by protocol: one HTTP/1.1 and one h2c (prior knowledge)
# connection, each held open after a GET /v2/.
python3 - "$BR_PORT" "$BR_TMP/held" >"$BR_TMP/hold.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
h1 = socket.create_connection(("127.0.0.1", port))
h1.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
h1.recv(4096)
h2 = socket.create_connection(("127.0.0.1", port))
# preface, empty SETTINGS, HEADERS (END_STREAM|END_HEADERS) on stream 1 with
# HPACK :method GET, :scheme http, :path /v2/, :authority x
block = b"\x82\x86\x44\x04/v2/\x41\x01x"
h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
           len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block)
h2.recv(4096)
open(sys.argv[2], "w").close()
time.sleep(30)
PY
hold=$!
# wait_file F — waits (up to 20 s) until a helper process created F.
wait_file() {
    local i
    for i in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.1; done
    return 1
}
wait_file "$BR_TMP/held"
scrape >/dev/null
is "$(val 'berth_connections_open{protocol="h1",tls="false"}')" 1 "one HTTP/1 connection open"
is "$(val 'berth_connections_open{protocol="h2",tls="false"}')" 1 "one h2c connection open"
kill "$hold"
wait "$hold" 2>/dev/null

# Close reasons: an idle connection (idle_timeout 3s), a malformed request
# (error), connections over max_connections_per_client (cap: 24, one of them
# the idle one, so 5 of 28 more are refused). They come from 127.0.0.2, a
# client of their own: the scrapes and the held connections above (whose
# close berth may not have seen yet on a loaded machine) are 127.0.0.1's.
before_idle=$(val 'berth_connections_closed_total{reason="idle"}')
python3 - "$BR_PORT" >"$BR_TMP/cap.out" <<'PY'
import select, socket, sys, time
port = int(sys.argv[1])
def conn():
    return socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
idle = conn()
bad = conn()
bad.sendall(b"NOT HTTP AT ALL\r\n\r\n")
while bad.recv(4096) != b"":  # the server answers 400 and closes
    pass
bad.close()
time.sleep(0.2)
many = [conn() for _ in range(28)]
# berth closes the refused ones at once (the admitted ones only after the
# 3 s idle_timeout): wait up to 10 s for the 5th, then a little longer to see
# that no 6th follows.
def closed_by_server():  # readable = EOF: nothing else is sent to them
    return len(select.select(many, [], [], 0)[0])
deadline = time.time() + 10
while closed_by_server() < 5 and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
print(closed_by_server())
for s in many:
    s.close()
deadline = time.time() + 15
idle.settimeout(1)
while time.time() < deadline:
    try:
        if idle.recv(1) == b"":
            break
    except socket.timeout:
        pass
PY
sleep 0.5
scrape >/dev/null
is "$(cat "$BR_TMP/cap.out")" 5 "berth closed 5 of the 28 connections over the per-client cap at once"
is "$(val 'berth_connections_closed_total{reason="cap"}')" 5 "5 connections over the per-client cap of 24 closed as cap"
ok "the malformed request's connection closed as error" test "$(val 'berth_connections_closed_total{reason="error"}')" -ge 1
ok "the idle connection closed as idle" test "$(val 'berth_connections_closed_total{reason="idle"}')" -gt "${before_idle:-0}"
is "$(val 'berth_connections_open{protocol="h1",tls="false"}')" 0 "no HTTP/1 connection open at the end"

# Probes, then the drain: a download the client reads slowly holds the drain
# after SIGTERM; meanwhile /readyz is 503 and /healthz 200. (A download rather
# than an upload: it holds the drain in both h2o builds.)
is "$(curl -s -w ' %{http_code}' "$M_URL/healthz" | tr -d '\n')" "ok 200" "/healthz: 200 ok"
is "$(curl -s -w ' %{http_code}' "$M_URL/readyz" | tr -d '\n')" "ready 200" "/readyz: 200 ready"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M_URL/readyz")" 405 "/readyz refuses POST"
head -c 8000000 /dev/urandom >"$BR_TMP/big"
bd=sha256:$(sha256sum "$BR_TMP/big" | cut -d' ' -f1)
curl -s -o /dev/null -X POST -H "$OCT" --data-binary "@$BR_TMP/big" "$BR_URL/v2/m/app/blobs/uploads/?digest=$bd"
python3 - "$BR_PORT" "$bd" "$BR_TMP/sent" >"$BR_TMP/slow.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(("GET /v2/m/app/blobs/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
open(sys.argv[3], "w").close()
time.sleep(2.5)  # under idle_timeout
resp = b""
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    resp += b
print(resp.split(b"\r\n")[0].decode(), len(resp.split(b"\r\n\r\n", 1)[1]))
PY
slow=$!
wait_file "$BR_TMP/sent"
sleep 0.3 # the request has reached berth
kill -TERM "$BR_PID"
sleep 0.5
ok "berth is still draining" kill -0 "$BR_PID"
is "$(curl -s -w ' %{http_code}' --max-time 5 "$M_URL/readyz" | tr -d '\n')" "shutting down 503" "/readyz: 503 while draining"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$M_URL/healthz")" 200 "/healthz: still 200"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BR_URL/v2/")" 000 "the main listener takes no new connection"
wait "$slow"
is "$(cat "$BR_TMP/slow.out")" "HTTP/1.1 200 OK 8000000" "the download in flight completes"
rc=0
wait "$BR_PID" || rc=$?
BR_PID=""
is "$rc" 0 "berth exits 0 after the drain"
no_sanitizer_report "$BR_TMP/server.log"

# A bad address is a config error with its position; an empty one is off.
printf 'metrics:\n  listen: "nope"\n' >"$BR_TMP/bad.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/bad.yaml" 2>&1)
is "$?" 1 "check-config refuses metrics.listen: nope"
like "$out" "bad.yaml:2:[0-9]+: 'metrics.listen' must be host:port" "... naming file, line and column"
printf 'metrics:\n  listen: ""\nhealth: {on_main: yes}\n' >"$BR_TMP/empty.yaml"
like "$("$BERTH" check-config -c "$BR_TMP/empty.yaml" 2>&1)" ': ok$' "an empty metrics.listen is valid (off)"

# TLS: connections are counted with tls="true", by the protocol ALPN chose
# (h2 or http/1.1); a failed handshake closes as error.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$BR_TMP/tls.key" -out "$BR_TMP/tls.crt" 2>/dev/null
mv "$BR_TMP/server.log" "$BR_TMP/server-2.log"
BR_PORT=$(free_port)
BR_URL="https://127.0.0.1:$BR_PORT"
cat >"$BR_TMP/tls.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
storage: {root: $BR_TMP/store, fsync: false}
metrics: {listen: "127.0.0.1:$M_PORT"}
tls: {certificate: $BR_TMP/tls.crt, key: $BR_TMP/tls.key}
EOF
ok "berth starts with TLS and metrics" br_serve "$BR_TMP/tls.yaml" --cacert "$BR_TMP/tls.crt"
rm -f "$BR_TMP/held"
python3 - "$BR_PORT" "$BR_TMP/held" "$BR_TMP/tls.crt" >"$BR_TMP/hold.out" 2>&1 <<'PY' &
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[3]
def conn(alpn):
    c = ssl.create_default_context(cafile=ca)
    c.set_alpn_protocols([alpn])
    return c.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
h1 = conn("http/1.1")
h1.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
h1.recv(4096)
h2 = conn("h2")
assert h2.selected_alpn_protocol() == "h2"
block = b"\x82\x87\x44\x04/v2/\x41\x01x"  # GET, https, /v2/, authority x
h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
           len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block)
h2.recv(4096)
bad = socket.create_connection(("127.0.0.1", port))
bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to a TLS port
while bad.recv(4096) != b"":
    pass
open(sys.argv[2], "w").close()
time.sleep(30)
PY
hold=$!
ok "TLS connections in place" wait_file "$BR_TMP/held"
sleep 0.3
scrape >/dev/null
is "$(val 'berth_connections_open{protocol="h1",tls="true"}')" 1 "one HTTP/1.1 connection over TLS open"
is "$(val 'berth_connections_open{protocol="h2",tls="true"}')" 1 "one h2 connection over TLS open"
is "$(val 'berth_connections_open{protocol="h1",tls="false"}')" 0 "no plain connection open"
ok "the failed handshake closed as error" test "$(val 'berth_connections_closed_total{reason="error"}')" -ge 1
kill "$hold"
wait "$hold" 2>/dev/null
ok "berth stops cleanly" br_stop
no_sanitizer_report "$BR_TMP/server.log"
BR_URL="http://127.0.0.1:$BR_PORT"

# Without metrics.listen nothing listens besides the main address.
mv "$BR_TMP/server.log" "$BR_TMP/server-1.log"
BR_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
cat >"$BR_TMP/off.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
storage: {root: $BR_TMP/store, fsync: false}
EOF
ok "berth starts without metrics.listen" br_serve "$BR_TMP/off.yaml"
socks=$(ss -ltnp 2>/dev/null | grep -c "pid=$BR_PID,")
is "$socks" 1 "one listening socket only"
ok "and no metrics line in the log" sh -c "! grep -q 'metrics on' '$BR_TMP/server.log'"
br_stop

# health.on_main with Basic auth: the probes answer without credentials,
# everything else still wants them; auth outcomes are counted.
PW="Pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PW" | "$BERTH" hash-password alice >"$BR_TMP/htpasswd" 2>/dev/null
cat >"$BR_TMP/auth.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
storage: {root: $BR_TMP/store, fsync: false}
metrics: {listen: "127.0.0.1:$M_PORT"}
health: {on_main: true}
gc: {interval: 1s}
auth:
  htpasswd: $BR_TMP/htpasswd
  max_failures: 3
  rules:
    - {repository: "**", users: [alice], actions: [pull, push]}
EOF
: >"$BR_TMP/server.log"
ok "berth starts with auth and health.on_main" br_serve "$BR_TMP/auth.yaml"
is "$(curl -s -w ' %{http_code}' "$BR_URL/healthz" | tr -d '\n')" "ok 200" "/healthz on the main listener without credentials"
is "$(curl -s -w ' %{http_code}' "$BR_URL/readyz" | tr -d '\n')" "ready 200" "/readyz on the main listener without credentials"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/")" 401 "/v2/ still needs credentials"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/m/app/tags/list")" 401 "and so does a repository"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/metrics")" 404 "/metrics is not on the main listener"
is "$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$PW" "$BR_URL/v2/m/app/tags/list")" 200 "alice lists tags"
for i in 1 2 3 4 5; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -u "mallory:wrong$i" "$BR_URL/v2/")
    [ "$code" = 429 ] && break
done
is "$code" 429 "wrong passwords end in 429"
scrape >/dev/null
promtool check metrics <"$BR_TMP/m.txt" >/dev/null 2>&1
ok "promtool still accepts the page" test $? = 0
ok "auth ok counted" test "$(val 'berth_auth_requests_total{outcome="ok"}')" -ge 1
ok "auth challenged counted (no credentials)" test "$(val 'berth_auth_requests_total{outcome="challenged"}')" -ge 3
ok "auth failed counted" test "$(val 'berth_auth_requests_total{outcome="failed"}')" -ge 1
ok "auth throttled counted" test "$(val 'berth_auth_requests_total{outcome="throttled"}')" -ge 1
is "$(val 'berth_http_requests_total{route="health",method="GET",status="2xx"}')" 2 "the two probes are counted as route health"
sleep 1.5 # the collector runs once a second
scrape >/dev/null
ok "the server's gc runs are counted" test "$(val 'berth_gc_runs_total{result="ok"}')" -ge 1
ok "with the time of the last one" test "$(val berth_gc_last_success_timestamp_seconds)" -gt 1700000000
ok "no user name on the metrics page" sh -c "! grep -qE 'alice|mallory' '$BR_TMP/m.txt'"
ok "berth stops cleanly" br_stop
no_sanitizer_report "$BR_TMP/server.log"

done_testing
