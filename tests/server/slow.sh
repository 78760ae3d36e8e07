#!/bin/bash
# Slow and idle clients: slowloris headers are cut after ~10 s, trickled bodies
# don't block anyone, idle connections go after the idle timeout, the per-client
# cap closes extra connections at once, and 1,000 idle connections don't slow
# other clients down. Other clients connect from 127.0.0.2+ (loopback too).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2",0))' 2>/dev/null ||
    skip_all "cannot bind 127.0.0.2 (needed to act as another client)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 2500 ] || ulimit -n 4096 2>/dev/null ||
    skip_all "open-file limit $(ulimit -n) too low for 1,000 connections"

export BERTH_LIMITS_IDLE_TIMEOUT=2s BERTH_LIMITS_MAX_CONNECTIONS_PER_CLIENT=50
ok "berth starts (idle 2 s, 50 connections per client)" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }

py_checks - "$BR_PORT" "$BR_PID" <<'PY'
import socket, sys, time
from robust_lib import *
port, pid = int(sys.argv[1]), int(sys.argv[2])


# ---- slowloris + slow bodies at once, measured from another client ---------------
prober = Prober(port, src="127.0.0.2", interval=0.2)
prober.start()
t0 = time.monotonic()
loris = []
for i in range(20):
    s = connect(port, src="127.0.0.3")
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    loris.append([s, None])
bodies = []
for i in range(5):
    # one upload session each: a build that streams bodies (server/h2o/0002)
    # answers a second PATCH to a busy session at once (409) instead of
    # after its body
    st, h, _ = request(port, "POST", "/v2/slow/body/blobs/uploads/")
    loc = h.get("location", "/v2/slow/body/blobs/uploads/none")
    s = connect(port, src="127.0.0.4")
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\n" % loc).encode())
    bodies.append([s, None])
trickle_until = t0 + 6.0
last_body_byte = None
next_loris = next_body = time.monotonic()
while time.monotonic() - t0 < 17:
    now = time.monotonic()
    if now >= next_loris:
        for c in loris:
            if c[1] is None:
                try:
                    c[0].send(b"a")
                except OSError:
                    c[1] = now - t0
        next_loris = now + 1.0
    if now >= next_body and now < trickle_until:
        for c in bodies:
            if c[1] is None:
                try:
                    c[0].send(b"0123456789")
                except OSError:
                    c[1] = now - t0
        last_body_byte = now - t0
        next_body = now + 0.5
    for c in loris + bodies:
        if c[1] is None and is_closed(c[0]):
            c[1] = time.monotonic() - t0
    if all(c[1] is not None for c in loris + bodies):
        break
    time.sleep(0.05)
s = prober.report("during slowloris (20 conns) + 5 trickled bodies")
lt = sorted(c[1] for c in loris if c[1] is not None)
diag("slowloris cut after: %s s" % ", ".join("%.1f" % x for x in lt))
check("all 20 slowloris connections were cut", len(lt) == 20, lt)
check("slowloris cut after ~10 s (between 9 and 13 s)", lt and lt[0] >= 9.0 and lt[-1] <= 13.0, lt)
bt = [c[1] for c in bodies]
diag("trickled bodies (last byte at %.1f s) cut after: %s" % (last_body_byte or 0, bt))
check("trickled bodies were not cut while bytes kept coming (6 s)", all(x is not None and x > 6.0 for x in bt), bt)
check("trickled bodies cut by the idle timeout once they stall (within 1.5-4.5 s)",
      all(x is not None and 1.5 <= x - last_body_byte <= 4.5 for x in bt), bt)
for c in loris + bodies:
    c[0].close()
check("server alive after slowloris", alive(pid))

# ---- idle connections closed after the idle timeout (2 s) -------------------------------
t0 = time.monotonic()
idle = [connect(port, src="127.0.0.5") for _ in range(10)]
kept = []
for _ in range(10):
    s = connect(port, src="127.0.0.5")
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    kept.append(s)
closed_at = {}
while time.monotonic() - t0 < 6 and len(closed_at) < 20:
    for i, s in enumerate(idle + kept):
        if i not in closed_at and is_closed(s):
            closed_at[i] = time.monotonic() - t0
    time.sleep(0.05)
