"""Helpers for the robustness tests in tests/server/*.sh (python3 stdlib only).

Raw-socket HTTP/1 clients, a latency prober that runs while an attack is on,
and a tiny HTTP/2 frame writer (no HPACK tables: header fields are sent as
"literal without indexing, new name", which needs none).

Checks are reported to the calling shell script as lines
    PASS <name>            FAIL <name> [# detail]          # <diagnostic>
which tests/server/robust_lib.sh turns into TAP.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"


# Sanitizer builds (BR_SANITIZED=1, set by make check) run several times slower
# and keep freed memory in quarantine: responsiveness bounds are widened and
# memory bounds are reported, not asserted, there. The normal build asserts both.
SANITIZED = os.environ.get("BR_SANITIZED") == "1"
LATENCY_BOUND = 5.0 if SANITIZED else 1.0
# Request timeouts and attack sizes scale with the build's speed.
SLOWDOWN = 5 if SANITIZED else 1


def check_memory(name, cond, detail=""):
    """A memory bound: asserted except under sanitizers (then a diagnostic)."""
    if SANITIZED:
        diag("not asserted under sanitizers: %s (%s)" % (name, "holds" if cond else "exceeded: %s" % (detail,)))
        return True
    return check(name, cond, detail)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def check(name, cond, detail=""):
    if cond:
        out("PASS " + name)
    else:
        out("FAIL " + name + (" # " + str(detail).replace("\n", "\\n")[:400] if detail != "" else ""))
    return bool(cond)


def diag(msg):
    out("# " + msg)


# ---- sockets ------------------------------------------------------------------


def connect(port, src=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src is not None:
        s.bind((src, 0))
    s.connect((HOST, port))
    return s


def is_closed(s):
    """True when the peer closed s (EOF or reset), False while it is open.
    Never blocks; consumes any response bytes waiting (e.g. a 400/408)."""
    old = s.gettimeout()
    s.settimeout(0.0)
    try:
        while True:
            d = s.recv(65536)
            if d == b"":
                return True
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True
    finally:
        s.settimeout(old)


def read_until_close(s, timeout, until=None):
    """Reads until EOF/reset or timeout, or until until(data) holds. Returns
    (data, closed, seconds)."""
    t0 = time.monotonic()
    data = b""
    closed = False
    deadline = t0 + timeout
    while until is None or not until(data):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return data, closed, time.monotonic() - t0


def exchange(port, raw, timeout=2.0, src=None):
    """Sends raw bytes and reads until the server closes or timeout."""
    s = connect(port, src)
    try:
        try:
            s.sendall(raw)
        except OSError:
            pass
        return read_until_close(s, timeout)
    finally:
        s.close()


def statuses(data):
    """Status codes of all HTTP/1 responses found in data (final and 1xx)."""
    res = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"HTTP/1.") and len(line) >= 12:
            try:
                res.append(int(line[9:12]))
            except ValueError:
                pass
    return res


def parse_response(data):
    """First final response in data: (status, {lower-name: value}, body)."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return None, {}, b""
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0][9:12])
        except ValueError:
            return None, {}, b""
        if 100 <= status < 200:
            data = rest
            continue
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs.setdefault(k.strip().lower().decode("latin-1"), v.strip().decode("latin-1"))
        n = int(hdrs.get("content-length", len(rest)))
        return status, hdrs, rest[:n]


def request(port, method, path, headers=None, body=b"", src=None, timeout=5.0 * SLOWDOWN, raw_path=True):
    """One HTTP/1.1 request on a fresh connection (Connection: close).
    Returns (status, headers, body); status None when the server closed
    without a response."""
    hdrs = {"Host": "127.0.0.1", "Connection": "close"}
    if headers:
        hdrs.update(headers)
    if body and "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    if isinstance(path, str):
        path = path.encode("latin-1")
    raw = method.encode() + b" " + path + b" HTTP/1.1\r\n"
    raw += b"".join(k.encode() + b": " + v.encode("latin-1") + b"\r\n" for k, v in hdrs.items())
    raw += b"\r\n" + body
    data, _, _ = exchange(port, raw, timeout, src)
    return parse_response(data)


