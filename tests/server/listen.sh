#!/bin/bash
# Listeners: one listening socket per address, shared by berth's threads, so a
# second berth on the same address fails at start ("address already in use")
# instead of splitting connections with the first (SO_REUSEPORT did that).
# Connection caps (limits.max_connections_per_client, limits.max_connections):
# at a cap, a new connection takes the place of the oldest idle keep-alive
# connection (the client's own, or anyone's for the global cap); it is refused
# only when none is idle (mid-headers, mid-body, or never served), and the
# refusal is logged at most once a second.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

br_start || { ok "berth starts" false; done_testing; exit 1; }
printf 'x' >"$BR_TMP/blob"
ok "push a blob to the first berth" eval "push_blob listen/one $BR_TMP/blob >/dev/null"

# The second one has its own store (so no store lock can be what stops it).
rc=0
timeout 10 "$BERTH" serve --listen "127.0.0.1:$BR_PORT" --root "$BR_TMP/store2" >"$BR_TMP/second.log" 2>&1 || rc=$?
ok "a second berth on the same address exits non-zero (rc=$rc)" test "$rc" != 0 -a "$rc" != 124
like "$(cat "$BR_TMP/second.log")" "[Aa]ddress already in use" "it says the address is already in use"
n=0
for _ in $(seq 1 16); do
    [ "$(curl -s "$BR_URL/v2/_catalog")" = '{"repositories":["listen/one"]}' ] && n=$((n + 1))
done
is "$n" 16 "the first berth answers every new connection afterwards"
ok "the first berth is still running" server_alive
ok "berth exits cleanly" br_stop

# ---- connection caps --------------------------------------------------------------
caps_config() {
    cat >"$BR_TMP/caps.yaml" <<YAML
threads: 4
limits:
  max_connections_per_client: 20
  max_connections: 30
YAML
    echo "$BR_TMP/caps.yaml"
}
BR_ROOT=$BR_TMP/store3 BR_START_CONFIG=caps_config br_start || { ok "berth starts with low caps" false; done_testing; exit 1; }
cat >"$BR_TMP/caps.py" <<'PY'
import sys, time
from robust_lib import SLOWDOWN, check, connect, diag, is_closed, parse_response, read_until_close

port = int(sys.argv[1])
GET = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
SETTLE = 0.3 * SLOWDOWN


def served_keepalive(src):
    """A connection that got one response and now sits idle."""
    s = connect(port, src)
    s.sendall(GET)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the response")
        data += chunk
    time.sleep(0.02)  # a distinct idle age for each
    return s


def busy(src, i):
    """A connection that is not idle: headers half sent, body half sent, or
    connected without a request yet."""
    s = connect(port, src)
    kind = i % 3
    if kind == 0:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
    elif kind == 1:
        s.sendall(b"POST /v2/caps/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    return s


def new_conn_answer(src):
    """Status of GET /v2/ (Connection: close) on a new connection, or None
    when the server closed it unanswered."""
    s = connect(port, src)
    try:
        s.sendall(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    except OSError:
        pass
    data, _, _ = read_until_close(s, 5.0 * SLOWDOWN)
    s.close()
    return parse_response(data)[0]


def closed_within(s, seconds):
    t = time.monotonic() + seconds
    while time.monotonic() < t:
        if is_closed(s):
            return True
        time.sleep(0.05)
    return is_closed(s)


def close_all(socks):
    """Closes them and gives the server time to see it (until then they still
    count, and a closed idle one could make room for the next phase)."""
    for s in socks:
        s.close()
    time.sleep(1.0 * SLOWDOWN)


def pipelined_midbody(src):
    """A GET and, right behind it on the same connection, an upload whose
    body is cut short: once the GET is answered, the upload is in progress
    (a patched h2o may already have handed all its bytes to the handler)."""
    s = connect(port, src)
    s.sendall(GET + b"POST /v2/caps/blobs/uploads/?digest=sha256:" + b"0" * 64 +
              b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    data = b""
    while b"{}" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the response")
        data += chunk
    return s


# Per client: 20 connections from 127.0.0.1, the oldest busy with a pipelined
# upload, 19 idle keep-alive ones; then a 21st.
pipe = pipelined_midbody("127.0.0.1")
time.sleep(0.02)
idle = [served_keepalive("127.0.0.1") for _ in range(19)]
time.sleep(SETTLE)
try:
    idle.append(served_keepalive("127.0.0.1"))
    served = True
except (OSError, RuntimeError):
    served = False
check("per-client cap: the 21st connection of a client with 19 idle ones is served", served)
check("per-client cap: the client's oldest idle connection was closed for it", closed_within(idle[0], 2.0 * SLOWDOWN))
time.sleep(SETTLE)
still = [i for i, s in enumerate(idle[1:], 1) if is_closed(s)]
check("per-client cap: its other idle connections stay open", not still, still)
check("per-client cap: an older connection in the middle of a pipelined upload stays open", not is_closed(pipe))
# The 21st is idle too now, but younger: the next one takes idle[1]'s place.
check("per-client cap: another new connection is served", new_conn_answer("127.0.0.1") == 200)
check("per-client cap: ...in place of the next-oldest idle one", closed_within(idle[1], 2.0 * SLOWDOWN))
# Another client is not affected by this one's cap.
check("per-client cap: another client is served meanwhile", new_conn_answer("127.0.0.2") == 200)
close_all(idle + [pipe])

# Per client, none idle: refused, and the busy ones stay.
held = [busy("127.0.0.1", i) for i in range(20)]
time.sleep(SETTLE)
check("per-client cap: with 20 busy connections (mid-headers, mid-body, no request yet), a new one is refused",
      new_conn_answer("127.0.0.1") is None)
gone = [i for i, s in enumerate(held) if is_closed(s)]
check("per-client cap: no busy connection was closed for it", not gone, gone)
close_all(held)

# Global cap (30): idle connections of two other clients fill it.
idle = [served_keepalive("127.0.0.2") for _ in range(15)] + [served_keepalive("127.0.0.3") for _ in range(15)]
time.sleep(SETTLE)
check("global cap: a new client's connection is served when 30 others are idle", new_conn_answer("127.0.0.1") == 200)
check("global cap: the oldest idle connection (another client's) was closed for it", closed_within(idle[0], 2.0 * SLOWDOWN))
time.sleep(SETTLE)
still = [i for i, s in enumerate(idle[1:], 1) if is_closed(s)]
check("global cap: the other idle connections stay open", not still, still)
close_all(idle)

held = [busy("127.0.0.2", i) for i in range(15)] + [busy("127.0.0.3", i) for i in range(15)]
time.sleep(SETTLE)
answers = [new_conn_answer("127.0.0.1") for _ in range(5)]
check("global cap: with 30 busy connections, new ones are refused", answers == [None] * 5, answers)
gone = [i for i, s in enumerate(held) if is_closed(s)]
check("global cap: no busy connection was closed for them", not gone, gone)
close_all(held)
check("after the caps are free again, a new connection is served", new_conn_answer("127.0.0.1") == 200)
PY
t0=$(date +%s)
py_checks "$BR_TMP/caps.py" "$BR_PORT"
n=$(grep -c "refused: limits.max_connections" "$BR_TMP/server.log")
secs=$(($(date +%s) - t0 + 1))
ok "refusals are logged, at most once a second ($n lines in about $secs s for 6 refusals)" test "$n" -ge 1 -a "$n" -le "$secs" -a "$n" -lt 6
ok "berth exits cleanly" br_stop
ok "no sanitizer report, crash or assertion in the server log" server_log_clean
done_testing
