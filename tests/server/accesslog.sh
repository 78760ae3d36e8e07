#!/bin/bash
# The access log, in both formats: every line has an RFC 3339 UTC timestamp
# with milliseconds, the peer, the authenticated subject (or -), the request,
# status, bytes, the real duration (a slow upload takes as long as it took,
# small requests are not 0.000ms) and the request id: the client's valid
# X-Request-Id, else a generated one, echoed in the response either way. No
# Authorization value, password or token ever appears in the log.
. "$top_srcdir/tests/lib.sh"

command -v jq >/dev/null || skip_all "jq is not installed"
PW="Pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PW" | "$BERTH" hash-password alice >"$BR_TMP/htpasswd" 2>/dev/null
BASIC=$(printf 'alice:%s' "$PW" | base64 -w0)
WRONG=$(printf 'alice:not-%s' "$PW" | base64 -w0)
OCT='Content-Type: application/octet-stream'
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
GEN='[0-9a-f]{32}'

# config FORMAT — a config with Basic auth (anonymous may pull and push
# "open/**") and the given log format.
config() {
    cat >"$BR_TMP/$1.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
storage: {root: $BR_TMP/store-$1, fsync: false}
log: {format: $1, access_log: true}
auth:
  htpasswd: $BR_TMP/htpasswd
  anonymous:
    - {repository: "open/**", actions: [pull, push]}
  rules:
    - {repository: "**", users: [alice], actions: [pull, push, delete]}
EOF
    echo "$BR_TMP/$1.yaml"
}

# req ARGS... — a curl request; prints the X-Request-Id it got back.
req() {
    curl -s -o /dev/null -D "$BR_TMP/h" "$@"
    grep -i '^x-request-id:' "$BR_TMP/h" | head -n1 | cut -d: -f2- | tr -d ' \r'
}

# logline ID — the access line of the request with that id (waits a little:
# the line is written when h2o disposes the request).
logline() {
    local i
    for i in $(seq 1 100); do
        grep -E "access|\"type\":\"access\"" "$BR_TMP/server.log" | grep -F -- "$1" | tail -n1 | grep . && return 0
        sleep 0.05
    done
    return 1
}

# slow_upload ID — a monolithic blob upload whose second half of the body is
# sent 0.6 s after the first; prints the status and the echoed X-Request-Id.
D=sha256:$(printf 'slow body' | sha256sum | cut -d' ' -f1)
slow_upload() {
    python3 - "$BR_PORT" "$D" "$1" <<'PY'
import socket, sys, time
port, digest, rid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("POST /v2/open/r/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: 9\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\nslow " % (digest, rid)).encode())
time.sleep(0.6)
s.sendall(b"body")
resp = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    resp += b
head = resp.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
ids = [h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("x-request-id:")]
print(head[0].split()[1], ids[0] if ids else "")
PY
}

