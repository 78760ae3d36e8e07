#!/bin/bash
# Bounded request bodies on every route (patched h2o build; router.c "request
# bodies"): a request that is refused on its head, or whose body is declared or
# grows past its route's limit, is answered at once, without the server reading
# the body. Each refusal below declares a 2 GiB body (or sends an endless
# chunked one) and then keeps sending: the answer must come quickly, with the
# right status and OCI error body, while berth's peak RSS (VmHWM) stays small
# and no body spill file is ever opened under <root>/tmp.
#   A. auth off: 405 (POST /v2/), 404 (outside /v2/, and an unknown /v2/ route),
#      413 for a body on a route that takes none (GET tags), manifest PUT with
#      Content-Length over limits.max_manifest_size (413 SIZE_INVALID, also
#      with Expect: 100-continue, which then never gets its 100), chunked
#      manifest PUT growing past the limit (413); over HTTP/2: manifest PUT
#      with content-length over the limit, without one growing past it, and
#      POST /v2/ (405), each followed by RST_STREAM NO_ERROR; an Upgrade header
#      (websocket, h2c) changes none of this (server/h2o/0005), and a body sent
#      with Upgrade: h2c is answered over HTTP/1.1. The metrics listener reads
#      no body either; the metrics count the refusals. A short declared body
#      (up to 64 KiB) is read before the answer, so a refusal keeps the HTTP/1
#      connection and curl over HTTP/2 gets it without an error. An empty body
#      (h2 DATA, HTTP/1 chunked) on a GET is no body: served. Normal manifest
#      PUTs still work: Content-Length and chunked, HTTP/1.1 and HTTP/2, and
#      one just under the limit; one byte over it is 413.
#   B. auth on (Basic + token issuer): a manifest PUT without credentials is
#      401 at once (with a 2 GiB body; a short one with curl over HTTP/2: 401); a token POST form over 64 KiB is 413 at once, a small one
#      is answered as before.
# The system-h2o build buffers bodies as h2o does: skipped there.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

case $("$BERTH" version 2>/dev/null) in
*" patched,"*) ;;
*) skip_all "this build buffers request bodies in h2o (--with-system-h2o)" ;;
esac

MAX_MANIFEST=$((4 << 20)) # berth's default limits.max_manifest_size

# ---- A. auth off --------------------------------------------------------------
MPORT=$(free_port)
BERTH_METRICS_LISTEN=127.0.0.1:$MPORT ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }

py_checks - "$BR_PORT" "$BR_PID" "$BR_ROOT" "$MPORT" <<'PY'
import json, os, sys, threading, time
from robust_lib import *

port, pid, root, mport = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
BOUND = 5.0 * SLOWDOWN          # seconds an early answer may take
HWM_BOUND_KIB = 64 << 10        # berth's peak RSS over all of this
GIB2 = 2 << 30
spill_dir = os.path.join(root, "tmp") + "/"

# Samples berth's open files all along: a buffered body spills into a file
# under <root>/tmp (h2o unlinks it at once, so only /proc shows it).
spills = []
stop_watch = threading.Event()
def watch():
    while not stop_watch.is_set():
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if t.startswith(spill_dir):
                    spills.append(t)
        except OSError:
            pass
        stop_watch.wait(0.05)
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()

def sender(s, total, chunk=1 << 20, chunked=False):
    """Sends up to total bytes of body (as chunks when chunked) until the
    server stops taking them; returns the thread and a dict with 'sent'."""
    st = {"sent": 0}
    def run():
        piece = b"\0" * chunk
        if chunked:
            piece = b"%x\r\n" % chunk + piece + b"\r\n"
        try:
            while st["sent"] < total:
                s.sendall(piece)
                st["sent"] += chunk
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, st

def oci_code(body):
    try:
        return json.loads(body)["errors"][0]["code"]
    except Exception:
        return None

