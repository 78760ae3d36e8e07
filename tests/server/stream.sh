#!/bin/bash
# Upload bodies as they arrive in pieces. HTTP/1.1: chunked bodies cut at every
# place (chunk lines split, tiny writes, pauses), pipelined requests after a
# body, malformed chunking mid-body, clients that vanish mid-body (a PATCH stays
# resumable where it was, a monolithic POST leaves nothing), a body past the size
# limit, an absolute-form target. HTTP/2 (h2c): a body in DATA frames, a reset
# mid-body, a body shorter than its content-length. Both builds must give these
# answers. With berth's patched h2o (`berth version` says "patched"), which
# streams upload bodies (server/h2o/0002, 0004), also: an HTTP/2 answer before
# the body's end resets the stream with NO_ERROR, Expect: 100-continue is
# answered only once the upload is known to exist, and memory stays flat (VmHWM,
# file pages included) while large bodies stream in.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

# BR_STREAM_CHECKS=1 runs the streaming checks on any build (to see them fail
# on one that buffers bodies).
patched=${BR_STREAM_CHECKS:-0}
case $("$BERTH" version 2>/dev/null) in *" patched,"*) patched=1 ;; esac
diag "streaming checks: $([ $patched = 1 ] && echo on || echo "off (this build buffers bodies)")"

export BERTH_LIMITS_MAX_BODY_SIZE=300MiB
ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }

py_checks - "$BR_PORT" "$BR_PID" "$BR_ROOT" "$patched" <<'PY'
import hashlib, os, random, sys, threading, time
from robust_lib import *

port, pid, root, patched = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
rnd = random.Random(20261203)
OCT = "application/octet-stream"


def start_upload(repo):
    st, h, _ = request(port, "POST", "/v2/%s/blobs/uploads/" % repo)
    check("%s: POST starts an upload (202)" % repo, st == 202, st)
    return h.get("location", "")


def session_range(loc):
    st, h, _ = request(port, "GET", loc)
    return st, h.get("range")


def complete_responses(data):
    """Statuses of the final responses in data that arrived whole (head and Content-Length body)."""
    out = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return out
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        n = 0
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        if len(rest) < n:
            return out
        if status >= 200:
            out.append(status)
        data = rest[n:]


def read_responses(s, n, timeout=10.0 * SLOWDOWN):
    """Reads until n whole final responses arrived, the peer closed or timeout; returns their statuses and the raw bytes."""
    data, _, _ = read_until_close(s, timeout, until=lambda d: len(complete_responses(d)) >= n)
    return complete_responses(data), data


def chunked(body, rnd, ext=False):
    out, i = [], 0
    while i < len(body):
        n = min(rnd.choice((1, 2, 7, 100, 4096, 65536, 300000)), len(body) - i)
        out.append(b"%x%s\r\n%s\r\n" % (n, b";x=y" if ext and rnd.random() < 0.3 else b"", body[i:i + n]))
        i += n
    out.append(b"0\r\n\r\n")
    return b"".join(out)


# ---- a chunked body in pieces cut at random places, with pauses ------------------
body = os.urandom(3 << 20)
loc = start_upload("stream/cut")
wire = chunked(body, rnd, ext=True)
s = connect(port, timeout=20 * SLOWDOWN)
s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (loc, OCT)).encode())
i = 0
while i < len(wire):
    n = rnd.choice((1, 3, 10, 1000, 70000, 500000))
    s.sendall(wire[i:i + n])
    i += n
    if rnd.random() < 0.02:
        time.sleep(0.01)
st, data = read_responses(s, 1)
s.close()
check("chunked PATCH cut at random places: 202", st == [202], st)
_, h, _ = parse_response(data)
check("chunked PATCH cut at random places: Range covers the body", h.get("range") == "0-%d" % (len(body) - 1), h.get("range"))
dg = "sha256:" + sha256_hex(body)
st, _, _ = request(port, "PUT", h.get("location", loc) + "?digest=" + dg)
check("chunked PATCH cut at random places: PUT ?digest → 201 (every byte hashed once, in order)", st == 201, st)
st, _, b = request(port, "GET", "/v2/stream/cut/blobs/" + dg, timeout=20 * SLOWDOWN)
check("chunked PATCH cut at random places: GET gives the body back", st == 200 and b == body, (st, len(b)))

# ---- pipelined: a request right behind a body on the same connection ------------
for te in (False, True):
    name = "chunked" if te else "Content-Length"
    loc = start_upload("stream/pipe")
    piece = os.urandom(200000)
    if te:
        head = "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (loc, OCT)
        raw = head.encode() + chunked(piece, rnd)
    else:
        head = "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (loc, OCT, len(piece))
        raw = head.encode() + piece
    raw += b"GET " + loc.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data, closed, _ = exchange(port, raw, timeout=10 * SLOWDOWN)
    check("pipelined after a %s body: 202 then 204 on one connection" % name, statuses(data) == [202, 204], statuses(data))
    check("pipelined after a %s body: the session reports the body" % name,
          data.lower().count(b"range: 0-%d" % (len(piece) - 1)) == 2, data[-300:])