def get_v2_latency(port, src=None, timeout=5.0):
    """Seconds for GET /v2/ on a new connection, or None on failure."""
    t0 = time.monotonic()
    try:
        st, _, _ = request(port, "GET", "/v2/", src=src, timeout=timeout)
    except OSError:
        return None
    if st != 200:
        return None
    return time.monotonic() - t0


class Prober(threading.Thread):
    """GET /v2/ every interval on a fresh connection until stopped; keeps
    the latencies (None = failed)."""

    def __init__(self, port, src="127.0.0.2", interval=0.2):
        super().__init__(daemon=True)
        self.port, self.src, self.interval = port, src, interval
        self.lat = []
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            self.lat.append(get_v2_latency(self.port, self.src, timeout=3.0 * SLOWDOWN))
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(10)
        return self.summary()

    def summary(self):
        good = [x for x in self.lat if x is not None]
        return {
            "n": len(self.lat),
            "failed": len(self.lat) - len(good),
            "max": max(good) if good else None,
            "avg": sum(good) / len(good) if good else None,
        }

    def report(self, name, bound=LATENCY_BOUND):
        s = self.stop()
        diag("%s: %d probes, %d failed, max %.1f ms, avg %.1f ms" % (
            name, s["n"], s["failed"], (s["max"] or 0) * 1000, (s["avg"] or 0) * 1000))
        check("%s: /v2/ answered in < %.0f s throughout" % (name, bound),
              s["n"] > 0 and s["failed"] == 0 and s["max"] < bound, s)
        return s


def proc_status(pid):
    """VmRSS, RssAnon, RssFile in KiB from /proc/PID/status."""
    res = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                    res[k] = int(v.split()[0])
    except OSError:
        pass
    return res


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


# ---- HTTP/2 frames ------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(ftype, flags, stream, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream & 0x7FFFFFFF) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    outb = bytearray([first | limit])
    value -= limit
    while value >= 128:
        outb.append((value & 0x7F) | 0x80)
        value >>= 7
    outb.append(value)
    return bytes(outb)


def hpack_str(s):
    if isinstance(s, str):
        s = s.encode("latin-1")
    return hpack_int(len(s), 7) + s


