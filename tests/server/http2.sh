#!/bin/bash
# HTTP/2 (h2c, prior knowledge): a 64 MiB blob push/pull with curl, then abuse
# with raw frames: rapid reset, reset during an upload being hashed, SETTINGS,
# CONTINUATION and PING floods, and over-limit bodies repeated. During each a
# normal client (127.0.0.2) must be served within a second, berth must stay up
# and its memory bounded.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

curl -V | grep -qi 'nghttp2\|HTTP2' || skip_all "curl without HTTP/2"
H2C="curl -s --http2-prior-knowledge"

ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }

is "$($H2C -o /dev/null -w '%{http_version} %{http_code}' "$BR_URL/v2/")" "2 200" "h2c prior knowledge: GET /v2/ → HTTP/2 200"
$H2C -D "$BR_TMP/h" -o /dev/null "$BR_URL/v2/"
ok "h2c: header names are lower-case on the wire" sh -c "! grep -q '^[^:]*[A-Z][^:]*:' '$BR_TMP/h'"

# ---- 64 MiB blob over h2c ------------------------------------------------------------
head -c $((64 << 20)) /dev/urandom >"$BR_TMP/big"
dg="sha256:$(sha256_of "$BR_TMP/big")"
is "$($H2C -X POST -D "$BR_TMP/h" -o /dev/null -w '%{http_code}' "$BR_URL/v2/h2/big/blobs/uploads/")" 202 "h2c: start upload"
loc=$(header Location)
t0=$(date +%s.%N)
is "$($H2C -X PATCH -T "$BR_TMP/big" -H 'Content-Type: application/octet-stream' -D "$BR_TMP/h" -o /dev/null -w '%{http_code}' "$BR_URL$loc")" 202 "h2c: PATCH 64 MiB in one request"
diag "h2c PATCH of 64 MiB took $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
is "$(header Range)" "0-$(((64 << 20) - 1))" "h2c: Range after PATCH"
loc=$(header Location)
is "$($H2C -X PUT -o /dev/null -w '%{http_code}' "$BR_URL$loc?digest=$dg")" 201 "h2c: PUT → 201"
is "$($H2C "$BR_URL/v2/h2/big/blobs/$dg" | sha256sum | cut -d' ' -f1)" "${dg#sha256:}" "h2c: GET 64 MiB, content verified"
is "$($H2C -I -o /dev/null -w '%{http_code}' -D "$BR_TMP/h" "$BR_URL/v2/h2/big/blobs/$dg")" 200 "h2c: HEAD → 200"
is "$(header content-length)" "$((64 << 20))" "h2c: HEAD Content-Length"
is "$($H2C -H 'Range: bytes=1000-1999' "$BR_URL/v2/h2/big/blobs/$dg" | sha256sum | cut -d' ' -f1)" \
    "$(tail -c +1001 "$BR_TMP/big" | head -c 1000 | sha256sum | cut -d' ' -f1)" "h2c: Range GET content"
rm -f "$BR_TMP/big"

# ---- floods -----------------------------------------------------------------------------
py_checks - "$BR_PORT" "$BR_PID" "$dg" <<'PY'
import struct, sys, threading, time
from robust_lib import *
port, pid, big_dg = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