def early(name, method, path, want, code, headers=(), chunked=False, body_mib=64, to=None):
    """A request declaring a 2 GiB body (or a chunked one), followed by up to
    body_mib MiB of it: answered with want + OCI code (None: any body) within
    BOUND seconds, and the connection closed."""
    s = connect(to or port, timeout=10)
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n" % (method, path)
    head += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % GIB2
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    s.sendall((head + "\r\n").encode())
    t0 = time.monotonic()
    expect_continue = any(k.lower() == "expect" for k, _ in headers)
    if expect_continue:
        snd, st = None, {"sent": 0}
    else:
        snd, st = sender(s, body_mib << 20, chunked=chunked)
    data, closed, _ = read_until_close(s, BOUND + 5, until=lambda d: parse_response(d)[0] is not None and
                                       len(parse_response(d)[2]) >= int(parse_response(d)[1].get("content-length", "0")))
    took = time.monotonic() - t0
    status, hdrs, body = parse_response(data)
    if status is not None:
        more, closed, _ = read_until_close(s, BOUND)
    s.close()
    if snd is not None:
        snd.join(10)
    diag("%s: %s in %.2f s, %d MiB of body sent, %s" % (name, status, took, st["sent"] >> 20, body[:160]))
    check("%s: %d %s" % (name, want, code or ""), status == want and (code is None or oci_code(body) == code),
          (status, body[:200]))
    check("%s: answered within %.0f s" % (name, BOUND), status is not None and took < BOUND, took)
    check("%s: connection closed after the answer" % name, closed)
    if expect_continue:
        check("%s: no 100 Continue before the refusal" % name, 100 not in statuses(data), data[:200])
    return body

early("POST /v2/ (GET only)", "POST", "/v2/", 405, "UNSUPPORTED")
early("PUT outside /v2/", "PUT", "/upload/here", 404, "UNSUPPORTED")
early("PUT on no /v2/ route", "PUT", "/v2/r/x/y/nothing", 404, "UNSUPPORTED")
early("GET tags with a body", "GET", "/v2/r/tags/list", 413, "SIZE_INVALID")
b = early("manifest PUT, Content-Length 2 GiB", "PUT", "/v2/r/manifests/latest", 413, "SIZE_INVALID")
check("manifest PUT, Content-Length 2 GiB: the manifest's own detail", b"manifest exceeds the size limit" in b, b)
early("manifest PUT, 2 GiB, Expect: 100-continue", "PUT", "/v2/r/manifests/latest", 413, "SIZE_INVALID",
      headers=(("Expect", "100-continue"),))
early("chunked manifest PUT past the limit", "PUT", "/v2/r/manifests/latest", 413, "SIZE_INVALID", chunked=True)
# an Upgrade header does not take a body back to h2o's buffering (server/h2o/0005)
early("POST /v2/ with Upgrade: websocket", "POST", "/v2/", 405, "UNSUPPORTED",
      headers=(("Connection", "Upgrade"), ("Upgrade", "websocket")))
early("manifest PUT, 2 GiB, with Upgrade: h2c", "PUT", "/v2/r/manifests/latest", 413, "SIZE_INVALID",
      headers=(("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")))

# the metrics listener (its own h2o host) reads no body either
early("metrics listener: POST /metrics", "POST", "/metrics", 405, None, to=mport)
early("metrics listener: GET /metrics with a body", "GET", "/metrics", 200, None, to=mport)

# HTTP/2 (h2c, prior knowledge): the same refusals, on one connection.
c = H2Conn(port)
def h2_early(name, sid, method, path, want, length=None, body_mib=32):
    extra = [("content-type", "application/vnd.oci.image.manifest.v1+json")]
    if length is not None:
        extra.append(("content-length", str(length)))
    c.send(frame(HEADERS, END_HEADERS, sid, hpack_block(method, path, extra=extra)))
    t0 = time.monotonic()
    done = threading.Event()
    def run():
        body = b"\0" * (1 << 20)
        for _ in range(body_mib):
            if done.is_set() or not c.send_data(sid, body, end=False, timeout=BOUND + 5):
                break
    snd = threading.Thread(target=run, daemon=True)
    snd.start()
    with c.cv:
        c.cv.wait_for(lambda: sid in c.status and sid in c.rsts or c.closed, BOUND + 5)
    took = time.monotonic() - t0
    done.set()
    snd.join(BOUND + 10)
    st, rst_code = c.status.get(sid), c.first_rsts.get(sid)
    diag("h2 %s: %s, RST_STREAM %s, in %.2f s" % (name, st, rst_code, took))
    check("h2 %s: %d" % (name, want), st == want, st)
    check("h2 %s: answered and reset (NO_ERROR) within %.0f s" % (name, BOUND), rst_code == 0 and took < BOUND, (rst_code, took))