# ---- malformed chunking mid-body: 400, connection closed, session where it was --
loc = start_upload("stream/bad")
first = os.urandom(100000)
st, h, _ = request(port, "PATCH", loc, body=first, headers={"Content-Type": OCT})
check("malformed: first chunk PATCH → 202", st == 202, st)
loc = h.get("location", loc)
raw = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (loc, OCT)).encode()
raw += b"10000\r\n" + os.urandom(0x10000) + b"\r\nzz\r\n" + os.urandom(16) + b"\r\n0\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
data, closed, _ = exchange(port, raw, timeout=5 * SLOWDOWN)
check("malformed chunk size mid-body: one 400 and nothing else", statuses(data) == [400], statuses(data))
check("malformed chunk size mid-body: connection closed", closed)
time.sleep(0.2)
st, rng = session_range(loc)
check("malformed chunk size mid-body: session still at its last offset", st == 204 and rng == "0-%d" % (len(first) - 1), (st, rng))

# ---- a client that vanishes mid-body ------------------------------------------
def vanish(method, path, total, sent):
    s = connect(port)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (method, path, OCT, total)).encode())
    s.sendall(os.urandom(sent))
    time.sleep(0.3)
    s.close()
    time.sleep(0.5 * SLOWDOWN)

loc = start_upload("stream/gone")
st, h, _ = request(port, "PATCH", loc, body=first, headers={"Content-Type": OCT})
loc = h.get("location", loc)
vanish("PATCH", loc, 50 << 20, 3 << 20)
st, rng = session_range(loc)
check("PATCH cut off mid-body: session resumable at its last durable offset", st == 204 and rng == "0-%d" % (len(first) - 1),
      (st, rng))
more = os.urandom(5000)
st, h, _ = request(port, "PATCH", loc, body=more, headers={"Content-Type": OCT})
st, _, _ = request(port, "PUT", h.get("location", loc) + "?digest=sha256:" + sha256_hex(first + more))
check("PATCH cut off mid-body: the upload resumes and completes (201)", st == 201, st)

def upload_files():
    out = []
    for d, _, fs in os.walk(os.path.join(root, "uploads")):
        out += [os.path.join(d, f) for f in fs]
    return sorted(out)

before = upload_files()
dg = "sha256:" + "ab" * 32
vanish("POST", "/v2/stream/mono/blobs/uploads/?digest=" + dg, 50 << 20, 3 << 20)
after = upload_files()
check("monolithic POST cut off mid-body: no upload left behind", after == before, (before, after))
st, _, _ = request(port, "HEAD", "/v2/stream/mono/blobs/" + dg)
check("monolithic POST cut off mid-body: no blob", st == 404, st)

# ---- a chunked body past max_body_size ----------------------------------------
loc = start_upload("stream/big")
s = connect(port, timeout=30 * SLOWDOWN)
s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (loc, OCT)).encode())
block = b"%x\r\n%s\r\n" % (1 << 20, os.urandom(1 << 20))
try:
    for _ in range(310):
        s.sendall(block)
except OSError:
    pass
data, closed, _ = read_until_close(s, 10 * SLOWDOWN)
s.close()
check("chunked body past max_body_size: 413 (or closed)", statuses(data) in ([413], []), statuses(data))
st, rng = session_range(loc)
check("chunked body past max_body_size: session unchanged", st == 204 and rng == "0-0", (st, rng))

# ---- an absolute-form target (RFC 9112 3.2.2) streams like an origin-form one ---
loc = start_upload("stream/abs")
piece = os.urandom(300000)
raw = ("PATCH http://127.0.0.1:%d%s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
       "Connection: close\r\n\r\n" % (port, loc, OCT)).encode() + chunked(piece, rnd)
data, _, _ = exchange(port, raw, timeout=10 * SLOWDOWN)
_, h, _ = parse_response(data)
check("absolute-form chunked PATCH: 202 with the body recorded", statuses(data) == [202] and h.get("range") == "0-%d" % (len(piece) - 1),
      (statuses(data), h.get("range")))


# ---- HTTP/2 (h2c): DATA frames, a reset mid-body, a wrong content-length -----------
def h2_wait(c, sid, timeout=20.0 * SLOWDOWN):
    with c.cv:
        c.cv.wait_for(lambda: sid in c.status or sid in c.rsts or c.closed, timeout)
        return c.status.get(sid), c.rsts.get(sid)


def h2_patch(c, sid, loc, body, extra=(), end=True):
    hdrs = [("content-type", OCT)] + list(extra)
    c.send(frame(HEADERS, END_HEADERS, sid, hpack_block("PATCH", loc, extra=hdrs)))
    return c.send_data(sid, body, end=end, timeout=30 * SLOWDOWN)