def hpack_literal(name, value):
    """Literal header field without indexing, new name (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def hpack_block(method, path, authority="127.0.0.1", extra=()):
    b = hpack_literal(":method", method) + hpack_literal(":scheme", "http")
    b += hpack_literal(":path", path) + hpack_literal(":authority", authority)
    for k, v in extra:
        b += hpack_literal(k, v)
    return b


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def rst(stream, code=8):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def window_update(stream, inc):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", inc))


# Huffman codes (RFC 7541 Appendix B) of the characters a :status value uses.
_HUFF_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
                "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9"}
_STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def h2_status(block):
    """The :status of a response header block, when it is the first field
    (as h2o sends it): static-indexed, or literal with name index 8 and a
    plain or Huffman-coded value. None when it cannot tell."""
    if not block:
        return None
    b0 = block[0]
    if b0 & 0x80:
        return _STATIC_STATUS.get(b0 & 0x7F)
    if b0 in (0x48, 0x08, 0x18) and len(block) >= 2:
        huff, n = block[1] & 0x80, block[1] & 0x7F
        v = block[2:2 + n]
        if not huff:
            try:
                return int(v)
            except ValueError:
                return None
        bits = "".join(format(x, "08b") for x in v)
        outs, cur = "", ""
        for bit in bits:
            cur += bit
            if cur in _HUFF_DIGITS:
                outs += _HUFF_DIGITS[cur]
                cur = ""
                if len(outs) == 3:
                    break
        try:
            return int(outs)
        except ValueError:
            return None
    return None


class H2Conn:
    """A raw h2c connection. A reader thread drains (and parses) frames when
    drain=True, answering nothing; it tracks GOAWAY, RST_STREAM and the peer's
    flow-control windows so DATA can be sent within them."""

    def __init__(self, port, src=None, drain=True, settings_pairs=((4, 1 << 30), (2, 0))):
        self.s = connect(port, src, timeout=10)
        self.s.sendall(PREFACE + settings(settings_pairs) + window_update(0, (1 << 30)))
        self.closed = False
        self.goaway = None
        self.rsts = {}  # stream -> error code of its last RST_STREAM
        self.first_rsts = {}  # stream -> error code of its first RST_STREAM
        self.headers_seen = set()
        self.status = {}
        self.bytes_in = 0
        self.frames_in = 0
        self.conn_window = 65535
        self.stream_windows = {}
        self.initial_window = 65535
        self.cv = threading.Condition()
        self.t = None
        if drain:
            self.t = threading.Thread(target=self._reader, daemon=True)
            self.t.start()

    def _reader(self):
        buf = b""
        self.s.settimeout(None)
        while True:
            try:
                chunk = self.s.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cv:
                    self.closed = True
                    self.cv.notify_all()
                return
            self.bytes_in += len(chunk)
            buf += chunk
            while len(buf) >= 9:
                n = (buf[0] << 16) | (buf[1] << 8) | buf[2]
                if len(buf) < 9 + n:
                    break
                ftype, flags = buf[3], buf[4]
                sid = struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
                payload = buf[9:9 + n]
                buf = buf[9 + n:]
                self.frames_in += 1
                with self.cv:
                    if ftype == GOAWAY and len(payload) >= 8:
                        self.goaway = struct.unpack(">II", payload[:8])
                    elif ftype == RST_STREAM and len(payload) >= 4:
                        self.rsts[sid] = struct.unpack(">I", payload[:4])[0]
                        self.first_rsts.setdefault(sid, self.rsts[sid])
                    elif ftype == HEADERS:
                        self.headers_seen.add(sid)
                        blk = payload
                        if flags & 0x8 and blk:  # PADDED
                            blk = blk[1:len(blk) - blk[0]]
                        if flags & 0x20:  # PRIORITY
                            blk = blk[5:]
                        if sid not in self.status:
                            self.status[sid] = h2_status(blk)
                    elif ftype == WINDOW_UPDATE and len(payload) >= 4:
                        inc = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                        if sid == 0:
                            self.conn_window += inc
                        else:
                            self.stream_windows[sid] = self.stream_windows.get(sid, self.initial_window) + inc
                    elif ftype == SETTINGS and not (flags & ACK):
                        for i in range(0, len(payload) - 5, 6):
                            k, v = struct.unpack(">HI", payload[i:i + 6])
                            if k == 4:
                                delta = v - self.initial_window
                                self.initial_window = v
                                for s in self.stream_windows:
                                    self.stream_windows[s] += delta
                        try:
                            self.s.sendall(settings(ack=True))
                        except OSError:
                            pass
                    self.cv.notify_all()

    def send(self, b):
        try:
            self.s.sendall(b)
            return True
        except OSError:
            return False

    def send_data(self, sid, body, end=True, timeout=20.0):
        """Sends body as DATA frames within the flow-control windows."""
        deadline = time.monotonic() + timeout
        off = 0
        with self.cv:
            self.stream_windows.setdefault(sid, self.initial_window)
        while off < len(body):
            with self.cv:
                while (self.conn_window <= 0 or self.stream_windows[sid] <= 0) and not self.closed and sid not in self.rsts:
                    if not self.cv.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() > deadline:
                        return False
                if self.closed or sid in self.rsts:
                    return False
                n = min(16384, len(body) - off, self.conn_window, self.stream_windows[sid])
                self.conn_window -= n
                self.stream_windows[sid] -= n
            last = off + n == len(body)
            if not self.send(frame(DATA, END_STREAM if (last and end) else 0, sid, body[off:off + n])):
                return False
            off += n
        if not body and end:
            return self.send(frame(DATA, END_STREAM, sid, b""))
        return True

    def wait_closed(self, timeout):
        with self.cv:
            self.cv.wait_for(lambda: self.closed, timeout)
            return self.closed

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