h2_early("manifest PUT, content-length 2 GiB", 1, "PUT", "/v2/r/manifests/latest", 413, length=GIB2)
h2_early("manifest PUT, no content-length, past the limit", 3, "PUT", "/v2/r/manifests/latest", 413)
h2_early("POST /v2/ (GET only)", 5, "POST", "/v2/", 405, length=GIB2)
check("h2: connection still open after the refusals", not c.closed)
# a short body sent with its HEADERS (one write) and refused on the head: the
# answer, and no RST_STREAM, as the client sent all of it (server/h2o/0006)
c.send(frame(HEADERS, END_HEADERS, 9, hpack_block("POST", "/v2/", extra=[("content-length", "10")])) +
       frame(DATA, END_STREAM, 9, b"helloworld"))
with c.cv:
    c.cv.wait_for(lambda: 9 in c.status or c.closed, BOUND)
time.sleep(0.5)  # a reset would follow the answer at once
check("h2 POST /v2/ with a whole short body: 405, no RST_STREAM", c.status.get(9) == 405 and 9 not in c.rsts,
      (c.status.get(9), c.rsts.get(9)))
# a GET whose HEADERS leave the stream open and whose DATA is empty: no body, served
c.send(frame(HEADERS, END_HEADERS, 11, hpack_block("GET", "/v2/")) + frame(DATA, END_STREAM, 11, b""))
with c.cv:
    c.cv.wait_for(lambda: 11 in c.status or c.closed, BOUND)
check("h2 GET /v2/ with an empty DATA frame: 200", c.status.get(11) == 200, c.status.get(11))
c.close()

# a short declared body (up to 64 KiB) is read before the answer: the
# connection stays open for the next request
data, _, _ = exchange(port, b"POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhelloworld"
                      b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=BOUND)
check("POST /v2/ with a 10-byte body, then a pipelined GET: 405, then 200",
      data.count(b"HTTP/1.1 405 ") == 1 and data.count(b"HTTP/1.1 200 OK\r\n") == 1 and b"keep-alive" in data, data[:400])
# HTTP/1 GET with an empty chunked body: served, and the connection kept
data, _, _ = exchange(port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                      b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=BOUND)
check("GET /v2/ with an empty chunked body, then a pipelined GET: 200, 200", data.count(b"HTTP/1.1 200 OK\r\n") == 2, data[:400])

time.sleep(0.3)
stop_watch.set()
watcher.join(5)
check("no body spill file opened under <root>/tmp", not spills, sorted(set(spills))[:5])
hwm = 0
with open("/proc/%d/status" % pid) as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
diag("berth VmHWM: %d KiB" % hwm)
check_memory("berth's peak RSS stays under %d MiB" % (HWM_BOUND_KIB >> 10), 0 < hwm < HWM_BOUND_KIB, "%d KiB" % hwm)
PY

ok "server alive after the refusals" server_alive
ok "GET /v2/ still answers" v2_ok

# Normal manifest PUTs: Content-Length and chunked, HTTP/1.1 and HTTP/2.
printf '{}' >"$BR_TMP/config.json"
head -c 4096 /dev/urandom >"$BR_TMP/layer"
cfg=$(push_blob r "$BR_TMP/config.json")
layer=$(push_blob r "$BR_TMP/layer")
ok "blobs pushed" test -n "$cfg" -a -n "$layer"
MT=application/vnd.oci.image.manifest.v1+json
# manifest FILE [PAD] — an image manifest of the two blobs, its annotation
# padded to PAD bytes of manifest in all (when given).
manifest() {
    python3 - "$cfg" "$layer" "${2:-0}" >"$1" <<'PY'
import json, sys
cfg, layer, pad = sys.argv[1], sys.argv[2], int(sys.argv[3])
def doc(fill):
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 4096}],
                       "annotations": {"pad": "x" * fill}}, separators=(",", ":"))