loc = start_upload("stream/h2")
body = os.urandom(24 << 20)
c = H2Conn(port)
h2_patch(c, 1, loc, body, extra=[("content-length", str(len(body)))])
st, rs = h2_wait(c, 1)
c.close()
check("h2c PATCH of 24 MiB in DATA frames: 202", st == 202, (st, rs))
st, h, _ = request(port, "GET", loc)
check("h2c PATCH: the session holds the body", st == 204 and h.get("range") == "0-%d" % (len(body) - 1), (st, h.get("range")))
st, _, _ = request(port, "PUT", loc + "?digest=sha256:" + sha256_hex(body))
check("h2c PATCH: PUT ?digest → 201", st == 201, st)

loc = start_upload("stream/h2reset")
st, h, _ = request(port, "PATCH", loc, body=first, headers={"Content-Type": OCT})
loc = h.get("location", loc)
c = H2Conn(port)
h2_patch(c, 1, loc, os.urandom(3 << 20), end=False)
c.send(rst(1))
time.sleep(0.3 * SLOWDOWN)
c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, hpack_block("GET", "/v2/")))
st3, _ = h2_wait(c, 3)
c.close()
check("h2c reset mid-body: the connection serves the next stream", st3 == 200, st3)
st, rng = session_range(loc)
check("h2c reset mid-body: session resumable at its last durable offset", st == 204 and rng == "0-%d" % (len(first) - 1), (st, rng))

loc = start_upload("stream/h2len")
c = H2Conn(port)
h2_patch(c, 1, loc, os.urandom(5000), extra=[("content-length", "10000")])
st, rs = h2_wait(c, 1)
c.close()
check("h2c body shorter than its content-length: refused (400 or RST_STREAM)", st == 400 or (st is None and rs is not None), (st, rs))
st, rng = session_range(loc)
check("h2c body shorter than its content-length: session unchanged", st == 204 and rng == "0-0", (st, rng))

if patched:
    # ---- HTTP/2: an answer before the body's end stops the client (RST_STREAM NO_ERROR)
    c = H2Conn(port)
    unknown = "/v2/stream/h2early/blobs/uploads/00000000-0000-4000-8000-000000000000"
    c.send(frame(HEADERS, END_HEADERS, 1, hpack_block("PATCH", unknown, extra=[("content-type", OCT)])))
    t = threading.Thread(target=c.send_data, args=(1, os.urandom(64 << 20)), kwargs={"timeout": 10 * SLOWDOWN}, daemon=True)
    t.start()
    st, _ = h2_wait(c, 1)
    with c.cv:
        c.cv.wait_for(lambda: 1 in c.rsts or c.closed, 5 * SLOWDOWN)
    check("h2c PATCH to an unknown upload: 404 at once, then RST_STREAM NO_ERROR", st == 404 and c.rsts.get(1) == 0,
          (st, c.rsts.get(1)))
    t.join(15 * SLOWDOWN)
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, hpack_block("GET", "/v2/")))
    st3, _ = h2_wait(c, 3)
    c.close()
    check("h2c PATCH to an unknown upload: the connection serves the next stream", st3 == 200, st3)

    # ---- Expect: 100-continue is answered only for an upload that exists -----------
    raw = ("PATCH /v2/stream/cont/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: %s\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n" % OCT).encode()
    data, closed, _ = exchange(port, raw, timeout=3 * SLOWDOWN)
    check("100-continue to an unknown upload: 404 without a 100 (the body is never asked for)", statuses(data) == [404],
          statuses(data))
    check("100-continue to an unknown upload: connection closed", closed)
    loc = start_upload("stream/cont")
    s = connect(port)
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
               % (loc, OCT)).encode())
    s.settimeout(3 * SLOWDOWN)
    first_bytes = s.recv(100)
    check("100-continue to a known upload: 100 Continue", first_bytes.startswith(b"HTTP/1.1 100"), first_bytes)
    s.sendall(b"hello")
    st, _ = read_responses(s, 1)
    s.close()
    check("100-continue to a known upload: then 202", st == [202], st)

    # ---- back-pressure: memory stays flat while a large body streams in ----------
    size = 256 << 20
    loc = start_upload("stream/flat")
    s = connect(port, timeout=60 * SLOWDOWN)
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (loc, OCT, size)).encode())
    block = os.urandom(4 << 20)
    h = hashlib.sha256()
    for _ in range(size // len(block)):
        s.sendall(block)
        h.update(block)
    st, data = read_responses(s, 1, timeout=60 * SLOWDOWN)
    s.close()
    check("256 MiB streamed PATCH: 202", st == [202], st)
    _, hd, _ = parse_response(data)
    st, _, _ = request(port, "PUT", hd.get("location", loc) + "?digest=sha256:" + h.hexdigest())
    check("256 MiB streamed PATCH: PUT ?digest → 201", st == 201, st)
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    diag("peak VmHWM after the streamed uploads: %d MiB" % (hwm >> 10))
    check_memory("streamed uploads: peak VmHWM (file pages included) < 64 MiB", hwm < 64 << 10, "%d KiB" % hwm)
    check("nothing spilled under <root>/tmp", os.listdir(os.path.join(root, "tmp")) == [], os.listdir(os.path.join(root, "tmp")))

check("server still serves /v2/", get_v2_latency(port, timeout=2) is not None)
PY

ok "server process alive" server_alive
ok "clean exit" br_stop
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