ct = sorted(closed_at.values())
diag("idle connections closed after: %s s" % ", ".join("%.1f" % x for x in ct))
check("10 silent + 10 keep-alive idle connections closed", len(ct) == 20, ct)
check("closed after the 2 s idle timeout (1.5-4.5 s)", ct and ct[0] >= 1.5 and ct[-1] <= 4.5, ct)
for s in idle + kept:
    s.close()

# ---- per-client cap (50): 127.0.0.1 at its cap, others served -----------------------
time.sleep(0.3)
held = [connect(port, src="127.0.0.1") for _ in range(50)]
time.sleep(0.3)
extra = [connect(port, src="127.0.0.1") for _ in range(10)]
t1 = time.monotonic()
ext_closed = {}
while time.monotonic() - t1 < 1.0 and len(ext_closed) < 10:
    for i, s in enumerate(extra):
        if i not in ext_closed and is_closed(s):
            ext_closed[i] = time.monotonic() - t1
    time.sleep(0.01)
held_open = sum(1 for s in held if not is_closed(s))
diag("over the cap: %d of 10 closed, slowest after %.0f ms; %d of 50 held still open" % (
    len(ext_closed), max(ext_closed.values() or [0]) * 1000, held_open))
check("connections beyond the per-client cap closed at once (< 0.5 s)",
      len(ext_closed) == 10 and max(ext_closed.values()) < 0.5, ext_closed)
check("the 50 connections within the cap stay open", held_open == 50, held_open)
lat = [get_v2_latency(port, src="127.0.0.2") for _ in range(5)]
check("another client (127.0.0.2) is served in < %.0f s while 127.0.0.1 is at its cap" % LATENCY_BOUND,
      all(x is not None and x < LATENCY_BOUND for x in lat), lat)
check("127.0.0.1 itself is refused while at its cap", get_v2_latency(port, src="127.0.0.1", timeout=1) is None)
for s in held + extra:
    s.close()
time.sleep(0.3)
check("127.0.0.1 is served again once its connections closed", get_v2_latency(port, src="127.0.0.1") is not None)
check("server alive", alive(pid))
PY
ok "server process alive" server_alive
ok "clean exit" br_stop

# ---- 1,000 idle connections, held -------------------------------------------------------
export BERTH_LIMITS_IDLE_TIMEOUT=30s
ok "berth restarts (idle 30 s)" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
py_checks - "$BR_PORT" "$BR_PID" <<'PY'
import socket, sys, time
from robust_lib import *
port, pid = int(sys.argv[1]), int(sys.argv[2])
rss0 = proc_status(pid)
conns = []
t0 = time.monotonic()
for i in range(1000):
    conns.append(connect(port, src="127.0.0.%d" % (10 + i // 40)))  # 40 per client, under the cap of 50
    if i % 100 == 99:
        conns[-1].sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")  # some did one request, then idle
diag("opened 1000 connections in %.2f s" % (time.monotonic() - t0))
prober = Prober(port, src="127.0.0.2", interval=0.1)
prober.start()
time.sleep(5)
prober.report("while holding 1000 idle connections")
lat = [get_v2_latency(port, src="127.0.0.1") for _ in range(5)]
check("127.0.0.1 served in < %.0f s too" % LATENCY_BOUND, all(x is not None and x < LATENCY_BOUND for x in lat), lat)


n_closed = sum(1 for s in conns if is_closed(s))
rss1 = proc_status(pid)
diag("server RSS %d KiB → %d KiB with 1000 connections (RssAnon %d → %d KiB)" % (
    rss0.get("VmRSS", 0), rss1.get("VmRSS", 0), rss0.get("RssAnon", 0), rss1.get("RssAnon", 0)))
check("all 1000 idle connections accepted and still held after 5 s", n_closed == 0, n_closed)
for s in conns:
    s.close()
time.sleep(0.5)
check("served after they all closed", get_v2_latency(port) is not None)
check("server alive", alive(pid))
PY
ok "server process alive" server_alive
ok "clean exit" br_stop
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
