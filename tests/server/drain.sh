#!/usr/bin/env bash
# SIGTERM drains: a request whose body is still arriving when the signal comes
# is served to the end (an upload PATCH, a chunked monolithic PUT-less POST),
# an idle keep-alive connection is closed at once, and berth exits 0 once the
# requests in flight are done. With the streaming (patched h2o) build a body
# is read with h2o's request-reading callback between pieces, which the
# once-a-second sweep once took for a connection waiting for its next request
# and closed on SIGTERM.
. "$top_srcdir/tests/lib.sh"

br_start || exit 1

# drain_case KIND: opens a connection, sends a request head and half its body,
# prints READY, waits for a line on stdin, sends the rest and prints the status
# line of the answer (or ERR: why).
cat >"$BR_TMP/half.py" <<'PY'
import socket, sys, json, hashlib
port, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = bytes(range(256)) * 4096            # 1 MiB
half = len(body) // 2
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(20)
if kind == "patch":
    head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: %d\r\nContent-Range: 0-%d\r\n\r\n" % (path, len(body), len(body) - 1)).encode()
    first, rest = head + body[:half], body[half:]
else:  # chunked monolithic POST with ?digest=
    d = "sha256:" + hashlib.sha256(body).hexdigest()
    head = ("POST %s?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % (path, d)).encode()
    c1 = b"%x\r\n" % half + body[:half] + b"\r\n"
    c2 = b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n"
    first, rest = head + c1, c2
s.sendall(first)
print("READY", flush=True)
sys.stdin.readline()
try:
    s.sendall(rest)
    resp = b""
    while b"\r\n" not in resp:
        got = s.recv(65536)
        if not got:
            break
        resp += got
    print(resp.split(b"\r\n", 1)[0].decode() or "ERR: closed without an answer", flush=True)
except Exception as e:
    print("ERR: %s" % e, flush=True)
PY

for kind in patch post; do
    # A fresh server for each case: SIGTERM ends it.
    [ "$kind" = post ] && { br_start || exit 1; }
    loc=/v2/drain/$kind/blobs/uploads/
    if [ "$kind" = patch ]; then
        http POST "$loc" >/dev/null
        loc=$(header Location)
        loc=${loc#"$BR_URL"}
    fi
    # an idle keep-alive connection, to see it closed at once on SIGTERM
    exec 7<>"/dev/tcp/127.0.0.1/$BR_PORT"
    printf 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n' >&7
    idle_ok=0
    IFS= read -r -t 5 line <&7 && [[ $line == "HTTP/1.1 200"* ]] && idle_ok=1
    ok "[$kind] an idle keep-alive connection served a request" test $idle_ok = 1

    coproc HALF { python3 "$BR_TMP/half.py" "$BR_PORT" "$kind" "$loc"; }
    IFS= read -r -t 10 ready <&"${HALF[0]}"
    is "$ready" READY "[$kind] half of the body is sent"
    sleep 0.5
    t0=$(date +%s%N)
    kill -TERM "$BR_PID"
    # The sweep runs at once on SIGTERM and then once a second: give it two
    # passes before the rest of the body comes.
    sleep 2.2
    # the idle connection was closed (EOF, nothing more to read)
    closed=0 st=0
    while :; do
        IFS= read -r -t 3 line <&7 || { st=$?; break; }
    done
    [ "$st" -eq 1 ] && closed=1 # 1 = end of file; > 128 = timed out, still open
    ok "[$kind] the idle keep-alive connection was closed on SIGTERM" test $closed = 1
    exec 7<&- 7>&-
    echo go >&"${HALF[1]}"
    IFS= read -r -t 20 status <&"${HALF[0]}"
    want='HTTP/1.1 202'
    [ "$kind" = post ] && want='HTTP/1.1 201'
    like "$status" "^$want" "[$kind] the request in flight at SIGTERM was served to the end ($status)"
    wait "$HALF_PID" 2>/dev/null
    rc=0
    wait "$BR_PID" || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    BR_PID=""
    is "$rc" 0 "[$kind] berth exited 0 after the drain"
    ok "[$kind] and it exited well before drain_timeout (${ms} ms)" test "$ms" -lt 25000
    no_sanitizer_report "$BR_TMP/server.log"
done
{
    # the POST's blob is durable: start again on the same store and fetch it
    br_start || exit 1
    digest=sha256:$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256))*4096).hexdigest())')
    is "$(http HEAD "/v2/drain/post/blobs/$digest" -I)" 200 "the blob pushed during the drain is there after a restart"
}
done_testing