for fmt in text json; do
    BR_PORT=$(free_port)
    BR_URL="http://127.0.0.1:$BR_PORT"
    : >"$BR_TMP/server.log"
    br_serve "$(config $fmt)" || { ok "$fmt: berth starts" false; continue; }

    # the client's id, echoed and logged, with the authenticated user
    id=$(req -H "Authorization: Basic $BASIC" -H 'X-Request-Id: client-id.1:2/3+4=' "$BR_URL/v2/")
    is "$id" "client-id.1:2/3+4=" "$fmt: a valid X-Request-Id is echoed"
    l1=$(logline "client-id.1:2/3+4=")
    # generated ids: echoed, logged, different for each request
    id2=$(req "$BR_URL/v2/open/r/tags/list")
    like "$id2" "^$GEN\$" "$fmt: without X-Request-Id one is generated"
    id3=$(req "$BR_URL/v2/open/r/tags/list")
    ok "$fmt: ... a new one for each request" test -n "$id3" -a "$id3" != "$id2"
    l2=$(logline "$id2")
    # invalid ids are replaced
    long=$(printf 'a%.0s' $(seq 1 129))
    for bad in 'has space' 'quote"d' "$long" 'semi;colon'; do
        got=$(req -H "X-Request-Id: $bad" "$BR_URL/v2/")
        like "$got" "^$GEN\$" "$fmt: X-Request-Id '${bad:0:20}' is replaced by a generated id"
    done
    ok "$fmt: a replaced id never reaches the log" sh -c '! grep -qF -e "has space" -e "semi;colon" -e "$1" "$2"' sh "$long" \
        "$BR_TMP/server.log"
    # a wrong password: the line names nobody
    id4=$(req -H "Authorization: Basic $WRONG" "$BR_URL/v2/")
    l4=$(logline "$id4")
    # a slow upload: its body arrives in two halves 0.6 s apart, so the
    # request takes at least that long
    id5=$(slow_upload "slow-$fmt")
    is "$id5" "201 slow-$fmt" "$fmt: the slow upload is stored and its id echoed"
    l5=$(logline "slow-$fmt")

    if [ $fmt = text ]; then
        like "$l1" "^$TS access 127\\.0\\.0\\.1 alice \"GET /v2/ HTTP/1\\.1\" 200 0 2 [0-9]+\\.[0-9]{3}ms client-id\\.1:2/3\\+4=\$" \
            "text: timestamp, peer, user, request, status, bytes, duration, id"
        like "$l2" "^$TS access 127\\.0\\.0\\.1 - \"GET /v2/open/r/tags/list HTTP/1\\.1\" 404 .* $id2\$" \
            "text: an anonymous request logs '-' as the user"
        like "$l4" "^$TS access 127\\.0\\.0\\.1 - \"GET /v2/ HTTP/1\\.1\" 401 " "text: a failed login logs '-' as the user"
        ms2=$(printf '%s' "$l2" | grep -oE '[0-9]+\.[0-9]{3}ms' | tr -d ms)
        ms5=$(printf '%s' "$l5" | grep -oE '[0-9]+\.[0-9]{3}ms' | tr -d ms)
        like "$l5" "\"POST /v2/open/r/blobs/uploads/\\?digest=$D HTTP/1\\.1\" 201 9 " "text: the upload's line"
    else
        ok "json: every access line is a JSON object" sh -c 'grep "\"type\":\"access\"" "$1" | jq -e . >/dev/null' sh \
            "$BR_TMP/server.log"
        is "$(jq -r '[.type, .peer, .user, .method, .path, .proto, .status, .bytes_in, .bytes_out, .id] | join(" ")' <<<"$l1")" \
            "access 127.0.0.1 alice GET /v2/ HTTP/1.1 200 0 2 client-id.1:2/3+4=" "json: peer, user, request, status, bytes, id"
        like "$(jq -r .time <<<"$l1")" "^$TS\$" "json: time is RFC 3339 UTC with milliseconds"
        is "$(jq -r '.ms | type' <<<"$l1")" number "json: ms is a number"
        is "$(jq -r '.user + " " + (.status|tostring) + " " + .id' <<<"$l2")" "- 404 $id2" "json: anonymous: user '-'"
        is "$(jq -r '.user + " " + (.status|tostring)' <<<"$l4")" "- 401" "json: a failed login: user '-'"
        ms2=$(jq -r .ms <<<"$l2")
        ms5=$(jq -r .ms <<<"$l5")
        is "$(jq -r '[.method, .status, .bytes_in] | join(" ")' <<<"$l5")" "POST 201 9" "json: the upload's line"
    fi
    diag "$fmt: an anonymous tags list took ${ms2}ms, the slow upload ${ms5}ms"
    ok "$fmt: a small request's duration is measured (not 0.000)" awk -v m="$ms2" 'BEGIN { exit !(m > 0) }'
    ok "$fmt: the slow upload's duration is the time it took (>= 500 ms)" awk -v m="$ms5" 'BEGIN { exit !(m >= 500) }'
    ok "$fmt: no password, Authorization value or header name in the log" \
        sh -c '! grep -qiF -e "$1" -e "$2" -e "$3" -e "authorization" -e "Basic " "$4"' sh "$PW" "$BASIC" "$WRONG" \
        "$BR_TMP/server.log"
    ok "$fmt: the server exits cleanly" br_stop
done

done_testing
