#!/bin/bash
# Hostile input over raw sockets: request smuggling (CL+TE, two Content-Length),
# garbage and TLS on the plain port, control bytes, overlong request lines and
# headers, path traversal, bad Range / Content-Range, unsupported methods on
# every route, bodies over the size limit (HTTP/1 and HTTP/2), chunked uploads
# and Expect: 100-continue. berth must answer each safely, keep serving, write
# nothing outside its store and exit cleanly.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

export BERTH_LIMITS_MAX_BODY_SIZE=1MiB BERTH_LIMITS_HEADER_SIZE=16KiB BERTH_LOG_LEVEL=debug
ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
touch "$BR_TMP/marker"
sleep 0.01

py_checks - "$BR_PORT" "$BR_PID" "$BR_TMP" <<'PY'
import json, os, random, ssl, sys, time
from robust_lib import *

port, pid, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(20250101)


def v2_alive(name):
    check(name + ": server still serves /v2/", get_v2_latency(port, timeout=2) is not None)


# ---- request smuggling -------------------------------------------------------
def smuggle(name, headers, body):
    # The smuggled request names a path that must never show in the access log.
    tail = b"GET /v2/smuggled-%s/tags/list HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode()
    body = body.replace(b"@TAIL@", tail)
    hdr = "".join(h.replace("@LEN@", str(len(body))) + "\r\n" for h in headers)
    raw = b"POST /v2/ HTTP/1.1\r\nHost: x\r\n" + hdr.encode() + b"\r\n" + body
    data, closed, secs = exchange(port, raw, timeout=2.0)
    st = statuses(data)
    check("smuggling %s: one 400 and nothing else" % name, st == [400], st)
    check("smuggling %s: connection closed" % name, closed and secs < 1.5, "closed=%s after %.2fs" % (closed, secs))


smuggle("cl-te", ["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n@TAIL@")
smuggle("te-cl", ["Transfer-Encoding: chunked", "Content-Length: 5"], b"0\r\n\r\n@TAIL@")
smuggle("cl-cl-0-n", ["Content-Length: 0", "Content-Length: @LEN@"], b"@TAIL@")
smuggle("cl-cl-n-0", ["Content-Length: @LEN@", "Content-Length: 0"], b"@TAIL@")
smuggle("cl-cl-same", ["Content-Length: 0", "Content-Length: 0"], b"@TAIL@")
smuggle("te-te", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], b"0\r\n\r\n@TAIL@")
smuggle("mixed-case", ["CONTENT-LENGTH: 5", "transfer-ENCODING: chunked"], b"0\r\n\r\n@TAIL@")
# Obfuscated forms: whatever h2o makes of them, no second response may come.
for name, hdrs in (("te-space-colon", ["Content-Length: 5", "Transfer-Encoding : chunked"]),
                   ("te-tab", ["Content-Length: 5", "Transfer-Encoding:\tchunked"]),
                   ("te-xchunked", ["Content-Length: 5", "Transfer-Encoding: xchunked"])):
    tail = b"GET /v2/smuggled-%s/tags/list HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode()
    raw = b"POST /v2/ HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in hdrs).encode() + b"\r\n0\r\n\r\n" + tail
    data, closed, secs = exchange(port, raw, timeout=1.5)
    st = statuses(data)
    check("smuggling %s: at most one response, no 2xx" % name, len(st) <= 1 and not any(200 <= s < 300 for s in st), st)
v2_alive("after smuggling")

# ---- garbage on the plain port -------------------------------------------------
garbage = bytes(rnd.randrange(256) for _ in range(512))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, outg, server_hostname="localhost")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outg.read()
diag("TLS ClientHello: %d bytes" % len(hello))
for name, raw in (("random bytes", garbage), ("random bytes + CRLFCRLF", garbage + b"\r\n\r\n"),
                  ("TLS ClientHello", hello), ("SSLv2-style hello", b"\x80\x2e\x01\x03\x01" + bytes(44)),
                  ("h2 preface + junk frames", PREFACE + bytes(rnd.randrange(256) for _ in range(300))),
                  ("binary method", b"\x16\x03\x01 / HTTP/1.1\r\n\r\n")):
    data, closed, secs = exchange(port, raw, timeout=1.5)
    st = statuses(data)
    good = (st in ([], [400]) and closed and secs < 1.0)
    check("garbage %s: 400 or close within 1 s" % name, good, "statuses=%s closed=%s %.2fs" % (st, closed, secs))