base = len(doc(0))
sys.stdout.write(doc(max(0, pad - base)) if pad else doc(0))
PY
}
manifest "$BR_TMP/m.json"
put() { # put REF FILE [curl args...] — prints the status
    local ref=$1 f=$2
    shift 2
    curl -s -o "$BR_TMP/b" -w '%{http_code}' -X PUT -H "Content-Type: $MT" "$@" "$BR_URL/v2/r/manifests/$ref" --data-binary @"$f"
}
is "$(put cl1 "$BR_TMP/m.json")" 201 "manifest PUT, HTTP/1.1, Content-Length: 201"
is "$(put ch1 "$BR_TMP/m.json" -H 'Transfer-Encoding: chunked')" 201 "manifest PUT, HTTP/1.1, chunked: 201"
is "$(put cl2 "$BR_TMP/m.json" --http2-prior-knowledge)" 201 "manifest PUT, HTTP/2, content-length: 201"
is "$(curl -s -o "$BR_TMP/b" -w '%{http_code} %{http_version}' --http2-prior-knowledge -X PUT -H "Content-Type: $MT" \
    -T - "$BR_URL/v2/r/manifests/ch2" <"$BR_TMP/m.json")" "201 2" "manifest PUT, HTTP/2, no content-length: 201"
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $MT" "$BR_URL/v2/r/manifests/ch2")" 200 "the HTTP/2 chunked manifest is served"
manifest "$BR_TMP/under.json" $((MAX_MANIFEST - 1))
is "$(stat -c %s "$BR_TMP/under.json")" $((MAX_MANIFEST - 1)) "a manifest one byte under the limit"
is "$(put under "$BR_TMP/under.json")" 201 "manifest one byte under the limit (Content-Length): 201"
# curl --http2 asks for an h2c upgrade; a request with a body is answered over HTTP/1.1
is "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2 -X PUT -H "Content-Type: $MT" \
    --data-binary @"$BR_TMP/under.json" "$BR_URL/v2/r/manifests/upg")" "201 1.1" \
    "manifest under the limit with Upgrade: h2c: 201, over HTTP/1.1"
is "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2 "$BR_URL/v2/")" "200 2" \
    "a GET with Upgrade: h2c is still upgraded"
is "$(put under-ch "$BR_TMP/under.json" -H 'Transfer-Encoding: chunked')" 201 "... and chunked: 201"
manifest "$BR_TMP/limit.json" $MAX_MANIFEST
is "$(put limit "$BR_TMP/limit.json" --http2-prior-knowledge)" 201 "manifest of exactly the limit over HTTP/2: 201"
manifest "$BR_TMP/over.json" $((MAX_MANIFEST + 1))
is "$(put over "$BR_TMP/over.json")" 413 "manifest one byte over the limit: 413"
like "$(body)" '"code":"SIZE_INVALID".*manifest exceeds the size limit' "... SIZE_INVALID, the manifest's detail"
is "$(put over-ch "$BR_TMP/over.json" -H 'Transfer-Encoding: chunked' --http2-prior-knowledge)" 413 \
    "manifest one byte over the limit, HTTP/2 without content-length: 413"
is "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$BR_URL/v2/r/manifests/cl1")" 202 "a DELETE without a body still works"
# curl sends a short body after its HEADERS; answered before the body, the
# stream would be reset while curl still sends, and curl reports an error
got=$(for i in 1 2 3 4 5 6 7 8; do
    curl -sS -o /dev/null -w '%{http_code} ' --http2-prior-knowledge -X POST --data-binary helloworld "$BR_URL/v2/" 2>&1
    curl -sS -o /dev/null -w '%{http_code} ' --http2-prior-knowledge -X GET --data-binary helloworld "$BR_URL/v2/r/tags/list" 2>&1
done)
is "$got" "$(printf '405 413 %.0s' 1 2 3 4 5 6 7 8)" "curl over HTTP/2 with a 10-byte body: 405 (POST /v2/), 413 (GET tags), 8 times each"
ok "access log: the early 405, with 0 body bytes read" grep -q '"POST /v2/ HTTP/1.1" 405 0 ' "$BR_TMP/server.log"
ok "access log: the early 413 of the 2 GiB manifest, 0 bytes read" grep -q '"PUT /v2/r/manifests/latest HTTP/1.1" 413 0 ' \
    "$BR_TMP/server.log"
curl -s -o "$BR_TMP/metrics" "http://127.0.0.1:$MPORT/metrics"
m4xx=$(awk '/^berth_http_requests_total\{route="manifest",method="PUT",status="4xx"\}/ {print $2}' "$BR_TMP/metrics")
ok "metrics: the early manifest refusals are counted (6 and the 2 over the limit: $m4xx)" test "${m4xx:-0}" -ge 8
mrecv=$(awk '/^berth_http_received_bytes_total\{route="manifest"\}/ {print $2}' "$BR_TMP/metrics")
diag "manifest body bytes received in all: $mrecv"
ok "metrics: manifest body bytes received stay under 64 MiB in all" test "${mrecv:-0}" -gt 0 -a "${mrecv:-0}" -lt $((64 << 20))
ok "server log clean" server_log_clean
ok "berth stops cleanly" br_stop