class RssPeak(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.ev = {}, threading.Event()

    def run(self):
        while not self.ev.is_set():
            for k, v in proc_status(pid).items():
                self.peak[k] = max(self.peak.get(k, 0), v)
            time.sleep(0.05)

    def stop(self):
        self.ev.set()
        self.join(5)
        return self.peak


def attack(name, fn, rss_bound_mib=256):
    base = proc_status(pid)
    rss = RssPeak()
    rss.start()
    prober = Prober(port, src="127.0.0.2", interval=0.1)
    prober.start()
    t0 = time.monotonic()
    try:
        info = fn()
    except Exception as e:  # the server closing on us is fine; report what happened
        info = "attacker stopped: %r" % e
    dt = time.monotonic() - t0
    time.sleep(0.3)
    prober.report(name)
    peak = rss.stop()
    diag("%s: %.1f s; %s; RSS %d → peak %d KiB, RssAnon %d → peak %d KiB" % (
        name, dt, info, base.get("VmRSS", 0), peak.get("VmRSS", 0), base.get("RssAnon", 0), peak.get("RssAnon", 0)))
    check("%s: berth alive" % name, alive(pid))
    check_memory("%s: RssAnon grew by < %d MiB" % (name, rss_bound_mib),
          peak.get("RssAnon", 0) - base.get("RssAnon", 0) < rss_bound_mib * 1024, (base, peak))
    st = request(port, "GET", "/v2/", timeout=2 * SLOWDOWN)[0]
    check("%s: served afterwards" % name, st == 200, st)


def rapid_reset():
    c = H2Conn(port)
    sid, t0 = 1, time.monotonic()
    paths = ["/v2/", "/v2/h2/big/blobs/" + big_dg, "/v2/h2/big/tags/list", "/v2/_catalog"]
    # 30,000 streams in the normal build; a sanitizer build, several times
    # slower per stream, gets a tenth so the same responsiveness bound applies.
    while sid < 2 * 30000 // (10 if SANITIZED else 1) and time.monotonic() - t0 < 4 and not c.closed:
        batch = b""
        for _ in range(100):
            batch += frame(HEADERS, END_HEADERS | END_STREAM, sid, hpack_block("GET", paths[(sid // 2) % 4])) + rst(sid)
            sid += 2
        if not c.send(batch):
            break
    time.sleep(0.2)
    r = "%d streams opened and reset, goaway=%s, closed=%s" % (sid // 2, c.goaway, c.closed)
    c.close()
    return r


def reset_while_hashing():
    # A 36 MiB body (spilled to a file by h2o) arrives whole; RST_STREAM right
    # after END_STREAM, while berth hashes and writes it in slices.
    body = b"\xab" * (36 << 20)
    n_ok = 0
    for i in range(3):
        st, h, _ = request(port, "POST", "/v2/h2/reset/blobs/uploads/")
        loc = h.get("location", "")
        c = H2Conn(port)
        c.send(frame(HEADERS, END_HEADERS, 1, hpack_block("PATCH", loc, extra=[("content-type", "application/octet-stream")])))
        sent = c.send_data(1, body, timeout=20)
        c.send(rst(1))
        time.sleep(0.05 * i)
        c.close()
        time.sleep(0.3)
        # The session must be either untouched (0 bytes) or hold the whole body, never a torn middle.
        st, h, _ = request(port, "GET", loc)
        rng = h.get("range")
        good_state = st == 404 or (st == 204 and rng in ("0-0", "0-%d" % (len(body) - 1)))
        check("reset while hashing #%d: upload session consistent (status %s, Range %s)" % (i, st, rng), good_state, (sent, st, rng))
        if st == 204:
            start = 0 if rng == "0-0" else len(body)
            tail = b"hello"
            st2, h2, _ = request(port, "PATCH", loc, body=tail,
                                 headers={"Content-Range": "%d-%d" % (start, start + 4), "Content-Type": "application/octet-stream"})
            full = (body if start else b"") + tail
            st3, _, _ = request(port, "PUT", loc + "?digest=sha256:" + sha256_hex(full))
            check("reset while hashing #%d: the session resumes and completes with the right digest" % i,
                  st2 == 202 and st3 == 201, (st2, st3))
            n_ok += st3 == 201
    return "%d sessions resumed after reset" % n_ok


def settings_flood():
    c = H2Conn(port, drain=False)  # never reads: every ACK piles up on berth's side
    n = 0
    t0 = time.monotonic()
    chunk = b"".join(settings(((4, 65535 + i % 7), (3, 100))) for i in range(1000))
    while n < 200000 and time.monotonic() - t0 < 4:
        c.s.settimeout(2)
        if not c.send(chunk):
            break
        n += 1000
    time.sleep(0.3)
    closed = is_closed(c.s)
    c.close()
    return "%d SETTINGS frames sent, closed by berth: %s" % (n, closed)


def continuation_flood():
    c = H2Conn(port)
    c.send(frame(HEADERS, 0, 1, hpack_block("GET", "/v2/")))
    block = b"".join(hpack_literal("x-flood-%d" % i, "v" * 200) for i in range(70))[:16000]
    n, t0 = 0, time.monotonic()
    while n < 8000 and time.monotonic() - t0 < 4 and not c.closed:
        if not c.send(frame(CONTINUATION, 0, 1, block) * 10):
            break
        n += 10
    time.sleep(0.3)
    r = "%d CONTINUATION frames (%.0f MiB) sent, goaway=%s, closed=%s" % (n, n * 16000 / 2**20, c.goaway, c.closed)
    c.close()
    return r


def ping_flood():
    c = H2Conn(port, drain=False)
    n, t0 = 0, time.monotonic()
    chunk = b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(1000))
    while n < 500000 and time.monotonic() - t0 < 4:
        c.s.settimeout(2)
        if not c.send(chunk):
            break
        n += 1000
    time.sleep(0.3)
    closed = is_closed(c.s)
    c.close()
    return "%d PINGs sent without reading, closed by berth: %s" % (n, closed)


def window_zero_slow_reader():
    # Ask for the 64 MiB blob on 50 streams with a zero window: nothing can
    # be sent; berth must not buffer the blobs in memory.
    c = H2Conn(port, settings_pairs=((4, 0),))
    for i in range(50):
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, hpack_block("GET", "/v2/h2/big/blobs/" + big_dg)))
    time.sleep(2)
    r = "50 streams held at window 0, headers seen on %d" % len(c.headers_seen)
    c.close()
    return r


attack("rapid reset", rapid_reset)
attack("reset while hashing a 36 MiB body", reset_while_hashing)
attack("SETTINGS flood", settings_flood)
attack("CONTINUATION flood", continuation_flood)
attack("PING flood", ping_flood)
attack("zero-window readers of a 64 MiB blob", window_zero_slow_reader)
PY
is "$($H2C -o /dev/null -w '%{http_version} %{http_code}' "$BR_URL/v2/")" "2 200" "h2c still works after the floods"
ok "server process alive" server_alive
ok "clean exit" br_stop

# ---- over-limit bodies, repeated: refused streams must not leak ----------------------------
export BERTH_LIMITS_MAX_BODY_SIZE=1MiB
ok "berth restarts with max_body_size 1MiB" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
py_checks - "$BR_PORT" "$BR_PID" <<'PY'
import sys, time
from robust_lib import *
port, pid = int(sys.argv[1]), int(sys.argv[2])
st, h, _ = request(port, "POST", "/v2/h2/limit/blobs/uploads/")
loc = h.get("location", "/v2/h2/limit/blobs/uploads/none")
body = b"\0" * ((1 << 20) + 4096)


def round_(n):
    refused = 0
    for _ in range(n):
        c = H2Conn(port)
        for sid in (1, 3, 5):
            c.send(frame(HEADERS, END_HEADERS, sid, hpack_block("PATCH", loc)))
            c.send_data(sid, body, timeout=5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(s in c.rsts or s in c.status for s in (1, 3, 5)):
            time.sleep(0.005)
        refused += sum(1 for s in (1, 3, 5) if s in c.rsts or c.status.get(s) == 413)
        c.close()
    return refused


grows, refused = [], 0
for r in range(3):
    a = proc_status(pid)
    refused += round_(60)
    time.sleep(0.2)
    b = proc_status(pid)
    grows.append(b.get("RssAnon", 0) - a.get("RssAnon", 0))
diag("3 rounds of 180 over-limit HTTP/2 streams: %d refused; RssAnon growth per round %s KiB" % (refused, grows))
check("over-limit HTTP/2 bodies are refused (RST_STREAM or 413)", refused == 540, refused)
# RssAnon swings by ~10 MiB either way between rounds (1 MiB bodies, malloc's
# mmap threshold); a leak of the refused body buffer (~80 KiB) would add ~43 MiB.
check_memory("refused over-limit streams do not leak: RssAnon grows < 24 MiB over 540 streams", sum(grows) < 24 * 1024, grows)
check("served afterwards", get_v2_latency(port, timeout=2 * SLOWDOWN) is not None)
PY
ok "server process alive" server_alive
ok "clean exit" br_stop
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