v2_alive("after garbage")

# ---- control bytes -------------------------------------------------------------
for name, raw in (("NUL in path", b"GET /v2/\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("NUL in repo name", b"GET /v2/a\x00b/tags/list HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("SOH in path", b"GET /v2/\x01abc/tags/list HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("DEL in method", b"G\x7fT /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("ESC in path", b"GET /v2/\x1b[2J/tags/list HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("NUL in header value", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
                  ("control in header name", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX\x01A: b\r\n\r\n"),
                  ("CR alone in header", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"),
                  ("bad version", b"GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n"),
                  ("no version", b"GET /v2/\r\n\r\n"),
                  ("space in path", b"GET /v2/a b/tags/list HTTP/1.1\r\nHost: x\r\n\r\n")):
    data, closed, secs = exchange(port, raw, timeout=1.5)
    st = statuses(data)
    good = not any(s < 400 or s >= 500 for s in st) and (st or closed)
    check("control bytes: %s → 4xx or close" % name, good, "statuses=%s closed=%s" % (st, closed))
v2_alive("after control bytes")

# ---- overlong request line and headers ---------------------------------------------
for name, raw in (("64 KiB request line", b"GET /v2/" + b"a" * 65536 + b"/tags/list HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("600 KiB request line", b"GET /v2/" + b"a" * 600000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                  ("one 100 KiB header", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 102400 + b"\r\n\r\n"),
                  ("90 x 1 KiB headers", b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" +
                   b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 1024) for i in range(90)) + b"\r\n"),
                  ("500 tiny headers", b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" +
                   b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n"),
                  ("1 MiB of header bytes, never ending", b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"z" * (1 << 20))):
    data, closed, secs = exchange(port, raw, timeout=2.0)
    st = statuses(data)
    good = not any(s < 400 or s >= 500 for s in st) and (st or closed)
    check("overlong: %s → 4xx or close" % name, good, "statuses=%s closed=%s %.2fs" % (st, closed, secs))
    if st:
        diag("overlong %s: %s" % (name, st))
v2_alive("after overlong input")
check("server process alive after hostile headers", alive(pid))
PY

# ---- path traversal ------------------------------------------------------------
py_checks - "$BR_PORT" <<'PY'
import sys
from robust_lib import *
port = int(sys.argv[1])
d = "sha256:" + "a" * 64
cases = [
    ("GET", "/v2/../../etc/passwd/blobs/" + d),
    ("GET", "/v2/foo/../../../../etc/passwd/blobs/" + d),
    ("GET", "/v2/%2e%2e/%2e%2e/etc/passwd/blobs/" + d),
    ("GET", "/v2/foo%2f..%2f..%2fetc/blobs/" + d),
    ("GET", "/v2/foo/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd"),
    ("GET", "/v2/foo/blobs/..%2f..%2f..%2f..%2fetc%2fpasswd"),
    ("GET", "/v2/foo/blobs/../../../../etc/passwd"),
    ("GET", "/v2/foo%00bar/blobs/" + d),
    ("GET", "/v2/foo/blobs/sha256:%00" + "a" * 63),
    ("GET", "/v2/..\\..\\etc\\passwd/blobs/" + d),
    ("GET", "/v2/foo\\..\\..\\x/tags/list"),
    ("GET", "/v2/" + "a" * 1000 + "/tags/list"),
    ("GET", "/v2/" + "/".join(["a"] * 500) + "/tags/list"),
    ("GET", "/v2/" + "a" * 1000 + "/blobs/" + d),
    ("GET", "/v2//foo/tags/list"),
    ("GET", "/v2/foo//bar/tags/list"),
    ("GET", "//v2//foo/tags/list"),
    ("GET", "/v2/./foo/tags/list"),
    ("GET", "/v2/foo/./tags/list/.."),
    ("GET", "/v2/foo/manifests/.."),
    ("GET", "/v2/foo/manifests/../../../../etc/passwd"),
    ("GET", "/v2/foo/manifests/..%2f..%2fetc%2fpasswd"),
    ("GET", "/v2/foo/blobs/uploads/../../../../tmp/x"),
    ("GET", "/v2/foo/blobs/uploads/..%2f..%2fx"),
    ("GET", "/v2/foo/blobs/uploads/.."),
    ("GET", "/v2/foo/referrers/../../" + d),
    ("POST", "/v2/../../etc/blobs/uploads/"),
    ("POST", "/v2/a/../../b/blobs/uploads/"),
    ("POST", "/v2/%2e%2e/blobs/uploads/"),
    ("POST", "/v2/..%2fescape/blobs/uploads/"),
    ("POST", "/v2/foo\\..\\..\\bar/blobs/uploads/"),
    ("POST", "/v2/" + "b" * 1000 + "/blobs/uploads/"),
    ("POST", "/v2/.hidden/blobs/uploads/"),
    ("POST", "/v2/foo/blobs/uploads/?digest=sha256:..%2f..%2fetc%2fpasswd"),
    ("POST", "/v2/foo/blobs/uploads/?mount=sha256:../../x&from=../../etc"),
    ("PUT", "/v2/foo/blobs/uploads/..%2f..%2fx?digest=" + d),
    ("PUT", "/v2/foo/blobs/uploads/../../../x?digest=" + d),
    ("PATCH", "/v2/foo/blobs/uploads/%2e%2e"),
    ("DELETE", "/v2/foo/blobs/uploads/.."),
    ("PUT", "/v2/../../etc/manifests/latest"),
    ("PUT", "/v2/foo/manifests/..%2f..%2fpwned"),
    ("PUT", "/v2/foo/manifests/../../pwned"),
    ("DELETE", "/v2/foo/blobs/../../../../etc/passwd"),
    ("DELETE", "/v2/../../foo/manifests/" + d),
]
for method, path in cases:
    body = b"x" * 10 if method in ("POST", "PUT", "PATCH") else b""
    st, h, b = request(port, method, path, body=body,
                       headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"} if "manifests" in path else None)
    short = path if len(path) < 90 else path[:60] + "...(%d chars)" % len(path)
    check("traversal %s %s → 400/404 (got %s)" % (method, short, st), st in (400, 404), b[:200])
check("server serves /v2/ after traversal attempts", get_v2_latency(port, timeout=2) is not None)
PY

outside=$(find "$BR_TMP" -newer "$BR_TMP/marker" ! -path "$BR_ROOT" ! -path "$BR_ROOT/*" ! -name server.log ! -name py.rc ! -name h ! -name b ! -path "$BR_TMP" 2>/dev/null)
is "$outside" "" "nothing created outside BR_ROOT"
ok "no passwd/etc/pwned/escape entry inside BR_ROOT" test -z "$(find "$BR_ROOT" \( -name passwd -o -name etc -o -name pwned -o -name escape -o -name '*..*' \) 2>/dev/null)"
ok "no file named pwned/escape under /tmp or / created" test ! -e /tmp/pwned -a ! -e /pwned -a ! -e /tmp/x.berth-hostile
is "$(http GET /v2/_catalog)" 200 "catalog answers"
is "$(body)" '{"repositories":[]}' "catalog is empty: no repository was created by the attempts"

# ---- Range / Content-Range / methods / limits / chunked / 100-continue -----------------
py_checks - "$BR_PORT" "$BR_PID" <<'PY'
import json, random, sys, time
from robust_lib import *
port, pid = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(7)
blob = bytes(rnd.randrange(256) for _ in range(100))
dg = "sha256:" + sha256_hex(blob)
st, h, _ = request(port, "POST", "/v2/hostile/range/blobs/uploads/?digest=" + dg, body=blob,
                   headers={"Content-Type": "application/octet-stream"})
check("push a 100-byte blob for the Range checks", st == 201, st)
url = "/v2/hostile/range/blobs/" + dg

# Range on blob GET: invalid → ignored (200, whole blob), or 416 where RFC 9110 allows.
ranges = [("bytes=5-2", (200, 416)), ("bytes=abc", (200,)), ("bytes=99999999999999999999-", (200, 416)),
          ("items=0-1", (200,)), ("bytes=0-1,3-4", (200, 206)), ("bytes=0-1, 50-", (200, 206)),
          ("bytes=", (200,)), ("bytes=-", (200,)), ("bytes=--1", (200, 416)), ("bytes=1-2-3", (200, 416)),
          ("bytes=200-", (416,)), ("bytes=100-", (416,)), ("bytes=-0", (416,)), ("bytes = 0-1", (200, 206)),
          ("bytes=0-1" + ",2-3" * 2000, (200, 206, 416)), ("bytes=-99999999999999999999", (200, 206, 416)),
          ("bytes=0-0", (206,)), ("bytes=-10", (206,)), ("bytes=90-1000", (206,))]
for rng, allowed in ranges:
    st, h, b = request(port, "GET", url, headers={"Range": rng})
    name = rng if len(rng) < 40 else rng[:30] + "...(%d chars)" % len(rng)
    good = st in allowed
    if st == 200:
        good = good and b == blob
    elif st == 206:
        cr = h.get("content-range", "")
        try:
            a, _, rest = cr[6:].partition("-")
            e, _, tot = rest.partition("/")
            good = good and cr.startswith("bytes ") and b == blob[int(a):int(e) + 1] and tot == "100"
        except ValueError:
            good = False
    elif st == 416:
        good = good and h.get("content-range") == "bytes */100"
    check("Range %s → %s (got %s)" % (name, "/".join(map(str, allowed)), st), good, (st, h.get("content-range"), b[:80]))

# Bad Content-Range on PATCH → 416 (or 400), the session stays usable.
st, h, _ = request(port, "POST", "/v2/hostile/cr/blobs/uploads/")
loc = h.get("location", "")
check("upload session for Content-Range checks", st == 202 and loc.startswith("/v2/hostile/cr/blobs/uploads/"), (st, loc))
chunk = b"0123456789"
for cr in ("5-2", "abc", "10-19", "0-99", "0-18446744073709551615", "99999999999999999999999-1", "-5", "0-",
           "0--9", "1-10"):
    st, h, b = request(port, "PATCH", loc, body=chunk, headers={"Content-Range": cr, "Content-Type": "application/octet-stream"})
    check("PATCH Content-Range %r → 416/400 (got %s)" % (cr, st), st in (400, 416), b[:200])
st, h, _ = request(port, "PATCH", loc, body=chunk, headers={"Content-Range": "0-9", "Content-Type": "application/octet-stream"})
check("PATCH with a good Content-Range after the bad ones → 202, Range 0-9", st == 202 and h.get("range") == "0-9", (st, h))
st, h, _ = request(port, "PUT", loc + "?digest=sha256:" + sha256_hex(chunk))
check("PUT completes that upload → 201", st == 201, st)

# Unsupported methods on every route → 405 with an OCI JSON error and Allow.
d = "sha256:" + "b" * 64
st, h, _ = request(port, "POST", "/v2/hostile/m/blobs/uploads/")
up = h.get("location", "/v2/hostile/m/blobs/uploads/x")
routes = ["/v2/", "/v2/_catalog", "/v2/hostile/m/blobs/" + d, "/v2/hostile/m/blobs/uploads/", up,
          "/v2/hostile/m/manifests/latest", "/v2/hostile/m/tags/list", "/v2/hostile/m/referrers/" + d]
for r in routes:
    for m in ("OPTIONS", "TRACE", "PROPFIND", "CONNECT", "get", "BREW"):
        st, h, b = request(port, m, r)
        try:
            j = json.loads(b)
            code = j["errors"][0]["code"]
        except Exception:
            code = None
        ok405 = st == 405 and code is not None and h.get("content-type", "").startswith("application/json") and h.get("allow")
        if m in ("CONNECT", "get", "BREW"):
            # Not registry methods at all: 405 as for the others, or a 400 from h2o.
            ok405 = ok405 or st == 400
        check("%s %s → 405 JSON error (got %s %s)" % (m, r if len(r) < 60 else r[:50] + "...", st, code), ok405, (h, b[:200]))
for m, r in (("DELETE", "/v2/"), ("POST", "/v2/hostile/m/manifests/latest"), ("PATCH", "/v2/hostile/m/blobs/" + d),
             ("PUT", "/v2/hostile/m/tags/list"), ("POST", "/v2/_catalog"), ("GET", "/v2/hostile/m/blobs/uploads/")):
    st, h, b = request(port, m, r, body=b"x" if m in ("POST", "PATCH", "PUT") else b"")
    check("%s %s → 405 (got %s)" % (m, r, st), st == 405 and b.startswith(b'{"errors"'), b[:200])

# Bodies over BERTH_LIMITS_MAX_BODY_SIZE=1MiB.
big = b"\x00" * (2 << 20)
for name, path in (("PATCH", None), ("POST monolithic", "/v2/hostile/big/blobs/uploads/?digest=sha256:" + sha256_hex(big))):
    if path is None:
        st, h, _ = request(port, "POST", "/v2/hostile/big/blobs/uploads/")
        path = h.get("location", "/v2/hostile/big/blobs/uploads/none")
        method = "PATCH"
    else:
        method = "POST"
    st, h, b = request(port, method, path, body=big, headers={"Content-Type": "application/octet-stream"}, timeout=5)
    check("HTTP/1 %s with a 2 MiB body → 413 (got %s)" % (name, st), st == 413, b[:200])
    # Chunked: no Content-Length up front; the limit must still hold.
    chunked = b"".join(b"%x\r\n%s\r\n" % (65536, big[i:i + 65536]) for i in range(0, len(big), 65536)) + b"0\r\n\r\n"
    st, h, b = request(port, method, path, body=chunked,
                       headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}, timeout=5)
    check("HTTP/1 %s with a 2 MiB chunked body → 413 or close (got %s)" % (name, st), st in (413, None), b[:200])
    # Declared too large, nothing sent: refused at once.
    data, closed, secs = exchange(port, ("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n" % (method, path)).encode(), 2.0)
    check("HTTP/1 %s declaring Content-Length 99999999999 → 413 at once" % name, statuses(data) == [413] and secs < 1.5,
          (statuses(data), closed, secs))
check("server alive after over-limit bodies", alive(pid) and get_v2_latency(port, timeout=2) is not None)

# HTTP/2: over-limit body → stream refused (RST_STREAM) or 413; the connection and server live on.
c = H2Conn(port)
st, h, _ = request(port, "POST", "/v2/hostile/big2/blobs/uploads/")
loc = h.get("location", "/v2/hostile/big2/blobs/uploads/none")
c.send(frame(HEADERS, END_HEADERS, 1, hpack_block("PATCH", loc, extra=[("content-type", "application/octet-stream")])))
c.send_data(1, big, timeout=5)
deadline = time.monotonic() + 3
while time.monotonic() < deadline and 1 not in c.rsts and 1 not in c.status:
    time.sleep(0.05)
diag("h2 over-limit body: rst=%s status=%s goaway=%s" % (c.rsts.get(1), c.status.get(1), c.goaway))
check("HTTP/2 PATCH with a 2 MiB body → stream refused (RST_STREAM) or 413",
      1 in c.rsts or c.status.get(1) == 413, (c.rsts, c.status))
c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, hpack_block("GET", "/v2/")))
deadline = time.monotonic() + 2
while time.monotonic() < deadline and 3 not in c.status and not c.closed:
    time.sleep(0.05)
check("HTTP/2: the same connection still serves GET /v2/ (or was closed cleanly)",
      c.status.get(3) == 200 or c.closed, (c.status, c.closed, c.goaway))
c.close()
check("server alive after HTTP/2 over-limit body", alive(pid) and get_v2_latency(port, timeout=2) is not None)

# Chunked transfer-encoding uploads (with extensions and a trailer).
content = bytes(rnd.randrange(256) for _ in range(300000))
st, h, _ = request(port, "POST", "/v2/hostile/chunked/blobs/uploads/")
loc = h.get("location", "")
pieces, off = [], 0
while off < len(content):
    n = min(len(content) - off, rnd.choice((1, 7, 100, 4096, 65536)))
    ext = b";ext=1" if rnd.random() < 0.1 else b""
    pieces.append(b"%x%s\r\n%s\r\n" % (n, ext, content[off:off + n]))
    off += n
body = b"".join(pieces) + b"0\r\nX-Trailer: t\r\n\r\n"
st, h, b = request(port, "PATCH", loc, body=body, headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
check("PATCH with Transfer-Encoding: chunked (%d chunks) → 202, Range 0-%d" % (len(pieces), len(content) - 1),
      st == 202 and h.get("range") == "0-%d" % (len(content) - 1), (st, h, b[:200]))
dg = "sha256:" + sha256_hex(content)
st, h, _ = request(port, "PUT", h.get("location", loc) + "?digest=" + dg)
check("PUT after chunked PATCH → 201", st == 201, st)
st, h, b = request(port, "GET", "/v2/hostile/chunked/blobs/" + dg)
check("chunked upload content verified on GET", st == 200 and b == content and h.get("docker-content-digest") == dg, st)
st, h, b = request(port, "PATCH", "/v2/hostile/chunked/blobs/uploads/", body=b"zz\r\nabc\r\n0\r\n\r\n",
                   headers={"Transfer-Encoding": "chunked"})
check("bad chunk size → 4xx or close", st is None or 400 <= st < 500, st)

# Expect: 100-continue.
content = bytes(rnd.randrange(256) for _ in range(300000))
dg = "sha256:" + sha256_hex(content)
s = connect(port)
s.sendall(("POST /v2/hostile/expect/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           "Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n\r\n" % (dg, len(content))).encode())
s.settimeout(1.0)
try:
    first = s.recv(4096)
except OSError:
    first = b""
check("Expect: 100-continue → '100 Continue' within 1 s", first.startswith(b"HTTP/1.1 100"), first[:80])
s.sendall(content)
data, _, _ = read_until_close(s, 3.0)
s.close()
st, h, _ = parse_response(first + data)
check("Expect: 100-continue upload → 201", st == 201, (st, (first + data)[:300]))
st, h, b = request(port, "GET", "/v2/hostile/expect/blobs/" + dg)
check("100-continue upload content verified on GET", st == 200 and b == content, st)
s = connect(port)
s.sendall(b"POST /v2/hostile/expect/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
data, closed, secs = read_until_close(s, 2.0)
s.close()
check("Expect: 100-continue with an over-limit body → 413 without 100", statuses(data) == [413], (statuses(data), closed))
check("server alive at the end", alive(pid) and get_v2_latency(port, timeout=2) is not None)
PY

# curl's own chunked and 100-continue paths.
head -c 200000 /dev/urandom >"$BR_TMP/c.bin"
dg="sha256:$(sha256_of "$BR_TMP/c.bin")"
is "$(http POST /v2/hostile/curl/blobs/uploads/)" 202 "curl: start upload"
loc=$(header Location)
is "$(http PATCH "$loc" -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/octet-stream' --data-binary @"$BR_TMP/c.bin")" 202 "curl: chunked PATCH → 202"
is "$(header Range)" "0-199999" "curl: chunked PATCH Range"
loc=$(header Location)
is "$(http PUT "$loc?digest=$dg" -H 'Expect: 100-continue')" 201 "curl: PUT → 201"
is "$(curl -s "$BR_URL/v2/hostile/curl/blobs/$dg" | sha256sum | cut -d' ' -f1)" "${dg#sha256:}" "curl: content verified"

ok "no smuggled request reached a handler (access log)" sh -c "! grep -q smuggled '$BR_TMP/server.log'"
ok "server still answers /v2/" v2_ok
ok "server process alive" server_alive
ok "clean exit" br_stop
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