# ---- B. auth on ---------------------------------------------------------------
PW="Pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$BR_TMP/auth"
printf '%s\n' "$PW" | "$BERTH" hash-password alice >"$BR_TMP/auth/htpasswd" 2>/dev/null
"$BERTH" gen-key "$BR_TMP/auth/token.key" >/dev/null 2>&1
# br_start's hook: writes the config for $BR_URL and prints its path
auth_config() {
    {
        printf 'auth:\n  realm: berth-bodies\n  htpasswd: %s\n' "$BR_TMP/auth/htpasswd"
        printf '  rules:\n    - {repository: "**", users: [alice], actions: [pull, push, delete]}\n'
        printf '  token:\n    realm: %s/token\n    path: /token\n    service: bodies.test\n    issuer: berth-bodies\n    key: %s\n' \
            "$BR_URL" "$BR_TMP/auth/token.key"
    } >"$BR_TMP/auth/berth.yaml"
    printf '%s\n' "$BR_TMP/auth/berth.yaml"
}
BR_START_CONFIG=auth_config
ok "berth starts with auth" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }

py_checks - "$BR_PORT" "$BR_PID" <<'PY'
import json, sys, threading, time
from robust_lib import *

port, pid = int(sys.argv[1]), int(sys.argv[2])
BOUND = 5.0 * SLOWDOWN

def refused(name, method, path, length, want, code, ctype):
    s = connect(port, timeout=10)
    s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" %
               (method, path, ctype, length)).encode())
    t0 = time.monotonic()
    def run():
        try:
            for _ in range(64):
                s.sendall(b"a" * (1 << 20))
        except OSError:
            pass
    snd = threading.Thread(target=run, daemon=True)
    snd.start()
    data, closed, _ = read_until_close(s, BOUND + 5)
    took = time.monotonic() - t0
    s.close()
    snd.join(10)
    status, hdrs, body = parse_response(data)
    try:
        got = json.loads(body)["errors"][0]["code"]
    except Exception:
        got = None
    diag("%s: %s in %.2f s: %s" % (name, status, took, body[:160]))
    check("%s: %d %s" % (name, want, code), status == want and got == code, (status, body[:200]))
    check("%s: answered and closed within %.0f s" % (name, BOUND), closed and took < BOUND, took)
    return hdrs

h = refused("manifest PUT without credentials, 2 GiB", "PUT", "/v2/r/manifests/latest", 2 << 30, 401, "UNAUTHORIZED",
            "application/vnd.oci.image.manifest.v1+json")
check("... with its challenge", "www-authenticate" in h, h)
refused("token POST, 2 GiB form", "POST", "/token", 2 << 30, 413, "SIZE_INVALID", "application/x-www-form-urlencoded")
refused("token POST, form of 64 KiB + 1", "POST", "/token", (64 << 10) + 1, 413, "SIZE_INVALID",
        "application/x-www-form-urlencoded")
PY

form="grant_type=password&service=bodies.test&client_id=t&username=alice&password=$PW&scope=repository:r:pull"
is "$(curl -s -o "$BR_TMP/b" -w '%{http_code}' -X POST --data "$form" "$BR_URL/token")" 200 "token POST with a small form: 200"
ok "... and a token in its body" grep -q '"access_token"' "$BR_TMP/b"
is "$(curl -s -o "$BR_TMP/b" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' --data "$form" "$BR_URL/token")" 200 \
    "token POST, chunked: 200"
got=$(for i in 1 2 3 4 5 6 7 8; do
    curl -sS -o /dev/null -w '%{http_code} ' --http2-prior-knowledge -X PUT -H "Content-Type: $MT" --data-binary @"$BR_TMP/m.json" \
        "$BR_URL/v2/r/manifests/noauth" 2>&1
done)
is "$got" "$(printf '401 %.0s' 1 2 3 4 5 6 7 8)" "manifest PUT without credentials, curl over HTTP/2: 401, 8 times"
is "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -u "alice:$PW" -H "Content-Type: $MT" --data-binary @"$BR_TMP/m.json" \
    "$BR_URL/v2/r/manifests/authed")" 201 "manifest PUT with credentials: 201"
ok "server log clean" server_log_clean
ok "berth stops cleanly" br_stop
done_testing
